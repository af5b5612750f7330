// Value distributions of one tensor next to its quantization grid: float values and dequantized
// values of an activation over N images, or float and dequantized weights (with per-output-
// channel ranges), binned on common edges so the two histograms can be overlaid.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/quant_grid.h"
#include "io/cifar10.h"

namespace qplay {

// Equal-width bins over [lo, hi]; values outside are counted in below/above, so the counts
// plus below and above add up to total.
struct Histogram {
  double lo = 0.0;
  double hi = 0.0;
  std::vector<int64_t> counts;
  int64_t below = 0;
  int64_t above = 0;
  int64_t total = 0;
  double min = std::numeric_limits<double>::infinity();  // observed
  double max = -std::numeric_limits<double>::infinity();
};

Histogram make_histogram(double lo, double hi, int bins);
void add_values(Histogram& h, const float* values, int64_t n);
void merge(Histogram& into, const Histogram& from);
std::vector<double> bin_edges(const Histogram& h);  // bins + 1 edges

// Min and max of each slice along `axis` (the output channel of a weight).
struct ChannelRanges {
  int64_t axis = 0;
  std::vector<float> min;
  std::vector<float> max;
};

ChannelRanges channel_ranges(const Tensor& t, int64_t axis);

struct HistogramOptions {
  int bins = 64;
  int64_t limit = -1;  // activations: the first N images; -1 = all
  int64_t batch = 50;
  int threads = 2;
  bool fast_kernels = true;
};

struct TensorHistogram {
  std::string tensor;  // the name asked for
  std::string kind;    // "activation" | "weight"
  int64_t images = 0;  // activations: images seen; weights: 0

  // Float values: the FP32 model's counterpart when one is given, else the model's own float
  // tensor (an activation before its QuantizeLinear, or a float weight).
  bool has_float = false;
  std::string float_value;
  std::string float_source;  // "fp32_model" | "model"
  Histogram float_values;

  // Dequantized values: the DequantizeLinear result of the tensor's codes.
  bool has_dequantized = false;
  std::string codes_value;        // QuantizeLinear output or integer initializer
  std::string dequantized_value;  // DequantizeLinear output
  Histogram dequantized;

  std::optional<QuantGrid> grid;  // when the tensor is quantized
  std::string quant_param;        // QuantParam::tensor of the grid

  // Weights: per output channel min/max.
  std::optional<ChannelRanges> float_channels;
  std::optional<ChannelRanges> dequantized_channels;

  std::string note;  // caveats, e.g. FP32 weights before BatchNormalization folding
};

// `tensor` names a value or initializer of `model`: an activation (its float value, its
// QuantizeLinear output or its DequantizeLinear output) or a weight (the integer initializer,
// its DequantizeLinear output, or a float initializer). `fp32` (may be null) supplies float
// values through layer matching. Throws qplay::Error naming an unknown tensor or a tensor with
// no FP32 counterpart.
TensorHistogram tensor_histogram(std::shared_ptr<const Graph> model, const std::string& tensor,
                                 std::shared_ptr<const Graph> fp32, const Dataset& data,
                                 const HistogramOptions& options);

}  // namespace qplay
