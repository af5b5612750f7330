// Reference kernels for Gemm, MatMul and QLinearMatMul: plain triple loops.
//
//   Gemm:          Y[i, j] = alpha * sum_k A'[i, k] * B'[k, j] + beta * C[i, j]   (A' = A or A^T, ...)
//   MatMul:        Y[..., i, j] = sum_k A[..., i, k] * B[..., k, j]               (numpy.matmul)
//   QLinearMatMul: acc = sum_k (A[.., i, k] - a_zp) * (B[.., k, j] - b_zp[j]);
//                  Y = saturate(round(acc * a_scale * b_scale[j] / y_scale) + y_zp)
#include <type_traits>

#include "runtime/kernels/reference/common.h"
#include "runtime/kernels/reference/quant_math.h"

namespace qplay {
namespace {

// Gemm (float32): A [M, K] (or [K, M] with transA), B [K, N] (or [N, K] with transB),
// optional C unidirectionally broadcastable to [M, N].
void gemm_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = ref::need_input(node, in, 0);
  const Tensor& b = ref::need_input(node, in, 1);
  const Tensor* c = in.size() > 2 ? in[2] : nullptr;
  ref::expect_dtype(node, a, DType::f32, "input A");
  ref::expect_dtype(node, b, DType::f32, "input B");
  ref::expect(!out.empty(), node, "expected one output");
  if (a.rank() != 2) ref::fail(node, "input A has shape " + shape_str(a.shape) + ", expected rank 2");
  if (b.rank() != 2) ref::fail(node, "input B has shape " + shape_str(b.shape) + ", expected rank 2");

  const bool trans_a = node.attr_int("transA", 0) != 0;
  const bool trans_b = node.attr_int("transB", 0) != 0;
  const float alpha = node.attr_float("alpha", 1.0f);
  const float beta = node.attr_float("beta", 1.0f);
  const int64_t m = trans_a ? a.shape[1] : a.shape[0];
  const int64_t k = trans_a ? a.shape[0] : a.shape[1];
  const int64_t k_b = trans_b ? b.shape[1] : b.shape[0];
  const int64_t n = trans_b ? b.shape[0] : b.shape[1];
  if (k != k_b)
    ref::fail(node, "inner dimensions differ: A " + shape_str(a.shape) + (trans_a ? " (transposed)" : "") + ", B " +
                        shape_str(b.shape) + (trans_b ? " (transposed)" : ""));

  // C broadcasts to [M, N] (only C may be stretched): its stride is 0 along size-1 dims.
  std::vector<int64_t> c_strides;
  if (c) {
    ref::expect_dtype(node, *c, DType::f32, "input C");
    bool ok = c->rank() <= 2;
    for (size_t i = 0; ok && i < c->rank(); ++i) {
      const int64_t want = (c->rank() == 2 && i == 0) ? m : n;  // C's dims align right
      ok = c->shape[i] == 1 || c->shape[i] == want;
    }
    if (!ok)
      ref::fail(node, "input C has shape " + shape_str(c->shape) + ", not broadcastable to [" + std::to_string(m) +
                          "," + std::to_string(n) + "]");
    c_strides = ref::broadcast_strides(c->shape, {m, n});
  }

  out[0].reset(DType::f32, {m, n});
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* y = out[0].data<float>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = trans_a ? pa[p * m + i] : pa[i * k + p];
        const float bv = trans_b ? pb[j * k + p] : pb[p * n + j];
        sum += static_cast<double>(av) * bv;
      }
      double v = alpha * sum;
      if (c) v += static_cast<double>(beta) * c->data<float>()[i * c_strides[0] + j * c_strides[1]];
      y[i * n + j] = static_cast<float>(v);
    }
  }
}

// numpy.matmul's shape rules: a 1-D A is a row [1, K] and a 1-D B a column [K, 1] (the
// added dim is dropped from the result); leading (batch) dims broadcast.
struct MatMulPlan {
  int64_t m = 1, k = 1, n = 1;
  Shape out_shape;
  std::vector<int64_t> a_offsets, b_offsets;  // per output matrix: offset of its A and B matrices
};

