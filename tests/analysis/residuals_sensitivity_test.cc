// Residual Add scales and per-layer sensitivity on the shipped per-tensor model (few images).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "analysis/analysis_test_models.h"
#include "analysis/compare.h"
#include "analysis/reports.h"
#include "analysis/residuals.h"
#include "analysis/sensitivity.h"

namespace qplay {
namespace {

using testing::test_sample;
using testing::shipped_model;

TEST(Residuals, ThreeAddsWithScaleRatiosAndRequantizationError) {
  ResidualOptions o;
  o.limit = 20;
  const ResidualStudy s = study_residuals(shipped_model(testing::kPerTensor), test_sample(), o);
  ASSERT_EQ(s.adds.size(), 3u);
  EXPECT_EQ(s.adds[0].name, "add");
  EXPECT_EQ(s.adds[0].inputs, (std::vector<std::string>{"activation", "conv2d_2"}));
  EXPECT_NEAR(s.adds[0].scale_ratio, 0.111738 / 0.0365129, 1e-3);  // 3.06x
  for (const auto& a : s.adds) {
    EXPECT_GT(a.scale_ratio, 2.0) << a.name;
    EXPECT_LT(a.scale_ratio, 3.5) << a.name;
    EXPECT_GT(a.requantization.sqnr_db, 30.0) << a.name;  // one rounding step on an 8-bit grid
    EXPECT_LT(a.requantization.sqnr_db, 60.0) << a.name;
    EXPECT_EQ(a.requantization.samples, 20);
  }
}

// With the FP32 model each Add's output is also measured against the matched FP32 Add: the same
// numbers compare_models gives that layer (its accumulated error), and lower than the
// requantization SQNR alone, since the inputs carry the error of every layer upstream.
TEST(Residuals, AgainstFp32MatchesTheAccumulatedErrorOfCompare) {
  ResidualOptions o;
  o.limit = 20;
  const auto fp32 = shipped_model(testing::kFp32);
  const auto quantized = shipped_model(testing::kPerTensor);
  const ResidualStudy s = study_residuals(quantized, test_sample(), o, fp32);
  EXPECT_TRUE(s.has_fp32);
  CompareOptions c;
  c.limit = 20;
  c.isolated = false;
  const Comparison compared = compare_models(fp32, quantized, test_sample(), c);
  ASSERT_EQ(s.adds.size(), 3u);
  for (const auto& a : s.adds) {
    SCOPED_TRACE(a.name);
    ASSERT_TRUE(a.has_fp32);
    EXPECT_EQ(a.fp32_layer, a.name);  // the shipped FP32 model names its Adds alike
    EXPECT_EQ(a.compared_value, a.dequantized_value);
    EXPECT_EQ(a.against_fp32.samples, 20);
    EXPECT_LT(a.against_fp32.sqnr_db, a.requantization.sqnr_db);
    const auto layer = std::find_if(compared.layers.begin(), compared.layers.end(),
                                    [&](const LayerComparison& l) { return l.name == a.name; });
    ASSERT_NE(layer, compared.layers.end());
    EXPECT_EQ(layer->fp32_value, a.fp32_value);
    EXPECT_NEAR(layer->accumulated.sqnr_db, a.against_fp32.sqnr_db, 1e-9);
    EXPECT_NEAR(layer->accumulated.mse, a.against_fp32.mse, 1e-12);
    EXPECT_NEAR(layer->accumulated.rmse_over_scale, a.against_fp32.rmse_over_scale, 1e-9);
  }
  const auto j = residuals_json(s, "q.onnx", "data", "fp32.onnx");
  EXPECT_EQ(j["fp32_model"], "fp32.onnx");
  EXPECT_EQ(j["adds"][0]["fp32_layer"], "add");
  EXPECT_TRUE(j["adds"][0]["against_fp32"]["sqnr_db"].is_number());

  // An FP32 model none of whose layers is an Add (here: every Add turned into a Sub) is refused.
  Graph no_adds = *fp32;
  for (auto& n : no_adds.nodes)
    if (n.op_type == "Add") n.op_type = "Sub";
  try {
    study_residuals(quantized, test_sample(), o, std::make_shared<const Graph>(no_adds));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no Add of the quantized model matches"), std::string::npos) << e.what();
  }

  // Without the FP32 model the fields are there, null.
  const auto without = residuals_json(study_residuals(quantized, test_sample(), o), "q.onnx", "data");
  EXPECT_TRUE(without["fp32_model"].is_null());
  EXPECT_TRUE(without["adds"][0]["against_fp32"].is_null());
}

TEST(Sensitivity, EveryLayerOnlyAndAllButOnFewImages) {
  SensitivityOptions o;
  o.limit = 20;
  o.weight_bits = {2};
  const Sensitivity s =
      study_sensitivity(shipped_model(testing::kFp32), shipped_model(testing::kPerTensor), test_sample(), o);
  ASSERT_EQ(s.layers.size(), 14u);
  EXPECT_EQ(s.images, 20);
  for (const auto& l : s.layers) {
    EXPECT_GE(l.only_this_quantized, 0.0);
    EXPECT_LE(l.all_but_this, 1.0);
    EXPECT_EQ(l.weight_bits.size(), l.kind == "add" || l.kind == "pool" ? 0u : 1u) << l.name;
  }
  // 2-bit weights in the first conv ruin the network.
  EXPECT_LT(s.layers[0].weight_bits_accuracy.at(0), s.quantized_accuracy - 0.2);
}

}  // namespace
}  // namespace qplay
