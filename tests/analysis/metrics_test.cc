// Error metrics and code statistics against values computed by hand on tiny tensors.
#include "analysis/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "analysis/reports.h"

namespace qplay {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

ErrorMetrics metrics_of(const std::vector<float>& x, const std::vector<float>& y, double scale = NAN) {
  ErrorAccumulator acc;
  add_sample(acc, x.data(), y.data(), static_cast<int64_t>(x.size()));
  return error_metrics(acc, scale);
}

TEST(Metrics, HandComputedPair) {
  // x = [3, 4], y = [3, 3]: ||x|| = 5, ||x - y|| = 1.
  const ErrorMetrics m = metrics_of({3, 4}, {3, 3}, 0.5);
  EXPECT_NEAR(m.sqnr_db, 20 * std::log10(5.0), 1e-12);
  EXPECT_NEAR(m.sqnr_db, 13.979400086720377, 1e-12);
  EXPECT_DOUBLE_EQ(m.mse, 0.5);
  EXPECT_DOUBLE_EQ(m.rmse, std::sqrt(0.5));
  EXPECT_NEAR(m.cosine, 21.0 / (5.0 * std::sqrt(18.0)), 1e-15);  // <x,y> = 21, ||y|| = sqrt(18)
  EXPECT_DOUBLE_EQ(m.max_abs, 1.0);
  EXPECT_NEAR(m.rmse_over_scale, std::sqrt(0.5) / 0.5, 1e-15);
  EXPECT_EQ(m.elements, 2);
  EXPECT_EQ(m.samples, 1);
  EXPECT_NEAR(m.mean_sample_sqnr_db, m.sqnr_db, 1e-12);
}

TEST(Metrics, EqualTensorsHaveInfiniteSqnrWrittenAsInf) {
  const ErrorMetrics m = metrics_of({1, -2, 3}, {1, -2, 3});
  EXPECT_EQ(m.sqnr_db, kInf);
  EXPECT_EQ(m.mean_sample_sqnr_db, kInf);
  EXPECT_EQ(m.exact_samples, 1);
  EXPECT_DOUBLE_EQ(m.mse, 0.0);
  EXPECT_DOUBLE_EQ(m.cosine, 1.0);
  EXPECT_TRUE(std::isnan(m.rmse_over_scale));  // no scale given
  const auto j = error_metrics_json(m);
  EXPECT_EQ(j["sqnr_db"], "inf");
  EXPECT_TRUE(j["rmse_over_scale"].is_null());
  EXPECT_EQ(json_number(-kInf), "-inf");
  EXPECT_EQ(json_number(2.5), 2.5);
}

TEST(Metrics, SqnrOfZeroReferenceIsMinusInfinity) {
  EXPECT_EQ(sqnr_db(0.0, 1.0), -kInf);
  EXPECT_EQ(sqnr_db(0.0, 0.0), kInf);
  EXPECT_NEAR(sqnr_db(100.0, 1.0), 20.0, 1e-12);
  const ErrorMetrics m = metrics_of({0, 0}, {1, 0});
  EXPECT_EQ(m.sqnr_db, -kInf);
  EXPECT_DOUBLE_EQ(m.cosine, 0.0);
}

TEST(Metrics, PooledSqnrAndMeanOfPerImageSqnr) {
  // Image 1: x = [3, 4], y = [3, 3]  -> signal 25, noise 1, SQNR 13.979 dB.
  // Image 2: x = [1, 0], y = [0, 0]  -> signal 1, noise 1, SQNR 0 dB.
  // Pooled (one vector of 4): 10 log10(26 / 2) = 11.139 dB; mean of the two: 6.9897 dB.
  ErrorAccumulator acc;
  const float x1[] = {3, 4}, y1[] = {3, 3}, x2[] = {1, 0}, y2[] = {0, 0};
  add_sample(acc, x1, y1, 2);
  add_sample(acc, x2, y2, 2);
  const ErrorMetrics m = error_metrics(acc);
  EXPECT_NEAR(m.sqnr_db, 10 * std::log10(13.0), 1e-12);
  EXPECT_NEAR(m.mean_sample_sqnr_db, 10 * std::log10(25.0) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(m.mse, 0.5);
  EXPECT_DOUBLE_EQ(m.max_abs, 1.0);
  EXPECT_EQ(m.samples, 2);
}

TEST(Metrics, MeanLeavesOutExactImagesAndCountsThem) {
  ErrorAccumulator acc;
  const float x[] = {3, 4}, y[] = {3, 3};
  add_sample(acc, x, y, 2);
  add_sample(acc, x, x, 2);  // exact: +inf
  const ErrorMetrics m = error_metrics(acc);
  EXPECT_EQ(m.exact_samples, 1);
  EXPECT_NEAR(m.mean_sample_sqnr_db, 20 * std::log10(5.0), 1e-12);
  EXPECT_NEAR(m.sqnr_db, 10 * std::log10(50.0), 1e-12);
}

TEST(Metrics, BatchRowsAreImagesAndMergingMatchesOneStream) {
  // Two images of 3 values each, shapes differing but sizes equal ([2,3] vs [2,3,1]).
  const Tensor x = make_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor y = make_f32({2, 3, 1}, {1, 2, 2, 4, 4, 6});
  ErrorAccumulator whole;
  add_batch(whole, x, y);
  ErrorAccumulator first, second;
  add_sample(first, x.data<float>(), y.data<float>(), 3);
  add_sample(second, x.data<float>() + 3, y.data<float>() + 3, 3);
  merge(first, second);
  EXPECT_EQ(whole.samples, 2);
  EXPECT_EQ(whole.elements, 6);
  EXPECT_DOUBLE_EQ(whole.sum_err2, 2.0);
  EXPECT_DOUBLE_EQ(whole.sum_err2, first.sum_err2);
  EXPECT_DOUBLE_EQ(whole.sum_x2, first.sum_x2);
  EXPECT_DOUBLE_EQ(whole.sum_sample_sqnr_db, first.sum_sample_sqnr_db);
  EXPECT_DOUBLE_EQ(error_metrics(whole).mean_sample_sqnr_db,
                   (10 * std::log10(14.0 / 1.0) + 10 * std::log10(77.0 / 1.0)) / 2);

  EXPECT_THROW(add_batch(whole, x, make_f32({2, 2}, {1, 2, 3, 4})), Error);
}

TEST(Metrics, LongVectorsUseAllLanes) {
  // 11 elements: the 4-lane loop plus a tail; one error in each part.
  std::vector<float> x(11, 1.0f), y(11, 1.0f);
  y[2] = 0.0f;   // in the unrolled part
  y[10] = 3.0f;  // in the tail
  const ErrorMetrics m = metrics_of(x, y);
  EXPECT_DOUBLE_EQ(m.mse, 5.0 / 11.0);
  EXPECT_DOUBLE_EQ(m.max_abs, 2.0);
  EXPECT_NEAR(m.sqnr_db, 10 * std::log10(11.0 / 5.0), 1e-12);
}

TEST(Metrics, PureRoundingNoiseGivesRmseOverScaleNearOneOverSqrt12) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-10.0f, 10.0f);
  const float scale = 0.1f;
  std::vector<float> x(200000), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = dist(rng);
    y[i] = std::nearbyint(x[i] / scale) * scale;
  }
  EXPECT_NEAR(metrics_of(x, y, scale).rmse_over_scale, 1.0 / std::sqrt(12.0), 0.003);
}

