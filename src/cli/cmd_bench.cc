// `qplay bench`: throughput, latency and peak memory of one execution mode on a CIFAR-10 set,
// printed as JSON for bench/run_bench.js, which runs ONNX Runtime (bench/ort_bench.js) next to
// it and writes docs/PERFORMANCE.md.
//
// What is timed: whole passes over the data set, with the input batches already converted to
// float (both sides do the conversion before the clock starts, so the figures compare inference,
// not JavaScript against C++ pixel loops). Batches are spread over --threads workers, each running
// the whole graph on its batch — exactly how `qplay eval` runs. One warm-up pass over the first
// --warmup-images images comes first; the JSON lists every timed pass and their median.
// --time-budget and --max-pass-seconds bound the time a slow mode can take (see the options).
//
// Hidden helper: `qplay bench MODEL --expose-all OUT.onnx` writes MODEL with every value a node
// produces added as a graph output, so ONNX Runtime can be made to materialise every
// intermediate tensor — the counterpart of --mode capture.
#include <onnx/onnx_pb.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "analysis/capture.h"
#include "cli/commands.h"
#include "io/cifar10.h"
#include "io/onnx_model.h"
#include "runtime/executor.h"
#include "runtime/kernels/fast/machine_peak.h"
#include "runtime/kernels/fast/providers.h"
#include "runtime/kernels/fast/qconv_onednn.h"
#include "runtime/kernels/fast/qgemm_s16.h"
#include "runtime/kernels/fast/sgemm.h"

// Integer mode comes from src/runtime/integer/lower.h (`Graph lower_to_integer(const Graph&)`).
// It is compiled in as soon as that header exists; until then `--mode integer` reports
// "integer mode not built yet" and the benchmark table prints n/a.
#if __has_include("runtime/integer/lower.h")
#include "runtime/integer/lower.h"
#define QPLAY_BENCH_HAS_INTEGER_MODE 1
#else
#define QPLAY_BENCH_HAS_INTEGER_MODE 0
#endif

namespace qplay::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// A time budget may cut the repeats short, but never below this many timed passes.
constexpr int kMinPassesUnderBudget = 3;

struct BenchOptions {
  std::string model = default_model_path();
  std::string data;
  std::string mode = "fp32";
  int64_t batch = 16;
  int threads = 2;
  int repeat = 5;
  double time_budget = 0;       // > 0: stop repeating once the timed passes took this many seconds
  double max_pass_seconds = 0;  // > 0: time only the images a pass covers in this long (estimated in the warm-up)
  int64_t warmup_images = 1000;
  int64_t limit = -1;
  bool latency = false;  // one batch at a time on one caller thread, every batch timed
  std::string float_conv = "auto";  // auto: Winograd for 3x3 convs of float-only graphs; direct: never
  std::string int_conv = "auto";    // auto: oneDNN's sums where they serve (qconv_onednn.h); own: qplay's kernels only
  int64_t batch_slice = ExecutorOptions{}.batch_slice;
  std::string expose_all;
  bool peak = false;
  double peak_seconds = 2.0;
  bool json = false;
};

// ---- machine facts ---------------------------------------------------------------------------

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports kilobytes
}

double current_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0.0;
}

