#include "quantize/quant_math.h"

#include <algorithm>
#include <cmath>

namespace qplay::quantize {

IntRange storage_range(DType storage) {
  if (storage == DType::u8) return {0, 255};
  if (storage == DType::i8) return {-128, 127};
  throw Error(std::string("quantized storage must be uint8 or int8, not ") + dtype_name(storage));
}

IntRange int_range(DType storage, int bits, bool symmetric) {
  if (bits < 2 || bits > 8) throw Error("bit width " + std::to_string(bits) + " is outside 2..8");
  const int32_t levels = 1 << bits;  // 2^b codes
  const int32_t half = levels / 2;   // 2^(b-1)
  if (storage == DType::u8) return symmetric ? IntRange{1, levels - 1} : IntRange{0, levels - 1};
  if (storage == DType::i8) return symmetric ? IntRange{-(half - 1), half - 1} : IntRange{-half, half - 1};
  throw Error(std::string("quantized storage must be uint8 or int8, not ") + dtype_name(storage));
}

ScaleZeroPoint choose_scale_zero_point(float lo, float hi, IntRange range, bool symmetric) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  ScaleZeroPoint p;
  const float steps = static_cast<float>(range.qmax - range.qmin);
  if (symmetric) {
    const float a = std::max(-lo, hi);
    p.zero_point = (range.qmin + range.qmax) / 2;  // 0 for signed, 2^(b-1) for unsigned [1, 2^b - 1]
    p.scale = a > 0.0f ? 2.0f * a / steps : 1.0f;
    return p;
  }
  if (hi - lo <= 0.0f) {
    p.zero_point = std::clamp<int32_t>(0, range.qmin, range.qmax);
    p.scale = 1.0f;
    return p;
  }
  p.scale = (hi - lo) / steps;
  const float zp = std::nearbyint(static_cast<float>(range.qmin) - lo / p.scale);
  p.zero_point = std::clamp(static_cast<int32_t>(zp), range.qmin, range.qmax);
  return p;
}

int32_t quantize_value(float x, ScaleZeroPoint p, IntRange range) {
  const float q = std::nearbyint(x / p.scale);  // default rounding mode: half to even
  const float shifted = q + static_cast<float>(p.zero_point);
  return static_cast<int32_t>(std::clamp(shifted, static_cast<float>(range.qmin), static_cast<float>(range.qmax)));
}

float range_low(ScaleZeroPoint p, IntRange range) { return dequantize_value(range.qmin, p); }
float range_high(ScaleZeroPoint p, IntRange range) { return dequantize_value(range.qmax, p); }

}  // namespace qplay::quantize
