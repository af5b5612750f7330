// Residual Add scales and per-layer sensitivity on the shipped per-tensor model (few images).
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/analysis_test_models.h"
#include "analysis/residuals.h"
#include "analysis/sensitivity.h"

namespace qplay {
namespace {

using testing::shipped_model;

const Dataset& sample() {
  static const Dataset d = load_cifar10(default_test_sample_path());
  return d;
}

TEST(Residuals, ThreeAddsWithScaleRatiosAndRequantizationError) {
  ResidualOptions o;
  o.limit = 20;
  const ResidualStudy s = study_residuals(shipped_model(testing::kPerTensor), sample(), o);
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

TEST(Sensitivity, EveryLayerOnlyAndAllButOnFewImages) {
  SensitivityOptions o;
  o.limit = 20;
  o.weight_bits = {2};
  const Sensitivity s =
      study_sensitivity(shipped_model(testing::kFp32), shipped_model(testing::kPerTensor), sample(), o);
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
