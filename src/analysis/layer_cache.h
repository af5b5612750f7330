// Whole-data-set comparison from caches. compare_models() runs both models for every question;
// here the FP32 model runs once and its layer outputs are kept (as half floats: 2 bytes per
// element), and the quantized model's layer outputs are the activation codes a BaseCache keeps
// anyway for incremental re-evaluation (1 byte per element). Every layer's accumulated error
// over the whole test set is then a pass over memory, and after an edit only the re-evaluated
// codes change: ask again with the Reevaluation, no model runs.
//
// What the caches cannot give: isolated errors (they need the layer run on FP32 inputs) and
// layers whose result is neither activation codes nor the model output; those layers are listed
// in CachedComparison::uncached and compare_models() measures them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analysis/compare.h"
#include "analysis/reevaluate.h"
#include "graph/ir.h"
#include "io/cifar10.h"
#include "runtime/large_array.h"

namespace qplay {

struct Fp32LayerCache {
  std::shared_ptr<const Graph> fp32;
  int64_t images = 0;
  std::vector<std::string> values;              // every FP32 layer's output, in layer order
  std::vector<int64_t> elements;                // per image, for each value
  std::vector<LargeArray<uint16_t>> halves;     // per value: images x elements, IEEE binary16
  std::vector<int> predictions;                 // the FP32 model's class per image
  size_t bytes = 0;                             // of `halves`
  double seconds = 0.0;                         // to build

  int index_of(const std::string& value) const;  // -1 when not cached
};

// Runs the FP32 model over the first options.limit images of `data` (batch and threads from
// `options`) and keeps every layer's output.
Fp32LayerCache capture_fp32_layers(std::shared_ptr<const Graph> fp32, const Dataset& data, const ReevalOptions& options);

struct CachedComparison {
  Comparison comparison;              // accumulated metrics and code statistics; has_isolated is false
  std::vector<std::string> uncached;  // matched quantized layers the caches cannot measure
};

// Accumulated error of every quantized layer matched to an FP32 layer, over the cached images.
// `quantized` is the BaseCache of the base model. For an edited version pass its EditedGraph and
// its Reevaluation (from reevaluate(..., keep_codes = true)); for the base model pass nullptrs.
// The two caches must cover the same images of the same data set.
CachedComparison compare_cached(const Fp32LayerCache& fp32, const BaseCache& quantized,
                                const EditedGraph* edited = nullptr, const Reevaluation* run = nullptr,
                                int threads = 2);

}  // namespace qplay
