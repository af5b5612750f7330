#include "runtime/executor.h"

#include <set>

#include "runtime/kernels/fast/integer_providers.h"
#include "runtime/kernels/fast/providers.h"

namespace qplay {

PreparedKernel bind_reference_kernel(const Node& node) {
  const OpSpec* spec = find_op(node.op_type, node.domain);
  if (spec == nullptr || spec->reference == nullptr)
    throw Error("no kernel for operator '" + node.op_type + "' (node '" + node.name + "')");
  ReferenceKernel fn = spec->reference;
  return [fn, node](const Inputs& inputs, std::vector<Tensor>& outputs) { fn(node, inputs, outputs); };
}

Executor::Executor(std::shared_ptr<const Graph> graph, ExecutorOptions options) : graph_(std::move(graph)) {
  const Graph& g = *graph_;
  auto slot = [&](const std::string& name) {
    auto [it, inserted] = slot_of_.try_emplace(name, slot_count_);
    if (inserted) ++slot_count_;
    return it->second;
  };
  for (const auto& in : g.inputs) input_slots_.push_back(slot(in.name));
  for (const auto& [name, t] : g.initializers) slot(name);

  if (options.fast_kernels)
    for (auto& p : fast::all_providers()) options.providers.push_back(std::move(p));
  if (options.fast_kernels)  // integer ops (domain "qplay") of lowered graphs; nullptr for every other node
    for (auto& p : fast::integer_providers()) options.providers.push_back(std::move(p));
  const size_t n = g.nodes.size();
  kernels_.reserve(n);
  node_inputs_.resize(n);
  node_outputs_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    for (const auto& in : node.inputs) node_inputs_[i].push_back(in.empty() ? -1 : slot(in));
    for (const auto& out : node.outputs) node_outputs_[i].push_back(out.empty() ? -1 : slot(out));
    PreparedKernel k;
    for (const auto& provider : options.providers)
      if ((k = provider(node, g))) break;
    kernels_.push_back(k ? std::move(k) : bind_reference_kernel(node));
  }
  for (const auto& out : g.outputs) output_slots_.push_back(slot(out.name));

  // Free each intermediate after its last reader, unless it is a graph output.
  std::set<int> keep(output_slots_.begin(), output_slots_.end());
  std::vector<int> last_reader(slot_count_, -1);
  for (size_t i = 0; i < n; ++i)
    for (int s : node_inputs_[i])
      if (s >= 0) last_reader[s] = static_cast<int>(i);
  release_after_.resize(n);
  for (int s = 0; s < slot_count_; ++s)
    if (last_reader[s] >= 0 && !keep.count(s)) release_after_[last_reader[s]].push_back(s);
}

std::map<std::string, Tensor> Executor::run(const std::map<std::string, Tensor>& feeds, const ValueHook& hook) const {
  const Graph& g = *graph_;
  std::vector<Tensor> owned(slot_count_);
  std::vector<const Tensor*> value(slot_count_, nullptr);
  for (const auto& [name, t] : g.initializers) value[slot_of_.at(name)] = &t;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ValueInfo& info = g.inputs[i];
    auto it = feeds.find(info.name);
    if (it == feeds.end()) throw Error("no data given for model input '" + info.name + "'");
    const Tensor& t = it->second;
    if (t.dtype != info.dtype)
      throw Error("model input '" + info.name + "' expects " + dtype_name(info.dtype) + ", got " + dtype_name(t.dtype));
    if (!info.shape.empty()) {
      bool ok = t.shape.size() == info.shape.size();
      for (size_t d = 0; ok && d < t.shape.size(); ++d) ok = info.shape[d] < 0 || info.shape[d] == t.shape[d];
      if (!ok)
        throw Error("model input '" + info.name + "' expects shape " + shape_str(info.shape) + ", got " +
                    shape_str(t.shape));
    }
    value[input_slots_[i]] = &t;
  }

  Inputs inputs;
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    inputs.clear();
    for (int s : node_inputs_[i]) inputs.push_back(s >= 0 ? value[s] : nullptr);
    outputs.resize(node_outputs_[i].size());
    kernels_[i](inputs, outputs);
    for (size_t k = 0; k < outputs.size(); ++k) {
      const int s = node_outputs_[i][k];
      if (s < 0) continue;
      owned[s] = std::move(outputs[k]);
      value[s] = &owned[s];
      if (hook) hook(static_cast<int>(i), g.nodes[i].outputs[k], owned[s]);
    }
    for (int s : release_after_[i]) {
      owned[s] = Tensor();
      value[s] = nullptr;
    }
    outputs.clear();
  }

  std::map<std::string, Tensor> result;
  for (size_t k = 0; k < g.outputs.size(); ++k) {
    const int s = output_slots_[k];
    if (value[s] == nullptr) throw Error("graph output '" + g.outputs[k].name + "' was not computed");
    result[g.outputs[k].name] = value[s] == &owned[s] ? std::move(owned[s]) : *value[s];
  }
  return result;
}

}  // namespace qplay
