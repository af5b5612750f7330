// Spreads batches of images over threads, as evaluate() does: each thread takes the next batch
// until none is left. The first failure stops the others and is rethrown.
#pragma once

#include <cstdint>
#include <functional>

namespace qplay {

// Calls work(batch_index, begin, count, thread) for batches [begin, begin + count) covering
// [0, images); `thread` is in [0, threads) and lets callers keep per-thread state.
void run_batches(int64_t images, int64_t batch, int threads,
                 const std::function<void(int64_t batch_index, int64_t begin, int64_t count, int thread)>& work);

// The number of threads run_batches uses (never more than there are batches).
int batch_threads(int64_t images, int64_t batch, int threads);

}  // namespace qplay
