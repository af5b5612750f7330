#include "runtime/executor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <set>

#include "runtime/batch_slicing.h"
#include "runtime/integer/params.h"
#include "runtime/kernels/fast/integer_providers.h"
#include "runtime/kernels/fast/providers.h"
#include "runtime/thread_pool.h"

namespace qplay {

PreparedKernel bind_reference_kernel(const Node& node) {
  const OpSpec* spec = find_op(node.op_type, node.domain);
  if (spec == nullptr || spec->reference == nullptr)
    throw Error("no kernel for operator '" + node.op_type + "' (node '" + node.name + "')");
  ReferenceKernel fn = spec->reference;
  return [fn, node](const Inputs& inputs, std::vector<Tensor>& outputs) { fn(node, inputs, outputs); };
}

struct Executor::SizeHints {
  explicit SizeHints(size_t n) : bytes(n) {}
  std::vector<std::atomic<size_t>> bytes;  // per slot; 0 = unknown
};

namespace {

// Ops whose kernels (reference and fast) write every element of their outputs after reset(), so they may be handed a
// recycled buffer with stale contents.
bool overwrites_outputs(const Node& node) {
  static const std::set<std::string> ops = {"Conv",
                                            "Relu",
                                            "Add",
                                            "Sub",
                                            "Mul",
                                            "Div",
                                            "QuantizeLinear",
                                            "DequantizeLinear",
                                            "MaxPool",
                                            "AveragePool",
                                            "GlobalAveragePool",
                                            "Transpose"};
  // Integer mode's ops (runtime/integer/ops.cc and their fast kernels) write every output element too.
  static const std::set<std::string> integer_ops = {"QConv", "QGemm", "QAdd", "QAveragePool", "QGlobalAveragePool"};
  if (node.domain == integer::kDomain) return integer_ops.count(node.op_type) != 0;
  return node.domain.empty() && ops.count(node.op_type) != 0;
}

// Buffers freed by runs on this thread, handed to later nodes asking for the same size (a model run repeatedly on
// same-shaped batches reuses its whole working set without allocating or zero-filling). Bounded; buffers smaller than
// kMinBytes are left to malloc.
class BufferPool {
 public:
  static constexpr size_t kMinBytes = 16 * 1024, kMaxBuffers = 48;

  void give(std::vector<uint8_t>&& b) {
    if (b.capacity() < kMinBytes) return;
    if (free_.size() >= kMaxBuffers) free_.erase(free_.begin());  // the oldest goes
    free_.push_back(std::move(b));
  }
  // A buffer of exactly `bytes` (size and capacity), else one that holds it, else empty.
  std::vector<uint8_t> take(size_t bytes) {
    if (bytes < kMinBytes || free_.empty()) return {};
    size_t best = free_.size();
    for (size_t i = free_.size(); i-- > 0;) {
      const size_t cap = free_[i].capacity();
      if (free_[i].size() == bytes) {
        best = i;
        break;
      }
      if (cap >= bytes && (best == free_.size() || cap < free_[best].capacity())) best = i;
    }
    if (best == free_.size()) return {};
    std::vector<uint8_t> b = std::move(free_[best]);
    free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
    return b;
  }

