// Float convolution as a GEMM: Y[m, j] = sum_k A[m, k] * B[k, j] + bias[m], with A the weights [M, K = C*KH*KW] and B
// the input patches [K, J = OH*OW] of one image (im2col).
//
// Arithmetic (the contract shared with sgemm.h and ONNX Runtime's MLAS): every Y element is an FMA chain over k
// restarted at zero for each k-block of mlas_k_block(J, K), the blocks are added in order, then the bias, then (fused)
// the conv's own QuantizeLinear/DequantizeLinear pair, the residual Add, the Relu and the result's pair. Only the
// schedule differs from `im2col + sgemm`:
//   - A is packed once per executor (prepare) when W is a constant, in panels of kMR rows;
//   - B is never materialised whole: the image is copied once into a zero-padded buffer; stride-1 convs whose output
//     rows are whole 8-position halves read their taps from it in place, the others gather each strip of kNR output
//     positions into a [K][kNR] panel that stays in L1/L2 while every row panel uses it;
//   - a kMR x kNR register tile runs all k-blocks (folding each into the tile in order) and stores once, through the
//     epilogue.
// CPUs with AVX-512 run two strips at once with 16-lane vectors (the same FMA chains per element, so the same floats);
// CPUs without AVX2/FMA run the plain im2col + sgemm_portable path (same arithmetic).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>

#include "runtime/cpu_features.h"
#include "runtime/kernels/fast/padded_image.h"
#include "runtime/kernels/fast/providers.h"
#include "runtime/kernels/fast/sgemm.h"
#include "runtime/kernels/reference/common.h"
#include "runtime/thread_pool.h"

namespace qplay::fast {
namespace {

constexpr int64_t kMR = 6;   // output channels per register tile
constexpr int64_t kNR = 16;  // output positions per register tile (two 8-float vectors)

struct Conv2dGeometry {
  int64_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, pad_bottom, pad_right;
};

// A [M, K] in panels of kMR rows: panel p, column k holds A[p*kMR + r, k] for r < kMR at packed[(p*K + k)*kMR + r]
// (zero rows past M), so the micro-kernel reads one line per k.
struct PackedWeights {
  int64_t m = 0, k = 0;
  std::vector<float> data;
};

void pack_weights(const float* a, int64_t m, int64_t k, PackedWeights& p) {
  const int64_t panels = (m + kMR - 1) / kMR;
  p.m = m;
  p.k = k;
  p.data.assign(static_cast<size_t>(panels * k * kMR), 0.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t q = 0; q < k; ++q) p.data[static_cast<size_t>(((i / kMR) * k + q) * kMR + i % kMR)] = a[i * k + q];
}

// ---- portable path (no AVX2): im2col + sgemm_portable
// ---------------------------------------

// im2col: row (c, ky, kx), column (oy, ox); taps in the padding read as 0.
void im2col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
            const Conv2dGeometry& g, float* col) {
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx) {
        float* row = col + ((ci * kh + ky) * kw + kx) * oh * ow;
        const float* plane = x + ci * h * w;
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) {
            const int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
            const int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dil_w;
            row[oy * ow + ox] = iy >= 0 && iy < h && ix >= 0 && ix < w ? plane[iy * w + ix] : 0.0f;
          }
      }
}

// ---- AVX2 path
// ---------------------------------------------------------------------------------

// One image's shape, its zero-padded copy's shape, and the per-k offsets of the patch taps in it.
struct ConvPlan {
  int64_t c, h, w, m, kh, kw, oh, ow, k, spatial, k_block;
  int64_t hp, wp;              // padded plane: (pad_top + h + pad_bottom) x (pad_left + w +
                               // pad_right)
  std::vector<int64_t> k_off;  // row k = (ci, ky, kx): ci*hp*wp + ky*dil_h*wp + kx*dil_w
};

// The padded image (padded_image.h) of a conv input.
PaddedGeometry padded_geometry(const ConvPlan& p, const Conv2dGeometry& g) {
  return {p.c, p.h, p.w, g.pad_top, g.pad_left, p.hp, p.wp};
}

// A run of output positions of one strip that share an output row.
struct Segment {
  int64_t lane, len,
      src;  // first lane, lane count, offset of lane 0's (ky=0, kx=0) tap
};

