// qplay residuals: input and output scales of every residual Add, the error of its requantization
// and, with --fp32, the error of its output against the FP32 model.
#include <cstdio>
#include <sstream>

#include "analysis/reports.h"
#include "analysis/residuals.h"
#include "cli/commands.h"
#include "io/onnx_model.h"

namespace qplay::cli {
namespace {

std::string residuals_text(const ResidualStudy& s) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-8s %-24s %-24s %12s %12s %8s %10s %14s", "add", "input a", "input b", "scale a",
                "scale b", "ratio", "out scale", "requant SQNR");
  os << line << (s.has_fp32 ? "   vs FP32 SQNR\n" : "\n");
  for (const auto& a : s.adds) {
    std::snprintf(line, sizeof line, "%-8s %-24s %-24s %12.6g %12.6g %7.2fx %10.6g %11.2f dB", a.name.c_str(),
                  a.inputs.at(0).c_str(), a.inputs.size() > 1 ? a.inputs[1].c_str() : "", a.input_scales.at(0),
                  a.input_scales.size() > 1 ? a.input_scales[1] : 0.0, a.scale_ratio, a.output_scale,
                  a.requantization.sqnr_db);
    os << line;
    if (s.has_fp32 && a.has_fp32) {
      std::snprintf(line, sizeof line, " %12.2f dB", a.against_fp32.sqnr_db);
      os << line;
    } else if (s.has_fp32) {
      os << "    (unmatched)";
    }
    os << "\n";
  }
  os << "over " << s.images << " images; requant SQNR: float Add (+Relu) of the dequantized inputs vs its output Q/DQ\n";
  if (s.has_fp32) os << "vs FP32 SQNR: the Add's output DQ vs the matched FP32 Add (+Relu): all error upstream plus requant\n";
  return os.str();
}

}  // namespace

void add_residuals_command(CLI::App& app) {
  struct Options {
    std::string model;
    std::string fp32;
    std::string data;
    ResidualOptions study;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("residuals",
                                 "Residual Adds of a QDQ model: input/output scales, their ratio, requantization error");
  cmd->add_option("model", opt->model, "quantized ONNX model (QDQ)")->required();
  cmd->add_option("--fp32", opt->fp32,
                  "the FP32 model: also measure each Add's output against the matched FP32 Add");
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--limit", opt->study.limit, "only the first N images (default 200)")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", opt->study.threads, "worker threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    auto g = std::make_shared<const Graph>(load_onnx(opt->model));
    std::shared_ptr<const Graph> fp32;
    if (!opt->fp32.empty()) fp32 = std::make_shared<const Graph>(load_onnx(opt->fp32));
    const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
    const ResidualStudy s = study_residuals(g, data, opt->study, fp32);
    print_result(residuals_json(s, opt->model, data.source, opt->fp32), opt->json, residuals_text(s));
  });
}

}  // namespace qplay::cli
