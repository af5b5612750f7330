#include "runtime/kernels/fast/qgemm_s16.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "runtime/cpu_features.h"
#include "runtime/kernels/fast/requantize_avx2.h"
#include "runtime/kernels/fast/requantize_avx512.h"

namespace qplay::fast {

// ---- portable --------------------------------------------------------------------------------

void qtile_4x16_portable(int64_t k_pairs, const int16_t* w, const int32_t* offsets, const int16_t* group0,
                         const int16_t* group1, const int32_t* bias, int32_t* acc) {
  // Sums wrap like the vector instructions (uint32): lanes past a partial group may read any
  // int16 values, so only the lanes that are stored are proven not to overflow (eq. 4).
  uint32_t sum[kTileRows * 16];
  for (int r = 0; r < kTileRows; ++r)
    for (int i = 0; i < 16; ++i) sum[r * 16 + i] = static_cast<uint32_t>(bias[r]);
  for (int64_t j = 0; j < k_pairs; ++j) {
    const int16_t* x[2] = {group0 + 2 * int64_t{offsets[j]}, group1 + 2 * int64_t{offsets[j]}};
    const int16_t* wj = w + j * kTileRows * 2;
    for (int r = 0; r < kTileRows; ++r)
      for (int g = 0; g < 2; ++g)
        for (int i = 0; i < kGroupPixels; ++i)
          sum[r * 16 + g * 8 + i] +=
              static_cast<uint32_t>(int32_t{wj[r * 2]} * x[g][i * 2] + int32_t{wj[r * 2 + 1]} * x[g][i * 2 + 1]);
  }
  for (int i = 0; i < kTileRows * 16; ++i) acc[i] = static_cast<int32_t>(sum[i]);
}

void store_tile_portable(const int32_t* acc, const RowRequant* rows, const OutputClamp& clamp,
                         const TileDestination& dst) {
  for (int r = 0; r < dst.rows; ++r)
    for (int g = 0; g < 2; ++g) {
      uint8_t* out = dst.out + r * dst.row_stride + dst.group_out[g];
      for (int i = 0; i < dst.group_count[g]; ++i) {
        const int32_t v =
            integer::requantize(acc[r * 16 + g * 8 + i], rows[r].multiplier, clamp.zero_point, clamp.lo, clamp.hi);
        out[i] = clamp.is_signed ? static_cast<uint8_t>(static_cast<int8_t>(v)) : static_cast<uint8_t>(v);
      }
    }
}

RowRequant make_row_requant(integer::FixedPointMultiplier m) {
  RowRequant r;
  r.multiplier = m;
  r.acc_limit = m.shift <= 30 ? 1024 : INT32_MAX;  // shift <= 30 <=> M >= 1 (m0 >= 2^30)
  r.rounding = (int64_t{1} << (m.shift - 1)) + (int64_t{1} << 62);
  r.offset = static_cast<int32_t>(static_cast<uint32_t>(uint64_t{1} << (62 - m.shift)));
  return r;
}

// ---- AVX2 ------------------------------------------------------------------------------------

namespace {

// A tile row's 16 codes (group 0 in bytes 0-7, group 1 in 8-15) to where dst says the groups go: one 16-byte store
// when the groups are adjacent, two 8-byte stores when both are full (e.g. two output rows), else only their counts.
void store_row_codes(__m128i bytes, uint8_t* out, const TileDestination& dst) {
  if (dst.group_count[0] == kGroupPixels && dst.group_count[1] == kGroupPixels &&
      dst.group_out[1] == dst.group_out[0] + kGroupPixels) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + dst.group_out[0]), bytes);
    return;
  }
  if (dst.group_count[0] == kGroupPixels && dst.group_count[1] == kGroupPixels) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + dst.group_out[0]), bytes);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + dst.group_out[1]), _mm_unpackhi_epi64(bytes, bytes));
    return;
  }
  alignas(16) uint8_t tmp[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
  std::memcpy(out + dst.group_out[0], tmp, static_cast<size_t>(dst.group_count[0]));
  if (dst.group_count[1]) std::memcpy(out + dst.group_out[1], tmp + 8, static_cast<size_t>(dst.group_count[1]));
}

}  // namespace

