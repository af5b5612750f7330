// Hessian-guided weight rounding (the GPTQ algorithm of Frantar et al., 2022; like AdaRound it
// chooses each weight's rounding direction by its effect on the layer's output rather than
// rounding to nearest). For a layer y = W x, with H = E[x x^T] over calibration inputs, rounding
// the weights column by column and moving each column's rounding error onto the columns not
// yet rounded (weighted by H^-1) minimises ||(W_q - W) x||^2 far better than nearest rounding
// at 4-5 bits.
#pragma once

#include "io/cifar10.h"
#include "quantize/calibration.h"
#include "quantize/qdq.h"

namespace qplay::quantize {

struct RoundingOptions {
  int64_t images = 256;              // calibration images the input statistics come from
  int64_t samples_per_layer = 8192;  // input vectors (conv patches) per layer, spread evenly
  double damping = 0.01;             // H += damping * mean(diag H) * I (keeps H invertible)
};

// Replaces, in `fp32`, every weight in plan.weights (Conv with 2-D kernels and group 1, Gemm,
// MatMul) by values on its quantization grid (so insert_qdq stores exactly those codes).
// H comes from the FP32 model's inputs to each layer. Returns the number of layers rounded.
int round_weights_gptq(Graph& fp32, const QuantPlan& plan, const Dataset& images, const RoundingOptions& options,
                       const BatchRunOptions& run);

// The algorithm on one matrix: W is [rows x k] row-major, H is k x k (row-major, symmetric),
// params[r] quantizes row r (one entry = the same for all rows). W is overwritten by values on
// the grid. Exposed for tests.
void gptq_round_rows(std::vector<double>& w, int64_t rows, int64_t k, std::vector<double> h,
                     const std::vector<ScaleZeroPoint>& params, IntRange codes, double damping);

}  // namespace qplay::quantize
