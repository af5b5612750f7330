// `qplay compare` and `qplay histogram` through the real binary: output shapes and one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using testing::expect_clean_error;
using testing::qplay_cli;
using testing::model_path;

const std::string fp32 = model_path("resnet8_fp32.onnx");
const std::string per_tensor = model_path("resnet8_u8act_s8w_pertensor.onnx");

TEST(CliAnalysis, CompareTable) {
  const auto r = qplay_cli("compare " + fp32 + " " + per_tensor + " --limit 4");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("SQNR acc"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("average_pooling2d"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("predictions differ"), std::string::npos) << r.output;
}

TEST(CliAnalysis, CompareJsonOneImage) {
  const auto r = qplay_cli("compare " + fp32 + " " + per_tensor + " --image 5 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["image"], 5);
  EXPECT_EQ(j["images"], 1);
  EXPECT_EQ(j["layers"].size(), 14u);
  EXPECT_TRUE(j["layers"][0]["accumulated"]["sqnr_db"].is_number());
  EXPECT_TRUE(j["layers"][0]["codes"]["at_limits_rate"].is_number());
  // One image of conv2d: 32 x 32 x 16 FP32 values checked against the output grid.
  EXPECT_EQ(j["layers"][0]["clipping"]["values"], 16384);
  EXPECT_TRUE(j["layers"][0]["clipping"]["rate"].is_number());
}

TEST(CliAnalysis, HistogramJson) {
  const auto r =
      qplay_cli("histogram " + per_tensor + " conv2d_1.weight_quantized --fp32 " + fp32 + " --bins 8 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["kind"], "weight");
  EXPECT_EQ(j["edges"].size(), 9u);
  EXPECT_EQ(j["float_channels"]["min"].size(), 16u);
}

TEST(CliAnalysis, ResidualsAgainstFp32Json) {
  const auto r = qplay_cli("residuals " + per_tensor + " --fp32 " + fp32 + " --limit 3 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["fp32_model"], fp32);
  ASSERT_EQ(j["adds"].size(), 3u);
  for (const auto& a : j["adds"]) {
    EXPECT_EQ(a["fp32_layer"], a["name"]);
    EXPECT_EQ(a["against_fp32"]["images"], 3);
    // Upstream error comes on top of the requantization's.
    EXPECT_LT(a["against_fp32"]["sqnr_db"].get<double>(), a["requantization"]["sqnr_db"].get<double>());
  }
  const auto text = qplay_cli("residuals " + per_tensor + " --fp32 " + fp32 + " --limit 3");
  ASSERT_EQ(text.code, 0) << text.output;
  EXPECT_NE(text.output.find("vs FP32 SQNR"), std::string::npos) << text.output;
}

TEST(CliAnalysis, Errors) {
  expect_clean_error(qplay_cli("compare " + fp32 + " " + per_tensor + " --image 1000"),
                     "image index 1000 is out of range (the data set has 1000 images");
  expect_clean_error(qplay_cli("histogram " + per_tensor + " activation_99 --limit 2"),
                     "no tensor named 'activation_99'");
  expect_clean_error(qplay_cli("compare " + fp32 + " /no/such/quantized.onnx"),
                     "cannot open model file '/no/such/quantized.onnx'");
  expect_clean_error(qplay_cli("histogram " + per_tensor + " activation --fp32 /no/such.onnx"),
                     "cannot open model file '/no/such.onnx'");
  expect_clean_error(qplay_cli("residuals " + per_tensor + " --fp32 /no/such.onnx"),
                     "cannot open model file '/no/such.onnx'");
  const auto missing = qplay_cli("compare " + fp32);  // the quantized model is required
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.output.find("quantized"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace qplay
