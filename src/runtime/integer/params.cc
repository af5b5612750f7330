#include "runtime/integer/params.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "runtime/kernels/reference/common.h"

namespace qplay::integer {
namespace {

std::string float_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

const Tensor& need(const Node& node, const Inputs& in, size_t i, const char* role) {
  if (i >= in.size() || in[i] == nullptr)
    ref::fail(node, std::string("missing required input #") + std::to_string(i) + " (" + role + ")");
  return *in[i];
}

const Tensor* optional_input(const Inputs& in, size_t i) { return i < in.size() ? in[i] : nullptr; }

// A scale: float32, finite, > 0; one value, or `channels` values when channels > 0.
std::vector<float> scales(const Node& node, const Tensor& t, const char* role, int64_t channels) {
  ref::expect_dtype(node, t, DType::f32, role);
  const bool per_channel = channels > 0 && t.rank() == 1 && t.numel() == channels && channels != 1;
  if (t.numel() != 1 && !per_channel)
    ref::fail(node, std::string(role) + " has shape " + shape_str(t.shape) + ", expected a scalar" +
                        (channels > 0 ? " or [" + std::to_string(channels) + "]" : std::string()));
  std::vector<float> v(static_cast<size_t>(std::max<int64_t>(channels, 1)));
  for (size_t c = 0; c < v.size(); ++c) {
    v[c] = t.data<float>()[per_channel ? c : 0];
    if (!std::isfinite(v[c]) || !(v[c] > 0.0f))
      ref::fail(node, std::string(role) + " = " + float_str(v[c]) + " is invalid (must be finite and > 0)");
  }
  return v;
}

float scalar_scale(const Node& node, const Tensor& t, const char* role) { return scales(node, t, role, 0)[0]; }

// A zero point: uint8 or int8 (of `dtype` when given); one value, or `channels` values.
std::vector<int32_t> zero_points(const Node& node, const Tensor& t, const char* role, int64_t channels) {
  if (!is_8bit(t.dtype))
    ref::fail(node, std::string(role) + " has type " + dtype_name(t.dtype) + ", expected uint8 or int8");
  const bool per_channel = channels > 0 && t.rank() == 1 && t.numel() == channels && channels != 1;
  if (t.numel() != 1 && !per_channel)
    ref::fail(node, std::string(role) + " has shape " + shape_str(t.shape) + ", expected a scalar" +
                        (channels > 0 ? " or [" + std::to_string(channels) + "]" : std::string()));
  std::vector<int32_t> v(static_cast<size_t>(std::max<int64_t>(channels, 1)));
  for (size_t c = 0; c < v.size(); ++c) v[c] = static_cast<int32_t>(t.at_as_double(per_channel ? c : 0));
  return v;
}

int32_t scalar_zero_point(const Node& node, const Tensor& t, const char* role) {
  return zero_points(node, t, role, 0)[0];
}

void expect_same_type(const Node& node, const Tensor& value, const Tensor& zero_point, const char* value_role,
                      const char* zp_role) {
  if (value.dtype != zero_point.dtype)
    ref::fail(node, std::string(value_role) + " has type " + dtype_name(value.dtype) + " but " + zp_role +
                        " has type " + dtype_name(zero_point.dtype));
}

// Bias: int32, one value per output channel (or one value for all).
std::vector<int32_t> bias_values(const Node& node, const Tensor* bias, int64_t channels) {
  std::vector<int32_t> v(static_cast<size_t>(channels), 0);
  if (bias == nullptr) return v;
  ref::expect_dtype(node, *bias, DType::i32, "bias");
  if (!(bias->numel() == channels && bias->rank() == 1) && bias->numel() != 1)
    ref::fail(node, "bias has shape " + shape_str(bias->shape) + ", expected [" + std::to_string(channels) + "]");
  for (int64_t c = 0; c < channels; ++c) v[c] = bias->data<int32_t>()[bias->numel() == 1 ? 0 : c];
  return v;
}

// Calls f(T{}) with T the C++ type of an 8-bit dtype (callers have checked it).
template <typename F>
void visit_8bit(DType t, F&& f) {
  if (t == DType::u8)
    f(uint8_t{});
  else
    f(int8_t{});
}

// Largest |q - zero_point| an 8-bit value of type `t` can have.
int64_t max_deviation(DType t, int32_t zero_point) {
  const int64_t lo = t == DType::u8 ? 0 : -128, hi = t == DType::u8 ? 255 : 127;
  return std::max(zero_point - lo, hi - zero_point);
}

// Eq. (4): proves sum_k |x - x_zp| |w - w_zp| + |bias| fits in int32 for output channel c,
// so the int32 accumulation of the fast kernels is exact. `weight(c, k)` reads (w - w_zp).
template <typename WeightDeviation>
void check_accumulator_bound(const Node& node, int64_t channels, int64_t depth, int64_t x_deviation,
                             const std::vector<int32_t>& bias, WeightDeviation weight) {
  for (int64_t c = 0; c < channels; ++c) {
    int64_t bound = std::abs(static_cast<int64_t>(bias[c]));
    for (int64_t k = 0; k < depth; ++k) bound += x_deviation * std::abs(static_cast<int64_t>(weight(c, k)));
    if (bound > std::numeric_limits<int32_t>::max())
      ref::fail(node, "the int32 accumulator of output channel " + std::to_string(c) + " can reach " +
                          std::to_string(bound) + " (|bias| + sum |x - x_zp||w - w_zp| over " + std::to_string(depth) +
                          " products), which overflows int32");
  }
}

// Reads an ints attribute with one value per spatial dim (2-D), each >= min_value.
std::vector<int64_t> pair_attr(const Node& node, const char* key, int64_t fallback, int64_t min_value) {
  std::vector<int64_t> v = node.attr_ints(key, {fallback, fallback});
  if (v.size() != 2) ref::fail(node, std::string(key) + " " + shape_str(v) + " must have 2 values (2-D only)");
  for (int64_t x : v)
    if (x < min_value)
      ref::fail(node, std::string(key) + " " + shape_str(v) + " must be >= " + std::to_string(min_value));
  return v;
}

// Output size and begin/end pads of one spatial dim under pads/auto_pad (as ONNX Conv/AveragePool).
struct DimWindow {
  int64_t pad_begin = 0, pad_end = 0, out = 0;
};

std::vector<DimWindow> resolve_windows(const Node& node, const int64_t in[2], const int64_t kernel[2],
                                       const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations) {
  std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (auto_pad.empty()) auto_pad = "NOTSET";
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    ref::fail(node, "unsupported auto_pad '" + auto_pad + "'");
  std::vector<int64_t> pads(4, 0);
  if (auto_pad == "NOTSET") {
    pads = node.attr_ints("pads", pads);
    if (pads.size() != 4) ref::fail(node, "pads " + shape_str(pads) + " must have 4 values (2-D only)");
    for (int64_t p : pads)
      if (p < 0) ref::fail(node, "pads " + shape_str(pads) + " must be non-negative");
  }
  std::vector<DimWindow> dims(2);
  for (int d = 0; d < 2; ++d) {
    const int64_t extent = (kernel[d] - 1) * dilations[d] + 1;
    DimWindow& w = dims[d];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out = (in[d] + strides[d] - 1) / strides[d];
      const int64_t total = std::max<int64_t>(0, (w.out - 1) * strides[d] + extent - in[d]);
      w.pad_begin = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end = total - w.pad_begin;
    } else {
      w.pad_begin = pads[d];
      w.pad_end = pads[2 + d];
      const int64_t span = in[d] + w.pad_begin + w.pad_end - extent;
      if (span < 0)
        ref::fail(node, "kernel extent " + std::to_string(extent) + " exceeds padded input size " +
                            std::to_string(in[d] + w.pad_begin + w.pad_end) + " in spatial dim " + std::to_string(d));
      w.out = span / strides[d] + 1;
    }
  }
  return dims;
}

}  // namespace