std::string cpu_model() {
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  while (std::getline(info, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  return "unknown";
}

// ---- statistics ------------------------------------------------------------------------------

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// ---- the model as each mode runs it ----------------------------------------------------------

bool has_qdq_nodes(const Graph& g) {
  return std::any_of(g.nodes.begin(), g.nodes.end(), [](const Node& n) {
    return n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear";
  });
}

std::shared_ptr<const Graph> graph_for_mode(const std::string& mode, const std::string& model_path) {
  Graph g = load_onnx(model_path);
  if (mode == "fp32") {
    if (has_qdq_nodes(g)) throw Error("--mode fp32 expects a float model; '" + model_path + "' has QDQ nodes (use simulate or integer)");
    return std::make_shared<const Graph>(std::move(g));
  }
  if (mode == "simulate") {
    if (!has_qdq_nodes(g)) throw Error("--mode simulate expects a QDQ model; '" + model_path + "' has no QuantizeLinear/DequantizeLinear");
    return std::make_shared<const Graph>(std::move(g));
  }
  if (mode == "capture") return std::make_shared<const Graph>(std::move(g));  // as stored, FP32 or QDQ
  if (mode == "integer") {
#if QPLAY_BENCH_HAS_INTEGER_MODE
    return std::make_shared<const Graph>(qplay::lower_to_integer(g));
#else
    throw Error("integer mode not built yet (no src/runtime/integer/lower.h)");
#endif
  }
  throw Error("unknown --mode '" + mode + "' (fp32, simulate, integer, capture)");
}

// ---- timed passes ----------------------------------------------------------------------------

struct Batch {
  std::map<std::string, Tensor> feeds;
  int64_t begin = 0;
  int64_t count = 0;
};

std::vector<Batch> make_batches(const Graph& g, const Dataset& data, int64_t images, int64_t batch) {
  if (g.inputs.size() != 1) throw Error("the model has " + std::to_string(g.inputs.size()) + " inputs; the benchmark needs one image input");
  const ImageLayout layout = image_layout_for(g.inputs[0]);
  std::vector<Batch> batches;
  for (int64_t begin = 0; begin < images; begin += batch) {
    Batch b;
    b.begin = begin;
    b.count = std::min(batch, images - begin);
    b.feeds[g.inputs[0].name] = make_image_batch(data, begin, b.count, layout);
    batches.push_back(std::move(b));
  }
  return batches;
}

// What one pass learned besides its time: correct predictions (a sanity check that the run
// computed the real thing) and, in capture mode, how much was materialised.
struct PassStats {
  int64_t correct = 0;
  int64_t captured_values = 0;  // per batch (the same for every batch)
  int64_t captured_bytes = 0;   // over the whole pass
};

// Every value the nodes of `g` produce, in node order: what capture mode hands over.
std::vector<std::string> produced_values(const Graph& g) {
  std::vector<std::string> values;
  for (const auto& node : g.nodes)
    for (const auto& out : node.outputs)
      if (!out.empty()) values.push_back(out);
  return values;
}

// Runs one batch and scores it. In capture mode every tensor every node produces is copied into
// storage for the batch, which lives until the batch is scored — the cost of handing all
// intermediates to an analysis that consumes them batch by batch. The run still goes in slices of
// the batch (Executor::run_capturing), each value's slices appended to its batch-sized tensor. Each
// worker thread reuses its storage for its next batch, as the executor recycles its own buffers:
// freeing ~136 MB per batch (the QDQ model) let glibc unmap a worker's heaps and fault them in again
// (a third of the capture's time).
// `capture_values`: what capture mode hands over (empty in the other modes).
PassStats run_batch(const Executor& executor, const Batch& b, const Dataset& data,
                    const std::vector<std::string>& capture_values) {
  const Graph& g = executor.graph();
  PassStats s;
  thread_local std::vector<Tensor> captured;
  for (Tensor& t : captured) t.bytes.clear();  // keeps the capacity
  std::map<std::string, Tensor> outs;
  if (!capture_values.empty()) {
    captured.resize(capture_values.size());
    const auto sink = [&](size_t k, const Tensor& part, int64_t first_image, int64_t images) {
      gather_captured_part(captured[k], part, first_image, images, b.count, capture_values[k]);
    };
    outs = executor.run_capturing(b.feeds, capture_values, sink);
  } else {
    outs = executor.run(b.feeds);
  }
  const Tensor& y = outs.at(g.outputs[0].name);
  if (y.dtype != DType::f32 || y.rank() != 2 || y.shape[0] != b.count)
    throw Error("model output '" + g.outputs[0].name + "' is " + dtype_name(y.dtype) + " " + shape_str(y.shape) +
                ", expected float32 [batch, classes]");
  const int64_t classes = y.shape[1];
  for (int64_t i = 0; i < b.count; ++i) {
    const float* row = y.data<float>() + i * classes;
    if (std::max_element(row, row + classes) - row == data.labels[b.begin + i]) ++s.correct;
  }
  s.captured_values = static_cast<int64_t>(captured.size());
  for (const Tensor& t : captured) s.captured_bytes += static_cast<int64_t>(t.bytes.size());
  return s;
}

// One pass over `batch_count` batches spread over `threads` workers; returns seconds.
double timed_pass(const Executor& executor, const std::vector<Batch>& batches, size_t batch_count, const Dataset& data,
                  int threads, const std::vector<std::string>& capture_values, PassStats& stats) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::exception_ptr failure;
  stats = PassStats{};
  auto worker = [&] {
    try {
      for (size_t i = next++; i < batch_count; i = next++) {
        const PassStats s = run_batch(executor, batches[i], data, capture_values);
        std::lock_guard<std::mutex> lock(mu);
        stats.correct += s.correct;
        stats.captured_values = s.captured_values;
        stats.captured_bytes += s.captured_bytes;
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!failure) failure = std::current_exception();
      next = batch_count;
    }
  };
  const auto start = Clock::now();
  const int workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), std::max<size_t>(batch_count, 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < workers; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (failure) std::rethrow_exception(failure);
  return seconds;
}

// ---- the hardware bound --------------------------------------------------------------------

// Multiply-adds of one image through the model's Conv, Gemm and MatMul nodes (and their QOperator forms), with the
// shapes of one real run. `winograd_eligible`: those of 3x3 stride-1 dilation-1 convs, which Winograd F(2x2, 3x3)
// computes with 2.25x fewer multiplies.
struct MultiplyAdds {
  int64_t total = 0;
  int64_t winograd_eligible = 0;
};

MultiplyAdds count_multiply_adds(const Graph& g, const Dataset& data) {
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : g.initializers) shapes[name] = t.shape;
  const Executor executor(std::make_shared<const Graph>(g));
  for (const auto& [name, t] : capture_images(executor, data, 0, 1).values) shapes[name] = t.shape;

  auto shape_of = [&shapes](const std::string& value) -> const Shape& {
    static const Shape none;
    const auto it = shapes.find(value);
    return it == shapes.end() ? none : it->second;
  };
  MultiplyAdds m;
  for (const Node& n : g.nodes) {
    if (n.outputs.empty()) continue;
    const Shape& y = shape_of(n.outputs[0]);
    if (y.empty()) continue;
    const int64_t outputs = shape_numel(y);
    if (n.op_type == "Conv" || n.op_type == "QLinearConv" || n.op_type == "ConvInteger") {
      const size_t w_input = n.op_type == "QLinearConv" ? 3 : 1;
      if (n.inputs.size() <= w_input) continue;
      const Shape& w = shape_of(n.inputs[w_input]);
      if (w.size() < 3) continue;
      int64_t per_output = 1;  // C/group x kernel taps
      for (size_t i = 1; i < w.size(); ++i) per_output *= w[i];
      m.total += outputs * per_output;
      const auto strides = n.attr_ints("strides", {1, 1});
      const auto dilations = n.attr_ints("dilations", {1, 1});
      const bool one = std::all_of(strides.begin(), strides.end(), [](int64_t v) { return v == 1; }) &&
                       std::all_of(dilations.begin(), dilations.end(), [](int64_t v) { return v == 1; });
      if (w.size() == 4 && w[2] == 3 && w[3] == 3 && one) m.winograd_eligible += outputs * per_output;
    } else if (n.op_type == "Gemm") {
      const Shape& a = shape_of(n.inputs[0]);
      if (a.size() == 2) m.total += outputs * (n.attr_int("transA", 0) ? a[0] : a[1]);
    } else if (n.op_type == "MatMul" || n.op_type == "MatMulInteger" || n.op_type == "QLinearMatMul") {
      const Shape& a = shape_of(n.inputs[0]);
      if (!a.empty()) m.total += outputs * a.back();
    }
  }
  return m;
}

