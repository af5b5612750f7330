// qplay accuracy-table: the quantization accuracy map (docs/ACCURACY.md). A benchmark, not a
// test: the full sweep quantizes the model 200 ways and scores each on the whole test set.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "io/onnx_model.h"
#include "quantize/accuracy_table.h"

namespace qplay::cli {
namespace {

std::string default_test_data() {
  namespace fs = std::filesystem;
  const fs::path full = fs::path(QPLAY_SOURCE_DIR).parent_path() / "shared" / "data" / "cifar10" / "test_batch.bin";
  return fs::exists(full) ? full.string() : default_test_sample_path();
}

std::vector<int> parse_bits(const std::string& option, const std::vector<int>& bits) {
  for (int b : bits)
    if (b < 2 || b > 8) throw Error(option + " " + std::to_string(b) + " is outside 2..8");
  return bits;
}

}  // namespace

void add_accuracy_table_command(CLI::App& app) {
  struct Options {
    std::string model = default_model_path();
    std::string data;
    std::string calib;
    int64_t calib_count = 1000;
    std::string output;
    std::string save;
    std::vector<std::string> render;
    std::vector<std::string> methods = {"minmax", "percentile", "entropy", "mse"};
    std::vector<std::string> recipes = {"plain", "tuned", "gptq"};
    std::vector<std::string> pairs;
    std::vector<std::string> granularity = {"per-tensor", "per-channel"};
    std::vector<int> wbits = {4, 5, 6, 7, 8};
    std::vector<int> abits = {4, 5, 6, 7, 8};
    std::string act = "uint8";
    int64_t limit = -1;
    int threads = 2;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "accuracy-table", "Test-set accuracy of quantized models at 4..8 bits for every method (docs/ACCURACY.md)");
  cmd->add_option("model", opt->model, "FP32 ONNX model (default: models/resnet8_fp32.onnx)");
  cmd->add_option("--data", opt->data, "test images (default: ../shared/data/cifar10/test_batch.bin, else the sample)");
  cmd->add_option("--calib", opt->calib, "calibration (training) images, as for `quantize`");
  cmd->add_option("--calib-count", opt->calib_count, "stratified calibration images (default 1000)");
  cmd->add_option("-o,--output", opt->output, "write the Markdown here (e.g. docs/ACCURACY.md)");
  cmd->add_option("--save", opt->save, "also write every cell as JSON to FILE");
  cmd->add_option("--render", opt->render,
                  "re-render the Markdown from --save FILEs (comma-separated, merged) instead of running")
      ->delimiter(',');
  cmd->add_option("--methods", opt->methods, "comma-separated calibration methods")->delimiter(',');
  cmd->add_option("--recipes", opt->recipes, "plain,tuned,gptq")->delimiter(',');
  cmd->add_option("--pairs", opt->pairs, "only these WxA pairs, e.g. 8x8,4x4 (instead of --wbits x --abits)")
      ->delimiter(',');
  cmd->add_option("--granularity", opt->granularity, "per-tensor,per-channel")->delimiter(',');
  cmd->add_option("--wbits", opt->wbits, "weight widths (default 4,5,6,7,8)")->delimiter(',');
  cmd->add_option("--abits", opt->abits, "activation widths (default 4,5,6,7,8)")->delimiter(',');
  cmd->add_option("--act", opt->act, "activation storage uint8 | int8 (default uint8)");
  cmd->add_option("--limit", opt->limit, "score only the first N test images");
  cmd->add_option("--threads", opt->threads, "threads (default 2)");
  cmd->add_flag("--json", opt->json, "print the cells as JSON");
  cmd->callback([opt] {
    using namespace qplay::quantize;
    TableSpec spec;
    spec.methods.clear();
    for (const auto& m : opt->methods) spec.methods.push_back(parse_calibration_method(m));
    spec.recipes.clear();
    for (const auto& r : opt->recipes) spec.recipes.push_back(parse_recipe(r));
    spec.per_channel.clear();
    for (const auto& g : opt->granularity) {
      if (g != "per-tensor" && g != "per-channel")
        throw Error("--granularity '" + g + "' is not per-tensor or per-channel");
      spec.per_channel.push_back(g == "per-channel");
    }
    spec.weight_bits = parse_bits("--wbits", opt->wbits);
    spec.activation_bits = parse_bits("--abits", opt->abits);
    if (opt->act != "uint8" && opt->act != "int8") throw Error("--act '" + opt->act + "' is not uint8 or int8");
    spec.activation_type = opt->act == "uint8" ? DType::u8 : DType::i8;
    spec.test_limit = opt->limit;
    if (opt->threads < 1) throw Error("--threads must be at least 1");
    spec.threads = opt->threads;

    AccuracyTable table;
    for (const auto& p : opt->pairs) {
      int wb = 0, ab = 0;
      if (std::sscanf(p.c_str(), "%dx%d", &wb, &ab) != 2) throw Error("--pairs '" + p + "' is not WxA (e.g. 4x8)");
      parse_bits("--pairs", {wb, ab});
      spec.pairs.push_back({wb, ab});
    }
    if (!opt->render.empty()) {
      for (size_t i = 0; i < opt->render.size(); ++i) {
        std::ifstream f(opt->render[i]);
        if (!f) throw Error("cannot read '" + opt->render[i] + "'");
        const AccuracyTable part = accuracy_table_from_json(nlohmann::json::parse(f));
        if (i == 0)
          table = part;
        else
          merge_tables(table, part);
      }
    } else {
      const Graph model = load_onnx(opt->model);
      const Dataset test = load_cifar10(opt->data.empty() ? default_test_data() : opt->data);
      const std::string calib_path = opt->calib.empty() ? default_calibration_path() : opt->calib;
      const Dataset calibration = select_calibration_images(load_calibration_data(calib_path), opt->calib_count, 0);
      table = run_accuracy_table(model, opt->model, test, calibration, spec, [](const TableCell& c) {
        std::cerr << recipe_name(c.recipe) << " " << calibration_method_name(c.method) << " "
                  << (c.per_channel ? "per-channel" : "per-tensor") << " W" << c.weight_bits << "A" << c.activation_bits
                  << ": " << 100.0 * c.accuracy() << "%\n";
      });
      if (!opt->save.empty()) {
        std::ofstream f(opt->save);
        f << accuracy_table_json(table).dump(1) << "\n";
        if (!f) throw Error("cannot write '" + opt->save + "'");
      }
    }
    const std::string markdown = accuracy_table_markdown(table, spec);
    if (!opt->output.empty()) {
      std::ofstream f(opt->output);
      f << markdown;
      if (!f) throw Error("cannot write '" + opt->output + "'");
    }
    print_result(accuracy_table_json(table), opt->json, markdown);
  });
}

}  // namespace qplay::cli
