// Prepare stage of the integer ops (domain "qplay"): everything a kernel needs besides the
// tensors' data, validated once and computed once: zero points, per-channel fixed-point
// multipliers, clamp bounds (the "Quant" structs, from the constant inputs) and shapes (the
// "Geometry" structs, from the input shapes). Reference and fast kernels build them with the
// same functions, so they compute with the same multipliers by construction.
//
// Input layouts (all scales float32, zero points of the quantized value's type):
//   qplay.QConv               x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp [, bias int32]
//   qplay.QGemm               a, a_scale, a_zp, b, b_scale, b_zp [, bias int32] [, y_scale, y_zp]
//   qplay.QAdd                a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp
//   qplay.QAveragePool        x, x_scale, x_zp, y_scale, y_zp
//   qplay.QGlobalAveragePool  x, x_scale, x_zp, y_scale, y_zp
// Attribute `relu` (0/1) fuses a Relu into the output clamp. Docs: docs/quantization.md.
#pragma once

#include <cstdint>
#include <vector>

#include "graph/ir.h"
#include "runtime/integer/fixed_point.h"
#include "runtime/op_registry.h"

namespace qplay::integer {

// Domain of the integer ops in the op table and in lowered graphs.
inline constexpr const char* kDomain = "qplay";

// True for the integer op `op_type` of domain kDomain.
inline bool is_integer_op(const Node& node, const char* op_type) {
  return node.op_type == op_type && node.domain == kDomain;
}

// Eq. (8): y = clamp(zero_point + round(acc * multiplier[c]), lo, hi).
struct OutputStage {
  DType dtype = DType::u8;  // u8 or i8: the output zero point's type
  int32_t zero_point = 0;
  int32_t lo = 0, hi = 255;                      // the type's range; lo >= zero_point with a fused Relu
  std::vector<FixedPointMultiplier> multiplier;  // per output channel (QConv, QGemm), per window size (pools)
};

// ---- qplay.QConv (2-D, NCHW) ------------------------------------------------------------

struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0, group = 1;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t out_h = 0, out_w = 0;
};

// Resolves strides/dilations/pads/auto_pad/group against X [N,C,H,W] and W [M,C/group,kh,kw].
ConvGeometry conv_geometry(const Node& node, const Shape& x, const Shape& w);

struct QConvQuant {
  int32_t x_zero_point = 0;
  std::vector<int32_t> w_zero_point;  // per output channel
  std::vector<int32_t> bias;          // per output channel; 0 without a bias input
  OutputStage out;                    // multiplier[m] = x_scale * w_scale[m] / y_scale (eq. 5)
};

// From inputs 1..8 (input 0, the activation, may be null: only its zero point's type is used).
// Also proves the int32 accumulator cannot overflow for these weights (eq. 4), else throws.
QConvQuant make_qconv_quant(const Node& node, const Inputs& inputs);

// ---- qplay.QGemm: Y[rows, N] = A[rows, K] * B[K, N] (B given as [N, K] when transB=1) --------

struct GemmGeometry {
  int64_t rows = 0, depth = 0,
          cols = 0;  // A is viewed as [rows, depth]; rows = product of A's leading dims (1 for 1-D A)
  bool trans_b = false;
  Shape out_shape;  // A's leading dims + [cols]
};

GemmGeometry gemm_geometry(const Node& node, const Shape& a, const Shape& b);

struct QGemmQuant {
  int32_t a_zero_point = 0;
  std::vector<int32_t> b_zero_point;  // per output column
  std::vector<int32_t> bias;          // per output column; 0 without a bias input
  bool float_output = false;          // no y_scale: Y = float32(acc) * dequant_scale[n] (eq. 10)
  std::vector<float> dequant_scale;   // per column, a_scale * b_scale[n] in float32
  OutputStage out;                    // 8-bit output: multiplier[n] = a_scale * b_scale[n] / y_scale
};

QGemmQuant make_qgemm_quant(const Node& node, const Inputs& inputs);

// ---- qplay.QAdd ---------------------------------------------------------------------------

// TFLite-style rescaling to a common scale (eq. 11-13).
constexpr int kAddLeftShift = 20;

struct QAddQuant {
  int32_t a_zero_point = 0, b_zero_point = 0;
  FixedPointMultiplier a_multiplier, b_multiplier;  // a_scale / (2 max(a_scale, b_scale)), same for b
  OutputStage out;                                  // multiplier[0] = 2 max(a_scale, b_scale) / (2^20 y_scale)
};

QAddQuant make_qadd_quant(const Node& node, const Inputs& inputs);

// ---- qplay.QAveragePool / qplay.QGlobalAveragePool (2-D, NCHW) ------------------------------

struct PoolGeometry {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  int64_t out_h = 0, out_w = 0;
  bool count_include_pad = false;
  Shape out_shape;  // [N, C, out_h, out_w]; for a global pool [N, C, 1, ...] with the input's rank
};

// QAveragePool: 2-D windows. QGlobalAveragePool: any rank >= 3, the spatial dims seen as one
// row (in_h = 1, in_w = their product) covered by one window.
PoolGeometry pool_geometry(const Node& node, const Shape& x);

struct QPoolQuant {
  int32_t x_zero_point = 0;
  OutputStage out;  // multiplier[count] = x_scale / (count * y_scale), count = 1..kernel size (eq. 14)
};

QPoolQuant make_qpool_quant(const Node& node, const Inputs& inputs, int64_t max_count);

// ---- shared helpers -----------------------------------------------------------------------

bool is_8bit(DType t);
// Output range of an 8-bit type, with lo raised to the zero point when `relu` (eq. 9).
OutputStage output_stage(DType dtype, int32_t zero_point, bool relu);

}  // namespace qplay::integer
