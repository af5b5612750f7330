// Every fast kernel against its reference on random shapes: tile edges, odd channel counts,
// strides, padding, dilation. Float paths within a stated tolerance (here: the same FMA chain
// is expected, so AVX2 and portable sgemm must agree bit for bit; conv vs the plain-loop
// reference within 1e-5 relative to the magnitude of the sum; Winograd convs against a double-precision
// convolution within 4e-6 of the magnitude of the sum).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "runtime/cpu_features.h"
#include "runtime/kernels/fast/providers.h"
#include "runtime/kernels/fast/sgemm.h"
#include "runtime/thread_pool.h"

namespace qplay {
namespace {

std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(FastSgemm, MatchesPortableBitForBitAcrossTileEdges) {
  std::mt19937 rng(7);
  for (int64_t m : {1, 3, 4, 5, 8, 9, 16, 17})
    for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 64, 65, 130})
      for (int64_t k : {1, 2, 27, 127, 128, 129, 300}) {
        const auto a = random_floats(m * k, rng), b = random_floats(k * n, rng);
        std::vector<float> fast(m * n, std::nanf("")), portable(m * n, std::nanf(""));  // garbage-filled
        fast::sgemm(m, n, k, a.data(), k, b.data(), n, fast.data(), n);
        fast::sgemm_portable(m, n, k, a.data(), k, b.data(), n, portable.data(), n);
        ASSERT_EQ(0, std::memcmp(fast.data(), portable.data(), fast.size() * 4)) << m << "x" << n << "x" << k;
        // And against a double-precision product, loosely: the order may differ, the value may not.
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double want = 0, mag = 0;
            for (int64_t p = 0; p < k; ++p) {
              want += double(a[i * k + p]) * b[p * n + j];
              mag += std::fabs(double(a[i * k + p]) * b[p * n + j]);
            }
            ASSERT_NEAR(fast[i * n + j], want, 1e-6 * mag + 1e-7);
          }
      }
}

TEST(FastSgemm, MlasKBlocking) {
  EXPECT_EQ(fast::mlas_k_block(1024, 27), 32);   // small K: wider N panel
  EXPECT_EQ(fast::mlas_k_block(1024, 144), 128);
  EXPECT_EQ(fast::mlas_k_block(64, 576), 256);   // small N: deeper K panel
  EXPECT_EQ(fast::mlas_k_block(256, 288), 128);
}

struct ConvCase {
  int64_t n, c, h, w, m, kh, kw, stride, dilation;
  std::vector<int64_t> pads;
  bool bias;
};

// The Conv node of a case: inputs x, w and (with cc.bias) b, output y.
Node conv_node(const ConvCase& cc) {
  Node conv{"conv", "Conv", "", {"x", "w", cc.bias ? "b" : ""}, {"y"}, {}};
  conv.attrs["pads"].kind = Attribute::Kind::Ints;
  conv.attrs["pads"].ints = cc.pads;
  conv.attrs["strides"].kind = Attribute::Kind::Ints;
  conv.attrs["strides"].ints = {cc.stride, cc.stride};
  conv.attrs["dilations"].kind = Attribute::Kind::Ints;
  conv.attrs["dilations"].ints = {cc.dilation, cc.dilation};
  return conv;
}

// Runs `check` with the float kernels this CPU picks and, where that is the AVX-512 code, again with the AVX2 code
// forced: both must give the same floats.
template <typename Check>
void for_each_float_isa(Check check) {
  {
    SCOPED_TRACE(fast::use_avx512_float_kernels() ? "avx512" : "best");
    check();
  }
  if (!fast::use_avx512_float_kernels()) return;
  fast::force_avx2_float_kernels(true);
  {
    SCOPED_TRACE("avx2 forced");
    check();
  }
  fast::force_avx2_float_kernels(false);
}