 private:
  std::vector<std::vector<uint8_t>> free_;
};

BufferPool& buffer_pool() {
  thread_local BufferPool pool;
  return pool;
}

}  // namespace

Executor::Executor(std::shared_ptr<const Graph> graph, ExecutorOptions options)
    : graph_(std::move(graph)), intra_op_threads_(std::max(1, options.intra_op_threads)) {
  const Graph& g = *graph_;
  auto slot = [&](const std::string& name) {
    auto [it, inserted] = slot_of_.try_emplace(name, slot_count_);
    if (inserted) ++slot_count_;
    return it->second;
  };
  for (const auto& in : g.inputs) input_slots_.push_back(slot(in.name));
  for (const auto& [name, t] : g.initializers) slot(name);

  const bool custom_providers = !options.providers.empty();
  // A graph that quantizes nothing needs no particular summation order in its convs.
  const bool winograd =
      options.fast_kernels && options.winograd && std::none_of(g.nodes.begin(), g.nodes.end(), [](const Node& node) {
        return node.op_type == "QuantizeLinear" || node.op_type == "DynamicQuantizeLinear" || !node.domain.empty();
      });
  if (winograd)
    options.providers.push_back(
        [](const Node& node, const Graph& graph) { return fast::prepare_conv_f32_winograd(node, graph, {}); });
  if (options.fast_kernels)
    for (auto& p : fast::all_providers()) options.providers.push_back(std::move(p));
  if (options.fast_kernels)  // integer ops (domain "qplay") of lowered graphs;
                             // nullptr for every other node
    for (auto& p : fast::integer_providers()) options.providers.push_back(std::move(p));
  const size_t n = g.nodes.size();
  kernels_.reserve(n);
  node_inputs_.resize(n);
  node_outputs_.resize(n);
  folded_.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    for (const auto& in : node.inputs) node_inputs_[i].push_back(in.empty() ? -1 : slot(in));
    for (const auto& out : node.outputs) node_outputs_[i].push_back(out.empty() ? -1 : slot(out));
  }
  for (const auto& out : g.outputs) output_slots_.push_back(slot(out.name));

  // Bind kernels in order. A node reading only constants is run once here; providers of later nodes see its outputs as
  // initializers of `view` (e.g. a Conv packs dequantized weights). Runs read every constant from `view` (kept as
  // prepared_), so a kernel may recognise a constant it prepared for by its address.
  auto view = std::make_shared<Graph>(g);
  std::vector<char> is_constant(slot_count_, 0);
  std::vector<const Tensor*> constant(slot_count_, nullptr);
  for (const auto& [name, t] : view->initializers) constant[slot_of_.at(name)] = &t;
  for (int s : input_slots_) constant[s] = nullptr;  // a fed input overrides an initializer of the same name
  for (int s = 0; s < slot_count_; ++s) is_constant[s] = constant[s] != nullptr;
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    PreparedKernel k;
    for (const auto& provider : options.providers)
      if ((k = provider(node, *view))) break;
    kernels_.push_back(k ? std::move(k) : bind_reference_kernel(node));

