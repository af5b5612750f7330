#include "analysis/mode_compare.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "analysis/layers.h"
#include "analysis/quant_grid.h"
#include "graph/quant_params.h"

namespace qplay {
namespace {

int64_t top1(const float* row, int64_t classes) {
  return static_cast<int64_t>(std::max_element(row, row + classes) - row);
}

int64_t code_at(const Tensor& t, size_t i) {
  return t.dtype == DType::i8 ? int64_t{static_cast<int8_t>(t.bytes[i])} : int64_t{t.bytes[i]};
}

}  // namespace

ModeComparison compare_modes(const BaseCache& simulate, const BaseCache& integer) {
  if (simulate.options.mode != integer::RunMode::simulate || integer.options.mode != integer::RunMode::integer)
    throw Error("compare_modes needs a simulate-mode cache and an integer-mode cache");
  if (!simulate.base || !integer.base || simulate.images != integer.images ||
      simulate.batch_begin != integer.batch_begin || simulate.labels != integer.labels ||
      simulate.classes != integer.classes)
    throw Error("compare_modes: the two caches do not cover the same images of the same model");

  ModeComparison out;
  out.images = simulate.images;
  const Graph& g = *simulate.base;
  const auto params = list_quant_params(g);
  for (const Layer& layer : group_layers(g, params)) {
    const std::string& value = layer.output_codes;
    if (value.empty() || simulate.batches.empty() || !simulate.batches[0].count(value) ||
        !integer.batches[0].count(value))
      continue;
    const QuantParam* q = find_quant_param(params, layer.output_params);
    if (q == nullptr || q->scales.empty()) continue;
    const QuantGrid grid = quant_grid(*q);
    ModeLayerDifference d;
    d.layer = layer.name;
    d.codes_value = value;
    ErrorAccumulator acc;
    for (size_t b = 0; b < simulate.batches.size(); ++b) {
      const Tensor& s = simulate.batches[b].at(value);
      const Tensor& i = integer.batches[b].at(value);
      if (s.dtype != i.dtype || s.shape != i.shape || (s.dtype != DType::u8 && s.dtype != DType::i8))
        throw Error("compare_modes: '" + value + "' differs in type or shape between the modes");
      for (size_t k = 0; k < s.bytes.size(); ++k) {
        const int64_t diff = std::llabs(code_at(s, k) - code_at(i, k));
        d.differing += diff != 0;
        d.max_code_difference = std::max(d.max_code_difference, diff);
      }
      d.codes += static_cast<int64_t>(s.bytes.size());
      add_batch(acc, dequantize(s, grid), dequantize(i, grid));
    }
    d.error = error_metrics(acc, grid.scales.size() == 1 ? grid.scales[0] : std::nan(""));
    out.layers.push_back(std::move(d));
  }

  const int64_t classes = simulate.classes;
  int64_t simulate_correct = 0, integer_correct = 0;
  for (int64_t n = 0; n < out.images; ++n) {
    const float* s = simulate.outputs.data() + n * classes;
    const float* i = integer.outputs.data() + n * classes;
    const int64_t ts = top1(s, classes), ti = top1(i, classes);
    out.top1_agreement += ts == ti;
    simulate_correct += ts == simulate.labels[n];
    integer_correct += ti == integer.labels[n];
    for (int64_t c = 0; c < classes; ++c)
      out.max_output_difference = std::max(out.max_output_difference, static_cast<double>(std::fabs(s[c] - i[c])));
  }
  if (out.images > 0) {
    out.simulate_accuracy = static_cast<double>(simulate_correct) / static_cast<double>(out.images);
    out.integer_accuracy = static_cast<double>(integer_correct) / static_cast<double>(out.images);
  }
  return out;
}

}  // namespace qplay
