// The integer Winograd F(2x2, 3x3) pieces (runtime/kernels/fast/winograd_s16.h) against a plain 3x3
// convolution summed in int64: weight packing, input transform, the micro-kernel per position and
// the output transform must give the direct sums plus bias exactly, for the AVX-512, AVX2 and
// portable transforms (those the CPU runs), on random shapes and at the extremes the exactness argument allows:
// operands of magnitude 255 with the largest channel count winograd_s16_exact accepts. The QConv kernels that use it
// are checked against the reference in integer_kernels_test.cc.
#include "runtime/kernels/fast/winograd_s16.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <sstream>

#include "runtime/cpu_features.h"
#include "runtime/kernels/fast/qgemm_s16.h"

namespace qplay {
namespace {

struct Case {
  int64_t channels, rows, h, w;  // w % 8 == 0, h even
};

// Output (m, oy, ox) of a 3x3 convolution with padding 1: x[c][iy][ix] and w[m][c][ky][kx] are
// already minus their zero points.
int64_t direct_sum(const std::vector<int32_t>& x, const std::vector<int32_t>& w, const Case& cc, int64_t m, int64_t oy,
                   int64_t ox) {
  int64_t sum = 0;
  for (int64_t c = 0; c < cc.channels; ++c)
    for (int64_t ky = 0; ky < 3; ++ky)
      for (int64_t kx = 0; kx < 3; ++kx) {
        const int64_t iy = oy + ky - 1, ix = ox + kx - 1;
        if (iy < 0 || iy >= cc.h || ix < 0 || ix >= cc.w) continue;
        sum += int64_t{x[(c * cc.h + iy) * cc.w + ix]} * w[((m * cc.channels + c) * 3 + ky) * 3 + kx];
      }
  return sum;
}

struct Transforms {
  const char* name;
  decltype(&fast::winograd_s16_input_portable) input;
  decltype(&fast::winograd_s16_output_portable) output;
};

// The transforms this CPU runs.
std::vector<Transforms> transforms_here() {
  std::vector<Transforms> t = {{"portable", fast::winograd_s16_input_portable, fast::winograd_s16_output_portable}};
  if (has_avx2()) t.push_back({"avx2", fast::winograd_s16_input_avx2, fast::winograd_s16_output_avx2});
  if (has_avx512bw()) t.push_back({"avx512", fast::winograd_s16_input_avx512, fast::winograd_s16_output_avx512});
  return t;
}

// Runs the Winograd pieces the way the QConv driver does and checks every output.
void check_case(const Case& cc, const std::vector<int32_t>& x, const std::vector<int32_t>& w,
                const std::vector<int32_t>& bias, const Transforms& tr, const std::string& what) {
  SCOPED_TRACE(what + " " + tr.name);
  const fast::WinogradS16Weights packed = fast::pack_winograd_s16(
      cc.rows, cc.channels,
      [&](int64_t m, int64_t c, int ky, int kx) { return w[((m * cc.channels + c) * 3 + ky) * 3 + kx]; });
  // The parity-split padded copy, written element by element from its definition.
  fast::WinogradInputLayout l{(cc.channels + 1) / 2, cc.h + 2, cc.w / 2 + 1, cc.w / 2, (cc.h / 2) * (cc.w / 2)};
  std::vector<int16_t> buffer(static_cast<size_t>(2 * l.channel_pairs * 2 * l.padded_h * l.phase_w + 64), 0);
  for (int64_t c = 0; c < cc.channels; ++c)
    for (int64_t iy = 0; iy < cc.h; ++iy)
      for (int64_t ix = 0; ix < cc.w; ++ix) {
        const int64_t padded_col = ix + 1, parity = padded_col % 2, q = padded_col / 2;
        const int64_t pair = ((c / 2 * 2 + parity) * l.padded_h + iy + 1) * l.phase_w + q;
        buffer[static_cast<size_t>(2 * pair + c % 2)] = static_cast<int16_t>(x[(c * cc.h + iy) * cc.w + ix]);
      }
  std::vector<int16_t> v(static_cast<size_t>(fast::kWinogradPositions * l.channel_pairs * 16 * 2), 0);
  std::vector<int32_t> offsets(static_cast<size_t>(l.channel_pairs));
  for (int64_t j = 0; j < l.channel_pairs; ++j) offsets[j] = static_cast<int32_t>(j * 16);
  const fast::QKernels k = fast::select_qkernels();
  const int32_t zero[4] = {};
  std::vector<int32_t> padded_bias(static_cast<size_t>(packed.row_tiles * 4), 0);
  std::copy(bias.begin(), bias.end(), padded_bias.begin());
  alignas(32) int32_t products[16 * 64], units[4 * 64];
  for (int64_t first = 0; first < l.tiles; first += 16) {
    tr.input(buffer.data(), l, first, v.data());
    for (int64_t rt = 0; rt < packed.row_tiles; ++rt) {
      for (int pos = 0; pos < 16; ++pos) {
        const int16_t* vp = v.data() + pos * l.channel_pairs * 32;
        k.tile(l.channel_pairs, packed.at(pos, rt), offsets.data(), vp, vp + 16, zero, products + pos * 64);
      }
      tr.output(products, padded_bias.data() + rt * 4, units);
      for (int u = 0; u < 4 && first + 4 * u < l.tiles; ++u) {
        const int64_t t = first + 4 * u, ty = t / l.tiles_w, tx = t % l.tiles_w;
        for (int r = 0; r < 4 && rt * 4 + r < cc.rows; ++r)
          for (int row = 0; row < 2; ++row)
            for (int i = 0; i < 8; ++i) {
              const int64_t m = rt * 4 + r, oy = 2 * ty + row, ox = 2 * tx + i;
              const int64_t want = direct_sum(x, w, cc, m, oy, ox) + bias[m];
              ASSERT_EQ(units[u * 64 + r * 16 + row * 8 + i], want) << "m " << m << " y " << oy << " x " << ox;
            }
      }
    }
  }
}

TEST(WinogradS16, MatchesDirectSumsExactly) {
  std::mt19937 rng(21);
  const Case cases[] = {{1, 1, 2, 8},   {3, 16, 32, 32}, {16, 16, 8, 16}, {33, 21, 6, 16},
                        {64, 64, 8, 8}, {7, 5, 10, 24},  {2, 9, 4, 40}};
  std::uniform_int_distribution<int32_t> value(-255, 255);
  for (const Case& cc : cases) {
    std::vector<int32_t> x(static_cast<size_t>(cc.channels * cc.h * cc.w)),
        w(static_cast<size_t>(cc.rows * cc.channels * 9));
    std::vector<int32_t> bias(static_cast<size_t>(cc.rows));
    for (auto& e : x) e = value(rng);
    for (auto& e : w) e = value(rng);
    for (auto& b : bias) b = value(rng) * 4001;
    std::ostringstream what;
    what << "c" << cc.channels << " m" << cc.rows << " " << cc.h << "x" << cc.w;
    for (const Transforms& tr : transforms_here()) check_case(cc, x, w, bias, tr, what.str());
  }
}

// The largest channel count it accepts, with every product at +-255 * 255 and all of one sign: 4 Y
// is within 0.1% of 2^31 and must still come out exact.
TEST(WinogradS16, ExactAtTheChannelLimit) {
  ASSERT_TRUE(fast::winograd_s16_exact(917));
  ASSERT_FALSE(fast::winograd_s16_exact(918));
  const Case cc{917, 2, 4, 8};  // rows 1 and 2 see all 9 taps
  for (int sign : {1, -1}) {
    std::vector<int32_t> x(static_cast<size_t>(cc.channels * cc.h * cc.w), 255 * sign),
        w(cc.rows * cc.channels * 9, 255);
    for (int64_t i = cc.channels * 9; i < static_cast<int64_t>(w.size()); ++i) w[i] = -255;  // row 1: opposite sign
    const std::vector<int32_t> bias = {-7, 7};
    for (const Transforms& tr : transforms_here()) check_case(cc, x, w, bias, tr, sign > 0 ? "positive" : "negative");
  }
}

}  // namespace
}  // namespace qplay