TEST(FastConv, MatchesReferenceOnRandomShapes) {
  std::mt19937 rng(11);
  std::vector<ConvCase> cases = {
      {1, 3, 32, 32, 16, 3, 3, 1, 1, {1, 1, 1, 1}, true},   // ResNet-8 stem
      {2, 16, 32, 32, 32, 3, 3, 2, 1, {0, 0, 1, 1}, true},  // TF 'same' stride-2: pad bottom/right only
      {1, 16, 16, 16, 32, 1, 1, 2, 1, {0, 0, 0, 0}, true},  // 1x1 projection
      {3, 5, 7, 9, 7, 3, 2, 1, 1, {2, 1, 0, 3}, false},     // odd everything, asymmetric pads
      {1, 4, 11, 13, 9, 3, 3, 3, 2, {1, 2, 2, 1}, true},    // dilation + stride 3
      {1, 1, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true},      // degenerate
      {2, 33, 8, 8, 65, 3, 3, 1, 1, {1, 1, 1, 1}, true},    // channels past tile edges
  };
  for (int r = 0; r < 6; ++r) {
    std::uniform_int_distribution<int64_t> d(1, 12), s(1, 3), p(0, 2);
    cases.push_back({d(rng) % 3 + 1, d(rng), d(rng) + 4, d(rng) + 4, d(rng) * 3, s(rng), s(rng), s(rng), s(rng) % 2 + 1,
                     {p(rng), p(rng), p(rng), p(rng)}, r % 2 == 0});
  }
  for_each_float_isa([&] {
    for (const auto& cc : cases) {
      SCOPED_TRACE(::testing::Message() << "n" << cc.n << " c" << cc.c << " " << cc.h << "x" << cc.w << " m" << cc.m
                                        << " k" << cc.kh << "x" << cc.kw << " s" << cc.stride << " d" << cc.dilation);
      const Node node = conv_node(cc);
      const int64_t eh = (cc.kh - 1) * cc.dilation + 1, ew = (cc.kw - 1) * cc.dilation + 1;
      if (cc.h + cc.pads[0] + cc.pads[2] < eh || cc.w + cc.pads[1] + cc.pads[3] < ew) continue;
      Tensor x = make_f32({cc.n, cc.c, cc.h, cc.w}, random_floats(cc.n * cc.c * cc.h * cc.w, rng, 0, 255));
      Tensor w = make_f32({cc.m, cc.c, cc.kh, cc.kw}, random_floats(cc.m * cc.c * cc.kh * cc.kw, rng));
      Tensor b = make_f32({cc.m}, random_floats(cc.m, rng));
      Inputs in = {&x, &w, cc.bias ? &b : nullptr};
      std::vector<Tensor> want(1), got(1);
      find_op("Conv")->reference(node, in, want);
      Graph g;
      auto kernel = fast::prepare_conv_f32(node, g);
      ASSERT_TRUE(kernel);
      got[0] = make_f32({1}, {std::nanf("")});
      kernel(in, got);
      ASSERT_EQ(got[0].shape, want[0].shape);
      for (int64_t i = 0; i < want[0].numel(); ++i)
        ASSERT_NEAR(got[0].data<float>()[i], want[0].data<float>()[i],
                    1e-5 * (std::fabs(want[0].data<float>()[i]) + 255 * cc.c * cc.kh * cc.kw))
            << "element " << i;
    }
  });
}

// Conv with the fused epilogues against the unfused chain (fast conv, then the reference Add and Relu): the same float
// operations in the same order, so bit for bit; shapes cover tile edges (M not a multiple of 6, spatial not a multiple
// of 16, output rows shorter than a strip).
TEST(FastConv, FusedEpiloguesMatchTheUnfusedChainBitForBit) {
  std::mt19937 rng(13);
  const std::vector<ConvCase> cases = {
      {2, 16, 32, 32, 16, 3, 3, 1, 1, {1, 1, 1, 1}, true},  // ResNet-8 stage 1
      {2, 16, 32, 32, 32, 3, 3, 2, 1, {1, 1, 1, 1}, true},  // stride 2 (gathered
                                                            // taps)
      {3, 32, 8, 8, 64, 3, 3, 1, 1, {1, 1, 1, 1}, true},    // 8-wide rows: two
                                                            // rows per strip
      {1, 7, 5, 11, 13, 3, 2, 1, 1, {0, 1, 2, 0}, false},   // odd everything,
                                                            // asymmetric pads
      {2, 5, 9, 7, 7, 1, 1, 1, 1, {0, 0, 0, 0}, true},      // 1x1, 63 positions
      {1, 3, 6, 6, 5, 2, 2, 3, 2, {1, 1, 1, 1}, true},      // stride 3, dilation 2
  };
  for_each_float_isa([&] {
    for (const auto& cc : cases)
      // relu; add; add + relu; relu + fake quant; fake quant; the QDQ residual block (conv fake quant, add, relu, fake
      // quant); conv fake quant + add.
      for (int variant = 0; variant < 7; ++variant) {
        const bool conv_fq = variant >= 5, add = variant == 1 || variant == 2 || conv_fq,
                   relu = variant != 1 && variant != 4 && variant != 6, fq = variant >= 3 && variant != 6;
        SCOPED_TRACE(::testing::Message()
                     << "m" << cc.m << " c" << cc.c << " " << cc.h << "x" << cc.w << " s" << cc.stride << " conv_fq "
                     << conv_fq << " add " << add << " relu " << relu << " fq " << fq);
        const Node conv = conv_node(cc);
        Tensor x = make_f32({cc.n, cc.c, cc.h, cc.w}, random_floats(cc.n * cc.c * cc.h * cc.w, rng, -2, 2));
        Tensor w = make_f32({cc.m, cc.c, cc.kh, cc.kw}, random_floats(cc.m * cc.c * cc.kh * cc.kw, rng));
        Tensor b = make_f32({cc.m}, random_floats(cc.m, rng));
        Graph g;
        std::vector<Tensor> y(1), want(1);
        fast::prepare_conv_f32(conv, g)({&x, &w, cc.bias ? &b : nullptr}, y);
        Tensor addend = make_f32(y[0].shape, random_floats(y[0].numel(), rng, -1, 1));
        want[0] = y[0];
        // QuantizeLinear -> DequantizeLinear by the reference kernels; a scale that clips some values.
        auto fake_quant = [&](DType dtype, int32_t zero_point, float scale) {
          Tensor s = make_scalar_f32(scale), z(dtype, {});
          if (dtype == DType::u8)
            z.data<uint8_t>()[0] = static_cast<uint8_t>(zero_point);
          else
            z.data<int8_t>()[0] = static_cast<int8_t>(zero_point);
          std::vector<Tensor> codes(1), deq(1);
          find_op("QuantizeLinear")
              ->reference(Node{"q", "QuantizeLinear", "", {"z", "s", "zp"}, {"q"}, {}}, {&want[0], &s, &z}, codes);
          find_op("DequantizeLinear")
              ->reference(Node{"d", "DequantizeLinear", "", {"q", "s", "zp"}, {"d"}, {}}, {&codes[0], &s, &z}, deq);
          want[0] = deq[0];
          return fast::FakeQuant{dtype, scale, scale, zero_point, zero_point};
        };
        fast::ConvFusion fusion;
        if (conv_fq) {
          fusion.conv_fake_quant = true;
          fusion.conv_quant = fake_quant(DType::i8, 7, 0.021f);
        }
        if (add) {
          std::vector<Tensor> sum(1);
          find_op("Add")->reference(Node{"a", "Add", "", {"y", "r"}, {"s"}, {}}, {&want[0], &addend}, sum);
          want[0] = sum[0];
        }
        if (relu) {
          std::vector<Tensor> r(1);
          find_op("Relu")->reference(Node{"r", "Relu", "", {"s"}, {"z"}, {}}, {&want[0]}, r);
          want[0] = r[0];
        }
        fusion.add = add;
        fusion.relu = relu;
        if (fq) {  // u8 codes for relu outputs, i8 codes for signed ones
          fusion.fake_quant = true;
          fusion.quant = relu ? fake_quant(DType::u8, 3, 0.013f) : fake_quant(DType::i8, -5, 0.013f);
        }
        auto fused = fast::prepare_conv_f32_fused(conv, g, fusion);
        ASSERT_TRUE(fused);
        std::vector<Tensor> got(1);
        got[0] = make_f32({2}, {std::nanf(""), 1});
        Inputs in = {&x, &w, cc.bias ? &b : nullptr};
        if (add) in.push_back(&addend);
        fused(in, got);
        ASSERT_EQ(got[0].shape, want[0].shape);
        ASSERT_EQ(0, std::memcmp(got[0].bytes.data(), want[0].bytes.data(), want[0].bytes.size()));
        // A mismatched addend shape falls back to the node-by-node chain
        // (reference broadcasting).
        if (add && cc.m > 1) {
          Tensor row = make_f32({1, cc.m, 1, 1}, random_floats(cc.m, rng));
          in.back() = &row;
          fused(in, got);
          EXPECT_EQ(got[0].shape, want[0].shape);
        }
      }
  });
}