TEST(CodeStats, AtLimitsRateAndRangeUseUint8) {
  CodeAccumulator acc = make_code_accumulator(DType::u8);
  Tensor codes(DType::u8, {5});
  const uint8_t values[] = {0, 0, 5, 255, 7};
  std::copy(values, values + 5, codes.data<uint8_t>());
  add_codes(acc, codes);
  const CodeStats s = code_stats(acc);
  EXPECT_EQ(s.codes, 5);
  EXPECT_EQ(s.bits, 8);
  EXPECT_EQ(s.at_qmin, 2);
  EXPECT_EQ(s.at_qmax, 1);
  EXPECT_DOUBLE_EQ(s.at_limits_rate, 3.0 / 5.0);
  EXPECT_EQ(s.distinct, 4);
  EXPECT_DOUBLE_EQ(s.range_use, 4.0 / 256.0);
}

TEST(CodeStats, AtLimitsRateAndRangeUseInt8AndMerge) {
  CodeAccumulator a = make_code_accumulator(DType::i8), b = make_code_accumulator(DType::i8);
  Tensor codes(DType::i8, {4});
  const int8_t values[] = {-128, 127, 0, 0};
  std::copy(values, values + 4, codes.data<int8_t>());
  add_codes(a, codes);
  add_codes(b, codes);
  merge(a, b);
  const CodeStats s = code_stats(a);
  EXPECT_EQ(s.qmin, -128);
  EXPECT_EQ(s.qmax, 127);
  EXPECT_EQ(s.codes, 8);
  EXPECT_DOUBLE_EQ(s.at_limits_rate, 0.5);
  EXPECT_EQ(s.distinct, 3);
  EXPECT_DOUBLE_EQ(s.range_use, 3.0 / 256.0);
  EXPECT_THROW(add_codes(a, Tensor(DType::u8, {1})), Error);  // uint8 codes on an int8 grid
  EXPECT_THROW(make_code_accumulator(DType::i32), Error);
}

