// Pooling and Transpose without the reference's per-element multi-index bookkeeping. Same arithmetic, same order
// (AveragePool and GlobalAveragePool sum in double over the taps in row-major order, then divide once), so results are
// bit-identical to the reference; anything else (rank other than 4, other types) goes to the reference.
#include <algorithm>
#include <cstring>
#include <limits>

#include "runtime/kernels/fast/providers.h"
#include "runtime/kernels/reference/common.h"
#include "runtime/kernels/reference/window.h"

namespace qplay::fast {
namespace {

// One 2-D pooling plane: reduce(taps) for every output position; taps in row-major kernel order.
template <typename T, typename Reduce>
void pool_plane_2d(const T* x, T* y, const ref::Window& w, Reduce reduce) {
  const int64_t ih = w.in[0], iw = w.in[1], oh = w.out[0], ow = w.out[1];
  const int64_t kh = w.kernel[0], kw = w.kernel[1], sh = w.strides[0], sw = w.strides[1];
  const int64_t pt = w.pad_begin[0], pl = w.pad_begin[1];
  for (int64_t oy = 0; oy < oh; ++oy) {
    const int64_t y0 = oy * sh - pt;
    const int64_t ky0 = std::max<int64_t>(0, -y0), ky1 = std::min<int64_t>(kh, ih - y0);
    // Taps inside the explicitly padded input (count_include_pad's divisor).
    const int64_t py = std::min<int64_t>(kh, ih + w.pad_end[0] - y0) - std::max<int64_t>(0, -pt - y0);
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t x0 = ox * sw - pl;
      const int64_t kx0 = std::max<int64_t>(0, -x0), kx1 = std::min<int64_t>(kw, iw - x0);
      const int64_t px = std::min<int64_t>(kw, iw + w.pad_end[1] - x0) - std::max<int64_t>(0, -pl - x0);
      *y++ = reduce(x + (y0 + ky0) * iw + x0, ky1 - ky0, kx0, kx1, iw, py * px);
    }
  }
}

bool plain_2d(const ref::Window& w) { return w.in.size() == 2 && w.dilations[0] == 1 && w.dilations[1] == 1; }

}  // namespace

PreparedKernel prepare_pool_f32(const Node& node, const Graph& graph) {
  if (!node.domain.empty()) return nullptr;
  const OpSpec* spec = find_op(node.op_type);
  if (spec == nullptr) return nullptr;
  const ReferenceKernel reference = spec->reference;

  if (node.op_type == "GlobalAveragePool")
    return [node, reference](const Inputs& in, std::vector<Tensor>& out) {
      const Tensor* x = in[0];
      if (!x || x->dtype != DType::f32 || x->rank() < 3 || out.empty()) return reference(node, in, out);
      const int64_t planes = x->shape[0] * x->shape[1];
      const int64_t size = x->numel() / std::max<int64_t>(planes, 1);
      if (size == 0) return reference(node, in, out);
      Shape y_shape = {x->shape[0], x->shape[1]};
      y_shape.resize(x->rank(), 1);
      out[0].reset(DType::f32, y_shape);
      const float* src = x->data<float>();
      float* dst = out[0].data<float>();
      for (int64_t p = 0; p < planes; ++p) {
        const float* v = src + p * size;
        double sum = 0;
        for (int64_t i = 0; i < size; ++i) sum += v[i];
        dst[p] = static_cast<float>(sum / static_cast<double>(size));
      }
    };

  const bool avg = node.op_type == "AveragePool", max = node.op_type == "MaxPool";
  if (!avg && !max) return nullptr;
  if (!node.has_attr("kernel_shape") || node.attr_int("storage_order", 0) != 0 || node.outputs.size() > 1)
    return nullptr;
  const int64_t count_include_pad = node.attr_int("count_include_pad", 0);
  if (count_include_pad != 0 && count_include_pad != 1) return nullptr;
  return [node, reference, avg, count_include_pad](const Inputs& in, std::vector<Tensor>& out) {
    const Tensor* x = in[0];
    if (!x || x->rank() != 4 || out.empty() || (avg && x->dtype != DType::f32) ||
        (x->dtype != DType::f32 && x->dtype != DType::u8 && x->dtype != DType::i8))
      return reference(node, in, out);
    const Shape spatial(x->shape.begin() + 2, x->shape.end());
    const ref::Window w =
        ref::resolve_window(node, spatial, ref::per_dim_attr(node, "kernel_shape", 2, 1, 1), ref::WindowRules::pool);
    if (!plain_2d(w)) return reference(node, in, out);
    const int64_t planes = x->shape[0] * x->shape[1];
    const int64_t in_size = w.in[0] * w.in[1], out_size = w.out[0] * w.out[1];
    out[0].reset(x->dtype, {x->shape[0], x->shape[1], w.out[0], w.out[1]});
    if (avg) {
      for (int64_t p = 0; p < planes; ++p)
        pool_plane_2d<float>(x->data<float>() + p * in_size, out[0].data<float>() + p * out_size, w,
                             [&](const float* row, int64_t rows, int64_t kx0, int64_t kx1, int64_t iw, int64_t padded) {
                               if (rows <= 0 || kx1 <= kx0) ref::fail(node, "a pooling window covers no input element");
                               double sum = 0;
                               for (int64_t r = 0; r < rows; ++r, row += iw)
                                 for (int64_t kx = kx0; kx < kx1; ++kx) sum += row[kx];
                               const int64_t divisor = count_include_pad ? padded : rows * (kx1 - kx0);
                               return static_cast<float>(sum / static_cast<double>(divisor));
                             });
      return;
    }
    ref::visit_dtype(x->dtype, [&](auto tag) {
      using T = decltype(tag);
      for (int64_t p = 0; p < planes; ++p)
        pool_plane_2d<T>(x->data<T>() + p * in_size, out[0].data<T>() + p * out_size, w,
                         [&](const T* row, int64_t rows, int64_t kx0, int64_t kx1, int64_t iw, int64_t) {
                           if (rows <= 0 || kx1 <= kx0) ref::fail(node, "a pooling window covers no input element");
                           T best = row[kx0];
                           for (int64_t r = 0; r < rows; ++r, row += iw)
                             for (int64_t kx = kx0; kx < kx1; ++kx) best = std::max(best, row[kx]);
                           return best;
                         });
    });
  };
}

