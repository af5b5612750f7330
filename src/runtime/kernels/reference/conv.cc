// Reference kernels for Conv and QLinearConv: the specification, written as plain loops.
//
// Both ops share one loop. For batch n, output channel m (in group g) and output position o:
//   acc[n, m, o] = sum over input channels c of group g, kernel taps k:
//                    (x[n, c, o * stride - pad_begin + k * dilation] - x_zp) * (w[m, c, k] - w_zp[m])
// Taps that land in the padding contribute nothing (zero padding). Conv adds the float bias;
// QLinearConv adds the int32 bias and requantizes the accumulator.
#include "runtime/kernels/reference/common.h"
#include "runtime/kernels/reference/quant_math.h"
#include "runtime/kernels/reference/window.h"

namespace qplay {
namespace {

// The validated shapes of one convolution.
struct ConvShape {
  int64_t batch = 0, in_channels = 0, out_channels = 0, group = 1;
  ref::Window window;
};

// Checks X [N, C, D1..Dn] against W [M, C/group, k1..kn] and the node's attributes.
ConvShape check_conv_shapes(const Node& node, const Tensor& x, const Tensor& w) {
  if (x.rank() < 3 || x.rank() > 5)
    ref::fail(node, "input X has shape " + shape_str(x.shape) + "; expected rank 3 to 5 (N, C, 1 to 3 spatial dims)");
  if (w.rank() != x.rank())
    ref::fail(node, "weight W has shape " + shape_str(w.shape) + " but input X has shape " + shape_str(x.shape) +
                        "; ranks must match");
  ConvShape s;
  s.batch = x.shape[0];
  s.in_channels = x.shape[1];
  s.out_channels = w.shape[0];
  s.group = node.attr_int("group", 1);
  if (s.group < 1) ref::fail(node, "group must be >= 1, got " + std::to_string(s.group));
  if (s.in_channels % s.group != 0)
    ref::fail(node, "input channels " + std::to_string(s.in_channels) + " not divisible by group " +
                        std::to_string(s.group));
  if (s.out_channels % s.group != 0)
    ref::fail(node, "output channels " + std::to_string(s.out_channels) + " not divisible by group " +
                        std::to_string(s.group));
  if (w.shape[1] * s.group != s.in_channels)
    ref::fail(node, "channel mismatch: weight W " + shape_str(w.shape) + " expects " +
                        std::to_string(w.shape[1] * s.group) + " input channels (group " + std::to_string(s.group) +
                        "), input X " + shape_str(x.shape) + " has " + std::to_string(s.in_channels));

  const Shape in_spatial(x.shape.begin() + 2, x.shape.end());
  const Shape kernel(w.shape.begin() + 2, w.shape.end());
  for (int64_t k : kernel)
    if (k < 1) ref::fail(node, "weight W has an empty kernel: " + shape_str(w.shape));
  if (node.has_attr("kernel_shape") && node.attr_ints("kernel_shape") != kernel)
    ref::fail(node, "kernel_shape " + shape_str(node.attr_ints("kernel_shape")) + " does not match weight W " +
                        shape_str(w.shape));
  s.window = ref::resolve_window(node, in_spatial, kernel, ref::WindowRules::conv);
  return s;
}

Shape conv_output_shape(const ConvShape& s) {
  Shape out = {s.batch, s.out_channels};
  out.insert(out.end(), s.window.out.begin(), s.window.out.end());
  return out;
}

// The shared convolution loop. For each output element calls emit(m, acc), in row-major
// output order, where acc = sum (x - x_zp) * (w - w_zp[m]) over the window (see file top).
// Acc is double for float convolution, int64_t for quantized (exact; callers narrow it).
template <typename Acc, typename X, typename W, typename Emit>
void conv_loop(const ConvShape& s, const X* x, Acc x_zp, const W* w, const std::vector<Acc>& w_zp, Emit emit) {
  const ref::Window& win = s.window;
  const int64_t in_size = shape_numel(win.in);
  const int64_t kernel_size = shape_numel(win.kernel);
  const int64_t group_in = s.in_channels / s.group;     // input channels seen by each filter
  const int64_t group_out = s.out_channels / s.group;   // filters per group
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t m = 0; m < s.out_channels; ++m) {
      const int64_t first_c = (m / group_out) * group_in;  // first input channel of m's group
      const X* x_block = x + (n * s.in_channels + first_c) * in_size;
      const W* w_block = w + m * group_in * kernel_size;
      std::vector<int64_t> o(win.out.size(), 0);
      do {
        Acc acc = 0;
        ref::for_each_tap(win, o, [&](int64_t k, int64_t i) {
          for (int64_t c = 0; c < group_in; ++c)
            acc += (static_cast<Acc>(x_block[c * in_size + i]) - x_zp) *
                   (static_cast<Acc>(w_block[c * kernel_size + k]) - w_zp[m]);
        });
        emit(m, acc);
      } while (ref::next_index(o, win.out));
    }
  }
}

