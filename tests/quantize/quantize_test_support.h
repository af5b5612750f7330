// Helpers shared by the quantizer's tests: calibration data and running a model on images.
#pragma once

#include <memory>
#include <string>

#include "io/cifar10.h"
#include "io/onnx_model.h"
#include "quantize/quantize.h"
#include "runtime/executor.h"
#include "session/evaluate.h"

namespace qplay::quantize::testing {

// A stratified `count` of the shipped training sample (never test images). The tests need
// working scales, not the best ones, so they calibrate on few images to stay fast.
inline const Dataset& calibration_sample(int64_t count = 200) {
  static const Dataset train = load_cifar10(default_train_sample_path(), CifarSplit::train);
  static std::map<int64_t, Dataset> cache;
  auto it = cache.find(count);
  if (it == cache.end()) it = cache.emplace(count, select_calibration_images(train, count, 0)).first;
  return it->second;
}

inline EvalResult run_model(const Graph& g, const Dataset& data, int64_t limit) {
  const Executor ex(std::make_shared<const Graph>(g));
  EvalOptions opt;
  opt.limit = limit;
  return evaluate(ex, data, opt);
}

}  // namespace qplay::quantize::testing
