// Per-layer comparison of quantized models against FP32 models on a few images.
#include "analysis/compare.h"

#include <gtest/gtest.h>

#include <cmath>

#include "analysis/analysis_test_models.h"
#include "analysis/capture.h"
#include "analysis/reports.h"
#include "graph/quant_params.h"

namespace qplay {
namespace {

using testing::test_sample;
using testing::shipped_model;

Comparison compare(const char* fp32, const char* quantized, CompareOptions options) {
  return compare_models(shipped_model(fp32), shipped_model(quantized), test_sample(), options);
}

CompareOptions first(int64_t n) {
  CompareOptions o;
  o.limit = n;
  return o;
}

TEST(Compare, PerChannelModelOn50Images) {
  const Comparison c = compare(testing::kFp32, testing::kPerChannel, first(50));
  ASSERT_EQ(c.layers.size(), 14u);
  EXPECT_TRUE(c.unmatched_quantized.empty());
  EXPECT_EQ(c.images, 50);

  // The first conv reads the image in both models, so accumulated and isolated runs compute
  // the very same thing.
  const LayerComparison& first_conv = c.layers[0];
  EXPECT_EQ(first_conv.name, "conv2d");
  EXPECT_EQ(first_conv.compared_value, "activation_dq");
  EXPECT_EQ(first_conv.fp32_value, "activation");
  ASSERT_TRUE(first_conv.has_isolated);
  EXPECT_EQ(first_conv.accumulated.sqnr_db, first_conv.isolated.sqnr_db);
  EXPECT_EQ(first_conv.accumulated.mse, first_conv.isolated.mse);

  for (const auto& L : c.layers) {
    SCOPED_TRACE(L.name);
    EXPECT_EQ(L.accumulated.samples, 50);
    EXPECT_TRUE(std::isfinite(L.accumulated.sqnr_db));
    EXPECT_GT(L.accumulated.sqnr_db, 10.0);
    EXPECT_TRUE(std::isfinite(L.isolated.sqnr_db));
    EXPECT_GT(L.isolated.sqnr_db, 10.0);
    // Errors pile up downstream: alone, a layer is at least nearly as good as in the chain.
    EXPECT_GT(L.isolated.sqnr_db, L.accumulated.sqnr_db - 0.5);
    EXPECT_GT(L.accumulated.cosine, 0.99);
    EXPECT_TRUE(std::isfinite(L.accumulated.mean_sample_sqnr_db));
    if (L.name == "dense") {
      EXPECT_FALSE(L.has_codes);  // no output Q
      EXPECT_TRUE(std::isnan(L.accumulated.rmse_over_scale));
    } else {
      ASSERT_TRUE(L.has_codes);
      EXPECT_EQ(L.codes.bits, 8);
      EXPECT_EQ(L.codes.qmin, -128);
      EXPECT_EQ(L.codes.codes, L.accumulated.elements);  // one code per compared element
      EXPECT_GT(L.codes.range_use, 0.3);
      // Rounding to the output grid alone gives ~0.29 step; exact ReLU zeros pull it lower.
      EXPECT_GT(L.isolated.rmse_over_scale, 0.1);
      EXPECT_LT(L.isolated.rmse_over_scale, 2.0);
    }
  }

  const AccuracyBreakdown& a = c.accuracy;
  EXPECT_EQ(a.images, 50);
  ASSERT_EQ(a.fp32_predictions.size(), 50u);
  int64_t differ = 0;
  for (int i = 0; i < 50; ++i) differ += a.fp32_predictions[i] != a.quantized_predictions[i];
  EXPECT_EQ(static_cast<int64_t>(a.differing_images.size()), differ);
  EXPECT_GT(a.fp32_accuracy(), 0.7);
  EXPECT_GT(a.quantized_accuracy(), 0.7);
}

// Clipping is counted on the FP32 layer outputs against each output grid: the same counts as a
// plain double-precision loop over the captured FP32 values. After a ReLU on a uint8 grid with
// Z = 0 many codes sit at qmin (the zeros), yet none of them is clipped.
TEST(Compare, ClippingCountsFp32ValuesOutsideTheOutputGrid) {
  CompareOptions o = first(20);
  o.isolated = false;
  const auto quantized = shipped_model(testing::kPerTensor);
  const Comparison c = compare(testing::kFp32, testing::kPerTensor, o);
  const auto params = list_quant_params(*quantized);
  const Executor fp32(shipped_model(testing::kFp32));
  int checked = 0;
  for (const auto& L : c.layers) {
    SCOPED_TRACE(L.name);
    if (L.output_params.empty()) {
      EXPECT_FALSE(L.has_clipping);
      continue;
    }
    ASSERT_TRUE(L.has_clipping);
    EXPECT_EQ(L.clipping.values, L.accumulated.elements);
    const QuantParam* p = find_quant_param(params, L.output_params);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(p->scales.size(), 1u);
    const double s = p->scales[0], z = double(p->zero_points[0]);
    const double lo = s * (0 - z - 0.5), hi = s * (255 - z + 0.5);  // uint8 activations
    const Capture values = capture_images(fp32, test_sample(), 0, 20, {L.fp32_value});
    const Tensor& x = values.at(L.fp32_value);
    int64_t below = 0, above = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      below += double(x.data<float>()[i]) < lo;
      above += double(x.data<float>()[i]) > hi;
    }
    EXPECT_EQ(L.clipping.below, below);
    EXPECT_EQ(L.clipping.above, above);
    ++checked;
  }
  EXPECT_EQ(checked, 13);