// The MLAS-order contract: the fast conv equals im2col + sgemm_portable + bias bit for bit (what keeps QDQ models on
// ONNX Runtime's activation codes), across tile edges.
TEST(FastConv, EqualsIm2colThenPortableSgemmBitForBit) {
  std::mt19937 rng(37);
  const std::vector<ConvCase> cases = {
      {2, 3, 32, 32, 16, 3, 3, 1, 1, {1, 1, 1, 1}, true},    // K = 27, one k-block
      {1, 16, 32, 32, 16, 3, 3, 1, 1, {1, 1, 1, 1}, true},   // K = 144, two
                                                             // k-blocks
      {1, 16, 32, 32, 32, 3, 3, 2, 1, {1, 1, 1, 1}, true},   // stride 2, K = 144
      {1, 32, 16, 16, 64, 3, 3, 2, 1, {1, 1, 1, 1}, true},   // K = 288 over 64
                                                             // positions
      {2, 64, 8, 8, 64, 3, 3, 1, 1, {1, 1, 1, 1}, true},     // K = 576: k-block 256
      {1, 16, 32, 32, 32, 1, 1, 2, 1, {0, 0, 0, 0}, false},  // 1x1 projection
      {1, 11, 9, 13, 23, 3, 3, 1, 2, {2, 1, 2, 3}, true},    // dilation, ragged
                                                             // everything
      // Stride 1 with 8-wide output rows reads taps in place (no gather): a last strip of one half (24 positions),
      // dilation, and 16-wide rows.
      {2, 5, 3, 8, 13, 3, 3, 1, 1, {1, 1, 1, 1}, true},
      {1, 6, 12, 16, 7, 3, 3, 1, 2, {2, 2, 2, 2}, false},
      // Two geometries with the same padded plane (12 x 18), one's last interior row the other's border row: each
      // thread keeps a zero-bordered buffer per geometry, so neither sees the other's data.
      {1, 4, 10, 16, 5, 3, 3, 1, 1, {1, 1, 1, 1}, true},
      {1, 4, 11, 16, 5, 3, 3, 1, 1, {1, 1, 0, 1}, true},
      {1, 4, 10, 16, 5, 3, 3, 1, 1, {1, 1, 1, 1}, true},
      // The AVX-512 code takes strips in pairs: 24-wide rows (a strip's halves in two rows), an odd strip count
      // left over (9 strips), 7 rows of channels (a 6-row and a 1-row panel).
      {1, 4, 6, 24, 7, 3, 3, 1, 1, {1, 1, 1, 1}, true},
      {2, 9, 12, 12, 13, 3, 3, 2, 1, {1, 1, 1, 1}, false},
  };
  for_each_float_isa([&] {
    for (const auto& cc : cases) {
      SCOPED_TRACE(::testing::Message() << "m" << cc.m << " c" << cc.c << " " << cc.h << "x" << cc.w);
      const Node conv = conv_node(cc);
      Tensor x = make_f32({cc.n, cc.c, cc.h, cc.w}, random_floats(cc.n * cc.c * cc.h * cc.w, rng, -3, 3));
      Tensor w = make_f32({cc.m, cc.c, cc.kh, cc.kw}, random_floats(cc.m * cc.c * cc.kh * cc.kw, rng));
      Tensor b = make_f32({cc.m}, random_floats(cc.m, rng));
      Graph g;
      std::vector<Tensor> got(1);
      fast::prepare_conv_f32(conv, g)({&x, &w, cc.bias ? &b : nullptr}, got);
      const int64_t eh = (cc.kh - 1) * cc.dilation + 1, ew = (cc.kw - 1) * cc.dilation + 1;
      const int64_t oh = (cc.h + cc.pads[0] + cc.pads[2] - eh) / cc.stride + 1;
      const int64_t ow = (cc.w + cc.pads[1] + cc.pads[3] - ew) / cc.stride + 1;
      const int64_t k = cc.c * cc.kh * cc.kw, sp = oh * ow;
      ASSERT_EQ(got[0].shape, (Shape{cc.n, cc.m, oh, ow}));
      std::vector<float> col(k * sp), want(cc.m * sp);
      for (int64_t i = 0; i < cc.n; ++i) {
        for (int64_t ci = 0; ci < cc.c; ++ci)
          for (int64_t ky = 0; ky < cc.kh; ++ky)
            for (int64_t kx = 0; kx < cc.kw; ++kx)
              for (int64_t oy = 0; oy < oh; ++oy)
                for (int64_t ox = 0; ox < ow; ++ox) {
                  const int64_t iy = oy * cc.stride - cc.pads[0] + ky * cc.dilation;
                  const int64_t ix = ox * cc.stride - cc.pads[1] + kx * cc.dilation;
                  col[((ci * cc.kh + ky) * cc.kw + kx) * sp + oy * ow + ox] =
                      iy >= 0 && iy < cc.h && ix >= 0 && ix < cc.w
                          ? x.data<float>()[((i * cc.c + ci) * cc.h + iy) * cc.w + ix]
                          : 0.0f;
                }
        fast::sgemm_portable(cc.m, sp, k, w.data<float>(), k, col.data(), sp, want.data(), sp);
        if (cc.bias)
          for (int64_t mi = 0; mi < cc.m; ++mi)
            for (int64_t s = 0; s < sp; ++s) want[mi * sp + s] += b.data<float>()[mi];
        ASSERT_EQ(0, std::memcmp(want.data(), got[0].data<float>() + i * cc.m * sp, want.size() * 4)) << "image " << i;
      }
    }
  });
}