// Gathers the strip of output positions [j0, j0 + cols) of one padded image into panel[k][kNR] (lanes past `cols` are
// zero). Lane l of row k is the tap (ci, ky, kx) of position j0 + l.
__attribute__((target("avx2,fma"))) void pack_strip(const float* xp, const ConvPlan& p, const Conv2dGeometry& g,
                                                    int64_t j0, int64_t cols, float* panel) {
  Segment segs[kNR];
  int64_t nseg = 0;
  for (int64_t lane = 0; lane < cols;) {
    const int64_t j = j0 + lane, oy = j / p.ow, ox = j % p.ow;
    const int64_t len = std::min(cols - lane, p.ow - ox);
    segs[nseg++] = {lane, len, oy * g.stride_h * p.wp + ox * g.stride_w};
    lane += len;
  }
  const int64_t sw = g.stride_w;
  for (int64_t kk = 0; kk < p.k; ++kk) {
    const float* base = xp + p.k_off[kk];
    float* dst = panel + kk * kNR;
    // 8-lane stores may run up to 7 lanes past a segment: the next segment (or the next row, packed after this one, or
    // the panel's slack) overwrites them.
    for (int64_t s = 0; s < nseg; ++s) {
      const float* src = base + segs[s].src;
      float* d = dst + segs[s].lane;
      const int64_t len = segs[s].len;
      if (sw == 1) {
        for (int64_t c0 = 0; c0 < len; c0 += 8) _mm256_storeu_ps(d + c0, _mm256_loadu_ps(src + c0));
      } else if (sw == 2) {
        for (int64_t c0 = 0; c0 < len; c0 += 8) {
          const __m256 lo = _mm256_loadu_ps(src + 2 * c0), hi = _mm256_loadu_ps(src + 2 * c0 + 8);
          const __m256 even = _mm256_shuffle_ps(lo, hi, 0x88);  // lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6
          _mm256_storeu_ps(d + c0, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8)));
        }
      } else {
        for (int64_t l = 0; l < len; ++l) d[l] = src[l * sw];
      }
    }
  }
  if (cols < kNR)
    for (int64_t kk = 0; kk < p.k; ++kk) std::fill(panel + kk * kNR + cols, panel + (kk + 1) * kNR, 0.0f);
}

// A QuantizeLinear -> DequantizeLinear pair (FakeQuant) with its integers as floats.
struct FakeQuantF {
  float q_scale = 1, q_zero_point = 0, q_min = 0, q_max = 0, dq_scale = 1, dq_zero_point = 0;
};

FakeQuantF fake_quant_floats(const FakeQuant& f) {
  FakeQuantF e;
  e.q_scale = f.q_scale;
  e.q_zero_point = static_cast<float>(f.q_zero_point);
  e.q_min = f.q_dtype == DType::u8 ? 0.0f : -128.0f;
  e.q_max = f.q_dtype == DType::u8 ? 255.0f : 127.0f;
  e.dq_scale = f.dq_scale;
  e.dq_zero_point = static_cast<float>(f.dq_zero_point);
  return e;
}

// What the last k-block adds after the sum, in the order of the unfused nodes: y = sum + bias, the conv's own
// QuantizeLinear -> DequantizeLinear pair, + residual, max(0, y), the result's pair (ConvFusion).
struct Epilogue {
  const float* bias = nullptr;      // [M] or null
  bool conv_fake_quant = false;
  FakeQuantF conv_quant;
  const float* residual = nullptr;  // same layout as the output, or null
  bool relu = false;
  bool fake_quant = false;
  FakeQuantF quant;
};

// QuantizeLinear then DequantizeLinear, as their fast kernels (elementwise_f32.cc) compute them:
// q = clamp(nearbyint(x / s) + zp) in float (NaN -> zp), then float(q - zp') * s'. q and zp' are
// small integers, so q - zp' in float is exact, as the kernel's int32 subtraction is.
__attribute__((target("avx2,fma"))) inline __m256 fake_quant_avx2(__m256 x, const FakeQuantF& e) {
  const __m256 zp = _mm256_set1_ps(e.q_zero_point);
  const __m256 q = _mm256_div_ps(x, _mm256_set1_ps(e.q_scale));
  const __m256 nan = _mm256_cmp_ps(q, q, _CMP_UNORD_Q);
  __m256 v = _mm256_add_ps(_mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(e.q_min)), _mm256_set1_ps(e.q_max));
  v = _mm256_blendv_ps(v, zp, nan);
  return _mm256_mul_ps(_mm256_sub_ps(v, _mm256_set1_ps(e.dq_zero_point)), _mm256_set1_ps(e.dq_scale));
}

inline float fake_quant_scalar(float x, const FakeQuantF& e) {
  const float q = x / e.q_scale;
  float v = std::isnan(q) ? e.q_zero_point : std::min(std::max(std::nearbyint(q) + e.q_zero_point, e.q_min), e.q_max);
  return (v - e.dq_zero_point) * e.dq_scale;
}

// tile = c (the first k-block) or tile + c (a later one).
__attribute__((target("avx2,fma"), always_inline)) inline void fold_block(float* tile, __m256 c, bool first) {
  _mm256_store_ps(tile, first ? c : _mm256_add_ps(_mm256_load_ps(tile), c));
}

