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
//
// Runs without a hook take a large batch through the whole graph in slices of a few images
// (ExecutorOptions::batch_slice), so each layer's activations stay in the caches until the next
// layer reads them, when the graph is batch-separable (runtime/batch_slicing.h): every kernel
// computes each image on its own, so the results are bit-identical to a whole-batch run.
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

// Receives the values a run_capturing() call asks for, as they are computed. `part` holds `images`
// images of the run's batch from `first_image` on: the whole batch (images = axis 0 of the first
// feed), or one slice of it when the run goes in slices, in increasing order. A value that does not
// carry the batch (a constant, e.g. dequantized weights) arrives once, whole, with first_image -1.
// When a sliced run has to start again whole, values arrive again from first_image 0.
using CaptureSink = std::function<void(size_t wanted_index, const Tensor& part, int64_t first_image, int64_t images)>;

// For a CaptureSink that keeps whole values: puts the parts of value `name` back together in
// `whole`, its tensor for the run's `batch` images. A constant is copied; the parts of a batched
// value are appended in order (storage reserved once, never zero-filled first). Throws naming the
// value when a part does not carry the batch on axis 0.
void gather_captured_part(Tensor& whole, const Tensor& part, int64_t first_image, int64_t images, int64_t batch,
                          const std::string& name);

// Chooses the kernel for one node. The default binds the reference kernel; the speed
// work installs providers that return fast kernels for the nodes they handle.
using KernelProvider = std::function<PreparedKernel(const Node& node, const Graph& graph)>;

struct ExecutorOptions {
  bool fast_kernels = true;               // false: reference kernels only (the specification)
  std::vector<KernelProvider> providers;  // tried first, in order; then fast kernels, then reference
  // Threads one run may split a kernel over (runtime/thread_pool.h), the caller included. 1 suits
  // batch-level parallelism (several runs at once); more lowers the latency of a single run.
  int intra_op_threads = 1;
  // Float 3x3 stride-1 convs by Winograd F(2x2, 3x3) (fast kernels only), in graphs without
  // QuantizeLinear: faster, but not the direct kernel's (ONNX Runtime's) summation order, which a
  // conv whose output is quantized needs to land on the same codes. false: the direct kernel always.
  bool winograd = true;
  // Runs without a hook take a batch of more than this many images through the whole graph in
  // consecutive slices of at most this many (equal sizes, e.g. 100 = 9 x 8 + 4 x 7), when the
  // graph is batch-separable and every input and output has the batch on axis 0; 0 = whole batches.
  // 8 measured a few percent faster than 16 at batch 16 and no slower at batch 100 (2 cores, one
  // interleaved comparison; docs/ARCHITECTURE.md).
  int64_t batch_slice = 8;
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

  // A run that hands the named values (node outputs, graph inputs or constants) to `sink`. Unlike a
  // ValueHook run it still takes a large batch in slices, so each layer's activations stay in the
  // caches while the sink copies them out: the way to keep many intermediates of a large batch
  // (the analysis caches). Unknown names are an error. Results are bit-identical to run().
  std::map<std::string, Tensor> run_capturing(const std::map<std::string, const Tensor*>& feeds,
                                              const std::vector<std::string>& wanted, const CaptureSink& sink) const;
  std::map<std::string, Tensor> run_capturing(const std::map<std::string, Tensor>& feeds,
                                              const std::vector<std::string>& wanted, const CaptureSink& sink) const;

  const Graph& graph() const { return *graph_; }

  // Nodes fused into a preceding conv's kernel (runs without a hook skip them).
  size_t absorbed_nodes() const { return static_cast<size_t>(std::count(absorbed_.begin(), absorbed_.end(), 1)); }
  // The slice size runs without a hook use for larger batches; 0 when they run whole (the option
  // is 0, or some node's output image may depend on other images, e.g. a Concat on axis 0).
  int64_t batch_slice() const { return batch_slice_; }

 private:
  // What a run_capturing() call asks for: per slot, the index into its `wanted` list, or -1.
  struct Capture {
    std::vector<int> wanted_of_slot;
    const CaptureSink* sink = nullptr;
  };
  // The graph inputs checked against `feeds`, in graph order.
  std::vector<const Tensor*> checked_inputs(const std::map<std::string, const Tensor*>& feeds) const;
  // The nodes in order on one tensor per graph input (`feeds`, checked); the graph outputs in order.
  // `capture` (no fusion then) receives its batched values as `images` images from `first_image` on.
  std::vector<Tensor> run_nodes(const std::vector<const Tensor*>& feeds, const ValueHook& hook,
                                const Capture* capture = nullptr, int64_t first_image = 0, int64_t images = 0) const;
  // run_nodes() over slices of the batch into whole-batch `outputs`; false (computing nothing
  // useful) when the run is not one to slice or a slice fails (the whole run then reports it).
  bool run_sliced(const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs,
                  const Capture* capture = nullptr) const;
  bool batch_separable(const std::vector<const Tensor*>& constant) const;

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
  int64_t batch_slice_ = 0;

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
