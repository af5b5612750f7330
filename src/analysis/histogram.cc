#include "analysis/histogram.h"

#include <algorithm>
#include <cmath>

#include "analysis/batches.h"
#include "analysis/capture.h"
#include "analysis/layers.h"
#include "analysis/match.h"
#include "runtime/executor.h"

namespace qplay {

Histogram make_histogram(double lo, double hi, int bins) {
  if (bins < 1) throw Error("a histogram needs at least 1 bin, got " + std::to_string(bins));
  if (!(hi > lo)) throw Error("histogram range is empty");
  Histogram h;
  h.lo = lo;
  h.hi = hi;
  h.counts.assign(static_cast<size_t>(bins), 0);
  return h;
}

void add_values(Histogram& h, const float* values, int64_t n) {
  const int64_t bins = static_cast<int64_t>(h.counts.size());
  const double per_unit = static_cast<double>(bins) / (h.hi - h.lo);
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    if (std::isnan(v)) continue;
    h.total++;
    h.min = std::min(h.min, v);
    h.max = std::max(h.max, v);
    if (v < h.lo)
      h.below++;
    else if (v > h.hi)
      h.above++;
    else
      h.counts[static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>((v - h.lo) * per_unit), bins - 1))]++;
  }
}

void merge(Histogram& into, const Histogram& from) {
  if (into.counts.empty()) {
    into = from;
    return;
  }
  for (size_t i = 0; i < into.counts.size(); ++i) into.counts[i] += from.counts[i];
  into.below += from.below;
  into.above += from.above;
  into.total += from.total;
  into.min = std::min(into.min, from.min);
  into.max = std::max(into.max, from.max);
}

std::vector<double> bin_edges(const Histogram& h) {
  std::vector<double> edges;
  const size_t bins = h.counts.size();
  for (size_t i = 0; i <= bins; ++i) edges.push_back(h.lo + (h.hi - h.lo) * static_cast<double>(i) / bins);
  return edges;
}

ChannelRanges channel_ranges(const Tensor& t, int64_t axis) {
  if (t.dtype != DType::f32) throw Error(std::string("channel ranges need float32 values, got ") + dtype_name(t.dtype));
  const int64_t rank = static_cast<int64_t>(t.rank());
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) throw Error("axis out of range for a tensor of shape " + shape_str(t.shape));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= t.shape[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= t.shape[d];
  const int64_t channels = t.shape[axis];
  ChannelRanges r;
  r.axis = axis;
  r.min.assign(static_cast<size_t>(channels), std::numeric_limits<float>::infinity());
  r.max.assign(static_cast<size_t>(channels), -std::numeric_limits<float>::infinity());
  const float* v = t.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        const float x = v[(o * channels + c) * inner + i];
        r.min[c] = std::min(r.min[c], x);
        r.max[c] = std::max(r.max[c], x);
      }
  return r;
}