// Where the micro-kernel reads row q of B (16 output positions as two 8-float halves).
// A gathered panel: row q at panel[q * kNR].
struct PanelRows {
  const float* panel;
  const float* lo(int64_t q) const { return panel + q * kNR; }
  const float* hi(int64_t q) const { return panel + q * kNR + 8; }
};
// Straight from the padded image (stride-1 convs whose output rows are whole halves): each half is 8 consecutive
// output positions of one row, so its tap (ci, ky, kx) is 8 consecutive floats at half + k_off[q].
struct ImageTaps {
  const float* lo_half;
  const float* hi_half;
  const int64_t* k_off;
  const float* lo(int64_t q) const { return lo_half + k_off[q]; }
  const float* hi(int64_t q) const { return hi_half + k_off[q]; }
};

// tile[r][0..16) = sum over k-blocks in order of (sum_{q in block} a[q*kMR + r] * B[q][0..16)), each block an FMA
// chain from zero, q in order. Rows = 4 serves the last panel of M = 16, 32, ... (4 rows). Kept out of line: inlined
// into its caller, GCC keeps the caller's constants in registers and spills an accumulator (a store-forwarding chain
// per k).
template <int Rows, class Source>
__attribute__((target("avx2,fma"), noinline)) void micro_tile(int64_t k, int64_t kb, const float* a, Source b,
                                                              float* tile) {
  static_assert(Rows <= kMR);
  for (int64_t k0 = 0; k0 < k; k0 += kb) {
    const int64_t k1 = std::min(k, k0 + kb);
    __m256 c[Rows][2];
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) c[r][0] = c[r][1] = _mm256_setzero_ps();
    const float* ak = a + k0 * kMR;
    for (int64_t q = k0; q < k1; ++q, ak += kMR) {
      const __m256 b0 = _mm256_loadu_ps(b.lo(q)), b1 = _mm256_loadu_ps(b.hi(q));
#pragma GCC unroll 6
      for (int r = 0; r < Rows; ++r) {
        const __m256 av = _mm256_broadcast_ss(ak + r);
        c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);
        c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);
      }
    }
    // Block sums in order: tile = block 0, then tile + block 1, ...
    const bool first = k0 == 0;
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) {
      fold_block(tile + 16 * r, c[r][0], first);
      fold_block(tile + 16 * r + 8, c[r][1], first);
    }
  }
}

// A panel of `rows` valid rows (the packed panel is zero past them), all k-blocks of length kb.
template <class Source>
void micro_rows(int64_t rows, int64_t k, int64_t kb, const float* a, Source b, float* tile) {
  if (rows <= 4)
    micro_tile<4>(k, kb, a, b, tile);
  else
    micro_tile<6>(k, kb, a, b, tile);
}

// Writes the finished sums of rows [m0, m0 + rows) and columns [j0, j0 + cols) of Y, applying the epilogue.
__attribute__((target("avx2,fma"))) void store_tile(const float* tile, int64_t rows, int64_t cols, float* y,
                                                    int64_t ldy, int64_t m0, int64_t j0, const Epilogue& e) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    float* out = y + (m0 + r) * ldy + j0;
    const float* res = e.residual ? e.residual + (m0 + r) * ldy + j0 : nullptr;
    const float* t = tile + r * kNR;
    if (cols == kNR) {
      for (int h = 0; h < 2; ++h) {
        __m256 v = _mm256_load_ps(t + 8 * h);
        if (e.bias) v = _mm256_add_ps(v, _mm256_set1_ps(e.bias[m0 + r]));
        if (e.conv_fake_quant) v = fake_quant_avx2(v, e.conv_quant);
        if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + 8 * h));
        if (e.relu) v = _mm256_max_ps(zero, v);
        if (e.fake_quant) v = fake_quant_avx2(v, e.quant);
        _mm256_storeu_ps(out + 8 * h, v);
      }
    } else {
      for (int64_t l = 0; l < cols; ++l) {
        float v = t[l];
        if (e.bias) v = v + e.bias[m0 + r];
        if (e.conv_fake_quant) v = fake_quant_scalar(v, e.conv_quant);
        if (res) v = v + res[l];
        if (e.relu) v = v < 0.0f ? 0.0f : v;  // = _mm256_max_ps(0, v), NaN passed through
        if (e.fake_quant) v = fake_quant_scalar(v, e.quant);
        out[l] = v;
      }
    }
  }
}