bool is_8bit(DType t) { return t == DType::u8 || t == DType::i8; }

OutputStage output_stage(DType dtype, int32_t zero_point, bool relu) {
  OutputStage s;
  s.dtype = dtype;
  s.zero_point = zero_point;
  s.lo = dtype == DType::u8 ? 0 : -128;
  s.hi = dtype == DType::u8 ? 255 : 127;
  if (relu) s.lo = std::max(s.lo, zero_point);  // eq. (9): Relu then quantize = clamp at the zero point
  return s;
}

// ---- QConv ---------------------------------------------------------------------------------

ConvGeometry conv_geometry(const Node& node, const Shape& x, const Shape& w) {
  if (x.size() != 4)
    ref::fail(node, "input x has shape " + shape_str(x) + "; expected [N, C, H, W] (2-D convolution only)");
  if (w.size() != 4) ref::fail(node, "weight w has shape " + shape_str(w) + "; expected [M, C/group, kH, kW]");
  ConvGeometry g;
  g.batch = x[0];
  g.in_channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.out_channels = w[0];
  g.kernel_h = w[2];
  g.kernel_w = w[3];
  g.group = node.attr_int("group", 1);
  if (g.group < 1) ref::fail(node, "group must be >= 1, got " + std::to_string(g.group));
  if (g.in_channels % g.group != 0 || g.out_channels % g.group != 0 || w[1] * g.group != g.in_channels)
    ref::fail(node, "channel mismatch: input x " + shape_str(x) + ", weight w " + shape_str(w) + ", group " +
                        std::to_string(g.group));
  if (g.kernel_h < 1 || g.kernel_w < 1) ref::fail(node, "weight w has an empty kernel: " + shape_str(w));
  if (node.has_attr("kernel_shape") && node.attr_ints("kernel_shape") != std::vector<int64_t>{g.kernel_h, g.kernel_w})
    ref::fail(node,
              "kernel_shape " + shape_str(node.attr_ints("kernel_shape")) + " does not match weight w " + shape_str(w));
  const auto strides = pair_attr(node, "strides", 1, 1);
  const auto dilations = pair_attr(node, "dilations", 1, 1);
  const int64_t in[2] = {g.in_h, g.in_w}, kernel[2] = {g.kernel_h, g.kernel_w};
  const auto dims = resolve_windows(node, in, kernel, strides, dilations);
  g.stride_h = strides[0];
  g.stride_w = strides[1];
  g.dilation_h = dilations[0];
  g.dilation_w = dilations[1];
  g.pad_top = dims[0].pad_begin;
  g.pad_bottom = dims[0].pad_end;
  g.pad_left = dims[1].pad_begin;
  g.pad_right = dims[1].pad_end;
  g.out_h = dims[0].out;
  g.out_w = dims[1].out;
  if (g.out_h < 1 || g.out_w < 1) ref::fail(node, "empty output for input x " + shape_str(x));
  return g;
}

