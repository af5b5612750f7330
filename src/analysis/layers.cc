#include "analysis/layers.h"

#include <algorithm>

namespace qplay {
namespace {

// One selector per compute op: which operands are activations, weight and bias, and what may
// follow. Adding an op to the analysis is one row here.
struct LayerPattern {
  const char* op_type;
  const char* kind;
  std::vector<int> activations;  // operand positions of activations
  int weight = -1;               // operand position of the weight; when it is not constant it is an activation
  int bias = -1;
  bool fuses_activation = false;  // a following BatchNormalization and Relu/Clip join the layer
  bool qoperator = false;         // QLinear*: operand k has its scale at k+1, zero point at k+2; output's at 6, 7
};

const std::vector<LayerPattern>& layer_patterns() {
  // clang-format off
  static const std::vector<LayerPattern> table = {
      // op_type             kind      activations weight bias  fuses  qoperator
      {"Conv",              "conv",   {0},         1,     2,    true,  false},
      {"Gemm",              "gemm",   {0},         1,     2,    true,  false},
      {"MatMul",            "matmul", {0},         1,     -1,   true,  false},
      {"Add",               "add",    {0, 1},      -1,    -1,   true,  false},
      {"AveragePool",       "pool",   {0},         -1,    -1,   false, false},
      {"GlobalAveragePool", "pool",   {0},         -1,    -1,   false, false},
      {"MaxPool",           "pool",   {0},         -1,    -1,   false, false},
      {"QLinearConv",       "conv",   {0},         3,     8,    false, true},
      {"QLinearMatMul",     "matmul", {0},         3,     -1,   false, true},
  };
  // clang-format on
  return table;
}

const LayerPattern* pattern_for(const Node& n) {
  if (!n.domain.empty() && n.domain != "ai.onnx") return nullptr;
  for (const auto& p : layer_patterns())
    if (n.op_type == p.op_type) return &p;
  return nullptr;
}

// Nodes that only move data: a layer's output may pass through them on its way to the output Q.
bool is_shape_only(const std::string& op) {
  return op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity";
}

bool is_graph_output(const Graph& g, const std::string& value) {
  for (const auto& o : g.outputs)
    if (o.name == value) return true;
  return false;
}

// The name of the parameter set quantizing `tensor` with scale `scale`, or "".
std::string param_name(const std::vector<QuantParam>& params, const std::string& tensor, const std::string& scale) {
  for (const auto& p : params)
    if (p.tensor == tensor && p.scale_name == scale) return p.tensor;
  return "";
}

struct Builder {
  const Graph& g;
  const std::vector<QuantParam>& params;
  Layer layer;

  int producer_if(const std::string& value, const char* op) const {
    const int p = g.producer_of(value);
    return p >= 0 && g.nodes[p].op_type == op ? p : -1;
  }

  // The node reading `value` when it is the only reader (and not a graph output), else -1.
  int sole_consumer(const std::string& value) const {
    if (value.empty() || is_graph_output(g, value)) return -1;
    const auto readers = g.consumers_of(value);
    return readers.size() == 1 ? readers[0] : -1;
  }

  int consumer_of_type(const std::string& value, const char* op) const {
    for (int c : g.consumers_of(value))
      if (g.nodes[c].op_type == op) return c;
    return -1;
  }

  // An activation operand. `qlinear_scale` names its scale when the node is a QLinear op.
  void add_input(const std::string& value, const std::string& qlinear_scale) {
    // QDQ: the operand is DQ(codes) and the codes usually come from Q(float).
    if (const int dq = producer_if(value, "DequantizeLinear"); dq >= 0) {
      const Node& d = g.nodes[dq];
      layer.nodes.push_back(dq);
      add_codes_input(d.input(0), d.input(1));
      return;
    }
    if (!qlinear_scale.empty()) {  // QLinear operand: already codes
      add_codes_input(value, qlinear_scale);
      return;
    }
    layer.inputs.push_back(value);
    layer.input_is_codes.push_back(false);
    layer.input_params.push_back("");
  }

  // Codes feeding the layer: their float origin is the input of the Q that made them, if any.
  void add_codes_input(const std::string& codes, const std::string& scale) {
    if (const int q = producer_if(codes, "QuantizeLinear"); q >= 0) {
      const Node& qn = g.nodes[q];
      layer.inputs.push_back(qn.input(0));
      layer.input_is_codes.push_back(false);
      layer.input_params.push_back(param_name(params, qn.input(0), qn.input(1)));
    } else {
      layer.inputs.push_back(codes);
      layer.input_is_codes.push_back(true);
      layer.input_params.push_back(param_name(params, codes, scale));
    }
  }

  // A constant operand: an initializer, or an initializer behind a DequantizeLinear.
  // `qlinear_scale` names the operand's scale in a QLinear node ("" otherwise).
  bool add_constant(const std::string& value, const std::string& qlinear_scale, std::string& name, std::string& param) {
    if (value.empty()) return false;
    if (g.initializer(value) != nullptr) {
      name = value;
      param = qlinear_scale.empty() ? "" : param_name(params, value, qlinear_scale);
      return true;
    }
    const int dq = producer_if(value, "DequantizeLinear");
    if (dq < 0 || g.initializer(g.nodes[dq].input(0)) == nullptr) return false;
    layer.nodes.push_back(dq);
    name = g.nodes[dq].input(0);
    param = param_name(params, name, g.nodes[dq].input(1));
    return true;
  }

