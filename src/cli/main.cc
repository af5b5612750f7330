// qplay command line: a thin layer over the library; every command can print JSON.
#include <malloc.h>

#include <iostream>

#include "cli/commands.h"

namespace qplay::cli {

std::string default_model_path() { return std::string(QPLAY_SOURCE_DIR) + "/models/resnet8_fp32.onnx"; }

void print_result(const nlohmann::json& j, bool as_json, const std::string& text) {
  if (as_json) std::cout << j.dump(2) << "\n";
  else std::cout << text;
}

}  // namespace qplay::cli

int main(int argc, char** argv) {
  // Every batch allocates and frees the same activation buffers (up to a few MB each). By default glibc serves
  // those from fresh mmaps or trims them back to the kernel, so every run pays page faults and the kernel's zeroing
  // again (a tenth of an integer-mode run). Keep them in the heap for reuse instead: mmap only past 32 MB (glibc's
  // largest threshold), trim only past 256 MB free.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"qplay: a quantization playground for small CNNs (ONNX, CIFAR-10)"};
  app.require_subcommand(1);
  qplay::cli::add_info_command(app);
  qplay::cli::add_eval_command(app);
  qplay::cli::add_compare_command(app);
  qplay::cli::add_compare_modes_command(app);
  qplay::cli::add_histogram_command(app);
  qplay::cli::add_bench_command(app);
  qplay::cli::add_quantize_command(app);
  qplay::cli::add_accuracy_table_command(app);
  qplay::cli::add_edit_command(app);
  qplay::cli::add_residuals_command(app);
  qplay::cli::add_sensitivity_command(app);
  qplay::cli::add_bench_analysis_command(app);
  qplay::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);  // runs the chosen command's callback
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "qplay: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
