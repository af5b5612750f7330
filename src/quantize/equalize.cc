#include "quantize/equalize.h"

#include <algorithm>
#include <cmath>

namespace qplay::quantize {
namespace {

// The single node reading `value`, or -1.
int only_reader(const Graph& g, const std::string& value) {
  for (const auto& o : g.outputs)
    if (o.name == value) return -1;
  const auto readers = g.consumers_of(value);
  return readers.size() == 1 ? readers[0] : -1;
}

bool owns_initializer(const Graph& g, const std::string& name) {
  const Tensor* t = g.initializer(name);
  return t && t->dtype == DType::f32 && g.consumers_of(name).size() == 1;
}

bool equalize_pair(Graph& g, const Node& first, const Node& second) {
  if (!owns_initializer(g, first.input(1)) || !owns_initializer(g, second.input(1))) return false;
  if (first.attr_int("group", 1) != 1 || second.attr_int("group", 1) != 1) return false;
  if (!first.input(2).empty() && !owns_initializer(g, first.input(2))) return false;
  Tensor& w1 = g.initializers[first.input(1)];   // [C, Cin, kh, kw]
  Tensor& w2 = g.initializers[second.input(1)];  // [Cout, C, kh, kw]
  if (w1.rank() != 4 || w2.rank() != 4 || w1.shape[0] != w2.shape[1]) return false;
  const int64_t channels = w1.shape[0];
  const int64_t per_out1 = w1.numel() / channels;
  const int64_t per_in2 = w2.shape[2] * w2.shape[3];
  const int64_t out2 = w2.shape[0];

  std::vector<double> r1(channels, 0.0), r2(channels, 0.0);
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t k = 0; k < per_out1; ++k)
      r1[c] = std::max(r1[c], std::fabs(double(w1.data<float>()[c * per_out1 + k])));
    for (int64_t o = 0; o < out2; ++o)
      for (int64_t k = 0; k < per_in2; ++k)
        r2[c] = std::max(r2[c], std::fabs(double(w2.data<float>()[(o * channels + c) * per_in2 + k])));
  }
  Tensor* b1 = first.input(2).empty() ? nullptr : &g.initializers[first.input(2)];
  for (int64_t c = 0; c < channels; ++c) {
    if (r1[c] <= 0.0 || r2[c] <= 0.0) continue;  // a dead channel: nothing to balance
    const double s = std::sqrt(r1[c] / r2[c]);
    for (int64_t k = 0; k < per_out1; ++k)
      w1.data<float>()[c * per_out1 + k] = float(w1.data<float>()[c * per_out1 + k] / s);
    if (b1) b1->data<float>()[c] = float(b1->data<float>()[c] / s);
    for (int64_t o = 0; o < out2; ++o)
      for (int64_t k = 0; k < per_in2; ++k) {
        float& x = w2.data<float>()[(o * channels + c) * per_in2 + k];
        x = float(x * s);
      }
  }
  return true;
}

}  // namespace

int equalize_cross_layer(Graph& g) {
  int count = 0;
  for (const Node& first : g.nodes) {
    if (first.op_type != "Conv" || !first.domain.empty() || first.outputs.size() != 1) continue;
    const int relu = only_reader(g, first.outputs[0]);
    if (relu < 0 || g.nodes[relu].op_type != "Relu") continue;
    const int second = only_reader(g, g.nodes[relu].outputs[0]);
    if (second < 0 || g.nodes[second].op_type != "Conv" || g.nodes[second].input(0) != g.nodes[relu].outputs[0])
      continue;
    if (equalize_pair(g, first, g.nodes[second])) ++count;
  }
  return count;
}

}  // namespace qplay::quantize
