#include "analysis/compare.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <unordered_map>

#include "analysis/batches.h"
#include "analysis/capture.h"
#include "analysis/quant_grid.h"

namespace qplay {
namespace {

// What is measured for one matched layer, prepared once and shared by all threads.
struct LayerPlan {
  const Layer* quantized = nullptr;
  const Layer* fp32 = nullptr;
  std::string fp32_value;                // FP32 layer output
  std::string result;                    // quantized model value compared with it
  std::optional<QuantGrid> output_grid;  // set when the output is quantized
  bool result_is_codes = false;          // QOperator output without DQ: dequantize before comparing
  std::vector<std::string> fp32_inputs;  // FP32 values fed to the isolated layer
  IsolatedLayer isolated;
  std::shared_ptr<const Executor> isolated_executor;  // null when isolated runs are off
};

// Per-batch error sums (merged in batch order at the end, so sums do not depend on timing).
struct BatchErrors {
  std::vector<ErrorAccumulator> accumulated;
  std::vector<ErrorAccumulator> isolated;
  std::vector<ClippingCounts> clipping;
};

// Per-thread code counts (integers: merge order does not matter).
struct CodeCounts {
  std::vector<CodeAccumulator> accumulated;
  std::vector<CodeAccumulator> isolated;
};

void count_codes(CodeAccumulator& acc, const Tensor& codes) {
  if (codes.dtype != DType::u8 && codes.dtype != DType::i8) return;  // int32 grids: no per-code counters
  if (acc.counts.empty()) acc = make_code_accumulator(codes.dtype);
  add_codes(acc, codes);
}

void add_layer_error(ErrorAccumulator& acc, const LayerPlan& plan, const Tensor& fp32, const Tensor& result) {
  try {
    if (plan.result_is_codes)
      add_batch(acc, fp32, dequantize(result, *plan.output_grid));
    else
      add_batch(acc, fp32, result);
  } catch (const Error& e) {
    throw Error("layer '" + plan.quantized->name + "' ('" + plan.result + "' vs FP32 '" + plan.fp32_value +
                "'): " + e.what());
  }
}

// The FP32 reference of a layer with a quantized output, against that output's grid.
void add_layer_clipping(ClippingCounts& acc, const LayerPlan& plan, const Tensor& fp32) {
  if (!plan.output_grid) return;
  try {
    if (fp32.dtype != DType::f32) throw Error(std::string("the FP32 value is ") + dtype_name(fp32.dtype));
    add_clipped(acc, fp32.data<float>(), fp32.shape, *plan.output_grid);
  } catch (const Error& e) {
    throw Error("layer '" + plan.quantized->name + "' (FP32 '" + plan.fp32_value + "' against the grid of '" +
                plan.quantized->output_params + "'): " + e.what());
  }
}

std::vector<int> argmax_rows(const Tensor& t) {
  if (t.dtype != DType::f32 || t.rank() != 2)
    throw Error("model output is " + std::string(dtype_name(t.dtype)) + " " + shape_str(t.shape) +
                ", expected float32 [N, classes]");
  std::vector<int> out;
  const int64_t classes = t.shape[1];
  for (int64_t r = 0; r < t.shape[0]; ++r) {
    const float* row = t.data<float>() + r * classes;
    out.push_back(static_cast<int>(std::max_element(row, row + classes) - row));
  }
  return out;
}

std::vector<LayerPlan> plan_layers(const Graph& quantized, const std::vector<QuantParam>& q_params,
                                   const std::vector<Layer>& q_layers, const std::vector<Layer>& f_layers,
                                   const LayerMatching& matching, bool isolated, const ExecutorOptions& exec_options) {
  std::vector<LayerPlan> plans;
  for (const auto& pair : matching.pairs) {
    LayerPlan plan;
    plan.quantized = &q_layers[pair.quantized];
    plan.fp32 = &f_layers[pair.fp32];
    plan.fp32_value = plan.fp32->output;
    plan.result = layer_result(*plan.quantized);
    if (const QuantParam* p = find_quant_param(q_params, plan.quantized->output_params); p && !p->scales.empty())
      plan.output_grid = quant_grid(*p);
    plan.result_is_codes = plan.result == plan.quantized->output_codes && plan.output_grid.has_value();
    plan.fp32_inputs = pair.fp32_inputs;
    const bool inputs_known =
        std::none_of(plan.fp32_inputs.begin(), plan.fp32_inputs.end(), [](const auto& v) { return v.empty(); });
    if (isolated && inputs_known) {
      plan.isolated = isolate_layer(quantized, *plan.quantized, q_params);
      plan.isolated_executor =
          std::make_shared<const Executor>(std::make_shared<const Graph>(plan.isolated.graph), exec_options);
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

AccuracyBreakdown accuracy_breakdown(const Dataset& data, int64_t first_image, const std::vector<int>& fp32_predictions,
                                     const std::vector<int>& quantized_predictions) {
  AccuracyBreakdown a;
  a.images = static_cast<int64_t>(fp32_predictions.size());
  a.fp32_predictions = fp32_predictions;
  a.quantized_predictions = quantized_predictions;
  for (int64_t i = 0; i < a.images; ++i) {
    const int label = data.labels[first_image + i];
    a.labels.push_back(label);
    a.fp32_correct += fp32_predictions[i] == label;
    a.quantized_correct += quantized_predictions[i] == label;
    if (fp32_predictions[i] != quantized_predictions[i]) a.differing_images.push_back(first_image + i);
  }
  return a;
}

}  // namespace

LayerComparison summarize_layer(const Layer& quantized, const Layer& fp32, const QuantGrid* output_grid,
                                const LayerTotals& totals) {
  LayerComparison c;
  c.name = quantized.name;
  c.kind = quantized.kind;
  c.op_type = quantized.op_type;
  c.fp32_name = fp32.name;
  c.compared_value = layer_result(quantized);
  c.fp32_value = fp32.output;
  c.quant_params = quantized.quant_params;
  c.output_params = quantized.output_params;
  if (output_grid && output_grid->channels() == 1) c.scale = output_grid->scales[0];
  c.accumulated = error_metrics(totals.accumulated, c.scale);
  c.has_isolated = totals.has_isolated;
  if (c.has_isolated) c.isolated = error_metrics(totals.isolated, c.scale);
  c.has_codes = !totals.codes.counts.empty();
  if (c.has_codes) c.codes = code_stats(totals.codes);
  if (!totals.isolated_codes.counts.empty()) c.isolated_codes = code_stats(totals.isolated_codes);
  c.has_clipping = output_grid != nullptr;
  c.clipping = totals.clipping;
  return c;
}

IsolatedLayer isolate_layer(const Graph& g, const Layer& layer, const std::vector<QuantParam>& params) {
  IsolatedLayer iso;
  Graph& sub = iso.graph;
  sub.name = layer.name + "_isolated";
  sub.opset = g.opset;
  sub.ir_version = g.ir_version;

  // Inputs: FP32-domain values. Codes inputs (QOperator chains) get their own QuantizeLinear.
  for (size_t i = 0; i < layer.inputs.size(); ++i) {
    if (!layer.input_is_codes[i]) {
      iso.inputs.push_back(layer.inputs[i]);
      continue;
    }
    const QuantParam* p = find_quant_param(params, layer.input_params[i]);
    if (p == nullptr)
      throw Error("layer '" + layer.name + "': input '" + layer.inputs[i] + "' has no quantization parameters");
    const std::string float_name = layer.inputs[i] + "_float";
    sub.nodes.push_back(Node{layer.inputs[i] + "_isolated_QuantizeLinear",
                             "QuantizeLinear",
                             "",
                             {float_name, p->scale_name, p->zero_point_name},
                             {layer.inputs[i]},
                             {}});
    iso.inputs.push_back(float_name);
  }

  // The layer's nodes plus the Qs in front of its inputs (they belong to the layers producing
  // those activations, but here they quantize the FP32 values), in graph order.
  std::set<int> picked(layer.nodes.begin(), layer.nodes.end());
  for (int n : layer.nodes)
    for (const auto& in : g.nodes[n].inputs)
      if (const int q = g.producer_of(in); q >= 0 && g.nodes[q].op_type == "QuantizeLinear") picked.insert(q);
  for (int n : picked) sub.nodes.push_back(g.nodes[n]);

  iso.codes = layer.output_codes;
  iso.result = layer_result(layer);
  if (iso.result == layer.output_codes && !iso.codes.empty()) {  // QOperator output without DQ
    const QuantParam* p = find_quant_param(params, layer.output_params);
    if (p == nullptr)
      throw Error("layer '" + layer.name + "': output '" + iso.codes + "' has no quantization parameters");
    iso.result = iso.codes + "_isolated_dequantized";
    sub.nodes.push_back(Node{iso.result + "_DequantizeLinear",
                             "DequantizeLinear",
                             "",
                             {iso.codes, p->scale_name, p->zero_point_name},
                             {iso.result},
                             {}});
  }

  std::set<std::string> available;
  for (const auto& name : iso.inputs)
    if (available.insert(name).second) sub.inputs.push_back(ValueInfo{name, DType::f32, {}, {}});
  for (const auto& n : sub.nodes) {
    for (const auto& in : n.inputs) {
      if (in.empty() || available.count(in)) continue;
      const Tensor* t = g.initializer(in);
      if (t == nullptr)
        throw Error("layer '" + layer.name + "': node '" + n.name + "' reads '" + in +
                    "', which the layer's own nodes do not compute");
      sub.initializers[in] = *t;
      available.insert(in);
    }
    for (const auto& out : n.outputs) available.insert(out);
  }
  sub.outputs.push_back(ValueInfo{iso.result, DType::f32, {}, {}});
  if (!iso.codes.empty()) {
    const QuantParam* p = find_quant_param(params, layer.output_params);
    sub.outputs.push_back(ValueInfo{iso.codes, p ? p->dtype : DType::u8, {}, {}});
  }
  return iso;
}

Comparison compare_models(std::shared_ptr<const Graph> fp32, std::shared_ptr<const Graph> quantized,
                          const Dataset& data, const CompareOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.batch < 1) throw Error("batch size must be at least 1");
  if (options.threads < 1) throw Error("thread count must be at least 1");
  const ValueInfo& f_input = image_input(*fp32);
  const ValueInfo& q_input = image_input(*quantized);
  if (fp32->outputs.empty() || quantized->outputs.empty()) throw Error("a model has no output");

  Comparison result;
  if (options.image >= 0) {
    if (options.image >= data.size())
      throw Error("image index " + std::to_string(options.image) + " is out of range (the data set has " +
                  std::to_string(data.size()) + " images: 0.." + std::to_string(data.size() - 1) + ")");
    result.first_image = options.image;
    result.images = 1;
    result.single_image = true;
  } else {
    result.images = options.limit < 0 ? data.size() : std::min<int64_t>(options.limit, data.size());
  }
  if (result.images < 1) throw Error("no images to compare");

  // Layers, pairs and one plan per pair.
  const auto q_params = list_quant_params(*quantized);
  const auto q_layers = group_layers(*quantized, q_params);
  const auto f_layers = group_layers(*fp32);
  const LayerMatching matching = match_layers(*fp32, f_layers, *quantized, q_layers);
  if (matching.pairs.empty()) throw Error("no layer of the quantized model matches a layer of the FP32 model");
  for (int q : matching.unmatched_quantized) result.unmatched_quantized.push_back(q_layers[q].name);
  for (int f : matching.unmatched_fp32) result.unmatched_fp32.push_back(f_layers[f].name);

  ExecutorOptions exec_options;
  exec_options.fast_kernels = options.fast_kernels;
  const std::vector<LayerPlan> plans =
      plan_layers(*quantized, q_params, q_layers, f_layers, matching, options.isolated, exec_options);

  // FP32 values kept per batch: the layer outputs, the isolated layers' inputs, the model output.
  std::vector<std::string> fp32_keep{fp32->outputs[0].name};
  for (const auto& plan : plans) {
    fp32_keep.push_back(plan.fp32_value);
    if (plan.isolated_executor) fp32_keep.insert(fp32_keep.end(), plan.fp32_inputs.begin(), plan.fp32_inputs.end());
  }
  std::sort(fp32_keep.begin(), fp32_keep.end());
  fp32_keep.erase(std::unique(fp32_keep.begin(), fp32_keep.end()), fp32_keep.end());

  // Quantized values watched in the hook: each plan's result and output codes.
  enum class Role { result, codes };
  std::unordered_map<std::string, std::vector<std::pair<size_t, Role>>> watched;
  for (size_t k = 0; k < plans.size(); ++k) {
    watched[plans[k].result].push_back({k, Role::result});
    if (!plans[k].quantized->output_codes.empty())
      watched[plans[k].quantized->output_codes].push_back({k, Role::codes});
  }

  // Executors the caller already prepared for these graphs (a server comparing one image at a
  // time) save binding every kernel again.
  std::optional<Executor> f_own, q_own;
  const Executor& f_exec = options.fp32_executor ? *options.fp32_executor : f_own.emplace(fp32, exec_options);
  const Executor& q_exec =
      options.quantized_executor ? *options.quantized_executor : q_own.emplace(quantized, exec_options);
  const ImageLayout f_layout = image_layout_for(f_input);
  const ImageLayout q_layout = image_layout_for(q_input);
  const int64_t batches = (result.images + options.batch - 1) / options.batch;
  std::vector<BatchErrors> batch_errors(static_cast<size_t>(batches));
  std::vector<int> f_pred(static_cast<size_t>(result.images)), q_pred(static_cast<size_t>(result.images));

  std::vector<CodeCounts> thread_codes(batch_threads(result.images, options.batch, options.threads));
  // Per-thread buffers reused from batch to batch: FP32 values and the isolated layers' feeds.
  std::vector<Capture> thread_reference(thread_codes.size());
  std::vector<std::vector<std::map<std::string, Tensor>>> thread_isolated_feeds(
      thread_codes.size(), std::vector<std::map<std::string, Tensor>>(plans.size()));
  for (auto& counts : thread_codes) {
    counts.accumulated.resize(plans.size());
    counts.isolated.resize(plans.size());
  }

  run_batches(result.images, options.batch, options.threads, [&](int64_t b, int64_t begin, int64_t count, int thread) {
    CodeCounts& codes = thread_codes[thread];
    BatchErrors& errors = batch_errors[b];
    errors.accumulated.resize(plans.size());
    errors.isolated.resize(plans.size());
    errors.clipping.resize(plans.size());
    const int64_t first = result.first_image + begin;

    // FP32 run: keep what the quantized run and the isolated layers are measured against.
    std::map<std::string, Tensor> f_feeds;
    f_feeds[f_input.name] = make_image_batch(data, first, count, f_layout);
    Capture& reference = thread_reference[thread];
    capture_values_into(reference, f_exec, f_feeds, fp32_keep);

    // Quantized run: measure each watched value as the executor produces it, keep nothing.
    std::map<std::string, Tensor> q_feeds;
    q_feeds[q_input.name] = make_image_batch(data, first, count, q_layout);
    const ValueHook hook = [&](int, const std::string& value, const Tensor& t) {
      auto it = watched.find(value);
      if (it == watched.end()) return;
      for (const auto& [k, role] : it->second) {
        if (role == Role::codes)
          count_codes(codes.accumulated[k], t);
        else
          add_layer_error(errors.accumulated[k], plans[k], reference.at(plans[k].fp32_value), t);
      }
    };
    const auto q_out = q_exec.run(q_feeds, hook);
    for (size_t k = 0; k < plans.size(); ++k)
      add_layer_clipping(errors.clipping[k], plans[k], reference.at(plans[k].fp32_value));

    for (size_t k = 0; k < plans.size(); ++k) {
      const LayerPlan& plan = plans[k];
      if (!plan.isolated_executor) continue;
      std::map<std::string, Tensor>& feeds = thread_isolated_feeds[thread][k];
      for (size_t i = 0; i < plan.isolated.inputs.size(); ++i)
        feeds[plan.isolated.inputs[i]] = reference.at(plan.fp32_inputs[i]);
      const auto out = plan.isolated_executor->run(feeds);
      add_layer_error(errors.isolated[k], plan, reference.at(plan.fp32_value), out.at(plan.isolated.result));
      if (!plan.isolated.codes.empty()) count_codes(codes.isolated[k], out.at(plan.isolated.codes));
    }

    const auto fp = argmax_rows(reference.at(fp32->outputs[0].name));
    const auto qp = argmax_rows(q_out.at(quantized->outputs[0].name));
    std::copy(fp.begin(), fp.end(), f_pred.begin() + begin);
    std::copy(qp.begin(), qp.end(), q_pred.begin() + begin);
  }, options.progress);

  for (size_t k = 0; k < plans.size(); ++k) {
    const LayerPlan& plan = plans[k];
    LayerTotals totals;
    totals.has_isolated = plan.isolated_executor != nullptr;
    for (const auto& errors : batch_errors) {
      merge(totals.accumulated, errors.accumulated[k]);
      merge(totals.isolated, errors.isolated[k]);
      merge(totals.clipping, errors.clipping[k]);
    }
    for (const auto& counts : thread_codes) {
      merge(totals.codes, counts.accumulated[k]);
      merge(totals.isolated_codes, counts.isolated[k]);
    }
    const QuantGrid* grid = plan.output_grid ? &*plan.output_grid : nullptr;
    result.layers.push_back(summarize_layer(*plan.quantized, *plan.fp32, grid, totals));
  }

  result.accuracy = accuracy_breakdown(data, result.first_image, f_pred, q_pred);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace qplay