QConvQuant make_qconv_quant(const Node& node, const Inputs& in) {
  const Tensor& x_scale = need(node, in, 1, "x_scale");
  const Tensor& x_zp = need(node, in, 2, "x_zero_point");
  const Tensor& w = need(node, in, 3, "w");
  const Tensor& w_scale = need(node, in, 4, "w_scale");
  const Tensor& w_zp = need(node, in, 5, "w_zero_point");
  const Tensor& y_scale = need(node, in, 6, "y_scale");
  const Tensor& y_zp = need(node, in, 7, "y_zero_point");
  const Tensor* bias = optional_input(in, 8);
  if (w.rank() != 4) ref::fail(node, "weight w has shape " + shape_str(w.shape) + "; expected [M, C/group, kH, kW]");
  const int64_t m_count = w.shape[0];
  const int64_t depth = w.numel() / std::max<int64_t>(m_count, 1);  // C/group * kH * kW

  QConvQuant q;
  q.x_zero_point = scalar_zero_point(node, x_zp, "x_zero_point");
  if (in[0] != nullptr) expect_same_type(node, *in[0], x_zp, "input x", "x_zero_point");
  q.w_zero_point = zero_points(node, w_zp, "w_zero_point", m_count);
  expect_same_type(node, w, w_zp, "weight w", "w_zero_point");
  q.bias = bias_values(node, bias, m_count);
  const float xs = scalar_scale(node, x_scale, "x_scale");
  const std::vector<float> ws = scales(node, w_scale, "w_scale", m_count);
  const float ys = scalar_scale(node, y_scale, "y_scale");
  q.out = output_stage(y_zp.dtype, scalar_zero_point(node, y_zp, "y_zero_point"), node.attr_int("relu", 0) != 0);
  for (int64_t m = 0; m < m_count; ++m)
    q.out.multiplier.push_back(quantize_multiplier(double{xs} * double{ws[m]} / double{ys}));  // eq. (5)

  visit_8bit(w.dtype, [&](auto tag) {
    using W = decltype(tag);
    const W* wp = w.data<W>();
    check_accumulator_bound(node, m_count, depth, max_deviation(x_zp.dtype, q.x_zero_point), q.bias,
                            [&](int64_t m, int64_t k) { return int64_t{wp[m * depth + k]} - q.w_zero_point[m]; });
  });
  return q;
}

// ---- QGemm ---------------------------------------------------------------------------------