    bool foldable = !node_inputs_[i].empty();
    for (int s : node_inputs_[i]) foldable = foldable && (s < 0 || is_constant[s]);
    if (!foldable) continue;
    Inputs inputs;
    for (int s : node_inputs_[i]) inputs.push_back(s < 0 ? nullptr : constant[s]);
    std::vector<Tensor> outputs(node_outputs_[i].size());
    try {
      kernels_[i](inputs, outputs);
    } catch (const std::exception&) {
      continue;  // left to run() (and to fail there, naming the node)
    }
    folded_[i] = 1;
    for (size_t o = 0; o < outputs.size(); ++o) {
      const int s = node_outputs_[i][o];
      if (s < 0) continue;
      Tensor& stored = view->initializers[node.outputs[o]];
      stored = std::move(outputs[o]);
      constant[s] = &stored;
      is_constant[s] = 1;
    }
  }

  // Free each intermediate after its last reader, unless it is a graph output.
  std::set<int> keep(output_slots_.begin(), output_slots_.end());
  std::vector<int> last_reader(slot_count_, -1), readers(slot_count_, 0), producer(slot_count_, -1);
  for (size_t i = 0; i < n; ++i) {
    for (int s : node_inputs_[i])
      if (s >= 0) last_reader[s] = static_cast<int>(i), ++readers[s];
    for (int s : node_outputs_[i])
      if (s >= 0) producer[s] = static_cast<int>(i);
  }
  release_after_.resize(n);
  for (int s = 0; s < slot_count_; ++s)
    if (last_reader[s] >= 0 && !keep.count(s) && !is_constant[s]) release_after_[last_reader[s]].push_back(s);

  prepared_ = view;
  // Recycled buffers go only to the kernels this file binds (a caller's provider might not write every element).
  recycles_output_.assign(n, 0);
  for (size_t i = 0; i < n; ++i)
    recycles_output_[i] = !custom_providers && overwrites_outputs(g.nodes[i]) && !folded_[i];
  size_hints_ = std::make_shared<SizeHints>(static_cast<size_t>(slot_count_));
  if (options.batch_slice > 0 && batch_separable(constant)) batch_slice_ = options.batch_slice;

  // Fusion: float Conv -> [Q -> DQ] -> [Add(y, other)] -> [Relu] -> [Q -> DQ] (the first pair only in front of a
  // fused Add), each link the only reader of a value that is not a graph output; `other` must be available when the
  // conv runs (computed by an earlier node, or by an earlier fused conv that absorbed its producer).
  fused_kernels_.resize(n);
  fused_inputs_.resize(n);
  fused_output_.assign(n, -1);
  absorbed_.assign(n, 0);
  if (!options.fast_kernels) return;
  std::vector<int> ready_at = producer;  // the node whose run makes a value available
  auto sole_reader = [&](int s) -> int {
    if (s < 0 || readers[s] != 1 || keep.count(s)) return -1;
    const int r = last_reader[s];
    return absorbed_[r] || folded_[r] ? -1 : r;
  };
  auto is_op = [&](int r, const char* op) { return r >= 0 && g.nodes[r].op_type == op && g.nodes[r].domain.empty(); };
  // QuantizeLinear r -> DequantizeLinear with constant per-tensor parameters (a QDQ model's activation): the pair's
  // parameters and the DequantizeLinear's index, or -1.
  auto match_fake_quant = [&](int r, fast::FakeQuant& f) -> int {
    if (!is_op(r, "QuantizeLinear") || g.nodes[r].has_attr("output_dtype") || node_inputs_[r].size() != 3 ||
        node_outputs_[r].size() != 1)
      return -1;
    const Tensor* qs = node_inputs_[r][1] >= 0 ? constant[node_inputs_[r][1]] : nullptr;
    const Tensor* qz = node_inputs_[r][2] >= 0 ? constant[node_inputs_[r][2]] : nullptr;
    const int d = sole_reader(node_outputs_[r][0]);
    const bool dq_ok = is_op(d, "DequantizeLinear") && node_inputs_[d].size() >= 2 &&
                       node_inputs_[d][0] == node_outputs_[r][0] && node_outputs_[d].size() == 1;
    const Tensor* ds = dq_ok && node_inputs_[d][1] >= 0 ? constant[node_inputs_[d][1]] : nullptr;
    const Tensor* dz =
        dq_ok && node_inputs_[d].size() > 2 && node_inputs_[d][2] >= 0 ? constant[node_inputs_[d][2]] : nullptr;
    const bool dz_ok = dq_ok && (node_inputs_[d].size() < 3 || node_inputs_[d][2] < 0 || dz != nullptr);
    auto positive_scalar = [](const Tensor* t) {
      return t && t->dtype == DType::f32 && t->numel() == 1 && std::isfinite(t->data<float>()[0]) &&
             t->data<float>()[0] > 0.0f;
    };
    const bool q_ok = positive_scalar(qs) && qz && qz->numel() == 1 &&
                      (qz->dtype == DType::u8 || qz->dtype == DType::i8) && positive_scalar(ds) && dz_ok &&
                      (!dz || (dz->numel() == 1 && dz->dtype == qz->dtype));
    if (!q_ok) return -1;
    f.q_dtype = qz->dtype;
    f.q_scale = qs->data<float>()[0];
    f.q_zero_point = static_cast<int32_t>(qz->at_as_double(0));
    f.dq_scale = ds->data<float>()[0];
    f.dq_zero_point = dz ? static_cast<int32_t>(dz->at_as_double(0)) : 0;
    return d;
  };
  // Add r reading `value`: the other addend if it is available before node `at`, else -1.
  auto fusable_add = [&](int r, int value, int at) -> int {
    if (!is_op(r, "Add") || node_inputs_[r].size() != 2 || node_outputs_[r].size() != 1) return -1;
    const int a = node_inputs_[r][0], b = node_inputs_[r][1];
    const int other = a == value ? b : a;
    return other >= 0 && other != value && ready_at[other] < at ? other : -1;
  };
  for (size_t i = 0; i < n; ++i) {
    const Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || !conv.domain.empty() || folded_[i] || absorbed_[i] || node_outputs_[i].size() != 1 ||
        conv.inputs.size() > 3)
      continue;
    const int at = static_cast<int>(i);
    fast::ConvFusion f;
    int out = node_outputs_[i][0], addend = -1;
    std::vector<int> absorbed;
    int r = sole_reader(out);
    // The conv's own pair, only when an Add follows it (otherwise it is the result's pair, below).
    fast::FakeQuant conv_quant;
    const int d = match_fake_quant(r, conv_quant);
    if (d >= 0) {
      const int dq_out = node_outputs_[d][0], add = sole_reader(dq_out);
      if (const int other = fusable_add(add, dq_out, at); other >= 0) {
        f.conv_fake_quant = true;
        f.conv_quant = conv_quant;
        absorbed.insert(absorbed.end(), {r, d});
        out = dq_out;
        r = add;
      }
    }
    if (const int other = fusable_add(r, out, at); other >= 0) {
      f.add = true;
      addend = other;
      absorbed.push_back(r);
      out = node_outputs_[r][0];
      r = sole_reader(out);
    }
    if (is_op(r, "Relu") && node_outputs_[r].size() == 1) {
      f.relu = true;
      absorbed.push_back(r);
      out = node_outputs_[r][0];
      r = sole_reader(out);
    }
    if (const int dq = match_fake_quant(r, f.quant); dq >= 0) {
      f.fake_quant = true;
      absorbed.insert(absorbed.end(), {r, dq});
      out = node_outputs_[dq][0];
    }
    if (absorbed.empty() || out < 0) continue;
    PreparedKernel k = winograd ? fast::prepare_conv_f32_winograd(conv, *view, f) : nullptr;
    if (!k) k = fast::prepare_conv_f32_fused(conv, *view, f);
    if (!k) continue;
    fused_kernels_[i] = std::move(k);
    fused_output_[i] = out;
    ready_at[out] = at;
    std::vector<int> ins = node_inputs_[i];
    ins.resize(3, -1);
    if (f.add) ins.push_back(addend);
    fused_inputs_[i] = ins;
    for (int a : absorbed) absorbed_[a] = 1;
  }

  // Integer fusion: qplay.QConv -> qplay.QAdd (a residual block of a lowered graph), the conv's output read only by
  // the Add and the other addend available when the conv runs. The kernel reads the conv's inputs, then the Add's.
  auto is_integer_op = [&](int r, const char* op) { return r >= 0 && integer::is_integer_op(g.nodes[r], op); };
  for (size_t i = 0; i < n; ++i) {
    if (!is_integer_op(static_cast<int>(i), "QConv") || folded_[i] || absorbed_[i] || node_outputs_[i].size() != 1 ||
        node_inputs_[i].size() > fast::kQConvAddInputs)
      continue;
    const int conv_out = node_outputs_[i][0], add = sole_reader(conv_out);
    if (!is_integer_op(add, "QAdd") || node_inputs_[add].size() != 8 || node_outputs_[add].size() != 1) continue;
    const int a = node_inputs_[add][0], b = node_inputs_[add][3], other = a == conv_out ? b : a;
    if (other < 0 || other == conv_out || ready_at[other] >= static_cast<int>(i)) continue;
    PreparedKernel k = fast::prepare_qconv_add(g.nodes[i], g.nodes[add], *view);
    if (!k) continue;
    fused_kernels_[i] = std::move(k);
    fused_output_[i] = node_outputs_[add][0];
    ready_at[fused_output_[i]] = static_cast<int>(i);
    fused_inputs_[i] = node_inputs_[i];
    fused_inputs_[i].resize(fast::kQConvAddInputs, -1);
    fused_inputs_[i].insert(fused_inputs_[i].end(), node_inputs_[add].begin(), node_inputs_[add].end());
    absorbed_[add] = 1;
  }
}

