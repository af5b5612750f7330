#include "analysis/reevaluate.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

#include "analysis/batches.h"
#include "analysis/capture.h"
#include "analysis/layers.h"
#include "runtime/executor.h"
#include "runtime/integer/lower.h"

namespace qplay {
namespace {

int argmax(const float* row, int64_t n) { return static_cast<int>(std::max_element(row, row + n) - row); }

// Checkpoints of `model` (the graph edits and layers name) that `executed` (model itself, or
// model lowered to integer ops) computes: a lowered group produces its QuantizeLinear's codes
// under the same name.
std::vector<std::string> checkpoint_values(const Graph& model, const Graph& executed) {
  std::vector<std::string> out;
  for (const auto& in : model.inputs) out.push_back(in.name);
  for (const auto& n : model.nodes)
    if (n.op_type == "QuantizeLinear" && !model.initializer(n.input(0))) out.push_back(n.outputs[0]);
  // Layers without output codes (the float logits, layers left in FP32): their float results,
  // so a layer's result is always in the cache (compare_cached reads them).
  for (const auto& layer : group_layers(model))
    if (layer.output_codes.empty() && std::find(out.begin(), out.end(), layer_result(layer)) == out.end())
      out.push_back(layer_result(layer));
  if (&model == &executed) return out;
  std::set<std::string> computed;
  for (const auto& in : executed.inputs) computed.insert(in.name);
  for (const auto& n : executed.nodes) computed.insert(n.outputs.begin(), n.outputs.end());
  std::erase_if(out, [&](const std::string& v) { return !computed.count(v); });
  return out;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.bytes == b.bytes;
}

bool same_attribute(const Attribute& a, const Attribute& b) {
  if (a.kind != b.kind || a.i != b.i || a.s != b.s || a.ints != b.ints || a.strings != b.strings) return false;
  if (std::memcmp(&a.f, &b.f, sizeof a.f) != 0 || a.floats.size() != b.floats.size() ||
      std::memcmp(a.floats.data(), b.floats.data(), a.floats.size() * sizeof(float)) != 0)
    return false;
  return a.t == b.t || (a.t && b.t && same_tensor(*a.t, *b.t));
}

// The edited model as it runs in integer mode: lowered like the base. Lowering turns parameters
// into operands of the integer ops under their own names, but may add initializers of its own,
// so every initializer that differs from the lowered base's is dirty too.
EditedGraph lower_edited(const Graph& lowered_base, const EditedGraph& edited) {
  EditedGraph out{lower_to_integer(edited.graph), edited.dirty};
  for (const auto& [name, t] : out.graph.initializers) {
    const Tensor* before = lowered_base.initializer(name);
    if (before == nullptr || !same_tensor(*before, t)) out.dirty.insert(name);
  }
  return out;
}

// Same node as in the base: what it computes is decided by op type, operands and attributes;
// name, op type, inputs, outputs and attributes decide.
bool same_as_base(const Graph& base, const Node& n) {
  const int i = base.find_node(n.name);
  if (i < 0) return false;
  const Node& b = base.nodes[i];
  if (b.op_type != n.op_type || b.domain != n.domain || b.inputs != n.inputs || b.outputs != n.outputs ||
      b.attrs.size() != n.attrs.size())
    return false;
  // Edits never change attributes, but integer lowering sets some (e.g. a fused Relu).
  for (const auto& [key, a] : n.attrs) {
    const auto it = b.attrs.find(key);
    if (it == b.attrs.end() || !same_attribute(it->second, a)) return false;
  }
  return true;
}

void score(Reevaluation& r, const std::vector<int>& labels) {
  r.predictions.resize(r.images);
  r.correct = 0;
  for (int64_t i = 0; i < r.images; ++i) {
    r.predictions[i] = argmax(&r.outputs[i * r.classes], r.classes);
    r.correct += r.predictions[i] == labels[i];
  }
}

}  // namespace

BaseCache capture_base(std::shared_ptr<const Graph> base, const Dataset& data, const ReevalOptions& options) {
  BaseCache c;
  c.base = base;
  c.options = options;
  c.options.progress = nullptr;  // the cache outlives the caller's callback
  c.images = options.limit < 0 ? data.size() : std::min(options.limit, data.size());
  c.labels.assign(data.labels.begin(), data.labels.begin() + c.images);
  if (base->outputs.size() != 1) throw Error("incremental evaluation needs a model with one output");
  c.executed = integer::graph_for_mode(*base, options.mode);
  c.checkpoints = checkpoint_values(*base, *c.executed);

  ExecutorOptions eo;
  eo.fast_kernels = options.fast_kernels;
  const Executor executor(c.executed, eo);
  const ValueInfo& input = image_input(*c.executed);
  const ImageLayout layout = image_layout_for(input);
  const std::string output = c.executed->outputs.at(0).name;

  const int64_t batches = (c.images + options.batch - 1) / options.batch;
  c.batches.resize(batches);
  c.batch_begin.resize(batches);
  std::vector<Tensor> outputs(batches);
  run_batches(c.images, options.batch, options.threads, [&](int64_t b, int64_t begin, int64_t count, int) {
    std::map<std::string, Tensor> feeds;
    feeds[input.name] = make_image_batch(data, begin, count, layout);
    auto& kept = c.batches[b];
    const auto sink = [&](size_t k, const Tensor& part, int64_t first_image, int64_t images) {
      gather_captured_part(kept[c.checkpoints[k]], part, first_image, images, count, c.checkpoints[k]);
    };
    auto result = executor.run_capturing(feeds, c.checkpoints, sink);
    outputs[b] = std::move(result.at(output));
    c.batch_begin[b] = begin;
  }, options.progress);
  for (const auto& kept : c.batches)
    for (const auto& [name, t] : kept) c.bytes += t.bytes.size();
  c.classes = c.images ? outputs[0].numel() / outputs[0].shape[0] : 0;
  for (const auto& t : outputs) c.outputs.insert(c.outputs.end(), t.data<float>(), t.data<float>() + t.numel());
  return c;
}

Reevaluation base_result(const BaseCache& cache) {
  Reevaluation r;
  r.images = cache.images;
  r.classes = cache.classes;
  r.outputs = cache.outputs;
  r.total_nodes = static_cast<int64_t>(cache.executed->nodes.size());
  r.cache_bytes = cache.bytes;
  score(r, cache.labels);
  return r;
}

RecomputePlan plan_recompute(const Graph& base, const EditedGraph& edited, const std::vector<std::string>& checkpoints) {
  const Graph& g = edited.graph;
  const std::set<std::string> cached(checkpoints.begin(), checkpoints.end());
  const size_t n = g.nodes.size();
  std::vector<bool> run(n, false);

  // (a) and (b): forward from the changed nodes.
  std::set<std::string> fresh;
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    bool r = !same_as_base(base, node);
    for (const auto& in : node.inputs) r = r || edited.dirty.count(in) || fresh.count(in);
    if (!r) continue;
    run[i] = true;
    fresh.insert(node.outputs.begin(), node.outputs.end());
  }
  // (c): backward to the checkpoints. Producers come earlier in topological order, so one
  // reverse sweep also covers the producers it adds.
  for (size_t i = n; i-- > 0;) {
    if (!run[i]) continue;
    for (const auto& in : g.nodes[i].inputs) {
      if (in.empty() || g.initializer(in) || cached.count(in)) continue;
      const int p = g.producer_of(in);
      if (p < 0) throw Error("cannot re-evaluate: value '" + in + "' is neither computed nor cached");
      run[p] = true;
    }
  }

