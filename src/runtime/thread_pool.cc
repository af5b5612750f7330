#include "runtime/thread_pool.h"

#include <immintrin.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace qplay {
namespace {

thread_local int current_intra_op_threads = 1;
std::atomic<int64_t> split_threshold{8'000'000};

// Workers sleep until a job arrives, claim items with an atomic counter, and report when they
// leave it. The caller works too and never waits for a helper that has not started.
class Pool {
 public:
  static Pool& instance() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static destruction
    return *pool;
  }

  void run(int64_t count, int threads, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another caller's job is in flight: run serially
      for (int64_t i = 0; i < count; ++i) fn(i);
      return;
    }
    const int helpers = std::min<int>(threads - 1, static_cast<int>(count) - 1);
    ensure_workers(helpers);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      count_ = count;
      next_.store(0);
      active_ = helpers;
      wanted_ = helpers;
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    cv_.notify_all();
    work();
    // Helpers that have not woken up yet are not waited for: their slots are withdrawn. Those
    // that joined finish the items they claimed.
    std::unique_lock<std::mutex> lock(mu_);
    active_ -= wanted_;
    wanted_ = 0;
    // Spin before sleeping, as the workers do: a helper usually finishes within microseconds of the caller, and a
    // futex sleep and wake-up cost more than that (at batch 1 they were a third of the run).
    lock.unlock();
    for (int spin = 0; spin < 20000 && active_.load(std::memory_order_acquire) != 0; ++spin) _mm_pause();
    lock.lock();
    done_cv_.wait(lock, [&] { return active_.load() == 0; });
    fn_ = nullptr;
  }

 private:
  void ensure_workers(int n) {
    for (; workers_ < n; ++workers_) std::thread([this] { worker(); }).detach();
  }

  void work() {
    for (int64_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) (*fn_)(i);
  }

  void worker() {
    uint64_t seen = 0;
    for (;;) {
      // Spin a little before sleeping: the next kernel of the same run usually follows within
      // microseconds, and waking a sleeping thread costs more than that.
      for (int spin = 0; spin < 20000 && published_.load(std::memory_order_acquire) == seen; ++spin) _mm_pause();
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen && wanted_ > 0; });
        seen = generation_;
        --wanted_;
      }
      work();
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex busy_, mu_;
  std::condition_variable cv_, done_cv_;
  int workers_ = 0;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};  // helpers still working (changed under mu_, read without it while spinning)
  int wanted_ = 0;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> published_{0};  // generation_, readable without the lock
};

}  // namespace

void parallel_for(int64_t count, int threads, const std::function<void(int64_t)>& fn) {
  if (threads <= 1 || count <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  Pool::instance().run(count, threads, fn);
}

int intra_op_threads() { return current_intra_op_threads; }

int64_t min_multiply_adds_to_split() { return split_threshold.load(std::memory_order_relaxed); }
void set_min_multiply_adds_to_split(int64_t multiply_adds) { split_threshold = multiply_adds; }

IntraOpScope::IntraOpScope(int threads) : previous_(current_intra_op_threads) {
  current_intra_op_threads = threads < 1 ? 1 : threads;
}
IntraOpScope::~IntraOpScope() { current_intra_op_threads = previous_; }

}  // namespace qplay
