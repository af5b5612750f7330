// Per-layer error of a quantized model against its FP32 model, over images of a data set.
//
// accumulated: both models run whole; each quantized layer's result (its output DQ) is compared
//              with its FP32 counterpart's output. The error includes everything upstream.
// isolated:    only this layer is quantized: the FP32 model's input activations of the layer are
//              fed into the quantized layer's own nodes (input Q/DQ, weight/bias DQ, compute, Relu,
//              output Q/DQ) and the result compared with the FP32 layer's output.
//
// Batches are spread over threads like evaluate(); every metric streams from the executor's
// hook into per-batch accumulators merged in batch order, so no tensor outlives its batch and
// results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "analysis/batches.h"
#include "analysis/layers.h"
#include "analysis/match.h"
#include "analysis/metrics.h"
#include "analysis/quant_grid.h"
#include "io/cifar10.h"
#include "runtime/executor.h"

namespace qplay {

struct CompareOptions {
  int64_t limit = -1;  // the first N images; -1 = all
  int64_t image = -1;  // >= 0: only this image (index into the data set); overrides limit
  int64_t batch = 50;  // images per batch (memory grows with it: every compared tensor of a batch)
  int threads = 2;
  bool isolated = true;  // also run each layer alone on FP32 inputs
  bool fast_kernels = true;
  Progress progress;  // images done after each batch; returning false cancels (throws Cancelled)
  // Optional executors of the two graphs, already built (they must run exactly `fp32` and
  // `quantized`); otherwise compare_models builds its own.
  std::shared_ptr<const Executor> fp32_executor;
  std::shared_ptr<const Executor> quantized_executor;
};

struct LayerComparison {
  std::string name;  // quantized layer (its compute node)
  std::string kind;
  std::string op_type;
  std::string fp32_name;       // the FP32 counterpart
  std::string compared_value;  // quantized model value measured (layer_result)
  std::string fp32_value;      // FP32 layer output it is measured against
  std::vector<std::string> quant_params;
  std::string output_params;                                // "" when the output is not quantized
  double scale = std::numeric_limits<double>::quiet_NaN();  // output grid step (per tensor), else NaN

  ErrorMetrics accumulated;
  bool has_isolated = false;
  ErrorMetrics isolated;
  bool has_codes = false;    // 8-bit output codes were seen
  CodeStats codes;           // output codes of the full quantized run
  CodeStats isolated_codes;  // output codes of the isolated run
  // The FP32 layer output against the output grid (set when the output is quantized): the values
  // quantizing would saturate. Both runs quantize these same reference values.
  bool has_clipping = false;
  ClippingCounts clipping;
};

// What the runs of one matched layer added up over all batches.
struct LayerTotals {
  ErrorAccumulator accumulated;
  bool has_isolated = false;  // the isolated layer ran
  ErrorAccumulator isolated;
  CodeAccumulator codes;  // no counts: no 8-bit output codes were seen
  CodeAccumulator isolated_codes;
  ClippingCounts clipping;  // of the FP32 reference against output_grid
};

// One layer's row of a Comparison (compare_models and compare_cached both build theirs here).
// `output_grid`: the grid of the quantized layer's output, null when it is not quantized.
LayerComparison summarize_layer(const Layer& quantized, const Layer& fp32, const QuantGrid* output_grid,
                                const LayerTotals& totals);

struct AccuracyBreakdown {
  int64_t images = 0;
  int64_t fp32_correct = 0;
  int64_t quantized_correct = 0;
  std::vector<int> labels;  // per compared image
  std::vector<int> fp32_predictions;
  std::vector<int> quantized_predictions;
  std::vector<int64_t> differing_images;  // data-set indices whose predicted class differs

  double fp32_accuracy() const { return images ? double(fp32_correct) / double(images) : 0.0; }
  double quantized_accuracy() const { return images ? double(quantized_correct) / double(images) : 0.0; }
};

struct Comparison {
  int64_t first_image = 0;
  int64_t images = 0;
  bool single_image = false;            // --image K
  std::vector<LayerComparison> layers;  // matched layers, in the quantized model's order
  std::vector<std::string> unmatched_quantized;
  std::vector<std::string> unmatched_fp32;
  AccuracyBreakdown accuracy;
  double seconds = 0.0;
};

Comparison compare_models(std::shared_ptr<const Graph> fp32, std::shared_ptr<const Graph> quantized,
                          const Dataset& data, const CompareOptions& options);

// A quantized layer's nodes as a graph of their own, for the isolated run: FP32-domain inputs in
// (the values named in `inputs`, one per Layer::inputs entry), the layer's result (float) and
// output codes out. Input Qs of the layer's DQs are included; a QOperator layer gets a synthesized
// QuantizeLinear for inputs that are codes and a DequantizeLinear for its output.
struct IsolatedLayer {
  Graph graph;
  std::vector<std::string> inputs;
  std::string result;  // float32 output to compare
  std::string codes;   // output codes, "" when the output is not quantized
};

IsolatedLayer isolate_layer(const Graph& g, const Layer& layer, const std::vector<QuantParam>& params);

}  // namespace qplay
