#include "analysis/compare.h"
#include "analysis/reports.h"
#include "cli/commands.h"
#include "io/cifar10.h"
#include "io/onnx_model.h"

namespace qplay::cli {

void add_compare_command(CLI::App& app) {
  struct Options {
    std::string fp32;
    std::string quantized;
    std::string data;
    CompareOptions compare;
    bool no_isolated = false;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("compare",
                                 "Per-layer error of a quantized model against its FP32 model (SQNR, MSE, "
                                 "cosine, clipping), accumulated and isolated");
  cmd->add_option("fp32", opt->fp32, "FP32 ONNX model")->required();
  cmd->add_option("quantized", opt->quantized, "quantized ONNX model (QDQ or QOperator)")->required();
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--limit", opt->compare.limit, "only the first N images")->check(CLI::PositiveNumber);
  cmd->add_option("--image", opt->compare.image, "only image K (0-based index into the data set)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", opt->compare.batch, "images per batch")->check(CLI::Range(1, 100000));
  cmd->add_option("--threads", opt->compare.threads, "worker threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--no-isolated", opt->no_isolated, "skip the isolated (one layer quantized) runs");
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    auto fp32 = std::make_shared<const Graph>(load_onnx(opt->fp32));
    auto quantized = std::make_shared<const Graph>(load_onnx(opt->quantized));
    const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
    opt->compare.isolated = !opt->no_isolated;
    const Comparison c = compare_models(fp32, quantized, data, opt->compare);
    const auto j = compare_json(c, opt->fp32, opt->quantized, data.source);
    print_result(j, opt->json, compare_text(j));
  });
}

}  // namespace qplay::cli
