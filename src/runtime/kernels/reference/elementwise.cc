// Reference kernels for the elementwise ops: Add, Sub, Mul, Div (numpy broadcasting),
// Relu, Clip, LeakyRelu, Sigmoid. Plain loops; these define what the fast kernels must match.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "runtime/kernels/reference/common.h"

namespace qplay {
namespace {

// ---------------------------------------------------------------------------------------------
// Integer arithmetic with two's-complement wrap-around (as ONNX Runtime and numpy behave).
// Signed overflow is undefined in C++, so the operation is done on the unsigned type and
// converted back (a modular conversion since C++20).

template <typename T> T wrap_add(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
}
template <typename T> T wrap_sub(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
}
template <typename T> T wrap_mul(T a, T b) {
  using U = std::make_unsigned_t<T>;
  // Promote small types to unsigned int so uint8*uint8 cannot overflow a signed int.
  using Wide = std::conditional_t<(sizeof(U) < sizeof(unsigned)), unsigned, U>;
  return static_cast<T>(static_cast<U>(static_cast<Wide>(static_cast<U>(a)) * static_cast<Wide>(static_cast<U>(b))));
}
// Integer division truncating toward zero (C++ and ONNX semantics). The one overflowing case,
// lowest() / -1, wraps to lowest() instead of trapping. The caller rejects b == 0.
template <typename T> T truncating_div(T a, T b) {
  if constexpr (std::is_signed_v<T>) {
    if (b == -1) return wrap_sub(T{0}, a);
  }
  return static_cast<T>(a / b);
}

enum class BinaryOp { add, sub, mul, div };

const char* binary_op_symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "+";
    case BinaryOp::sub: return "-";
    case BinaryOp::mul: return "*";
    case BinaryOp::div: return "/";
  }
  return "?";
}

// c[i] = a[ia] op b[ib] over the broadcast output shape.
// Broadcasting: both shapes are right-aligned; a dimension of size 1 is repeated (stride 0).
template <typename T>
void binary_broadcast(const Node& node, BinaryOp op, const Tensor& a, const Tensor& b, Tensor& c) {
  const Shape out_shape = ref::broadcast_shapes(node, a.shape, b.shape);
  const std::vector<int64_t> stride_a = ref::broadcast_strides(a.shape, out_shape);
  const std::vector<int64_t> stride_b = ref::broadcast_strides(b.shape, out_shape);
  c.reset(a.dtype, out_shape);

  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = c.data<T>();
  const int64_t n = c.numel();
  const size_t rank = out_shape.size();

  std::vector<int64_t> index(rank, 0);  // multi-index of output element i
  int64_t ia = 0, ib = 0;                // offsets of the matching elements of a and b
  for (int64_t i = 0; i < n; ++i) {
    const T x = pa[ia], y = pb[ib];
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case BinaryOp::add: pc[i] = x + y; break;
        case BinaryOp::sub: pc[i] = x - y; break;
        case BinaryOp::mul: pc[i] = x * y; break;
        case BinaryOp::div: pc[i] = x / y; break;  // IEEE: x/0 gives ±inf or NaN
      }
    } else {
      switch (op) {
        case BinaryOp::add: pc[i] = wrap_add(x, y); break;
        case BinaryOp::sub: pc[i] = wrap_sub(x, y); break;
        case BinaryOp::mul: pc[i] = wrap_mul(x, y); break;
        case BinaryOp::div:
          if (y == 0) ref::fail(node, "integer division by zero");
          pc[i] = truncating_div(x, y);
          break;
      }
    }
    // Advance the multi-index like an odometer, keeping the input offsets in step.
    for (size_t k = rank; k-- > 0;) {
      if (++index[k] < out_shape[k]) {
        ia += stride_a[k];
        ib += stride_b[k];
        break;
      }
      ia -= stride_a[k] * (out_shape[k] - 1);
      ib -= stride_b[k] * (out_shape[k] - 1);
      index[k] = 0;
    }
  }
}

void run_binary(BinaryOp op, const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& a = ref::need_input(node, inputs, 0);
  const Tensor& b = ref::need_input(node, inputs, 1);
  if (a.dtype != b.dtype)
    ref::fail(node, std::string("inputs of '") + binary_op_symbol(op) + "' have different types " +
                        dtype_name(a.dtype) + " and " + dtype_name(b.dtype));
  if (node.has_attr("broadcast") || node.has_attr("axis"))
    ref::fail(node, "legacy (opset < 7) 'broadcast'/'axis' attributes are not supported");
  Tensor& c = ref::first_output(node, outputs);
  ref::visit_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    binary_broadcast<T>(node, op, a, b, c);
  });
}

