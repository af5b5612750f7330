#include "analysis/sample_sums.h"

#include "runtime/cpu_features.h"

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qplay {
namespace {

template <typename Q>
SampleSums portable_sums(const float* x, const Q* q, int64_t n, float scale, int32_t zero_point, const ClipBounds& clip) {
  SampleSums s;
  s.elements = n;
  add_clipped(s.clipping, x, n, clip);
  for (int64_t i = 0; i < n; ++i) {
    const double a = x[i];
    const double b = static_cast<float>(static_cast<int32_t>(q[i]) - zero_point) * scale;  // r = s(q - Z)
    const double d = a - b;
    s.x2 += a * a;
    s.y2 += b * b;
    s.xy += a * b;
    s.err2 += d * d;
    s.max_abs_err = std::max(s.max_abs_err, std::abs(d));
  }
  return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) double lane_sum(__m256 v) {
  alignas(32) float f[8];
  _mm256_store_ps(f, v);
  double s = 0.0;
  for (float e : f) s += e;
  return s;
}

__attribute__((target("avx2,fma"))) int64_t lane_count(__m256i v) {
  alignas(32) int32_t c[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(c), v);
  int64_t s = 0;
  for (int32_t e : c) s += e;
  return s;
}

__attribute__((target("avx2,fma"))) SampleSums avx2_sums(const float* x, const uint8_t* q, bool is_signed, int64_t n,
                                                          float scale, int32_t zero_point, const ClipBounds& clip) {
  SampleSums s;
  s.elements = n;
  const __m256 vbelow = _mm256_set1_ps(clip.below);
  const __m256 vabove = _mm256_set1_ps(clip.above);
  // Per-lane counts: a true compare is all ones (-1), subtracted. At most n / 8 per lane.
  __m256i below = _mm256_setzero_si256(), above = below;
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256i vzp = _mm256_set1_epi32(zero_point);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 vmax = _mm256_setzero_ps();
  int64_t i = 0;
  constexpr int64_t kBlock = 256;  // float partial sums stay short; each block is flushed to double
  while (i + 8 <= n) {
    __m256 x2 = _mm256_setzero_ps(), y2 = x2, xy = x2, e2 = x2;
    const int64_t end = std::min(n, i + kBlock) & ~int64_t{7};
    const int64_t stop = std::max(end, i + 8);
    for (; i + 8 <= stop; i += 8) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
      const __m256i wide = is_signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
      const __m256 b = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(wide, vzp)), vscale);
      const __m256 a = _mm256_loadu_ps(x + i);
      const __m256 d = _mm256_sub_ps(a, b);
      x2 = _mm256_fmadd_ps(a, a, x2);
      y2 = _mm256_fmadd_ps(b, b, y2);
      xy = _mm256_fmadd_ps(a, b, xy);
      e2 = _mm256_fmadd_ps(d, d, e2);
      vmax = _mm256_max_ps(vmax, _mm256_and_ps(d, abs_mask));
      below = _mm256_sub_epi32(below, _mm256_castps_si256(_mm256_cmp_ps(a, vbelow, _CMP_LT_OQ)));  // NaN: false
      above = _mm256_sub_epi32(above, _mm256_castps_si256(_mm256_cmp_ps(a, vabove, _CMP_GT_OQ)));
    }
    s.x2 += lane_sum(x2);
    s.y2 += lane_sum(y2);
    s.xy += lane_sum(xy);
    s.err2 += lane_sum(e2);
  }
  alignas(32) float m[8];
  _mm256_store_ps(m, vmax);
  for (float e : m) s.max_abs_err = std::max(s.max_abs_err, static_cast<double>(e));
  s.clipping.values = i;
  s.clipping.below = lane_count(below);
  s.clipping.above = lane_count(above);
  // The tail as the portable loop does it; d is in float here too (|a - b| with b exact in float).
  SampleSums tail = is_signed ? portable_sums(x + i, reinterpret_cast<const int8_t*>(q) + i, n - i, scale, zero_point, clip)
                              : portable_sums(x + i, q + i, n - i, scale, zero_point, clip);
  s.x2 += tail.x2;
  s.y2 += tail.y2;
  s.xy += tail.xy;
  s.err2 += tail.err2;
  s.max_abs_err = std::max(s.max_abs_err, tail.max_abs_err);
  merge(s.clipping, tail.clipping);
  return s;
}

#endif

}  // namespace

SampleSums sample_sums_codes_portable(const float* x, const void* codes, bool is_signed, int64_t n, float scale,
                                      int32_t zero_point, const ClipBounds& clip) {
  if (is_signed) return portable_sums(x, static_cast<const int8_t*>(codes), n, scale, zero_point, clip);
  return portable_sums(x, static_cast<const uint8_t*>(codes), n, scale, zero_point, clip);
}

SampleSums sample_sums_codes(const float* x, const void* codes, bool is_signed, int64_t n, float scale,
                             int32_t zero_point, const ClipBounds& clip) {
#if defined(__x86_64__)
  if (has_avx2_fma()) return avx2_sums(x, static_cast<const uint8_t*>(codes), is_signed, n, scale, zero_point, clip);
#endif
  return sample_sums_codes_portable(x, codes, is_signed, n, scale, zero_point, clip);
}

}  // namespace qplay