GemmGeometry gemm_geometry(const Node& node, const Shape& a, const Shape& b) {
  if (a.empty()) ref::fail(node, "input a is a scalar; expected rank >= 1");
  if (b.size() != 2) ref::fail(node, "input b has shape " + shape_str(b) + "; expected a matrix");
  GemmGeometry g;
  g.trans_b = node.attr_int("transB", 0) != 0;
  g.depth = a.back();
  g.cols = g.trans_b ? b[0] : b[1];
  const int64_t b_depth = g.trans_b ? b[1] : b[0];
  if (b_depth != g.depth)
    ref::fail(node,
              "inner dimensions differ: a " + shape_str(a) + ", b " + shape_str(b) + (g.trans_b ? " (transB)" : ""));
  g.rows = 1;
  for (size_t i = 0; i + 1 < a.size(); ++i) g.rows *= a[i];
  g.out_shape.assign(a.begin(), a.end() - 1);
  g.out_shape.push_back(g.cols);
  return g;
}

QGemmQuant make_qgemm_quant(const Node& node, const Inputs& in) {
  const Tensor& a_scale = need(node, in, 1, "a_scale");
  const Tensor& a_zp = need(node, in, 2, "a_zero_point");
  const Tensor& b = need(node, in, 3, "b");
  const Tensor& b_scale = need(node, in, 4, "b_scale");
  const Tensor& b_zp = need(node, in, 5, "b_zero_point");
  const Tensor* bias = optional_input(in, 6);
  const Tensor* y_scale = optional_input(in, 7);
  const Tensor* y_zp = optional_input(in, 8);
  if (b.rank() != 2) ref::fail(node, "input b has shape " + shape_str(b.shape) + "; expected a matrix");
  const bool trans_b = node.attr_int("transB", 0) != 0;
  const int64_t cols = trans_b ? b.shape[0] : b.shape[1];
  const int64_t depth = trans_b ? b.shape[1] : b.shape[0];
  if ((y_scale == nullptr) != (y_zp == nullptr)) ref::fail(node, "y_scale and y_zero_point must be given together");

  QGemmQuant q;
  q.a_zero_point = scalar_zero_point(node, a_zp, "a_zero_point");
  if (in[0] != nullptr) expect_same_type(node, *in[0], a_zp, "input a", "a_zero_point");
  q.b_zero_point = zero_points(node, b_zp, "b_zero_point", cols);
  expect_same_type(node, b, b_zp, "input b", "b_zero_point");
  q.bias = bias_values(node, bias, cols);
  const float as = scalar_scale(node, a_scale, "a_scale");
  const std::vector<float> bs = scales(node, b_scale, "b_scale", cols);
  q.float_output = y_scale == nullptr;
  if (q.float_output) {
    for (int64_t n = 0; n < cols; ++n) q.dequant_scale.push_back(as * bs[n]);  // float32 product, as ONNX Runtime
  } else {
    const float ys = scalar_scale(node, *y_scale, "y_scale");
    q.out = output_stage(y_zp->dtype, scalar_zero_point(node, *y_zp, "y_zero_point"), node.attr_int("relu", 0) != 0);
    for (int64_t n = 0; n < cols; ++n)
      q.out.multiplier.push_back(quantize_multiplier(double{as} * double{bs[n]} / double{ys}));
  }
  visit_8bit(b.dtype, [&](auto tag) {
    using B = decltype(tag);
    const B* bp = b.data<B>();
    check_accumulator_bound(
        node, cols, depth, max_deviation(a_zp.dtype, q.a_zero_point), q.bias,
        [&](int64_t n, int64_t k) { return int64_t{bp[trans_b ? n * depth + k : k * cols + n]} - q.b_zero_point[n]; });
  });
  return q;
}

// ---- QAdd ----------------------------------------------------------------------------------

QAddQuant make_qadd_quant(const Node& node, const Inputs& in) {
  const float as = scalar_scale(node, need(node, in, 1, "a_scale"), "a_scale");
  const Tensor& a_zp = need(node, in, 2, "a_zero_point");
  const float bs = scalar_scale(node, need(node, in, 4, "b_scale"), "b_scale");
  const Tensor& b_zp = need(node, in, 5, "b_zero_point");
  const float ys = scalar_scale(node, need(node, in, 6, "y_scale"), "y_scale");
  const Tensor& y_zp = need(node, in, 7, "y_zero_point");
  QAddQuant q;
  q.a_zero_point = scalar_zero_point(node, a_zp, "a_zero_point");
  q.b_zero_point = scalar_zero_point(node, b_zp, "b_zero_point");
  if (in[0] != nullptr) expect_same_type(node, *in[0], a_zp, "input a", "a_zero_point");
  if (in[3] != nullptr) expect_same_type(node, *in[3], b_zp, "input b", "b_zero_point");
  // Eq. (11): both inputs go to the common scale 2 max(s_a, s_b) / 2^20; their multipliers are <= 1/2.
  const double twice_max = 2.0 * std::max<double>(as, bs);
  q.a_multiplier = quantize_multiplier(as / twice_max);
  q.b_multiplier = quantize_multiplier(bs / twice_max);
  q.out = output_stage(y_zp.dtype, scalar_zero_point(node, y_zp, "y_zero_point"), node.attr_int("relu", 0) != 0);
  q.out.multiplier.push_back(quantize_multiplier(twice_max / (double(1 << kAddLeftShift) * ys)));  // eq. (13)
  return q;
}

