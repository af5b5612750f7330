// Fixed-point requantization: how an int32 accumulator in one scale becomes an 8-bit value in
// another scale with integer arithmetic only, as integer-only targets (TFLite Micro, CMSIS-NN,
// NPUs) do it. The derivation and the choice of rounding are in docs/quantization.md,
// equations (6) to (9); the numbers below refer to it.
#pragma once

#include <algorithm>
#include <cstdint>

namespace qplay::integer {

// A real multiplier M > 0 stored as M ~= m0 * 2^-shift                                   (6)
// with m0 a 31-bit mantissa in [2^30, 2^31). The relative error is at most 2^-31.
// Two special cases keep every product and shift in range:
//   M < 2^-32: m0 = 0 (every int32 x has |x * M| < 0.5, so round(x * M) = 0 anyway);
//   M >= 2^20: stored as exactly 2^20 (every x != 0 then saturates an 8-bit output anyway).
// Hence shift is in [10, 62] and |x * m0| < 2^62 for any int32 x.
struct FixedPointMultiplier {
  int32_t m0 = 0;
  int32_t shift = 31;
};

// Converts a real multiplier (computed in double from the float32 scales) to eq. (6) form.
// `real` must be finite and > 0 (callers validate the scales first).
FixedPointMultiplier quantize_multiplier(double real);

// The value the multiplier stands for (for documentation, tests and error messages).
double multiplier_value(FixedPointMultiplier m);

// round(x * M) with one rounding, ties toward +infinity:                                    (7)
//   floor((x * m0 + 2^(shift-1)) / 2^shift)
// computed exactly in int64 (|x * m0| < 2^62, so adding the rounding term cannot overflow;
// >> on a negative int64 is an arithmetic shift = floor in C++20).
inline int64_t multiply_by_fixed_point(int32_t x, FixedPointMultiplier m) {
  const int64_t product = static_cast<int64_t>(x) * m.m0;
  return (product + (int64_t{1} << (m.shift - 1))) >> m.shift;
}

// Eq. (7) for a QAdd input, x = v * 2^20 with |v| < 512 (v = code - zero point, eq. 11), in    (7a)
// 32-bit arithmetic: the vector kernels have no 32x32 -> 64-bit multiply on 8 lanes, and eq. (7)
// costs them two 4-lane ones. With P = shift - 20 and m0 = high * 2^t + low, t = min(16, P - 1):
//   floor((v 2^20 m0 + 2^(shift-1)) / 2^shift) = (v high + 2^(P-1-t) + floor(v low / 2^t)) >> (P - t)
// Dividing by 2^20 first is exact; the rounding term 2^(P-1) is a multiple of 2^t, so it joins the
// high part; flooring the low part by 2^t first changes nothing, since a floor by 2^P >= 2^t
// follows. Every term stays below 2^31 when t >= 10, i.e. shift >= 31, which holds for QAdd's
// input multipliers (at most 1/2, eq. 12); add_input_multiplier refuses any other.
struct AddInputMultiplier {
  int32_t high = 0, low = 0;
  int32_t low_shift = 0;  // t
  int32_t rounding = 0;   // 2^(P-1-t)
  int32_t shift = 0;      // P - t
};

// False (and *out untouched) when m.shift < 31: (7a) would overflow; use eq. (7).
bool add_input_multiplier(FixedPointMultiplier m, AddInputMultiplier* out);

// multiply_by_fixed_point(v * 2^20, m) for |v| < 512, by (7a).
inline int32_t multiply_add_input(int32_t v, const AddInputMultiplier& a) {
  return (v * a.high + a.rounding + ((v * a.low) >> a.low_shift)) >> a.shift;
}

// Output stage of every integer kernel:                                                     (8)
//   y = clamp(y_zp + round(acc * M), lo, hi)
// lo/hi are the output type's range, lo raised to y_zp when a Relu is fused (eq. 9).
inline int32_t requantize(int32_t acc, FixedPointMultiplier m, int32_t y_zero_point, int32_t lo, int32_t hi) {
  const int64_t y = multiply_by_fixed_point(acc, m) + y_zero_point;
  return static_cast<int32_t>(std::clamp<int64_t>(y, lo, hi));
}

}  // namespace qplay::integer
