// qplay edit: change scales, zero points and bit widths of a QDQ model, or switch layers back to
// FP32; write the edited model and, with --eval, compare accuracy through incremental re-evaluation.
#include <sstream>

#include "analysis/edits.h"
#include "analysis/reevaluate.h"
#include "analysis/reports.h"
#include "cli/commands.h"
#include "io/cifar10.h"
#include "io/onnx_model.h"

namespace qplay::cli {
namespace {

std::string edit_text(const nlohmann::json& j) {
  std::ostringstream os;
  os << "model    " << j["model"].get<std::string>() << "\n";
  for (const auto& e : j["edits"]) os << "edit     " << e.get<std::string>() << "\n";
  os << "nodes    " << j["nodes_before"] << " -> " << j["nodes_after"] << "\n";
  if (!j["output"].is_null()) os << "wrote    " << j["output"].get<std::string>() << "\n";
  const auto& ev = j["evaluation"];
  if (!ev.is_null()) {
    os << "accuracy " << ev["accuracy_before"].get<double>() * 100 << "% -> " << ev["accuracy_after"].get<double>() * 100
       << "% on " << ev["images"] << " images (" << ev["changed_predictions"] << " predictions changed)\n";
    os << "recomputed " << ev["recomputed_nodes"] << " of " << ev["total_nodes"] << " nodes from "
       << ev["fed_values"].size() << " cached tensors (cache " << ev["cache_bytes"].get<size_t>() / 1024 << " KiB)\n";
  }
  return os.str();
}

}  // namespace

void add_edit_command(CLI::App& app) {
  struct Options {
    std::string model;
    std::string output;
    std::vector<std::string> sets, bits, bypass;
    std::string data;
    ReevalOptions eval;
    bool run_eval = false;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("edit",
                                 "Edit a QDQ model's quantization (scale, zero point, bit width, FP32 bypass); "
                                 "applied in the order --bits, --set, --bypass");
  cmd->add_option("model", opt->model, "quantized ONNX model (QDQ)")->required();
  cmd->add_option("-o,--output", opt->output, "write the edited model to this .onnx file");
  cmd->add_option("--set", opt->sets, "TENSOR.scale=V, TENSOR.scale[c]=V, TENSOR.zero_point=Z (repeatable)");
  cmd->add_option("--bits", opt->bits, "TENSOR=N: narrow a weight or activation to N bits, 2..8 (repeatable)");
  cmd->add_option("--bypass", opt->bypass, "LAYER: run this layer in FP32 (repeatable)");
  cmd->add_flag("--eval", opt->run_eval, "accuracy before and after on the data (incremental re-evaluation)");
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder (default: the shipped 1,000-image sample)");
  cmd->add_option("--limit", opt->eval.limit, "only the first N images")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", opt->eval.threads, "worker threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--json", opt->json, "print JSON");
  cmd->callback([opt] {
    auto base = std::make_shared<const Graph>(load_onnx(opt->model));
    std::vector<Edit> edits;
    for (const auto& b : opt->bits) edits.push_back(parse_bits_edit(b));
    for (const auto& s : opt->sets) edits.push_back(parse_set_edit(s));
    for (const auto& l : opt->bypass) edits.push_back(bypass_edit(l));
    const EditedGraph edited = apply_edits_tracked(*base, edits);
    if (!opt->output.empty()) save_onnx(edited.graph, opt->output);

    nlohmann::json j = {{"model", opt->model},
                        {"output", opt->output.empty() ? nlohmann::json() : nlohmann::json(opt->output)},
                        {"edits", nlohmann::json::array()},
                        {"changed", edited.dirty},
                        {"nodes_before", base->nodes.size()},
                        {"nodes_after", edited.graph.nodes.size()},
                        {"evaluation", nullptr}};
    for (const auto& e : edits) j["edits"].push_back(edit_str(e));
    if (opt->run_eval) {
      const Dataset data = load_cifar10(opt->data.empty() ? default_test_sample_path() : opt->data);
      const auto start = std::chrono::steady_clock::now();
      const BaseCache cache = capture_base(base, data, opt->eval);
      const double capture_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      j["evaluation"] = edit_evaluation_json(base_result(cache), reevaluate(cache, edited), data.source, capture_seconds);
    }
    print_result(j, opt->json, edit_text(j));
  });
}

}  // namespace qplay::cli
