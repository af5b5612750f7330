// `qplay bench --peak`: the machine's multiply-add rate and the model's multiply-adds per image, from which
// docs/PERFORMANCE.md derives the hardware bound. The counts are checked against ResNet-8's layers by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/onnx_model.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using nlohmann::json;
using testing::model_path;
using testing::qplay_cli;

// Multiply-adds of one conv output position times the positions: out_h * out_w * out_c * in_c * k * k.
constexpr int64_t conv_macs(int64_t out_hw, int64_t out_c, int64_t in_c, int64_t k) {
  return out_hw * out_hw * out_c * in_c * k * k;
}

// ResNet-8 (MLPerf Tiny): a 3x3 stem, three stages of two 3x3 convs (the later ones starting with stride 2 and
// a 1x1 stride-2 shortcut), then a 64 -> 10 dense layer after global pooling.
constexpr int64_t kStem = conv_macs(32, 16, 3, 3);
constexpr int64_t kStride1 = conv_macs(32, 16, 16, 3) * 2 + conv_macs(16, 32, 32, 3) + conv_macs(8, 64, 64, 3);
constexpr int64_t kStride2 = conv_macs(16, 32, 16, 3) + conv_macs(8, 64, 32, 3);
constexpr int64_t kShortcuts = conv_macs(16, 32, 16, 1) + conv_macs(8, 64, 32, 1);
constexpr int64_t kDense = 64 * 10;

json peak_json(const std::string& model) {
  const auto r = qplay_cli("bench " + model_path(model) + " --peak --peak-seconds 0.1 --threads 1 --json");
  EXPECT_EQ(r.code, 0) << r.output;
  return json::parse(r.output);
}

TEST(BenchPeak, CountsResNet8MultiplyAddsInFloatAndQdqModels) {
  for (const char* model : {"resnet8_fp32.onnx", "resnet8_u8act_s8w_pertensor.onnx"}) {
    SCOPED_TRACE(model);
    const json j = peak_json(model);
    EXPECT_EQ(j["multiply_adds_per_image"].get<int64_t>(), kStem + kStride1 + kStride2 + kShortcuts + kDense);
    // The 3x3 stride-1 convs (stem included) are the ones Winograd F(2x2, 3x3) can take.
    EXPECT_EQ(j["winograd_eligible_multiply_adds_per_image"].get<int64_t>(), kStem + kStride1);
  }
}

TEST(BenchPeak, BoundIsThePeakRateOverTheModelsMultiplyAdds) {
  const json j = peak_json("resnet8_fp32.onnx");
  if (j["isa"] == "none") GTEST_SKIP() << "no AVX2+FMA on this CPU: the probe has nothing to run";
  const double fp32 = j["fp32_multiply_adds_per_second"].get<double>();
  const double int16 = j["int16_multiply_adds_per_second"].get<double>();
  // One 2020s core does at least 10 G multiply-adds/s either way; the loops' results are not dead code.
  EXPECT_GT(fp32, 1e10);
  EXPECT_GT(int16, 1e10);
  const double macs = j["multiply_adds_per_image"].get<double>();
  EXPECT_NEAR(j["fp32_bound_images_per_second"].get<double>(), fp32 / macs, 1e-6 * fp32 / macs);
  EXPECT_NEAR(j["int16_bound_images_per_second"].get<double>(), int16 / macs, 1e-6 * int16 / macs);
  EXPECT_GT(j["fp32_winograd_bound_images_per_second"].get<double>(), j["fp32_bound_images_per_second"].get<double>());
}

TEST(BenchPeak, ModelWithoutMultiplyAddsIsAnError) {
  // An image classifier made of one Flatten: it runs on CIFAR-10 images but has nothing for the bound to count.
  Graph g;
  g.inputs.push_back({"images", DType::f32, {1, 3, 32, 32}, {}});
  g.outputs.push_back({"flat", DType::f32, {1, 3072}, {}});
  Node n;
  n.op_type = "Flatten";
  n.name = "flatten";
  n.inputs = {"images"};
  n.outputs = {"flat"};
  g.nodes.push_back(n);
  const std::string path = testing::output_dir("cli") + "/flatten_only.onnx";
  save_onnx(g, path);
  testing::expect_clean_error(qplay_cli("bench " + path + " --peak --peak-seconds 0.1"), "no Conv, Gemm or MatMul");
}

}  // namespace
}  // namespace qplay