// The machine's multiply-add peak (fast/machine_peak.h) and what it allows this model: images/s if every
// multiply-add ran at that rate and nothing else took time.
json peak_report(const BenchOptions& o) {
  const Graph g = load_onnx(o.model);
  const Dataset data = load_cifar10(o.data.empty() ? default_test_sample_path() : o.data);
  const MultiplyAdds macs = count_multiply_adds(g, data);
  if (macs.total <= 0) throw Error("'" + o.model + "' has no Conv, Gemm or MatMul: no multiply-adds to bound");
  const fast::MachinePeak peak = fast::measure_machine_peak(o.threads, o.peak_seconds);
  // Winograd F(2x2, 3x3): 16 multiplies per 4 outputs instead of 36.
  const double winograd_macs =
      static_cast<double>(macs.total - macs.winograd_eligible) + static_cast<double>(macs.winograd_eligible) / 2.25;
  json j = {{"model", o.model},
            {"isa", peak.isa},
            {"cpu", cpu_model()},
            {"threads", peak.threads},
            {"seconds_per_measurement", peak.seconds},
            {"multiply_adds_per_image", macs.total},
            {"winograd_eligible_multiply_adds_per_image", macs.winograd_eligible},
            {"fp32_multiply_adds_per_second", peak.fp32_mac_per_s},
            {"fp32_instruction", peak.fp32_instruction},
            {"int16_multiply_adds_per_second", peak.int16_mac_per_s},
            {"int16_instruction", peak.int16_instruction}};
  j["fp32_bound_images_per_second"] = peak.fp32_mac_per_s / static_cast<double>(macs.total);
  j["fp32_winograd_bound_images_per_second"] = peak.fp32_mac_per_s / winograd_macs;
  j["int16_bound_images_per_second"] = peak.int16_mac_per_s / static_cast<double>(macs.total);
  return j;
}

