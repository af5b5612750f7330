// Op-table glue for the integer ops (domain "qplay"): fetch tensors, build the prepared
// parameters (which validate, naming node and value), switch on the 8-bit types and call the
// plain-loop reference in reference.h.
#include "runtime/integer/params.h"
#include "runtime/integer/reference.h"
#include "runtime/kernels/reference/common.h"

namespace qplay {
namespace {

using namespace integer;

// Calls f(T{}) with T the C++ type of an 8-bit dtype (callers have checked is_8bit or float).
template <typename F>
void visit_quantized(DType t, F&& f) {
  if (t == DType::u8)
    f(uint8_t{});
  else if (t == DType::i8)
    f(int8_t{});
  else
    f(float{});
}

const Tensor& quantized_input(const Node& node, const Inputs& in, size_t i, const char* role) {
  const Tensor& t = ref::need_input(node, in, i);
  if (!is_8bit(t.dtype))
    ref::fail(node, std::string(role) + " has type " + dtype_name(t.dtype) + ", expected uint8 or int8");
  return t;
}

void qconv_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = quantized_input(node, in, 0, "input x");
  const Tensor& w = quantized_input(node, in, 3, "weight w");
  const QConvQuant q = make_qconv_quant(node, in);
  const ConvGeometry g = conv_geometry(node, x.shape, w.shape);
  out.at(0).reset(q.out.dtype, {g.batch, g.out_channels, g.out_h, g.out_w});
  visit_quantized(x.dtype, [&](auto xt) {
    visit_quantized(w.dtype, [&](auto wt) {
      visit_quantized(q.out.dtype, [&](auto yt) {
        using X = decltype(xt);
        using W = decltype(wt);
        using Y = decltype(yt);
        if constexpr (!std::is_same_v<X, float> && !std::is_same_v<W, float> && !std::is_same_v<Y, float>)
          qconv_reference(g, q, x.data<X>(), w.data<W>(), out[0].data<Y>());
      });
    });
  });
}

void qgemm_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = quantized_input(node, in, 0, "input a");
  const Tensor& b = quantized_input(node, in, 3, "input b");
  const QGemmQuant q = make_qgemm_quant(node, in);
  const GemmGeometry g = gemm_geometry(node, a.shape, b.shape);
  const DType y_type = q.float_output ? DType::f32 : q.out.dtype;
  out.at(0).reset(y_type, g.out_shape);
  visit_quantized(a.dtype, [&](auto at) {
    visit_quantized(b.dtype, [&](auto bt) {
      visit_quantized(y_type, [&](auto yt) {
        using A = decltype(at);
        using B = decltype(bt);
        using Y = decltype(yt);
        if constexpr (!std::is_same_v<A, float> && !std::is_same_v<B, float>)
          qgemm_reference(g, q, a.data<A>(), b.data<B>(), out[0].data<Y>());
      });
    });
  });
}

void qadd_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = quantized_input(node, in, 0, "input a");
  const Tensor& b = quantized_input(node, in, 3, "input b");
  const QAddQuant q = make_qadd_quant(node, in);
  const Shape shape = ref::broadcast_shapes(node, a.shape, b.shape);
  const auto a_strides = ref::broadcast_strides(a.shape, shape), b_strides = ref::broadcast_strides(b.shape, shape);
  out.at(0).reset(q.out.dtype, shape);
  visit_quantized(a.dtype, [&](auto at) {
    visit_quantized(b.dtype, [&](auto bt) {
      visit_quantized(q.out.dtype, [&](auto yt) {
        using A = decltype(at);
        using B = decltype(bt);
        using Y = decltype(yt);
        if constexpr (!std::is_same_v<A, float> && !std::is_same_v<B, float> && !std::is_same_v<Y, float>)
          qadd_reference(q, shape, a.data<A>(), a_strides, b.data<B>(), b_strides, out[0].data<Y>());
      });
    });
  });
}

// QAveragePool and QGlobalAveragePool (pool_geometry tells them apart).
void qpool_kernel(const Node& node, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = quantized_input(node, in, 0, "input x");
  const PoolGeometry g = pool_geometry(node, x.shape);
  const QPoolQuant q = make_qpool_quant(node, in, g.kernel_h * g.kernel_w);
  out.at(0).reset(q.out.dtype, g.out_shape);
  visit_quantized(x.dtype, [&](auto xt) {
    visit_quantized(q.out.dtype, [&](auto yt) {
      using X = decltype(xt);
      using Y = decltype(yt);
      if constexpr (!std::is_same_v<X, float> && !std::is_same_v<Y, float>)
        qaverage_pool_reference(g, q, x.data<X>(), out[0].data<Y>());
    });
  });
}

}  // namespace

void register_integer_ops(std::vector<OpSpec>& table) {
  // {op_type, domain, min inputs, max inputs, min opset, reference kernel}
  table.push_back({"QConv", integer::kDomain, 8, 9, 1, qconv_kernel});
  table.push_back({"QGemm", integer::kDomain, 6, 9, 1, qgemm_kernel});
  table.push_back({"QAdd", integer::kDomain, 8, 8, 1, qadd_kernel});
  table.push_back({"QAveragePool", integer::kDomain, 5, 5, 1, qpool_kernel});
  table.push_back({"QGlobalAveragePool", integer::kDomain, 5, 5, 1, qpool_kernel});
}

}  // namespace qplay
