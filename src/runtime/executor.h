// Runs a Graph: binds one prepared kernel per node once, then executes nodes in
// topological order for any number of feeds. run() is const and keeps all per-run state
// local, so one Executor serves several threads at once.
//
// Preparation (the constructor) also evaluates nodes whose inputs are all constants once (e.g.
// DequantizeLinear of quantized weights), so fast kernels can pack their outputs like
// initializers, and fuses float Conv -> [Add] -> [Relu] -> [QuantizeLinear -> DequantizeLinear]
// chains, and integer QConv -> QAdd pairs of lowered graphs, into one kernel, used by runs without
// a ValueHook (fused and unfused kernels perform the same operations, so results are bit-identical
// either way). Runs recycle intermediate
// buffers through a per-thread pool; values handed to a hook are never recycled while it runs.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "runtime/op_registry.h"

namespace qplay {

// Called after each node with every output it produced; lets analysis capture
// intermediate tensors without changing the model. `node_index` indexes graph.nodes.
using ValueHook = std::function<void(int node_index, const std::string& value, const Tensor& tensor)>;

// Chooses the kernel for one node. The default binds the reference kernel; the speed
// work installs providers that return fast kernels for the nodes they handle.
using KernelProvider = std::function<PreparedKernel(const Node& node, const Graph& graph)>;

struct ExecutorOptions {
  bool fast_kernels = true;               // false: reference kernels only (the specification)
  std::vector<KernelProvider> providers;  // tried first, in order; then fast kernels, then reference
  // Threads one run may split a kernel over (runtime/thread_pool.h), the caller included. 1 suits
  // batch-level parallelism (several runs at once); more lowers the latency of a single run.
  int intra_op_threads = 1;
};

class Executor {
 public:
  explicit Executor(std::shared_ptr<const Graph> graph, ExecutorOptions options = {});

  // Feeds must name every graph input, with matching dtype and rank; returns the graph outputs.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds,
                                    const ValueHook& hook = nullptr) const;
  // The same with borrowed feeds (no copies of data kept elsewhere, e.g. a cache); each must
  // stay alive and unchanged until run_borrowed returns.
  std::map<std::string, Tensor> run_borrowed(const std::map<std::string, const Tensor*>& feeds,
                                             const ValueHook& hook = nullptr) const;

  const Graph& graph() const { return *graph_; }

  // Nodes fused into a preceding conv's kernel (runs without a hook skip them).
  size_t absorbed_nodes() const { return static_cast<size_t>(std::count(absorbed_.begin(), absorbed_.end(), 1)); }

 private:
  std::shared_ptr<const Graph> graph_;
  std::vector<PreparedKernel> kernels_;
  std::map<std::string, int> slot_of_;          // value name -> slot
  int slot_count_ = 0;
  std::vector<std::vector<int>> node_inputs_;   // slot per input, -1 for omitted
  std::vector<std::vector<int>> node_outputs_;
  std::vector<std::vector<int>> release_after_; // slots whose last reader is node i
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  int intra_op_threads_ = 1;

  // Nodes evaluated at preparation (per node), and the graph's constants as runs read them: the
  // initializers plus the outputs of those nodes.
  std::vector<char> folded_;
  std::shared_ptr<const Graph> prepared_;
  // Fusion (runs without a hook): node i runs fused_kernels_[i] on fused_inputs_[i] into slot fused_output_[i]; the
  // nodes it absorbed are skipped (their releases still happen).
  std::vector<PreparedKernel> fused_kernels_;
  std::vector<std::vector<int>> fused_inputs_;
  std::vector<int> fused_output_;
  std::vector<char> absorbed_;         // per node
  std::vector<char> recycles_output_;  // per node: its kernels overwrite every output element
  struct SizeHints;                    // last byte size seen per slot, shared by copies
  std::shared_ptr<SizeHints> size_hints_;
};

// Binds the reference kernel of `node` (what providers fall back to).
PreparedKernel bind_reference_kernel(const Node& node);

}  // namespace qplay