// uint8, scale 0.5, zero point 10: grid points -5 .. 122.5, clipped outside [-5.25, 122.75].
TEST(Clipping, HandComputedBoundsAndCounts) {
  const ClipBounds b = clip_bounds(0.5, 10, 0, 255);
  EXPECT_EQ(b.below, -5.25f);
  EXPECT_EQ(b.above, 122.75f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {-5.25f, std::nextafter(-5.25f, -inf), -6.0f, 0.0f, 122.75f,
                                std::nextafter(122.75f, inf), 1000.0f, nan, -inf};
  ClippingCounts c;
  add_clipped(c, x.data(), static_cast<int64_t>(x.size()), b);
  EXPECT_EQ(c.values, 9);
  EXPECT_EQ(c.below, 3);  // just below -5.25, -6, -inf; -5.25 itself rounds to code 0
  EXPECT_EQ(c.above, 2);  // just above 122.75, 1000
  EXPECT_DOUBLE_EQ(clipping_rate(c), 5.0 / 9.0);
  EXPECT_DOUBLE_EQ(clipping_rate(ClippingCounts{}), 0.0);
  const auto j = clipping_json(c);
  EXPECT_EQ(j["below"], 3);
  EXPECT_EQ(j["above"], 2);
  EXPECT_DOUBLE_EQ(j["rate"].get<double>(), 5.0 / 9.0);
}

// The case the code-based count gets wrong: after a ReLU, uint8 with Z = 0 puts every zero at
// code qmin, yet nothing is clipped.
TEST(Clipping, ReluZerosAtQminAreNotClipped) {
  const float scale = 0.1f;
  const std::vector<float> x = {0.0f, 0.0f, 0.0f, 1.0f};
  Tensor codes(DType::u8, {4});
  const uint8_t values[] = {0, 0, 0, 10};
  std::copy(values, values + 4, codes.data<uint8_t>());
  CodeAccumulator acc = make_code_accumulator(DType::u8);
  add_codes(acc, codes);
  EXPECT_DOUBLE_EQ(code_stats(acc).at_limits_rate, 0.75);
  ClippingCounts c;
  add_clipped(c, x.data(), 4, clip_bounds(scale, 0, 0, 255));
  EXPECT_EQ(c.below + c.above, 0);
}

// The float bounds decide exactly as the bounds computed in double: the largest float <= the
// upper bound, the smallest float >= the lower one, for steps that are not powers of two.
TEST(Clipping, FloatBoundsAgreeWithDoubleBounds) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> step(1e-4f, 2.0f);
  const float inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < 1000; ++i) {
    const float s = step(rng);
    const int64_t z = static_cast<int64_t>(rng() % 256) - 128;
    const double lo = double(s) * (-128 - z - 0.5), hi = double(s) * (127 - z + 0.5);
    const ClipBounds b = clip_bounds(s, z, -128, 127);
    EXPECT_GE(double(b.below), lo);
    EXPECT_LT(double(std::nextafter(b.below, -inf)), lo);
    EXPECT_LE(double(b.above), hi);
    EXPECT_GT(double(std::nextafter(b.above, inf)), hi);
  }
}

// Per channel along axis 1 of [1, 2, 2]: int8, scales 1 and 2, Z = 0:
// channel 0 keeps [-128.5, 127.5], channel 1 [-257, 255].
TEST(Clipping, PerChannelGridUsesEachChannelsBounds) {
  QuantGrid grid;
  grid.dtype = DType::i8;
  grid.qmin = -128;
  grid.qmax = 127;
  grid.axis = 1;
  grid.scales = {1.0f, 2.0f};
  grid.zero_points = {0, 0};
  const std::vector<float> x = {127.5f, 128.0f,    // channel 0: 128 clipped above
                                128.0f, -300.0f};  // channel 1: 128 fits, -300 clipped below
  ClippingCounts c;
  add_clipped(c, x.data(), Shape{1, 2, 2}, grid);
  EXPECT_EQ(c.values, 4);
  EXPECT_EQ(c.above, 1);
  EXPECT_EQ(c.below, 1);
  try {
    add_clipped(c, x.data(), Shape{1, 4}, grid);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2 channels along axis 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[1,4]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qplay
