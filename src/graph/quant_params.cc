#include "graph/quant_params.h"

#include <map>

namespace qplay {
namespace {

std::vector<float> floats_of(const Tensor* t) {
  std::vector<float> v;
  if (t && t->dtype == DType::f32) v.assign(t->data<float>(), t->data<float>() + t->numel());
  return v;
}

std::vector<int64_t> ints_of(const Tensor* t) {
  std::vector<int64_t> v;
  if (t)
    for (int64_t i = 0; i < t->numel(); ++i) v.push_back(static_cast<int64_t>(t->at_as_double(i)));
  return v;
}

}  // namespace

std::vector<QuantParam> list_quant_params(const Graph& g) {
  std::vector<QuantParam> out;
  std::map<std::string, size_t> by_key;  // scale/zero-point names identify a parameter set
  auto add = [&](const Node& n, const std::string& tensor, const std::string& kind, const std::string& scale,
                 const std::string& zp, DType dtype, int64_t axis) {
    const std::string key = tensor + "|" + scale + "|" + zp;
    auto it = by_key.find(key);
    if (it != by_key.end()) {
      out[it->second].nodes.push_back(n.name);
      return;
    }
    QuantParam p;
    p.tensor = tensor;
    p.kind = kind;
    p.nodes = {n.name};
    p.scale_name = scale;
    p.zero_point_name = zp;
    p.dtype = dtype;
    p.scales = floats_of(g.initializer(scale));
    p.zero_points = ints_of(g.initializer(zp));
    p.axis = p.scales.size() > 1 ? axis : -1;
    by_key[key] = out.size();
    out.push_back(std::move(p));
  };

  for (const auto& n : g.nodes) {
    const int64_t axis = n.attr_int("axis", 1);
    if (n.op_type == "QuantizeLinear") {
      const Tensor* zp = g.initializer(n.input(2));
      add(n, n.input(0), "activation", n.input(1), n.input(2), zp ? zp->dtype : DType::u8, axis);
    } else if (n.op_type == "DequantizeLinear") {
      const Tensor* stored = g.initializer(n.input(0));
      if (stored != nullptr) {
        const char* kind = stored->dtype == DType::i32 ? "bias" : "weight";
        add(n, n.input(0), kind, n.input(1), n.input(2), stored->dtype, axis);
      } else {
        // The DQ of an activation: same parameters as the Q that produced its input.
        const int q = g.producer_of(n.input(0));
        const std::string tensor = q >= 0 && g.nodes[q].op_type == "QuantizeLinear" ? g.nodes[q].input(0) : n.input(0);
        const Tensor* zp = g.initializer(n.input(2));
        add(n, tensor, "activation", n.input(1), n.input(2), zp ? zp->dtype : DType::u8, axis);
      }
    } else if (n.op_type == "QLinearConv" || n.op_type == "QLinearMatMul") {
      const int pairs[3][3] = {{0, 1, 2}, {3, 4, 5}, {-1, 6, 7}};
      for (const auto& p : pairs) {
        const std::string tensor = p[0] >= 0 ? n.input(p[0]) : n.outputs[0];
        const Tensor* zp = g.initializer(n.input(p[2]));
        const bool is_weight = p[0] == 3 && g.initializer(n.input(3)) != nullptr;
        add(n, tensor, is_weight ? "weight" : "activation", n.input(p[1]), n.input(p[2]),
            zp ? zp->dtype : DType::u8, n.op_type == "QLinearConv" ? 0 : 1);
      }
    }
  }
  return out;
}

}  // namespace qplay
