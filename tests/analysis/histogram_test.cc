// Histograms of activations and weights with their quantization grids.
#include "analysis/histogram.h"

#include <gtest/gtest.h>

#include <cmath>

#include "analysis/analysis_test_models.h"
#include "analysis/reports.h"

namespace qplay {
namespace {

using testing::test_sample;
using testing::shipped_model;

int64_t sum(const std::vector<int64_t>& v) {
  int64_t s = 0;
  for (int64_t x : v) s += x;
  return s;
}

TEST(Histogram, BinsAndOutliersByHand) {
  Histogram h = make_histogram(0.0, 1.0, 4);
  const float v[] = {0.0f, 0.3f, 0.5f, 1.0f, -1.0f, 2.0f, NAN};
  add_values(h, v, 7);
  EXPECT_EQ(h.counts, (std::vector<int64_t>{1, 1, 1, 1}));  // 1.0 lands in the last bin
  EXPECT_EQ(h.below, 1);
  EXPECT_EQ(h.above, 1);
  EXPECT_EQ(h.total, 6);  // NaN ignored
  EXPECT_EQ(h.min, -1.0);
  EXPECT_EQ(h.max, 2.0);
  EXPECT_EQ(bin_edges(h), (std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0}));
  EXPECT_THROW(make_histogram(1.0, 1.0, 4), Error);
  EXPECT_THROW(make_histogram(0.0, 1.0, 0), Error);
}

TEST(Histogram, ChannelRanges) {
  const Tensor w = make_f32({2, 3}, {1, -2, 3, 0.5f, 0.25f, -4});
  const ChannelRanges rows = channel_ranges(w, 0);
  EXPECT_EQ(rows.min, (std::vector<float>{-2, -4}));
  EXPECT_EQ(rows.max, (std::vector<float>{3, 0.5f}));
  const ChannelRanges cols = channel_ranges(w, 1);
  EXPECT_EQ(cols.min, (std::vector<float>{0.5f, -2, -4}));
}

TEST(Histogram, PerChannelWeightAgainstFp32Weights) {
  HistogramOptions o;
  o.bins = 40;
  const TensorHistogram h = tensor_histogram(shipped_model(testing::kPerChannel), "conv2d_3.weight_quantized",
                                             shipped_model(testing::kFp32), test_sample(), o);
  EXPECT_EQ(h.kind, "weight");
  EXPECT_EQ(h.float_value, "conv2d_3.weight");
  EXPECT_EQ(h.float_source, "fp32_model");
  EXPECT_TRUE(h.note.empty());
  ASSERT_TRUE(h.grid);
  EXPECT_EQ(h.grid->axis, 0);
  EXPECT_EQ(h.grid->channels(), 32u);
  EXPECT_EQ(h.float_values.total, 32 * 16 * 9);
  EXPECT_EQ(h.dequantized.total, 32 * 16 * 9);
  EXPECT_EQ(sum(h.float_values.counts) + h.float_values.below + h.float_values.above, h.float_values.total);
  EXPECT_EQ(bin_edges(h.float_values), bin_edges(h.dequantized));  // overlayable

  // Symmetric min/max weights: no clipping, so each channel's range is kept within half a step.
  ASSERT_TRUE(h.float_channels && h.dequantized_channels);
  ASSERT_EQ(h.float_channels->max.size(), 32u);
  for (size_t c = 0; c < 32; ++c) {
    const double half_step = h.grid->scales[c] / 2.0 + 1e-7;
    EXPECT_NEAR(h.float_channels->max[c], h.dequantized_channels->max[c], half_step) << c;
    EXPECT_NEAR(h.float_channels->min[c], h.dequantized_channels->min[c], half_step) << c;
    EXPECT_GE(h.dequantized_channels->min[c], h.grid->clip_min(c) - 1e-7);
    EXPECT_LE(h.dequantized_channels->max[c], h.grid->clip_max(c) + 1e-7);
  }

  // The DQ output names the same weight.
  const TensorHistogram by_dq =
      tensor_histogram(shipped_model(testing::kPerChannel), "conv2d_3.weight_dq", nullptr, test_sample(), o);
  EXPECT_EQ(by_dq.codes_value, "conv2d_3.weight_quantized");
  EXPECT_FALSE(by_dq.has_float);  // no FP32 model, and the QDQ model stores no float weights
  EXPECT_EQ(by_dq.dequantized.counts, h.dequantized.counts);
}

TEST(Histogram, BatchNormalizationWeightsComeWithANote) {
  const TensorHistogram h = tensor_histogram(shipped_model(testing::kPerTensor), "conv2d.weight_quantized",
                                             shipped_model(testing::kFp32Bn), test_sample(), {});
  EXPECT_EQ(h.float_value, "conv2d.weight");
  EXPECT_NE(h.note.find("BatchNormalization"), std::string::npos);
  ASSERT_TRUE(h.grid);
  EXPECT_EQ(h.grid->axis, -1);  // per tensor
}

TEST(Histogram, ActivationOverImages) {
  HistogramOptions o;
  o.limit = 6;
  o.bins = 32;
  o.batch = 4;
  auto model = shipped_model(testing::kPerTensor);
  const TensorHistogram h = tensor_histogram(model, "activation_2", shipped_model(testing::kFp32Bn), test_sample(), o);
  EXPECT_EQ(h.kind, "activation");
  EXPECT_EQ(h.images, 6);
  EXPECT_EQ(h.float_value, "activation_2");
  EXPECT_EQ(h.dequantized_value, "activation_2_dq");
  EXPECT_EQ(h.codes_value, "activation_2_q");
  const int64_t n = 6 * 16 * 32 * 32;
  EXPECT_EQ(h.float_values.total, n);
  EXPECT_EQ(h.dequantized.total, n);
  EXPECT_EQ(sum(h.dequantized.counts), n);  // the range covers everything seen
  EXPECT_EQ(sum(h.float_values.counts), n);
  ASSERT_TRUE(h.grid);
  EXPECT_EQ(h.grid->qmin, 0);
  EXPECT_EQ(h.grid->qmax, 255);
  EXPECT_GE(h.dequantized.min, h.grid->clip_min(0));
  EXPECT_LE(h.dequantized.max, h.grid->clip_max(0) + 1e-6);
  EXPECT_LE(h.float_values.lo, h.grid->clip_min(0));
  EXPECT_GE(h.float_values.hi, h.grid->clip_max(0));

  // Same activation named by its codes, without an FP32 model: floats from the model itself.
  const TensorHistogram own = tensor_histogram(model, "activation_2_q", nullptr, test_sample(), o);
  EXPECT_EQ(own.float_source, "model");
  EXPECT_EQ(own.float_value, "activation_2");
  EXPECT_EQ(own.dequantized.counts, h.dequantized.counts);

  // Renamed value in the BN model: conv2d_2's output is batch_normalization_2 there.
  const TensorHistogram bn = tensor_histogram(model, "conv2d_2", shipped_model(testing::kFp32Bn), test_sample(), o);
  EXPECT_EQ(bn.float_value, "batch_normalization_2");

  const auto j = histogram_json(h, "m.onnx", "f.onnx", "d");
  EXPECT_EQ(j["bins"], 32);
  EXPECT_EQ(j["edges"].size(), 33u);
  EXPECT_EQ(j["grid"]["scales"].size(), 1u);
  EXPECT_EQ(j["dequantized"]["codes_value"], "activation_2_q");
  EXPECT_FALSE(histogram_text(j).empty());
}

TEST(Histogram, QOperatorCodesWithoutFloatValuesAreRefused) {
  // qconv1's output exists only as codes (no DequantizeLinear reads it).
  auto g = std::make_shared<const Graph>(testing::tiny_qoperator_graph());
  try {
    tensor_histogram(g, "hq", nullptr, test_sample(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'hq' has no float32 values"), std::string::npos) << e.what();
  }
}

TEST(Histogram, UnknownTensorIsNamed) {
  try {
    tensor_histogram(shipped_model(testing::kPerTensor), "no_such_tensor", nullptr, test_sample(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor named 'no_such_tensor'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qplay