  const LayerComparison& conv = c.layers[0];
  ASSERT_EQ(conv.name, "conv2d");
  EXPECT_EQ(conv.codes.qmin, 0);
  EXPECT_GT(conv.codes.at_limits_rate, 0.2);  // ReLU zeros at code 0
  EXPECT_EQ(conv.clipping.below, 0);          // no FP32 value below -s/2 after a ReLU
  EXPECT_LT(clipping_rate(conv.clipping), 0.01);

  const auto j = compare_json(c, "fp32.onnx", "q.onnx", "data");
  EXPECT_EQ(j["layers"][0]["clipping"]["values"], conv.clipping.values);
  EXPECT_EQ(j["layers"][0]["codes"]["at_limits_rate"], conv.codes.at_limits_rate);
  EXPECT_TRUE(j["layers"][13]["clipping"].is_null());  // dense: output not quantized
}


TEST(Compare, BatchNormalizationModelAgainstPerTensorModel) {
  const Comparison c = compare(testing::kFp32Bn, testing::kPerTensor, first(10));
  ASSERT_EQ(c.layers.size(), 14u);
  EXPECT_EQ(c.layers[2].name, "conv2d_2");
  EXPECT_EQ(c.layers[2].fp32_value, "batch_normalization_2");
  EXPECT_EQ(c.layers[0].accumulated.sqnr_db, c.layers[0].isolated.sqnr_db);
  for (const auto& L : c.layers) {
    EXPECT_TRUE(std::isfinite(L.accumulated.sqnr_db)) << L.name;
    EXPECT_GT(L.accumulated.sqnr_db, 10.0) << L.name;
    if (L.has_codes) {
      EXPECT_EQ(L.codes.qmin, 0);  // uint8 activations
    }
  }
}

TEST(Compare, ModelAgainstItselfIsExactAndSerializesInf) {
  const Comparison c = compare(testing::kFp32, testing::kFp32, first(4));
  ASSERT_EQ(c.layers.size(), 14u);
  for (const auto& L : c.layers) {
    EXPECT_EQ(L.accumulated.sqnr_db, std::numeric_limits<double>::infinity()) << L.name;
    EXPECT_EQ(L.accumulated.exact_samples, 4);
  }
  EXPECT_TRUE(c.accuracy.differing_images.empty());
  const auto j = compare_json(c, "a.onnx", "b.onnx", "data");
  EXPECT_EQ(j["layers"][0]["accumulated"]["sqnr_db"], "inf");
  EXPECT_EQ(j["layers"][0]["accumulated"]["mean_image_sqnr_db"], "inf");
  EXPECT_TRUE(j["layers"][0]["codes"].is_null());
  EXPECT_TRUE(j["layers"][0]["scale"].is_null());

  // BatchNormalization folded or not: the same network up to float rounding.
  const Comparison bn = compare(testing::kFp32, testing::kFp32Bn, first(4));
  for (const auto& L : bn.layers) EXPECT_GT(L.accumulated.sqnr_db, 60.0) << L.name;
}

TEST(Compare, ResultsDoNotDependOnThreadCount) {
  CompareOptions one = first(20), two = first(20);
  one.batch = two.batch = 7;
  one.threads = 1;
  two.threads = 2;
  const Comparison a = compare(testing::kFp32, testing::kPerTensor, one);
  const Comparison b = compare(testing::kFp32, testing::kPerTensor, two);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].accumulated.sqnr_db, b.layers[i].accumulated.sqnr_db);
    EXPECT_EQ(a.layers[i].accumulated.mean_sample_sqnr_db, b.layers[i].accumulated.mean_sample_sqnr_db);
    EXPECT_EQ(a.layers[i].isolated.mse, b.layers[i].isolated.mse);
    EXPECT_EQ(a.layers[i].codes.distinct, b.layers[i].codes.distinct);
  }
  EXPECT_EQ(a.accuracy.differing_images, b.accuracy.differing_images);
}

TEST(Compare, OneImage) {
  CompareOptions o;
  o.image = 7;
  const Comparison c = compare(testing::kFp32, testing::kPerChannel, o);
  EXPECT_TRUE(c.single_image);
  EXPECT_EQ(c.first_image, 7);
  EXPECT_EQ(c.images, 1);
  EXPECT_EQ(c.accuracy.labels, std::vector<int>{test_sample().labels[7]});
  for (const auto& L : c.layers) {
    EXPECT_EQ(L.accumulated.samples, 1);
    EXPECT_DOUBLE_EQ(L.accumulated.mean_sample_sqnr_db, L.accumulated.sqnr_db);  // one image: one SQNR
  }
  const auto j = compare_json(c, "a", "b", "d");
  EXPECT_EQ(j["image"], 7);
  EXPECT_EQ(j["prediction"]["label"], test_sample().labels[7]);

  o.image = test_sample().size();
  try {
    compare(testing::kFp32, testing::kPerChannel, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("image index 1000 is out of range"), std::string::npos) << e.what();
  }
}

TEST(Compare, WithoutIsolatedRuns) {
  CompareOptions o = first(3);
  o.isolated = false;
  const Comparison c = compare(testing::kFp32, testing::kPerTensor, o);
  for (const auto& L : c.layers) EXPECT_FALSE(L.has_isolated);
  const auto j = compare_json(c, "a", "b", "d");
  EXPECT_TRUE(j["layers"][0]["isolated"].is_null());
  EXPECT_FALSE(compare_text(j).empty());
}

}  // namespace
}  // namespace qplay
