// Small helpers shared by the reference kernels: error messages that name the node,
// axis normalisation, broadcasting and dtype dispatch.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"
#include "runtime/op_registry.h"

namespace qplay::ref {

[[noreturn]] inline void fail(const Node& node, const std::string& what) {
  throw Error(node.op_type + " node '" + node.name + "': " + what);
}

inline void expect(bool ok, const Node& node, const std::string& what) {
  if (!ok) fail(node, what);
}

inline const Tensor& need_input(const Node& node, const Inputs& in, size_t i) {
  if (i >= in.size() || in[i] == nullptr) fail(node, "missing required input #" + std::to_string(i));
  return *in[i];
}

inline void expect_dtype(const Node& node, const Tensor& t, DType want, const char* role) {
  if (t.dtype != want)
    fail(node, std::string(role) + " has type " + dtype_name(t.dtype) + ", expected " + dtype_name(want));
}

// The node's first output (every kernel writes one); fails naming the node when there is none.
inline Tensor& first_output(const Node& node, std::vector<Tensor>& outputs) {
  if (outputs.empty()) fail(node, "has no output");
  return outputs[0];
}

// Product of shape[begin, end).
inline int64_t dims_product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= shape[i];
  return p;
}

// Maps a possibly negative axis into [0, rank).
inline int64_t normalize_axis(const Node& node, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    fail(node, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// Numpy-style broadcast of two shapes; throws naming the node when incompatible.
inline Shape broadcast_shapes(const Node& node, const Shape& a, const Shape& b) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(node, "cannot broadcast shapes " + shape_str(a) + " and " + shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Row-major strides of `shape` as seen from an output of rank `out_rank` under broadcasting:
// broadcast dimensions get stride 0.
inline std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out_shape) {
  const size_t r = out_shape.size();
  std::vector<int64_t> strides(r, 0);
  int64_t s = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    const size_t i = shape.size() - 1 - k;
    const size_t o = r - 1 - k;
    strides[o] = shape[i] == 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}

// Calls f(T{}) with T the C++ type of `t`.
template <typename F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::u8: return f(uint8_t{});
    case DType::i8: return f(int8_t{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
  }
  return f(float{});
}

}  // namespace qplay::ref
