// compare_modes (simulate against integer mode per layer): on the shipped uint8 model over 200
// images, and on a pair of caches whose codes differ by known amounts, checked against counts and
// an SQNR computed here in double from the dequantized codes.
#include "analysis/mode_compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "analysis/analysis_test_models.h"
#include "analysis/layers.h"
#include "analysis/quant_grid.h"
#include "graph/quant_params.h"

namespace qplay {
namespace {

using testing::kPerTensor;
using testing::shipped_model;

BaseCache cache_of(integer::RunMode mode, int64_t limit) {
  ReevalOptions o;
  o.limit = limit;
  o.mode = mode;
  return capture_base(shipped_model(kPerTensor), testing::test_sample(), o);
}

TEST(CompareModes, ShippedModelAgreesClosely) {
  const BaseCache s = cache_of(integer::RunMode::simulate, 200), i = cache_of(integer::RunMode::integer, 200);
  const ModeComparison c = compare_modes(s, i);
  EXPECT_EQ(c.images, 200);
  EXPECT_DOUBLE_EQ(c.simulate_accuracy, base_result(s).accuracy());
  EXPECT_DOUBLE_EQ(c.integer_accuracy, base_result(i).accuracy());
  EXPECT_GE(c.top1_agreement, 199);  // docs/quantization.md, section 8: 9999 of 10,000 on the full set
  // Every conv and Add of ResNet-8 has output codes in both caches.
  ASSERT_GE(c.layers.size(), 12u);
  EXPECT_EQ(c.layers.front().layer, "conv2d");
  for (const auto& l : c.layers) {
    SCOPED_TRACE(l.layer);
    EXPECT_GT(l.codes, 0);
    EXPECT_LT(l.differing, l.codes / 100);  // the two arithmetics round differently, rarely
    EXPECT_LE(l.max_code_difference, 8);
    EXPECT_GT(l.error.sqnr_db, 30.0);
  }
  // The wrong pairing is refused.
  EXPECT_THROW(compare_modes(i, s), Error);
  EXPECT_THROW(compare_modes(s, cache_of(integer::RunMode::integer, 100)), Error);
}

TEST(CompareModes, CountsAndSqnrOfKnownDifferences) {
  const BaseCache s = cache_of(integer::RunMode::simulate, 100);
  BaseCache i = s;  // the "integer" run: simulate's codes with known changes
  i.options.mode = integer::RunMode::integer;
  const Graph& g = *s.base;
  const auto params = list_quant_params(g);
  const auto layers = group_layers(g, params);
  const auto conv = std::find_if(layers.begin(), layers.end(), [](const Layer& l) { return l.name == "conv2d_3"; });
  ASSERT_NE(conv, layers.end());
  const QuantGrid grid = quant_grid(*find_quant_param(params, conv->output_params));
  // Change 3 codes of the first batch by +1, +2, -3 (away from the grid's ends).
  Tensor& codes = i.batches[0].at(conv->output_codes);
  int changed = 0;
  const int deltas[] = {1, 2, -3};
  for (size_t k = 0; k < codes.bytes.size() && changed < 3; ++k)
    if (codes.bytes[k] > 10 && codes.bytes[k] < 240)
      codes.bytes[k] = static_cast<uint8_t>(codes.bytes[k] + deltas[changed++]);
  ASSERT_EQ(changed, 3);
  // One image's top class moves.
  const int64_t classes = s.classes;
  float* row = i.outputs.data();
  const int64_t top = std::max_element(row, row + classes) - row;
  row[(top + 1) % classes] = row[top] + 1.0f;

  const ModeComparison c = compare_modes(s, i);
  EXPECT_EQ(c.top1_agreement, 99);
  EXPECT_FLOAT_EQ(static_cast<float>(c.max_output_difference),
                  std::fabs(row[(top + 1) % classes] - s.outputs[(top + 1) % classes]));
  for (const auto& l : c.layers) {
    SCOPED_TRACE(l.layer);
    if (l.layer != "conv2d_3") {
      EXPECT_EQ(l.differing, 0);
      EXPECT_TRUE(std::isinf(l.error.sqnr_db));
      continue;
    }
    EXPECT_EQ(l.differing, 3);
    EXPECT_EQ(l.max_code_difference, 3);
    // Pooled SQNR by hand: ||x|| over all images of the simulate values, the error is 1, 2 and 3 steps.
    double x2 = 0.0;
    for (const auto& batch : s.batches) {
      const Tensor x = dequantize(batch.at(conv->output_codes), grid);
      for (int64_t k = 0; k < x.numel(); ++k) x2 += double{x.data<float>()[k]} * x.data<float>()[k];
    }
    const double step = grid.scales[0], err2 = (1.0 + 4.0 + 9.0) * step * step;
    EXPECT_NEAR(l.error.sqnr_db, 10.0 * std::log10(x2 / err2), 1e-3);
  }
}

}  // namespace
}  // namespace qplay
