// Empirical bias correction (Nagel et al., 2019, section 4.2, the empirical variant): weight and
// input rounding shift the mean of a layer's output. Measured per output channel on the
// calibration images, E[y_quantized] - E[y_fp32] is subtracted from the layer's bias.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/cifar10.h"
#include "quantize/calibration.h"
#include "quantize/qdq.h"

namespace qplay::quantize {

// Mean of each channel (axis 1) of the named outputs over all images.
std::map<std::string, std::vector<double>> channel_means(const Graph& model, const std::vector<std::string>& values,
                                                         const Dataset& images, const BatchRunOptions& options);

struct BiasCorrectionReport {
  int layers = 0;
  int levels = 0;                      // depth levels (one prefix run each per round)
  std::vector<double> mean_abs_shift;  // per round: mean over channels of |E[yq] - E[y]| before correcting
};

// The part of `g` that computes `outputs` (now its graph outputs); other nodes are dropped.
Graph prefix_graph(const Graph& g, const std::vector<std::string>& outputs);

// Adjusts, in `fp32`, the bias of every quantized Conv/Gemm with a quantized bias, so that the
// QDQ model insert_qdq(fp32, plan) matches the FP32 means. Layers are corrected in depth order
// (a layer's shift is measured once every layer before it is corrected: correcting all at once
// would count an upstream shift twice, once upstream and once where it arrives). Layers of the
// same depth share one run of the model's prefix up to them. `rounds` > 1 repeats the sweep.
BiasCorrectionReport correct_biases(Graph& fp32, const QuantPlan& plan, const Dataset& images, int rounds,
                                    const BatchRunOptions& options);

}  // namespace qplay::quantize
