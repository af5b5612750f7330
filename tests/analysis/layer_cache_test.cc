// Half-float storage (hand-computed codes, F16C against the portable loop) and whole-data-set
// comparison from caches against compare_models(), which runs both models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "analysis/analysis_test_models.h"
#include "analysis/edits.h"
#include "analysis/half_float.h"
#include "analysis/layer_cache.h"
#include "analysis/sample_sums.h"

namespace qplay {
namespace {

using testing::test_sample;
using testing::kFp32;
using testing::kPerChannel;
using testing::kPerTensor;
using testing::shipped_model;

TEST(HalfFloat, HandComputedCodes) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);      // largest half
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);      // below the midpoint to 2^16
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);      // the midpoint rounds to even: infinity
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0: even
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -25)), 0x0002);  // tie between 1 and 2: even
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);       // tie: stays even
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);   // tie: up to even
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(float_to_half(std::nanf("")) & 0x7c00, 0x7c00);
  EXPECT_NE(float_to_half(std::nanf("")) & 0x03ff, 0);
  EXPECT_EQ(half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(half_to_float(0xfc00)) && half_to_float(0xfc00) < 0);
}

TEST(HalfFloat, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), h) << std::hex << h;
  }
}

TEST(HalfFloat, FastPathGivesThePortableBits) {
  std::mt19937 rng(7);
  std::vector<float> in(4099);
  for (size_t i = 0; i < in.size(); ++i) {
    uint32_t bits = rng();
    if (i % 3 == 0) bits = (bits & 0x807fffffu) | ((100u + bits % 50u) << 23);  // mostly within the half range
    std::memcpy(&in[i], &bits, 4);
  }
  std::vector<uint16_t> fast(in.size(), 0xaaaa), portable(in.size());
  floats_to_halves(in.data(), fast.data(), in.size());
  floats_to_halves_portable(in.data(), portable.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (!std::isnan(in[i])) {
      ASSERT_EQ(fast[i], portable[i]) << in[i];
    }
  }
  std::vector<float> back_fast(in.size(), -1.0f), back_portable(in.size());
  halves_to_floats(portable.data(), back_fast.data(), in.size());
  halves_to_floats_portable(portable.data(), back_portable.data(), in.size());
  EXPECT_EQ(std::memcmp(back_fast.data(), back_portable.data(), in.size() * 4), 0);
}

// The fused kernel (AVX2 when present) sums what dequantize + add_sample sum, over lengths
// below, at and above the vector width and the 256-element block, signed and unsigned codes,
// and counts the clipped x as the definition does (x outside the grid's range widened by half
// a step, compared in double), values exactly at and just past both bounds included.
TEST(SampleSums, FastKernelMatchesDequantizeAndAddSample) {
  std::mt19937 rng(11);
  // The grids below keep about [-4.3, 5.1] (uint8) and [-4.6, 4.8] (int8): some x fall outside.
  std::uniform_real_distribution<float> value(-6.0f, 7.0f);
  const float inf = std::numeric_limits<float>::infinity();
  int64_t clipped_seen = 0;
  for (int64_t n : {1, 7, 8, 9, 255, 256, 257, 1000, 16384}) {
    for (bool is_signed : {false, true}) {
      SCOPED_TRACE(std::to_string(n) + (is_signed ? " int8" : " uint8"));
      std::vector<float> x(n), y(n);
      std::vector<uint8_t> codes(n);
      const float scale = 0.037f;
      const int32_t zp = is_signed ? -5 : 117;
      const int64_t qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
      const ClipBounds clip = clip_bounds(scale, zp, qmin, qmax);
      for (int64_t i = 0; i < n; ++i) {
        x[i] = value(rng);
        codes[i] = static_cast<uint8_t>(rng());
        const int32_t q = is_signed ? static_cast<int8_t>(codes[i]) : codes[i];
        y[i] = static_cast<float>(q - zp) * scale;
      }
      // Values on and just past the bounds, in the vector part and in the tail.
      const float edges[] = {clip.below, std::nextafter(clip.below, -inf), clip.above, std::nextafter(clip.above, inf)};
      for (int e = 0; e < 4; ++e) {
        if (e < n) x[e] = edges[e];
        if (n - 1 - e >= 4) x[n - 1 - e] = edges[e];
      }
      const double lo = double(scale) * (qmin - zp - 0.5), hi = double(scale) * (qmax - zp + 0.5);
      int64_t below = 0, above = 0;
      for (float v : x) {
        below += double(v) < lo;
        above += double(v) > hi;
      }
      clipped_seen += below + above;

      ErrorAccumulator reference, fast, portable;
      add_sample(reference, x.data(), y.data(), n);
      const SampleSums fast_sums = sample_sums_codes(x.data(), codes.data(), is_signed, n, scale, zp, clip);
      const SampleSums portable_sums = sample_sums_codes_portable(x.data(), codes.data(), is_signed, n, scale, zp, clip);
      for (const SampleSums* ss : {&fast_sums, &portable_sums}) {
        EXPECT_EQ(ss->clipping.values, n);
        EXPECT_EQ(ss->clipping.below, below);
        EXPECT_EQ(ss->clipping.above, above);
      }
      add_sample_sums(fast, fast_sums);
      add_sample_sums(portable, portable_sums);
      for (const ErrorAccumulator* a : {&fast, &portable}) {
        EXPECT_EQ(a->elements, n);
        EXPECT_NEAR(a->sum_x2, reference.sum_x2, 1e-6 * reference.sum_x2);
        EXPECT_NEAR(a->sum_y2, reference.sum_y2, 1e-6 * reference.sum_y2);
        EXPECT_NEAR(a->sum_xy, reference.sum_xy, 1e-6 * std::abs(reference.sum_x2 + reference.sum_y2));
        EXPECT_NEAR(a->sum_err2, reference.sum_err2, 1e-6 * reference.sum_err2);
        EXPECT_NEAR(a->max_abs_err, reference.max_abs_err, 1e-6 * reference.max_abs_err);
        EXPECT_NEAR(a->sum_sample_sqnr_db, reference.sum_sample_sqnr_db, 1e-4);
      }
    }
  }
  EXPECT_GT(clipped_seen, 1000);  // the counts were tested on something
}

