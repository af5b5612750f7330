#include "runtime/op_registry.h"

namespace qplay {

const std::vector<OpSpec>& op_table() {
  static const std::vector<OpSpec> table = [] {
    std::vector<OpSpec> t;
    register_conv_ops(t);
    register_pool_ops(t);
    register_matmul_ops(t);
    register_elementwise_ops(t);
    register_shape_ops(t);
    register_normalization_ops(t);
    register_quantize_ops(t);
    register_integer_ops(t);
    return t;
  }();
  return table;
}

const OpSpec* find_op(const std::string& op_type, const std::string& domain) {
  const std::string d = domain == "ai.onnx" ? "" : domain;
  for (const auto& spec : op_table())
    if (spec.op_type == op_type && spec.domain == d) return &spec;
  return nullptr;
}

}  // namespace qplay
