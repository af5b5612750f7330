// The integer kernels: fixed-point arithmetic against exact rational rounding, and every fast
// integer kernel against its plain-loop reference, bit for bit, on random shapes (tile edges,
// odd channel counts, strides, dilation, padding), extreme zero points (-128, 127, 0, 255),
// tiny and large multipliers, fused Relu, with outputs pre-filled with garbage so unwritten
// elements show up. Both the AVX2 and the portable kernels are checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "runtime/cpu_features.h"
#include "runtime/integer/fixed_point.h"
#include "runtime/integer/params.h"
#include "runtime/kernels/fast/integer_providers.h"
#include "runtime/kernels/fast/qconv_onednn.h"
#include "runtime/kernels/fast/qgemm_s16.h"
#include "runtime/kernels/fast/requantize_avx2.h"
#include "support/kernel_test_helpers.h"

namespace qplay {
namespace {

using integer::FixedPointMultiplier;

// ---- fixed point -------------------------------------------------------------------------

// round(x * m0 / 2^shift), ties toward +infinity, computed with 128-bit integers.
int64_t exact_rounding(int32_t x, FixedPointMultiplier m) {
  const __int128 p = static_cast<__int128>(x) * m.m0;
  const __int128 d = static_cast<__int128>(1) << m.shift;
  __int128 q = (p + d / 2) / d;
  if ((p + d / 2) % d != 0 && (p + d / 2) < 0) --q;  // floor, not truncation
  return static_cast<int64_t>(q);
}

TEST(FixedPoint, QuantizeMultiplierKeepsA31BitMantissa) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> exponent(-40, 25);
  for (int i = 0; i < 20000; ++i) {
    const double real = std::pow(2.0, exponent(rng));
    const FixedPointMultiplier m = integer::quantize_multiplier(real);
    ASSERT_GE(m.shift, 10);
    ASSERT_LE(m.shift, 62);
    if (m.m0 == 0) {
      EXPECT_LT(real, 0x1p-32) << real;  // rounds to 0 for every int32 input
    } else if (real >= 0x1p20) {
      EXPECT_EQ(integer::multiplier_value(m), 0x1p20) << real;
    } else {
      ASSERT_GE(m.m0, 1 << 30) << real;
      EXPECT_NEAR(integer::multiplier_value(m) / real, 1.0, 0x1p-31) << real;
    }
  }
  EXPECT_EQ(integer::multiplier_value(integer::quantize_multiplier(0.5)), 0.5);
  EXPECT_EQ(integer::multiplier_value(integer::quantize_multiplier(1.0)), 1.0);
}

TEST(FixedPoint, OneRoundingTiesTowardPlusInfinity) {
  const FixedPointMultiplier half = integer::quantize_multiplier(0.5);
  EXPECT_EQ(integer::multiply_by_fixed_point(1, half), 1);                                  // 0.5 -> 1
  EXPECT_EQ(integer::multiply_by_fixed_point(-1, half), 0);                                 // -0.5 -> 0
  EXPECT_EQ(integer::multiply_by_fixed_point(3, half), 2);                                  // 1.5 -> 2
  EXPECT_EQ(integer::multiply_by_fixed_point(-3, half), -1);                                // -1.5 -> -1
  EXPECT_EQ(integer::multiply_by_fixed_point(5, integer::quantize_multiplier(0.25)), 1);    // 1.25 -> 1
  EXPECT_EQ(integer::multiply_by_fixed_point(-7, integer::quantize_multiplier(0.25)), -2);  // -1.75 -> -2
  // Eq. (8) with a fused Relu: negative results clamp at the zero point.
  EXPECT_EQ(integer::requantize(-100, half, 10, 10, 255), 10);
  EXPECT_EQ(integer::requantize(100000, half, 10, 0, 255), 255);
}

TEST(FixedPoint, MatchesExactRationalRounding) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<double> exponent(-36, 22);
  std::uniform_int_distribution<int32_t> any(INT32_MIN + 1, INT32_MAX);
  for (int i = 0; i < 200000; ++i) {
    const FixedPointMultiplier m = integer::quantize_multiplier(std::pow(2.0, exponent(rng)));
    const int32_t x = i % 3 == 0 ? any(rng) : any(rng) >> (i % 31);
    ASSERT_EQ(integer::multiply_by_fixed_point(x, m), exact_rounding(x, m)) << x << " * " << m.m0 << " / 2^" << m.shift;
  }
}