// ---- pools ---------------------------------------------------------------------------------

PoolGeometry pool_geometry(const Node& node, const Shape& x) {
  PoolGeometry g;
  if (node.op_type == "QGlobalAveragePool") {
    if (x.size() < 3) ref::fail(node, "input x has shape " + shape_str(x) + "; expected [N, C, spatial...]");
    g.batch = x[0];
    g.channels = x[1];
    g.in_h = 1;
    g.in_w = 1;
    for (size_t d = 2; d < x.size(); ++d) g.in_w *= x[d];
    if (g.in_w < 1) ref::fail(node, "input x " + shape_str(x) + " has no spatial elements");
    g.kernel_h = 1;
    g.kernel_w = g.in_w;
    g.out_h = g.out_w = 1;
    g.count_include_pad = true;
    g.out_shape = Shape(x.size(), 1);
    g.out_shape[0] = g.batch;
    g.out_shape[1] = g.channels;
    return g;
  }
  if (x.size() != 4)
    ref::fail(node, "input x has shape " + shape_str(x) + "; expected [N, C, H, W] (2-D pooling only)");
  g.batch = x[0];
  g.channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  if (kernel.size() != 2 || kernel[0] < 1 || kernel[1] < 1)
    ref::fail(node, "kernel_shape " + shape_str(kernel) + " must have 2 positive values (2-D only)");
  if (node.attr_int("ceil_mode", 0) != 0) ref::fail(node, "ceil_mode=1 is not supported");
  const auto strides = pair_attr(node, "strides", 1, 1);
  if (node.has_attr("dilations") && node.attr_ints("dilations") != std::vector<int64_t>{1, 1})
    ref::fail(node, "dilations " + shape_str(node.attr_ints("dilations")) + " are not supported");
  const int64_t in[2] = {g.in_h, g.in_w}, k[2] = {kernel[0], kernel[1]};
  const auto dims = resolve_windows(node, in, k, strides, {1, 1});
  g.kernel_h = kernel[0];
  g.kernel_w = kernel[1];
  g.stride_h = strides[0];
  g.stride_w = strides[1];
  g.pad_top = dims[0].pad_begin;
  g.pad_left = dims[1].pad_begin;
  g.out_h = dims[0].out;
  g.out_w = dims[1].out;
  g.count_include_pad = node.attr_int("count_include_pad", 0) != 0;
  if (g.out_h < 1 || g.out_w < 1) ref::fail(node, "empty output for input x " + shape_str(x));
  g.out_shape = {g.batch, g.channels, g.out_h, g.out_w};
  return g;
}

QPoolQuant make_qpool_quant(const Node& node, const Inputs& in, int64_t max_count) {
  const Tensor& x_zp = need(node, in, 2, "x_zero_point");
  const float xs = scalar_scale(node, need(node, in, 1, "x_scale"), "x_scale");
  const float ys = scalar_scale(node, need(node, in, 3, "y_scale"), "y_scale");
  const Tensor& y_zp = need(node, in, 4, "y_zero_point");
  QPoolQuant q;
  q.x_zero_point = scalar_zero_point(node, x_zp, "x_zero_point");
  if (in[0] != nullptr) expect_same_type(node, *in[0], x_zp, "input x", "x_zero_point");
  if (max_count > (int64_t{1} << 23))
    ref::fail(node, "pooling window of " + std::to_string(max_count) + " elements is too large for an int32 sum");
  q.out = output_stage(y_zp.dtype, scalar_zero_point(node, y_zp, "y_zero_point"), node.attr_int("relu", 0) != 0);
  q.out.multiplier.resize(static_cast<size_t>(max_count + 1));  // index = number of elements averaged
  for (int64_t count = 1; count <= max_count; ++count)
    q.out.multiplier[count] = quantize_multiplier(double{xs} / (double(count) * double{ys}));  // eq. (14)
  return q;
}

}  // namespace qplay::integer
