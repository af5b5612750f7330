#include "analysis/layer_cache.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <unordered_map>

#include "analysis/batches.h"
#include "analysis/capture.h"
#include "analysis/half_float.h"
#include "analysis/layers.h"
#include "analysis/match.h"
#include "analysis/metrics.h"
#include "analysis/quant_grid.h"
#include "analysis/sample_sums.h"
#include "graph/quant_params.h"
#include "runtime/executor.h"

namespace qplay {
namespace {

int argmax(const float* row, int64_t n) { return static_cast<int>(std::max_element(row, row + n) - row); }

// Where the quantized side of one matched layer comes from.
struct CachedLayerPlan {
  const Layer* quantized = nullptr;
  const Layer* fp32 = nullptr;
  int fp32_index = -1;           // into Fp32LayerCache::values
  std::string cached;                    // checkpoint holding the layer's result: its output codes, or a float value
  bool cached_is_codes = false;          // `cached` holds output codes on output_grid
  std::optional<QuantGrid> output_grid;  // set when the layer's output is quantized
};

struct BatchSums {
  std::vector<ErrorAccumulator> errors;
  std::vector<CodeAccumulator> codes;
  std::vector<ClippingCounts> clipping;
};

}  // namespace

int Fp32LayerCache::index_of(const std::string& value) const {
  const auto it = std::find(values.begin(), values.end(), value);
  return it == values.end() ? -1 : static_cast<int>(it - values.begin());
}

Fp32LayerCache capture_fp32_layers(std::shared_ptr<const Graph> fp32, const Dataset& data, const ReevalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  Fp32LayerCache c;
  c.fp32 = fp32;
  c.images = options.limit < 0 ? data.size() : std::min(options.limit, data.size());
  if (fp32->outputs.size() != 1) throw Error("the FP32 model must have one output");
  if (options.batch < 1) throw Error("batch size must be at least 1");
  if (options.threads < 1) throw Error("thread count must be at least 1");
  for (const auto& layer : group_layers(*fp32))
    if (!layer.output.empty() && c.index_of(layer.output) < 0) c.values.push_back(layer.output);
  c.elements.assign(c.values.size(), -1);
  c.halves.resize(c.values.size());
  c.predictions.assign(static_cast<size_t>(c.images), -1);

  ExecutorOptions eo;
  eo.fast_kernels = options.fast_kernels;
  const Executor executor(fp32, eo);
  const ValueInfo& input = image_input(*fp32);
  const ImageLayout layout = image_layout_for(input);
  const std::string output = fp32->outputs[0].name;

  // One batch: every value arrives (whole, or in slices of the batch) and is stored at its images'
  // place. `sizing` is true only for the first batch, which runs alone and sizes every slot, so the
  // parallel batches after it only read the sizes and write disjoint ranges: no lock per value.
  const auto run_batch = [&](int64_t begin, int64_t count, bool sizing) {
    std::map<std::string, Tensor> feeds;
    feeds[input.name] = make_image_batch(data, begin, count, layout);
    const auto sink = [&](size_t k, const Tensor& t, int64_t first_image, int64_t images) {
      const std::string& value = c.values[k];
      if (first_image < 0) throw Error("FP32 layer output '" + value + "' is a constant, not a per-image value");
      if (t.dtype != DType::f32) throw Error("FP32 layer output '" + value + "' is not float32");
      if (images < 1 || t.numel() % images != 0)
        throw Error("FP32 layer output '" + value + "' has " + std::to_string(t.numel()) + " values for " +
                    std::to_string(images) + " images");
      if (sizing && c.elements[k] < 0) {
        c.elements[k] = t.numel() / images;
        c.halves[k].resize(static_cast<size_t>(c.images * c.elements[k]));
      } else if (t.numel() != c.elements[k] * images) {
        throw Error("FP32 layer output '" + value + "' changes size between batches");
      }
      floats_to_halves(t.data<float>(), c.halves[k].data() + (begin + first_image) * c.elements[k],
                       static_cast<size_t>(t.numel()));
    };
    const auto result = executor.run_capturing(feeds, c.values, sink);
    const Tensor& out = result.at(output);
    const int64_t classes = out.numel() / count;
    for (int64_t i = 0; i < count; ++i) c.predictions[begin + i] = argmax(out.data<float>() + i * classes, classes);
  };

  const int64_t first = std::min(options.batch, c.images);
  if (first > 0) run_batch(0, first, true);
  for (size_t k = 0; k < c.values.size(); ++k)
    if (first > 0 && c.elements[k] < 0) throw Error("FP32 layer output '" + c.values[k] + "' was never computed");
  run_batches(c.images - first, options.batch, options.threads,
              [&](int64_t, int64_t begin, int64_t count, int) { run_batch(first + begin, count, false); });
  for (const auto& h : c.halves) c.bytes += h.size() * sizeof(uint16_t);
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c;
}

CachedComparison compare_cached(const Fp32LayerCache& fp32, const BaseCache& quantized, const EditedGraph* edited,
                                const Reevaluation* run, int threads) {
  const auto start = std::chrono::steady_clock::now();
  if ((edited == nullptr) != (run == nullptr)) throw Error("compare_cached: pass both the edited graph and its run");
  if (fp32.images != quantized.images)
    throw Error("the FP32 cache holds " + std::to_string(fp32.images) + " images, the quantized cache " +
                std::to_string(quantized.images));
  if (run && quantized.images > 0 && run->recomputed_checkpoints.size() != quantized.batches.size() &&
      !run->recomputed_nodes.empty())
    throw Error("compare_cached: the re-evaluation did not keep its codes (reevaluate with keep_codes)");
  const Graph& g = edited ? edited->graph : *quantized.base;

  CachedComparison out;
  Comparison& result = out.comparison;
  result.images = quantized.images;
  const auto params = list_quant_params(g);
  const auto q_layers = group_layers(g, params);
  const auto f_layers = group_layers(*fp32.fp32);
  const LayerMatching matching = match_layers(*fp32.fp32, f_layers, g, q_layers);
  for (int q : matching.unmatched_quantized) result.unmatched_quantized.push_back(q_layers[q].name);
  for (int f : matching.unmatched_fp32) result.unmatched_fp32.push_back(f_layers[f].name);

  const std::string model_output = g.outputs.at(0).name;
  const auto is_cached = [&](const std::string& value) {
    if (quantized.batches.empty()) return false;
    if (quantized.batches[0].count(value)) return true;
    return run && !run->recomputed_checkpoints.empty() && run->recomputed_checkpoints[0].count(value);
  };
  std::vector<CachedLayerPlan> plans;
  for (const auto& pair : matching.pairs) {
    CachedLayerPlan p;
    p.quantized = &q_layers[pair.quantized];
    p.fp32 = &f_layers[pair.fp32];
    p.fp32_index = fp32.index_of(p.fp32->output);
    const std::string& result_value = layer_result(*p.quantized);
    if (const QuantParam* q = find_quant_param(params, p.quantized->output_params); q && !q->scales.empty())
      p.output_grid = quant_grid(*q);
    if (p.fp32_index >= 0 && !p.quantized->output_codes.empty() && p.output_grid && is_cached(p.quantized->output_codes)) {
      p.cached = p.quantized->output_codes;
      p.cached_is_codes = true;
    } else if (p.fp32_index >= 0 && is_cached(result_value)) {
      p.cached = result_value;
    } else if (p.fp32_index < 0 || result_value != model_output) {
      out.uncached.push_back(p.quantized->name);
      continue;
    }
    plans.push_back(std::move(p));
  }

  const std::vector<float>& q_outputs = run ? run->outputs : quantized.outputs;
  const int64_t classes = quantized.classes;
  const int64_t batches = static_cast<int64_t>(quantized.batches.size());
  std::vector<BatchSums> sums(static_cast<size_t>(batches));
  std::vector<std::vector<float>> scratch(static_cast<size_t>(std::max(1, threads)));

  // One "image batch" per cached batch: run_batches with batch size 1 hands out batch indices.
  run_batches(batches, 1, threads, [&](int64_t b, int64_t, int64_t, int thread) {
    const int64_t begin = quantized.batch_begin[b];
    const int64_t end = b + 1 < batches ? quantized.batch_begin[b + 1] : quantized.images;
    const int64_t count = end - begin;
    BatchSums& s = sums[b];
    s.errors.resize(plans.size());
    s.codes.resize(plans.size());
    s.clipping.resize(plans.size());
    std::vector<float>& x = scratch[thread];
    for (size_t k = 0; k < plans.size(); ++k) {
      const CachedLayerPlan& p = plans[k];
      const int64_t n = fp32.elements[p.fp32_index];
      x.resize(static_cast<size_t>(count * n));
      halves_to_floats(fp32.halves[p.fp32_index].data() + begin * n, x.data(), x.size());
      if (p.cached.empty()) {  // the model output
        if (n != classes) throw Error("layer '" + p.quantized->name + "': FP32 output size differs from the model's");
        for (int64_t i = 0; i < count; ++i) add_sample(s.errors[k], &x[i * n], &q_outputs[(begin + i) * classes], n);
        if (p.output_grid) add_clipped(s.clipping[k], x.data(), {count, n}, *p.output_grid);
        continue;
      }
      const Tensor* codes = nullptr;
      if (run && !run->recomputed_checkpoints.empty()) {
        const auto& recomputed = run->recomputed_checkpoints[b];
        if (const auto it = recomputed.find(p.cached); it != recomputed.end()) codes = &it->second;
      }
      if (codes == nullptr) codes = &quantized.batches[b].at(p.cached);
      if (codes->numel() != count * n)
        throw Error("layer '" + p.quantized->name + "': " + std::to_string(codes->numel() / std::max<int64_t>(count, 1)) +
                    " codes per image against " + std::to_string(n) + " FP32 values");
      const bool byte_codes = codes->dtype == DType::u8 || codes->dtype == DType::i8;
      const QuantGrid* grid = p.output_grid ? &*p.output_grid : nullptr;
      if (p.cached_is_codes && grid->channels() == 1 && byte_codes) {  // the common case, fused and vectorised
        const uint8_t* base = codes->bytes.data();
        const ClipBounds clip = clip_bounds(*grid, 0);
        for (int64_t i = 0; i < count; ++i) {
          const SampleSums sums = sample_sums_codes(&x[i * n], base + i * n, codes->dtype == DType::i8, n,
                                                    grid->scales[0], static_cast<int32_t>(grid->zero_points[0]), clip);
          add_sample_sums(s.errors[k], sums);
          merge(s.clipping[k], sums.clipping);
        }
        s.codes[k] = make_code_accumulator(codes->dtype);
        add_codes(s.codes[k], *codes);
        continue;
      }
      const Tensor y = p.cached_is_codes ? dequantize(*codes, *grid) : *codes;
      if (y.dtype != DType::f32) throw Error("layer '" + p.quantized->name + "': cached result is not float32");
      for (int64_t i = 0; i < count; ++i) add_sample(s.errors[k], &x[i * n], y.data<float>() + i * n, n);
      if (grid) add_clipped(s.clipping[k], x.data(), codes->shape, *grid);  // x has the cached value's layout
      if (p.cached_is_codes && byte_codes) {
        s.codes[k] = make_code_accumulator(codes->dtype);
        add_codes(s.codes[k], *codes);
      }
    }
  });

  for (size_t k = 0; k < plans.size(); ++k) {
    const CachedLayerPlan& p = plans[k];
    LayerTotals totals;  // no isolated runs from caches
    for (const auto& s : sums) {
      merge(totals.accumulated, s.errors[k]);
      merge(totals.codes, s.codes[k]);
      merge(totals.clipping, s.clipping[k]);
    }
    result.layers.push_back(summarize_layer(*p.quantized, *p.fp32, p.output_grid ? &*p.output_grid : nullptr, totals));
  }

  AccuracyBreakdown& a = result.accuracy;
  a.images = quantized.images;
  a.labels = quantized.labels;
  a.fp32_predictions = fp32.predictions;
  a.quantized_predictions.resize(static_cast<size_t>(a.images));
  for (int64_t i = 0; i < a.images; ++i) {
    a.quantized_predictions[i] = argmax(&q_outputs[i * classes], classes);
    a.fp32_correct += a.fp32_predictions[i] == a.labels[i];
    a.quantized_correct += a.quantized_predictions[i] == a.labels[i];
    if (a.fp32_predictions[i] != a.quantized_predictions[i]) a.differing_images.push_back(i);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace qplay