std::string peak_text(const json& j) {
  std::ostringstream s;
  s << "machine peak, " << j["threads"].get<int>() << " threads (" << j["isa"].get<std::string>() << ")\n"
    << "  fp32   " << j["fp32_multiply_adds_per_second"].get<double>() / 1e9 << " G multiply-adds/s ("
    << j["fp32_instruction"].get<std::string>() << ")\n"
    << "  int16  " << j["int16_multiply_adds_per_second"].get<double>() / 1e9 << " G multiply-adds/s ("
    << j["int16_instruction"].get<std::string>() << ")\n"
    << "model " << j["model"].get<std::string>() << ": " << j["multiply_adds_per_image"].get<int64_t>()
    << " multiply-adds per image\n"
    << "  bound fp32       " << j["fp32_bound_images_per_second"].get<double>() << " images/s ("
    << j["fp32_winograd_bound_images_per_second"].get<double>() << " with Winograd)\n"
    << "  bound int16      " << j["int16_bound_images_per_second"].get<double>() << " images/s\n";
  return s.str();
}

json run_benchmark(const BenchOptions& o) {
  auto graph = graph_for_mode(o.mode, o.model);
  // Throughput runs one batch per worker thread; latency runs one batch at a time and lets the
  // executor split each convolution over --threads intra-op threads instead.
  ExecutorOptions exec_options;
  exec_options.intra_op_threads = o.latency ? o.threads : 1;
  exec_options.winograd = o.float_conv == "auto";
  exec_options.batch_slice = o.batch_slice;
  fast::set_onednn_qconv_enabled(o.int_conv == "auto");  // read when the kernels are prepared, just below
  const Executor executor(graph, exec_options);
  const std::vector<std::string> capture_values =
      o.mode == "capture" ? produced_values(*graph) : std::vector<std::string>{};
  const bool capture = !capture_values.empty();
  const Dataset data = load_cifar10(o.data.empty() ? default_test_sample_path() : o.data);
  int64_t images = o.limit < 0 ? data.size() : std::min<int64_t>(o.limit, data.size());
  if (images < 1) throw Error("no images to benchmark");
  const std::vector<Batch> batches = make_batches(*graph, data, images, o.batch);
  const double baseline_rss = current_rss_mb();

  json j;
  j["tool"] = "qplay";
  j["model"] = o.model;
  j["data"] = data.source;
  j["mode"] = o.mode;
  j["float_conv"] = o.float_conv;
  j["int_conv"] = o.int_conv;
  j["images"] = images;
  j["batch"] = o.batch;
  j["batch_slice"] = executor.batch_slice();
  // What the kernels prepared for this run use: the float convs, and the integer tiles.
  const fast::QKernels integer_kernels = fast::select_qkernels();
  j["isa"] = std::string("float ") + (fast::use_avx512_float_kernels() ? "avx512f" : fast::sgemm_isa()) + ", integer " +
             (integer_kernels.avx512 ? "avx512-vnni"
              : integer_kernels.avx2 ? "avx2"
                                     : "portable") +
             (o.int_conv == "auto" && fast::onednn_qconv_available() ? " + oneDNN int8 conv sums" : "");
  j["cpu"] = cpu_model();
  j["hardware_threads"] = std::thread::hardware_concurrency();

  const size_t warmup_batches = static_cast<size_t>(
      std::min<int64_t>((std::max<int64_t>(o.warmup_images, 0) + o.batch - 1) / o.batch, static_cast<int64_t>(batches.size())));
  const int64_t warmup_images = std::min<int64_t>(static_cast<int64_t>(warmup_batches) * o.batch, images);
  PassStats stats;
  if (o.latency) {
    // One caller, one batch at a time; the executor splits each convolution over --threads
    // intra-op threads (the other ops of the graph run on the caller).
    for (size_t i = 0; i < warmup_batches; ++i) run_batch(executor, batches[i], data, capture_values);
    std::vector<double> per_image_ms;
    for (int r = 0; r < o.repeat; ++r) {
      stats = PassStats{};
      for (const Batch& b : batches) {
        const auto start = Clock::now();
        const PassStats s = run_batch(executor, b, data, capture_values);
        per_image_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count() / b.count);
        stats.correct += s.correct;
      }
    }
    j["threads"] = o.threads;
    j["intra_op_threads"] = o.threads;
    j["latency_samples"] = per_image_ms.size();
    j["median_ms_per_image"] = median(per_image_ms);
    j["p10_ms_per_image"] = percentile(per_image_ms, 0.10);
    j["p90_ms_per_image"] = percentile(per_image_ms, 0.90);
  } else {
    // The warm-up doubles as an estimate: if a full pass would exceed --max-pass-seconds (a mode
    // still being built can be 100x slower), only the first images that fit are timed, and the
    // JSON says so ("limited_by_time"), keeping `make bench` bounded.
    size_t pass_batches = batches.size();
    if (warmup_batches > 0) {
      const double warm = timed_pass(executor, batches, warmup_batches, data, o.threads, capture_values, stats);
      const double predicted = warm / static_cast<double>(warmup_images) * static_cast<double>(images);
      if (o.max_pass_seconds > 0 && predicted > o.max_pass_seconds) {
        const double fit = static_cast<double>(batches.size()) * o.max_pass_seconds / predicted;
        pass_batches = std::max<size_t>(1, static_cast<size_t>(fit));
        images = std::min<int64_t>(static_cast<int64_t>(pass_batches) * o.batch, images);
        j["limited_by_time"] = true;
        j["images"] = images;
      }
    }
    std::vector<double> runs;
    double spent = 0;
    for (int r = 0; r < o.repeat; ++r) {
      if (o.time_budget > 0 && spent >= o.time_budget && r >= kMinPassesUnderBudget) break;
      runs.push_back(timed_pass(executor, batches, pass_batches, data, o.threads, capture_values, stats));
      spent += runs.back();
    }
    const double med = median(runs);
    j["threads"] = o.threads;
    j["repeat_requested"] = o.repeat;
    j["runs"] = runs;
    j["median_seconds"] = med;
    j["median_images_per_second"] = med > 0 ? static_cast<double>(images) / med : 0.0;
    j["images_per_second_per_run"] = json::array();
    for (double s : runs) j["images_per_second_per_run"].push_back(s > 0 ? static_cast<double>(images) / s : 0.0);
  }
  j["correct"] = stats.correct;
  j["accuracy"] = static_cast<double>(stats.correct) / static_cast<double>(images);
  if (capture) {
    j["captured_values"] = stats.captured_values;
    j["captured_mb_per_pass"] = static_cast<double>(stats.captured_bytes) / (1024.0 * 1024.0);
  }
  j["warmup_images"] = warmup_images;
  j["baseline_rss_mb"] = baseline_rss;  // after loading model + data and building the input batches
  j["peak_rss_mb"] = peak_rss_mb();
  return j;
}