PreparedKernel prepare_transpose(const Node& node, const Graph& graph) {
  if (node.op_type != "Transpose" || !node.domain.empty() || !node.has_attr("perm")) return nullptr;
  const std::vector<int64_t> perm = node.attr_ints("perm");
  const size_t rank = perm.size();
  if (rank < 2 || rank > 6) return nullptr;
  std::vector<bool> used(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(rank) || used[static_cast<size_t>(p)]) return nullptr;
    used[static_cast<size_t>(p)] = true;
  }
  const ReferenceKernel reference = find_op("Transpose")->reference;
  return [node, reference, perm, rank](const Inputs& in, std::vector<Tensor>& out) {
    const Tensor* x = in[0];
    if (!x || x->rank() != rank || out.empty()) return reference(node, in, out);
    // Output axis k walks input axis perm[k]; padded to 6 axes of extent 1 in front.
    int64_t extent[6] = {1, 1, 1, 1, 1, 1}, step[6] = {0, 0, 0, 0, 0, 0};
    std::vector<int64_t> in_stride(rank, 1);
    for (size_t k = rank; k-- > 1;) in_stride[k - 1] = in_stride[k] * x->shape[k];
    Shape y_shape(rank);
    for (size_t k = 0; k < rank; ++k) {
      y_shape[k] = x->shape[static_cast<size_t>(perm[k])];
      extent[6 - rank + k] = y_shape[k];
      step[6 - rank + k] = in_stride[static_cast<size_t>(perm[k])];
    }
    out[0].reset(x->dtype, y_shape);
    const size_t esize = dtype_size(x->dtype);
    const uint8_t* src = x->bytes.data();
    uint8_t* dst = out[0].bytes.data();
    auto copy = [&](auto tag) {
      using T = decltype(tag);
      const T* s = reinterpret_cast<const T*>(src);
      T* d = reinterpret_cast<T*>(dst);
      for (int64_t a = 0; a < extent[0]; ++a)
        for (int64_t b = 0; b < extent[1]; ++b)
          for (int64_t c = 0; c < extent[2]; ++c)
            for (int64_t e = 0; e < extent[3]; ++e)
              for (int64_t f = 0; f < extent[4]; ++f) {
                const T* base = s + a * step[0] + b * step[1] + c * step[2] + e * step[3] + f * step[4];
                const int64_t inner = step[5];
                for (int64_t g = 0; g < extent[5]; ++g) *d++ = base[g * inner];
              }
    };
    switch (esize) {
      case 1:
        copy(uint8_t{});
        break;
      case 4:
        copy(uint32_t{});
        break;
      case 8:
        copy(uint64_t{});
        break;
      default:
        return reference(node, in, out);
    }
  };
}

}  // namespace qplay::fast
