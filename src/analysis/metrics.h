// Error of a quantized path y against its FP32 reference x, and use of the integer grid.
//
// All sums stream: an accumulator takes one sample (image) at a time, so 10,000 images never
// need their tensors stored, and accumulators of separate batches merge. Sums are in double;
// merging in a fixed (batch) order makes results independent of the thread count.
//
//   SQNR  = 20 log10(||x|| / ||x - y||) dB      (+inf when y == x)
//   MSE   = ||x - y||^2 / n,   cosine = <x, y> / (||x|| ||y||)
//   rmse/scale = sqrt(MSE) / scale: 1/sqrt(12) ~ 0.289 when the error is pure rounding to the grid
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "analysis/quant_grid.h"
#include "graph/ir.h"

namespace qplay {

// 20 log10(sqrt(signal_sq) / sqrt(noise_sq)): +inf when noise_sq == 0 (identical tensors),
// -inf when only the signal is 0.
double sqnr_db(double signal_sq, double noise_sq);

struct ErrorAccumulator {
  // Pooled over every element of every sample, as if all samples were one vector (the way
  // ONNX Runtime's qdq_loss_debug computes its SQNR).
  int64_t elements = 0;
  double sum_x2 = 0.0;    // ||x||^2
  double sum_y2 = 0.0;    // ||y||^2
  double sum_xy = 0.0;    // <x, y>
  double sum_err2 = 0.0;  // ||x - y||^2, summed directly (no cancellation)
  double max_abs_err = 0.0;
  // Per sample SQNR, for the mean over samples.
  int64_t samples = 0;
  int64_t exact_samples = 0;           // y == x: SQNR +inf, left out of the mean
  int64_t zero_reference_samples = 0;  // x == 0 but y != x: SQNR -inf, left out of the mean
  double sum_sample_sqnr_db = 0.0;     // over the other samples
};

// Adds one sample of n elements.
void add_sample(ErrorAccumulator& acc, const float* x, const float* y, int64_t n);

// Clipping, measured on the FP32 reference x against the grid it is quantized on: x is clipped
// when quantizing it saturates, i.e. x lies outside
//   [s(qmin - Z) - s/2,  s(qmax - Z) + s/2]
// (half a step beyond the extreme grid points, where round(x / s) + Z passes qmin or qmax).
// Codes cannot tell this: a code at qmin may hold an exact value (every ReLU zero when Z = qmin).
struct ClippingCounts {
  int64_t values = 0;  // reference values checked
  int64_t below = 0;   // x < s(qmin - Z) - s/2
  int64_t above = 0;   // x > s(qmax - Z) + s/2
};

// The two bounds in float32, chosen so that comparing a float32 x with them gives exactly the
// comparison with the bounds computed in double (so vector kernels need no double compares).
struct ClipBounds {
  float below = 0.0f;  // clipped when x < below
  float above = 0.0f;  // clipped when x > above
};
ClipBounds clip_bounds(double scale, int64_t zero_point, int64_t qmin, int64_t qmax);
ClipBounds clip_bounds(const QuantGrid& grid, size_t channel);

void add_clipped(ClippingCounts& acc, const float* x, int64_t n, const ClipBounds& bounds);
// x laid out as `shape` (float32, any rank); a per-channel grid takes its channel from grid.axis.
void add_clipped(ClippingCounts& acc, const float* x, const Shape& shape, const QuantGrid& grid);
void merge(ClippingCounts& into, const ClippingCounts& from);
double clipping_rate(const ClippingCounts& c);  // (below + above) / values, 0 when no values

// Sums of one sample, computed elsewhere (e.g. by a fast kernel): adds them as add_sample does.
struct SampleSums {
  int64_t elements = 0;
  double x2 = 0.0, y2 = 0.0, xy = 0.0, err2 = 0.0, max_abs_err = 0.0;
  ClippingCounts clipping;  // of x, when the kernel was given clip bounds (add_sample_sums ignores it)
};
void add_sample_sums(ErrorAccumulator& acc, const SampleSums& s);
// Adds each row of a batch (first dimension) as one sample. x and y are float32 with the same
// number of elements (shapes may differ, e.g. [N,64,1,1] vs [N,64]).
void add_batch(ErrorAccumulator& acc, const Tensor& x, const Tensor& y);
void merge(ErrorAccumulator& into, const ErrorAccumulator& from);

struct ErrorMetrics {
  int64_t elements = 0;
  int64_t samples = 0;
  double sqnr_db = 0.0;              // pooled
  double mean_sample_sqnr_db = 0.0;  // mean over samples with a finite SQNR; pooled value when none
  int64_t exact_samples = 0;
  double mse = 0.0;
  double rmse = 0.0;
  double cosine = 0.0;  // 1 when both are all zero, 0 when only one is
  double max_abs = 0.0;
  double rmse_over_scale = std::numeric_limits<double>::quiet_NaN();  // NaN without a scale
};

// `scale`: the output grid's step (NaN when the value is not quantized).
ErrorMetrics error_metrics(const ErrorAccumulator& acc, double scale = std::numeric_limits<double>::quiet_NaN());

// How a quantized tensor uses its integer grid: one counter per code.
struct CodeAccumulator {
  int64_t qmin = 0;
  int64_t qmax = 255;
  std::vector<int64_t> counts;  // counts[q - qmin]
};

// For 8-bit codes (u8, i8); throws for wider types (their grids are not worth a counter each).
CodeAccumulator make_code_accumulator(DType dtype);
void add_codes(CodeAccumulator& acc, const Tensor& codes);
void merge(CodeAccumulator& into, const CodeAccumulator& from);

struct CodeStats {
  int64_t codes = 0;
  int64_t qmin = 0;
  int64_t qmax = 0;
  int bits = 0;
  int64_t at_qmin = 0;
  int64_t at_qmax = 0;
  // (at_qmin + at_qmax) / codes: codes at either end of the grid. Saturated values land there, but
  // so do exact ones (ReLU zeros when Z = qmin), so this is not the clipping rate (ClippingCounts).
  double at_limits_rate = 0.0;
  int64_t distinct = 0;        // codes used at least once
  double range_use = 0.0;      // distinct / 2^bits
};

CodeStats code_stats(const CodeAccumulator& acc);

}  // namespace qplay
