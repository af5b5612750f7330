// Classification accuracy of a model on a CIFAR-10 data set.
#pragma once

#include <cstdint>
#include <vector>

#include "analysis/batches.h"
#include "io/cifar10.h"
#include "runtime/executor.h"

namespace qplay {

struct EvalOptions {
  int64_t limit = -1;   // first N images; -1 = all
  int64_t batch = 16;   // small enough for a layer's activations to stay in the caches (docs/PERFORMANCE.md)
  int threads = 2;      // batches are spread over threads, each running the whole graph
  Progress progress;    // images done after each batch; returning false cancels (throws Cancelled)
};

struct EvalResult {
  int64_t images = 0;
  int64_t correct = 0;
  int64_t classes = 0;
  std::vector<float> outputs;            // images x classes, in data set order
  std::vector<int> predictions;          // argmax per image
  std::vector<int64_t> class_total;      // per true class
  std::vector<int64_t> class_correct;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  double seconds = 0.0;

  double accuracy() const { return images ? static_cast<double>(correct) / images : 0.0; }
  double images_per_second() const { return seconds > 0 ? images / seconds : 0.0; }
};

// Runs the executor's graph over the data set and scores argmax against the labels.
EvalResult evaluate(const Executor& executor, const Dataset& data, const EvalOptions& options);

}  // namespace qplay