// Strips [s0, s1) of one padded image xp -> Y [M, OH, OW]. `panel` holds one strip's patches.
__attribute__((target("avx2,fma"))) void conv_strips_avx2(const float* xp, const PackedWeights& a, const ConvPlan& p,
                                                          const Conv2dGeometry& g, float* y, const Epilogue& e,
                                                          int64_t s0, int64_t s1, float* panel) {
  alignas(32) float tile[kMR * kNR];
  const int64_t panels = (p.m + kMR - 1) / kMR;
  // Stride 1 with output rows made of whole 8-position halves: the taps are read from the padded image in place.
  const bool direct = g.stride_w == 1 && p.ow % 8 == 0;
  // The first position of the strip's halves as (row, column), advanced without divisions.
  int64_t oy = (s0 * kNR) / p.ow, ox = (s0 * kNR) % p.ow;
  for (int64_t j0 = s0 * kNR; j0 < std::min(p.spatial, s1 * kNR); j0 += kNR) {
    const int64_t cols = std::min(kNR, p.spatial - j0);
    ImageTaps taps{nullptr, nullptr, p.k_off.data()};
    if (direct) {
      taps.lo_half = xp + oy * g.stride_h * p.wp + ox;
      if ((ox += 8) == p.ow) ox = 0, ++oy;
      taps.hi_half = cols > 8 ? xp + oy * g.stride_h * p.wp + ox : taps.lo_half;
      if ((ox += 8) == p.ow) ox = 0, ++oy;
    } else {
      pack_strip(xp, p, g, j0, cols, panel);
    }
    for (int64_t pi = 0; pi < panels; ++pi) {
      const int64_t rows = std::min(kMR, p.m - pi * kMR);
      const float* ap = a.data.data() + pi * p.k * kMR;
      if (direct)
        micro_rows(rows, p.k, p.k_block, ap, taps, tile);
      else
        micro_rows(rows, p.k, p.k_block, ap, PanelRows{panel}, tile);
      store_tile(tile, rows, cols, y, p.spatial, pi * kMR, j0, e);
    }
  }
}

// ---- AVX-512 path: the AVX2 path's arithmetic on two strips at once
// ------------------------------------------------

// Where the 512-bit micro-kernel reads row q of a strip's B (16 output positions in one vector).
struct PanelRows16 {
  const float* panel;
  __attribute__((target("avx512f"), always_inline)) __m512 load(int64_t q) const {
    return _mm512_loadu_ps(panel + q * kNR);
  }
};
// Straight from the padded image, the strip's 16 positions consecutive in one output row.
struct ImageTaps16 {
  const float* first;
  const int64_t* k_off;
  __attribute__((target("avx512f"), always_inline)) __m512 load(int64_t q) const {
    return _mm512_loadu_ps(first + k_off[q]);
  }
};
// Straight from the padded image, the strip's two 8-position halves anywhere (e.g. in two output rows).
struct ImageTapsHalves {
  const float* lo_half;
  const float* hi_half;
  const int64_t* k_off;
  // The 64-bit-lane insert: avx512f only (the CPU check is has_avx512f()); the maskz form with all lanes set is the
  // plain instruction without GCC 12's warning about the unmasked one's undefined operand.
  __attribute__((target("avx512f"), always_inline)) __m512 load(int64_t q) const {
    const __m256d lo = _mm256_castps_pd(_mm256_loadu_ps(lo_half + k_off[q]));
    const __m256d hi = _mm256_castps_pd(_mm256_loadu_ps(hi_half + k_off[q]));
    return _mm512_castpd_ps(_mm512_maskz_insertf64x4(0xFF, _mm512_castpd256_pd512(lo), hi, 1));
  }
};

__attribute__((target("avx512f"), always_inline)) inline void fold_block16(float* tile, __m512 c, bool first) {
  _mm512_store_ps(tile, first ? c : _mm512_add_ps(_mm512_load_ps(tile), c));
}