// Follows the batch from the graph inputs (axis 0 of each) through every node that runs: each must
// be batch-separable on its mix of batched values and constants, and every graph output batched.
bool Executor::batch_separable(const std::vector<const Tensor*>& constant) const {
  const Graph& g = *graph_;
  constexpr int64_t kNotBatched = -2;
  std::vector<int64_t> rank(slot_count_, kNotBatched);  // of batched values; -1 = unknown
  for (size_t i = 0; i < g.inputs.size(); ++i)
    rank[input_slots_[i]] = g.inputs[i].shape.empty() ? -1 : static_cast<int64_t>(g.inputs[i].shape.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (folded_[i]) continue;
    std::vector<SliceOperand> ops(node_inputs_[i].size());
    bool any_batched = false;
    for (size_t k = 0; k < ops.size(); ++k) {
      const int s = node_inputs_[i][k];
      if (s < 0) continue;
      if (constant[s]) {
        ops[k] = {SliceOperand::Kind::constant, constant[s], -1};
      } else if (rank[s] != kNotBatched) {
        ops[k] = {SliceOperand::Kind::batched, nullptr, rank[s]};
        any_batched = true;
      } else {
        return false;  // produced by a node below (a constant node that failed to fold)
      }
    }
    const std::optional<int64_t> out_rank = any_batched ? batch_separable_rank(g.nodes[i], ops) : std::nullopt;
    if (!out_rank) return false;
    rank[node_outputs_[i][0]] = *out_rank;
  }
  for (int s : output_slots_)
    if (rank[s] == kNotBatched) return false;
  return true;
}

