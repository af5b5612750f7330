// The vector form of eq. (7) (runtime/integer/fixed_point.h), shared by the AVX2 integer
// kernels. Include only from files whose callers are compiled with target("avx2").
#pragma once

#include <immintrin.h>

#include "runtime/kernels/fast/qgemm_s16.h"

namespace qplay::fast {

// A RowRequant broadcast to vectors once, outside the loops that use it (8-bit stores alias
// everything, so the compiler would otherwise reload the constants on every iteration).
struct RequantVectors {
  __m256i m0, rounding, offset, limit;
  __m128i shift;
  bool clamp_acc;
};

__attribute__((target("avx2"))) inline RequantVectors broadcast_requant(const RowRequant& row) {
  return {_mm256_set1_epi32(row.multiplier.m0), _mm256_set1_epi64x(row.rounding),        _mm256_set1_epi32(row.offset),
          _mm256_set1_epi32(row.acc_limit),     _mm_cvtsi32_si128(row.multiplier.shift), row.acc_limit != INT32_MAX};
}

// Eq. (7) on 8 lanes, exactly as integer::multiply_by_fixed_point computes it in int64:
// the products go to 64-bit lanes (even and odd 32-bit lanes separately), get the rounding term
// plus 2^62 (so the sum is non-negative and a logical shift is a floor), are shifted, and the
// low 32 bits minus low32(2^(62-shift)) are the result. Valid when the result fits in int32:
// |acc * M| < 2^31 for M < 1 (|acc| <= INT32_MAX), and for M >= 1 after clamping |acc| to 1024
// (M <= 2^20), which changes no output because such values saturate anyway.
__attribute__((target("avx2"))) inline __m256i multiply_by_fixed_point_avx2(__m256i acc, const RequantVectors& r) {
  if (r.clamp_acc)
    acc = _mm256_min_epi32(_mm256_max_epi32(acc, _mm256_sub_epi32(_mm256_setzero_si256(), r.limit)), r.limit);
  const __m256i even = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epi32(acc, r.m0), r.rounding), r.shift);
  const __m256i odd =
      _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(acc, 32), r.m0), r.rounding), r.shift);
  const __m256i both = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  return _mm256_sub_epi32(both, r.offset);
}

// Eq. (7a) on 8 lanes (integer::multiply_add_input), its constants broadcast once.
struct AddInputVectors {
  __m256i high, low, rounding;
  __m128i low_shift, shift;
};

__attribute__((target("avx2"))) inline AddInputVectors broadcast_add_input(const integer::AddInputMultiplier& m) {
  return {_mm256_set1_epi32(m.high), _mm256_set1_epi32(m.low), _mm256_set1_epi32(m.rounding),
          _mm_cvtsi32_si128(m.low_shift), _mm_cvtsi32_si128(m.shift)};
}

__attribute__((target("avx2"))) inline __m256i multiply_add_input_avx2(__m256i v, const AddInputVectors& m) {
  const __m256i low = _mm256_sra_epi32(_mm256_mullo_epi32(v, m.low), m.low_shift);
  const __m256i high = _mm256_add_epi32(_mm256_mullo_epi32(v, m.high), m.rounding);
  return _mm256_sra_epi32(_mm256_add_epi32(high, low), m.shift);
}

}  // namespace qplay::fast
