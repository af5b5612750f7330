#include "quantize/calibration.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace qplay::quantize {

namespace fs = std::filesystem;

std::string default_calibration_path() {
  fs::path shared = fs::path(QPLAY_SOURCE_DIR).parent_path() / "shared";
  if (const char* env = std::getenv("QPLAY_SHARED")) shared = env;
  const fs::path batch = shared / "data" / "cifar10" / "data_batch_1.bin";
  if (fs::exists(batch)) return batch.string();
  return default_train_sample_path();
}

Dataset load_calibration_data(const std::string& path) {
  if (fs::path(path).filename() == "test_batch.bin" || fs::path(path).filename() == "cifar10_test_1000.bin")
    throw Error("calibration data '" + path + "' is test data; calibrate on training images (data_batch_*.bin)");
  if (!fs::exists(path)) throw Error("calibration data '" + path + "' does not exist");
  return load_cifar10(path, CifarSplit::train);
}

Dataset select_calibration_images(const Dataset& train, int64_t count, uint64_t seed) {
  if (count < 1) throw Error("the calibration image count must be at least 1");
  std::vector<std::vector<int64_t>> by_class(kCifarClasses);
  for (int64_t i = 0; i < train.size(); ++i) by_class[train.labels[i]].push_back(i);
  std::mt19937_64 rng(seed);
  std::vector<int64_t> chosen;
  for (int c = 0; c < kCifarClasses; ++c) {
    const int64_t quota = count / kCifarClasses + (c < count % kCifarClasses ? 1 : 0);
    auto& pool = by_class[c];
    if (static_cast<int64_t>(pool.size()) < quota)
      throw Error("calibration data '" + train.source + "' has " + std::to_string(pool.size()) + " images of class " +
                  cifar10_class_names()[c] + "; a stratified " + std::to_string(count) + " needs " +
                  std::to_string(quota));
    // Fisher-Yates on the engine's raw output: std::shuffle's algorithm (and so its order) is
    // left to the standard library, and the sample must be the same everywhere for a seed.
    if (seed != 0)
      for (size_t i = pool.size(); i > 1; --i) std::swap(pool[i - 1], pool[rng() % i]);
    chosen.insert(chosen.end(), pool.begin(), pool.begin() + quota);
  }
  std::sort(chosen.begin(), chosen.end());
  Dataset out;
  out.source = train.source + " (stratified " + std::to_string(count) + ", seed " + std::to_string(seed) + ")";
  for (int64_t i : chosen) {
    out.labels.push_back(train.labels[i]);
    out.pixels.insert(out.pixels.end(), train.pixels.begin() + i * kCifarPixels,
                      train.pixels.begin() + (i + 1) * kCifarPixels);
  }
  return out;
}

Dataset subsample_evenly(const Dataset& data, int64_t count) {
  if (count >= data.size()) return data;
  Dataset out;
  out.source = data.source + " (" + std::to_string(count) + " spread evenly)";
  for (int64_t k = 0; k < count; ++k) {
    const int64_t i = k * data.size() / count;
    out.labels.push_back(data.labels[i]);
    out.pixels.insert(out.pixels.end(), data.pixels.begin() + i * kCifarPixels,
                      data.pixels.begin() + (i + 1) * kCifarPixels);
  }
  return out;
}

void run_batches(const Executor& executor, const Dataset& images, const BatchRunOptions& options,
                 const BatchVisitor& visit) {
  const Graph& g = executor.graph();
  if (g.inputs.size() != 1) throw Error("calibration needs a model with exactly one input");
  const ImageLayout layout = image_layout_for(g.inputs[0]);
  const std::string input_name = g.inputs[0].name;
  const int64_t batches = (images.size() + options.batch - 1) / options.batch;
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::exception_ptr failure;
  auto worker = [&](int thread) {
    try {
      const ValueHook hook = [&](int, const std::string& value, const Tensor& t) { visit(thread, value, t); };
      for (int64_t b = next++; b < batches; b = next++) {
        const int64_t begin = b * options.batch;
        const int64_t count = std::min(options.batch, images.size() - begin);
        std::map<std::string, Tensor> feeds;
        feeds[input_name] = make_image_batch(images, begin, count, layout);
        visit(thread, input_name, feeds[input_name]);
        executor.run(feeds, hook);
        report_progress(options.check, b + 1, batches);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!failure) failure = std::current_exception();
      next = batches;
    }
  };
  const int threads = static_cast<int>(std::clamp<int64_t>(options.threads, 1, std::max<int64_t>(batches, 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

std::map<std::string, ActivationStats> collect_activation_stats(const Graph& model,
                                                                const std::vector<std::string>& tensors,
                                                                const Dataset& images, bool histograms,
                                                                const BatchRunOptions& options) {
  const std::set<std::string> wanted(tensors.begin(), tensors.end());
  const Executor executor(std::make_shared<const Graph>(model));
  // One map per thread, merged at the end: the hook runs on worker threads without locks.
  std::vector<std::map<std::string, ActivationStats>> per_thread(static_cast<size_t>(std::max(1, options.threads)));
  for (auto& m : per_thread)
    for (const auto& t : wanted) m[t];
  auto check = [](const std::string& value, const Tensor& t) {
    if (t.dtype != DType::f32)
      throw Error("tensor '" + value + "' is " + dtype_name(t.dtype) + "; only float32 activations can be calibrated");
  };

  run_batches(executor, images, options, [&](int thread, const std::string& value, const Tensor& t) {
    if (!wanted.count(value)) return;
    check(value, t);
    observe_min_max(per_thread[thread][value], t.data<float>(), t.numel());
  });
  for (size_t i = 1; i < per_thread.size(); ++i)
    for (auto& [name, s] : per_thread[i]) merge_stats(per_thread[0][name], s);

  if (histograms) {
    // Every thread's histogram gets the geometry of the merged min/max so they merge bin by bin.
    for (auto& [name, s] : per_thread[0]) start_histogram(s);
    for (size_t i = 1; i < per_thread.size(); ++i)
      for (auto& [name, s] : per_thread[i]) {
        s = per_thread[0][name];
        s.bins.assign(s.bins.size(), 0);
      }
    run_batches(executor, images, options, [&](int thread, const std::string& value, const Tensor& t) {
      if (!wanted.count(value)) return;
      observe_histogram(per_thread[thread][value], t.data<float>(), t.numel());
    });
    for (size_t i = 1; i < per_thread.size(); ++i)
      for (auto& [name, s] : per_thread[i]) {
        ActivationStats& into = per_thread[0][name];
        for (size_t k = 0; k < into.bins.size(); ++k) into.bins[k] += s.bins[k];
        into.zeros += s.zeros;
      }
  }
  for (const auto& t : wanted)
    if (per_thread[0][t].count == 0) throw Error("tensor '" + t + "' was never computed during calibration");
  return std::move(per_thread[0]);
}

}  // namespace qplay::quantize