  void add_fused_tail(std::string& out) {
    int c = sole_consumer(out);
    if (c >= 0 && g.nodes[c].op_type == "BatchNormalization") {
      layer.nodes.push_back(c);
      out = g.nodes[c].outputs[0];
      c = sole_consumer(out);
    }
    if (c >= 0 && (g.nodes[c].op_type == "Relu" || g.nodes[c].op_type == "Clip")) {
      layer.nodes.push_back(c);
      out = g.nodes[c].outputs[0];
    }
  }

  // out -> [shape-only nodes] -> Q -> DQ. The shape-only nodes join only when a Q follows them,
  // so an FP32 AveragePool keeps its own output while a quantized one reaches its Q via Flatten.
  void add_output_quantization(std::string& out) {
    std::vector<int> passed;
    std::string v = out;
    for (int c = sole_consumer(v); c >= 0 && is_shape_only(g.nodes[c].op_type); c = sole_consumer(v)) {
      passed.push_back(c);
      v = g.nodes[c].outputs[0];
    }
    const int q = consumer_of_type(v, "QuantizeLinear");
    if (q < 0) return;
    layer.nodes.insert(layer.nodes.end(), passed.begin(), passed.end());
    layer.nodes.push_back(q);
    out = v;
    const Node& qn = g.nodes[q];
    layer.output_codes = qn.outputs[0];
    layer.output_params = param_name(params, qn.input(0), qn.input(1));
    if (const int dq = consumer_of_type(layer.output_codes, "DequantizeLinear"); dq >= 0) {
      layer.nodes.push_back(dq);
      layer.output_dequantized = g.nodes[dq].outputs[0];
    }
  }

  void add_qoperator_output(const Node& n) {
    layer.output_codes = n.outputs[0];
    layer.output_params = param_name(params, n.outputs[0], n.input(6));
    if (const int dq = consumer_of_type(layer.output_codes, "DequantizeLinear"); dq >= 0) {
      layer.nodes.push_back(dq);
      layer.output_dequantized = g.nodes[dq].outputs[0];
    }
  }
};

void append_unique(std::vector<std::string>& list, const std::string& name) {
  if (!name.empty() && std::find(list.begin(), list.end(), name) == list.end()) list.push_back(name);
}

}  // namespace

std::vector<Layer> group_layers(const Graph& g, const std::vector<QuantParam>& params) {
  std::vector<Layer> layers;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const Node& n = g.nodes[i];
    const LayerPattern* p = pattern_for(n);
    if (p == nullptr) continue;
    Builder b{g, params, {}};
    Layer& L = b.layer;
    L.name = n.name;
    L.compute_node = i;
    L.kind = p->kind;
    L.op_type = n.op_type;
    L.qoperator = p->qoperator;
    L.nodes.push_back(i);

    // QLinear operands carry their scale right after them.
    auto qlinear_scale = [&](int k) { return p->qoperator ? n.input(k + 1) : std::string(); };
    for (int k : p->activations) {
      std::string constant_name, constant_param;  // e.g. Add(x, constant): the constant is no activation
      if (n.input(k).empty() || b.add_constant(n.input(k), qlinear_scale(k), constant_name, constant_param)) continue;
      b.add_input(n.input(k), qlinear_scale(k));
    }
    if (p->weight >= 0 && !b.add_constant(n.input(p->weight), qlinear_scale(p->weight), L.weight, L.weight_params) &&
        !n.input(p->weight).empty())
      b.add_input(n.input(p->weight), qlinear_scale(p->weight));  // e.g. MatMul of two activations
    if (p->bias >= 0) b.add_constant(n.input(p->bias), "", L.bias, L.bias_params);

    if (p->qoperator) {
      b.add_qoperator_output(n);
    } else {
      std::string out = n.outputs[0];
      if (p->fuses_activation) b.add_fused_tail(out);
      b.add_output_quantization(out);
      L.output = out;
    }

    std::sort(L.nodes.begin(), L.nodes.end());
    L.nodes.erase(std::unique(L.nodes.begin(), L.nodes.end()), L.nodes.end());
    for (const auto& name : L.input_params) append_unique(L.quant_params, name);
    append_unique(L.quant_params, L.weight_params);
    append_unique(L.quant_params, L.bias_params);
    append_unique(L.quant_params, L.output_params);
    layers.push_back(std::move(L));
  }
  return layers;
}

std::vector<Layer> group_layers(const Graph& g) { return group_layers(g, list_quant_params(g)); }

const std::string& layer_result(const Layer& layer) {
  if (!layer.output_dequantized.empty()) return layer.output_dequantized;
  if (!layer.output_codes.empty()) return layer.output_codes;
  return layer.output;
}

const QuantParam* find_quant_param(const std::vector<QuantParam>& params, const std::string& tensor) {
  for (const auto& p : params)
    if (p.tensor == tensor) return &p;
  return nullptr;
}

int find_layer(const std::vector<Layer>& layers, const std::string& node_name) {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].name == node_name) return static_cast<int>(i);
  return -1;
}

}  // namespace qplay