__attribute__((target("avx2"))) void store_tile_avx2(const int32_t* acc, const RowRequant* rows,
                                                     const OutputClamp& clamp, const TileDestination& dst) {
  const __m256i zp = _mm256_set1_epi32(clamp.zero_point);
  const __m256i lo = _mm256_set1_epi32(clamp.lo), hi = _mm256_set1_epi32(clamp.hi);
  for (int r = 0; r < dst.rows; ++r) {
    // Both groups of the row at once: 16 values -> 16 bytes.
    const RequantVectors requant = broadcast_requant(rows[r]);
    __m256i v0 =
        multiply_by_fixed_point_avx2(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + r * 16)), requant);
    __m256i v1 =
        multiply_by_fixed_point_avx2(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + r * 16 + 8)), requant);
    v0 = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v0, zp), lo), hi);
    v1 = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v1, zp), lo), hi);
    // Values are inside [lo, hi] now, so the saturating packs never saturate. packs works per
    // 128-bit lane: words = v0[0..3] v1[0..3] | v0[4..7] v1[4..7]; the permute restores order.
    const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xD8);
    const __m128i w0 = _mm256_castsi256_si128(words), w1 = _mm256_extracti128_si256(words, 1);
    const __m128i bytes = clamp.is_signed ? _mm_packs_epi16(w0, w1) : _mm_packus_epi16(w0, w1);
    store_row_codes(bytes, dst.out + r * dst.row_stride, dst);
  }
}

__attribute__((target("avx2"))) void qtile_4x16_avx2(int64_t k_pairs, const int16_t* w, const int32_t* offsets,
                                                     const int16_t* group0, const int16_t* group1, const int32_t* bias,
                                                     int32_t* acc) {
  __m256i a00 = _mm256_set1_epi32(bias[0]), a01 = a00;
  __m256i a10 = _mm256_set1_epi32(bias[1]), a11 = a10;
  __m256i a20 = _mm256_set1_epi32(bias[2]), a21 = a20;
  __m256i a30 = _mm256_set1_epi32(bias[3]), a31 = a30;
  for (int64_t j = 0; j < k_pairs; ++j) {
    const int64_t off = 2 * int64_t{offsets[j]};
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(group0 + off));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(group1 + off));
    const int32_t* wj = reinterpret_cast<const int32_t*>(w + j * kTileRows * 2);  // 4 (w_k, w_k+1) pairs
    __m256i wr = _mm256_set1_epi32(wj[0]);
    a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x0, wr));
    a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x1, wr));
    wr = _mm256_set1_epi32(wj[1]);
    a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x0, wr));
    a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x1, wr));
    wr = _mm256_set1_epi32(wj[2]);
    a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x0, wr));
    a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x1, wr));
    wr = _mm256_set1_epi32(wj[3]);
    a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x0, wr));
    a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x1, wr));
  }
  __m256i* out = reinterpret_cast<__m256i*>(acc);
  _mm256_storeu_si256(out + 0, a00);
  _mm256_storeu_si256(out + 1, a01);
  _mm256_storeu_si256(out + 2, a10);
  _mm256_storeu_si256(out + 3, a11);
  _mm256_storeu_si256(out + 4, a20);
  _mm256_storeu_si256(out + 5, a21);
  _mm256_storeu_si256(out + 6, a30);
  _mm256_storeu_si256(out + 7, a31);
}

__attribute__((target("avx512f"))) void store_tile_avx512(const int32_t* acc, const RowRequant* rows,
                                                          const OutputClamp& clamp, const TileDestination& dst) {
  const __m512i zp = _mm512_set1_epi32(clamp.zero_point);
  const __m512i lo = _mm512_set1_epi32(clamp.lo), hi = _mm512_set1_epi32(clamp.hi);
  for (int r = 0; r < dst.rows; ++r) {
    const __m512i v = requantize_codes16(_mm512_loadu_si512(acc + r * 16), rows[r], zp, lo, hi);
    // Inside [lo, hi], so keeping the low byte of each lane (vpmovdb) is the uint8 or int8 code.
    const __m128i bytes = _mm512_mask_cvtepi32_epi8(_mm_setzero_si128(), kAll, v);
    store_row_codes(bytes, dst.out + r * dst.row_stride, dst);
  }
}

// Lanes 0-7: 8 int16 pairs of group 0 at `off`; lanes 8-15: those of group 1.
__attribute__((target("avx2,avx512f,avx512dq"), always_inline)) inline __m512i load_two_groups(const int16_t* group0,
                                                                                               const int16_t* group1,
                                                                                               int64_t off) {
  const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(group0 + off));
  const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(group1 + off));
  // Through the float forms: GCC 12 warns that the integer insert reads an undefined vector.
  return _mm512_castps_si512(
      _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_castsi256_ps(x0)), _mm256_castsi256_ps(x1), 1));
}

