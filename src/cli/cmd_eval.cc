#include <fstream>

#include "cli/commands.h"
#include "io/cifar10.h"
#include "io/onnx_model.h"
#include "runtime/integer/integer_mode.h"
#include "session/evaluate.h"
#include "session/reports.h"

namespace qplay::cli {
namespace {

void write_outputs(const std::string& path, const std::vector<float>& values) {
  std::ofstream f(path, std::ios::binary);
  // Little-endian float32 as the machine stores it (x86-64 and arm64 are little-endian).
  f.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
  if (!f) throw Error("cannot write outputs file '" + path + "'");
}

}  // namespace

void add_eval_command(CLI::App& app) {
  struct Options {
    std::string model = default_model_path();
    std::string data;
    std::string outputs;
    EvalOptions eval;
    std::string mode = "simulate";
    bool reference = false;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("eval", "Accuracy, per-class accuracy, confusion matrix and speed on CIFAR-10");
  cmd->add_option("model", opt->model, "ONNX model file (default: models/resnet8_fp32.onnx)");
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--limit", opt->eval.limit, "only the first N images")->check(CLI::PositiveNumber);
  cmd->add_option("--batch", opt->eval.batch, "images per batch")->check(CLI::Range(1, 100000));
  cmd->add_option("--threads", opt->eval.threads, "worker threads")->check(CLI::Range(1, 256));
  cmd->add_option("--outputs", opt->outputs, "write raw outputs (float32 LE, images x classes) to FILE");
  cmd->add_option("--mode", opt->mode,
                  "simulate (default): Q/DQ per the ONNX spec, other ops in float; integer: quantized groups "
                  "run as 8-bit kernels with int32 accumulation and fixed-point requantization")
      ->check(CLI::IsMember({"simulate", "integer"}));
  cmd->add_flag("--reference", opt->reference, "run the reference kernels only (slow; the specification)");
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    const integer::RunMode mode = integer::parse_run_mode(opt->mode);
    auto g = integer::graph_for_mode(load_onnx(opt->model), mode);
    const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
    ExecutorOptions exec;
    exec.fast_kernels = !opt->reference;
    const Executor executor(g, exec);
    const EvalResult r = evaluate(executor, data, opt->eval);
    if (!opt->outputs.empty()) write_outputs(opt->outputs, r.outputs);
    const auto j = eval_json(r, opt->model, data.source, opt->eval);
    print_result(j, opt->json, eval_text(j));
  });
}

}  // namespace qplay::cli
