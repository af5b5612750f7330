#include "support/test_support.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

namespace qplay::testing {

namespace fs = std::filesystem;

std::string source_dir() { return QPLAY_SOURCE_DIR; }

std::string shared_dir() {
  if (const char* env = std::getenv("QPLAY_SHARED")) return env;
  const fs::path p = fs::path(source_dir()).parent_path() / "shared";
  return fs::exists(p / "README.md") ? p.string() : "";
}

std::string model_path(const std::string& file) { return source_dir() + "/models/" + file; }

const Dataset& test_sample() {
  static const Dataset d = load_cifar10(default_test_sample_path());
  return d;
}

std::string full_test_batch() {
  const std::string s = shared_dir();
  if (s.empty()) return "";
  const std::string p = s + "/data/cifar10/test_batch.bin";
  return fs::exists(p) ? p : "";
}

std::string output_dir(const std::string& name) {
  const fs::path p = fs::path(source_dir()) / "build" / "test-output" / name;
  fs::create_directories(p);
  return p.string();
}

std::string read_binary(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_binary(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string first_1000_test_images() {
  const std::string full = full_test_batch();
  if (full.empty()) return default_test_sample_path();
  const std::string out = output_dir("data") + "/test_first_1000.bin";
  if (!fs::exists(out)) {
    // Tests run in parallel processes: write under a name of this process, then rename (atomic), so no test ever
    // reads a half-written file (one did, in CI).
    const std::string part = out + "." + std::to_string(::getpid()) + ".part";
    write_binary(part, read_binary(full).substr(0, 1000 * kCifarRecord));
    fs::rename(part, out);
  }
  return out;
}

int run_command(const std::string& command, std::string& output) {
  output.clear();
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<float> ort_outputs(const std::string& model, const std::string& data, int64_t limit, bool optimize) {
  static int counter = 0;
  const std::string out = output_dir("ort") + "/ort_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".bin";
  const std::string cmd = "node '" + source_dir() + "/tests/oracle/ort_outputs.js' '" + model + "' '" + data + "' " +
                          std::to_string(limit) + " " + (optimize ? "all" : "disabled") + " '" + out + "'";
  std::string log;
  if (run_command(cmd, log) != 0)
    throw std::runtime_error("ONNX Runtime oracle failed (run `make deps`?): " + cmd + "\n" + log);
  const std::string bytes = read_binary(out);
  fs::remove(out);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

}  // namespace qplay::testing