// The AVX2 form (2^62 offset, logical shifts, low 32 bits) against the int64 scalar form on the
// values where it is specified: any |acc| <= INT32_MAX for M < 1, and M >= 1 up to saturation.
TEST(FixedPoint, VectorFormMatchesScalar) {
  if (!fast::select_qkernels().avx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> exponent(-36, 22);
  std::uniform_int_distribution<int32_t> any(INT32_MIN + 1, INT32_MAX);
  const int32_t edges[] = {0, 1, -1, 2, -2, 1023, -1024, 1025, -1025, INT32_MAX, INT32_MIN + 1, 1 << 30, -(1 << 30)};
  for (int i = 0; i < 20000; ++i) {
    const FixedPointMultiplier m = integer::quantize_multiplier(std::pow(2.0, exponent(rng)));
    const fast::RowRequant row = fast::make_row_requant(m);
    alignas(32) int32_t acc[16];
    for (int k = 0; k < 16; ++k) acc[k] = k < 13 && i % 2 == 0 ? edges[k] : any(rng) >> (rng() % 31);
    const fast::OutputClamp clamp{static_cast<int32_t>(rng() % 256), 0, 255, false};
    fast::TileDestination dst;
    uint8_t vec[16], scalar[16];
    dst.rows = 1;
    dst.group_out[1] = 8;
    dst.group_count[0] = dst.group_count[1] = 8;
    dst.out = vec;
    fast::store_tile_avx2(acc, &row, clamp, dst);
    dst.out = scalar;
    fast::store_tile_portable(acc, &row, clamp, dst);
    ASSERT_EQ(0, std::memcmp(vec, scalar, 16)) << "m0 " << m.m0 << " shift " << m.shift;
  }
}

// Eq. (7a), QAdd's inputs in 32-bit arithmetic: every v in [-511, 511] against the exact rational
// rounding of (v * 2^20) * M, at every shift it accepts, with extreme and random mantissas.
__attribute__((target("avx2"))) void multiply_add_input_8(const int32_t* v, const integer::AddInputMultiplier& a,
                                                          int32_t* out) {
  const fast::AddInputVectors vectors = fast::broadcast_add_input(a);
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), fast::multiply_add_input_avx2(x, vectors));
}

