// Calibration methods: each turns an activation's statistics into the real interval [lo, hi]
// that its quantization grid will cover. Values outside it saturate (are clipped).
#pragma once

#include <string>

#include "quantize/activation_stats.h"
#include "quantize/quant_math.h"

namespace qplay::quantize {

enum class CalibrationMethod { minmax, percentile, entropy, mse };

// "minmax" | "percentile" | "entropy" | "mse"; throws qplay::Error naming the accepted ones.
CalibrationMethod parse_calibration_method(const std::string& name);
const char* calibration_method_name(CalibrationMethod m);

struct RealRange {
  float lo = 0.0f;
  float hi = 0.0f;
};

// [min, max] as seen.
RealRange minmax_range(const ActivationStats& s);

// [value at rank (100 - p)%, value at rank p%] of all values (exact zeros included), linearly
// interpolated inside a histogram bin and kept within [min, max]. A one-signed tensor (ReLU
// output) thus keeps its low end at 0 and clips only its top (100 - p)%.
RealRange percentile_range(const ActivationStats& s, double percentile);

// TensorRT-style entropy calibration on the histogram of |x|: for each threshold t (in bins,
// from `levels` up), P = the histogram cut at t with the tail added to its last bin, Q = P's
// bins merged into `levels` groups and spread back evenly over the bins that were non-empty;
// picks the t minimising KL(P || Q). The range is [-t, t] cut to [min, max]. `levels` is the
// number of codes on one side of zero (2^b for a one-signed tensor, 2^(b-1) otherwise).
RealRange entropy_range(const ActivationStats& s, int levels);

// Minimises the expected squared quantization error over the histogram: values inside the grid
// cost scale^2 / 12 (uniform rounding noise), values outside cost their squared distance to the
// nearest end. Searches [a * min, a * max] for a in (0, 1], then refines each end alone.
RealRange mse_range(const ActivationStats& s, IntRange range, bool symmetric);

struct RangeOptions {
  CalibrationMethod method = CalibrationMethod::minmax;
  double percentile = 99.99;
  IntRange codes;  // the integer range the tensor will be quantized to
  bool symmetric = false;
};

// Dispatches on the method. Integer-valued tensors whose whole range fits the codes (raw 0..255
// pixels at 8 bits) always get [min, max]: that grid represents every value exactly.
RealRange choose_range(const ActivationStats& s, const RangeOptions& options);

}  // namespace qplay::quantize
