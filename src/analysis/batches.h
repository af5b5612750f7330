// Spreads batches of images over threads, as evaluate() does: each thread takes the next batch
// until none is left. The first failure stops the others and is rethrown.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>

namespace qplay {

// Reports work done so far (images, or steps of a study) out of `total`. Returning false asks the
// loop to stop: it throws Cancelled once the batches in flight have finished. Called from worker
// threads, one call at a time. Long-running analyses take one in their options so a front end
// (the HTTP server's jobs) can show progress and cancel.
using Progress = std::function<bool(int64_t done, int64_t total)>;

// Thrown when a Progress callback asked to stop. Not a qplay::Error: nothing was wrong with the input.
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

// Calls progress(done, total) when set, throwing Cancelled when it returns false.
void report_progress(const Progress& progress, int64_t done, int64_t total);

// Calls work(batch_index, begin, count, thread) for batches [begin, begin + count) covering
// [0, images); `thread` is in [0, threads) and lets callers keep per-thread state.
// With `progress`, reports the images of finished batches after each batch.
void run_batches(int64_t images, int64_t batch, int threads,
                 const std::function<void(int64_t batch_index, int64_t begin, int64_t count, int thread)>& work,
                 const Progress& progress = nullptr);

// The number of threads run_batches uses (never more than there are batches).
int batch_threads(int64_t images, int64_t batch, int threads);

}  // namespace qplay
