// Reference kernels for QuantizeLinear and DequantizeLinear (ONNX opsets 10-21, 8-bit and int32
// types, per-tensor and per-axis; blocked quantization and float8/int4 types are rejected).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>

#include "runtime/kernels/reference/common.h"

namespace qplay {
namespace {

std::string float_str(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

// ONNX TensorProto.DataType codes accepted in QuantizeLinear's opset-21 `output_dtype` attribute.
constexpr int64_t onnx_uint8 = 2;
constexpr int64_t onnx_int8 = 3;

// How the scale (and zero point) map onto x. x is viewed as [outer, channels, inner]:
// per tensor, channels = 1 and the single parameter applies everywhere; per axis, element
// (o, c, i) uses parameter c, with channels = x.shape[axis].
struct ParamLayout {
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
};

// Validates scale (float32, finite, > 0; scalar/1-element or 1-D along `axis`) and the optional
// zero point (same shape as the scale), and returns the layout.
ParamLayout resolve_layout(const Node& node, const Tensor& x, const Tensor& scale, const Tensor* zero_point) {
  if (node.attr_int("block_size", 0) != 0)
    ref::fail(node, "blocked quantization (block_size=" + std::to_string(node.attr_int("block_size", 0)) +
                        ") is not supported");
  ref::expect_dtype(node, scale, DType::f32, "scale");
  for (int64_t i = 0; i < scale.numel(); ++i) {
    const float s = scale.data<float>()[i];
    if (!std::isfinite(s) || !(s > 0.0f))
      ref::fail(node, "scale[" + std::to_string(i) + "] = " + float_str(s) + " is invalid (must be finite and > 0)");
  }

  ParamLayout layout;
  const bool per_tensor = scale.rank() <= 1 && scale.numel() == 1;
  if (per_tensor) {
    if (zero_point && (zero_point->rank() > 1 || zero_point->numel() != 1))
      ref::fail(node, "zero point has shape " + shape_str(zero_point->shape) + " but the scale is per-tensor " +
                          shape_str(scale.shape));
    layout.outer = 1;
    layout.channels = 1;
    layout.inner = x.numel();
    return layout;
  }

  if (scale.rank() != 1)
    ref::fail(node, "scale has shape " + shape_str(scale.shape) + "; expected a scalar or a 1-D per-axis scale");
  const int64_t rank = static_cast<int64_t>(x.rank());
  const size_t axis = static_cast<size_t>(ref::normalize_axis(node, node.attr_int("axis", 1), rank));
  if (scale.shape[0] != x.shape[axis])
    ref::fail(node, "per-axis scale has " + std::to_string(scale.shape[0]) + " elements but axis " +
                        std::to_string(axis) + " of input " + shape_str(x.shape) + " has size " +
                        std::to_string(x.shape[axis]));
  if (zero_point && zero_point->shape != scale.shape)
    ref::fail(node, "zero point has shape " + shape_str(zero_point->shape) + ", expected the scale's shape " +
                        shape_str(scale.shape));
  for (size_t k = 0; k < axis; ++k) layout.outer *= x.shape[k];
  layout.channels = x.shape[axis];
  for (size_t k = axis + 1; k < x.rank(); ++k) layout.inner *= x.shape[k];
  return layout;
}

// y = saturate(round_half_to_even(x / scale) + zero_point), with x / scale computed in float32
// (a true division, not a multiplication by 1/scale) and rounded by std::nearbyint under the
// default round-to-nearest-even mode. NaN has no quantized value and maps to the zero point.
template <typename Q>
Q quantize_value(float x, float scale, Q zero_point) {
  const float q = x / scale;
  if (std::isnan(q)) return zero_point;
  const float shifted = std::nearbyint(q) + static_cast<float>(zero_point);
  const float lo = static_cast<float>(std::numeric_limits<Q>::lowest());
  const float hi = static_cast<float>(std::numeric_limits<Q>::max());
  return static_cast<Q>(std::clamp(shifted, lo, hi));
}

template <typename X, typename Q>
void quantize_all(const Tensor& x, const Tensor& scale, const Tensor* zero_point, const ParamLayout& layout,
                  Tensor& y) {
  const X* px = x.data<X>();
  const float* ps = scale.data<float>();
  Q* py = y.data<Q>();
  for (int64_t o = 0; o < layout.outer; ++o) {
    for (int64_t c = 0; c < layout.channels; ++c) {
      const float s = ps[c];
      const Q zp = zero_point ? zero_point->data<Q>()[c] : Q{0};
      const int64_t base = (o * layout.channels + c) * layout.inner;
      for (int64_t i = 0; i < layout.inner; ++i)
        py[base + i] = quantize_value<Q>(static_cast<float>(px[base + i]), s, zp);
    }
  }
}

// QuantizeLinear(x, y_scale, y_zero_point?) -> y. x is float32 (or int32); y has the zero
// point's type, uint8 or int8 (uint8 when there is no zero point, unless the opset-21
// output_dtype attribute says int8).
void quantize_linear_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const Tensor& scale = ref::need_input(node, inputs, 1);
  const Tensor* zero_point = inputs.size() > 2 ? inputs[2] : nullptr;

  if (x.dtype != DType::f32 && x.dtype != DType::i32)
    ref::fail(node, std::string("input x has type ") + dtype_name(x.dtype) + ", expected float32 or int32");

  DType out_type = DType::u8;
  const int64_t output_dtype = node.attr_int("output_dtype", 0);
  if (output_dtype == onnx_uint8) out_type = DType::u8;
  else if (output_dtype == onnx_int8) out_type = DType::i8;
  else if (output_dtype != 0)
    ref::fail(node, "output_dtype " + std::to_string(output_dtype) + " is not supported (only uint8 and int8)");
  if (zero_point) {
    if (zero_point->dtype != DType::u8 && zero_point->dtype != DType::i8)
      ref::fail(node, std::string("zero point has type ") + dtype_name(zero_point->dtype) +
                          ", expected uint8 or int8");
    if (output_dtype != 0 && zero_point->dtype != out_type)
      ref::fail(node, std::string("zero point type ") + dtype_name(zero_point->dtype) +
                          " disagrees with output_dtype " + dtype_name(out_type));
    out_type = zero_point->dtype;
  }

  const ParamLayout layout = resolve_layout(node, x, scale, zero_point);
  Tensor& y = ref::first_output(node, outputs);
  y.reset(out_type, x.shape);
  const auto run = [&](auto x_tag) {
    using X = decltype(x_tag);
    if (out_type == DType::u8) quantize_all<X, uint8_t>(x, scale, zero_point, layout, y);
    else quantize_all<X, int8_t>(x, scale, zero_point, layout, y);
  };
  if (x.dtype == DType::f32) run(float{});
  else run(int32_t{});
}

// y = (x - zero_point) * scale, the subtraction exact in int32 and the product in float32.
template <typename Q>
void dequantize_all(const Tensor& x, const Tensor& scale, const Tensor* zero_point, const ParamLayout& layout,
                    Tensor& y) {
  const Q* px = x.data<Q>();
  const float* ps = scale.data<float>();
  float* py = y.data<float>();
  for (int64_t o = 0; o < layout.outer; ++o) {
    for (int64_t c = 0; c < layout.channels; ++c) {
      const float s = ps[c];
      const int32_t zp = zero_point ? static_cast<int32_t>(zero_point->data<Q>()[c]) : 0;
      const int64_t base = (o * layout.channels + c) * layout.inner;
      for (int64_t i = 0; i < layout.inner; ++i)
        py[base + i] = static_cast<float>(static_cast<int32_t>(px[base + i]) - zp) * s;
    }
  }
}

// DequantizeLinear(x, x_scale, x_zero_point?) -> float32 y. x is uint8, int8 or int32; the
// zero point (default 0) has x's type, and must be 0 for int32.
void dequantize_linear_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const Tensor& scale = ref::need_input(node, inputs, 1);
  const Tensor* zero_point = inputs.size() > 2 ? inputs[2] : nullptr;