MatMulPlan plan_matmul(const Node& node, const Shape& a_shape, const Shape& b_shape) {
  if (a_shape.empty() || b_shape.empty())
    ref::fail(node, "MatMul operands must have rank >= 1, got " + shape_str(a_shape) + " and " + shape_str(b_shape));
  const Shape a = a_shape.size() == 1 ? Shape{1, a_shape[0]} : a_shape;
  const Shape b = b_shape.size() == 1 ? Shape{b_shape[0], 1} : b_shape;
  MatMulPlan plan;
  plan.m = a[a.size() - 2];
  plan.k = a[a.size() - 1];
  plan.n = b[b.size() - 1];
  if (b[b.size() - 2] != plan.k)
    ref::fail(node, "inner dimensions differ: A " + shape_str(a_shape) + ", B " + shape_str(b_shape));

  const Shape a_batch(a.begin(), a.end() - 2);
  const Shape b_batch(b.begin(), b.end() - 2);
  const Shape batch = ref::broadcast_shapes(node, a_batch, b_batch);
  const std::vector<int64_t> a_strides = ref::broadcast_strides(a_batch, batch);
  const std::vector<int64_t> b_strides = ref::broadcast_strides(b_batch, batch);
  const int64_t batches = shape_numel(batch);
  for (int64_t t = 0; t < batches; ++t) {
    // Unravel batch index t and map it to A's and B's (possibly broadcast) matrices.
    int64_t rest = t, a_index = 0, b_index = 0;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t i = rest % batch[d];
      rest /= batch[d];
      a_index += i * a_strides[d];
      b_index += i * b_strides[d];
    }
    plan.a_offsets.push_back(a_index * plan.m * plan.k);
    plan.b_offsets.push_back(b_index * plan.k * plan.n);
  }

  plan.out_shape = batch;
  if (a_shape.size() > 1) plan.out_shape.push_back(plan.m);
  if (b_shape.size() > 1) plan.out_shape.push_back(plan.n);
  return plan;
}

// Runs emit(j, acc) in row-major output order, acc = sum_k (A[i,k] - a_zp) * (B[k,j] - b_zp[j]).
template <typename Acc, typename A, typename B, typename Emit>
void matmul_loop(const MatMulPlan& plan, const A* a, Acc a_zp, const B* b, const std::vector<Acc>& b_zp, Emit emit) {
  for (size_t t = 0; t < plan.a_offsets.size(); ++t) {
    const A* am = a + plan.a_offsets[t];
    const B* bm = b + plan.b_offsets[t];
    for (int64_t i = 0; i < plan.m; ++i)
      for (int64_t j = 0; j < plan.n; ++j) {
        Acc acc = 0;
        for (int64_t p = 0; p < plan.k; ++p)
          acc += (static_cast<Acc>(am[i * plan.k + p]) - a_zp) * (static_cast<Acc>(bm[p * plan.n + j]) - b_zp[j]);
        emit(j, acc);
      }
  }
}

// MatMul (float32, int32, int64; both inputs the same type).
void matmul_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = ref::need_input(node, in, 0);
  const Tensor& b = ref::need_input(node, in, 1);
  ref::expect(!out.empty(), node, "expected one output");
  if (a.dtype != DType::f32 && a.dtype != DType::i32 && a.dtype != DType::i64)
    ref::fail(node, std::string("input A has type ") + dtype_name(a.dtype) + ", expected float32, int32 or int64");
  ref::expect_dtype(node, b, a.dtype, "input B");
  const MatMulPlan plan = plan_matmul(node, a.shape, b.shape);

  out[0].reset(a.dtype, plan.out_shape);
  ref::visit_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    // Floats sum in double; integers in uint64_t, whose modular arithmetic gives the
    // wrap-around result of T after narrowing, without signed-overflow UB.
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
    T* y = out[0].data<T>();
    const std::vector<Acc> no_zero_points(static_cast<size_t>(plan.n), Acc{0});
    matmul_loop<Acc>(plan, a.data<T>(), Acc{0}, b.data<T>(), no_zero_points,
                     [&](int64_t, Acc acc) { *y++ = static_cast<T>(acc); });
  });
}

// ---- QLinearMatMul -----------------------------------------------------------------------

