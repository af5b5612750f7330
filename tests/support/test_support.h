// Shared helpers for tests: where data lives and how to ask ONNX Runtime (the oracle).
#pragma once

#include <string>
#include <vector>

#include "io/cifar10.h"

namespace qplay::testing {

std::string source_dir();
// ../shared beside the repo (or $QPLAY_SHARED); "" when absent.
std::string shared_dir();
std::string model_path(const std::string& file);  // models/<file>
// The shipped 1,000-image test sample (default_test_sample_path()), loaded once per test binary.
const Dataset& test_sample();
// The full CIFAR-10 test batch from shared/, or "" when absent.
std::string full_test_batch();
// Data for oracle comparisons: the first 1,000 test images when shared/ is there, else the
// shipped 1,000-image sample. Writes a batch file and returns its path.
std::string first_1000_test_images();

// Runs tests/oracle/ort_outputs.js; returns images x classes floats. Fails the test (throws)
// if Node or onnxruntime-node is missing — never skips.
std::vector<float> ort_outputs(const std::string& model, const std::string& data, int64_t limit, bool optimize);

// Where tests may write files (build/test-output/<name>), created on demand.
std::string output_dir(const std::string& name);

std::string read_binary(const std::string& path);
void write_binary(const std::string& path, const std::string& bytes);

// Runs a shell command, returns its exit code; stdout+stderr go to `output`.
int run_command(const std::string& command, std::string& output);

}  // namespace qplay::testing
