// Simulate mode against integer mode, layer by layer: how far the integer-only arithmetic
// (runtime/integer, docs/quantization.md) lands from the float simulation of the same QDQ or
// QOperator model. Both runs come from the re-evaluation caches (BaseCache, one per mode) over the
// same images, so the comparison reads kept activation codes and costs no inference of its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/metrics.h"
#include "analysis/reevaluate.h"

namespace qplay {

struct ModeLayerDifference {
  std::string layer;        // the layer's compute node
  std::string codes_value;  // its output codes (the checkpoint both caches keep)
  int64_t codes = 0;        // compared over all images
  int64_t differing = 0;    // codes that differ between the modes
  int64_t max_code_difference = 0;
  // Integer mode's dequantized output against simulate mode's (the reference): SQNR, MSE, ...;
  // rmse/scale is in units of the output grid's step.
  ErrorMetrics error;
};

struct ModeComparison {
  int64_t images = 0;
  std::vector<ModeLayerDifference> layers;  // graph order
  int64_t top1_agreement = 0;               // images whose top-1 class is the same in both modes
  double max_output_difference = 0.0;       // largest |simulate - integer| over the model outputs
  double simulate_accuracy = 0.0, integer_accuracy = 0.0;
};

// `simulate` and `integer` are capture_base caches of the same model (the same Graph object or
// one loaded from the same file) in those two modes, over the same images; throws Error otherwise.
ModeComparison compare_modes(const BaseCache& simulate, const BaseCache& integer);

}  // namespace qplay
