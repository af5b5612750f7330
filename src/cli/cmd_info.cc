#include "cli/commands.h"
#include "io/onnx_model.h"
#include "session/reports.h"

namespace qplay::cli {

void add_info_command(CLI::App& app) {
  struct Options {
    std::string model;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("info", "List a model's inputs, outputs, ops and every quantization parameter");
  cmd->add_option("model", opt->model, "ONNX model file")->required();
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    const Graph g = load_onnx(opt->model);
    const auto j = model_info_json(g, opt->model);
    print_result(j, opt->json, model_info_text(j));
  });
}

}  // namespace qplay::cli
