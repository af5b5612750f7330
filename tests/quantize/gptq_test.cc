// Hessian-guided (GPTQ) rounding on small matrices whose answers are known.
#include "quantize/gptq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace qplay::quantize {
namespace {

// (w_q - w)^T H (w_q - w) summed over rows: the layer output error the rounding minimises.
double output_error(const std::vector<double>& wq, const std::vector<double>& w, const std::vector<double>& h,
                    int64_t rows, int64_t k) {
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        total += (wq[r * k + i] - w[r * k + i]) * h[i * k + j] * (wq[r * k + j] - w[r * k + j]);
  return total;
}

TEST(GptqRounding, UncorrelatedInputsGiveNearestRounding) {
  // H = I: no column can compensate another, so the best rounding is to nearest.
  const std::vector<double> w = {0.26, -0.74, 0.49, 1.1, -0.05, 0.33};
  std::vector<double> h(9, 0.0);
  for (int i = 0; i < 3; ++i) h[i * 3 + i] = 1.0;
  std::vector<double> wq = w;
  const ScaleZeroPoint p{0.25f, 0};
  gptq_round_rows(wq, 2, 3, h, {p}, {-7, 7}, 0.0);
  const std::vector<double> nearest = {0.25, -0.75, 0.5, 1.0, 0.0, 0.25};
  for (size_t i = 0; i < w.size(); ++i) EXPECT_DOUBLE_EQ(wq[i], nearest[i]) << i;
}

TEST(GptqRounding, CorrelatedInputsBeatNearestRoundingAndStayOnTheGrid) {
  // Strongly correlated inputs (x = common + small noise): errors of one column can be
  // cancelled by the next ones.
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  const int64_t k = 16, rows = 8, samples = 2000;
  std::vector<double> h(k * k, 0.0);
  for (int64_t s = 0; s < samples; ++s) {
    const double common = normal(rng);
    std::vector<double> x(k);
    for (auto& v : x) v = common + 0.3 * normal(rng);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) h[i * k + j] += x[i] * x[j] / samples;
  }
  std::vector<double> w(rows * k);
  for (auto& v : w) v = 0.5 * normal(rng);
  const ScaleZeroPoint p{0.2f, 0};
  const IntRange codes{-7, 7};
  std::vector<double> nearest = w, rounded = w;
  for (auto& v : nearest) v = dequantize_value(quantize_value(static_cast<float>(v), p, codes), p);
  gptq_round_rows(rounded, rows, k, h, {p}, codes, 0.01);
  for (double v : rounded) {
    const double q = v / 0.2;
    EXPECT_NEAR(q, std::nearbyint(q), 1e-5);  // on the grid
    EXPECT_LE(std::fabs(q), 7.0 + 1e-9);      // within the codes
  }
  EXPECT_LT(output_error(rounded, w, h, rows, k), 0.5 * output_error(nearest, w, h, rows, k));
}

}  // namespace
}  // namespace qplay::quantize
