#include "analysis/capture.h"

#include <set>

namespace qplay {
namespace {

bool is_value_of(const Graph& g, const std::string& name) {
  for (const auto& in : g.inputs)
    if (in.name == name) return true;
  return g.producer_of(name) >= 0 || g.initializer(name) != nullptr;
}

}  // namespace

const Tensor& Capture::at(const std::string& value) const {
  auto it = values.find(value);
  if (it == values.end()) throw Error("value '" + value + "' was not captured");
  return it->second;
}

std::vector<std::string> expand_capture_request(const Graph& g, const std::vector<std::string>& values) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& v) {
    if (seen.insert(v).second) out.push_back(v);
  };
  for (const auto& v : values) {
    if (!is_value_of(g, v)) throw Error("the model has no value named '" + v + "'");
    add(v);
    const int p = g.producer_of(v);
    if (p >= 0 && g.nodes[p].op_type == "QuantizeLinear") {
      for (int c : g.consumers_of(v))
        if (g.nodes[c].op_type == "DequantizeLinear") add(g.nodes[c].outputs[0]);
    } else if (p >= 0 && g.nodes[p].op_type == "DequantizeLinear") {
      const int q = g.producer_of(g.nodes[p].input(0));
      if (q >= 0 && g.nodes[q].op_type == "QuantizeLinear") add(g.nodes[p].input(0));
    }
  }
  return out;
}

void capture_values_into(Capture& c, const Executor& executor, const std::map<std::string, Tensor>& feeds,
                         const std::vector<std::string>& keep) {
  const Graph& g = executor.graph();
  const std::vector<std::string> request = expand_capture_request(g, keep);
  const std::set<std::string> wanted(request.begin(), request.end());
  const bool keep_all = keep.empty();

  // Drop values of an earlier request that this one does not ask for; keep the others' buffers.
  for (auto it = c.values.begin(); it != c.values.end();)
    it = keep_all || wanted.count(it->first) ? std::next(it) : c.values.erase(it);
  c.dequantized_of.clear();

  for (const auto& [name, t] : feeds)
    if (keep_all || wanted.count(name)) c.values[name] = t;
  for (const auto& name : request)
    if (const Tensor* t = g.initializer(name)) c.values[name] = *t;

  // Copies (vector assignment reuses capacity): the executor frees intermediates after their
  // last reader.
  const ValueHook hook = [&](int, const std::string& value, const Tensor& t) {
    if (keep_all || wanted.count(value)) c.values[value] = t;
  };
  executor.run(feeds, hook);

  for (const auto& [value, t] : c.values) {
    const int p = g.producer_of(value);
    if (p < 0 || g.nodes[p].op_type != "QuantizeLinear") continue;
    for (int r : g.consumers_of(value))
      if (g.nodes[r].op_type == "DequantizeLinear" && c.values.count(g.nodes[r].outputs[0]))
        c.dequantized_of[value] = g.nodes[r].outputs[0];
  }
}

Capture capture_values(const Executor& executor, const std::map<std::string, Tensor>& feeds,
                       const std::vector<std::string>& keep) {
  Capture c;
  capture_values_into(c, executor, feeds, keep);
  return c;
}

const ValueInfo& image_input(const Graph& g) {
  if (g.inputs.size() != 1)
    throw Error("the model has " + std::to_string(g.inputs.size()) + " inputs; image classification needs exactly one");
  return g.inputs[0];
}

Capture capture_images(const Executor& executor, const Dataset& data, int64_t first, int64_t count,
                       const std::vector<std::string>& keep) {
  if (first < 0 || count < 1 || first + count > data.size())
    throw Error("images " + std::to_string(first) + ".." + std::to_string(first + count - 1) +
                " are out of range (the data set has " + std::to_string(data.size()) + " images)");
  const ValueInfo& input = image_input(executor.graph());
  std::map<std::string, Tensor> feeds;
  feeds[input.name] = make_image_batch(data, first, count, image_layout_for(input));
  return capture_values(executor, feeds, keep);
}

}  // namespace qplay
