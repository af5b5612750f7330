#include "graph/validate.h"

#include <cmath>
#include <sstream>

#include "runtime/op_registry.h"

namespace qplay {

void validate_quant_params(const std::string& what, const Tensor& scale, const Tensor* zero_point) {
  if (scale.dtype != DType::f32)
    throw Error(what + ": scale has type " + std::string(dtype_name(scale.dtype)) + ", expected float32");
  for (int64_t i = 0; i < scale.numel(); ++i) {
    const float s = scale.data<float>()[i];
    if (!std::isfinite(s) || s <= 0.0f) {
      std::ostringstream os;
      os << what << ": scale";
      if (scale.numel() > 1) os << "[" << i << "]";
      os << " is " << s << "; a scale must be finite and greater than 0";
      throw Error(os.str());
    }
  }
  if (zero_point == nullptr) return;
  if (zero_point->dtype == DType::f32)
    throw Error(what + ": zero point has type float32, expected an integer type");
  if (zero_point->numel() != scale.numel())
    throw Error(what + ": zero point has " + std::to_string(zero_point->numel()) + " values but scale has " +
                std::to_string(scale.numel()));
}

namespace {

// Which inputs of each quantized op are (scale, zero point) pairs.
struct QuantPair { int scale; int zero_point; };

std::vector<QuantPair> quant_pairs(const std::string& op_type) {
  if (op_type == "QuantizeLinear" || op_type == "DequantizeLinear") return {{1, 2}};
  if (op_type == "QLinearConv") return {{1, 2}, {4, 5}, {6, 7}};
  if (op_type == "QLinearMatMul") return {{1, 2}, {4, 5}, {6, 7}};
  return {};
}

}  // namespace

void validate_graph(const Graph& g) {
  for (const auto& n : g.nodes) {
    const std::string what = n.op_type + " node '" + n.name + "'";
    const OpSpec* spec = find_op(n.op_type, n.domain);
    if (spec == nullptr)
      throw Error("unsupported operator '" + (n.domain.empty() ? "" : n.domain + ".") + n.op_type + "' (node '" +
                  n.name + "', opset " + std::to_string(g.opset) + ")");
    if (g.opset < spec->min_opset)
      throw Error(what + ": qplay implements " + n.op_type + " from opset " + std::to_string(spec->min_opset) +
                  ", the model uses opset " + std::to_string(g.opset));
    // Trailing "" inputs are omitted optionals; count only up to the last named one.
    int given = static_cast<int>(n.inputs.size());
    while (given > 0 && n.inputs[given - 1].empty()) --given;
    if (given < spec->min_inputs || given > spec->max_inputs)
      throw Error(what + " has " + std::to_string(given) + " inputs; " + n.op_type + " takes " +
                  std::to_string(spec->min_inputs) + " to " + std::to_string(spec->max_inputs));
    for (const auto& [s, z] : quant_pairs(n.op_type)) {
      const Tensor* scale = g.initializer(n.input(s));
      if (scale == nullptr) continue;  // computed at run time; the kernel checks it
      const Tensor* zp = g.initializer(n.input(z));
      validate_quant_params(what + " input '" + n.input(s) + "'", *scale, zp);
    }
  }
  for (const auto& out : g.outputs)
    if (g.producer_of(out.name) < 0 && !g.initializer(out.name)) {
      bool is_input = false;
      for (const auto& in : g.inputs) is_input |= in.name == out.name;
      if (!is_input) throw Error("graph output '" + out.name + "' is produced by no node");
    }
}

}  // namespace qplay
