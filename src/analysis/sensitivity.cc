#include "analysis/sensitivity.h"

#include "analysis/edits.h"
#include "analysis/layers.h"
#include "analysis/reevaluate.h"
#include "runtime/executor.h"
#include "session/evaluate.h"

namespace qplay {

Sensitivity study_sensitivity(std::shared_ptr<const Graph> fp32, std::shared_ptr<const Graph> quantized,
                              const Dataset& data, const SensitivityOptions& options) {
  const std::vector<Layer> layers = group_layers(*quantized);
  int64_t total = 3;  // capture, FP32 run, every layer bypassed
  for (const Layer& l : layers)
    if (!l.qoperator) total += 2 + (l.weight_params.empty() ? 0 : int64_t(options.weight_bits.size()));
  int64_t done = 0;
  // Inner loops only check for cancellation; the steps are what is reported.
  Progress check;
  if (options.progress) check = [&](int64_t, int64_t) { return options.progress(done, total); };
  auto step = [&] { report_progress(options.progress, ++done, total); };

  ReevalOptions ro;
  ro.limit = options.limit;
  ro.threads = options.threads;
  ro.progress = check;
  const BaseCache cache = capture_base(quantized, data, ro);
  step();
  auto accuracy_with = [&](const std::vector<Edit>& edits) {
    const double a = reevaluate(cache, apply_edits_tracked(*quantized, edits), check).accuracy();
    step();
    return a;
  };

  Sensitivity s;
  s.images = cache.images;
  s.quantized_accuracy = base_result(cache).accuracy();
  EvalOptions eo;
  eo.limit = options.limit;
  eo.threads = options.threads;
  eo.progress = check;
  s.fp32_accuracy = evaluate(Executor(fp32), data, eo).accuracy();
  step();

  std::vector<Edit> bypass_all;
  for (const Layer& l : layers)
    if (!l.qoperator) bypass_all.push_back(bypass_edit(l.name));
  s.all_bypassed_accuracy = accuracy_with(bypass_all);

  for (const Layer& l : layers) {
    if (l.qoperator) continue;
    LayerSensitivity ls;
    ls.name = l.name;
    ls.kind = l.kind;
    std::vector<Edit> others;
    for (const Edit& e : bypass_all)
      if (e.target != l.name) others.push_back(e);
    ls.only_this_quantized = accuracy_with(others);
    ls.all_but_this = accuracy_with({bypass_edit(l.name)});
    if (!l.weight_params.empty())
      for (int bits : options.weight_bits) {
        Edit e;
        e.kind = Edit::Kind::set_bits;
        e.target = l.weight_params;
        e.value = bits;
        ls.weight_bits.push_back(bits);
        ls.weight_bits_accuracy.push_back(accuracy_with({e}));
      }
    s.layers.push_back(ls);
  }
  return s;
}

}  // namespace qplay
