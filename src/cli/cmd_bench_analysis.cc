// qplay bench-analysis: the analysis's interactive speed on a whole data set (issue targets:
// every layer's SQNR over the full test set under 2 s; after one scale edit, the new accuracy
// under 300 ms for an edit in the last stage and under 1.5 s at the first layer; activation
// caches under 4 GB). bench/analysis_bench.js runs it next to ONNX Runtime and writes
// docs/PERFORMANCE_ANALYSIS.md. A benchmark, not a test.
#include <sys/resource.h>

#include <chrono>
#include <ctime>
#include <filesystem>

#include "analysis/edits.h"
#include "analysis/layer_cache.h"
#include "analysis/layers.h"
#include "analysis/quant_grid.h"
#include "analysis/reports.h"
#include "cli/commands.h"
#include "graph/quant_params.h"
#include "io/cifar10.h"
#include "io/onnx_model.h"

namespace qplay::cli {
namespace {

using json = nlohmann::json;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU time of the whole process (all threads): on a shared machine, the work done apart from waiting.
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

struct BenchEdit {
  std::string where;
  Edit edit;
};

// Scale edits (x1.1 of the current per-tensor scale) at five depths: the first layer, the middle,
// the first layer of the last stage (the first layer whose output has the smallest spatial size),
// the last conv of that stage, and the last layer. Weight scales when per tensor, else the output activation's scale.
std::vector<BenchEdit> default_edits(const Graph& g, const BaseCache& cache) {
  const auto params = list_quant_params(g);
  std::vector<const Layer*> compute;
  const auto layers = group_layers(g, params);
  for (const auto& l : layers)
    if (l.kind == "conv" || l.kind == "gemm" || l.kind == "matmul") compute.push_back(&l);
  if (compute.size() < 2) throw Error("bench-analysis needs a model with at least two conv/gemm layers");

  int64_t smallest = -1;
  size_t last_stage = compute.size() - 1;
  for (size_t i = 0; i < compute.size(); ++i) {
    const std::string& codes = compute[i]->output_codes;
    if (codes.empty() || !cache.batches[0].count(codes)) continue;
    const Tensor& t = cache.batches[0].at(codes);
    if (t.rank() != 4) continue;
    const int64_t spatial = t.shape[2] * t.shape[3];
    if (smallest < 0 || spatial < smallest) {
      smallest = spatial;
      last_stage = i;
    }
  }

  auto scale_edit = [&](const Layer& l) {
    for (const std::string& tensor : {l.weight_params, l.output_params}) {
      const QuantParam* p = find_quant_param(params, tensor);
      if (p == nullptr || p->scales.size() != 1) continue;
      Edit e;
      e.kind = Edit::Kind::set_scale;
      e.target = p->tensor;
      e.value = p->scales[0] * 1.1;
      return e;
    }
    throw Error("layer '" + l.name + "' has no per-tensor scale to edit");
  };
  std::vector<BenchEdit> edits = {{"first layer", scale_edit(*compute.front())},
                                  {"middle", scale_edit(*compute[compute.size() / 2])},
                                  {"last stage (first layer)", scale_edit(*compute[last_stage])}};
  // The last stage's last conv/gemm before the classifier: the cheapest edit of that stage, next to its first
  // layer, the dearest.
  if (compute.size() >= 3 && compute.size() - 2 > last_stage)
    edits.push_back({"last stage (" + compute[compute.size() - 2]->name + ")", scale_edit(*compute[compute.size() - 2])});
  edits.push_back({"last layer", scale_edit(*compute.back())});
  return edits;
}

}  // namespace

void add_bench_analysis_command(CLI::App& app) {
  struct Options {
    std::string fp32 = default_model_path();
    std::string quantized;
    std::string data;
    int64_t limit = -1;
    int threads = 2;
    int repeat = 3;
    std::string mode = "simulate";
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("bench-analysis",
                                 "Time the cached whole-data-set analysis: per-layer SQNR and edit re-evaluation (JSON)");
  cmd->add_option("--fp32", opt->fp32, "FP32 model (default: models/resnet8_fp32.onnx)");
  cmd->add_option("quantized", opt->quantized, "QDQ model")->required();
  cmd->add_option("--data", opt->data, "CIFAR-10 batch file (default: the shipped sample)");
  cmd->add_option("--limit", opt->limit, "only the first N images");
  cmd->add_option("--threads", opt->threads, "threads (default 2)")->check(CLI::Range(1, 256));
  cmd->add_option("--repeat", opt->repeat, "timed repetitions of each query; the median is reported")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--mode", opt->mode, "how the quantized cache and the re-evaluations run: simulate (default) | integer")
      ->check(CLI::IsMember({"simulate", "integer"}));
  cmd->callback([opt] {
    const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
    const auto fp32 = std::make_shared<const Graph>(load_onnx(opt->fp32));
    const auto quantized = std::make_shared<const Graph>(load_onnx(opt->quantized));
    if (list_quant_params(*quantized).empty())
      throw Error("'" + opt->quantized + "' has no quantization parameters: bench-analysis needs a QDQ model");
    ReevalOptions o;
    o.limit = opt->limit;
    o.threads = opt->threads;
    o.mode = integer::parse_run_mode(opt->mode);

    json j = {{"fp32_model", opt->fp32}, {"quantized_model", opt->quantized}, {"data", data.source},
              {"threads", o.threads}, {"mode", opt->mode}};
    auto start = std::chrono::steady_clock::now();
    const Fp32LayerCache f = capture_fp32_layers(fp32, data, o);
    j["fp32_cache"] = {{"seconds", seconds_since(start)}, {"bytes", f.bytes}, {"values", f.values.size()}};
    start = std::chrono::steady_clock::now();
    const BaseCache q = capture_base(quantized, data, o);
    j["quantized_cache"] = {{"seconds", seconds_since(start)}, {"bytes", q.bytes}, {"values", q.checkpoints.size()}};
    j["images"] = q.images;
    j["cache_bytes"] = f.bytes + q.bytes;

    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::vector<double> times;
    CachedComparison base;
    for (int r = 0; r < opt->repeat; ++r) {
      base = compare_cached(f, q, nullptr, nullptr, o.threads);
      times.push_back(base.comparison.seconds);
    }
    json layers = json::array();
    for (const auto& l : base.comparison.layers)
      layers.push_back({{"layer", l.name}, {"sqnr_db", json_number(l.accumulated.sqnr_db)}});
    j["sqnr"] = {{"seconds", median(times)},
                 {"layers", layers},
                 {"uncached", base.uncached},
                 {"fp32_accuracy", base.comparison.accuracy.fp32_accuracy()},
                 {"quantized_accuracy", base.comparison.accuracy.quantized_accuracy()}};

    j["edits"] = json::array();
    for (const auto& [where, edit] : default_edits(*quantized, q)) {
      // "accuracy" is what a new version's accuracy costs (reevaluate without codes); "accuracy
      // and SQNR" also keeps the recomputed codes and compares every layer from the caches.
      std::vector<double> reeval, reeval_cpu, total, sqnr;
      Reevaluation run;
      CachedComparison after;
      for (int r = 0; r < opt->repeat; ++r) {
        start = std::chrono::steady_clock::now();
        const double cpu_start = process_cpu_seconds();
        run = reevaluate(q, apply_edits_tracked(*quantized, {edit}));
        reeval.push_back(seconds_since(start));
        reeval_cpu.push_back(process_cpu_seconds() - cpu_start);

        start = std::chrono::steady_clock::now();
        const EditedGraph edited = apply_edits_tracked(*quantized, {edit});
        const Reevaluation with_codes = reevaluate(q, edited, nullptr, true);
        after = compare_cached(f, q, &edited, &with_codes, o.threads);
        sqnr.push_back(after.comparison.seconds);
        total.push_back(seconds_since(start));
        if (with_codes.outputs != run.outputs) throw Error("bench-analysis: re-evaluation with codes gave other outputs");
      }
      j["edits"].push_back({{"where", where},
                            {"edit", edit_str(edit)},
                            {"accuracy_seconds", median(reeval)},
                            {"accuracy_fastest_seconds", *std::min_element(reeval.begin(), reeval.end())},
                            {"accuracy_cpu_seconds", median(reeval_cpu)},
                            {"accuracy_and_sqnr_seconds", median(total)},
                            {"sqnr_seconds", median(sqnr)},
                            {"recomputed_nodes", run.recomputed_nodes.size()},
                            {"total_nodes", run.total_nodes},
                            {"accuracy_before", base.comparison.accuracy.quantized_accuracy()},
                            {"accuracy_after", run.accuracy()}});
    }
    j["peak_rss_mb"] = peak_rss_mb();
    print_result(j, true, "");
  });
}

}  // namespace qplay::cli
