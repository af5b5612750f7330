// The residual Adds of a QDQ model: each Add reads two activations quantized on their own grids
// and requantizes the sum onto a third. When the input scales differ a lot, the finer input's
// precision is lost in the sum's coarser grid. For every Add this reports the input and output
// scales, the ratio of the input scales (larger / smaller), and the error the output
// requantization adds: the float Add (of the dequantized inputs, with its fused Relu) against
// the output Q/DQ, over N images. Given the FP32 model, also the error of each Add's output (the
// value the next layer reads) against the matched FP32 Add's output: everything upstream plus
// this Add's requantization, so the two can be told apart.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "analysis/batches.h"
#include "analysis/metrics.h"
#include "io/cifar10.h"

namespace qplay {

struct AddResidual {
  std::string name;                 // the Add layer (its node name)
  std::vector<std::string> inputs;  // FP32-domain values entering the input Qs
  std::vector<double> input_scales; // per-tensor step of each input grid, NaN when not quantized
  double scale_ratio = std::numeric_limits<double>::quiet_NaN();  // larger / smaller input scale
  std::string float_value;          // float sum (after the fused Relu), before the output Q
  std::string dequantized_value;    // the output DQ
  double output_scale = std::numeric_limits<double>::quiet_NaN();
  ErrorMetrics requantization;      // float_value (reference) vs dequantized_value
  // With an FP32 model, when this Add has an FP32 counterpart (match_layers):
  bool has_fp32 = false;
  std::string fp32_layer;           // the matched FP32 layer
  std::string fp32_value;           // its output (after its fused Relu)
  std::string compared_value;       // this Add's result (layer_result: its output DQ)
  ErrorMetrics against_fp32;        // fp32_value (reference) vs compared_value
};

struct ResidualStudy {
  int64_t images = 0;
  bool has_fp32 = false;          // an FP32 model was given
  std::vector<AddResidual> adds;  // in graph order
};

struct ResidualOptions {
  int64_t limit = 200;
  int64_t batch = 50;
  int threads = 2;
  Progress progress;  // images done after each batch; returning false cancels (throws Cancelled)
};

// `fp32`: the FP32 model, optional. When given, at least one Add must match an FP32 layer.
ResidualStudy study_residuals(std::shared_ptr<const Graph> quantized, const Dataset& data,
                              const ResidualOptions& options, std::shared_ptr<const Graph> fp32 = nullptr);

}  // namespace qplay