bool Executor::run_sliced(const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs,
                          const Capture* capture) const {
  if (batch_slice_ == 0 || inputs.empty()) return false;
  const int64_t n = inputs[0]->rank() > 0 ? inputs[0]->shape[0] : 0;
  if (n <= batch_slice_) return false;
  for (const Tensor* t : inputs)
    if (t->rank() == 0 || t->shape[0] != n) return false;
  // Equal slices, the larger first: every later slice fits the buffers the first one left in the pool.
  const int64_t slices = (n + batch_slice_ - 1) / batch_slice_;
  BufferPool& pool = buffer_pool();
  std::vector<Tensor> part(inputs.size());
  std::vector<const Tensor*> part_of(inputs.size());
  outputs.assign(graph_->outputs.size(), Tensor());
  try {
    for (int64_t k = 0, begin = 0; k < slices; ++k) {
      const int64_t count = n / slices + (k < n % slices ? 1 : 0);
      for (size_t i = 0; i < inputs.size(); ++i) {
        const Tensor& t = *inputs[i];
        const size_t row = t.bytes.size() / static_cast<size_t>(n);
        if (k == 0) part[i].bytes = pool.take(row * static_cast<size_t>(count));
        part[i].dtype = t.dtype;
        part[i].shape = t.shape;
        part[i].shape[0] = count;
        part[i].bytes.assign(t.bytes.begin() + begin * row, t.bytes.begin() + (begin + count) * row);
        part_of[i] = &part[i];
      }
      std::vector<Tensor> got = run_nodes(part_of, nullptr, capture, begin, count);
      for (size_t o = 0; o < got.size(); ++o) {
        Tensor& y = outputs[o];
        const Tensor& s = got[o];
        Shape whole = s.shape;
        if (!whole.empty()) whole[0] = n;
        if (s.rank() == 0 || s.shape[0] != count || (k > 0 && (s.dtype != y.dtype || whole != y.shape))) {
          for (Tensor& t : part) pool.give(std::move(t.bytes));
          return false;  // not batch-major after all: run whole
        }
        if (k == 0) y.reset(s.dtype, whole);
        const size_t row = s.bytes.size() / static_cast<size_t>(count);
        std::copy(s.bytes.begin(), s.bytes.end(), y.bytes.begin() + begin * row);
        pool.give(std::move(got[o].bytes));
      }
      begin += count;
    }
  } catch (const std::exception&) {
    return false;  // the whole-batch run reports it, naming the batch's real shapes
  }
  for (Tensor& t : part) pool.give(std::move(t.bytes));
  return true;
}

std::map<std::string, Tensor> Executor::run(const std::map<std::string, Tensor>& feeds, const ValueHook& hook) const {
  std::map<std::string, const Tensor*> borrowed;
  for (const auto& [name, t] : feeds) borrowed.emplace(name, &t);
  return run_borrowed(borrowed, hook);
}

