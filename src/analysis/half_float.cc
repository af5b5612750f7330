#include "analysis/half_float.h"

#include "runtime/cpu_features.h"

#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QPLAY_HAVE_X86 1
#endif

namespace qplay {

uint16_t float_to_half(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return static_cast<uint16_t>(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));  // NaN, inf
  if (x >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 2^16: beyond the largest half
  if (x < 0x38800000u) {
    // Below 2^-14, the smallest normal half: subnormal halves are multiples of 2^-24, so the
    // code is |value| * 2^24 rounded to nearest even (the product is exact: a power-of-two scale).
    float magnitude;
    std::memcpy(&magnitude, &x, sizeof magnitude);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(magnitude * 16777216.0f)));
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 significand bits, rounding to nearest
  // even; a carry out of the significand correctly bumps the exponent (up to infinity).
  uint32_t h = (x - 0x38000000u) >> 13;
  const uint32_t dropped = x & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t significand = half & 0x3ffu;
  uint32_t x;
  if (exponent == 0) {  // zero or subnormal: significand * 2^-24
    const float magnitude = static_cast<float>(significand) * 5.9604644775390625e-8f;
    std::memcpy(&x, &magnitude, sizeof x);
    x |= sign;
  } else if (exponent == 31) {
    x = sign | 0x7f800000u | (significand << 13);
  } else {
    x = sign | ((exponent + 112u) << 23) | (significand << 13);
  }
  float out;
  std::memcpy(&out, &x, sizeof out);
  return out;
}

void floats_to_halves_portable(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_half(in[i]);
}

void halves_to_floats_portable(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = half_to_float(in[i]);
}

#ifdef QPLAY_HAVE_X86
namespace {

__attribute__((target("avx,f16c"))) void floats_to_halves_f16c(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = float_to_half(in[i]);
}

__attribute__((target("avx,f16c"))) void halves_to_floats_f16c(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  for (; i < n; ++i) out[i] = half_to_float(in[i]);
}

}  // namespace

void floats_to_halves(const float* in, uint16_t* out, size_t n) {
  if (has_f16c())
    floats_to_halves_f16c(in, out, n);
  else
    floats_to_halves_portable(in, out, n);
}

void halves_to_floats(const uint16_t* in, float* out, size_t n) {
  if (has_f16c())
    halves_to_floats_f16c(in, out, n);
  else
    halves_to_floats_portable(in, out, n);
}
#else
void floats_to_halves(const float* in, uint16_t* out, size_t n) { floats_to_halves_portable(in, out, n); }
void halves_to_floats(const uint16_t* in, float* out, size_t n) { halves_to_floats_portable(in, out, n); }
#endif

}  // namespace qplay
