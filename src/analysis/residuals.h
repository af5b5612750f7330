// The residual Adds of a QDQ model: each Add reads two activations quantized on their own grids
// and requantizes the sum onto a third. When the input scales differ a lot, the finer input's
// precision is lost in the sum's coarser grid. For every Add this reports the input and output
// scales, the ratio of the input scales (larger / smaller), and the error the output
// requantization adds: the float Add (of the dequantized inputs, with its fused Relu) against
// the output Q/DQ, over N images.
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
};

struct ResidualStudy {
  int64_t images = 0;
  std::vector<AddResidual> adds;  // in graph order
};

struct ResidualOptions {
  int64_t limit = 200;
  int64_t batch = 50;
  int threads = 2;
  Progress progress;  // images done after each batch; returning false cancels (throws Cancelled)
};

ResidualStudy study_residuals(std::shared_ptr<const Graph> quantized, const Dataset& data,
                              const ResidualOptions& options);

}  // namespace qplay