// Weights packed at preparation (an initializer) and weights arriving at run time give the same bits.
TEST(FastConv, PackedConstantWeightsMatchRunTimeWeights) {
  std::mt19937 rng(17);
  Node conv{"conv", "Conv", "", {"x", "w", "b"}, {"y"}, {}};
  conv.attrs["pads"].kind = Attribute::Kind::Ints;
  conv.attrs["pads"].ints = {1, 1, 1, 1};
  Tensor x = make_f32({2, 9, 10, 10}, random_floats(2 * 9 * 100, rng));
  Tensor w = make_f32({20, 9, 3, 3}, random_floats(20 * 81, rng));
  Tensor b = make_f32({20}, random_floats(20, rng));
  Graph with_w;
  with_w.initializers["w"] = w;
  Graph without;
  std::vector<Tensor> a(1), c(1);
  fast::prepare_conv_f32(conv, with_w)({&x, with_w.initializer("w"), &b}, a);
  fast::prepare_conv_f32(conv, without)({&x, &w, &b}, c);
  ASSERT_EQ(0, std::memcmp(a[0].bytes.data(), c[0].bytes.data(), a[0].bytes.size()));
  // Another tensor in the weight input (not the packed one) is honoured.
  Tensor w2 = make_f32({20, 9, 3, 3}, random_floats(20 * 81, rng));
  fast::prepare_conv_f32(conv, with_w)({&x, &w2, &b}, a);
  fast::prepare_conv_f32(conv, without)({&x, &w2, &b}, c);
  ASSERT_EQ(0, std::memcmp(a[0].bytes.data(), c[0].bytes.data(), a[0].bytes.size()));
}