  RecomputePlan plan;
  std::set<std::string> produced, fed;
  for (size_t i = 0; i < n; ++i)
    if (run[i]) {
      plan.nodes.push_back(static_cast<int>(i));
      produced.insert(g.nodes[i].outputs.begin(), g.nodes[i].outputs.end());
    }
  for (int i : plan.nodes)
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty() && !g.initializer(in) && !produced.count(in) && fed.insert(in).second) plan.fed_values.push_back(in);
  return plan;
}

Reevaluation reevaluate(const BaseCache& cache, const EditedGraph& edited, const Progress& progress, bool keep_codes) {
  const auto start = std::chrono::steady_clock::now();
  EditedGraph lowered;
  if (cache.options.mode == integer::RunMode::integer) lowered = lower_edited(*cache.executed, edited);
  const EditedGraph& executed = cache.options.mode == integer::RunMode::integer ? lowered : edited;
  const Graph& g = executed.graph;
  const RecomputePlan plan = plan_recompute(*cache.executed, executed, cache.checkpoints);
  const std::string output = g.outputs.at(0).name;

  Reevaluation r = base_result(cache);
  r.total_nodes = static_cast<int64_t>(g.nodes.size());
  const bool output_changes =
      std::any_of(plan.nodes.begin(), plan.nodes.end(), [&](int i) {
        const auto& outs = g.nodes[i].outputs;
        return std::find(outs.begin(), outs.end(), output) != outs.end();
      });
  if (keep_codes) r.recomputed_checkpoints.resize(cache.batches.size());
  if (plan.nodes.empty() || (!output_changes && !keep_codes)) return r;  // the output did not change

  // The recomputed nodes as a graph of their own, fed from the checkpoints.
  auto sub = std::make_shared<Graph>();
  sub->name = g.name + "_recompute";
  sub->opset = g.opset;
  sub->ir_version = g.ir_version;
  // Nodes that read only checkpoints and constants (the DequantizeLinear of a cached addend) go
  // first: a fused conv can then take such an addend although its node comes later in the
  // model's order (the executor fuses an Add only with an addend ready before the conv).
  const std::set<std::string> fed(plan.fed_values.begin(), plan.fed_values.end());
  auto reads_only_fed = [&](int i) {
    return std::all_of(g.nodes[i].inputs.begin(), g.nodes[i].inputs.end(),
                       [&](const std::string& in) { return in.empty() || fed.count(in) || g.initializer(in); });
  };
  std::vector<int> order;
  for (int i : plan.nodes)
    if (reads_only_fed(i)) order.push_back(i);
  for (int i : plan.nodes)
    if (!reads_only_fed(i)) order.push_back(i);
  std::set<std::string> produced;
  for (int i : plan.nodes) r.recomputed_nodes.push_back(g.nodes[i].name);
  for (int i : order) {
    sub->nodes.push_back(g.nodes[i]);
    produced.insert(g.nodes[i].outputs.begin(), g.nodes[i].outputs.end());
    for (const auto& in : g.nodes[i].inputs)
      if (const Tensor* t = g.initializer(in)) sub->initializers[in] = *t;
  }
  // With keep_codes, the checkpoints the recomputation produces are outputs of the sub-graph
  // rather than values seen by a ValueHook: the executor then keeps its fused conv epilogues
  // everywhere except where a kept code must be materialised, and the results are moved out.
  std::vector<std::string> new_checkpoints;
  if (keep_codes)
    for (const auto& v : checkpoint_values(edited.graph, g))
      if (produced.count(v)) new_checkpoints.push_back(v);
  if (output_changes) sub->outputs = g.outputs;
  for (const auto& v : new_checkpoints)
    if (v != output) sub->outputs.push_back(ValueInfo{v, DType::f32, {}, {}});  // the executor reads only names
  if (sub->outputs.empty()) return r;  // nothing to recompute that is kept
  const auto& first_batch = cache.batches.at(0);
  for (const auto& v : plan.fed_values) {
    const Tensor& t = first_batch.at(v);
    ValueInfo info{v, t.dtype, t.shape, {}};
    info.shape[0] = -1;
    info.dim_params = {"N"};  // the batch dimension; the others fixed
    info.dim_params.resize(t.shape.size());
    sub->inputs.push_back(info);
  }
  r.fed_values = plan.fed_values;
  for (const auto& kept : cache.batches)
    for (const auto& v : plan.fed_values) r.fed_bytes += kept.at(v).bytes.size();

  ExecutorOptions eo;
  eo.fast_kernels = cache.options.fast_kernels;
  const Executor executor(sub, eo);
  run_batches(cache.images, cache.options.batch, cache.options.threads, [&](int64_t b, int64_t begin, int64_t, int) {
    std::map<std::string, const Tensor*> feeds;  // read in place from the cache
    for (const auto& v : plan.fed_values) feeds[v] = &cache.batches[b].at(v);
    auto result = executor.run_borrowed(feeds);
    if (output_changes) {
      const Tensor& out = result.at(output);
      std::copy(out.data<float>(), out.data<float>() + out.numel(), r.outputs.begin() + begin * r.classes);
    }
    for (const auto& v : new_checkpoints) r.recomputed_checkpoints[b][v] = std::move(result.at(v));
  }, progress);
  score(r, cache.labels);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace qplay
