// The 16-lane forms of requantize_avx2.h's eq. (7) and (7a), for the AVX-512 integer stores: the same integer
// operations per lane, so the same codes. Include only from files whose callers are compiled with target("avx512f").
// GCC 12's unmasked AVX-512 intrinsics warn about an undefined vector they pass inside; the masked forms with every
// lane set (kAll, kAll64) are the same instructions without the warning.
#pragma once

#include <immintrin.h>

#include "runtime/kernels/fast/qgemm_s16.h"

namespace qplay::fast {

constexpr __mmask16 kAll = 0xFFFF;  // 32-bit lanes
constexpr __mmask8 kAll64 = 0xFF;   // 64-bit lanes

struct RequantVectors16 {
  __m512i m0, rounding, offset, limit;
  __m128i shift;
  bool clamp_acc;
};

__attribute__((target("avx512f"))) inline RequantVectors16 broadcast_requant16(const RowRequant& row) {
  return {_mm512_set1_epi32(row.multiplier.m0), _mm512_set1_epi64(row.rounding),         _mm512_set1_epi32(row.offset),
          _mm512_set1_epi32(row.acc_limit),     _mm_cvtsi32_si128(row.multiplier.shift), row.acc_limit != INT32_MAX};
}

// multiply_by_fixed_point_avx2 on 16 lanes.
__attribute__((target("avx512f"), always_inline)) inline __m512i multiply_by_fixed_point_avx512(
    __m512i acc, const RequantVectors16& r) {
  if (r.clamp_acc)
    acc = _mm512_mask_min_epi32(
        acc, kAll, _mm512_mask_max_epi32(acc, kAll, acc, _mm512_sub_epi32(_mm512_setzero_si512(), r.limit)), r.limit);
  const __m512i even = _mm512_mask_srl_epi64(
      acc, kAll64, _mm512_add_epi64(_mm512_mask_mul_epi32(acc, kAll64, acc, r.m0), r.rounding), r.shift);
  const __m512i odd = _mm512_mask_srl_epi64(
      acc, kAll64,
      _mm512_add_epi64(_mm512_mask_mul_epi32(acc, kAll64, _mm512_mask_srli_epi64(acc, kAll64, acc, 32), r.m0),
                       r.rounding),
      r.shift);
  const __m512i both = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_mask_slli_epi64(odd, kAll64, odd, 32));
  return _mm512_sub_epi32(both, r.offset);
}

// Eq. (8) on a tile row's 16 accumulators: zero_point + round(acc * M), clamped to [lo, hi].
__attribute__((target("avx512f"), always_inline)) inline __m512i requantize_codes16(__m512i acc, const RowRequant& row,
                                                                                    __m512i zero_point, __m512i lo,
                                                                                    __m512i hi) {
  const __m512i v = _mm512_add_epi32(multiply_by_fixed_point_avx512(acc, broadcast_requant16(row)), zero_point);
  return _mm512_mask_min_epi32(v, kAll, _mm512_mask_max_epi32(v, kAll, v, lo), hi);
}

struct AddInputVectors16 {
  __m512i high, low, rounding;
  __m128i low_shift, shift;
};

__attribute__((target("avx512f"))) inline AddInputVectors16 broadcast_add_input16(
    const integer::AddInputMultiplier& m) {
  return {_mm512_set1_epi32(m.high), _mm512_set1_epi32(m.low), _mm512_set1_epi32(m.rounding),
          _mm_cvtsi32_si128(m.low_shift), _mm_cvtsi32_si128(m.shift)};
}

// multiply_add_input_avx2 on 16 lanes.
__attribute__((target("avx512f"), always_inline)) inline __m512i multiply_add_input_avx512(__m512i v,
                                                                                           const AddInputVectors16& m) {
  const __m512i low = _mm512_mask_sra_epi32(v, kAll, _mm512_mullo_epi32(v, m.low), m.low_shift);
  const __m512i high = _mm512_add_epi32(_mm512_mullo_epi32(v, m.high), m.rounding);
  return _mm512_mask_sra_epi32(v, kAll, _mm512_add_epi32(high, low), m.shift);
}

}  // namespace qplay::fast