namespace {

// The tensor a user named, resolved in the model.
struct Resolved {
  std::string kind;         // "activation" | "weight"
  std::string float_value;  // activation before its Q, or a float weight; "" if none
  std::string codes;        // Q output or integer initializer; "" if not quantized
  std::string dequantized;  // DQ output; "" if none
  std::string quant_param;
  int layer = -1;  // layer whose output (activation) or weight (weight) this is
};

int first_consumer_of_type(const Graph& g, const std::string& value, const char* op) {
  for (int c : g.consumers_of(value))
    if (g.nodes[c].op_type == op) return c;
  return -1;
}

bool is_op(const Graph& g, int node, const char* op) { return node >= 0 && g.nodes[node].op_type == op; }

Resolved resolve_tensor(const Graph& g, const std::vector<QuantParam>& params, const std::vector<Layer>& layers,
                        const std::string& name) {
  Resolved r;
  const int producer = g.producer_of(name);

  // Weights: an initializer, or the DequantizeLinear of one.
  std::string weight = g.initializer(name) ? name : "";
  if (weight.empty() && is_op(g, producer, "DequantizeLinear") && g.initializer(g.nodes[producer].input(0)))
    weight = g.nodes[producer].input(0);
  if (!weight.empty()) {
    r.kind = "weight";
    if (g.initializer(weight)->dtype == DType::f32) {
      r.float_value = weight;
    } else {
      r.codes = weight;
      if (const int dq = first_consumer_of_type(g, weight, "DequantizeLinear"); dq >= 0)
        r.dequantized = g.nodes[dq].outputs[0];
      if (const QuantParam* p = find_quant_param(params, weight)) r.quant_param = p->tensor;
    }
    for (size_t k = 0; k < layers.size(); ++k)
      if (layers[k].weight == weight) r.layer = static_cast<int>(k);
    return r;
  }

  // Activations: the float value, its Q output or its DQ output.
  const bool graph_input =
      std::any_of(g.inputs.begin(), g.inputs.end(), [&](const ValueInfo& v) { return v.name == name; });
  if (producer < 0 && !graph_input) throw Error("the model has no tensor named '" + name + "'");
  r.kind = "activation";
  if (is_op(g, producer, "DequantizeLinear")) {
    r.codes = g.nodes[producer].input(0);
    r.dequantized = name;
    const int q = g.producer_of(r.codes);
    if (is_op(g, q, "QuantizeLinear")) r.float_value = g.nodes[q].input(0);
  } else if (is_op(g, producer, "QuantizeLinear")) {
    r.float_value = g.nodes[producer].input(0);
    r.codes = name;
  } else if (is_op(g, producer, "QLinearConv") || is_op(g, producer, "QLinearMatMul")) {
    r.codes = name;  // QOperator output: codes with no float tensor behind them
  } else {
    r.float_value = name;
    if (const int q = first_consumer_of_type(g, name, "QuantizeLinear"); q >= 0) r.codes = g.nodes[q].outputs[0];
  }
  if (!r.codes.empty() && r.dequantized.empty())
    if (const int dq = first_consumer_of_type(g, r.codes, "DequantizeLinear"); dq >= 0)
      r.dequantized = g.nodes[dq].outputs[0];
  if (!r.codes.empty())
    if (const QuantParam* p = find_quant_param(params, r.float_value.empty() ? r.codes : r.float_value))
      r.quant_param = p->tensor;
  for (size_t k = 0; k < layers.size(); ++k)
    if (!r.float_value.empty() && layers[k].output == r.float_value) r.layer = static_cast<int>(k);
  return r;
}

// The axis of a weight that indexes output channels, from the op that reads it.
int64_t output_channel_axis(const Graph& g, const Layer* layer, const Tensor& w) {
  if (layer == nullptr) return 0;
  const Node& n = g.nodes[layer->compute_node];
  if (layer->op_type == "Gemm") return n.attr_int("transB", 0) ? 0 : 1;
  if (layer->op_type == "MatMul" || layer->op_type == "QLinearMatMul") return static_cast<int64_t>(w.rank()) - 1;
  return 0;  // Conv, QLinearConv: [M, C/group, kH, kW]
}

// The FP32 model's value that plays `r`'s part, through layer matching (names as a last resort).
std::string fp32_counterpart(const Graph& fp32, const std::vector<Layer>& f_layers, const LayerMatching& matching,
                             const std::vector<Layer>& layers, const Resolved& r, const std::string& asked,
                             std::string& note) {
  if (r.kind == "weight") {
    const LayerPair* pair = r.layer >= 0 ? pair_of_quantized(matching, r.layer) : nullptr;
    if (pair == nullptr || f_layers[pair->fp32].weight.empty())
      throw Error("no FP32 counterpart of weight '" + asked + "' found in the FP32 model");
    const Layer& f = f_layers[pair->fp32];
    for (int n : f.nodes)
      if (fp32.nodes[n].op_type == "BatchNormalization")
        note = "the FP32 weights of '" + f.name + "' are taken before BatchNormalization '" + fp32.nodes[n].name +
               "' is folded in; the quantized weights include it";
    return f.weight;
  }
  if (r.layer >= 0)
    if (const LayerPair* pair = pair_of_quantized(matching, r.layer)) return f_layers[pair->fp32].output;
  for (const auto& pair : matching.pairs) {
    const Layer& q = layers[pair.quantized];
    for (size_t i = 0; i < q.inputs.size(); ++i)
      if (q.inputs[i] == r.float_value && !pair.fp32_inputs[i].empty()) return pair.fp32_inputs[i];
  }
  const bool known =
      fp32.producer_of(r.float_value) >= 0 ||
      std::any_of(fp32.inputs.begin(), fp32.inputs.end(), [&](const ValueInfo& v) { return v.name == r.float_value; });
  if (!r.float_value.empty() && known) return r.float_value;
  throw Error("no FP32 counterpart of activation '" + asked + "' found in the FP32 model");
}

// A range covering every value seen, and the grid's clipping bounds when the grid is 8-bit
// (a 32-bit bias grid would stretch the bins over billions of steps).
void choose_range(const Histogram* a, const Histogram* b, const std::optional<QuantGrid>& grid, double& lo,
                  double& hi) {
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (const Histogram* h : {a, b})
    if (h && h->total > 0) {
      lo = std::min(lo, h->min);
      hi = std::max(hi, h->max);
    }
  if (grid && grid->bits() <= 8)
    for (size_t c = 0; c < grid->channels(); ++c) {
      lo = std::min(lo, grid->clip_min(c));
      hi = std::max(hi, grid->clip_max(c));
    }
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0.0, hi = 1.0;
  if (hi <= lo) lo -= 0.5, hi += 0.5;  // all values equal: give the single bin a width
}

// Observed min/max only: a histogram whose range is irrelevant, used for the first pass.
Histogram range_probe() { return make_histogram(0.0, 1.0, 1); }

void add_tensor(Histogram& h, const Tensor& t, const std::string& value) {
  if (t.dtype != DType::f32) throw Error("'" + value + "' holds " + dtype_name(t.dtype) + " values, not float32");
  add_values(h, t.data<float>(), t.numel());
}

// Weights are in memory: float and dequantized values binned on common edges, plus min/max per
// output channel.
void fill_weight_histograms(TensorHistogram& out, const Graph& model, const Graph& float_graph, const Resolved& r,
                            const std::vector<Layer>& layers, const std::vector<Layer>& f_layers, int bins) {
  const Layer* layer = r.layer >= 0 ? &layers[r.layer] : nullptr;
  std::optional<Tensor> float_w, dequantized_w;
  if (out.has_float) float_w = *float_graph.initializer(out.float_value);
  if (!r.codes.empty() && out.grid) {
    dequantized_w = dequantize(*model.initializer(r.codes), *out.grid);
    out.has_dequantized = true;
  }
  if (!float_w && !dequantized_w) throw Error("'" + out.tensor + "' has no float32 values to histogram");
  Histogram probe_f = range_probe(), probe_d = range_probe();
  if (float_w) add_tensor(probe_f, *float_w, out.float_value);
  if (dequantized_w) add_tensor(probe_d, *dequantized_w, r.codes);
  double lo, hi;
  choose_range(&probe_f, &probe_d, out.grid, lo, hi);
  if (float_w) {
    out.float_values = make_histogram(lo, hi, bins);
    add_tensor(out.float_values, *float_w, out.float_value);
    const Layer* f_layer = nullptr;
    if (out.float_source == "fp32_model")
      for (const auto& f : f_layers)
        if (f.weight == out.float_value) f_layer = &f;
    out.float_channels = channel_ranges(
        *float_w, output_channel_axis(float_graph, out.float_source == "fp32_model" ? f_layer : layer, *float_w));
  }
  if (dequantized_w) {
    out.dequantized = make_histogram(lo, hi, bins);
    add_tensor(out.dequantized, *dequantized_w, r.codes);
    const int64_t axis = out.grid->axis >= 0 && out.grid->channels() > 1
                             ? out.grid->axis
                             : output_channel_axis(model, layer, *dequantized_w);
    out.dequantized_channels = channel_ranges(*dequantized_w, axis);
  }
}

}  // namespace

