// Scale and zero-point arithmetic of the QDQ quantizer, for any width from 2 to 8 bits in 8-bit
// storage. A quantized value q stands for r = scale * (q - zero_point)   (1)
// and is restricted to the integer range [qmin, qmax] of the chosen width (docs/QUANTIZE.md).
#pragma once

#include <cstdint>
#include <vector>

#include "graph/ir.h"

namespace qplay::quantize {

// The integers a b-bit code may take inside its 8-bit storage type.
struct IntRange {
  int32_t qmin = 0;
  int32_t qmax = 255;
};

// b-bit range in `storage` (u8 or i8):
//   unsigned:            [0, 2^b - 1]                  (u8 storage)
//   signed:              [-2^(b-1), 2^(b-1) - 1]        (i8 storage)
//   symmetric (restricted) keeps the range balanced around its centre so +r and -r are both
//   representable: signed [-(2^(b-1) - 1), 2^(b-1) - 1], unsigned [1, 2^b - 1] around 2^(b-1).
IntRange int_range(DType storage, int bits, bool symmetric);

// The range of the storage type itself ([0,255] or [-128,127]).
IntRange storage_range(DType storage);

struct ScaleZeroPoint {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// Maps the real interval [lo, hi] onto [qmin, qmax]. The interval is first widened to contain 0
// (so that 0, the padding and ReLU value, is exact). Asymmetric: scale = (hi - lo) / (qmax - qmin),
// zero_point = round(qmin - lo / scale). Symmetric: a = max(|lo|, |hi|), scale = 2a / (qmax - qmin),
// zero_point = the centre of the range (0 for signed, 2^(b-1) for unsigned). An empty interval
// (all zeros) gets scale 1.
ScaleZeroPoint choose_scale_zero_point(float lo, float hi, IntRange range, bool symmetric);

// QuantizeLinear's arithmetic (ONNX): q = clamp(round_half_even(x / scale) + zero_point, range).
int32_t quantize_value(float x, ScaleZeroPoint p, IntRange range);
// DequantizeLinear's: r = (q - zero_point) * scale, in float32.
inline float dequantize_value(int32_t q, ScaleZeroPoint p) { return static_cast<float>(q - p.zero_point) * p.scale; }

// Real values that the range's ends stand for: [scale*(qmin - zp), scale*(qmax - zp)].
float range_low(ScaleZeroPoint p, IntRange range);
float range_high(ScaleZeroPoint p, IntRange range);

}  // namespace qplay::quantize
