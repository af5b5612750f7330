// Calibration methods and scale arithmetic on small hand-made distributions whose answers are
// known by hand.
#include "quantize/range_methods.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quantize/quant_math.h"

namespace qplay::quantize {
namespace {

ActivationStats stats_of(const std::vector<float>& values, bool histogram = true) {
  ActivationStats s;
  observe_min_max(s, values.data(), static_cast<int64_t>(values.size()));
  if (histogram) {
    start_histogram(s);
    observe_histogram(s, values.data(), static_cast<int64_t>(values.size()));
  }
  return s;
}

// 10,000 values spread evenly over [0, 1) and one outlier at 100.
std::vector<float> bulk_with_outlier() {
  std::vector<float> v;
  for (int i = 0; i < 10000; ++i) v.push_back((i + 0.5f) / 10000.0f);
  v.push_back(100.0f);
  return v;
}

TEST(QuantMath, IntegerRanges) {
  EXPECT_EQ(int_range(DType::u8, 8, false).qmin, 0);
  EXPECT_EQ(int_range(DType::u8, 8, false).qmax, 255);
  EXPECT_EQ(int_range(DType::i8, 8, true).qmin, -127);
  EXPECT_EQ(int_range(DType::i8, 4, true).qmin, -7);  // 4-bit symmetric weights: [-7, 7]
  EXPECT_EQ(int_range(DType::i8, 4, true).qmax, 7);
  EXPECT_EQ(int_range(DType::i8, 4, false).qmin, -8);  // 4-bit asymmetric activations: [-8, 7]
  EXPECT_EQ(int_range(DType::u8, 4, false).qmax, 15);
  EXPECT_EQ(int_range(DType::u8, 2, false).qmax, 3);
  EXPECT_THROW(int_range(DType::u8, 9, false), Error);
  EXPECT_THROW(int_range(DType::u8, 1, false), Error);
}

TEST(QuantMath, ScaleAndZeroPoint) {
  // Raw pixels at 8 bits: scale 1, zero point 0, every value exact.
  ScaleZeroPoint p = choose_scale_zero_point(0.0f, 255.0f, {0, 255}, false);
  EXPECT_FLOAT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero_point, 0);
  // [-1, 3] on 4-bit unsigned codes: scale 4/15, zero point round(0 + 1 / (4/15)) = round(3.75) = 4.
  p = choose_scale_zero_point(-1.0f, 3.0f, {0, 15}, false);
  EXPECT_FLOAT_EQ(p.scale, 4.0f / 15.0f);
  EXPECT_EQ(p.zero_point, 4);
  EXPECT_EQ(quantize_value(100.0f, p, {0, 15}), 15);  // saturates to the narrow range
  EXPECT_EQ(quantize_value(-100.0f, p, {0, 15}), 0);
  // A range not containing 0 is widened to contain it.
  p = choose_scale_zero_point(2.0f, 4.0f, {0, 255}, false);
  EXPECT_EQ(p.zero_point, 0);
  EXPECT_FLOAT_EQ(p.scale, 4.0f / 255.0f);
  // Symmetric int8 weights: max |w| / 127.
  p = choose_scale_zero_point(-0.5f, 1.27f, {-127, 127}, true);
  EXPECT_FLOAT_EQ(p.scale, 0.01f);
  EXPECT_EQ(p.zero_point, 0);
  // Symmetric uint8: zero point at the centre of [1, 255].
  EXPECT_EQ(choose_scale_zero_point(-1.0f, 1.0f, int_range(DType::u8, 8, true), true).zero_point, 128);
}

TEST(RangeMethods, MinMaxOfKnownValues) {
  const RealRange r = minmax_range(stats_of({-1.5f, 0.0f, 2.0f, 3.25f, 0.5f}, false));
  EXPECT_FLOAT_EQ(r.lo, -1.5f);
  EXPECT_FLOAT_EQ(r.hi, 3.25f);
}

TEST(RangeMethods, PercentileOfKnownSet) {
  std::vector<float> v;
  for (int i = 1; i <= 10000; ++i) v.push_back(static_cast<float>(i));
  const ActivationStats s = stats_of(v);
  const double bin = s.bin_width();  // 10000 / 2048: the histogram's resolution
  RealRange r = percentile_range(s, 99.0);
  EXPECT_NEAR(r.hi, 9900.0, bin);
  EXPECT_NEAR(r.lo, 100.0, bin);
  r = percentile_range(s, 100.0);
  EXPECT_FLOAT_EQ(r.hi, 10000.0f);
  // ReLU-like data: half exact zeros. The 75th percentile is the middle of the positive half.
  std::vector<float> relu(10000, 0.0f);
  for (int i = 0; i < 10000; ++i) relu.push_back((i + 0.5f) / 10000.0f);
  r = percentile_range(stats_of(relu), 75.0);
  EXPECT_NEAR(r.hi, 0.5, 1.0 / 2048);
  EXPECT_FLOAT_EQ(r.lo, 0.0f);
}

TEST(RangeMethods, MseBalancesRoundingAgainstClippingAnOutlier) {
  // N values in [0, 1) and one outlier at 100. For a range [0, a] with a >= 1 and L steps, the
  // bulk costs N (a / L)^2 / 12 (rounding noise) and the outlier (100 - a)^2 (clipping), so the
  // best a = 100 / (1 + N / (12 L^2)): 98.7 at 8 bits (keep the outlier: rounding is cheap) and
  // 21.3 at 4 bits (clip it hard). The search steps are 1/200 of the range.
  const ActivationStats s = stats_of(bulk_with_outlier());
  const double n = 10000.0;
  for (int bits : {8, 4}) {
    const double steps = (1 << bits) - 1;
    const double best = 100.0 / (1.0 + n / (12.0 * steps * steps));
    const RealRange r = mse_range(s, {0, static_cast<int32_t>(steps)}, false);
    EXPECT_NEAR(r.hi, best, 0.6) << bits << " bits";
    EXPECT_FLOAT_EQ(r.lo, 0.0f);
  }
  // Without the outlier there is nothing worth clipping at 8 bits.
  std::vector<float> bulk = bulk_with_outlier();
  bulk.pop_back();
  EXPECT_GT(mse_range(stats_of(bulk), {0, 255}, false).hi, 0.97f);
}

TEST(RangeMethods, EntropyClipsAnOutlier) {
  const ActivationStats s = stats_of(bulk_with_outlier());
  // 4-bit codes (16 levels): thresholds from 16 bins (0.78) up; the KL divergence is smallest
  // once the bulk's ~21 bins are all inside, far below the outlier.
  const RealRange r = entropy_range(s, 16);
  EXPECT_GT(r.hi, 0.95f);
  EXPECT_LT(r.hi, 2.0f);
  // Symmetric data keeps symmetric thresholds, cut to the data's own range.
  std::vector<float> sym = bulk_with_outlier();
  for (int i = 0; i < 10000; ++i) sym.push_back(-(i + 0.5f) / 20000.0f);
  const RealRange rs = entropy_range(stats_of(sym), 8);
  EXPECT_FLOAT_EQ(rs.lo, -9999.5f / 20000.0f);  // the data's minimum: the threshold is beyond it
  EXPECT_LT(rs.hi, 2.0f);
}

TEST(RangeMethods, IntegerPixelsStayExactAtEightBits) {
  std::vector<float> pixels;
  for (int i = 0; i < 5000; ++i) pixels.push_back(static_cast<float>(i % 256));
  const ActivationStats s = stats_of(pixels);
  for (auto m : {CalibrationMethod::percentile, CalibrationMethod::entropy, CalibrationMethod::mse}) {
    RangeOptions o;
    o.method = m;
    o.codes = {0, 255};
    const RealRange r = choose_range(s, o);
    EXPECT_FLOAT_EQ(r.lo, 0.0f) << calibration_method_name(m);
    EXPECT_FLOAT_EQ(r.hi, 255.0f) << calibration_method_name(m);
  }
}

TEST(RangeMethods, MethodNames) {
  EXPECT_EQ(parse_calibration_method("entropy"), CalibrationMethod::entropy);
  try {
    parse_calibration_method("kl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown calibration method 'kl'"), std::string::npos);
  }
}

TEST(ActivationStats, HistogramCountsEveryValueAndFoldsAbsoluteValues) {
  const ActivationStats s = stats_of({-2.0f, -0.3f, 0.0f, 0.0f, 0.3f, 1.0f, 2.0f});
  EXPECT_EQ(s.histogram_total(), 7u);
  EXPECT_EQ(s.zeros, 2u);
  const auto abs_hist = absolute_histogram(s);
  uint64_t total = 0;
  for (auto c : abs_hist) total += c;
  EXPECT_EQ(total, 5u);  // exact zeros are left out
  // |-0.3| and |0.3| land in the same bin of the folded histogram.
  EXPECT_EQ(abs_hist[static_cast<size_t>(0.3 / s.bin_width())], 2u);
}

}  // namespace
}  // namespace qplay::quantize