void add_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) { run_binary(BinaryOp::add, node, in, out); }
void sub_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) { run_binary(BinaryOp::sub, node, in, out); }
void mul_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) { run_binary(BinaryOp::mul, node, in, out); }
void div_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) { run_binary(BinaryOp::div, node, in, out); }

// ---------------------------------------------------------------------------------------------
// Unary ops.

// Relu: y = max(x, 0). Every dtype (a no-op for uint8); NaN passes through.
void relu_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  Tensor& y = ref::first_output(node, outputs);
  y.reset(x.dtype, x.shape);
  ref::visit_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) py[i] = px[i] < T{0} ? T{0} : px[i];
  });
}

// Converts a float bound (Clip opset < 11 attribute) to T, saturating for integer types.
template <typename T> T bound_from_float(float v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T{0};
    const double lo = static_cast<double>(std::numeric_limits<T>::lowest());
    const double hi = static_cast<double>(std::numeric_limits<T>::max());
    const double d = static_cast<double>(v);
    if (d <= lo) return std::numeric_limits<T>::lowest();
    if (d >= hi) return std::numeric_limits<T>::max();
    return static_cast<T>(d);
  }
}

// Reads Clip's optional bound input #i (opset >= 11): a one-element tensor of x's type.
template <typename T>
bool clip_bound_input(const Node& node, const Inputs& inputs, size_t i, const Tensor& x, T& bound) {
  if (i >= inputs.size() || inputs[i] == nullptr) return false;
  const Tensor& t = *inputs[i];
  const char* role = i == 1 ? "Clip min" : "Clip max";
  ref::expect_dtype(node, t, x.dtype, role);
  if (t.numel() != 1)
    ref::fail(node, std::string(role) + " must be a scalar, got shape " + shape_str(t.shape));
  bound = t.data<T>()[0];
  return true;
}

// Clip: y = min(max(x, min), max). Bounds come from inputs #1/#2 (opset >= 11) or, when no
// bound input is given, from the float attributes min/max (opset 6). Missing bounds are the
// type's limits. If min > max every element becomes max (as the ONNX spec states).
void clip_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  Tensor& y = ref::first_output(node, outputs);
  ref::visit_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T lo = std::numeric_limits<T>::lowest();
    T hi = std::numeric_limits<T>::max();
    const bool has_min_input = clip_bound_input<T>(node, inputs, 1, x, lo);
    const bool has_max_input = clip_bound_input<T>(node, inputs, 2, x, hi);
    if (!has_min_input && !has_max_input) {
      if (node.has_attr("min")) lo = bound_from_float<T>(node.attr_float("min", 0.0f));
      if (node.has_attr("max")) hi = bound_from_float<T>(node.attr_float("max", 0.0f));
    }
    y.reset(x.dtype, x.shape);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      T v = px[i];           // NaN compares false both times and passes through
      if (v < lo) v = lo;
      if (v > hi) v = hi;
      py[i] = v;
    }
  });
}

// LeakyRelu: y = x for x >= 0, alpha * x otherwise (alpha defaults to 0.01). float32 only.
void leaky_relu_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  ref::expect_dtype(node, x, DType::f32, "input");
  const float alpha = node.attr_float("alpha", 0.01f);
  Tensor& y = ref::first_output(node, outputs);
  y.reset(DType::f32, x.shape);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = px[i] < 0.0f ? alpha * px[i] : px[i];
}

// Sigmoid: y = 1 / (1 + exp(-x)). float32 only. For x < 0 the equivalent exp(x) / (1 + exp(x))
// is used so that exp never overflows.
void sigmoid_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  ref::expect_dtype(node, x, DType::f32, "input");
  Tensor& y = ref::first_output(node, outputs);
  y.reset(DType::f32, x.shape);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = px[i];
    if (v >= 0.0f) {
      py[i] = 1.0f / (1.0f + std::exp(-v));
    } else {
      const float e = std::exp(v);
      py[i] = e / (1.0f + e);
    }
  }
}

}  // namespace

void register_elementwise_ops(std::vector<OpSpec>& table) {
  //                op_type      domain min max opset kernel
  table.push_back({"Add", "", 2, 2, 7, add_kernel});
  table.push_back({"Sub", "", 2, 2, 7, sub_kernel});
  table.push_back({"Mul", "", 2, 2, 7, mul_kernel});
  table.push_back({"Div", "", 2, 2, 7, div_kernel});
  table.push_back({"Relu", "", 1, 1, 1, relu_kernel});
  table.push_back({"Clip", "", 1, 3, 1, clip_kernel});
  table.push_back({"LeakyRelu", "", 1, 1, 1, leaky_relu_kernel});
  table.push_back({"Sigmoid", "", 1, 1, 1, sigmoid_kernel});
}

}  // namespace qplay
