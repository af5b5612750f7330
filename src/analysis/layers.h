// Logical layers: a compute node plus the nodes quantization (or BatchNormalization and an
// activation) wraps around it, recognised by pattern the way ONNX Runtime's QDQ selectors do:
//
//   [Q ->] DQ(x) ──┐
//          DQ(W) ──┼─> Conv -> [BatchNormalization] -> [Relu|Clip] -> [Flatten..] -> Q -> DQ
//          DQ(B) ──┘
//
// The same grouping serves FP32 models (no DQ/Q around the compute node) and QOperator models
// (QLinearConv/QLinearMatMul, whose operands are already integer codes). Grouping reads the
// graph and computes nothing.
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/quant_params.h"

namespace qplay {

struct Layer {
  std::string name;        // the compute node's name
  int compute_node = -1;   // index into graph.nodes
  std::string kind;        // "conv" | "gemm" | "matmul" | "add" | "pool"
  std::string op_type;     // the compute node's op type ("Conv", "QLinearConv", ...)
  bool qoperator = false;  // QLinear*: the compute node reads and writes integer codes

  // Every node of the group, in graph order: input DQs, weight/bias DQs, the compute node,
  // fused BatchNormalization/Relu/Clip, shape-only nodes before the output Q, the output Q and
  // its DQ. The input Qs belong to the layers that produce those activations. An output Q/DQ
  // pair is therefore also listed (as input DQ) by the layer that reads it.
  std::vector<int> nodes;

  // Activations feeding the layer, one per activation operand of the compute node, in operand
  // order: the float value entering the input's QuantizeLinear (the FP32-domain tensor), or the
  // operand itself when it is not quantized. In a QOperator chain with no float tensor between
  // two QLinear nodes, this is the codes value and `input_is_codes` says so.
  std::vector<std::string> inputs;
  std::vector<bool> input_is_codes;
  std::vector<std::string> input_params;  // QuantParam::tensor of each input's set, "" if none

  std::string output;              // float output after fused nodes, before the output Q ("" for QLinear)
  std::string output_codes;        // output QuantizeLinear's result (QLinear: the node's output); "" if none
  std::string output_dequantized;  // the DequantizeLinear of output_codes; "" if none
  std::string output_params;       // QuantParam::tensor of the output set, "" if none

  std::string weight;  // weight initializer (float, or the integers behind its DQ); "" if none
  std::string weight_params;
  std::string bias;
  std::string bias_params;

  // Every quant param set the layer uses, in the order inputs, weight, bias, output (no repeats).
  std::vector<std::string> quant_params;
};

// Groups g into layers, in topological order of their compute nodes. `params` must be
// list_quant_params(g) (passed in so callers that already have it do not list twice).
std::vector<Layer> group_layers(const Graph& g, const std::vector<QuantParam>& params);
std::vector<Layer> group_layers(const Graph& g);

// The value a layer hands to the next layer: the output DQ's result, else the output codes (a
// QOperator layer without DQ; dequantize with output_params), else the float output.
// Compare measures this value against the FP32 layer's output.
const std::string& layer_result(const Layer& layer);

// The parameter set listed under `tensor` (QuantParam::tensor), or nullptr.
const QuantParam* find_quant_param(const std::vector<QuantParam>& params, const std::string& tensor);

// Index of the layer whose compute node is `node_name`, or -1.
int find_layer(const std::vector<Layer>& layers, const std::string& node_name);

}  // namespace qplay
