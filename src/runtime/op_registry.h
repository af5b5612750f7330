// The op table: every ONNX operator qplay runs, with its reference kernel.
// Adding an op = one reference kernel + one entry in a family's register_* function
// (see CONTRIBUTING.md). The executor and the importer only consult this table.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace qplay {

// Inputs of one node, in ONNX order; nullptr for an omitted optional input.
using Inputs = std::vector<const Tensor*>;

// A reference kernel: reads the node's attributes and inputs, resets and fills `outputs`
// (already sized to the node's output count). It must not keep state between calls and
// must throw qplay::Error with a message naming the node for bad shapes or values.
using ReferenceKernel = void (*)(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs);

// A prepared kernel: a callable bound to one node, possibly holding work done once
// (packed weights, requantization multipliers). Must be safe to call from several threads.
using PreparedKernel = std::function<void(const Inputs& inputs, std::vector<Tensor>& outputs)>;

struct OpSpec {
  std::string op_type;
  std::string domain;    // "" = ai.onnx
  int min_inputs = 1;
  int max_inputs = 1;
  int min_opset = 1;     // oldest opset whose semantics the kernel implements
  ReferenceKernel reference = nullptr;
};

// The table, built once on first use.
const std::vector<OpSpec>& op_table();
const OpSpec* find_op(const std::string& op_type, const std::string& domain = "");

// Each op family registers its entries (kernels/reference/<family>.cc).
void register_conv_ops(std::vector<OpSpec>& table);         // Conv, QLinearConv
void register_pool_ops(std::vector<OpSpec>& table);         // AveragePool, MaxPool, GlobalAveragePool
void register_matmul_ops(std::vector<OpSpec>& table);       // Gemm, MatMul, QLinearMatMul
void register_elementwise_ops(std::vector<OpSpec>& table);  // Add, Sub, Mul, Div, Relu, Clip, LeakyRelu, Sigmoid
void register_shape_ops(std::vector<OpSpec>& table);        // Flatten, Reshape, Transpose, Concat, Identity, Squeeze, Unsqueeze, Pad
void register_normalization_ops(std::vector<OpSpec>& table);// Softmax, BatchNormalization
void register_quantize_ops(std::vector<OpSpec>& table);     // QuantizeLinear, DequantizeLinear
// Integer-mode ops in domain "qplay" (runtime/integer/ops.cc): QConv, QGemm, QAdd, QAveragePool,
// QGlobalAveragePool. Only lowered graphs use them (runtime/integer/lower.h).
void register_integer_ops(std::vector<OpSpec>& table);

}  // namespace qplay
