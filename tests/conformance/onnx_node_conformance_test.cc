// The official ONNX operator conformance tests (Debian's libonnx-testdata, data/node):
// every test case whose model uses only operators in qplay's op table runs here, unless
// tests/conformance/excluded.txt names it with a reason. Both the reference kernels and the
// default (fast) kernels must reproduce the expected outputs.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "io/onnx_model.h"
#include "runtime/executor.h"
#include "support/test_support.h"

namespace qplay {
namespace {

namespace fs = std::filesystem;

const char* kNodeTests = "/usr/share/libonnx-testdata/data/node";

std::map<std::string, std::string> excluded_cases() {
  std::map<std::string, std::string> out;
  std::ifstream f(testing::source_dir() + "/tests/conformance/excluded.txt");
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.find(' ');
    out[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
  }
  return out;
}

// Test cases whose model uses only ops qplay implements (the ONNX checker is not consulted here).
std::vector<std::string> applicable_cases() {
  std::vector<std::string> out;
  if (!fs::exists(kNodeTests)) return out;
  for (const auto& dir : fs::directory_iterator(kNodeTests)) {
    onnx::ModelProto m;
    std::ifstream f(dir.path() / "model.onnx", std::ios::binary);
    if (!f || !m.ParseFromIstream(&f)) continue;
    bool all_known = m.graph().node_size() > 0;
    for (const auto& n : m.graph().node())
      all_known &= n.op_type() == "Constant" || find_op(n.op_type(), n.domain()) != nullptr;
    if (all_known) out.push_back(dir.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> cases_to_run() {
  const auto excluded = excluded_cases();
  std::vector<std::string> out;
  for (const auto& c : applicable_cases())
    if (!excluded.count(c)) out.push_back(c);
  return out;
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype, want.dtype) << what;
  ASSERT_EQ(got.shape, want.shape) << what << " got " << shape_str(got.shape) << " want " << shape_str(want.shape);
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.at_as_double(i), w = want.at_as_double(i);
    if (want.dtype == DType::f32) {
      // The ONNX backend test tolerance: |g - w| <= atol + rtol * |w|.
      if (std::isnan(w)) { ASSERT_TRUE(std::isnan(g)) << what << "[" << i << "]"; continue; }
      ASSERT_LE(std::fabs(g - w), 1e-7 + 1e-3 * std::fabs(w)) << what << "[" << i << "] got " << g << " want " << w;
    } else {
      ASSERT_EQ(g, w) << what << "[" << i << "]";
    }
  }
}

class NodeConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(NodeConformance, MatchesExpectedOutputs) {
  const fs::path dir = fs::path(kNodeTests) / GetParam();
  auto graph = std::make_shared<const Graph>(load_onnx((dir / "model.onnx").string()));
  ExecutorOptions reference_only;
  reference_only.fast_kernels = false;
  const Executor reference(graph, reference_only);
  const Executor fast(graph);
  int sets = 0;
  for (const auto& set : fs::directory_iterator(dir)) {
    if (!set.is_directory()) continue;
    ++sets;
    std::map<std::string, Tensor> feeds;
    for (size_t i = 0; i < graph->inputs.size(); ++i) {
      const auto p = set.path() / ("input_" + std::to_string(i) + ".pb");
      feeds[graph->inputs[i].name] = load_tensor_proto(testing::read_binary(p.string()), p.string());
    }
    for (const Executor* ex : {&reference, &fast}) {
      const auto outs = ex->run(feeds);
      for (size_t i = 0; i < graph->outputs.size(); ++i) {
        const auto p = set.path() / ("output_" + std::to_string(i) + ".pb");
        const Tensor want = load_tensor_proto(testing::read_binary(p.string()), p.string());
        expect_close(outs.at(graph->outputs[i].name), want,
                     std::string(ex == &reference ? "reference " : "fast ") + graph->outputs[i].name);
      }
    }
  }
  EXPECT_GT(sets, 0);
}

INSTANTIATE_TEST_SUITE_P(Onnx, NodeConformance, ::testing::ValuesIn(cases_to_run()),
                         [](const auto& info) { return info.param; });

// Guards against a silent shrink: the test data must be installed and many cases must run.
TEST(NodeConformanceCoverage, TestDataPresentAndExclusionsStillApply) {
  ASSERT_TRUE(fs::exists(kNodeTests)) << "install libonnx-testdata";
  const auto applicable = applicable_cases();
  std::set<std::string> applicable_set(applicable.begin(), applicable.end());
  for (const auto& [name, why] : excluded_cases()) {
    EXPECT_TRUE(applicable_set.count(name)) << "excluded.txt names " << name << ", which is not an applicable case";
    EXPECT_FALSE(why.empty()) << "excluded.txt gives no reason for " << name;
  }
  EXPECT_GE(cases_to_run().size(), 100u);
}

}  // namespace
}  // namespace qplay