// ---- --expose-all ----------------------------------------------------------------------------

// Element type of every value the model computes, learnt by running it once on a black image
// (the stored model may carry no value_info, and qplay's run is the ground truth of what it computes).
std::map<std::string, DType> value_types(const std::string& model_path) {
  auto g = std::make_shared<const Graph>(load_onnx(model_path));
  if (g->inputs.size() != 1) throw Error("--expose-all needs a model with one image input");
  Dataset black;
  black.labels.assign(1, 0);
  black.pixels.assign(kCifarPixels, 0);
  std::map<std::string, Tensor> feeds;
  feeds[g->inputs[0].name] = make_image_batch(black, 0, 1, image_layout_for(g->inputs[0]));
  std::map<std::string, DType> types;
  const Executor executor(g);
  executor.run(feeds, [&types](int, const std::string& name, const Tensor& t) { types[name] = t.dtype; });
  return types;
}

int onnx_elem_type(DType t) {
  switch (t) {
    case DType::f32: return onnx::TensorProto_DataType_FLOAT;
    case DType::u8: return onnx::TensorProto_DataType_UINT8;
    case DType::i8: return onnx::TensorProto_DataType_INT8;
    case DType::i32: return onnx::TensorProto_DataType_INT32;
    case DType::i64: return onnx::TensorProto_DataType_INT64;
  }
  return onnx::TensorProto_DataType_UNDEFINED;
}

