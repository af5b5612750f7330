// The integer grid of one quantization parameter set:  r = scale * (q - zero_point),
// q in [qmin, qmax]. Real values outside [scale*(qmin - zp), scale*(qmax - zp)] are clipped.
#pragma once

#include <cstdint>
#include <vector>

#include "graph/ir.h"
#include "graph/quant_params.h"

namespace qplay {

struct QuantGrid {
  DType dtype = DType::u8;
  int64_t qmin = 0;
  int64_t qmax = 255;
  int64_t axis = -1;                 // -1: per tensor; otherwise the channel axis
  std::vector<float> scales;         // one per channel (one when per tensor)
  std::vector<int64_t> zero_points;  // same count as scales

  int bits() const;
  size_t channels() const { return scales.size(); }
  double clip_min(size_t channel) const { return double(scales[channel]) * double(qmin - zero_points[channel]); }
  double clip_max(size_t channel) const { return double(scales[channel]) * double(qmax - zero_points[channel]); }
};

// Range of an integer storage type (u8: 0..255, i8: -128..127, i32).
int64_t dtype_min(DType t);
int64_t dtype_max(DType t);

// The grid of a listed parameter set. Throws qplay::Error naming the tensor when its scale is
// not a constant (computed at run time), since then there is no fixed grid to describe.
QuantGrid quant_grid(const QuantParam& p);

// Float32 values of integer codes, as DequantizeLinear computes them: float(q - zp) * scale,
// the subtraction exact in integers and the product in float32. Per channel along grid.axis.
Tensor dequantize(const Tensor& codes, const QuantGrid& grid);

}  // namespace qplay