TensorHistogram tensor_histogram(std::shared_ptr<const Graph> model, const std::string& tensor,
                                 std::shared_ptr<const Graph> fp32, const Dataset& data,
                                 const HistogramOptions& options) {
  if (options.bins < 1 || options.bins > 100000)
    throw Error("bin count must be between 1 and 100000, got " + std::to_string(options.bins));
  const auto params = list_quant_params(*model);
  const auto layers = group_layers(*model, params);
  const Resolved r = resolve_tensor(*model, params, layers, tensor);

  TensorHistogram out;
  out.tensor = tensor;
  out.kind = r.kind;
  out.codes_value = r.codes;
  out.dequantized_value = r.dequantized;
  out.quant_param = r.quant_param;
  if (const QuantParam* p = find_quant_param(params, r.quant_param); p && !r.quant_param.empty())
    out.grid = quant_grid(*p);

  // Where the float values come from.
  std::vector<Layer> f_layers;
  if (fp32) {
    f_layers = group_layers(*fp32);
    const LayerMatching matching = match_layers(*fp32, f_layers, *model, layers);
    out.float_value = fp32_counterpart(*fp32, f_layers, matching, layers, r, tensor, out.note);
    out.float_source = "fp32_model";
  } else if (!r.float_value.empty()) {
    out.float_value = r.float_value;
    out.float_source = "model";
  }
  out.has_float = !out.float_value.empty();
  const Graph& float_graph = out.float_source == "fp32_model" ? *fp32 : *model;

  if (r.kind == "weight") {
    fill_weight_histograms(out, *model, float_graph, r, layers, f_layers, options.bins);
    return out;
  }

  // Activations: run the model(s) over the images twice, first for the range, then for the
  // counts, so nothing but the histograms is kept across batches.
  out.has_dequantized = !r.dequantized.empty();
  if (!out.has_float && !out.has_dequantized) throw Error("'" + tensor + "' has no float32 values to histogram");
  out.images = options.limit < 0 ? data.size() : std::min<int64_t>(options.limit, data.size());
  if (out.images < 1) throw Error("no images to histogram");

  ExecutorOptions exec_options;
  exec_options.fast_kernels = options.fast_kernels;
  const bool float_from_fp32 = out.float_source == "fp32_model";
  std::vector<std::string> model_keep;
  if (out.has_float && !float_from_fp32) model_keep.push_back(out.float_value);
  if (out.has_dequantized) model_keep.push_back(r.dequantized);
  const Executor model_exec(model, exec_options);
  std::optional<Executor> fp32_exec;
  if (float_from_fp32) fp32_exec.emplace(fp32, exec_options);

  auto pass = [&](const std::function<Histogram()>& make, Histogram& float_total, Histogram& dq_total) {
    const int threads = batch_threads(out.images, options.batch, options.threads);
    std::vector<Histogram> per_thread_f(threads, make()), per_thread_d(threads, make());
    run_batches(out.images, options.batch, options.threads, [&](int64_t, int64_t begin, int64_t count, int t) {
      Capture from_model, from_fp32;
      if (!model_keep.empty()) from_model = capture_images(model_exec, data, begin, count, model_keep);
      if (fp32_exec && out.has_float) from_fp32 = capture_images(*fp32_exec, data, begin, count, {out.float_value});
      if (out.has_float)
        add_tensor(per_thread_f[t], (float_from_fp32 ? from_fp32 : from_model).at(out.float_value), out.float_value);
      if (out.has_dequantized) add_tensor(per_thread_d[t], from_model.at(r.dequantized), r.dequantized);
    });
    for (int t = 0; t < threads; ++t) {
      merge(float_total, per_thread_f[t]);
      merge(dq_total, per_thread_d[t]);
    }
  };
  Histogram probe_f, probe_d;
  pass(range_probe, probe_f, probe_d);
  double lo, hi;
  choose_range(&probe_f, &probe_d, out.grid, lo, hi);
  Histogram counts_f, counts_d;
  pass([&] { return make_histogram(lo, hi, options.bins); }, counts_f, counts_d);
  if (out.has_float) out.float_values = counts_f;
  if (out.has_dequantized) out.dequantized = counts_d;
  return out;
}

}  // namespace qplay