// The cached comparison measures what compare_models measures by running both models: the
// same layers, the same code statistics and predictions, the error metrics equal up to the
// half-float storage of the FP32 side (well below 0.01 dB at these SQNRs).
void expect_same(const Comparison& streamed, const CachedComparison& cached) {
  ASSERT_TRUE(cached.uncached.empty()) << cached.uncached.front();
  ASSERT_EQ(streamed.layers.size(), cached.comparison.layers.size());
  for (size_t k = 0; k < streamed.layers.size(); ++k) {
    const LayerComparison& a = streamed.layers[k];
    const LayerComparison& b = cached.comparison.layers[k];
    SCOPED_TRACE(a.name);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.fp32_name, b.fp32_name);
    EXPECT_EQ(a.accumulated.elements, b.accumulated.elements);
    EXPECT_NEAR(a.accumulated.sqnr_db, b.accumulated.sqnr_db, 0.01);
    EXPECT_NEAR(a.accumulated.mean_sample_sqnr_db, b.accumulated.mean_sample_sqnr_db, 0.01);
    EXPECT_NEAR(a.accumulated.cosine, b.accumulated.cosine, 1e-5);
    EXPECT_NEAR(a.accumulated.mse, b.accumulated.mse, 1e-3 * a.accumulated.mse + 1e-9);
    EXPECT_EQ(a.has_codes, b.has_codes);
    EXPECT_EQ(a.codes.at_qmin, b.codes.at_qmin);
    EXPECT_EQ(a.codes.at_qmax, b.codes.at_qmax);
    EXPECT_EQ(a.codes.distinct, b.codes.distinct);
    // The cache keeps FP32 values as half floats: a value within 2^-11 (relative) of a clip bound
    // may land on the other side.
    EXPECT_EQ(a.has_clipping, b.has_clipping);
    EXPECT_EQ(a.clipping.values, b.clipping.values);
    EXPECT_NEAR(a.clipping.below, b.clipping.below, 1e-4 * a.clipping.values);
    EXPECT_NEAR(a.clipping.above, b.clipping.above, 1e-4 * a.clipping.values);
  }
  EXPECT_EQ(streamed.accuracy.fp32_predictions, cached.comparison.accuracy.fp32_predictions);
  EXPECT_EQ(streamed.accuracy.quantized_predictions, cached.comparison.accuracy.quantized_predictions);
  EXPECT_EQ(streamed.accuracy.differing_images, cached.comparison.accuracy.differing_images);
}