// Pooling and Transpose: same arithmetic as the reference, so bit for bit.
void expect_provider_equals_reference(const PreparedKernel& kernel, const Node& node, const Inputs& in) {
  ASSERT_TRUE(kernel) << node.op_type;
  std::vector<Tensor> want(1), got(1);
  find_op(node.op_type)->reference(node, in, want);
  got[0] = make_f32({3}, {std::nanf(""), 1, 2});
  kernel(in, got);
  ASSERT_EQ(got[0].dtype, want[0].dtype);
  ASSERT_EQ(got[0].shape, want[0].shape);
  ASSERT_EQ(0, std::memcmp(got[0].bytes.data(), want[0].bytes.data(), want[0].bytes.size())) << node.op_type;
}

TEST(FastPool, MatchesReferenceBitForBit) {
  std::mt19937 rng(19);
  Graph g;
  for (int64_t k : {1, 2, 3})
    for (int64_t s : {1, 2, 3})
      for (int64_t pad : {0, 1})
        for (int64_t ceil_mode : {0, 1})
          for (int64_t cip : {0, 1}) {
            if (pad >= k) continue;
            SCOPED_TRACE(::testing::Message()
                         << "k" << k << " s" << s << " pad " << pad << " ceil " << ceil_mode << " cip " << cip);
            Tensor x = make_f32({2, 3, 7, 8}, random_floats(2 * 3 * 56, rng, -5, 5));
            for (const char* op : {"AveragePool", "MaxPool"}) {
              Node node{"p", op, "", {"x"}, {"y"}, {}};
              node.attrs["kernel_shape"].kind = Attribute::Kind::Ints;
              node.attrs["kernel_shape"].ints = {k, k + 1 > 3 ? k : k + 1};
              node.attrs["strides"].kind = Attribute::Kind::Ints;
              node.attrs["strides"].ints = {s, s};
              node.attrs["pads"].kind = Attribute::Kind::Ints;
              node.attrs["pads"].ints = {pad, 0, pad, pad};
              node.attrs["ceil_mode"].i = ceil_mode;
              if (std::string(op) == "AveragePool") node.attrs["count_include_pad"].i = cip;
              expect_provider_equals_reference(fast::prepare_pool_f32(node, g), node, {&x});
            }
          }
  Tensor x = make_f32({3, 5, 8, 8}, random_floats(3 * 5 * 64, rng));
  Node gap{"g", "GlobalAveragePool", "", {"x"}, {"y"}, {}};
  expect_provider_equals_reference(fast::prepare_pool_f32(gap, g), gap, {&x});
  Tensor codes(DType::u8, {2, 3, 5, 6});
  for (auto& v : codes.bytes) v = static_cast<uint8_t>(rng());
  Node mp{"m", "MaxPool", "", {"x"}, {"y"}, {}};
  mp.attrs["kernel_shape"].kind = Attribute::Kind::Ints;
  mp.attrs["kernel_shape"].ints = {2, 2};
  mp.attrs["strides"].kind = Attribute::Kind::Ints;
  mp.attrs["strides"].ints = {2, 2};
  expect_provider_equals_reference(fast::prepare_pool_f32(mp, g), mp, {&codes});
}

TEST(FastTranspose, MatchesReferenceBitForBit) {
  std::mt19937 rng(23);
  Graph g;
  const std::vector<std::vector<int64_t>> perms = {{0, 3, 1, 2}, {0, 2, 3, 1}, {1, 0}, {2, 0, 1}, {3, 2, 1, 0}};
  for (const auto& perm : perms) {
    Shape shape;
    for (size_t k = 0; k < perm.size(); ++k) shape.push_back(static_cast<int64_t>(2 + k * 2 + perm.size()));
    Tensor x = make_f32(shape, random_floats(static_cast<size_t>(shape_numel(shape)), rng));
    Node node{"t", "Transpose", "", {"x"}, {"y"}, {}};
    node.attrs["perm"].kind = Attribute::Kind::Ints;
    node.attrs["perm"].ints = perm;
    expect_provider_equals_reference(fast::prepare_transpose(node, g), node, {&x});
    Tensor codes(DType::i8, shape);
    for (auto& v : codes.bytes) v = static_cast<uint8_t>(rng());
    expect_provider_equals_reference(fast::prepare_transpose(node, g), node, {&codes});
  }
}

TEST(FastConv, DeclinesWhatItDoesNotHandle) {
  Graph g;
  Node grouped{"c", "Conv", "", {"x", "w"}, {"y"}, {}};
  grouped.attrs["group"].i = 2;
  EXPECT_FALSE(fast::prepare_conv_f32(grouped, g));
  Node same{"c", "Conv", "", {"x", "w"}, {"y"}, {}};
  same.attrs["auto_pad"].kind = Attribute::Kind::String;
  same.attrs["auto_pad"].s = "SAME_UPPER";
  EXPECT_FALSE(fast::prepare_conv_f32(same, g));
}

}  // namespace
}  // namespace qplay

