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

namespace qplay {
namespace {

// Where the sliding windows of one node sit over the spatial dims of its input.
// (Same geometry as conv.cc, plus ceil_mode.)
struct Window {
  Shape in;      // input spatial dims
  Shape kernel;  // kernel spatial dims
  std::vector<int64_t> strides, dilations, pad_begin, pad_end;
  Shape out;     // output spatial dims
};

// Reads an ints attribute that must hold one value per spatial dim (or be absent).
std::vector<int64_t> per_dim_attr(const Node& node, const char* key, size_t dims, int64_t fallback,
                                  int64_t min_value) {
  std::vector<int64_t> v = node.attr_ints(key, std::vector<int64_t>(dims, fallback));
  if (v.size() != dims)
    ref::fail(node, std::string(key) + " " + shape_str(v) + " must have " + std::to_string(dims) + " values");
  for (int64_t x : v)
    if (x < min_value) ref::fail(node, std::string(key) + " " + shape_str(v) + " must be >= " + std::to_string(min_value));
  return v;
}

// Resolves kernel_shape / auto_pad / pads / strides / dilations / ceil_mode into explicit
// window geometry. auto_pad (when not NOTSET) takes precedence over the pads attribute.
Window resolve_window(const Node& node, const Shape& in) {
  const size_t dims = in.size();
  if (!node.has_attr("kernel_shape")) ref::fail(node, "missing required attribute kernel_shape");
  Window w;
  w.in = in;
  w.kernel = per_dim_attr(node, "kernel_shape", dims, 1, 1);
  w.strides = per_dim_attr(node, "strides", dims, 1, 1);
  w.dilations = per_dim_attr(node, "dilations", dims, 1, 1);
  w.pad_begin.assign(dims, 0);
  w.pad_end.assign(dims, 0);
  w.out.assign(dims, 0);
  const int64_t ceil_mode = node.attr_int("ceil_mode", 0);
  if (ceil_mode != 0 && ceil_mode != 1) ref::fail(node, "ceil_mode must be 0 or 1");

  std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (auto_pad.empty()) auto_pad = "NOTSET";
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    ref::fail(node, "unsupported auto_pad '" + auto_pad + "'");

  if (auto_pad == "NOTSET") {
    const std::vector<int64_t> pads = node.attr_ints("pads", std::vector<int64_t>(2 * dims, 0));
    if (pads.size() != 2 * dims)
      ref::fail(node, "pads " + shape_str(pads) + " must have " + std::to_string(2 * dims) + " values");
    // ONNX lists all begin pads, then all end pads. Like ONNX Runtime, a pad must be smaller
    // than the kernel so that no window lies entirely in the padding.
    for (size_t d = 0; d < dims; ++d) {
      w.pad_begin[d] = pads[d];
      w.pad_end[d] = pads[dims + d];
      if (pads[d] < 0 || pads[dims + d] < 0) ref::fail(node, "pads " + shape_str(pads) + " must be non-negative");
      if (pads[d] >= w.kernel[d] || pads[dims + d] >= w.kernel[d])
        ref::fail(node, "pads " + shape_str(pads) + " must be smaller than kernel_shape " + shape_str(w.kernel));
    }
  }

  for (size_t d = 0; d < dims; ++d) {
    const int64_t extent = (w.kernel[d] - 1) * w.dilations[d] + 1;  // dilated kernel size
    const int64_t s = w.strides[d];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      // Output covers ceil(in / stride) positions; the padding needed for that is split
      // evenly, the odd element going to the end (UPPER) or the beginning (LOWER).
      w.out[d] = (in[d] + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (w.out[d] - 1) * s + extent - in[d]);
      w.pad_begin[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[d] = total - w.pad_begin[d];
    } else {
      const int64_t span = in[d] + w.pad_begin[d] + w.pad_end[d] - extent;
      if (span < 0)
        ref::fail(node, "kernel extent " + std::to_string(extent) + " exceeds padded input size " +
                            std::to_string(in[d] + w.pad_begin[d] + w.pad_end[d]) + " in spatial dim " +
                            std::to_string(d));
      // ceil_mode keeps a last, partial window hanging over the end, unless that window
      // would start in the end padding (then it sees no input and is dropped).
      w.out[d] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
      if (ceil_mode && (w.out[d] - 1) * s >= in[d] + w.pad_begin[d]) --w.out[d];
    }
    if (w.out[d] < 1) ref::fail(node, "empty output in spatial dim " + std::to_string(d));
  }
  return w;
}

// Advances a row-major multi-index over `dims`; returns false once it wraps around.
bool next_index(std::vector<int64_t>& idx, const Shape& dims) {
  for (size_t i = dims.size(); i-- > 0;) {
    if (++idx[i] < dims[i]) return true;
    idx[i] = 0;
  }
  return false;
}

// Calls visit(input_offset) for every tap of the window at output position `out_pos` that
// lands on a real input element (row-major offset within one channel's spatial block).
// Returns how many taps lie inside the explicitly padded input [-pad_begin, in + pad_end),
// which is AveragePool's divisor when count_include_pad=1.
template <typename Visit>
int64_t for_each_tap(const Window& w, const std::vector<int64_t>& out_pos, Visit visit) {
  const size_t dims = w.in.size();
  std::vector<int64_t> k(dims, 0);
  int64_t padded_taps = 0;
  do {
    int64_t input_offset = 0;
    bool inside = true, inside_padded = true;
    for (size_t d = 0; d < dims; ++d) {
      const int64_t p = out_pos[d] * w.strides[d] - w.pad_begin[d] + k[d] * w.dilations[d];
      if (p < 0 || p >= w.in[d]) inside = false;
      if (p < -w.pad_begin[d] || p >= w.in[d] + w.pad_end[d]) inside_padded = false;
      input_offset = input_offset * w.in[d] + p;
    }
    if (inside) visit(input_offset);
    if (inside_padded) ++padded_taps;
  } while (next_index(k, w.kernel));
  return padded_taps;
}

// Checks X [N, C, D1..Dn] with 1 to 3 spatial dims.
void check_pool_input(const Node& node, const Tensor& x) {
  if (x.rank() < 3 || x.rank() > 5)
    ref::fail(node, "input X has shape " + shape_str(x.shape) + "; expected rank 3 to 5 (N, C, 1 to 3 spatial dims)");
}

// Runs reduce(channel_data, window, out_pos) for every (n, c, output position) in order,
// writing its result to the output.
template <typename T, typename Reduce>
void pool_loop(const Tensor& x, const Window& w, Tensor& y, Reduce reduce) {
  const int64_t planes = x.shape[0] * x.shape[1];  // independent (n, c) pairs
  const int64_t in_size = shape_numel(w.in);
  const T* src = x.data<T>();
  T* dst = y.data<T>();
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* channel = src + plane * in_size;
    std::vector<int64_t> o(w.out.size(), 0);
    do {
      *dst++ = reduce(channel, o);
    } while (next_index(o, w.out));
  }
}

Shape pool_output_shape(const Tensor& x, const Window& w) {
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
  const Window w = resolve_window(node, Shape(x.shape.begin() + 2, x.shape.end()));

  out[0].reset(DType::f32, pool_output_shape(x, w));
  pool_loop<float>(x, w, out[0], [&](const float* channel, const std::vector<int64_t>& o) {
    double sum = 0;
    int64_t real_taps = 0;
    const int64_t padded_taps = for_each_tap(w, o, [&](int64_t i) {
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
  const Window w = resolve_window(node, Shape(x.shape.begin() + 2, x.shape.end()));

  out[0].reset(x.dtype, pool_output_shape(x, w));
  ref::visit_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    pool_loop<T>(x, w, out[0], [&](const T* channel, const std::vector<int64_t>& o) {
      T best = std::numeric_limits<T>::lowest();
      bool any = false;
      for_each_tap(w, o, [&](int64_t i) {
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
