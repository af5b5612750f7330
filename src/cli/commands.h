// Each `qplay` subcommand lives in its own cmd_<name>.cc and registers itself here.
// A command's callback runs after parsing; errors are thrown as exceptions and reported once
// by main() as `qplay: error: ...` with exit status 1.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace qplay::cli {

void add_info_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_compare_command(CLI::App& app);
void add_compare_modes_command(CLI::App& app);
void add_histogram_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_accuracy_table_command(CLI::App& app);
void add_edit_command(CLI::App& app);
void add_residuals_command(CLI::App& app);
void add_sensitivity_command(CLI::App& app);
void add_bench_analysis_command(CLI::App& app);
void add_serve_command(CLI::App& app);

// Prints JSON (pretty) or the text rendering.
void print_result(const nlohmann::json& j, bool as_json, const std::string& text);

std::string default_model_path();  // models/resnet8_fp32.onnx in the source tree

}  // namespace qplay::cli
