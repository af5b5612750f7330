// qplay quantize: post-training static quantization of an FP32 ONNX model into QDQ ONNX.
// Option values are checked here, once, with messages naming the option (CLI11's own validators
// would exit with their own codes; qplay's errors exit with 1).
#include <chrono>

#include "cli/commands.h"
#include "io/onnx_model.h"
#include "quantize/quantize.h"
#include "quantize/report.h"

namespace qplay::cli {
namespace {

DType parse_storage(const std::string& option, const std::string& value) {
  if (value == "uint8") return DType::u8;
  if (value == "int8") return DType::i8;
  throw Error(option + " '" + value + "' is not a quantized type (expected uint8 or int8)");
}

void check_bits(const std::string& option, int bits) {
  if (bits < 2 || bits > 8) throw Error(option + " " + std::to_string(bits) + " is outside 2..8");
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  struct Options {
    std::string model;
    std::string output;
    std::string calib;
    int64_t calib_count = 1000;
    std::string method = "minmax";
    double percentile = 99.99;
    std::string act = "uint8";
    std::string weights = "int8";
    bool per_channel = false;
    bool symmetric_act = false;
    int wbits = 8;
    int abits = 8;
    bool bias_correction = false;
    int64_t bias_correction_images = 256;
    bool equalize = false;
    std::string weight_range = "minmax";
    std::string rounding = "nearest";
    std::vector<std::string> exclude;
    uint64_t seed = 0;
    int threads = 2;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("quantize", "Post-training static quantization of an FP32 model to QDQ ONNX");
  cmd->add_option("model", opt->model, "FP32 ONNX model")->required();
  cmd->add_option("-o,--output", opt->output, "where to write the QDQ model")->required();
  cmd->add_option("--calib", opt->calib,
                  "training images: CIFAR-10 batch file or folder (default: ../shared/data/cifar10/data_batch_1.bin, "
                  "else data/cifar10_train_1000.bin)");
  cmd->add_option("--calib-count", opt->calib_count, "stratified calibration images (default 1000)");
  cmd->add_option("--method", opt->method, "activation ranges: minmax | percentile | entropy | mse (default minmax)");
  cmd->add_option("--percentile", opt->percentile, "percentile kept by --method percentile (default 99.99)");
  cmd->add_option("--act", opt->act, "activation storage: uint8 | int8 (default uint8)");
  cmd->add_option("--weights", opt->weights, "weight storage: int8 (symmetric) | uint8 (asymmetric) (default int8)");
  cmd->add_flag("--per-channel", opt->per_channel, "one weight scale per output channel");
  cmd->add_flag("--symmetric-act", opt->symmetric_act, "symmetric activation ranges (zero point at the centre)");
  cmd->add_option("--wbits", opt->wbits, "weight bit width 2..8 (default 8)");
  cmd->add_option("--abits", opt->abits, "activation bit width 2..8 (default 8)");
  cmd->add_flag("--bias-correction", opt->bias_correction, "empirical bias correction on the calibration images");
  cmd->add_option("--bias-correction-images", opt->bias_correction_images,
                  "calibration images (spread evenly) that bias correction measures on (default 256)");
  cmd->add_flag("--equalize", opt->equalize, "cross-layer equalization of Conv-Relu-Conv chains before calibrating");
  cmd->add_option("--weight-range", opt->weight_range, "weight ranges: minmax | mse (default minmax)");
  cmd->add_option("--rounding", opt->rounding,
                  "weight rounding: nearest | gptq (Hessian-guided, on the calibration images) (default nearest)");
  cmd->add_option("--exclude", opt->exclude, "nodes kept in FP32 (comma-separated names)")->delimiter(',');
  cmd->add_option("--seed", opt->seed, "0: each class's first images; otherwise a random stratified draw");
  cmd->add_option("--threads", opt->threads, "calibration threads (default 2)");
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    using namespace qplay::quantize;
    QuantizeOptions q;
    check_bits("--wbits", opt->wbits);
    check_bits("--abits", opt->abits);
    q.format.weight_bits = opt->wbits;
    q.format.activation_bits = opt->abits;
    q.format.activation_type = parse_storage("--act", opt->act);
    q.format.weight_type = parse_storage("--weights", opt->weights);
    q.format.per_channel = opt->per_channel;
    q.format.symmetric_activations = opt->symmetric_act;
    q.format.weight_range = parse_weight_range_method(opt->weight_range);
    q.method = parse_calibration_method(opt->method);
    q.percentile = opt->percentile;
    q.excluded.insert(opt->exclude.begin(), opt->exclude.end());
    q.equalize = opt->equalize;
    if (opt->rounding != "nearest" && opt->rounding != "gptq")
      throw Error("--rounding '" + opt->rounding + "' is not nearest or gptq");
    q.gptq_rounding = opt->rounding == "gptq";
    q.bias_correction = opt->bias_correction;
    q.bias_correction_images = opt->bias_correction_images;
    if (opt->calib_count < 1) throw Error("--calib-count must be at least 1");
    if (opt->threads < 1) throw Error("--threads must be at least 1");
    q.run.threads = opt->threads;
    validate_options(q);

    const auto start = std::chrono::steady_clock::now();
    const Graph model = load_onnx(opt->model);
    const std::string calib_path = opt->calib.empty() ? default_calibration_path() : opt->calib;
    const Dataset calibration =
        select_calibration_images(load_calibration_data(calib_path), opt->calib_count, opt->seed);
    QuantizeReport report;
    const Graph quantized = quantize_model(model, calibration, q, &report);
    save_onnx(quantized, opt->output);
    report.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto j = quantize_report_json(report, q, opt->model, opt->output, calibration.source);
    print_result(j, opt->json, quantize_report_text(j));
  });
}

}  // namespace qplay::cli
