// Reference kernels for AveragePool, MaxPool and GlobalAveragePool: plain loops.
//
// For batch n, channel c and output position o, the window covers the input positions
//   p[d] = o[d] * stride[d] - pad_begin[d] + k[d] * dilation[d],   0 <= k[d] < kernel[d]
// MaxPool takes the max over the positions inside the input (padding never wins);
// AveragePool divides the sum over those positions by either their count
// (count_include_pad=0) or the count of positions inside the explicitly padded input
// (count_include_pad=1; the extra overhang that ceil_mode adds is never counted).
#include <algorithm>
#include <limits>

#include "runtime/kernels/reference/common.h"
#include "runtime/kernels/reference/window.h"

namespace qplay {
namespace {

// Checks X [N, C, D1..Dn] with 1 to 3 spatial dims.
void check_pool_input(const Node& node, const Tensor& x) {
  if (x.rank() < 3 || x.rank() > 5)
    ref::fail(node, "input X has shape " + shape_str(x.shape) + "; expected rank 3 to 5 (N, C, 1 to 3 spatial dims)");
}

// The pooling window over X's spatial dims; the kernel comes from the required kernel_shape.
ref::Window resolve_pool_window(const Node& node, const Tensor& x) {
  const Shape in(x.shape.begin() + 2, x.shape.end());
  if (!node.has_attr("kernel_shape")) ref::fail(node, "missing required attribute kernel_shape");
  const Shape kernel = ref::per_dim_attr(node, "kernel_shape", in.size(), 1, 1);
  return ref::resolve_window(node, in, kernel, ref::WindowRules::pool);
}

// Runs reduce(channel_data, window, out_pos) for every (n, c, output position) in order,
// writing its result to the output.
template <typename T, typename Reduce>
void pool_loop(const Tensor& x, const ref::Window& w, Tensor& y, Reduce reduce) {
  const int64_t planes = x.shape[0] * x.shape[1];  // independent (n, c) pairs
  const int64_t in_size = shape_numel(w.in);
  const T* src = x.data<T>();
  T* dst = y.data<T>();
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* channel = src + plane * in_size;
    std::vector<int64_t> o(w.out.size(), 0);
    do {
      *dst++ = reduce(channel, o);
    } while (ref::next_index(o, w.out));
  }
}

Shape pool_output_shape(const Tensor& x, const ref::Window& w) {
  Shape out = {x.shape[0], x.shape[1]};
  out.insert(out.end(), w.out.begin(), w.out.end());
  return out;
}

// AveragePool (float32): mean over the window, see the divisor rule at the top.
void average_pool_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = ref::need_input(node, in, 0);
  ref::expect_dtype(node, x, DType::f32, "input X");
  ref::expect(!out.empty(), node, "expected one output");
  check_pool_input(node, x);
  const int64_t count_include_pad = node.attr_int("count_include_pad", 0);
  if (count_include_pad != 0 && count_include_pad != 1) ref::fail(node, "count_include_pad must be 0 or 1");
  const ref::Window w = resolve_pool_window(node, x);

  out[0].reset(DType::f32, pool_output_shape(x, w));
  pool_loop<float>(x, w, out[0], [&](const float* channel, const std::vector<int64_t>& o) {
    double sum = 0;
    int64_t real_taps = 0;
    const int64_t padded_taps = ref::for_each_tap(w, o, [&](int64_t, int64_t i) {
      sum += channel[i];
      ++real_taps;
    });
    const int64_t divisor = count_include_pad ? padded_taps : real_taps;
    if (divisor == 0) ref::fail(node, "a pooling window covers no input element");
    return static_cast<float>(sum / static_cast<double>(divisor));
  });
}

// MaxPool (float32, uint8, int8): max over the window's real input elements.
void max_pool_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = ref::need_input(node, in, 0);
  ref::expect(!out.empty(), node, "expected one output");
  if (x.dtype != DType::f32 && x.dtype != DType::u8 && x.dtype != DType::i8)
    ref::fail(node, std::string("input X has type ") + dtype_name(x.dtype) + ", expected float32, uint8 or int8");
  // The optional Indices output is not supported (an omitted output has an empty name).
  if (out.size() > 1 && !(node.outputs.size() > 1 && node.outputs[1].empty()))
    ref::fail(node, "the Indices output is not supported");
  const int64_t storage_order = node.attr_int("storage_order", 0);
  if (storage_order != 0) ref::fail(node, "storage_order " + std::to_string(storage_order) + " is not supported");
  check_pool_input(node, x);
  const ref::Window w = resolve_pool_window(node, x);

  out[0].reset(x.dtype, pool_output_shape(x, w));
  ref::visit_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    pool_loop<T>(x, w, out[0], [&](const T* channel, const std::vector<int64_t>& o) {
      T best = std::numeric_limits<T>::lowest();
      bool any = false;
      ref::for_each_tap(w, o, [&](int64_t, int64_t i) {
        best = any ? std::max(best, channel[i]) : channel[i];
        any = true;
      });
      if (!any) ref::fail(node, "a pooling window covers no input element");
      return best;
    });
  });
}

// GlobalAveragePool: Y[n, c, 1, ..., 1] = mean of X[n, c, :, ...].
void global_average_pool_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = ref::need_input(node, in, 0);
  ref::expect_dtype(node, x, DType::f32, "input X");
  ref::expect(!out.empty(), node, "expected one output");
  if (x.rank() < 3)
    ref::fail(node, "input X has shape " + shape_str(x.shape) + "; expected rank >= 3 (N, C, spatial dims)");
  const int64_t planes = x.shape[0] * x.shape[1];
  const int64_t size = shape_numel(Shape(x.shape.begin() + 2, x.shape.end()));
  if (size == 0) ref::fail(node, "input X " + shape_str(x.shape) + " has an empty spatial extent");

  Shape y_shape = {x.shape[0], x.shape[1]};
  y_shape.resize(x.rank(), 1);
  out[0].reset(DType::f32, y_shape);
  const float* src = x.data<float>();
  float* dst = out[0].data<float>();
  for (int64_t plane = 0; plane < planes; ++plane) {
    double sum = 0;
    for (int64_t i = 0; i < size; ++i) sum += src[plane * size + i];
    dst[plane] = static_cast<float>(sum / static_cast<double>(size));
  }
}

}  // namespace

void register_pool_ops(std::vector<OpSpec>& table) {
  table.push_back({"AveragePool", "", 1, 1, 1, average_pool_kernel});
  table.push_back({"MaxPool", "", 1, 1, 1, max_pool_kernel});
  table.push_back({"GlobalAveragePool", "", 1, 1, 1, global_average_pool_kernel});
}

}  // namespace qplay