// fake_quant_avx2 on 16 lanes: the same operations per element.
__attribute__((target("avx512f"), always_inline)) inline __m512 fake_quant_avx512(__m512 x, const FakeQuantF& e) {
  const __m512 zp = _mm512_set1_ps(e.q_zero_point);
  const __m512 q = _mm512_div_ps(x, _mm512_set1_ps(e.q_scale));
  const __mmask16 nan = _mm512_cmp_ps_mask(q, q, _CMP_UNORD_Q);
  // The masked forms with every lane set: GCC 12's unmasked ones warn about an undefined vector they pass inside.
  constexpr __mmask16 all = 0xFFFF;
  __m512 v = _mm512_add_ps(_mm512_mask_roundscale_ps(q, all, q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  v = _mm512_mask_max_ps(v, all, v, _mm512_set1_ps(e.q_min));
  v = _mm512_mask_min_ps(v, all, v, _mm512_set1_ps(e.q_max));
  v = _mm512_mask_blend_ps(nan, v, zp);
  return _mm512_mul_ps(_mm512_sub_ps(v, _mm512_set1_ps(e.dq_zero_point)), _mm512_set1_ps(e.dq_scale));
}

// store_tile for whole 16-column rows, one 16-lane vector per row; anything else goes to store_tile.
__attribute__((target("avx512f"))) void store_tile16(const float* tile, int64_t rows, int64_t cols, float* y,
                                                     int64_t ldy, int64_t m0, int64_t j0, const Epilogue& e) {
  if (cols != kNR) {
    store_tile(tile, rows, cols, y, ldy, m0, j0, e);
    return;
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    __m512 v = _mm512_load_ps(tile + r * kNR);
    if (e.bias) v = _mm512_add_ps(v, _mm512_set1_ps(e.bias[m0 + r]));
    if (e.conv_fake_quant) v = fake_quant_avx512(v, e.conv_quant);
    if (e.residual) v = _mm512_add_ps(v, _mm512_loadu_ps(e.residual + (m0 + r) * ldy + j0));
    if (e.relu) v = _mm512_mask_max_ps(v, 0xFFFF, zero, v);  // max(0, v), NaN passed through
    if (e.fake_quant) v = fake_quant_avx512(v, e.quant);
    _mm512_storeu_ps(y + (m0 + r) * ldy + j0, v);
  }
}

// micro_tile for two strips: tile0/tile1[r][0..16) get exactly the sums micro_tile gives each strip (per element an
// FMA chain from zero over each k-block, blocks folded in order), with Rows x 2 independent 16-lane accumulators.
template <int Rows, class Source>
__attribute__((target("avx512f"), noinline)) void micro_tile_pair(int64_t k, int64_t kb, const float* a, Source b0,
                                                                  Source b1, float* tile0, float* tile1) {
  static_assert(Rows <= kMR);
  for (int64_t k0 = 0; k0 < k; k0 += kb) {
    const int64_t k1 = std::min(k, k0 + kb);
    __m512 c0[Rows], c1[Rows];
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
    const float* ak = a + k0 * kMR;
    for (int64_t q = k0; q < k1; ++q, ak += kMR) {
      const __m512 x0 = b0.load(q), x1 = b1.load(q);
#pragma GCC unroll 6
      for (int r = 0; r < Rows; ++r) {
        const __m512 av = _mm512_set1_ps(ak[r]);
        c0[r] = _mm512_fmadd_ps(av, x0, c0[r]);
        c1[r] = _mm512_fmadd_ps(av, x1, c1[r]);
      }
    }
    const bool first = k0 == 0;
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) {
      fold_block16(tile0 + kNR * r, c0[r], first);
      fold_block16(tile1 + kNR * r, c1[r], first);
    }
  }
}

template <class Source>
void micro_rows_pair(int64_t rows, int64_t k, int64_t kb, const float* a, Source b0, Source b1, float* tile0,
                     float* tile1) {
  if (rows <= 4)
    micro_tile_pair<4>(k, kb, a, b0, b1, tile0, tile1);
  else
    micro_tile_pair<6>(k, kb, a, b0, b1, tile0, tile1);
}

// Where strip s's taps start in the padded image (stride-1 direct convs): its two halves.
struct StripHalves {
  const float* lo;
  const float* hi;
};
StripHalves strip_halves(const float* xp, const ConvPlan& p, const Conv2dGeometry& g, int64_t s) {
  const int64_t j0 = s * kNR, cols = std::min(kNR, p.spatial - j0);
  const int64_t oy = j0 / p.ow, ox = j0 % p.ow;
  const float* lo = xp + oy * g.stride_h * p.wp + ox;
  if (cols <= 8) return {lo, lo};
  const int64_t j1 = j0 + 8, oy1 = j1 / p.ow, ox1 = j1 % p.ow;
  return {lo, xp + oy1 * g.stride_h * p.wp + ox1};
}

// conv_strips_avx2 with strips taken in pairs [s, s + 1); an odd last strip goes to conv_strips_avx2. `panels` holds
// two strips' patches.
__attribute__((target("avx512f,avx2,fma"))) void conv_strips_avx512(const float* xp, const PackedWeights& a,
                                                                    const ConvPlan& p, const Conv2dGeometry& g,
                                                                    float* y, const Epilogue& e, int64_t s0, int64_t s1,
                                                                    float* panels) {
  alignas(64) float tile0[kMR * kNR], tile1[kMR * kNR];
  const int64_t row_panels = (p.m + kMR - 1) / kMR;
  const bool direct = g.stride_w == 1 && p.ow % 8 == 0;
  const bool whole_rows = direct && p.ow % kNR == 0;  // every strip is 16 consecutive positions of one row
  float* panel0 = panels;
  float* panel1 = panels + p.k * kNR + 8;
  int64_t s = s0;
  for (; s + 1 < s1; s += 2) {
    const int64_t j0 = s * kNR, j1 = j0 + kNR;
    const int64_t cols0 = kNR, cols1 = std::min(kNR, p.spatial - j1);
    StripHalves h0{}, h1{};
    if (direct) {
      h0 = strip_halves(xp, p, g, s);
      h1 = strip_halves(xp, p, g, s + 1);
    } else {
      pack_strip(xp, p, g, j0, cols0, panel0);
      pack_strip(xp, p, g, j1, cols1, panel1);
    }
    for (int64_t pi = 0; pi < row_panels; ++pi) {
      const int64_t rows = std::min(kMR, p.m - pi * kMR);
      const float* ap = a.data.data() + pi * p.k * kMR;
      if (whole_rows)
        micro_rows_pair(rows, p.k, p.k_block, ap, ImageTaps16{h0.lo, p.k_off.data()},
                        ImageTaps16{h1.lo, p.k_off.data()}, tile0, tile1);
      else if (direct)
        micro_rows_pair(rows, p.k, p.k_block, ap, ImageTapsHalves{h0.lo, h0.hi, p.k_off.data()},
                        ImageTapsHalves{h1.lo, h1.hi, p.k_off.data()}, tile0, tile1);
      else
        micro_rows_pair(rows, p.k, p.k_block, ap, PanelRows16{panel0}, PanelRows16{panel1}, tile0, tile1);
      store_tile16(tile0, rows, cols0, y, p.spatial, pi * kMR, j0, e);
      store_tile16(tile1, rows, cols1, y, p.spatial, pi * kMR, j1, e);
    }
  }
  if (s < s1) conv_strips_avx2(xp, a, p, g, y, e, s, s1, panels);
}

// Per-thread scratch: one strip's patches (the padded images are padded_image.h's).
struct Scratch {
  std::vector<float> panel;
};

Scratch& scratch_for(const ConvPlan& p) {
  thread_local Scratch s;
  // Two strips' panels (the AVX-512 path's pair), each +8: overhang of the last row's 8-lane stores.
  s.panel.resize(static_cast<size_t>(2 * (p.k * kNR + 8)));
  return s;
}

// Bias, residual and Relu as separate passes after sgemm (the portable path).
void apply_epilogue(float* y, int64_t m, int64_t spatial, const Epilogue& e) {
  for (int64_t mi = 0; mi < m; ++mi) {
    float* row = y + mi * spatial;
    const float* res = e.residual ? e.residual + mi * spatial : nullptr;
    for (int64_t s = 0; s < spatial; ++s) {
      float v = row[s];
      if (e.bias) v = v + e.bias[mi];
      if (e.conv_fake_quant) v = fake_quant_scalar(v, e.conv_quant);
      if (res) v = v + res[s];
      if (e.relu) v = v < 0.0f ? 0.0f : v;
      if (e.fake_quant) v = fake_quant_scalar(v, e.quant);
      row[s] = v;
    }
  }
}

std::atomic<bool> avx2_float_forced{false};

struct ConvSetup {
  Node node;
  Conv2dGeometry geo;
  ConvFusion fusion;
  bool avx512 = false;                          // chosen at preparation (use_avx512_float_kernels())
  std::shared_ptr<const PackedWeights> packed;  // when W is a constant of the graph
  const float* packed_for = nullptr;            // the constant's data it was packed from
};

// Runs the conv (and fused epilogue) when the inputs are what the fast path handles; returns false otherwise (the
// caller falls back to the reference kernels).
bool run_conv(const ConvSetup& s, const Inputs& in, Tensor& out) {
  const Tensor* x = in[0];
  const Tensor* w = in.size() > 1 ? in[1] : nullptr;
  const Tensor* b = in.size() > 2 ? in[2] : nullptr;
  const Tensor* r = s.fusion.add ? in[3] : nullptr;
  if (!x || !w || x->dtype != DType::f32 || w->dtype != DType::f32 || x->rank() != 4 || w->rank() != 4 ||
      w->shape[1] != x->shape[1] || (b && (b->dtype != DType::f32 || b->numel() != w->shape[0])))
    return false;
  const Conv2dGeometry& geo = s.geo;
  ConvPlan p;
  const int64_t n = x->shape[0];
  p.c = x->shape[1], p.h = x->shape[2], p.w = x->shape[3];
  p.m = w->shape[0], p.kh = w->shape[2], p.kw = w->shape[3];
  p.oh = (p.h + geo.pad_top + geo.pad_bottom - ((p.kh - 1) * geo.dil_h + 1)) / geo.stride_h + 1;
  p.ow = (p.w + geo.pad_left + geo.pad_right - ((p.kw - 1) * geo.dil_w + 1)) / geo.stride_w + 1;
  if (p.oh <= 0 || p.ow <= 0) return false;
  const Shape y_shape = {n, p.m, p.oh, p.ow};
  if (r && (r->dtype != DType::f32 || r->shape != y_shape)) return false;
  p.k = p.c * p.kh * p.kw;
  p.spatial = p.oh * p.ow;
  p.k_block = mlas_k_block(p.spatial, p.k);
  if (p.k == 0 || p.spatial == 0) return false;
  out.reset(DType::f32, y_shape);

  const size_t image_in = static_cast<size_t>(p.c * p.h * p.w), image_out = static_cast<size_t>(p.m * p.spatial);
  Epilogue e;
  e.bias = b ? b->data<float>() : nullptr;
  e.relu = s.fusion.relu;
  e.conv_fake_quant = s.fusion.conv_fake_quant;
  e.conv_quant = fake_quant_floats(s.fusion.conv_quant);
  e.fake_quant = s.fusion.fake_quant;
  e.quant = fake_quant_floats(s.fusion.quant);

  if (!has_avx2_fma()) {
    thread_local std::vector<float> col;
    col.resize(static_cast<size_t>(p.k * p.spatial));
    for (int64_t i = 0; i < n; ++i) {
      float* yi = out.data<float>() + i * image_out;
      im2col(x->data<float>() + i * image_in, p.c, p.h, p.w, p.kh, p.kw, p.oh, p.ow, geo, col.data());
      sgemm_portable(p.m, p.spatial, p.k, w->data<float>(), p.k, col.data(), p.spatial, yi, p.spatial);
      e.residual = r ? r->data<float>() + i * image_out : nullptr;
      apply_epilogue(yi, p.m, p.spatial, e);
    }
    return true;
  }

  const PackedWeights* a = s.packed.get();
  thread_local PackedWeights run_packed;
  if (!a || s.packed_for != w->data<float>() || a->m != p.m || a->k != p.k) {
    pack_weights(w->data<float>(), p.m, p.k,
                 run_packed);  // W computed at run time
    a = &run_packed;
  }
  p.hp = geo.pad_top + p.h + geo.pad_bottom;
  p.wp = geo.pad_left + p.w + geo.pad_right;
  p.k_off.resize(static_cast<size_t>(p.k));
  for (int64_t ci = 0, kk = 0; ci < p.c; ++ci)
    for (int64_t ky = 0; ky < p.kh; ++ky)
      for (int64_t kx = 0; kx < p.kw; ++kx, ++kk) p.k_off[kk] = (ci * p.hp + ky * geo.dil_h) * p.wp + kx * geo.dil_w;
  const int64_t strips = (p.spatial + kNR - 1) / kNR;
  const auto strips_of = s.avx512 ? conv_strips_avx512 : conv_strips_avx2;
  const float* xb = x->data<float>();
  float* yb = out.data<float>();
  auto image = [&](int64_t i, int64_t s0, int64_t s1, const float* padded, Scratch& sc) {
    Epilogue ei = e;
    ei.residual = r ? r->data<float>() + i * image_out : nullptr;
    strips_of(padded, *a, p, geo, yb + i * image_out, ei, s0, s1, sc.panel.data());
  };
  // Intra-op threads (a run that asked for them): one image's strips split in contiguous chunks,
  // or whole images. Each output element is computed by the same code whichever thread runs it.
  const int threads = intra_op_threads();
  if (threads > 1 && n == 1 && strips > 1 && p.m * p.spatial * p.k >= min_multiply_adds_to_split()) {
    float* shared = padded_buffer(padded_geometry(p, geo));
    pad_image(xb, padded_geometry(p, geo), shared);
    const int64_t chunks = std::min<int64_t>(4 * threads, strips);  // small chunks: a busy helper takes fewer
    parallel_for(chunks, threads, [&](int64_t c) {
      Scratch& sc = scratch_for(p);
      Epilogue ei = e;
      ei.residual = r ? r->data<float>() : nullptr;
      strips_of(shared, *a, p, geo, yb, ei, strips * c / chunks, strips * (c + 1) / chunks, sc.panel.data());
    });
    return true;
  }
  parallel_for(n, threads, [&](int64_t i) {
    Scratch& sc = scratch_for(p);
    float* padded = padded_buffer(padded_geometry(p, geo));
    pad_image(xb + i * image_in, padded_geometry(p, geo), padded);
    image(i, 0, strips, padded, sc);
  });
  return true;
}

Node fused_step(const Node& conv, const char* op_type, std::vector<std::string> inputs) {
  return Node{conv.name, op_type, "", std::move(inputs), {conv.outputs[0]}, {}};
}

}  // namespace

