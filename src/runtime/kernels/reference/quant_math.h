// Quantization arithmetic shared by the QLinearConv and QLinearMatMul reference kernels:
// checking scale / zero-point inputs and requantizing an int32 accumulator,
//   y = saturate(round(acc * multiplier) + y_zp),   multiplier = x_scale * w_scale[c] / y_scale.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "runtime/kernels/reference/common.h"

namespace qplay::ref {

inline bool is_8bit(DType t) { return t == DType::u8 || t == DType::i8; }

// Like visit_dtype, restricted to the 8-bit types (callers have checked is_8bit).
template <typename F>
void visit_8bit(DType t, F&& f) {
  if (t == DType::u8) f(uint8_t{});
  else f(int8_t{});
}

// A quantization parameter (scale or zero point) with one value per tensor, or
// (channels > 0) one per channel: per output channel for QLinearConv, per column of b for
// QLinearMatMul. Scales (want == f32) must also be finite.
inline void check_quant_param(const Node& node, const Tensor& t, DType want, const char* role, int64_t channels) {
  expect_dtype(node, t, want, role);
  if (!(t.numel() == 1 || (channels > 0 && t.rank() == 1 && t.numel() == channels)))
    fail(node, std::string(role) + " has shape " + shape_str(t.shape) + ", expected a single value" +
                   (channels > 0 ? " or [" + std::to_string(channels) + "]" : std::string(" (per-tensor)")));
  if (want == DType::f32)
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(t.data<float>()[i])) fail(node, std::string(role) + " is not finite");
}

// Element c of a per-tensor (1 element) or per-channel parameter.
inline double channel_value(const Tensor& t, int64_t c) { return t.at_as_double(t.numel() == 1 ? 0 : c); }

// ONNX rounds ties to the even neighbour (numpy.round / nearbyint in the default mode).
inline float round_half_to_even(float v) {
  const float lower = std::floor(v);
  const float diff = v - lower;
  if (diff > 0.5f) return lower + 1.0f;
  if (diff < 0.5f) return lower;
  return std::fmod(lower, 2.0f) == 0.0f ? lower : lower + 1.0f;
}

// y = saturate(round(acc * multiplier) + y_zp), in float like ONNX Runtime's reference.
template <typename Y>
Y requantize(int32_t acc, float multiplier, int32_t y_zp) {
  const float lo = static_cast<float>(std::numeric_limits<Y>::min());
  const float hi = static_cast<float>(std::numeric_limits<Y>::max());
  const float q = round_half_to_even(static_cast<float>(acc) * multiplier) + static_cast<float>(y_zp);
  return static_cast<Y>(std::clamp(q, lo, hi));  // clamp also tames +-inf
}

}  // namespace qplay::ref
