#include "analysis/batches.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "graph/ir.h"

namespace qplay {

int batch_threads(int64_t images, int64_t batch, int threads) {
  const int64_t batches = (images + batch - 1) / batch;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, batches)));
}

void report_progress(const Progress& progress, int64_t done, int64_t total) {
  if (progress && !progress(done, total)) throw Cancelled();
}

void run_batches(int64_t images, int64_t batch, int threads,
                 const std::function<void(int64_t, int64_t, int64_t, int)>& work, const Progress& progress) {
  if (batch < 1) throw Error("batch size must be at least 1");
  if (threads < 1) throw Error("thread count must be at least 1");
  const int64_t batches = (images + batch - 1) / batch;
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::exception_ptr failure;
  int64_t done = 0;  // images of finished batches, under mu
  auto worker = [&](int thread) {
    try {
      for (int64_t b = next++; b < batches; b = next++) {
        const int64_t begin = b * batch;
        const int64_t count = std::min(batch, images - begin);
        work(b, begin, count, thread);
        if (progress) {
          std::lock_guard<std::mutex> lock(mu);
          done += count;
          report_progress(progress, done, images);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!failure) failure = std::current_exception();
      next = batches;  // stop the other workers early
    }
  };
  const int used = batch_threads(images, batch, threads);
  std::vector<std::thread> pool;
  for (int t = 1; t < used; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace qplay