// Edits the stored ModelProto (not a re-export) so ONNX Runtime sees the original model with
// extra outputs only. Constant nodes are skipped: qplay folds them into initializers, so its
// capture hook never sees them either. Output shapes are left unknown; ONNX Runtime infers them.
json expose_all(const std::string& model_path, const std::string& out_path) {
  std::ifstream in(model_path, std::ios::binary);
  if (!in) throw Error("cannot read model '" + model_path + "'");
  onnx::ModelProto model;
  if (!model.ParseFromIstream(&in)) throw Error("'" + model_path + "' is not an ONNX model");
  const auto types = value_types(model_path);

  onnx::GraphProto* graph = model.mutable_graph();
  std::set<std::string> already;
  for (const auto& o : graph->output()) already.insert(o.name());
  int added = 0;
  for (const auto& node : graph->node()) {
    if (node.op_type() == "Constant") continue;
    for (const auto& name : node.output()) {
      if (name.empty() || !already.insert(name).second) continue;
      auto it = types.find(name);
      if (it == types.end()) throw Error("value '" + name + "' was not computed by a test run of the model");
      onnx::ValueInfoProto* out = graph->add_output();
      out->set_name(name);
      out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx_elem_type(it->second));
      ++added;
    }
  }
  std::ofstream f(out_path, std::ios::binary);
  if (!f || !model.SerializeToOstream(&f)) throw Error("cannot write '" + out_path + "'");
  return {{"model", model_path}, {"written", out_path}, {"outputs", graph->output_size()}, {"added_outputs", added}};
}

