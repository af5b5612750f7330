#include "session/evaluate.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

namespace qplay {

EvalResult evaluate(const Executor& executor, const Dataset& data, const EvalOptions& options) {
  const Graph& g = executor.graph();
  if (g.inputs.size() != 1)
    throw Error("the model has " + std::to_string(g.inputs.size()) + " inputs; image classification needs exactly one");
  if (options.batch < 1) throw Error("batch size must be at least 1");
  if (options.threads < 1) throw Error("thread count must be at least 1");
  const ImageLayout layout = image_layout_for(g.inputs[0]);
  const std::string input_name = g.inputs[0].name;
  const std::string output_name = g.outputs[0].name;

  EvalResult r;
  r.images = options.limit < 0 ? data.size() : std::min<int64_t>(options.limit, data.size());
  const int64_t batches = (r.images + options.batch - 1) / options.batch;

  const auto start = std::chrono::steady_clock::now();
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::exception_ptr failure;
  int64_t done = 0;  // images of finished batches, under mu
  auto worker = [&] {
    try {
      for (int64_t b = next++; b < batches; b = next++) {
        const int64_t begin = b * options.batch;
        const int64_t count = std::min(options.batch, r.images - begin);
        std::map<std::string, Tensor> feeds;
        feeds[input_name] = make_image_batch(data, begin, count, layout);
        auto outs = executor.run(feeds);
        const Tensor& y = outs.at(output_name);
        if (y.dtype != DType::f32 || y.rank() != 2 || y.shape[0] != count)
          throw Error("model output '" + output_name + "' is " + dtype_name(y.dtype) + " " + shape_str(y.shape) +
                      ", expected float32 [" + std::to_string(count) + ", classes]");
        std::lock_guard<std::mutex> lock(mu);
        if (r.classes == 0) {
          r.classes = y.shape[1];
          r.outputs.assign(static_cast<size_t>(r.images * r.classes), 0.0f);
        } else if (r.classes != y.shape[1]) {
          throw Error("model output changed its class count between batches");
        }
        std::copy(y.data<float>(), y.data<float>() + y.numel(), r.outputs.begin() + begin * r.classes);
        done += count;
        report_progress(options.progress, done, r.images);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!failure) failure = std::current_exception();
      next = batches;  // stop the other workers early
    }
  };
  const int threads = static_cast<int>(std::min<int64_t>(options.threads, std::max<int64_t>(batches, 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const int64_t k = std::max<int64_t>(r.classes, kCifarClasses);
  r.class_total.assign(k, 0);
  r.class_correct.assign(k, 0);
  r.confusion.assign(k, std::vector<int64_t>(k, 0));
  r.predictions.resize(r.images);
  for (int64_t i = 0; i < r.images; ++i) {
    const float* row = &r.outputs[i * r.classes];
    const int pred = static_cast<int>(std::max_element(row, row + r.classes) - row);
    const int truth = data.labels[i];
    r.predictions[i] = pred;
    r.class_total[truth]++;
    r.confusion[truth][pred]++;
    if (pred == truth) {
      r.correct++;
      r.class_correct[truth]++;
    }
  }
  return r;
}

}  // namespace qplay
