// Incremental re-evaluation of an edited model: the base model runs once over a data set and
// keeps, per batch, a few checkpoint tensors; an edited graph (apply_edits_tracked) then runs
// only the nodes downstream of its changes, fed from the checkpoints, and gives exactly the
// outputs a full run of the edited graph gives (same kernels on the same inputs, bit for bit).
//
// Checkpoints are the graph inputs, the outputs of every activation QuantizeLinear (integer
// codes: 1 byte per element, the boundaries between layers) and the float results of layers
// without output codes (e.g. the logits). A node is recomputed when it
// (a) differs from the base node of the same name (op type, inputs, outputs) or is new, or reads
// a dirty name, (b) reads a value a recomputed node produces, or (c) produces a value a
// recomputed node needs that is not a checkpoint (so an edited Q recomputes its layer from the
// previous checkpoint).
//
// Mode (ReevalOptions::mode): simulate runs the graph as written; integer runs it lowered to the
// integer ops (runtime/integer, what `qplay eval --mode integer` runs), and each edited model is
// lowered the same way before the plan compares it with the lowered base. Either way the result
// equals a full run of the edited model in the cache's mode.
//
// A UI session keeps one BaseCache (immutable, shared between threads) and calls reevaluate()
// with apply_edits_tracked(base, edits) for each successive edit list: edits are always relative
// to the base model, so undo and reset cost nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "analysis/batches.h"
#include "analysis/edits.h"
#include "io/cifar10.h"
#include "runtime/integer/integer_mode.h"

namespace qplay {

struct ReevalOptions {
  int64_t limit = -1;  // the first N images; -1 = all
  int64_t batch = 50;
  int threads = 2;
  bool fast_kernels = true;
  integer::RunMode mode = integer::RunMode::simulate;  // how the cache and every re-evaluation run
  Progress progress;  // capture_base: images captured after each batch (not kept in the cache)
};

struct BaseCache {
  std::shared_ptr<const Graph> base;      // the model as loaded (QDQ): what edits and layers name
  std::shared_ptr<const Graph> executed;  // what runs: base, or base lowered to integer ops
  ReevalOptions options;
  int64_t images = 0;
  int64_t classes = 0;
  std::vector<int> labels;                                // per image
  std::vector<std::string> checkpoints;                   // value names kept per batch
  std::vector<int64_t> batch_begin;                       // first image of each batch
  std::vector<std::map<std::string, Tensor>> batches;     // per batch: checkpoint tensors
  std::vector<float> outputs;                             // base model: images x classes
  size_t bytes = 0;                                       // checkpoint tensors kept (the cache's peak)
};

// Runs `base` over the first options.limit images of `data` and keeps the checkpoints.
BaseCache capture_base(std::shared_ptr<const Graph> base, const Dataset& data, const ReevalOptions& options);

struct Reevaluation {
  int64_t images = 0;
  int64_t classes = 0;
  int64_t correct = 0;
  std::vector<float> outputs;  // images x classes, as a full run of the edited graph gives
  std::vector<int> predictions;
  std::vector<std::string> recomputed_nodes;  // in order; empty when nothing changed (lowered nodes in integer mode)
  std::vector<std::string> fed_values;        // checkpoints the recomputation starts from
  int64_t total_nodes = 0;                    // nodes of the edited graph as run (lowered in integer mode)
  size_t cache_bytes = 0;                     // BaseCache::bytes
  size_t fed_bytes = 0;                       // of those, the tensors read by this re-evaluation
  // With keep_codes: per batch, the checkpoints (activation codes, float layer results) the
  // recomputation produced, which replace the cache's for this version (compare_cached reads them).
  std::vector<std::map<std::string, Tensor>> recomputed_checkpoints;
  double seconds = 0.0;

  double accuracy() const { return images ? double(correct) / double(images) : 0.0; }
};

// The base model's own result (no recomputation).
Reevaluation base_result(const BaseCache& cache);

// Outputs and accuracy of `edited` (derived from cache.base) over the cached images.
// `progress` (optional) reports images after each batch and may cancel.
// keep_codes: also keep the recomputed checkpoints (Reevaluation::recomputed_checkpoints).
Reevaluation reevaluate(const BaseCache& cache, const EditedGraph& edited, const Progress& progress = nullptr,
                        bool keep_codes = false);

// The nodes of `edited` that must run (in graph order), and the checkpoint values they read.
// `base` and `edited` are graphs as they run (both lowered, in integer mode).
struct RecomputePlan {
  std::vector<int> nodes;
  std::vector<std::string> fed_values;
};
RecomputePlan plan_recompute(const Graph& base, const EditedGraph& edited, const std::vector<std::string>& checkpoints);

}  // namespace qplay