namespace qplay {
namespace {

// Runs the reference and the fast kernel of `node` and requires bit-identical outputs.
void expect_fast_equals_reference(const Node& node, const Inputs& in) {
  std::vector<Tensor> want(1), got(1);
  find_op(node.op_type)->reference(node, in, want);
  Graph g;
  auto kernel = fast::prepare_elementwise_f32(node, g);
  ASSERT_TRUE(kernel) << node.op_type;
  got[0] = make_f32({3}, {std::nanf(""), 1, 2});  // garbage that must be overwritten
  kernel(in, got);
  ASSERT_EQ(got[0].dtype, want[0].dtype);
  ASSERT_EQ(got[0].shape, want[0].shape);
  ASSERT_EQ(0, std::memcmp(got[0].bytes.data(), want[0].bytes.data(), want[0].bytes.size())) << node.op_type;
}

std::vector<float> awkward_floats(size_t n, std::mt19937& rng, float scale) {
  auto v = random_floats(n, rng, -300 * scale, 300 * scale);
  // Exact ties and specials the rounding must treat like the reference.
  const float specials[] = {0.5f * scale, 1.5f * scale, 2.5f * scale, -0.5f * scale, -2.5f * scale, 0.0f, -0.0f,
                            std::nanf(""), INFINITY, -INFINITY, 1e30f, -1e30f, 127.5f * scale, 128.5f * scale};
  for (size_t i = 0; i < std::size(specials) && i < n; ++i) v[i * 3 % n] = specials[i];
  return v;
}

TEST(FastElementwise, ReluAndAddBitExact) {
  std::mt19937 rng(3);
  for (int64_t n : {1, 7, 8, 9, 1000, 4099}) {
    Tensor a = make_f32({n}, awkward_floats(n, rng, 1)), b = make_f32({n}, random_floats(n, rng));
    expect_fast_equals_reference(Node{"r", "Relu", "", {"a"}, {"y"}, {}}, {&a});
    expect_fast_equals_reference(Node{"s", "Add", "", {"a", "b"}, {"y"}, {}}, {&a, &b});
  }
}

TEST(FastQuantize, QuantizeAndDequantizeBitExactForExtremeParams) {
  std::mt19937 rng(5);
  for (float scale : {1.0f, 0.0078125f, 1e-6f, 3.3e4f, 0.1f})
    for (int zp : {0, 255, 128, -128, 127, 3}) {
      const bool is_signed = zp < 0 || zp == 3;
      if (!is_signed && zp < 0) continue;
      for (int64_t n : {5, 8, 1027}) {
        SCOPED_TRACE(::testing::Message() << "scale " << scale << " zp " << zp << " n " << n);
        Tensor x = make_f32({n}, awkward_floats(n, rng, scale));
        Tensor s = make_scalar_f32(scale);
        Tensor z(is_signed ? DType::i8 : DType::u8, {});
        if (is_signed) z.data<int8_t>()[0] = static_cast<int8_t>(zp);
        else z.data<uint8_t>()[0] = static_cast<uint8_t>(zp);
        expect_fast_equals_reference(Node{"q", "QuantizeLinear", "", {"x", "s", "z"}, {"y"}, {}}, {&x, &s, &z});
        std::vector<Tensor> codes(1);
        find_op("QuantizeLinear")->reference(Node{"q", "QuantizeLinear", "", {"x", "s", "z"}, {"y"}, {}}, {&x, &s, &z},
                                             codes);
        expect_fast_equals_reference(Node{"d", "DequantizeLinear", "", {"q", "s", "z"}, {"y"}, {}}, {&codes[0], &s, &z});
      }
    }
}

}  // namespace
}  // namespace qplay