TEST(LayerCache, BaseModelMatchesStreamedComparison) {
  for (const char* model : {kPerTensor, kPerChannel}) {
    SCOPED_TRACE(model);
    ReevalOptions o;
    o.limit = 150;
    const auto fp32 = shipped_model(kFp32);
    const auto quantized = shipped_model(model);
    const Fp32LayerCache f = capture_fp32_layers(fp32, test_sample(), o);
    const BaseCache q = capture_base(quantized, test_sample(), o);
    EXPECT_EQ(f.images, 150);
    EXPECT_GT(f.bytes, 0u);
    CompareOptions c;
    c.limit = 150;
    c.isolated = false;
    expect_same(compare_models(fp32, quantized, test_sample(), c), compare_cached(f, q));
  }
}

// After edits at the first, a middle and the last layer, the cache plus the re-evaluated codes
// measure what a full comparison of the edited model measures.
TEST(LayerCache, EditedVersionMatchesStreamedComparison) {
  const auto fp32 = shipped_model(kFp32);
  const auto base = shipped_model(kPerTensor);
  ReevalOptions o;
  o.limit = 120;
  const Fp32LayerCache f = capture_fp32_layers(fp32, test_sample(), o);
  const BaseCache q = capture_base(base, test_sample(), o);
  const std::vector<std::vector<Edit>> cases = {
      {parse_set_edit("conv2d.weight_quantized.scale=0.0002")},
      {parse_bits_edit("activation_3=5")},
      {parse_set_edit("activation_6.scale=0.2")},
  };
  for (const auto& edits : cases) {
    SCOPED_TRACE(edit_str(edits[0]));
    const EditedGraph edited = apply_edits_tracked(*base, edits);
    const Reevaluation run = reevaluate(q, edited, nullptr, true);
    const CachedComparison cached = compare_cached(f, q, &edited, &run);
    CompareOptions c;
    c.limit = 120;
    c.isolated = false;
    const Comparison streamed = compare_models(fp32, std::make_shared<const Graph>(edited.graph), test_sample(), c);
    expect_same(streamed, cached);
    // The edit shows: some layer's error differs from the base model's.
    const CachedComparison before = compare_cached(f, q);
    bool changed = false;
    for (size_t k = 0; k < before.comparison.layers.size(); ++k)
      changed = changed || before.comparison.layers[k].accumulated.sqnr_db != cached.comparison.layers[k].accumulated.sqnr_db;
    EXPECT_TRUE(changed);
  }
}

// The first batch sizes the slots alone, the others fill them in parallel: uneven batches on two
// threads store the same halves and predictions as one batch on one thread.
TEST(LayerCache, Fp32CaptureDoesNotDependOnBatchesOrThreads) {
  ReevalOptions one, many;
  one.limit = many.limit = 23;
  one.batch = 23;
  one.threads = 1;
  many.batch = 4;  // 6 batches, the last of 3 images
  many.threads = 2;
  const auto fp32 = shipped_model(kFp32);
  const Fp32LayerCache a = capture_fp32_layers(fp32, test_sample(), one);
  const Fp32LayerCache b = capture_fp32_layers(fp32, test_sample(), many);
  ASSERT_EQ(a.values, b.values);
  EXPECT_EQ(a.elements, b.elements);
  EXPECT_EQ(a.elements.front(), 32 * 32 * 16);  // conv2d's output per image
  for (size_t k = 0; k < a.values.size(); ++k) EXPECT_TRUE(a.halves[k] == b.halves[k]) << a.values[k];
  EXPECT_EQ(a.predictions, b.predictions);
  EXPECT_EQ(std::count(b.predictions.begin(), b.predictions.end(), -1), 0);  // every image stored
  ReevalOptions zero = many;
  zero.batch = 0;
  EXPECT_THROW(capture_fp32_layers(fp32, test_sample(), zero), Error);
}

TEST(LayerCache, MismatchedCachesAreRefused) {
  ReevalOptions a, b;
  a.limit = 20;
  b.limit = 30;
  const Fp32LayerCache f = capture_fp32_layers(shipped_model(kFp32), test_sample(), a);
  const BaseCache q = capture_base(shipped_model(kPerTensor), test_sample(), b);
  try {
    compare_cached(f, q);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("20 images"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qplay
