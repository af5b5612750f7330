#include "analysis/residuals.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "analysis/batches.h"
#include "analysis/capture.h"
#include "analysis/layers.h"
#include "analysis/match.h"
#include "graph/quant_params.h"
#include "runtime/executor.h"

namespace qplay {
namespace {

double per_tensor_scale(const std::vector<QuantParam>& params, const std::string& tensor) {
  const QuantParam* p = tensor.empty() ? nullptr : find_quant_param(params, tensor);
  return p && p->scales.size() == 1 ? double(p->scales[0]) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

ResidualStudy study_residuals(std::shared_ptr<const Graph> quantized, const Dataset& data,
                              const ResidualOptions& options, std::shared_ptr<const Graph> fp32) {
  const Graph& g = *quantized;
  const std::vector<QuantParam> params = list_quant_params(g);
  const std::vector<Layer> layers = group_layers(g, params);
  std::vector<Layer> fp32_layers;
  LayerMatching matching;
  if (fp32) {
    image_input(*fp32);  // throws unless the FP32 model has one image input
    fp32_layers = group_layers(*fp32);
    matching = match_layers(*fp32, fp32_layers, g, layers);
  }
  ResidualStudy study;
  study.has_fp32 = fp32 != nullptr;
  for (size_t index = 0; index < layers.size(); ++index) {
    const Layer& layer = layers[index];
    if (layer.kind != "add" || layer.qoperator) continue;
    AddResidual a;
    if (const LayerPair* pair = fp32 ? pair_of_quantized(matching, static_cast<int>(index)) : nullptr) {
      a.has_fp32 = true;
      a.fp32_layer = fp32_layers[pair->fp32].name;
      a.fp32_value = fp32_layers[pair->fp32].output;
      a.compared_value = layer_result(layer);
    }
    a.name = layer.name;
    a.inputs = layer.inputs;
    for (const auto& p : layer.input_params) a.input_scales.push_back(per_tensor_scale(params, p));
    if (a.input_scales.size() == 2) {
      const auto [lo, hi] = std::minmax(a.input_scales[0], a.input_scales[1]);
      a.scale_ratio = hi / lo;  // NaN when either is not quantized
    }
    a.float_value = layer.output;
    a.dequantized_value = layer.output_dequantized;
    a.output_scale = per_tensor_scale(params, layer.output_params);
    study.adds.push_back(a);
  }
  if (fp32 && !study.adds.empty() &&
      std::none_of(study.adds.begin(), study.adds.end(), [](const AddResidual& a) { return a.has_fp32; }))
    throw Error("no Add of the quantized model matches a layer of the FP32 model");

  study.images = options.limit < 0 ? data.size() : std::min(options.limit, data.size());
  const Executor executor(quantized);
  image_input(g);  // throws unless the model has one image input
  const int64_t batches = (study.images + options.batch - 1) / options.batch;
  // Per batch and Add, merged in batch order so results do not depend on the thread count.
  std::vector<std::vector<ErrorAccumulator>> acc(batches, std::vector<ErrorAccumulator>(study.adds.size()));
  std::vector<std::vector<ErrorAccumulator>> fp32_acc(batches, std::vector<ErrorAccumulator>(study.adds.size()));
  std::vector<std::string> keep, fp32_keep;
  for (const auto& a : study.adds) {
    if (!a.dequantized_value.empty()) keep.insert(keep.end(), {a.float_value, a.dequantized_value});
    if (a.has_fp32) {
      keep.push_back(a.compared_value);
      fp32_keep.push_back(a.fp32_value);
    }
  }
  std::optional<Executor> fp32_executor;
  if (fp32) fp32_executor.emplace(fp32);
  run_batches(study.images, options.batch, options.threads, [&](int64_t b, int64_t begin, int64_t count, int) {
    const Capture c = capture_images(executor, data, begin, count, keep);
    for (size_t i = 0; i < study.adds.size(); ++i)
      if (!study.adds[i].dequantized_value.empty())
        add_batch(acc[b][i], c.at(study.adds[i].float_value), c.at(study.adds[i].dequantized_value));
    if (!fp32_executor) return;
    const Capture f = capture_images(*fp32_executor, data, begin, count, fp32_keep);
    for (size_t i = 0; i < study.adds.size(); ++i) {
      const AddResidual& a = study.adds[i];
      if (!a.has_fp32) continue;
      try {
        add_batch(fp32_acc[b][i], f.at(a.fp32_value), c.at(a.compared_value));
      } catch (const Error& e) {
        throw Error("Add '" + a.name + "' ('" + a.compared_value + "' vs FP32 '" + a.fp32_value + "'): " + e.what());
      }
    }
  }, options.progress);
  for (size_t i = 0; i < study.adds.size(); ++i) {
    ErrorAccumulator total, fp32_total;
    for (const auto& per_batch : acc) merge(total, per_batch[i]);
    for (const auto& per_batch : fp32_acc) merge(fp32_total, per_batch[i]);
    study.adds[i].requantization = error_metrics(total, study.adds[i].output_scale);
    if (study.adds[i].has_fp32) study.adds[i].against_fp32 = error_metrics(fp32_total, study.adds[i].output_scale);
  }
  return study;
}

}  // namespace qplay
