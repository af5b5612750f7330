// Sliding-window geometry shared by the Conv and pooling reference kernels.
//
// For output position o, the window covers the input positions
//   p[d] = o[d] * stride[d] - pad_begin[d] + k[d] * dilation[d],   0 <= k[d] < kernel[d]
// Positions outside [0, in[d]) are padding.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "runtime/kernels/reference/common.h"

namespace qplay::ref {

// Where the sliding windows of one node sit over the spatial dims of its input.
struct Window {
  Shape in;      // input spatial dims
  Shape kernel;  // kernel spatial dims
  std::vector<int64_t> strides, dilations, pad_begin, pad_end;
  Shape out;     // output spatial dims
};

// Which op's attribute rules resolve_window applies. Pooling adds the ceil_mode attribute and
// requires every pad to be smaller than the kernel; Conv has neither.
enum class WindowRules { conv, pool };

// Reads an ints attribute that must hold one value per spatial dim (or be absent).
inline std::vector<int64_t> per_dim_attr(const Node& node, const char* key, size_t dims, int64_t fallback,
                                         int64_t min_value) {
  std::vector<int64_t> v = node.attr_ints(key, std::vector<int64_t>(dims, fallback));
  if (v.size() != dims)
    fail(node, std::string(key) + " " + shape_str(v) + " must have " + std::to_string(dims) + " values");
  for (int64_t x : v)
    if (x < min_value) fail(node, std::string(key) + " " + shape_str(v) + " must be >= " + std::to_string(min_value));
  return v;
}

// Resolves auto_pad / pads / strides / dilations (and, for pooling, ceil_mode) into explicit
// window geometry over input spatial dims `in` for a kernel of spatial dims `kernel`.
// auto_pad (when not NOTSET) takes precedence over the pads attribute.
inline Window resolve_window(const Node& node, const Shape& in, const Shape& kernel, WindowRules rules) {
  const size_t dims = in.size();
  const bool pool = rules == WindowRules::pool;
  Window w;
  w.in = in;
  w.kernel = kernel;
  w.strides = per_dim_attr(node, "strides", dims, 1, 1);
  w.dilations = per_dim_attr(node, "dilations", dims, 1, 1);
  w.pad_begin.assign(dims, 0);
  w.pad_end.assign(dims, 0);
  w.out.assign(dims, 0);
  const int64_t ceil_mode = pool ? node.attr_int("ceil_mode", 0) : 0;
  if (ceil_mode != 0 && ceil_mode != 1) fail(node, "ceil_mode must be 0 or 1");

  std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (auto_pad.empty()) auto_pad = "NOTSET";
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    fail(node, "unsupported auto_pad '" + auto_pad + "'");

  if (auto_pad == "NOTSET") {
    const std::vector<int64_t> pads = node.attr_ints("pads", std::vector<int64_t>(2 * dims, 0));
    if (pads.size() != 2 * dims)
      fail(node, "pads " + shape_str(pads) + " must have " + std::to_string(2 * dims) + " values");
    // ONNX lists all begin pads, then all end pads. For pooling, like ONNX Runtime, a pad must
    // be smaller than the kernel so that no window lies entirely in the padding.
    for (size_t d = 0; d < dims; ++d) {
      w.pad_begin[d] = pads[d];
      w.pad_end[d] = pads[dims + d];
      if (pads[d] < 0 || pads[dims + d] < 0) fail(node, "pads " + shape_str(pads) + " must be non-negative");
      if (pool && (pads[d] >= kernel[d] || pads[dims + d] >= kernel[d]))
        fail(node, "pads " + shape_str(pads) + " must be smaller than kernel_shape " + shape_str(kernel));
    }
  }

  for (size_t d = 0; d < dims; ++d) {
    const int64_t extent = (kernel[d] - 1) * w.dilations[d] + 1;  // dilated kernel size
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
        fail(node, "kernel extent " + std::to_string(extent) + " exceeds padded input size " +
                       std::to_string(in[d] + w.pad_begin[d] + w.pad_end[d]) + " in spatial dim " +
                       std::to_string(d));
      // ceil_mode keeps a last, partial window hanging over the end, unless that window
      // would start in the end padding (then it sees no input and is dropped).
      w.out[d] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
      if (ceil_mode && (w.out[d] - 1) * s >= in[d] + w.pad_begin[d]) --w.out[d];
    }
    if (w.out[d] < 1) fail(node, "empty output in spatial dim " + std::to_string(d));
  }
  return w;
}

// Advances a row-major multi-index over `dims`; returns false once it wraps around.
inline bool next_index(std::vector<int64_t>& idx, const Shape& dims) {
  for (size_t i = dims.size(); i-- > 0;) {
    if (++idx[i] < dims[i]) return true;
    idx[i] = 0;
  }
  return false;
}

// Calls visit(kernel_offset, input_offset) for every kernel tap of the window at output
// position `out_pos` that lands on a real (non-padding) input element. Offsets are
// row-major within the kernel / input spatial block.
// Returns how many taps lie inside the explicitly padded input [-pad_begin, in + pad_end),
// which is AveragePool's divisor when count_include_pad=1.
template <typename Visit>
int64_t for_each_tap(const Window& w, const std::vector<int64_t>& out_pos, Visit visit) {
  const size_t dims = w.in.size();
  std::vector<int64_t> k(dims, 0);
  int64_t kernel_offset = 0;
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
    if (inside) visit(kernel_offset, input_offset);
    if (inside_padded) ++padded_taps;
    ++kernel_offset;
  } while (next_index(k, w.kernel));
  return padded_taps;
}

}  // namespace qplay::ref
