// Lists every quantization parameter set in a graph: each tensor that is quantized by a
// QuantizeLinear/DequantizeLinear pair, a weight behind DequantizeLinear, or a QLinear* operand.
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"

namespace qplay {

struct QuantParam {
  std::string tensor;        // the float tensor being quantized (activation) or the stored integer initializer
  std::string kind;          // "activation", "weight", "bias" or "qlinear"
  std::vector<std::string> nodes;  // Q/DQ/QLinear nodes using this parameter set
  std::string scale_name;
  std::string zero_point_name;
  DType dtype = DType::u8;   // integer storage type
  int64_t axis = -1;         // -1: per tensor; otherwise the per-channel axis
  std::vector<float> scales;
  std::vector<int64_t> zero_points;
};

std::vector<QuantParam> list_quant_params(const Graph& g);

}  // namespace qplay