PreparedKernel prepare_conv_f32_fused(const Node& node, const Graph& graph, ConvFusion fusion) {
  if (node.op_type != "Conv" || !node.domain.empty()) return nullptr;
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (!(auto_pad.empty() || auto_pad == "NOTSET") || node.attr_int("group", 1) != 1) return nullptr;
  const auto pads = node.attr_ints("pads", {0, 0, 0, 0});
  const auto strides = node.attr_ints("strides", {1, 1});
  const auto dilations = node.attr_ints("dilations", {1, 1});
  if (pads.size() != 4 || strides.size() != 2 || dilations.size() != 2) return nullptr;  // not 2-D
  for (int64_t v : strides)
    if (v < 1 || v > 4096) return nullptr;
  for (int64_t v : dilations)
    if (v < 1) return nullptr;
  for (int64_t v : pads)
    if (v < 0) return nullptr;
  auto setup = std::make_shared<ConvSetup>();
  setup->node = node;
  setup->geo = {strides[0], strides[1], dilations[0], dilations[1], pads[0], pads[1], pads[2], pads[3]};
  setup->fusion = fusion;
  setup->avx512 = use_avx512_float_kernels();
  // Weights that are constants of the graph are packed here, once.
  if (node.inputs.size() > 1)
    if (const Tensor* w = graph.initializer(node.inputs[1]))
      if (w->dtype == DType::f32 && w->rank() == 4 && w->numel() > 0) {
        auto packed = std::make_shared<PackedWeights>();
        pack_weights(w->data<float>(), w->shape[0], w->numel() / w->shape[0], *packed);
        setup->packed = packed;
        setup->packed_for = w->data<float>();
      }

  const ReferenceKernel conv_ref = find_op("Conv")->reference;
  auto eight_bit = [](const FakeQuant& f) { return f.q_dtype == DType::u8 || f.q_dtype == DType::i8; };
  if ((fusion.fake_quant && !eight_bit(fusion.quant)) || (fusion.conv_fake_quant && !eight_bit(fusion.conv_quant)))
    return nullptr;
  if (!fusion.add && !fusion.relu && !fusion.fake_quant && !fusion.conv_fake_quant)
    return [setup, conv_ref](const Inputs& in, std::vector<Tensor>& out) {
      // Anything unusual (wrong rank, types, shapes) goes to the reference, which validates and explains.
      if (!run_conv(*setup, in, out[0])) conv_ref(setup->node, in, out);
    };
  // Fused: inputs are the conv's (X, W, B) then, with `add`, the other addend.
  const ReferenceKernel add_ref = find_op("Add")->reference, relu_ref = find_op("Relu")->reference;
  const ReferenceKernel q_ref = find_op("QuantizeLinear")->reference, dq_ref = find_op("DequantizeLinear")->reference;
  return [setup, conv_ref, add_ref, relu_ref, q_ref, dq_ref](const Inputs& in, std::vector<Tensor>& out) {
    if (run_conv(*setup, in, out[0])) return;
    // Unfused fallback: the same steps one node at a time (reference kernels explain errors).
    const ConvFusion f = setup->fusion;
    const Inputs conv_in = f.add ? Inputs(in.begin(), in.begin() + 3) : in;
    std::vector<Tensor> y(1), z(1);
    ConvSetup plain = *setup;
    plain.fusion = {};
    if (!run_conv(plain, conv_in, y[0])) conv_ref(setup->node, conv_in, y);
    auto fake_quant = [&](const FakeQuant& fq) {
      Tensor qs = make_scalar_f32(fq.q_scale), dqs = make_scalar_f32(fq.dq_scale);
      Tensor qz(fq.q_dtype, {}), dqz(fq.q_dtype, {});
      if (fq.q_dtype == DType::u8) {
        qz.data<uint8_t>()[0] = static_cast<uint8_t>(fq.q_zero_point);
        dqz.data<uint8_t>()[0] = static_cast<uint8_t>(fq.dq_zero_point);
      } else {
        qz.data<int8_t>()[0] = static_cast<int8_t>(fq.q_zero_point);
        dqz.data<int8_t>()[0] = static_cast<int8_t>(fq.dq_zero_point);
      }
      q_ref(fused_step(setup->node, "QuantizeLinear", {"y", "s", "z"}), {&y[0], &qs, &qz}, z);
      std::swap(y, z);
      dq_ref(fused_step(setup->node, "DequantizeLinear", {"q", "s", "z"}), {&y[0], &dqs, &dqz}, z);
      std::swap(y, z);
    };
    if (f.conv_fake_quant) fake_quant(f.conv_quant);
    if (f.add) {
      add_ref(fused_step(setup->node, "Add", {"conv", "addend"}), {&y[0], in.back()}, z);
      std::swap(y, z);
    }
    if (f.relu) {
      relu_ref(fused_step(setup->node, "Relu", {"sum"}), {&y[0]}, z);
      std::swap(y, z);
    }
    if (f.fake_quant) fake_quant(f.quant);
    out[0] = std::move(y[0]);
  };
}

void force_avx2_float_kernels(bool avx2) { avx2_float_forced = avx2; }

bool use_avx512_float_kernels() { return !avx2_float_forced && has_avx2_fma() && has_avx512f(); }

PreparedKernel prepare_conv_f32(const Node& node, const Graph& graph) {
  return prepare_conv_f32_fused(node, graph, ConvFusion{});
}

std::vector<KernelProvider> all_providers() {
  return {prepare_conv_f32, prepare_elementwise_f32, prepare_pool_f32, prepare_transpose};
}

}  // namespace qplay::fast