std::map<std::string, Tensor> Executor::run_borrowed(const std::map<std::string, const Tensor*>& feeds,
                                                     const ValueHook& hook) const {
  const Graph& g = *graph_;
  const std::vector<const Tensor*> inputs = checked_inputs(feeds);
  std::vector<Tensor> outputs;
  if (hook || !run_sliced(inputs, outputs)) outputs = run_nodes(inputs, hook);
  std::map<std::string, Tensor> result;
  for (size_t k = 0; k < g.outputs.size(); ++k) result[g.outputs[k].name] = std::move(outputs[k]);
  return result;
}

void gather_captured_part(Tensor& whole, const Tensor& part, int64_t first_image, int64_t images, int64_t batch,
                          const std::string& name) {
  if (first_image <= 0) {  // a constant (whole), or the batch's first images
    whole.dtype = part.dtype;
    whole.shape = part.shape;
    whole.bytes.clear();
    if (first_image == 0 && images < batch) {
      if (part.rank() == 0 || part.shape[0] != images) throw Error("captured value '" + name + "' is not batch-major");
      whole.shape[0] = batch;
      whole.bytes.reserve(part.bytes.size() / static_cast<size_t>(images) * static_cast<size_t>(batch));
    }
  }
  whole.bytes.insert(whole.bytes.end(), part.bytes.begin(), part.bytes.end());
}

std::map<std::string, Tensor> Executor::run_capturing(const std::map<std::string, Tensor>& feeds,
                                                      const std::vector<std::string>& wanted,
                                                      const CaptureSink& sink) const {
  std::map<std::string, const Tensor*> borrowed;
  for (const auto& [name, t] : feeds) borrowed.emplace(name, &t);
  return run_capturing(borrowed, wanted, sink);
}

std::map<std::string, Tensor> Executor::run_capturing(const std::map<std::string, const Tensor*>& feeds,
                                                      const std::vector<std::string>& wanted,
                                                      const CaptureSink& sink) const {
  const Graph& g = *graph_;
  Capture capture;
  capture.wanted_of_slot.assign(slot_count_, -1);
  capture.sink = &sink;
  std::vector<std::pair<size_t, const Tensor*>> constants;
  for (size_t w = 0; w < wanted.size(); ++w) {
    const auto it = slot_of_.find(wanted[w]);
    if (it == slot_of_.end()) throw Error("the model has no value named '" + wanted[w] + "'");
    const auto c = prepared_->initializers.find(wanted[w]);
    const bool fed = std::find(input_slots_.begin(), input_slots_.end(), it->second) != input_slots_.end();
    if (c != prepared_->initializers.end() && !fed)
      constants.emplace_back(w, &c->second);
    else
      capture.wanted_of_slot[it->second] = static_cast<int>(w);
  }
  const std::vector<const Tensor*> inputs = checked_inputs(feeds);
  for (const auto& [w, t] : constants) sink(w, *t, -1, 0);
  std::vector<Tensor> outputs;
  const int64_t images = !inputs.empty() && inputs[0]->rank() > 0 ? inputs[0]->shape[0] : 1;
  if (!run_sliced(inputs, outputs, &capture)) outputs = run_nodes(inputs, nullptr, &capture, 0, images);
  std::map<std::string, Tensor> result;
  for (size_t k = 0; k < g.outputs.size(); ++k) result[g.outputs[k].name] = std::move(outputs[k]);
  return result;
}

std::vector<const Tensor*> Executor::checked_inputs(const std::map<std::string, const Tensor*>& feeds) const {
  const Graph& g = *graph_;
  std::vector<const Tensor*> inputs(g.inputs.size());
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ValueInfo& info = g.inputs[i];
    auto it = feeds.find(info.name);
    if (it == feeds.end() || it->second == nullptr) throw Error("no data given for model input '" + info.name + "'");
    const Tensor& t = *it->second;
    if (t.dtype != info.dtype)
      throw Error("model input '" + info.name + "' expects " + dtype_name(info.dtype) + ", got " + dtype_name(t.dtype));
    if (!info.shape.empty()) {
      bool ok = t.shape.size() == info.shape.size();
      for (size_t d = 0; ok && d < t.shape.size(); ++d) ok = info.shape[d] < 0 || info.shape[d] == t.shape[d];
      if (!ok)
        throw Error("model input '" + info.name + "' expects shape " + shape_str(info.shape) + ", got " +
                    shape_str(t.shape));
    }
    inputs[i] = &t;
  }
  return inputs;
}

