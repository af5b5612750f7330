#include "quantize/bias_correction.h"

#include <cmath>
#include <set>

namespace qplay::quantize {

std::map<std::string, std::vector<double>> channel_means(const Graph& model, const std::vector<std::string>& values,
                                                         const Dataset& images, const BatchRunOptions& options) {
  const std::set<std::string> wanted(values.begin(), values.end());
  struct Sums {
    std::vector<double> sum;
    int64_t per_channel = 0;  // values added to each channel
  };
  std::vector<std::map<std::string, Sums>> per_thread(static_cast<size_t>(std::max(1, options.threads)));
  const Executor executor(std::make_shared<const Graph>(model));
  run_batches(executor, images, options, [&](int thread, const std::string& value, const Tensor& t) {
    if (!wanted.count(value)) return;
    if (t.dtype != DType::f32 || t.rank() < 2) throw Error("internal: '" + value + "' has no channel axis");
    Sums& s = per_thread[thread][value];
    const int64_t n = t.shape[0], c = t.shape[1], inner = t.numel() / (n * c);
    s.sum.resize(static_cast<size_t>(c), 0.0);
    const float* p = t.data<float>();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch) {
        double acc = 0.0;
        for (int64_t i = 0; i < inner; ++i) acc += p[(b * c + ch) * inner + i];
        s.sum[ch] += acc;
      }
    s.per_channel += n * inner;
  });
  std::map<std::string, std::vector<double>> means;
  for (const auto& v : values) {
    std::vector<double> sum;
    int64_t count = 0;
    for (auto& m : per_thread) {
      auto it = m.find(v);
      if (it == m.end()) continue;
      sum.resize(it->second.sum.size(), 0.0);
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += it->second.sum[i];
      count += it->second.per_channel;
    }
    if (count == 0) throw Error("internal: '" + v + "' was never computed");
    for (double& x : sum) x /= static_cast<double>(count);
    means[v] = std::move(sum);
  }
  return means;
}

Graph prefix_graph(const Graph& g, const std::vector<std::string>& outputs) {
  std::set<std::string> needed(outputs.begin(), outputs.end());
  std::vector<bool> keep(g.nodes.size(), false);
  for (int i = static_cast<int>(g.nodes.size()) - 1; i >= 0; --i) {
    const Node& n = g.nodes[i];
    for (const auto& o : n.outputs) keep[i] = keep[i] || needed.count(o);
    if (keep[i]) needed.insert(n.inputs.begin(), n.inputs.end());
  }
  Graph out = g;
  out.nodes.clear();
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (keep[i]) out.nodes.push_back(g.nodes[i]);
  out.outputs.clear();
  for (const auto& o : outputs) out.outputs.push_back({o, DType::f32, {}, {}});
  return out;
}

namespace {

// Depth of each layer output: 1 + the deepest corrected layer it depends on.
std::map<std::string, int> layer_depths(const Graph& g, const std::map<std::string, std::string>& layers) {
  std::map<std::string, int> depth_of_value;  // deepest corrected layer behind each value
  std::map<std::string, int> depth;
  for (const auto& n : g.nodes) {
    int d = 0;
    for (const auto& in : n.inputs) {
      auto it = depth_of_value.find(in);
      if (it != depth_of_value.end()) d = std::max(d, it->second);
    }
    for (const auto& o : n.outputs) {
      if (layers.count(o)) {
        depth[o] = d + 1;
        depth_of_value[o] = d + 1;
      } else {
        depth_of_value[o] = d;
      }
    }
  }
  return depth;
}

}  // namespace

BiasCorrectionReport correct_biases(Graph& fp32, const QuantPlan& plan, const Dataset& images, int rounds,
                                    const BatchRunOptions& options) {
  // Layers whose bias the QDQ model stores: output value -> bias initializer.
  std::map<std::string, std::string> bias_of;
  for (const auto& n : fp32.nodes) {
    if (plan.excluded.count(n.name) || weight_input_index(n, fp32) < 0) continue;
    const int bi = bias_input_index(n, fp32);
    if (bi < 0 || !plan.weights.count(n.input(1)) || !plan.activations.count(n.input(0))) continue;
    bias_of[n.outputs[0]] = n.input(bi);
  }
  BiasCorrectionReport report;
  report.layers = static_cast<int>(bias_of.size());
  if (bias_of.empty()) return report;
  std::vector<std::string> outputs;
  for (const auto& [value, bias] : bias_of) outputs.push_back(value);
  const auto depth = layer_depths(fp32, bias_of);
  std::map<int, std::vector<std::string>> by_level;
  for (const auto& [value, d] : depth) by_level[d].push_back(value);
  report.levels = static_cast<int>(by_level.size());

  const auto reference = channel_means(prefix_graph(fp32, outputs), outputs, images, options);
  for (int round = 0; round < rounds; ++round) {
    double shift = 0.0;
    int64_t channels = 0;
    for (const auto& [level, values] : by_level) {
      const Graph quantized = prefix_graph(insert_qdq(fp32, plan), values);
      const auto measured = channel_means(quantized, values, images, options);
      for (const auto& value : values) {
        Tensor& bias = fp32.initializers.at(bias_of.at(value));
        const auto& want = reference.at(value);
        const auto& got = measured.at(value);
        for (size_t c = 0; c < want.size(); ++c) {
          const double d = got[c] - want[c];
          bias.data<float>()[c] = static_cast<float>(bias.data<float>()[c] - d);
          shift += std::fabs(d);
          ++channels;
        }
      }
    }
    report.mean_abs_shift.push_back(shift / static_cast<double>(std::max<int64_t>(channels, 1)));
  }
  return report;
}

}  // namespace qplay::quantize
