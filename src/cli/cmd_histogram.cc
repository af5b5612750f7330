#include "analysis/histogram.h"
#include "analysis/reports.h"
#include "cli/commands.h"
#include "io/cifar10.h"
#include "io/onnx_model.h"

namespace qplay::cli {

void add_histogram_command(CLI::App& app) {
  struct Options {
    std::string model;
    std::string tensor;
    std::string fp32;
    std::string data;
    HistogramOptions histogram;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("histogram",
                                 "Histogram of an activation or weight (float and dequantized values) "
                                 "with its quantization grid");
  cmd->add_option("model", opt->model, "ONNX model (quantized or FP32)")->required();
  cmd->add_option("tensor", opt->tensor,
                  "activation (float value, QuantizeLinear or DequantizeLinear output) or weight initializer")
      ->required();
  cmd->add_option("--fp32", opt->fp32, "FP32 model supplying the float values (matched layer by layer)");
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--limit", opt->histogram.limit, "only the first N images")->check(CLI::PositiveNumber);
  cmd->add_option("--bins", opt->histogram.bins, "number of bins")->check(CLI::Range(1, 100000));
  cmd->add_option("--threads", opt->histogram.threads, "worker threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    auto model = std::make_shared<const Graph>(load_onnx(opt->model));
    std::shared_ptr<const Graph> fp32;
    if (!opt->fp32.empty()) fp32 = std::make_shared<const Graph>(load_onnx(opt->fp32));
    // Weights need no images; the data set is still read so a bad --data path is reported.
    const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
    TensorHistogram h;
    try {
      h = tensor_histogram(model, opt->tensor, fp32, data, opt->histogram);
    } catch (const Error& e) {
      throw Error(opt->model + ": " + e.what());
    }
    const auto j = histogram_json(h, opt->model, opt->fp32, data.source);
    print_result(j, opt->json, histogram_text(j));
  });
}

}  // namespace qplay::cli