// A k-pair's 4 row weights (w_k, w_k+1 pairs) in every 128-bit lane; row_weight then spreads row r's pair over all
// 16 lanes with an in-lane shuffle. One load and four shuffles instead of four broadcast loads, which capped the
// loop at one vpdpwssd per cycle. (The masked broadcast: GCC 12's unmasked one warns about an undefined vector.)
__attribute__((target("avx512f"), always_inline)) inline __m512i weights_of_k_pair(const int32_t* w) {
  return _mm512_mask_broadcast_i32x4(_mm512_setzero_si512(), 0xFFFF,
                                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
}

__attribute__((target("avx512f"), always_inline)) inline __m512i row_weight(__m512i w4, int r) {
  switch (r) {
    case 0:
      return _mm512_mask_shuffle_epi32(w4, 0xFFFF, w4, _MM_PERM_AAAA);
    case 1:
      return _mm512_mask_shuffle_epi32(w4, 0xFFFF, w4, _MM_PERM_BBBB);
    case 2:
      return _mm512_mask_shuffle_epi32(w4, 0xFFFF, w4, _MM_PERM_CCCC);
    default:
      return _mm512_mask_shuffle_epi32(w4, 0xFFFF, w4, _MM_PERM_DDDD);
  }
}

template <bool Contiguous>
__attribute__((target("avx2,avx512f,avx512dq"), always_inline)) inline __m512i load_k_pair(const int16_t* group0,
                                                                                           const int16_t* group1,
                                                                                           int64_t off) {
  if constexpr (Contiguous) return _mm512_loadu_si512(group0 + off);
  return load_two_groups(group0, group1, off);
}

// The tile with AVX-512 VNNI: vpdpwssd multiplies the int16 pairs and adds both products into the int32 lane in one
// instruction, wrapping like vpaddd. One 512-bit vector holds a row's two groups (lanes 0-7 group 0, 8-15 group 1).
// `Contiguous`: group 1 starts where group 0's 8 pairs end, so one 512-bit load takes both.
template <bool Contiguous>
__attribute__((target("avx2,avx512f,avx512dq,avx512vl,avx512vnni"), always_inline)) inline void qtile_vnni_loop(
    int64_t k_pairs, const int16_t* w, const int32_t* offsets, const int16_t* group0, const int16_t* group1,
    const int32_t* bias, int32_t* acc) {
  const int32_t* wp = reinterpret_cast<const int32_t*>(w);  // 4 (w_k, w_k+1) pairs per k-pair
  // Four sets of row accumulators for k-pairs j mod 4 (integer sums may be regrouped freely): 16 independent
  // chains hide vpdpwssd's latency, and AVX-512's 32 registers hold them.
  __m512i acc4[4][kTileRows];
#pragma GCC unroll 4
  for (int r = 0; r < kTileRows; ++r) {
    acc4[0][r] = _mm512_set1_epi32(bias[r]);
    acc4[1][r] = acc4[2][r] = acc4[3][r] = _mm512_setzero_si512();
  }
  int64_t j = 0;
  for (; j + 3 < k_pairs; j += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      const __m512i x = load_k_pair<Contiguous>(group0, group1, 2 * int64_t{offsets[j + u]});
      const int32_t* wj = wp + (j + u) * kTileRows;
      const __m512i w4 = weights_of_k_pair(wj);
#pragma GCC unroll 4
      for (int r = 0; r < kTileRows; ++r) acc4[u][r] = _mm512_dpwssd_epi32(acc4[u][r], x, row_weight(w4, r));
    }
  }
  for (; j < k_pairs; ++j) {
    const __m512i x = load_k_pair<Contiguous>(group0, group1, 2 * int64_t{offsets[j]});
    const __m512i w4 = weights_of_k_pair(wp + j * kTileRows);
#pragma GCC unroll 4
    for (int r = 0; r < kTileRows; ++r) acc4[0][r] = _mm512_dpwssd_epi32(acc4[0][r], x, row_weight(w4, r));
  }
#pragma GCC unroll 4
  for (int r = 0; r < kTileRows; ++r)
    _mm512_storeu_si512(acc + 16 * r, _mm512_add_epi32(_mm512_add_epi32(acc4[0][r], acc4[1][r]),
                                                       _mm512_add_epi32(acc4[2][r], acc4[3][r])));
}

__attribute__((target("avx2,avx512f,avx512dq,avx512vl,avx512vnni"))) void qtile_4x16_vnni(
    int64_t k_pairs, const int16_t* w, const int32_t* offsets, const int16_t* group0, const int16_t* group1,
    const int32_t* bias, int32_t* acc) {
  if (group1 == group0 + 2 * kGroupPixels)
    qtile_vnni_loop<true>(k_pairs, w, offsets, group0, group1, bias, acc);
  else
    qtile_vnni_loop<false>(k_pairs, w, offsets, group0, group1, bias, acc);
}

namespace {
std::atomic<bool> portable_forced{false};
std::atomic<bool> vnni_disabled{false};
}  // namespace

void force_avx2_qkernels(bool avx2) { vnni_disabled = avx2; }

void force_portable_qkernels(bool portable) { portable_forced = portable; }

QKernels select_qkernels() {
  if (!portable_forced && !vnni_disabled && has_avx512_vnni()) return {qtile_4x16_vnni, store_tile_avx512, true, true};
  if (!portable_forced && has_avx2()) return {qtile_4x16_avx2, store_tile_avx2, true};
  return {qtile_4x16_portable, store_tile_portable, false};
}

}  // namespace qplay::fast
