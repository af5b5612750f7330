// Calibration: which training images, and the activation statistics the FP32 model produces on
// them (collected through the executor's value hook, streaming, on several threads).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "analysis/batches.h"
#include "io/cifar10.h"
#include "quantize/activation_stats.h"
#include "runtime/executor.h"

namespace qplay::quantize {

// ../shared/data/cifar10/data_batch_1.bin beside the source tree (or under $QPLAY_SHARED) when
// present, else the shipped data/cifar10_train_1000.bin (which is a stratified 1,000 of it).
std::string default_calibration_path();

// Reads training images from a batch file or a cifar-10-batches-bin folder (train split).
// Refuses the test batch: calibrating on test images would leak them into the accuracy figures.
Dataset load_calibration_data(const std::string& path);

// A stratified sample: count / 10 images per class (the first count % 10 classes take one more),
// returned in file order. seed 0 takes each class's first images in file order (so 1,000 of
// data_batch_1.bin are exactly data/cifar10_train_1000.bin); another seed draws them at random,
// reproducibly for that seed. Throws when a class has too few images.
Dataset select_calibration_images(const Dataset& train, int64_t count, uint64_t seed);

// `count` images spread evenly over `data` (all of it when count >= its size); keeps a
// stratified sample roughly stratified.
Dataset subsample_evenly(const Dataset& data, int64_t count);

// Sees one tensor of one batch: the worker thread's index, the value name and the tensor.
// Graph inputs are reported too (node index -1), before the batch runs.
using BatchVisitor = std::function<void(int thread, const std::string& value, const Tensor& tensor)>;

struct BatchRunOptions {
  int threads = 2;
  int64_t batch = 100;
  // Asked after every batch of every pass (with done = batches of this pass); returning false
  // cancels the quantization (throws Cancelled). Passes vary in number, so it is no progress bar.
  Progress check;
};

// Runs the executor's graph over all images, batches spread over threads, calling `visit` for
// every value each node produces. Per-thread state indexed by `thread` needs no locking.
void run_batches(const Executor& executor, const Dataset& images, const BatchRunOptions& options,
                 const BatchVisitor& visit);

// Statistics of the named float tensors of `model` over the images: min/max in one pass and,
// when `histograms`, a histogram over [-max|x|, max|x|] in a second pass.
std::map<std::string, ActivationStats> collect_activation_stats(const Graph& model,
                                                                const std::vector<std::string>& tensors,
                                                                const Dataset& images, bool histograms,
                                                                const BatchRunOptions& options = {});

}  // namespace qplay::quantize
