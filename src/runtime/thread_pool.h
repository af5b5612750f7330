// Intra-op parallelism for one run: a process-wide pool of worker threads that a kernel can
// split its work over (parallel_for). Used when a caller asks for it (ExecutorOptions::
// intra_op_threads > 1, e.g. batch-1 latency); batch-level parallelism (one batch per thread, as
// `qplay eval` runs) needs none. Work items compute disjoint outputs with the same arithmetic
// whichever thread runs them, so results never depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace qplay {

// Runs fn(0) .. fn(count - 1), spread over up to `threads` threads (the caller included), and
// returns when all are done. Runs everything on the caller when threads <= 1, count <= 1, or the
// pool is busy with another caller's work (so concurrent runs never oversubscribe the cores).
void parallel_for(int64_t count, int threads, const std::function<void(int64_t)>& fn);

// A kernel splits one image's work over intra-op threads only past this many multiply-adds (default 8 M): below it,
// handing work to a second thread and waiting for it costs more than it saves (ResNet-8's convs, at most 2.4 M,
// measured 0.25 ms per image split against 0.14 ms unsplit on a 2-core AVX-512 machine).
int64_t min_multiply_adds_to_split();
// For tests: another threshold (0: split whenever there are threads), so small shapes exercise the split path.
// Process-wide; not while runs are in flight.
void set_min_multiply_adds_to_split(int64_t multiply_adds);

// The intra-op thread count of the run executing on this thread (1 outside a run, or when the
// run did not ask for more); set by the executor for the duration of Executor::run.
int intra_op_threads();

// Sets intra_op_threads() for the current thread until destroyed.
class IntraOpScope {
 public:
  explicit IntraOpScope(int threads);
  ~IntraOpScope();
  IntraOpScope(const IntraOpScope&) = delete;
  IntraOpScope& operator=(const IntraOpScope&) = delete;

 private:
  int previous_;
};

}  // namespace qplay