std::vector<Tensor> Executor::run_nodes(const std::vector<const Tensor*>& feeds, const ValueHook& hook,
                                        const Capture* capture, int64_t first_image, int64_t images) const {
  const Graph& g = *graph_;
  std::vector<Tensor> owned(slot_count_);
  std::vector<const Tensor*> value(slot_count_, nullptr);
  for (const auto& [name, t] : prepared_->initializers) value[slot_of_.at(name)] = &t;
  for (size_t i = 0; i < g.inputs.size(); ++i) value[input_slots_[i]] = feeds[i];

  const IntraOpScope intra_op(intra_op_threads_);
  BufferPool& pool = buffer_pool();
  auto release = [&](int s) {
    if (value[s] == &owned[s]) pool.give(std::move(owned[s].bytes));
    owned[s] = Tensor();
    value[s] = nullptr;
  };
  auto take_buffer = [&](int s) {
    Tensor t;
    if (s >= 0) t.bytes = pool.take(size_hints_->bytes[s].load(std::memory_order_relaxed));
    return t;
  };

  // Hands slot s to the capture's sink if it asked for it.
  auto deliver = [&](int s) {
    if (capture && s >= 0 && capture->wanted_of_slot[s] >= 0 && value[s])
      (*capture->sink)(static_cast<size_t>(capture->wanted_of_slot[s]), *value[s], first_image, images);
  };
  for (int s : input_slots_) deliver(s);

  // A fused kernel never materialises the values inside its chain, which a hook or a capture may want.
  const bool fuse = !hook && !capture;
  Inputs inputs;
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (folded_[i]) {
      if (hook)
        for (size_t k = 0; k < node_outputs_[i].size(); ++k)
          if (node_outputs_[i][k] >= 0) hook(static_cast<int>(i), g.nodes[i].outputs[k], *value[node_outputs_[i][k]]);
      continue;
    }
    if (fuse && absorbed_[i]) {
      for (int s : release_after_[i]) release(s);
      continue;
    }
    const bool fused = fuse && fused_kernels_[i];
    const std::vector<int>& in_slots = fused ? fused_inputs_[i] : node_inputs_[i];
    inputs.clear();
    for (int s : in_slots) inputs.push_back(s >= 0 ? value[s] : nullptr);
    if (fused) {
      outputs.resize(1);
      outputs[0] = take_buffer(fused_output_[i]);
      fused_kernels_[i](inputs, outputs);
      const int s = fused_output_[i];
      size_hints_->bytes[s].store(outputs[0].bytes.size(), std::memory_order_relaxed);
      owned[s] = std::move(outputs[0]);
      value[s] = &owned[s];
    } else {
      outputs.clear();
      for (int s : node_outputs_[i]) outputs.push_back(recycles_output_[i] ? take_buffer(s) : Tensor());
      kernels_[i](inputs, outputs);
      for (size_t k = 0; k < outputs.size(); ++k) {
        const int s = node_outputs_[i][k];
        if (s < 0) continue;
        size_hints_->bytes[s].store(outputs[k].bytes.size(), std::memory_order_relaxed);
        owned[s] = std::move(outputs[k]);
        value[s] = &owned[s];
        if (hook) hook(static_cast<int>(i), g.nodes[i].outputs[k], owned[s]);
        deliver(s);
      }
    }
    for (int s : release_after_[i]) release(s);
    outputs.clear();
  }

  std::vector<Tensor> result(g.outputs.size());
  for (size_t k = 0; k < g.outputs.size(); ++k) {
    const int s = output_slots_[k];
    if (value[s] == nullptr) throw Error("graph output '" + g.outputs[k].name + "' was not computed");
    result[k] = value[s] == &owned[s] ? std::move(owned[s]) : *value[s];
  }
  for (int s = 0; s < slot_count_; ++s)
    if (value[s] == &owned[s] && !owned[s].bytes.empty()) pool.give(std::move(owned[s].bytes));
  return result;
}

}  // namespace qplay
