#include "analysis/match.h"

#include <algorithm>
#include <map>

namespace qplay {
namespace {

constexpr int kGraphInput = -1;
constexpr int kUnpaired = -2;  // a source layer that found no partner

int64_t weight_size(const Graph& g, const Layer& layer) {
  const Tensor* w = layer.weight.empty() ? nullptr : g.initializer(layer.weight);
  return w ? w->numel() : 0;
}

// Gemm and MatMul (and QLinearMatMul) compute the same thing; quantizers turn one into the other.
bool same_family(const std::string& a, const std::string& b) {
  auto family = [](const std::string& k) { return k == "gemm" ? std::string("matmul") : k; };
  return family(a) == family(b);
}

}  // namespace

std::vector<std::vector<int>> layer_sources(const Graph& g, const std::vector<Layer>& layers) {
  // Every value a layer hands on, mapped to that layer.
  std::map<std::string, int> layer_of_value;
  for (size_t i = 0; i < layers.size(); ++i)
    for (const std::string* v : {&layers[i].output, &layers[i].output_codes, &layers[i].output_dequantized})
      if (!v->empty()) layer_of_value[*v] = static_cast<int>(i);

  std::vector<std::vector<int>> sources(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    for (const auto& input : layers[i].inputs) {
      // Walk back through nodes outside any layer (Q, DQ, Transpose, Flatten...) along their
      // first non-constant input until a layer's output or a graph input.
      std::string v = input;
      int source = kGraphInput;
      for (size_t steps = 0; steps <= g.nodes.size(); ++steps) {
        if (auto it = layer_of_value.find(v); it != layer_of_value.end()) {
          source = it->second;
          break;
        }
        const int p = g.producer_of(v);
        if (p < 0) break;
        const Node& n = g.nodes[p];
        auto data = std::find_if(n.inputs.begin(), n.inputs.end(),
                                 [&](const std::string& in) { return !in.empty() && !g.initializer(in); });
        if (data == n.inputs.end()) break;  // computed from constants only
        v = *data;
      }
      sources[i].push_back(source);
    }
  }
  return sources;
}

LayerMatching match_layers(const Graph& fp32, const std::vector<Layer>& fp32_layers, const Graph& quantized,
                           const std::vector<Layer>& quantized_layers) {
  const auto q_sources = layer_sources(quantized, quantized_layers);
  const auto f_sources = layer_sources(fp32, fp32_layers);
  std::vector<int> partner_of_q(quantized_layers.size(), kUnpaired);
  std::vector<bool> f_used(fp32_layers.size(), false);

  // The quantized layer's sources as FP32 layer indices.
  auto translated_sources = [&](size_t q) {
    std::vector<int> s;
    for (int src : q_sources[q]) s.push_back(src < 0 ? src : partner_of_q[src]);
    return s;
  };
  auto sorted = [](std::vector<int> v) {
    std::sort(v.begin(), v.end());
    return v;
  };

  LayerMatching m;
  for (size_t q = 0; q < quantized_layers.size(); ++q) {
    const Layer& ql = quantized_layers[q];
    const std::vector<int> wanted = translated_sources(q);
    int by_topology = -1, by_name = -1;
    for (size_t f = 0; f < fp32_layers.size(); ++f) {
      const Layer& fl = fp32_layers[f];
      if (f_used[f] || !same_family(ql.kind, fl.kind)) continue;
      if (weight_size(quantized, ql) != weight_size(fp32, fl)) continue;
      const bool name_equal = fl.name == ql.name;
      if (sorted(wanted) == sorted(f_sources[f])) {
        if (by_topology < 0 || (name_equal && fp32_layers[by_topology].name != ql.name))
          by_topology = static_cast<int>(f);
      } else if (name_equal && by_name < 0) {
        by_name = static_cast<int>(f);
      }
    }
    const int f = by_topology >= 0 ? by_topology : by_name;
    if (f < 0) {
      m.unmatched_quantized.push_back(static_cast<int>(q));
      continue;
    }
    f_used[f] = true;
    partner_of_q[q] = f;

    LayerPair pair;
    pair.quantized = static_cast<int>(q);
    pair.fp32 = f;
    pair.same_name = fp32_layers[f].name == ql.name;
    pair.same_sources = by_topology >= 0;
    // Operand order: an input whose source pairs with an FP32 input's source plays that input;
    // otherwise position decides.
    const auto& f_inputs = fp32_layers[f].inputs;
    std::vector<bool> taken(f_inputs.size(), false);
    for (size_t i = 0; i < ql.inputs.size(); ++i) {
      int chosen = -1;
      for (size_t j = 0; j < f_inputs.size() && chosen < 0; ++j)
        if (!taken[j] && f_sources[f][j] == wanted[i]) chosen = static_cast<int>(j);
      if (chosen < 0 && i < f_inputs.size() && !taken[i]) chosen = static_cast<int>(i);
      if (chosen >= 0) taken[chosen] = true;
      pair.fp32_inputs.push_back(chosen >= 0 ? f_inputs[chosen] : "");
    }
    m.pairs.push_back(std::move(pair));
  }
  for (size_t f = 0; f < fp32_layers.size(); ++f)
    if (!f_used[f]) m.unmatched_fp32.push_back(static_cast<int>(f));
  return m;
}

const LayerPair* pair_of_quantized(const LayerMatching& m, int index) {
  for (const auto& p : m.pairs)
    if (p.quantized == index) return &p;
  return nullptr;
}

}  // namespace qplay
