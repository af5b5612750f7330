// The QDQ layout ONNX Runtime's static quantizer writes, from an FP32 graph and a plan:
//   activation X read by Conv/Gemm/MatMul/Add/pooling:  X -> [Clip] -> QuantizeLinear -> DequantizeLinear -> readers
//   weight W:  W_quantized (int8/uint8 initializer) -> DequantizeLinear (axis = output channel when per channel)
//   bias B:    B_quantized (int32, scale = input scale x weight scale, zero point 0) -> DequantizeLinear
// Names follow ORT: X_QuantizeLinear / X_q / X_DequantizeLinear / X_dq, X_scale, X_zero_point,
// W_quantized, W_scale, W_zero_point, W_DequantizeLinear, W_dq. The Clip (X_Clip) appears only for
// widths below 8 bits, where QuantizeLinear's own saturation (to the storage type) is too wide.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "quantize/quant_math.h"
#include "quantize/range_methods.h"

namespace qplay::quantize {

enum class WeightRangeMethod { minmax, mse };
WeightRangeMethod parse_weight_range_method(const std::string& name);

struct QdqFormat {
  DType activation_type = DType::u8;
  DType weight_type = DType::i8;
  int activation_bits = 8;
  int weight_bits = 8;
  bool per_channel = false;
  bool symmetric_activations = false;
  // int8 weights are symmetric (zero point 0, codes +-(2^(b-1) - 1)); uint8 weights asymmetric.
  WeightRangeMethod weight_range = WeightRangeMethod::minmax;
};

// Codes an activation / a weight of this format may take.
IntRange activation_codes(const QdqFormat& f);
IntRange weight_codes(const QdqFormat& f);
bool weights_symmetric(const QdqFormat& f);

// The op table of the selector: ops whose float data inputs are quantized, and which of their
// inputs are weights (quantized per channel along `weight_channel_axis`) and biases.
bool is_quantizable_op(const Node& n);
// Index of the weight input (an initializer) of a Conv/Gemm/MatMul, or -1.
int weight_input_index(const Node& n, const Graph& g);
// Index of its bias input (a 1-D initializer of one value per output channel), or -1.
int bias_input_index(const Node& n, const Graph& g);
// The output-channel axis of node n's weight: 0 for Conv, 1 for Gemm (transB = 0) and MatMul.
int64_t weight_channel_axis(const Node& n);

// Float activations that get a Q/DQ pair: every non-initializer input of a quantizable node
// not in `excluded` (weights and biases aside), in first-use order.
std::vector<std::string> activations_to_quantize(const Graph& g, const std::set<std::string>& excluded);

struct ActivationQuant {
  RealRange calibrated;  // what the calibration method chose
  ScaleZeroPoint params;
  IntRange codes;
  DType storage = DType::u8;
  bool clip = false;  // codes narrower than the storage type: a Clip goes before the Q
};

struct WeightQuant {
  std::string node;                    // first node reading the weight
  int64_t axis = -1;                   // -1: per tensor
  std::vector<ScaleZeroPoint> params;  // one, or one per channel along axis
  IntRange codes;
  DType storage = DType::i8;
};

struct QuantPlan {
  QdqFormat format;
  std::set<std::string> excluded;                      // node names kept in FP32
  std::map<std::string, ActivationQuant> activations;  // by tensor name
  std::map<std::string, WeightQuant> weights;          // by weight initializer name
};

// Scale/zero point per channel (axis >= 0) or for the whole tensor of a float weight.
std::vector<ScaleZeroPoint> weight_params(const Tensor& w, int64_t axis, IntRange codes, bool symmetric,
                                          WeightRangeMethod method);

// The tensor as the quantized model will see it: round to the grid and back (float32).
Tensor fake_quantize_weight(const Tensor& w, const WeightQuant& q);

// Decides every scale and zero point: activations from their calibrated ranges, weights from
// their values. Throws when a tensor to quantize has no range.
QuantPlan plan_quantization(const Graph& fp32, const std::map<std::string, RealRange>& ranges, const QdqFormat& format,
                            const std::set<std::string>& excluded);

// Writes the QDQ graph. Weights are quantized with the plan's parameters (so a pass that moved
// weights onto the grid keeps its codes); biases with input scale x weight scale.
Graph insert_qdq(const Graph& fp32, const QuantPlan& plan);

}  // namespace qplay::quantize