// QLinearMatMul: inputs a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
// a and y are quantized per tensor; b per tensor or per column (b_scale / b_zero_point [N]).
void qlinear_matmul_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = ref::need_input(node, in, 0);
  const Tensor& a_scale = ref::need_input(node, in, 1);
  const Tensor& a_zp = ref::need_input(node, in, 2);
  const Tensor& b = ref::need_input(node, in, 3);
  const Tensor& b_scale = ref::need_input(node, in, 4);
  const Tensor& b_zp = ref::need_input(node, in, 5);
  const Tensor& y_scale = ref::need_input(node, in, 6);
  const Tensor& y_zp = ref::need_input(node, in, 7);
  ref::expect(!out.empty(), node, "expected one output");

  if (!ref::is_8bit(a.dtype))
    ref::fail(node, std::string("input a has type ") + dtype_name(a.dtype) + ", expected uint8 or int8");
  if (!ref::is_8bit(b.dtype))
    ref::fail(node, std::string("input b has type ") + dtype_name(b.dtype) + ", expected uint8 or int8");
  if (!ref::is_8bit(y_zp.dtype))
    ref::fail(node, std::string("y_zero_point has type ") + dtype_name(y_zp.dtype) + ", expected uint8 or int8");
  const MatMulPlan plan = plan_matmul(node, a.shape, b.shape);
  // Per-column parameters only make sense for a 2-D (or batched) b.
  const int64_t columns = b.rank() >= 2 ? plan.n : 0;
  ref::check_quant_param(node, a_scale, DType::f32, "a_scale", 0);
  ref::check_quant_param(node, a_zp, a.dtype, "a_zero_point", 0);
  ref::check_quant_param(node, b_scale, DType::f32, "b_scale", columns);
  ref::check_quant_param(node, b_zp, b.dtype, "b_zero_point", columns);
  ref::check_quant_param(node, y_scale, DType::f32, "y_scale", 0);
  ref::check_quant_param(node, y_zp, y_zp.dtype, "y_zero_point", 0);
  if (!(y_scale.data<float>()[0] > 0.0f)) ref::fail(node, "y_scale must be positive");

  // Per output column: b's zero point and the float multiplier a_scale * b_scale[j] / y_scale.
  std::vector<int64_t> b_zero(static_cast<size_t>(plan.n));
  std::vector<float> multiplier(static_cast<size_t>(plan.n));
  for (int64_t j = 0; j < plan.n; ++j) {
    b_zero[j] = static_cast<int64_t>(ref::channel_value(b_zp, j));
    multiplier[j] =
        a_scale.data<float>()[0] * static_cast<float>(ref::channel_value(b_scale, j)) / y_scale.data<float>()[0];
  }
  const int64_t a_zero = static_cast<int64_t>(a_zp.at_as_double(0));
  const int32_t y_zero = static_cast<int32_t>(y_zp.at_as_double(0));

  out[0].reset(y_zp.dtype, plan.out_shape);
  ref::visit_8bit(a.dtype, [&](auto a_tag) {
    using A = decltype(a_tag);
    ref::visit_8bit(b.dtype, [&](auto b_tag) {
      using B = decltype(b_tag);
      ref::visit_8bit(y_zp.dtype, [&](auto y_tag) {
        using Y = decltype(y_tag);
        Y* y = out[0].data<Y>();
        matmul_loop<int64_t>(plan, a.data<A>(), a_zero, b.data<B>(), b_zero, [&](int64_t j, int64_t sum) {
          // ONNX accumulates in int32: summing exactly in int64 and narrowing once gives
          // the same wrap-around result without signed-overflow UB.
          *y++ = ref::requantize<Y>(static_cast<int32_t>(sum), multiplier[j], y_zero);
        });
      });
    });
  });
}

}  // namespace

void register_matmul_ops(std::vector<OpSpec>& table) {
  // Gemm-1/6 differ only by a legacy `broadcast` flag; valid models under it are a subset
  // of what unidirectional broadcasting accepts, so one kernel serves every opset.
  table.push_back({"Gemm", "", 2, 3, 1, gemm_kernel});
  table.push_back({"MatMul", "", 2, 2, 1, matmul_kernel});
  table.push_back({"QLinearMatMul", "", 8, 8, 10, qlinear_matmul_kernel});
}

}  // namespace qplay