// Conv: Y = conv(X, W) + B, float32.
void conv_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = ref::need_input(node, in, 0);
  const Tensor& w = ref::need_input(node, in, 1);
  const Tensor* b = in.size() > 2 ? in[2] : nullptr;
  ref::expect_dtype(node, x, DType::f32, "input X");
  ref::expect_dtype(node, w, DType::f32, "weight W");
  ref::expect(!out.empty(), node, "expected one output");
  const ConvShape s = check_conv_shapes(node, x, w);
  if (b) {
    ref::expect_dtype(node, *b, DType::f32, "bias B");
    if (b->rank() != 1 || b->shape[0] != s.out_channels)
      ref::fail(node, "bias B has shape " + shape_str(b->shape) + ", expected [" + std::to_string(s.out_channels) + "]");
  }

  out[0].reset(DType::f32, conv_output_shape(s));
  float* y = out[0].data<float>();
  const std::vector<double> no_zero_points(s.out_channels, 0.0);
  conv_loop<double>(s, x.data<float>(), 0.0, w.data<float>(), no_zero_points, [&](int64_t m, double acc) {
    if (b) acc += b->data<float>()[m];
    *y++ = static_cast<float>(acc);
  });
}

// ---- QLinearConv -------------------------------------------------------------------------

// QLinearConv: int32 acc = sum (x - x_zp)(w - w_zp[m]) + B[m];
// y = saturate(round(acc * x_scale * w_scale[m] / y_scale) + y_zp).
void qlinear_conv_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = ref::need_input(node, in, 0);
  const Tensor& x_scale = ref::need_input(node, in, 1);
  const Tensor& x_zp = ref::need_input(node, in, 2);
  const Tensor& w = ref::need_input(node, in, 3);
  const Tensor& w_scale = ref::need_input(node, in, 4);
  const Tensor& w_zp = ref::need_input(node, in, 5);
  const Tensor& y_scale = ref::need_input(node, in, 6);
  const Tensor& y_zp = ref::need_input(node, in, 7);
  const Tensor* b = in.size() > 8 ? in[8] : nullptr;
  ref::expect(!out.empty(), node, "expected one output");

  if (!ref::is_8bit(x.dtype))
    ref::fail(node, std::string("input x has type ") + dtype_name(x.dtype) + ", expected uint8 or int8");
  if (!ref::is_8bit(w.dtype))
    ref::fail(node, std::string("weight w has type ") + dtype_name(w.dtype) + ", expected uint8 or int8");
  if (!ref::is_8bit(y_zp.dtype))
    ref::fail(node, std::string("y_zero_point has type ") + dtype_name(y_zp.dtype) + ", expected uint8 or int8");
  const ConvShape s = check_conv_shapes(node, x, w);
  const int64_t m_count = s.out_channels;
  ref::check_quant_param(node, x_scale, DType::f32, "x_scale", 0);
  ref::check_quant_param(node, x_zp, x.dtype, "x_zero_point", 0);
  ref::check_quant_param(node, w_scale, DType::f32, "w_scale", m_count);
  ref::check_quant_param(node, w_zp, w.dtype, "w_zero_point", m_count);
  ref::check_quant_param(node, y_scale, DType::f32, "y_scale", 0);
  ref::check_quant_param(node, y_zp, y_zp.dtype, "y_zero_point", 0);
  if (!(y_scale.data<float>()[0] > 0.0f)) ref::fail(node, "y_scale must be positive");
  if (b) {
    ref::expect_dtype(node, *b, DType::i32, "bias B");
    if (b->rank() != 1 || b->shape[0] != m_count)
      ref::fail(node, "bias B has shape " + shape_str(b->shape) + ", expected [" + std::to_string(m_count) + "]");
  }

  // Per output channel: weight zero point and the float multiplier x_scale * w_scale[m] / y_scale.
  std::vector<int64_t> w_zero(m_count);
  std::vector<float> multiplier(m_count);
  for (int64_t m = 0; m < m_count; ++m) {
    w_zero[m] = static_cast<int64_t>(ref::channel_value(w_zp, m));
    multiplier[m] =
        x_scale.data<float>()[0] * static_cast<float>(ref::channel_value(w_scale, m)) / y_scale.data<float>()[0];
  }
  const int64_t x_zero = static_cast<int64_t>(x_zp.at_as_double(0));
  const int32_t y_zero = static_cast<int32_t>(y_zp.at_as_double(0));

  out[0].reset(y_zp.dtype, conv_output_shape(s));
  ref::visit_8bit(x.dtype, [&](auto x_tag) {
    using X = decltype(x_tag);
    ref::visit_8bit(w.dtype, [&](auto w_tag) {
      using W = decltype(w_tag);
      ref::visit_8bit(y_zp.dtype, [&](auto y_tag) {
        using Y = decltype(y_tag);
        Y* y = out[0].data<Y>();
        conv_loop<int64_t>(s, x.data<X>(), x_zero, w.data<W>(), w_zero, [&](int64_t m, int64_t sum) {
          if (b) sum += b->data<int32_t>()[m];
          // ONNX accumulates in int32: summing exactly in int64 and narrowing once gives
          // the same wrap-around result without signed-overflow UB.
          *y++ = ref::requantize<Y>(static_cast<int32_t>(sum), multiplier[m], y_zero);
        });
      });
    });
  });
}

}  // namespace

void register_conv_ops(std::vector<OpSpec>& table) {
  table.push_back({"Conv", "", 2, 3, 1, conv_kernel});
  table.push_back({"QLinearConv", "", 8, 9, 10, qlinear_conv_kernel});
}

}  // namespace qplay
