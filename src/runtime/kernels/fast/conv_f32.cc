// Float convolution as im2col + GEMM: for each image, the input patches become a
// [C*KH*KW, OH*OW] matrix B, the weights are A = [M, C*KH*KW], and Y = A*B + bias.
#include <algorithm>

#include "runtime/kernels/fast/providers.h"
#include "runtime/kernels/fast/sgemm.h"
#include "runtime/kernels/reference/common.h"

namespace qplay::fast {
namespace {

struct Conv2dGeometry {
  int64_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, pad_bottom, pad_right;
};

// im2col: row (c, ky, kx), column (oy, ox); taps in the padding read as 0.
void im2col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
            const Conv2dGeometry& g, float* col) {
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx) {
        float* row = col + ((ci * kh + ky) * kw + kx) * oh * ow;
        const float* plane = x + ci * h * w;
        for (int64_t oy = 0; oy < oh; ++oy) {
          const int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
          float* out = row + oy * ow;
          if (iy < 0 || iy >= h) {
            std::fill(out, out + ow, 0.0f);
            continue;
          }
          // Columns whose tap lands inside the row: ix = ox*stride - pad + kx*dil in [0, w).
          const int64_t shift = kx * g.dil_w - g.pad_left;
          const int64_t ox0 = std::clamp<int64_t>((-shift + g.stride_w - 1) / g.stride_w, 0, ow);
          const int64_t ox1 = std::clamp<int64_t>((w - shift + g.stride_w - 1) / g.stride_w, ox0, ow);
          const float* first = plane + iy * w + ox0 * g.stride_w + shift;  // tap of column ox0
          std::fill(out, out + ox0, 0.0f);
          if (g.stride_w == 1) std::copy(first, first + (ox1 - ox0), out + ox0);
          else
            for (int64_t ox = ox0; ox < ox1; ++ox) out[ox] = first[(ox - ox0) * g.stride_w];
          std::fill(out + ox1, out + ow, 0.0f);
        }
      }
}

}  // namespace

PreparedKernel prepare_conv_f32(const Node& node, const Graph& graph) {
  if (node.op_type != "Conv" || !node.domain.empty()) return nullptr;
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (!(auto_pad.empty() || auto_pad == "NOTSET") || node.attr_int("group", 1) != 1) return nullptr;
  const auto pads = node.attr_ints("pads", {0, 0, 0, 0});
  const auto strides = node.attr_ints("strides", {1, 1});
  const auto dilations = node.attr_ints("dilations", {1, 1});
  if (pads.size() != 4 || strides.size() != 2 || dilations.size() != 2) return nullptr;  // not 2-D
  const Conv2dGeometry geo{strides[0], strides[1], dilations[0], dilations[1], pads[0], pads[1], pads[2], pads[3]};
  const ReferenceKernel reference = find_op("Conv")->reference;

  return [node, geo, reference](const Inputs& in, std::vector<Tensor>& out) {
    const Tensor* x = in[0];
    const Tensor* w = in.size() > 1 ? in[1] : nullptr;
    const Tensor* b = in.size() > 2 ? in[2] : nullptr;
    // Anything unusual (wrong rank, types, shapes) goes to the reference, which validates and explains.
    if (!x || !w || x->dtype != DType::f32 || w->dtype != DType::f32 || x->rank() != 4 || w->rank() != 4 ||
        w->shape[1] != x->shape[1] || (b && (b->dtype != DType::f32 || b->numel() != w->shape[0])))
      return reference(node, in, out);
    const int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
    const int64_t m = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    const int64_t oh = (h + geo.pad_top + geo.pad_bottom - ((kh - 1) * geo.dil_h + 1)) / geo.stride_h + 1;
    const int64_t ow = (wd + geo.pad_left + geo.pad_right - ((kw - 1) * geo.dil_w + 1)) / geo.stride_w + 1;
    if (oh <= 0 || ow <= 0) return reference(node, in, out);
    const int64_t k = c * kh * kw, spatial = oh * ow;
    out[0].reset(DType::f32, {n, m, oh, ow});
    thread_local std::vector<float> col;
    col.resize(static_cast<size_t>(k * spatial));
    const float* wp = w->data<float>();
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x->data<float>() + i * c * h * wd;
      float* yi = out[0].data<float>() + i * m * spatial;
      im2col(xi, c, h, wd, kh, kw, oh, ow, geo, col.data());
      sgemm(m, spatial, k, wp, k, col.data(), spatial, yi, spatial);
      if (b)
        for (int64_t mi = 0; mi < m; ++mi) {
          const float bias = b->data<float>()[mi];
          float* row = yi + mi * spatial;
          for (int64_t s = 0; s < spatial; ++s) row[s] += bias;
        }
    }
  };
}

std::vector<KernelProvider> all_providers() { return {prepare_conv_f32, prepare_elementwise_f32}; }

}  // namespace qplay::fast
