// qplay compare-modes: how far integer mode lands from simulate mode, layer by layer.
#include "analysis/mode_compare.h"
#include "analysis/reports.h"
#include "cli/commands.h"
#include "graph/quant_params.h"
#include "io/cifar10.h"
#include "io/onnx_model.h"

namespace qplay::cli {

void add_compare_modes_command(CLI::App& app) {
  struct Options {
    std::string quantized;
    std::string data;
    int64_t limit = -1;
    int threads = 2;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("compare-modes",
                                 "Integer mode against simulate mode on the same quantized model: per layer, the "
                                 "share of output codes that differ and the SQNR between the two; top-1 agreement");
  cmd->add_option("quantized", opt->quantized, "quantized ONNX model (QDQ or QOperator)")->required();
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--limit", opt->limit, "only the first N images")->check(CLI::Range(1, 100000000));
  cmd->add_option("--threads", opt->threads, "worker threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    const auto quantized = std::make_shared<const Graph>(load_onnx(opt->quantized));
    if (list_quant_params(*quantized).empty())
      throw Error("'" + opt->quantized + "' has no quantization parameters: compare-modes needs a quantized model");
    const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
    ReevalOptions o;
    o.limit = opt->limit;
    o.threads = opt->threads;
    const BaseCache simulate = capture_base(quantized, data, o);
    o.mode = integer::RunMode::integer;
    const BaseCache integer = capture_base(quantized, data, o);
    const auto j = mode_comparison_json(compare_modes(simulate, integer), opt->quantized, data.source);
    print_result(j, opt->json, mode_comparison_text(j));
  });
}

}  // namespace qplay::cli
