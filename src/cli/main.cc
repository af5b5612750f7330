// qplay command line: thin layer over the library; every command can print JSON.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "io/cifar10.h"
#include "io/onnx_model.h"
#include "runtime/executor.h"
#include "session/evaluate.h"
#include "session/reports.h"

namespace {

using namespace qplay;

std::string default_model_path() { return std::string(QPLAY_SOURCE_DIR) + "/models/resnet8_fp32.onnx"; }

void print(const nlohmann::json& j, bool as_json, const std::string& text) {
  if (as_json) std::cout << j.dump(2) << "\n";
  else std::cout << text;
}

void write_outputs(const std::string& path, const std::vector<float>& values) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error("cannot write outputs file '" + path + "'");
  // Little-endian float32 as the machine stores it (x86-64 and arm64 are little-endian).
  f.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
  if (!f) throw Error("cannot write outputs file '" + path + "'");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qplay: a quantization playground for small CNNs (ONNX, CIFAR-10)"};
  app.require_subcommand(1);

  std::string model_path = default_model_path();
  bool as_json = false;

  auto* info = app.add_subcommand("info", "List a model's inputs, outputs, ops and every quantization parameter");
  info->add_option("model", model_path, "ONNX model file")->required();
  info->add_flag("--json", as_json, "print JSON");

  auto* eval = app.add_subcommand("eval", "Accuracy, per-class accuracy, confusion matrix and speed on CIFAR-10");
  std::string data_path;
  std::string outputs_path;
  EvalOptions eval_options;
  eval->add_option("model", model_path, "ONNX model file (default: models/resnet8_fp32.onnx)");
  eval->add_option("--data", data_path, "CIFAR-10 batch file or cifar-10-batches-bin folder (default: shipped 1,000-image sample)");
  eval->add_option("--limit", eval_options.limit, "only the first N images")->check(CLI::PositiveNumber);
  eval->add_option("--batch", eval_options.batch, "images per batch")->check(CLI::Range(1, 100000));
  eval->add_option("--threads", eval_options.threads, "worker threads")->check(CLI::Range(1, 256));
  eval->add_option("--outputs", outputs_path, "write raw outputs (float32 LE, images x classes) to FILE");
  eval->add_flag("--json", as_json, "print JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (info->parsed()) {
      const Graph g = load_onnx(model_path);
      const auto j = model_info_json(g, model_path);
      print(j, as_json, model_info_text(j));
    } else if (eval->parsed()) {
      auto g = std::make_shared<const Graph>(load_onnx(model_path));
      const Dataset data = load_cifar10(data_path.empty() ? default_test_sample_path() : data_path);
      Executor executor(g);
      const EvalResult r = evaluate(executor, data, eval_options);
      if (!outputs_path.empty()) write_outputs(outputs_path, r.outputs);
      const auto j = eval_json(r, model_path, data.source, eval_options);
      print(j, as_json, eval_text(j));
    }
  } catch (const std::exception& e) {
    std::cerr << "qplay: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