TEST(FixedPoint, AddInputFormMatchesExactRounding) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int32_t> mantissa(1 << 30, INT32_MAX);
  const bool avx2 = fast::select_qkernels().avx2;
  int checked = 0;
  for (int32_t shift = 10; shift <= 62; ++shift) {
    std::vector<int32_t> mantissas = {1 << 30, INT32_MAX, (1 << 30) + 1, (1 << 30) | 0xFFFF, INT32_MAX - 0xFFFF};
    for (int i = 0; i < 40; ++i) mantissas.push_back(mantissa(rng));
    if (shift == 31) mantissas.push_back(0);  // quantize_multiplier's form of M < 2^-32
    for (const int32_t m0 : mantissas) {
      const FixedPointMultiplier m{m0, shift};
      integer::AddInputMultiplier a;
      if (!integer::add_input_multiplier(m, &a)) {
        EXPECT_LT(shift, 31) << "refused shift " << shift;
        continue;
      }
      EXPECT_GE(shift, 31);
      alignas(32) int32_t lanes[8], vec[8];
      for (int32_t v = -511; v <= 511; ++v) {
        const int64_t want = exact_rounding(v * (1 << 20), m);
        ASSERT_EQ(integer::multiply_add_input(v, a), want) << "v " << v << " m0 " << m0 << " shift " << shift;
        lanes[(v + 511) % 8] = v;
        if ((v + 511) % 8 == 7 && avx2) {
          multiply_add_input_8(lanes, a, vec);
          for (int k = 0; k < 8; ++k)
            ASSERT_EQ(vec[k], exact_rounding(lanes[k] * (1 << 20), m)) << "AVX2, v " << lanes[k] << " m0 " << m0;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1000000);
}

// ---- tensors and graphs for the kernel tests -----------------------------------------------

struct Quant {
  DType type;
  int32_t zero_point;
};

Tensor random_8bit(DType t, Shape shape, std::mt19937& rng) {
  Tensor x(t, std::move(shape));
  for (auto& b : x.bytes) b = static_cast<uint8_t>(rng());
  return x;
}

Tensor zero_point_tensor(DType t, const std::vector<int32_t>& values, bool vector) {
  Tensor z(t, vector ? Shape{static_cast<int64_t>(values.size())} : Shape{});
  for (size_t i = 0; i < values.size(); ++i)
    z.bytes[i] =
        t == DType::u8 ? static_cast<uint8_t>(values[i]) : static_cast<uint8_t>(static_cast<int8_t>(values[i]));
  return z;
}

Tensor scale_tensor(const std::vector<float>& values, bool vector) {
  return make_f32(vector ? Shape{static_cast<int64_t>(values.size())} : Shape{}, values);
}

Tensor bias_tensor(int64_t n, std::mt19937& rng, int32_t magnitude) {
  Tensor b(DType::i32, {n});
  std::uniform_int_distribution<int32_t> d(-magnitude, magnitude);
  for (int64_t i = 0; i < n; ++i) b.data<int32_t>()[i] = d(rng);
  return b;
}

int32_t extreme_zero_point(DType t, int pick, std::mt19937& rng) {
  const int32_t u8[] = {0, 255, 128, 1, 254}, i8[] = {-128, 127, 0, -1, 100};
  if (pick >= 5) return t == DType::u8 ? static_cast<int32_t>(rng() % 256) : static_cast<int32_t>(rng() % 256) - 128;
  return t == DType::u8 ? u8[pick] : i8[pick];
}

using testing::int_attr;
using testing::ints_attr;

// Requantization multipliers from tiny to large (M >= 1 saturates all but tiny accumulators).
const double kMultipliers[] = {3e-11, 2e-6, 1e-4, 0.0046, 0.07, 0.5, 0.9999, 1.0, 1.7, 300.0, 3e6, 0.02};

// Runs the reference and the fast kernel of `node` (whose constant inputs are the graph's
// initializers) on `data` inputs; the fast output starts as garbage of the reference's size.
void expect_fast_matches_reference(const Node& node, const Graph& graph, const std::map<std::string, Tensor>& data,
                                   const PreparedKernel& fast_kernel, const std::string& what) {
  ASSERT_TRUE(fast_kernel) << what << ": the fast provider declined the node";
  Inputs in;
  for (const auto& name : node.inputs) {
    if (name.empty())
      in.push_back(nullptr);
    else if (data.count(name))
      in.push_back(&data.at(name));
    else
      in.push_back(graph.initializer(name));
  }
  std::vector<Tensor> want(1), got(1);
  find_op(node.op_type, node.domain)->reference(node, in, want);
  got[0] = want[0];
  for (size_t i = 0; i < got[0].bytes.size(); ++i) got[0].bytes[i] = static_cast<uint8_t>(0xA5 ^ (i * 7));
  fast_kernel(in, got);
  ASSERT_EQ(got[0].dtype, want[0].dtype) << what;
  ASSERT_EQ(got[0].shape, want[0].shape) << what;
  for (size_t i = 0; i < want[0].bytes.size(); ++i)
    ASSERT_EQ(got[0].bytes[i], want[0].bytes[i])
        << what << ": first difference at byte " << i << " of " << want[0].bytes.size();
}

// Runs `check` with the CPU's best kernels, with the AVX2 ones where VNNI was the best, and with the portable ones.
template <typename Check>
void for_each_isa(Check check) {
  check("best");
  if (has_avx512_vnni()) {
    fast::force_avx2_qkernels(true);
    check("avx2");
    fast::force_avx2_qkernels(false);
  }
  fast::force_portable_qkernels(true);
  check("portable");
  fast::force_portable_qkernels(false);
}

// ---- QConv ---------------------------------------------------------------------------------

struct ConvCase {
  int64_t n, c, h, w, m, kh, kw, stride_h, stride_w, dilation;
  std::vector<int64_t> pads;
  bool bias;
};

// QConv of x (x_scale, x_zp) and w (w_scale, w_zp) [+ b] into `out`, whose parameters are `out`_scale and `out`_zp,
// with the case's geometry.
Node qconv_node(const ConvCase& cc, bool relu, const std::string& out) {
  Node node{"qconv",
            "QConv",
            integer::kDomain,
            {"x", "x_scale", "x_zp", "w", "w_scale", "w_zp", out + "_scale", out + "_zp", cc.bias ? "b" : ""},
            {out},
            {}};
  node.attrs["pads"] = ints_attr(cc.pads);
  node.attrs["strides"] = ints_attr({cc.stride_h, cc.stride_w});
  node.attrs["dilations"] = ints_attr({cc.dilation, cc.dilation});
  node.attrs["relu"] = int_attr(relu);
  return node;
}

TEST(IntegerKernels, QConvFastMatchesReferenceBitForBit) {
  std::mt19937 rng(11);
  std::vector<ConvCase> cases = {
      {2, 3, 32, 32, 16, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},   // ResNet-8 stem (odd channel count)
      {1, 16, 32, 32, 32, 3, 3, 2, 2, 1, {0, 0, 1, 1}, true},  // stride 2, TF 'same' padding
      {2, 16, 32, 32, 32, 1, 1, 2, 2, 1, {0, 0, 0, 0}, true},  // 1x1 projection, stride 2
      {1, 64, 8, 8, 64, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},    // 8-wide rows (two rows per tile)
      {3, 5, 7, 9, 7, 3, 2, 1, 1, 1, {2, 1, 0, 3}, false},     // odd everything, asymmetric pads
      {1, 4, 11, 13, 9, 3, 3, 3, 3, 2, {1, 2, 2, 1}, true},    // dilation + stride 3 (portable fill)
      {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true},      // degenerate
      {2, 33, 9, 17, 65, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},   // channels past tile edges, 17-wide rows
      {1, 6, 20, 23, 5, 5, 5, 2, 1, 1, {2, 2, 2, 2}, true},    // different strides per axis
      {1, 7, 12, 40, 3, 2, 4, 1, 2, 1, {0, 3, 1, 0}, false},   // wide rows, stride 2 on w only
      // Winograd (3x3, stride 1, padding 1, even height, width % 8 == 0): partial last block,
      // rows past the tile edge, odd channel counts, blocks spanning tile rows, one unit.
      {2, 33, 6, 16, 21, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},
      {1, 7, 10, 24, 5, 3, 3, 1, 1, 1, {1, 1, 1, 1}, false},
      {3, 16, 2, 8, 16, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},
      {1, 918, 4, 8, 3, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},  // past winograd_s16_exact: direct
  };
  for (int r = 0; r < 10; ++r) {
    std::uniform_int_distribution<int64_t> d(1, 12), s(1, 3), p(0, 2);
    cases.push_back({d(rng) % 3 + 1,
                     d(rng),
                     d(rng) + 4,
                     d(rng) + 4,
                     d(rng) * 2 + r % 2,
                     s(rng),
                     s(rng),
                     s(rng),
                     s(rng),
                     s(rng) % 2 + 1,
                     {p(rng), p(rng), p(rng), p(rng)},
                     r % 2 == 0});
  }
  const DType types[] = {DType::u8, DType::i8};
  int index = 0;
  for (const auto& cc : cases) {
    for (int variant = 0; variant < 3; ++variant, ++index) {
      const DType xt = types[index % 2], wt = types[(index / 2) % 2], yt = types[(index / 4) % 2];
      const bool per_channel = variant != 1, relu = variant == 2;
      std::ostringstream what;
      what << "n" << cc.n << " c" << cc.c << " " << cc.h << "x" << cc.w << " m" << cc.m << " k" << cc.kh << "x" << cc.kw
           << " s" << cc.stride_h << "," << cc.stride_w << " d" << cc.dilation << " x:" << dtype_name(xt)
           << " w:" << dtype_name(wt) << " y:" << dtype_name(yt) << (per_channel ? " per-channel" : " per-tensor")
           << (relu ? " relu" : "");
      SCOPED_TRACE(what.str());

      Graph g;
      const int32_t x_zp = extreme_zero_point(xt, index % 7, rng), y_zp = extreme_zero_point(yt, (index + 3) % 7, rng);
      std::vector<int32_t> w_zp(per_channel ? cc.m : 1);
      std::vector<float> w_scale(w_zp.size());
      const float x_scale = 0.02f, y_scale = 0.05f;
      for (size_t i = 0; i < w_zp.size(); ++i) {
        w_zp[i] = extreme_zero_point(wt, static_cast<int>((i + index) % 7), rng);
        w_scale[i] = static_cast<float>(kMultipliers[(i + index) % 12] * y_scale / x_scale);
      }
      g.initializers["x_scale"] = make_scalar_f32(x_scale);
      g.initializers["x_zp"] = zero_point_tensor(xt, {x_zp}, false);
      g.initializers["w"] = random_8bit(wt, {cc.m, cc.c, cc.kh, cc.kw}, rng);
      g.initializers["w_scale"] = scale_tensor(w_scale, per_channel);
      g.initializers["w_zp"] = zero_point_tensor(wt, w_zp, per_channel);
      g.initializers["y_scale"] = make_scalar_f32(y_scale);
      g.initializers["y_zp"] = zero_point_tensor(yt, {y_zp}, false);
      if (cc.bias) g.initializers["b"] = bias_tensor(cc.m, rng, 1 << 20);
      const Node node = qconv_node(cc, relu, "y");
      std::map<std::string, Tensor> data;
      data["x"] = random_8bit(xt, {cc.n, cc.c, cc.h, cc.w}, rng);
      for_each_isa(
          [&](const char* isa) { expect_fast_matches_reference(node, g, data, fast::prepare_qconv(node, g), isa); });
    }
  }
}

// oneDNN's sums (AVX-512 VNNI CPUs): int8 weights with zero point 0 and channel counts multiples of
// 16, at ResNet-8's shapes and odd ones (rows not a multiple of 8 or 16, asymmetric pads, 5x5,
// strides per axis), uint8 and int8 activations with extreme zero points (padding holds them).
// Each runs with oneDNN on and off, and with AVX2 forced; every run must equal the reference.
TEST(IntegerKernels, QConvByOnednnSumsMatchesReferenceBitForBit) {
  std::mt19937 rng(13);
  const std::vector<ConvCase> cases = {
      {2, 16, 32, 32, 16, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},   // ResNet-8 stage 1
      {1, 16, 32, 32, 32, 3, 3, 2, 2, 1, {0, 0, 1, 1}, true},   // stride 2, TF 'same' padding
      {3, 32, 16, 16, 64, 1, 1, 2, 2, 1, {0, 0, 0, 0}, false},  // 1x1 projection, stride 2
      {1, 64, 8, 8, 64, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},     // stage 3
      {2, 16, 7, 9, 16, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},     // rows of 9: a 1-pixel tail
      {1, 32, 11, 21, 48, 5, 5, 1, 2, 1, {2, 0, 1, 3}, true},   // 5x5, stride 2 on w, asymmetric pads
      {1, 16, 6, 24, 16, 3, 3, 2, 1, 1, {1, 1, 0, 0}, false},   // stride 2 on h, rows of 24
  };
  if (fast::onednn_qconv_available()) {
    const std::vector<int8_t> w(16 * 16 * 9, 1);
    ASSERT_TRUE(fast::OnednnConvSums::create({16, 16, 3, 3, false}, w.data())) << "oneDNN should serve this";
    ASSERT_FALSE(fast::OnednnConvSums::create({16, 3, 3, 3, false}, w.data())) << "3 channels";
  }
  int index = 0;
  for (const auto& cc : cases) {
    for (const DType xt : {DType::u8, DType::i8}) {
      for (const bool per_channel : {false, true}) {
        ++index;
        std::ostringstream what;
        what << "n" << cc.n << " c" << cc.c << " " << cc.h << "x" << cc.w << " m" << cc.m << " k" << cc.kh << "x"
             << cc.kw << " s" << cc.stride_h << "," << cc.stride_w << " x:" << dtype_name(xt)
             << (per_channel ? " per-channel" : " per-tensor");
        SCOPED_TRACE(what.str());
        Graph g;
        const DType yt = index % 2 ? DType::u8 : DType::i8;
        std::vector<float> w_scale(per_channel ? cc.m : 1);
        for (size_t i = 0; i < w_scale.size(); ++i)
          w_scale[i] = static_cast<float>(kMultipliers[(i + index) % 12] * 0.05 / 0.02);
        g.initializers["x_scale"] = make_scalar_f32(0.02f);
        g.initializers["x_zp"] = zero_point_tensor(xt, {extreme_zero_point(xt, index % 7, rng)}, false);
        g.initializers["w"] = random_8bit(DType::i8, {cc.m, cc.c, cc.kh, cc.kw}, rng);
        g.initializers["w_scale"] = scale_tensor(w_scale, per_channel);
        g.initializers["w_zp"] = zero_point_tensor(DType::i8, std::vector<int32_t>(w_scale.size(), 0), per_channel);
        g.initializers["y_scale"] = make_scalar_f32(0.05f);
        g.initializers["y_zp"] = zero_point_tensor(yt, {extreme_zero_point(yt, (index + 3) % 7, rng)}, false);
        if (cc.bias) g.initializers["b"] = bias_tensor(cc.m, rng, 1 << 20);
        const Node node = qconv_node(cc, index % 3 == 0, "y");
        std::map<std::string, Tensor> data;
        data["x"] = random_8bit(xt, {cc.n, cc.c, cc.h, cc.w}, rng);
        for (const bool onednn : {true, false}) {
          fast::set_onednn_qconv_enabled(onednn);
          for_each_isa([&](const char* isa) {
            expect_fast_matches_reference(node, g, data, fast::prepare_qconv(node, g),
                                          std::string(isa) + (onednn ? " onednn" : " own kernels"));
          });
        }
        fast::set_onednn_qconv_enabled(true);
      }
    }
  }
}

// ---- QGemm ---------------------------------------------------------------------------------

TEST(IntegerKernels, QGemmFastMatchesReferenceBitForBit) {
  std::mt19937 rng(12);
  struct GemmCase {
    Shape a;
    int64_t n;
    bool trans_b, bias, float_output;
  };
  std::vector<GemmCase> cases = {
      {{100, 64}, 10, false, true, true},   // the ResNet-8 classifier (float output)
      {{100, 64}, 10, false, true, false},  // same, 8-bit output
      {{1, 1}, 1, false, false, false},    {{7, 3}, 5, true, true, false},     {{17, 27}, 9, false, true, true},
      {{2, 3, 33}, 4, true, false, false}, {{9, 128}, 33, false, true, false}, {{16, 7}, 16, true, true, true},
  };
  int index = 0;
  for (const auto& gc : cases) {
    for (int variant = 0; variant < 2; ++variant, ++index) {
      const DType at = index % 2 ? DType::i8 : DType::u8, bt = (index / 2) % 2 ? DType::u8 : DType::i8;
      const DType yt = (index / 3) % 2 ? DType::i8 : DType::u8;
      const bool per_channel = variant == 0, relu = index % 3 == 0;
      const int64_t k = gc.a.back();
      std::ostringstream what;
      what << shape_str(gc.a) << " x " << k << "x" << gc.n << (gc.trans_b ? " transB" : "") << " a:" << dtype_name(at)
           << " b:" << dtype_name(bt) << (gc.float_output ? " float out" : std::string(" y:") + dtype_name(yt))
           << (per_channel ? " per-channel" : " per-tensor") << (relu ? " relu" : "");
      SCOPED_TRACE(what.str());
      Graph g;
      std::vector<int32_t> b_zp(per_channel ? gc.n : 1);
      std::vector<float> b_scale(b_zp.size());
      for (size_t i = 0; i < b_zp.size(); ++i) {
        b_zp[i] = extreme_zero_point(bt, static_cast<int>((i + index) % 7), rng);
        b_scale[i] = static_cast<float>(kMultipliers[(i + index) % 12] * 0.05 / 0.02);
      }
      g.initializers["a_scale"] = make_scalar_f32(0.02f);
      g.initializers["a_zp"] = zero_point_tensor(at, {extreme_zero_point(at, index % 7, rng)}, false);
      g.initializers["b"] = random_8bit(bt, gc.trans_b ? Shape{gc.n, k} : Shape{k, gc.n}, rng);
      g.initializers["b_scale"] = scale_tensor(b_scale, per_channel);
      g.initializers["b_zp"] = zero_point_tensor(bt, b_zp, per_channel);
      g.initializers["bias"] = bias_tensor(gc.n, rng, 1 << 18);
      g.initializers["y_scale"] = make_scalar_f32(0.05f);
      g.initializers["y_zp"] = zero_point_tensor(yt, {extreme_zero_point(yt, (index + 2) % 7, rng)}, false);
      std::vector<std::string> inputs = {"a", "a_scale", "a_zp", "b", "b_scale", "b_zp", gc.bias ? "bias" : ""};
      if (!gc.float_output) {
        inputs.push_back("y_scale");
        inputs.push_back("y_zp");
      }
      Node node{"qgemm", "QGemm", integer::kDomain, inputs, {"y"}, {}};
      node.attrs["transB"] = int_attr(gc.trans_b);
      node.attrs["relu"] = int_attr(relu && !gc.float_output);
      std::map<std::string, Tensor> data;
      data["a"] = random_8bit(at, gc.a, rng);
      for_each_isa(
          [&](const char* isa) { expect_fast_matches_reference(node, g, data, fast::prepare_qgemm(node, g), isa); });
    }
  }
}

// ---- QAdd ----------------------------------------------------------------------------------

TEST(IntegerKernels, QAddFastMatchesReferenceBitForBit) {
  std::mt19937 rng(13);
  const int64_t lengths[] = {1, 7, 8, 9, 15, 16, 17, 64, 1000, 16 * 32 * 32 + 3};
  const float scale_pairs[][3] = {{0.05f, 0.05f, 0.05f},      {0.1117f, 0.0365f, 0.0545f}, {1e-4f, 3.0f, 0.02f},
                                  {2.0f, 2.0f, 1e-3f},        {0.01f, 0.02f, 40.0f},       {1e-6f, 1e-6f, 1e-6f},
                                  {0.2177f, 0.0879f, 0.1125f}};
  int index = 0;
  for (int64_t len : lengths)
    for (const auto& sc : scale_pairs) {
      ++index;
      const DType at = index % 2 ? DType::u8 : DType::i8, bt = (index / 2) % 2 ? DType::u8 : DType::i8;
      const DType yt = (index / 4) % 2 ? DType::i8 : DType::u8;
      const bool relu = index % 3 == 0;
      std::ostringstream what;
      what << "length " << len << " scales " << sc[0] << "," << sc[1] << "->" << sc[2] << " " << dtype_name(at) << "+"
           << dtype_name(bt) << "->" << dtype_name(yt) << (relu ? " relu" : "");
      SCOPED_TRACE(what.str());
      Graph g;
      g.initializers["a_scale"] = make_scalar_f32(sc[0]);
      g.initializers["a_zp"] = zero_point_tensor(at, {extreme_zero_point(at, index % 7, rng)}, false);
      g.initializers["b_scale"] = make_scalar_f32(sc[1]);
      g.initializers["b_zp"] = zero_point_tensor(bt, {extreme_zero_point(bt, (index + 1) % 7, rng)}, false);
      g.initializers["y_scale"] = make_scalar_f32(sc[2]);
      g.initializers["y_zp"] = zero_point_tensor(yt, {extreme_zero_point(yt, (index + 2) % 7, rng)}, false);
      Node node{"qadd", "QAdd", integer::kDomain, {"a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"},
                {"y"},  {}};
      node.attrs["relu"] = int_attr(relu);
      std::map<std::string, Tensor> data;
      data["a"] = random_8bit(at, {1, len}, rng);
      data["b"] = random_8bit(bt, {1, len}, rng);
      for_each_isa(
          [&](const char* isa) { expect_fast_matches_reference(node, g, data, fast::prepare_qadd(node, g), isa); });
    }
}

// ---- QConv -> QAdd (the executor's integer fusion) -------------------------------------------

// The fused kernel against the two reference kernels run one after the other.
TEST(IntegerKernels, QConvAddFusedMatchesConvThenAddBitForBit) {
  std::mt19937 rng(15);
  const ConvCase cases[] = {
      {2, 64, 8, 8, 64, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},    // ResNet-8's last stage
      {1, 16, 32, 32, 16, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},  // its first stage
      {3, 5, 7, 9, 7, 3, 2, 1, 1, 1, {2, 1, 0, 3}, false},     // partial groups and tiles
      {1, 4, 11, 13, 9, 3, 3, 3, 3, 2, {1, 2, 2, 1}, true},    // dilation + stride 3
      {2, 33, 9, 17, 65, 1, 1, 2, 2, 1, {0, 0, 0, 0}, true},   // 1x1 stride 2, channels past tile edges
      {2, 21, 6, 24, 9, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},    // Winograd, partial block, rows past the tile
  };
  const float add_scales[][3] = {{0.1117f, 0.0365f, 0.0545f}, {1e-4f, 3.0f, 0.02f}, {0.05f, 0.05f, 0.05f}};
  const DType types[] = {DType::u8, DType::i8};
  int index = 0;
  for (const auto& cc : cases)
    for (int variant = 0; variant < 4; ++variant, ++index) {
      const DType xt = types[index % 2], ct = types[(index / 2) % 2], ot = types[(index / 3) % 2],
                  yt = types[(index / 5) % 2];
      const bool conv_is_a = variant % 2 == 0, conv_relu = variant == 1, add_relu = variant >= 2;
      const float* sc = add_scales[index % 3];
      std::ostringstream what;
      what << "n" << cc.n << " c" << cc.c << " " << cc.h << "x" << cc.w << " m" << cc.m << " k" << cc.kh << "x" << cc.kw
           << " x:" << dtype_name(xt) << " conv:" << dtype_name(ct) << " other:" << dtype_name(ot)
           << " y:" << dtype_name(yt) << (conv_is_a ? " conv=a" : " conv=b") << (conv_relu ? " conv relu" : "")
           << (add_relu ? " add relu" : "");
      SCOPED_TRACE(what.str());
      Graph g;
      std::vector<float> w_scale(cc.m);
      for (int64_t i = 0; i < cc.m; ++i) w_scale[i] = static_cast<float>(kMultipliers[(i + index) % 12] * sc[0] / 0.02);
      g.initializers["x_scale"] = make_scalar_f32(0.02f);
      g.initializers["x_zp"] = zero_point_tensor(xt, {extreme_zero_point(xt, index % 7, rng)}, false);
      g.initializers["w"] = random_8bit(DType::i8, {cc.m, cc.c, cc.kh, cc.kw}, rng);
      g.initializers["w_scale"] = scale_tensor(w_scale, true);
      g.initializers["w_zp"] = zero_point_tensor(DType::i8, std::vector<int32_t>(cc.m, 0), true);
      g.initializers["c_scale"] = make_scalar_f32(conv_is_a ? sc[0] : sc[1]);
      g.initializers["c_zp"] = zero_point_tensor(ct, {extreme_zero_point(ct, (index + 3) % 7, rng)}, false);
      g.initializers["o_scale"] = make_scalar_f32(conv_is_a ? sc[1] : sc[0]);
      g.initializers["o_zp"] = zero_point_tensor(ot, {extreme_zero_point(ot, (index + 1) % 7, rng)}, false);
      g.initializers["y_scale"] = make_scalar_f32(sc[2]);
      g.initializers["y_zp"] = zero_point_tensor(yt, {extreme_zero_point(yt, (index + 2) % 7, rng)}, false);
      if (cc.bias) g.initializers["b"] = bias_tensor(cc.m, rng, 1 << 20);
      const Node conv = qconv_node(cc, conv_relu, "c");
      std::vector<std::string> add_inputs = {"c", "c_scale", "c_zp", "o", "o_scale", "o_zp"};
      if (!conv_is_a) std::rotate(add_inputs.begin(), add_inputs.begin() + 3, add_inputs.end());
      add_inputs.insert(add_inputs.end(), {"y_scale", "y_zp"});
      Node add{"qadd", "QAdd", integer::kDomain, add_inputs, {"y"}, {}};
      add.attrs["relu"] = int_attr(add_relu);

      const Tensor x = random_8bit(xt, {cc.n, cc.c, cc.h, cc.w}, rng);
      auto input = [&](const std::string& name, const Tensor* conv_out) -> const Tensor* {
        if (name.empty()) return nullptr;
        if (name == "x") return &x;
        if (name == "c") return conv_out;
        return g.initializers.count(name) ? &g.initializers.at(name) : nullptr;
      };
      // Reference: the conv, then the Add on its output.
      Inputs conv_in;
      for (const auto& name : conv.inputs) conv_in.push_back(input(name, nullptr));
      conv_in.resize(fast::kQConvAddInputs, nullptr);
      std::vector<Tensor> c(1), want(1);
      find_op("QConv", integer::kDomain)->reference(conv, conv_in, c);
      const Tensor o = random_8bit(ot, c[0].shape, rng);
      g.initializers["o"] = o;  // the other addend (a constant here; the kernel reads it as an input)
      Inputs add_in;
      for (const auto& name : add.inputs) add_in.push_back(input(name, &c[0]));
      find_op("QAdd", integer::kDomain)->reference(add, add_in, want);

      for_each_isa([&](const char* isa) {
        SCOPED_TRACE(isa);
        const PreparedKernel fused = fast::prepare_qconv_add(conv, add, g);
        ASSERT_TRUE(fused) << "the fused kernel declined the pair";
        Inputs in = conv_in;
        for (const auto& name : add.inputs) in.push_back(input(name, nullptr));  // the conv's output: null
        std::vector<Tensor> got(1);
        got[0] = want[0];
        for (size_t i = 0; i < got[0].bytes.size(); ++i) got[0].bytes[i] = static_cast<uint8_t>(0xA5 ^ (i * 7));
        fused(in, got);
        ASSERT_EQ(got[0].dtype, want[0].dtype);
        ASSERT_EQ(got[0].shape, want[0].shape);
        for (size_t i = 0; i < want[0].bytes.size(); ++i)
          ASSERT_EQ(got[0].bytes[i], want[0].bytes[i]) << "first difference at byte " << i;
      });
    }
}

// ---- QAveragePool / QGlobalAveragePool ---------------------------------------------------------

TEST(IntegerKernels, QPoolFastMatchesReferenceBitForBit) {
  std::mt19937 rng(16);
  struct PoolCase {
    const char* op;
    Shape x;
    std::vector<int64_t> kernel, pads;
  };
  const PoolCase cases[] = {
      {"QAveragePool", {3, 64, 8, 8}, {8, 8}, {0, 0, 0, 0}},      // ResNet-8's final pooling
      {"QAveragePool", {2, 5, 7, 3}, {7, 3}, {0, 0, 1, 1}},       // whole plane, trailing pads
      {"QAveragePool", {2, 5, 8, 8}, {3, 3}, {1, 1, 1, 1}},       // other windows: the reference
      {"QGlobalAveragePool", {4, 10, 8, 8}, {}, {}},              // global
      {"QGlobalAveragePool", {2, 3, 1, 1}, {}, {}},               // one element per plane
      {"QGlobalAveragePool", {2, 7, 5, 3, 2}, {}, {}},            // rank 5
  };
  const float scales[][2] = {{0.05f, 0.05f}, {0.1f, 0.013f}, {0.002f, 3.0f}};
  int index = 0;
  for (const auto& pc : cases)
    for (int variant = 0; variant < 4; ++variant, ++index) {
      const DType xt = index % 2 ? DType::i8 : DType::u8, yt = (index / 2) % 2 ? DType::i8 : DType::u8;
      std::ostringstream what;
      what << pc.op << " " << shape_str(pc.x) << " x:" << dtype_name(xt) << " y:" << dtype_name(yt);
      SCOPED_TRACE(what.str());
      Graph g;
      g.initializers["x_scale"] = make_scalar_f32(scales[index % 3][0]);
      g.initializers["x_zp"] = zero_point_tensor(xt, {extreme_zero_point(xt, index % 7, rng)}, false);
      g.initializers["y_scale"] = make_scalar_f32(scales[index % 3][1]);
      g.initializers["y_zp"] = zero_point_tensor(yt, {extreme_zero_point(yt, (index + 2) % 7, rng)}, false);
      Node node{"pool", pc.op, integer::kDomain, {"x", "x_scale", "x_zp", "y_scale", "y_zp"}, {"y"}, {}};
      if (!pc.kernel.empty()) {
        node.attrs["kernel_shape"] = ints_attr(pc.kernel);
        node.attrs["pads"] = ints_attr(pc.pads);
        node.attrs["strides"] = ints_attr({2, 2});
      }
      std::map<std::string, Tensor> data;
      data["x"] = random_8bit(xt, pc.x, rng);
      for_each_isa(
          [&](const char* isa) { expect_fast_matches_reference(node, g, data, fast::prepare_qpool(node, g), isa); });
    }
}

// ---- micro-kernels -------------------------------------------------------------------------

TEST(IntegerKernels, AvxTileMatchesPortableTile) {
  if (!fast::select_qkernels().avx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(14);
  std::uniform_int_distribution<int> value(-255, 255);
  for (int64_t k_pairs : {1, 2, 3, 14, 72, 288, 300}) {
    std::vector<int16_t> w(k_pairs * 8), x(4096);
    for (auto& v : w) v = static_cast<int16_t>(value(rng));
    for (auto& v : x) v = static_cast<int16_t>(value(rng));
    std::vector<int32_t> offsets(k_pairs);
    for (auto& o : offsets) o = static_cast<int32_t>(rng() % 1000);
    const int32_t bias[4] = {0, -1000000, 123456, INT32_MAX - 1000};  // the last row wraps in some lanes
    alignas(32) int32_t a[64], p[64];
    fast::qtile_4x16_avx2(k_pairs, w.data(), offsets.data(), x.data() + 10, x.data() + 2000, bias, a);
    fast::qtile_4x16_portable(k_pairs, w.data(), offsets.data(), x.data() + 10, x.data() + 2000, bias, p);
    ASSERT_EQ(0, std::memcmp(a, p, sizeof a)) << k_pairs << " k-pairs";
    if (has_avx512_vnni()) {
      // vpdpwssd must add both products into the lane and wrap like vpaddd (the last row passes INT32_MAX).
      alignas(32) int32_t v[64];
      fast::qtile_4x16_vnni(k_pairs, w.data(), offsets.data(), x.data() + 10, x.data() + 2000, bias, v);
      ASSERT_EQ(0, std::memcmp(v, p, sizeof v)) << k_pairs << " k-pairs, VNNI";
      // Adjacent groups take the one-load path.
      fast::qtile_4x16_portable(k_pairs, w.data(), offsets.data(), x.data() + 10, x.data() + 26, bias, p);
      fast::qtile_4x16_vnni(k_pairs, w.data(), offsets.data(), x.data() + 10, x.data() + 26, bias, v);
      ASSERT_EQ(0, std::memcmp(v, p, sizeof v)) << k_pairs << " k-pairs, VNNI, adjacent groups";
    }
  }
}

// The prepare step validates at the boundary, naming the node and the value.
TEST(IntegerKernels, PrepareRejectsAccumulatorsThatCouldOverflow) {
  Graph g;
  g.initializers["x_scale"] = make_scalar_f32(1.0f);
  g.initializers["x_zp"] = zero_point_tensor(DType::u8, {0}, false);
  Tensor w(DType::i8, {1, 1, 1, 1});
  w.bytes[0] = static_cast<uint8_t>(int8_t{-128});
  g.initializers["w"] = w;
  g.initializers["w_scale"] = make_scalar_f32(1.0f);
  g.initializers["w_zp"] = zero_point_tensor(DType::i8, {0}, false);
  g.initializers["y_scale"] = make_scalar_f32(1.0f);
  g.initializers["y_zp"] = zero_point_tensor(DType::u8, {0}, false);
  Tensor b(DType::i32, {1});
  b.data<int32_t>()[0] = INT32_MAX - 100;
  g.initializers["b"] = b;
  Node node{
      "big_bias", "QConv", integer::kDomain, {"x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp", "b"},
      {"y"},      {}};
  try {
    fast::prepare_qconv(node, g);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("QConv node 'big_bias'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("overflows int32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qplay
