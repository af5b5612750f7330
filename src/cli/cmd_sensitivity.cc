// qplay sensitivity: accuracy with one layer quantized alone, and with all layers but one.
#include <cstdio>
#include <sstream>

#include "analysis/reports.h"
#include "analysis/sensitivity.h"
#include "cli/commands.h"
#include "io/onnx_model.h"

namespace qplay::cli {
namespace {

std::string sensitivity_text(const Sensitivity& s) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "fp32 %.2f%%  quantized %.2f%%  all layers bypassed %.2f%%  (%lld images)\n",
                s.fp32_accuracy * 100, s.quantized_accuracy * 100, s.all_bypassed_accuracy * 100,
                static_cast<long long>(s.images));
  os << line;
  std::snprintf(line, sizeof line, "%-20s %-5s %12s %14s  %s\n", "layer", "kind", "only this", "all but this",
                "weight bits");
  os << line;
  for (const auto& l : s.layers) {
    std::string sweep;
    for (size_t i = 0; i < l.weight_bits.size(); ++i) {
      std::snprintf(line, sizeof line, "%s%d:%.1f%%", i ? " " : "", l.weight_bits[i], l.weight_bits_accuracy[i] * 100);
      sweep += line;
    }
    std::snprintf(line, sizeof line, "%-20s %-5s %11.2f%% %13.2f%%  %s\n", l.name.c_str(), l.kind.c_str(),
                  l.only_this_quantized * 100, l.all_but_this * 100, sweep.c_str());
    os << line;
  }
  return os.str();
}

}  // namespace

void add_sensitivity_command(CLI::App& app) {
  struct Options {
    std::string fp32, quantized, data;
    SensitivityOptions study;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("sensitivity",
                                 "Per-layer accuracy: only this layer quantized, all but this layer quantized");
  cmd->add_option("fp32", opt->fp32, "FP32 ONNX model")->required();
  cmd->add_option("quantized", opt->quantized, "quantized ONNX model (QDQ)")->required();
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--limit", opt->study.limit, "only the first N images (default 200)")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", opt->study.threads, "worker threads")->check(CLI::Range(1, 256));
  cmd->add_option("--bits", opt->study.weight_bits, "weight bit widths to sweep per layer, e.g. 2,4,6,8")
      ->delimiter(',')
      ->check(CLI::Range(2, 8));
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    auto fp32 = std::make_shared<const Graph>(load_onnx(opt->fp32));
    auto quantized = std::make_shared<const Graph>(load_onnx(opt->quantized));
    const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
    const Sensitivity s = study_sensitivity(fp32, quantized, data, opt->study);
    print_result(sensitivity_json(s, opt->fp32, opt->quantized, data.source), opt->json, sensitivity_text(s));
  });
}

}  // namespace qplay::cli
