#include "quantize/fold_batchnorm.h"

#include <cmath>

namespace qplay::quantize {
namespace {

bool is_graph_output(const Graph& g, const std::string& value) {
  for (const auto& o : g.outputs)
    if (o.name == value) return true;
  return false;
}

// A float initializer with `n` elements, or nullptr.
const Tensor* float_initializer(const Graph& g, const std::string& name, int64_t n) {
  const Tensor* t = g.initializer(name);
  return t && t->dtype == DType::f32 && t->numel() == n ? t : nullptr;
}

// An initializer name not used yet, derived from `base`.
std::string fresh_initializer_name(const Graph& g, const std::string& base) {
  std::string name = base;
  for (int i = 1; g.initializers.count(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

// Folds batch norm node `bn_index` into conv node `conv_index` if both fit; true when done.
bool fold_one(Graph& g, int conv_index, int bn_index) {
  Node& conv = g.nodes[conv_index];
  const Node& bn = g.nodes[bn_index];
  if (bn.inputs.size() != 5 || bn.outputs.size() != 1 || conv.outputs.size() != 1) return false;
  const Tensor* w = g.initializer(conv.input(1));
  if (!w || w->dtype != DType::f32 || w->rank() < 2) return false;
  const int64_t out_channels = w->shape[0];
  const Tensor* gamma = float_initializer(g, bn.input(1), out_channels);
  const Tensor* beta = float_initializer(g, bn.input(2), out_channels);
  const Tensor* mean = float_initializer(g, bn.input(3), out_channels);
  const Tensor* var = float_initializer(g, bn.input(4), out_channels);
  const Tensor* bias = conv.input(2).empty() ? nullptr : float_initializer(g, conv.input(2), out_channels);
  if (!gamma || !beta || !mean || !var || (!conv.input(2).empty() && !bias)) return false;
  const double eps = bn.attr_float("epsilon", 1e-5f);

  // The folded tensors keep the original names when only this conv reads them (so the quantized
  // weights are named like ONNX Runtime's, "conv2d.weight_quantized"); shared ones get new names.
  Tensor new_w = *w;
  Tensor new_b(DType::f32, {out_channels});
  const int64_t per_channel = w->numel() / out_channels;
  for (int64_t o = 0; o < out_channels; ++o) {
    const double factor = gamma->data<float>()[o] / std::sqrt(static_cast<double>(var->data<float>()[o]) + eps);
    float* row = new_w.data<float>() + o * per_channel;
    for (int64_t k = 0; k < per_channel; ++k) row[k] = static_cast<float>(row[k] * factor);
    const double b = bias ? bias->data<float>()[o] : 0.0;
    new_b.data<float>()[o] = static_cast<float>((b - mean->data<float>()[o]) * factor + beta->data<float>()[o]);
  }
  const std::string w_name = g.consumers_of(conv.input(1)).size() == 1
                                 ? conv.input(1)
                                 : fresh_initializer_name(g, conv.name + ".weight_folded");
  const std::string b_name = bias && g.consumers_of(conv.input(2)).size() == 1
                                 ? conv.input(2)
                                 : fresh_initializer_name(g, conv.name + (bias ? ".bias_folded" : ".bias"));
  g.initializers[w_name] = std::move(new_w);
  g.initializers[b_name] = std::move(new_b);
  conv.inputs.resize(3);
  conv.inputs[1] = w_name;
  conv.inputs[2] = b_name;

  const std::string conv_out = conv.outputs[0];
  const std::string bn_out = bn.outputs[0];
  if (is_graph_output(g, bn_out)) {
    conv.outputs[0] = bn_out;  // the conv's old output has no other reader (checked by the caller)
  } else {
    for (auto& n : g.nodes)
      for (auto& in : n.inputs)
        if (in == bn_out) in = conv_out;
  }
  g.nodes.erase(g.nodes.begin() + bn_index);
  return true;
}

// Drops initializers that no node reads any more (the replaced weights, BN parameters).
void drop_unused_initializers(Graph& g) {
  std::map<std::string, bool> used;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs) used[in] = true;
  for (auto it = g.initializers.begin(); it != g.initializers.end();)
    it = used.count(it->first) ? std::next(it) : g.initializers.erase(it);
}

}  // namespace

int fold_batchnorm(Graph& g) {
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size();) {
    const Node& bn = g.nodes[i];
    bool done = false;
    if (bn.op_type == "BatchNormalization" && bn.domain.empty() && !bn.inputs.empty()) {
      const int conv = g.producer_of(bn.inputs[0]);
      if (conv >= 0 && g.nodes[conv].op_type == "Conv" && g.nodes[conv].domain.empty() &&
          g.consumers_of(bn.inputs[0]).size() == 1 && !is_graph_output(g, bn.inputs[0]))
        done = fold_one(g, conv, static_cast<int>(i));
    }
    if (done)
      ++folded;
    else
      ++i;
  }
  if (folded) drop_unused_initializers(g);
  return folded;
}

}  // namespace qplay::quantize
