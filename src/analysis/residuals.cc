#include "analysis/residuals.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "analysis/batches.h"
#include "analysis/capture.h"
#include "analysis/layers.h"
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
                              const ResidualOptions& options) {
  const Graph& g = *quantized;
  const std::vector<QuantParam> params = list_quant_params(g);
  ResidualStudy study;
  for (const Layer& layer : group_layers(g, params)) {
    if (layer.kind != "add" || layer.qoperator) continue;
    AddResidual a;
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

  study.images = options.limit < 0 ? data.size() : std::min(options.limit, data.size());
  const Executor executor(quantized);
  image_input(g);  // throws unless the model has one image input
  const int64_t batches = (study.images + options.batch - 1) / options.batch;
  // Per batch and Add, merged in batch order so results do not depend on the thread count.
  std::vector<std::vector<ErrorAccumulator>> acc(batches, std::vector<ErrorAccumulator>(study.adds.size()));
  std::vector<std::string> keep;
  for (const auto& a : study.adds)
    if (!a.dequantized_value.empty()) keep.insert(keep.end(), {a.float_value, a.dequantized_value});
  run_batches(study.images, options.batch, options.threads, [&](int64_t b, int64_t begin, int64_t count, int) {
    const Capture c = capture_images(executor, data, begin, count, keep);
    for (size_t i = 0; i < study.adds.size(); ++i)
      if (!study.adds[i].dequantized_value.empty())
        add_batch(acc[b][i], c.at(study.adds[i].float_value), c.at(study.adds[i].dequantized_value));
  }, options.progress);
  for (size_t i = 0; i < study.adds.size(); ++i) {
    ErrorAccumulator total;
    for (const auto& per_batch : acc) merge(total, per_batch[i]);
    study.adds[i].requantization = error_metrics(total, study.adds[i].output_scale);
  }
  return study;
}

}  // namespace qplay
