// Per-layer quantization sensitivity of a QDQ model: for every layer, accuracy with only that
// layer quantized (every other layer bypassed to FP32, see bypass_layer in edits.h) and with
// every layer but that one quantized; optionally accuracy with the layer's weights narrowed to
// each of a list of bit widths. Every variant is an edit list re-evaluated incrementally from
// one cache of the quantized model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analysis/batches.h"
#include "io/cifar10.h"

namespace qplay {

struct LayerSensitivity {
  std::string name;
  std::string kind;
  double only_this_quantized = 0.0;  // accuracy, every other layer bypassed
  double all_but_this = 0.0;         // accuracy, this layer bypassed
  std::vector<int> weight_bits;      // the sweep's bit widths (empty without a weight or a sweep)
  std::vector<double> weight_bits_accuracy;
};

struct Sensitivity {
  int64_t images = 0;
  double fp32_accuracy = 0.0;       // the FP32 model
  double quantized_accuracy = 0.0;  // the quantized model as it is
  double all_bypassed_accuracy = 0.0;
  std::vector<LayerSensitivity> layers;
};

struct SensitivityOptions {
  int64_t limit = 200;
  int threads = 2;
  std::vector<int> weight_bits;  // e.g. {2, 4, 6, 8}; empty: no sweep
  // Steps done: the capture and the FP32 run count one each, then one per variant re-evaluated.
  // Returning false cancels (throws Cancelled), also in the middle of a step.
  Progress progress;
};

Sensitivity study_sensitivity(std::shared_ptr<const Graph> fp32, std::shared_ptr<const Graph> quantized,
                              const Dataset& data, const SensitivityOptions& options);

}  // namespace qplay
