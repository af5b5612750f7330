// AVX2 versions of the cheap per-element ops that dominate QDQ graphs between convolutions:
// Relu, same-shape Add, and per-tensor QuantizeLinear / DequantizeLinear. Each computes exactly
// what its reference kernel computes (same float operations, same rounding), so results are
// bit-identical; anything else (broadcasting, per-axis, other types) goes to the reference.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "runtime/kernels/fast/providers.h"
#include "runtime/kernels/reference/common.h"
#include "runtime/cpu_features.h"

namespace qplay::fast {
namespace {

// max(0, x) with NaN passed through, like the reference (_mm256_max_ps returns its second
// operand when either is NaN).
__attribute__((target("avx2"))) void relu_avx2(const float* x, float* y, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(zero, _mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

__attribute__((target("avx2"))) void add_avx2(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

// q = saturate(nearbyint(x / scale) + zp); NaN -> zp. Rounding, addition and clamping happen in
// float exactly as in the reference; the final conversion is exact (values are integral).
template <typename Q>
__attribute__((target("avx2"))) void quantize_avx2(const float* x, Q* y, int64_t n, float scale, Q zp) {
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(static_cast<float>(zp));
  const __m256 lo = _mm256_set1_ps(static_cast<float>(std::numeric_limits<Q>::lowest()));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(std::numeric_limits<Q>::max()));
  alignas(32) int32_t codes[8];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i), vs);
    const __m256 nan = _mm256_cmp_ps(q, q, _CMP_UNORD_Q);
    __m256 v = _mm256_add_ps(_mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    v = _mm256_blendv_ps(v, vz, nan);
    _mm256_store_si256(reinterpret_cast<__m256i*>(codes), _mm256_cvtps_epi32(v));
    for (int k = 0; k < 8; ++k) y[i + k] = static_cast<Q>(codes[k]);
  }
  for (; i < n; ++i) {
    const float q = x[i] / scale;
    if (std::isnan(q)) { y[i] = zp; continue; }
    const float v = std::nearbyint(q) + static_cast<float>(zp);
    y[i] = static_cast<Q>(std::min(std::max(v, static_cast<float>(std::numeric_limits<Q>::lowest())),
                                   static_cast<float>(std::numeric_limits<Q>::max())));
  }
}

// x = float(int32(q) - zp) * scale.
template <typename Q>
__attribute__((target("avx2"))) void dequantize_avx2(const Q* q, float* y, int64_t n, float scale, int32_t zp) {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256i vz = _mm256_set1_epi32(zp);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
    const __m256i wide = std::is_signed_v<Q> ? _mm256_cvtepi8_epi32(raw) : _mm256_cvtepu8_epi32(raw);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(wide, vz)), vs));
  }
  for (; i < n; ++i) y[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zp) * scale;
}

bool is_scalar_param(const Tensor* t) { return t != nullptr && t->numel() == 1; }

}  // namespace

PreparedKernel prepare_elementwise_f32(const Node& node, const Graph& graph) {
  if (!node.domain.empty() || !has_avx2()) return nullptr;
  const OpSpec* spec = find_op(node.op_type);
  if (spec == nullptr) return nullptr;
  const ReferenceKernel reference = spec->reference;

  if (node.op_type == "Relu")
    return [node, reference](const Inputs& in, std::vector<Tensor>& out) {
      if (!in[0] || in[0]->dtype != DType::f32) return reference(node, in, out);
      out[0].reset(DType::f32, in[0]->shape);
      relu_avx2(in[0]->data<float>(), out[0].data<float>(), in[0]->numel());
    };
  if (node.op_type == "Add")
    return [node, reference](const Inputs& in, std::vector<Tensor>& out) {
      if (in.size() != 2 || !in[0] || !in[1] || in[0]->dtype != DType::f32 || in[1]->dtype != DType::f32 ||
          in[0]->shape != in[1]->shape)
        return reference(node, in, out);
      out[0].reset(DType::f32, in[0]->shape);
      add_avx2(in[0]->data<float>(), in[1]->data<float>(), out[0].data<float>(), in[0]->numel());
    };
  if (node.op_type == "QuantizeLinear")
    return [node, reference](const Inputs& in, std::vector<Tensor>& out) {
      const Tensor* x = in[0];
      const Tensor* scale = in.size() > 1 ? in[1] : nullptr;
      const Tensor* zp = in.size() > 2 ? in[2] : nullptr;
      // Per-tensor, float input, explicit 8-bit zero point, finite positive scale; else reference.
      if (!x || x->dtype != DType::f32 || !is_scalar_param(scale) || scale->dtype != DType::f32 ||
          !is_scalar_param(zp) || (zp->dtype != DType::u8 && zp->dtype != DType::i8) || node.has_attr("output_dtype"))
        return reference(node, in, out);
      const float s = scale->data<float>()[0];
      if (!(std::isfinite(s) && s > 0.0f)) return reference(node, in, out);  // reference explains
      out[0].reset(zp->dtype, x->shape);
      if (zp->dtype == DType::u8)
        quantize_avx2<uint8_t>(x->data<float>(), out[0].data<uint8_t>(), x->numel(), s, zp->data<uint8_t>()[0]);
      else
        quantize_avx2<int8_t>(x->data<float>(), out[0].data<int8_t>(), x->numel(), s, zp->data<int8_t>()[0]);
    };
  if (node.op_type == "DequantizeLinear")
    return [node, reference](const Inputs& in, std::vector<Tensor>& out) {
      const Tensor* x = in[0];
      const Tensor* scale = in.size() > 1 ? in[1] : nullptr;
      const Tensor* zp = in.size() > 2 ? in[2] : nullptr;
      if (!x || (x->dtype != DType::u8 && x->dtype != DType::i8) || !is_scalar_param(scale) ||
          scale->dtype != DType::f32 || (zp && (!is_scalar_param(zp) || zp->dtype != x->dtype)))
        return reference(node, in, out);
      const float s = scale->data<float>()[0];
      if (!(std::isfinite(s) && s > 0.0f)) return reference(node, in, out);
      const int32_t z = zp ? static_cast<int32_t>(zp->at_as_double(0)) : 0;
      out[0].reset(DType::f32, x->shape);
      if (x->dtype == DType::u8) dequantize_avx2<uint8_t>(x->data<uint8_t>(), out[0].data<float>(), x->numel(), s, z);
      else dequantize_avx2<int8_t>(x->data<int8_t>(), out[0].data<float>(), x->numel(), s, z);
    };
  return nullptr;
}

}  // namespace qplay::fast
