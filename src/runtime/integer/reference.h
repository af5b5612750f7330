// Reference kernels of the integer ops: plain loops over the prepared parameters, the
// specification the fast kernels must match bit for bit. Never tune them.
// Equation numbers refer to docs/quantization.md.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "runtime/integer/params.h"

namespace qplay::integer {

// Eq. (3)+(8): y[n,m,oy,ox] = requantize(bias[m] + sum over c, ky, kx of
//   (x[n,c,iy,ix] - x_zp) * (w[m,c,ky,kx] - w_zp[m])), iy = oy*stride - pad + ky*dilation.
// Taps in the padding are skipped, which is what padding with x_zp (real value 0) means.
template <typename X, typename W, typename Y>
void qconv_reference(const ConvGeometry& g, const QConvQuant& q, const X* x, const W* w, Y* y) {
  const int64_t group_in = g.in_channels / g.group, group_out = g.out_channels / g.group;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t m = 0; m < g.out_channels; ++m) {
      const int64_t first_c = (m / group_out) * group_in;
      for (int64_t oy = 0; oy < g.out_h; ++oy)
        for (int64_t ox = 0; ox < g.out_w; ++ox) {
          int32_t acc = q.bias[m];  // cannot overflow: bounded by make_qconv_quant (eq. 4)
          for (int64_t c = 0; c < group_in; ++c)
            for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
              const int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
              if (iy < 0 || iy >= g.in_h) continue;
              for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
                const int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
                if (ix < 0 || ix >= g.in_w) continue;
                const int32_t xv = x[((n * g.in_channels + first_c + c) * g.in_h + iy) * g.in_w + ix];
                const int32_t wv = w[((m * group_in + c) * g.kernel_h + ky) * g.kernel_w + kx];
                acc += (xv - q.x_zero_point) * (wv - q.w_zero_point[m]);
              }
            }
          y[((n * g.out_channels + m) * g.out_h + oy) * g.out_w + ox] =
              static_cast<Y>(requantize(acc, q.out.multiplier[m], q.out.zero_point, q.out.lo, q.out.hi));
        }
    }
}

// Eq. (3)+(8) for a matrix product, or eq. (10) when the output is float:
// acc[r,n] = bias[n] + sum_k (a[r,k] - a_zp) * (b[k,n] - b_zp[n]).
template <typename A, typename B, typename Y>
void qgemm_reference(const GemmGeometry& g, const QGemmQuant& q, const A* a, const B* b, Y* y) {
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t n = 0; n < g.cols; ++n) {
      int32_t acc = q.bias[n];  // bounded by make_qgemm_quant (eq. 4)
      for (int64_t k = 0; k < g.depth; ++k) {
        const int32_t av = a[r * g.depth + k];
        const int32_t bv = g.trans_b ? b[n * g.depth + k] : b[k * g.cols + n];
        acc += (av - q.a_zero_point) * (bv - q.b_zero_point[n]);
      }
      if constexpr (std::is_same_v<Y, float>)
        y[r * g.cols + n] = static_cast<float>(acc) * q.dequant_scale[n];
      else
        y[r * g.cols + n] = static_cast<Y>(requantize(acc, q.out.multiplier[n], q.out.zero_point, q.out.lo, q.out.hi));
    }
}

// Eq. (11)-(13), one element: both inputs to a common fine scale, add, requantize.
inline int32_t qadd_value(const QAddQuant& q, int32_t a, int32_t b) {
  const int32_t a_shifted = (a - q.a_zero_point) * (1 << kAddLeftShift);  // |.| <= 255 * 2^20 < 2^28
  const int32_t b_shifted = (b - q.b_zero_point) * (1 << kAddLeftShift);
  const int32_t sum = static_cast<int32_t>(multiply_by_fixed_point(a_shifted, q.a_multiplier) +
                                           multiply_by_fixed_point(b_shifted, q.b_multiplier));  // |.| < 2^28
  return requantize(sum, q.out.multiplier[0], q.out.zero_point, q.out.lo, q.out.hi);
}

// Y = A + B with numpy broadcasting; `a_strides`/`b_strides` are per output dim (0 = broadcast).
template <typename A, typename B, typename Y>
void qadd_reference(const QAddQuant& q, const Shape& out_shape, const A* a, const std::vector<int64_t>& a_strides,
                    const B* b, const std::vector<int64_t>& b_strides, Y* y) {
  const size_t rank = out_shape.size();
  std::vector<int64_t> index(rank, 0);
  const int64_t total = shape_numel(out_shape);
  for (int64_t i = 0; i < total; ++i) {
    int64_t ia = 0, ib = 0;
    for (size_t d = 0; d < rank; ++d) {
      ia += index[d] * a_strides[d];
      ib += index[d] * b_strides[d];
    }
    y[i] = static_cast<Y>(qadd_value(q, a[ia], b[ib]));
    for (size_t d = rank; d-- > 0;) {  // next row-major index
      if (++index[d] < out_shape[d]) break;
      index[d] = 0;
    }
  }
}

// Eq. (14): y = requantize(sum over the window of (x - x_zp), multiplier[count]), where count is
// the number of input elements in the window (or the full kernel size with count_include_pad).
template <typename X, typename Y>
void qaverage_pool_reference(const PoolGeometry& g, const QPoolQuant& q, const X* x, Y* y) {
  for (int64_t nc = 0; nc < g.batch * g.channels; ++nc) {
    const X* plane = x + nc * g.in_h * g.in_w;
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        int32_t sum = 0;  // at most 2^23 terms of |x - x_zp| <= 255 (checked by make_qpool_quant)
        int64_t count = 0;
        for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
          const int64_t iy = oy * g.stride_h - g.pad_top + ky;
          if (iy < 0 || iy >= g.in_h) continue;
          for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
            const int64_t ix = ox * g.stride_w - g.pad_left + kx;
            if (ix < 0 || ix >= g.in_w) continue;
            sum += static_cast<int32_t>(plane[iy * g.in_w + ix]) - q.x_zero_point;
            ++count;
          }
        }
        if (g.count_include_pad) count = g.kernel_h * g.kernel_w;
        y[(nc * g.out_h + oy) * g.out_w + ox] =
            static_cast<Y>(count == 0 ? q.out.zero_point
                                      : requantize(sum, q.out.multiplier[count], q.out.zero_point, q.out.lo, q.out.hi));
      }
  }
}

}  // namespace qplay::integer