  if (x.dtype != DType::u8 && x.dtype != DType::i8 && x.dtype != DType::i32)
    ref::fail(node, std::string("input x has type ") + dtype_name(x.dtype) + ", expected uint8, int8 or int32");
  if (zero_point) {
    ref::expect_dtype(node, *zero_point, x.dtype, "zero point");
    if (x.dtype == DType::i32)
      for (int64_t i = 0; i < zero_point->numel(); ++i)
        if (zero_point->data<int32_t>()[i] != 0)
          ref::fail(node, "int32 zero point[" + std::to_string(i) + "] = " +
                              std::to_string(zero_point->data<int32_t>()[i]) + " must be 0");
  }

  const ParamLayout layout = resolve_layout(node, x, scale, zero_point);
  Tensor& y = ref::first_output(node, outputs);
  y.reset(DType::f32, x.shape);
  switch (x.dtype) {
    case DType::u8: dequantize_all<uint8_t>(x, scale, zero_point, layout, y); break;
    case DType::i8: dequantize_all<int8_t>(x, scale, zero_point, layout, y); break;
    default: dequantize_all<int32_t>(x, scale, zero_point, layout, y); break;
  }
}

}  // namespace

void register_quantize_ops(std::vector<OpSpec>& table) {
  //                op_type             domain min max opset kernel
  table.push_back({"QuantizeLinear", "", 2, 3, 10, quantize_linear_kernel});
  table.push_back({"DequantizeLinear", "", 2, 3, 10, dequantize_linear_kernel});
}

}  // namespace qplay