std::string bench_text(const json& j) {
  std::ostringstream s;
  s << "model      " << j["model"].get<std::string>() << "\n"
    << "mode       " << j["mode"].get<std::string>() << " (isa " << j["isa"].get<std::string>() << ", "
    << j["threads"].get<int>() << " thread(s), batch " << j["batch"].get<int64_t>() << ")\n"
    << "images     " << j["images"].get<int64_t>() << ", accuracy " << j["accuracy"].get<double>() * 100 << "%\n";
  if (j.contains("median_images_per_second")) {
    s << "speed      " << static_cast<int64_t>(j["median_images_per_second"].get<double>()) << " images/s (median of "
      << j["runs"].size() << " passes:";
    for (const auto& r : j["runs"]) s << " " << r.get<double>() << "s";
    s << ")\n";
  } else {
    s << "latency    " << j["median_ms_per_image"].get<double>() << " ms/image (median of "
      << j["latency_samples"].get<size_t>() << ")\n";
  }
  s << "memory     peak " << j["peak_rss_mb"].get<double>() << " MB RSS (baseline " << j["baseline_rss_mb"].get<double>()
    << " MB)\n";
  return s.str();
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Throughput, latency and peak memory of one execution mode (see bench/)");
  cmd->add_option("model", opt->model, "ONNX model file (default: models/resnet8_fp32.onnx)");
  cmd->add_option("--data", opt->data, "CIFAR-10 batch file or folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--mode", opt->mode, "fp32 | simulate (QDQ in float) | integer | capture (every intermediate copied)")
      ->check(CLI::IsMember({"fp32", "simulate", "integer", "capture"}));
  cmd->add_option("--batch", opt->batch, "images per batch")->check(CLI::Range(1, 100000));
  cmd->add_option("--threads", opt->threads, "worker threads (batches run in parallel)")->check(CLI::Range(1, 256));
  cmd->add_option("--repeat", opt->repeat, "timed passes; the median is reported")->check(CLI::Range(1, 1000));
  cmd->add_option("--time-budget", opt->time_budget,
                  "stop repeating once the timed passes took this many seconds (at least 3 passes)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-pass-seconds", opt->max_pass_seconds,
                  "if the warm-up predicts a longer pass, time only the first images that fit (JSON: limited_by_time)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--warmup-images", opt->warmup_images, "images in the untimed warm-up pass")->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", opt->limit, "only the first N images")->check(CLI::PositiveNumber);
  cmd->add_option("--float-conv", opt->float_conv,
                  "auto (Winograd F(2x2,3x3) for 3x3 stride-1 convs of models without QuantizeLinear) | direct "
                  "(always ONNX Runtime's summation order)")
      ->check(CLI::IsMember({"auto", "direct"}));
  cmd->add_option("--int-conv", opt->int_conv,
                  "auto (integer convs take oneDNN's int8 sums on AVX-512 VNNI CPUs where it serves them) | own "
                  "(qplay's kernels only)")
      ->check(CLI::IsMember({"auto", "own"}));
  cmd->add_option("--slice", opt->batch_slice, "run larger batches in slices of this many images (0: whole)")
      ->check(CLI::Range(int64_t{0}, int64_t{100000}));
  cmd->add_flag("--latency", opt->latency, "time every batch on one caller thread, convolutions split over --threads (use with --batch 1)");
  cmd->add_option("--expose-all", opt->expose_all, "write MODEL with every intermediate as a graph output to FILE and exit")
      ->group("");  // hidden: a helper for bench/run_bench.js
  cmd->add_flag("--peak", opt->peak,
                "measure this machine's multiply-add peak on --threads threads instead, and the images/s it allows "
                "MODEL");
  cmd->add_option("--peak-seconds", opt->peak_seconds, "seconds per peak measurement (default 2)")
      ->check(CLI::Range(0.05, 60.0));
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    if (opt->peak) {
      const json j = peak_report(*opt);
      print_result(j, opt->json, peak_text(j));
      return;
    }
    if (!opt->expose_all.empty()) {
      const json j = expose_all(opt->model, opt->expose_all);
      print_result(j, opt->json, j.dump(2) + "\n");
      return;
    }
    const json j = run_benchmark(*opt);
    print_result(j, opt->json, bench_text(j));
  });
}

}  // namespace qplay::cli