namespace qplay {
namespace {

// A 3x3 conv with padding 1 (Winograd's geometry) and random operands: x [n, c, h, w], weights, a bias (an input of
// the node only with `bias`) and an addend of the output's shape, drawn in that order.
struct WinogradConvCase {
  Node conv;
  Tensor x, w, b, addend;
};
WinogradConvCase random_winograd_conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t m, bool bias,
                                      std::mt19937& rng) {
  WinogradConvCase r{Node{"conv", "Conv", "", {"x", "w", bias ? "b" : ""}, {"y"}, {}}, {}, {}, {}, {}};
  r.conv.attrs["pads"].kind = Attribute::Kind::Ints;
  r.conv.attrs["pads"].ints = {1, 1, 1, 1};
  r.x = make_f32({n, c, h, w}, random_floats(n * c * h * w, rng, -4, 4));
  r.w = make_f32({m, c, 3, 3}, random_floats(m * c * 9, rng));
  r.b = make_f32({m}, random_floats(m, rng));
  r.addend = make_f32({n, m, h, w}, random_floats(n * m * h * w, rng, -8, 8));
  return r;
}

// Winograd F(2x2, 3x3) against the convolution computed in double: its sums are not the direct kernel's, so the
// tolerance is relative to the magnitude sum_c,ky,kx |w x| + |b| of each output (the transforms add at most a few
// dozen float roundings of values of that size).
TEST(FastConvWinograd, MatchesDoubleConvolutionWithinTolerance) {
  std::mt19937 rng(41);
  struct Case {
    int64_t n, c, h, w, m;
    bool bias;
  };
  const std::vector<Case> cases = {
      {2, 16, 32, 32, 16, true},  // ResNet-8 stage 1
      {1, 32, 16, 16, 32, true},  // stage 2
      {3, 64, 8, 8, 64, false},   // stage 3: a group of 8 tiles spans two tile rows
      {1, 5, 4, 24, 7, true},     // odd channels, one tile row pair, M past a 6-row panel
      {2, 33, 12, 8, 13, true},   // K and M past tile edges
      {1, 3, 20, 40, 65, false},  // several GEMM blocks, a last block of 8 tiles
      {1, 4, 6, 10, 5, true},     // not covered (H % 4, W % 8): the direct kernel
  };
  for (const auto& cc : cases)
    for (int variant = 0; variant < 4; ++variant) {  // plain; relu; add; add + relu
      const bool add = variant >= 2, relu = variant % 2 == 1;
      SCOPED_TRACE(::testing::Message() << "n" << cc.n << " c" << cc.c << " " << cc.h << "x" << cc.w << " m" << cc.m
                                        << " add " << add << " relu " << relu);
      const auto [conv, x, w, b, addend] = random_winograd_conv(cc.n, cc.c, cc.h, cc.w, cc.m, cc.bias, rng);
      Graph g;
      if (variant == 0) g.initializers["w"] = w;  // weights transformed at preparation; run-time weights otherwise
      fast::ConvFusion fusion;
      fusion.add = add;
      fusion.relu = relu;
      auto kernel = fast::prepare_conv_f32_winograd(conv, g, fusion);
      ASSERT_TRUE(kernel);
      Inputs in = {&x, variant == 0 ? g.initializer("w") : &w, cc.bias ? &b : nullptr};
      if (add) in.push_back(&addend);
      std::vector<Tensor> got(1);
      got[0] = make_f32({1}, {std::nanf("")});
      kernel(in, got);
      ASSERT_EQ(got[0].shape, (Shape{cc.n, cc.m, cc.h, cc.w}));
      for (int64_t i = 0; i < cc.n; ++i)
        for (int64_t mo = 0; mo < cc.m; ++mo)
          for (int64_t oy = 0; oy < cc.h; ++oy)
            for (int64_t ox = 0; ox < cc.w; ++ox) {
              double sum = cc.bias ? b.data<float>()[mo] : 0.0, mag = std::fabs(sum);
              for (int64_t ci = 0; ci < cc.c; ++ci)
                for (int64_t ky = 0; ky < 3; ++ky)
                  for (int64_t kx = 0; kx < 3; ++kx) {
                    const int64_t iy = oy + ky - 1, ix = ox + kx - 1;
                    if (iy < 0 || iy >= cc.h || ix < 0 || ix >= cc.w) continue;
                    const double p = double(w.data<float>()[((mo * cc.c + ci) * 3 + ky) * 3 + kx]) *
                                     x.data<float>()[((i * cc.c + ci) * cc.h + iy) * cc.w + ix];
                    sum += p;
                    mag += std::fabs(p);
                  }
              const int64_t at = ((i * cc.m + mo) * cc.h + oy) * cc.w + ox;
              if (add) sum += addend.data<float>()[at], mag += std::fabs(addend.data<float>()[at]);
              if (relu) sum = std::max(0.0, sum);
              ASSERT_NEAR(got[0].data<float>()[at], sum, 4e-6 * mag + 1e-7) << "image " << i << " channel " << mo
                                                                            << " at " << oy << "," << ox;
            }
    }
}

// Fused Add/Relu are the unfused chain's operations on the same values (bit for bit), and one image split over
// intra-op threads gives the bits of a single-threaded run.
TEST(FastConvWinograd, FusionAndThreadsDoNotChangeBits) {
  std::mt19937 rng(43);
  Node conv{"conv", "Conv", "", {"x", "w", "b"}, {"y"}, {}};
  conv.attrs["pads"].kind = Attribute::Kind::Ints;
  conv.attrs["pads"].ints = {1, 1, 1, 1};
  Tensor x = make_f32({1, 16, 32, 32}, random_floats(16 * 1024, rng, -2, 2));
  Tensor w = make_f32({16, 16, 3, 3}, random_floats(16 * 16 * 9, rng));
  Tensor b = make_f32({16}, random_floats(16, rng));
  Tensor addend = make_f32({1, 16, 32, 32}, random_floats(16 * 1024, rng, -2, 2));
  Graph g;
  std::vector<Tensor> y(1), sum(1), want(1), got(1), threaded(1);
  fast::prepare_conv_f32_winograd(conv, g, {})({&x, &w, &b}, y);
  find_op("Add")->reference(Node{"a", "Add", "", {"y", "r"}, {"s"}, {}}, {&y[0], &addend}, sum);
  find_op("Relu")->reference(Node{"r", "Relu", "", {"s"}, {"z"}, {}}, {&sum[0]}, want);
  fast::ConvFusion fusion;
  fusion.add = fusion.relu = true;
  auto fused = fast::prepare_conv_f32_winograd(conv, g, fusion);
  fused({&x, &w, &b, &addend}, got);
  ASSERT_EQ(0, std::memcmp(got[0].bytes.data(), want[0].bytes.data(), want[0].bytes.size()));
  {
    IntraOpScope scope(2);
    set_min_multiply_adds_to_split(0);  // this 2.4 M multiply-add conv would otherwise stay on one thread
    fused({&x, &w, &b, &addend}, threaded);
    set_min_multiply_adds_to_split(8'000'000);
  }
  ASSERT_EQ(0, std::memcmp(threaded[0].bytes.data(), want[0].bytes.data(), want[0].bytes.size()));
}

// The AVX-512 GEMM computes each output by the AVX2 path's FMA chain over the input channels, with wider vectors and
// taller register tiles, so the two give the same bits: shapes with odd channel counts, M that is not a multiple of
// 6 or 12, blocks whose tile counts leave 32-, 16- and 8-tile remainders, several blocks per image, fused epilogues,
// run-time weights and one image split over two threads.
TEST(FastConvWinograd, Avx512MatchesAvx2BitForBit) {
  if (!has_avx512f()) GTEST_SKIP() << "this CPU has no AVX-512F: only the AVX2 path runs";
  std::mt19937 rng(47);
  struct Case {
    int64_t n, c, h, w, m;
  };
  std::vector<Case> cases = {
      {2, 16, 32, 32, 16}, {1, 32, 16, 16, 32}, {3, 64, 8, 8, 64},  {1, 5, 4, 24, 7}, {2, 33, 12, 8, 13},
      {1, 3, 20, 40, 65},  {1, 7, 8, 96, 11},   {2, 9, 16, 48, 19}, {1, 6, 8, 16, 5}, {1, 1, 4, 8, 1},
  };
  std::uniform_int_distribution<int64_t> channels(1, 70), rows4(1, 6), cols8(1, 6);
  for (int k = 0; k < 12; ++k)
    cases.push_back({1 + k % 2, channels(rng), 4 * rows4(rng), 8 * cols8(rng), channels(rng)});
  for (const auto& cc : cases)
    for (int variant = 0; variant < 3; ++variant) {  // constant weights; run-time weights + add + relu; 2 threads
      SCOPED_TRACE(::testing::Message() << "n" << cc.n << " c" << cc.c << " " << cc.h << "x" << cc.w << " m" << cc.m
                                        << " variant " << variant);
      const auto [conv, x, w, b, addend] = random_winograd_conv(cc.n, cc.c, cc.h, cc.w, cc.m, true, rng);
      Graph g;
      if (variant != 1) g.initializers["w"] = w;
      fast::ConvFusion fusion;
      fusion.add = fusion.relu = variant == 1;
      fast::force_avx2_float_kernels(true);
      auto avx2 = fast::prepare_conv_f32_winograd(conv, g, fusion);
      fast::force_avx2_float_kernels(false);
      auto avx512 = fast::prepare_conv_f32_winograd(conv, g, fusion);
      ASSERT_TRUE(avx2 && avx512);
      Inputs in = {&x, variant != 1 ? g.initializer("w") : &w, &b};
      if (fusion.add) in.push_back(&addend);
      std::vector<Tensor> want(1), got(1);
      avx2(in, want);
      {
        IntraOpScope scope(variant == 2 ? 2 : 1);
        set_min_multiply_adds_to_split(0);  // split even these small shapes over the threads
        avx512(in, got);
        set_min_multiply_adds_to_split(8'000'000);
      }
      ASSERT_EQ(got[0].shape, want[0].shape);
      ASSERT_EQ(0, std::memcmp(got[0].bytes.data(), want[0].bytes.data(), want[0].bytes.size()));
    }
}

TEST(FastConvWinograd, DeclinesOtherConvsAndQuantizedEpilogues) {
  Graph g;
  auto conv = [](std::vector<int64_t> pads, std::vector<int64_t> strides) {
    Node n{"c", "Conv", "", {"x", "w"}, {"y"}, {}};
    n.attrs["pads"].kind = n.attrs["strides"].kind = Attribute::Kind::Ints;
    n.attrs["pads"].ints = std::move(pads);
    n.attrs["strides"].ints = std::move(strides);
    return n;
  };
  EXPECT_TRUE(fast::prepare_conv_f32_winograd(conv({1, 1, 1, 1}, {1, 1}), g, {}));
  EXPECT_FALSE(fast::prepare_conv_f32_winograd(conv({1, 1, 1, 1}, {2, 2}), g, {}));
  EXPECT_FALSE(fast::prepare_conv_f32_winograd(conv({0, 0, 1, 1}, {1, 1}), g, {}));
  fast::ConvFusion quantized;
  quantized.fake_quant = true;
  EXPECT_FALSE(fast::prepare_conv_f32_winograd(conv({1, 1, 1, 1}, {1, 1}), g, quantized));
}

}  // namespace
}  // namespace qplay
