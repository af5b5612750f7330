// Float 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): a 2x2 block of outputs of one (output, input) channel pair costs 16
// multiplies instead of 36, so a conv does 2.25x fewer multiply-adds, plus cheap transforms of the input tiles and
// the output blocks.
//
// Per image, for each 4x4 input tile d (stride 2, overlapping by 2) and each output channel:
//   V = B^T d B  (per input channel),   M[xi] = sum_c U[xi][m][c] * V[xi][c]  (16 GEMMs),   Y = A^T M A  (2x2),
// with U = G g G^T the transformed 3x3 filter, computed once at preparation.
//
// The sums are not those of the direct convolution (they differ in the last bits, see the tolerance in
// tests/runtime/fast_kernels_test.cc), so the executor uses this kernel only in graphs without QuantizeLinear:
// in a QDQ model a conv output must land on ONNX Runtime's codes, which needs the direct kernel's MLAS order.
//
// Layout: tiles are taken in groups of 8 (two runs of 4 consecutive tiles of a tile row), so the input transform
// reads each run's taps with two vector loads and an even/odd split, and the output transform writes two 8-float
// row segments per run. Shapes it does not cover (odd sizes, output width not a multiple of 8, other geometries)
// run the direct kernel.
//
// On CPUs with AVX-512F, the GEMMs and transforms have 512-bit variants (kAvx512Kernels), chosen at preparation; they
// compute every output with the AVX2 variants' float operations in the same order, so the bits do not depend on the
// CPU.
#include <immintrin.h>

#include <algorithm>
#include <memory>

#include "runtime/cpu_features.h"
#include "runtime/kernels/fast/padded_image.h"
#include "runtime/kernels/fast/providers.h"
#include "runtime/kernels/reference/common.h"
#include "runtime/thread_pool.h"

namespace qplay::fast {
namespace {

constexpr int64_t kRows = 6;  // output channels per register tile
constexpr int kXi = 16;       // positions of a transformed 4x4 tile

// U[xi] for every (m, c), in panels of kRows output channels: U[xi][m][c] at u[((xi * panels + m / kRows) * c +
// c) * kRows + m % kRows] (zero rows past M), so the GEMM reads one line of kRows weights per input channel.
struct WinogradWeights {
  int64_t m = 0, c = 0, panels = 0;
  std::vector<float> u;
};

// U = G g G^T with G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]], in double, rounded once.
void transform_weights(const float* w, int64_t m, int64_t c, WinogradWeights& out) {
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  out.m = m;
  out.c = c;
  out.panels = (m + kRows - 1) / kRows;
  out.u.assign(static_cast<size_t>(kXi * out.panels * c * kRows), 0.0f);
  for (int64_t mi = 0; mi < m; ++mi)
    for (int64_t ci = 0; ci < c; ++ci) {
      const float* g = w + (mi * c + ci) * 9;
      double gg[4][3];  // G g
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 3; ++j) gg[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const double u = gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2];
          out.u[static_cast<size_t>((((i * 4 + j) * out.panels + mi / kRows) * c + ci) * kRows + mi % kRows)] =
              static_cast<float>(u);
        }
    }
}

// One image's geometry: output H x W (= input, pads 1), tiles_h x tiles_w tiles of 2x2 outputs, the padded input
// plane (H + 2) x (W + 2).
struct Plan {
  int64_t c, m, h, w, tiles_w, tiles, hp, wp;
  int64_t block;  // tiles per GEMM block (a multiple of 8)
};

// The eight tiles t0 .. t0 + 7 as two runs of four: the offset, in a padded plane, of each run's top-left tap,
// and, in the output plane, of each run's top-left output.
struct TileGroup {
  int64_t in[2], out[2];
};
TileGroup tile_group(const Plan& p, int64_t t0) {
  TileGroup g;
  for (int run = 0; run < 2; ++run) {
    const int64_t t = t0 + 4 * run, ty = t / p.tiles_w, tx = t % p.tiles_w;
    g.in[run] = 2 * ty * p.wp + 2 * tx;
    g.out[run] = 2 * ty * p.w + 2 * tx;
  }
  return g;
}

// The group's lane order: lo = the taps of run 0 (tiles 0-3), hi = run 1's (tiles 4-7), 8 consecutive floats each;
// in-lane shuffles give lanes [t0 t1 t4 t5 | t2 t3 t6 t7] without a lane-crossing permute. The GEMM does not care
// about the order, and the output transform's unpacks undo it (transform_output_group).
__attribute__((target("avx2,fma"))) inline __m256 even_of(__m256 lo, __m256 hi) { return _mm256_shuffle_ps(lo, hi, 0x88); }
__attribute__((target("avx2,fma"))) inline __m256 odd_of(__m256 lo, __m256 hi) { return _mm256_shuffle_ps(lo, hi, 0xDD); }

// V[xi][ci][j .. j + 8) for the group's eight tiles, every input channel; `v` has leading dimension ldv per row
// (ci) and c * ldv per xi. B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], applied along x to
// each of the 4 rows, then along y.
__attribute__((target("avx2,fma"))) void transform_input_group(const float* xp, const Plan& p, const TileGroup& g,
                                                               float* v, int64_t ldv) {
  const int64_t plane = p.hp * p.wp, xi_stride = p.c * ldv;
  for (int64_t ci = 0; ci < p.c; ++ci) {
    const float* a = xp + ci * plane + g.in[0];
    const float* b = xp + ci * plane + g.in[1];
    __m256 r[4][4];
    for (int i = 0; i < 4; ++i) {
      const float* ra = a + i * p.wp;
      const float* rb = b + i * p.wp;
      __m256 lo = _mm256_loadu_ps(ra), hi = _mm256_loadu_ps(rb);
      const __m256 d0 = even_of(lo, hi), d1 = odd_of(lo, hi);
      lo = _mm256_loadu_ps(ra + 2), hi = _mm256_loadu_ps(rb + 2);
      const __m256 d2 = even_of(lo, hi), d3 = odd_of(lo, hi);
      r[i][0] = _mm256_sub_ps(d0, d2);
      r[i][1] = _mm256_add_ps(d1, d2);
      r[i][2] = _mm256_sub_ps(d2, d1);
      r[i][3] = _mm256_sub_ps(d1, d3);
    }
    float* out = v + ci * ldv;
    for (int j = 0; j < 4; ++j) {
      _mm256_storeu_ps(out + (0 * 4 + j) * xi_stride, _mm256_sub_ps(r[0][j], r[2][j]));
      _mm256_storeu_ps(out + (1 * 4 + j) * xi_stride, _mm256_add_ps(r[1][j], r[2][j]));
      _mm256_storeu_ps(out + (2 * 4 + j) * xi_stride, _mm256_sub_ps(r[2][j], r[1][j]));
      _mm256_storeu_ps(out + (3 * 4 + j) * xi_stride, _mm256_sub_ps(r[1][j], r[3][j]));
    }
  }
}

// out[r][0 .. 8 * Vecs) = sum_ci a[ci * kRows + r] * v[ci * ldv + (0 .. 8 * Vecs)] for r < Rows.
template <int Rows, int Vecs>
__attribute__((target("avx2,fma"), noinline)) void gemm_tile(int64_t c, const float* a, const float* v, int64_t ldv,
                                                             float* out, int64_t ldo) {
  __m256 acc[Rows][Vecs];
#pragma GCC unroll 6
  for (int r = 0; r < Rows; ++r)
    for (int h = 0; h < Vecs; ++h) acc[r][h] = _mm256_setzero_ps();
  for (int64_t ci = 0; ci < c; ++ci, a += kRows, v += ldv) {
    __m256 b[Vecs];
    for (int h = 0; h < Vecs; ++h) b[h] = _mm256_loadu_ps(v + 8 * h);
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r);
      for (int h = 0; h < Vecs; ++h) acc[r][h] = _mm256_fmadd_ps(av, b[h], acc[r][h]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < Rows; ++r)
    for (int h = 0; h < Vecs; ++h) _mm256_storeu_ps(out + r * ldo + 8 * h, acc[r][h]);
}

template <int Vecs>
void gemm_rows(int64_t rows, int64_t c, const float* a, const float* v, int64_t ldv, float* out, int64_t ldo) {
  if (rows <= 4)
    gemm_tile<4, Vecs>(c, a, v, ldv, out, ldo);
  else
    gemm_tile<6, Vecs>(c, a, v, ldv, out, ldo);
}

// The 16 GEMMs of a block of tb tiles (a multiple of 8): M[xi] = U[xi] V[xi], V[xi] at v + xi * c * ld, M[xi] at
// m + xi * panels * kRows * ld, rows ld floats apart.
using BlockGemm = void (*)(const WinogradWeights& u, int64_t tb, const float* v, int64_t ld, float* m);

__attribute__((target("avx2,fma"))) void gemm_block_avx2(const WinogradWeights& u, int64_t tb, const float* v,
                                                         int64_t ld, float* m) {
  const int64_t rows_padded = u.panels * kRows;
  for (int xi = 0; xi < kXi; ++xi) {
    const float* vx = v + xi * u.c * ld;
    for (int64_t pi = 0; pi < u.panels; ++pi) {
      const int64_t rows = std::min(kRows, u.m - pi * kRows);
      const float* a = u.u.data() + (xi * u.panels + pi) * u.c * kRows;
      float* out = m + (xi * rows_padded + pi * kRows) * ld;
      int64_t j = 0;
      for (; j + 16 <= tb; j += 16) gemm_rows<2>(rows, u.c, a, vx + j, ld, out + j, ld);
      if (j < tb) gemm_rows<1>(rows, u.c, a, vx + j, ld, out + j, ld);
    }
  }
}

// gemm_tile with 16-float vectors, over the RowsA rows of the panel at `a` and, with RowsB > 0, the first RowsB of
// the next panel (a + c * kRows, outputs kRows rows further): 512-bit FMAs run at twice the rate of 256-bit ones on
// CPUs with full-width AVX-512 datapaths, and two panels per tile keep 12 accumulators busy when a block has only 16
// tiles. Each output is the same FMA chain over ci as in gemm_tile, so both paths give the same bits.
// (avx512f only: the CPU check is has_avx512f(), so no VL/DQ instructions may be emitted.)
template <int RowsA, int RowsB, int Vecs>
__attribute__((target("avx512f,avx2,fma"), noinline)) void gemm_tile_avx512(int64_t c, const float* a, const float* v,
                                                                            int64_t ldv, float* out, int64_t ldo) {
  constexpr int kTileRows = RowsA + RowsB;
  const float* a2 = a + c * kRows;
  __m512 acc[kTileRows][Vecs];
#pragma GCC unroll 12
  for (int r = 0; r < kTileRows; ++r)
    for (int h = 0; h < Vecs; ++h) acc[r][h] = _mm512_setzero_ps();
  for (int64_t ci = 0; ci < c; ++ci, a += kRows, a2 += kRows, v += ldv) {
    __m512 b[Vecs];
    for (int h = 0; h < Vecs; ++h) b[h] = _mm512_loadu_ps(v + 16 * h);
#pragma GCC unroll 12
    for (int r = 0; r < kTileRows; ++r) {
      const __m512 av = _mm512_set1_ps(r < RowsA ? a[r] : a2[r - RowsA]);
      for (int h = 0; h < Vecs; ++h) acc[r][h] = _mm512_fmadd_ps(av, b[h], acc[r][h]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < kTileRows; ++r)
    for (int h = 0; h < Vecs; ++h)
      _mm512_storeu_ps(out + (r < RowsA ? r : kRows + r - RowsA) * ldo + 16 * h, acc[r][h]);
}

// One or two panels (rows_b = 0: one), rows past M rounded up to 4 or 6 as in gemm_rows.
template <int Vecs>
void gemm_panels_avx512(int64_t rows_a, int64_t rows_b, int64_t c, const float* a, const float* v, int64_t ldv,
                        float* out, int64_t ldo) {
  if (rows_b == 0) {
    if (rows_a <= 4)
      gemm_tile_avx512<4, 0, Vecs>(c, a, v, ldv, out, ldo);
    else
      gemm_tile_avx512<6, 0, Vecs>(c, a, v, ldv, out, ldo);
  } else if (rows_b <= 4) {
    gemm_tile_avx512<6, 4, Vecs>(c, a, v, ldv, out, ldo);
  } else {
    gemm_tile_avx512<6, 6, Vecs>(c, a, v, ldv, out, ldo);
  }
}

__attribute__((target("avx512f,avx2,fma"))) void gemm_block_avx512(const WinogradWeights& u, int64_t tb, const float* v,
                                                                   int64_t ld, float* m) {
  const int64_t rows_padded = u.panels * kRows;
  for (int xi = 0; xi < kXi; ++xi) {
    const float* vx = v + xi * u.c * ld;
    for (int64_t pi = 0; pi < u.panels; pi += 2) {
      const int64_t rows_a = std::min(kRows, u.m - pi * kRows);
      const int64_t rows_b = pi + 1 < u.panels ? std::min(kRows, u.m - (pi + 1) * kRows) : 0;
      const float* a = u.u.data() + (xi * u.panels + pi) * u.c * kRows;
      float* out = m + (xi * rows_padded + pi * kRows) * ld;
      int64_t j = 0;
      for (; j + 32 <= tb; j += 32) gemm_panels_avx512<2>(rows_a, rows_b, u.c, a, vx + j, ld, out + j, ld);
      for (; j + 16 <= tb; j += 16) gemm_panels_avx512<1>(rows_a, rows_b, u.c, a, vx + j, ld, out + j, ld);
      if (j < tb) {  // 8 tiles left
        gemm_rows<1>(rows_a, u.c, a, vx + j, ld, out + j, ld);
        if (rows_b) gemm_rows<1>(rows_b, u.c, a + u.c * kRows, vx + j, ld, out + kRows * ld + j, ld);
      }
    }
  }
}

struct Epilogue {
  const float* bias = nullptr;      // [M] or null
  const float* residual = nullptr;  // this image's addend, same layout as the output, or null
  bool relu = false;
};

// Y = A^T M A + bias [+ residual] [max 0] for the group's eight tiles, output channel mo; A^T = [[1, 1, 1, 0],
// [0, 1, -1, -1]]. `mt` points at M[0][mo][j], xi_stride apart.
__attribute__((target("avx2,fma"))) void transform_output_group(const float* mt, int64_t xi_stride, const Plan& p,
                                                                const TileGroup& g, int64_t mo, float* y,
                                                                const Epilogue& e) {
  __m256 s0[4], s1[4];
  for (int j = 0; j < 4; ++j) {
    const __m256 m0 = _mm256_loadu_ps(mt + (0 * 4 + j) * xi_stride), m1 = _mm256_loadu_ps(mt + (1 * 4 + j) * xi_stride);
    const __m256 m2 = _mm256_loadu_ps(mt + (2 * 4 + j) * xi_stride), m3 = _mm256_loadu_ps(mt + (3 * 4 + j) * xi_stride);
    s0[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
    s1[j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
  }
  const __m256 bias = _mm256_set1_ps(e.bias ? e.bias[mo] : 0.0f);
  __m256 rows[2][2];  // [output row of the tile][left / right column]
  rows[0][0] = _mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]);
  rows[0][1] = _mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]);
  rows[1][0] = _mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]);
  rows[1][1] = _mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]);
  const int64_t plane = mo * p.h * p.w;
  for (int row = 0; row < 2; ++row) {
    __m256 left = rows[row][0], right = rows[row][1];
    if (e.bias) left = _mm256_add_ps(left, bias), right = _mm256_add_ps(right, bias);
    // Lanes [t0 t1 t4 t5 | t2 t3 t6 t7]: interleaving left and right columns gives run 0's 8 consecutive outputs
    // of this row (t0 t1 | t2 t3) and run 1's (t4 t5 | t6 t7).
    __m256 seg[2] = {_mm256_unpacklo_ps(left, right), _mm256_unpackhi_ps(left, right)};
    for (int run = 0; run < 2; ++run) {
      const int64_t at = plane + g.out[run] + row * p.w;
      if (e.residual) seg[run] = _mm256_add_ps(seg[run], _mm256_loadu_ps(e.residual + at));
      if (e.relu) seg[run] = _mm256_max_ps(_mm256_setzero_ps(), seg[run]);  // NaN passes, as the Relu kernel
      _mm256_storeu_ps(y + at, seg[run]);
    }
  }
}

// Two 8-float loads as one vector: `low` in bits 0-255, `high` in 256-511 (AVX-512F only, no DQ insert). The maskz
// forms with all lanes set are the plain instructions; GCC 12 warns (-Wmaybe-uninitialized, its bug 105593) about
// the undefined pass-through operand of the unmasked intrinsics.
__attribute__((target("avx512f,avx2,fma"))) inline __m512 load_halves(const float* low, const float* high) {
  const __m512d joined = _mm512_maskz_insertf64x4(0xFF, _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(low))),
                                                  _mm256_castps_pd(_mm256_loadu_ps(high)), 1);
  return _mm512_castpd_ps(joined);
}
template <int Half>
__attribute__((target("avx512f,avx2,fma"))) inline __m256 half_of(__m512 x) {
  return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(x), Half));
}

// transform_input_group for two groups at once, group a in the low 256 bits of every vector and group b in the high
// ones (the shuffles stay within 128-bit lanes, so each half holds its group's lane order), stored as V[xi][ci][j ..
// j + 16): group a's 8 tiles, then group b's.
__attribute__((target("avx512f,avx2,fma"))) void transform_input_groups_avx512(const float* xp, const Plan& p,
                                                                               const TileGroup& ga, const TileGroup& gb,
                                                                               float* v, int64_t ldv) {
  const int64_t plane = p.hp * p.wp, xi_stride = p.c * ldv;
  for (int64_t ci = 0; ci < p.c; ++ci) {
    const float* x = xp + ci * plane;
    __m512 r[4][4];
    for (int i = 0; i < 4; ++i) {
      const float* a0 = x + ga.in[0] + i * p.wp;
      const float* a1 = x + ga.in[1] + i * p.wp;
      const float* b0 = x + gb.in[0] + i * p.wp;
      const float* b1 = x + gb.in[1] + i * p.wp;
      __m512 lo = load_halves(a0, b0), hi = load_halves(a1, b1);
      const __m512 d0 = _mm512_shuffle_ps(lo, hi, 0x88), d1 = _mm512_shuffle_ps(lo, hi, 0xDD);
      lo = load_halves(a0 + 2, b0 + 2), hi = load_halves(a1 + 2, b1 + 2);
      const __m512 d2 = _mm512_shuffle_ps(lo, hi, 0x88), d3 = _mm512_shuffle_ps(lo, hi, 0xDD);
      r[i][0] = _mm512_sub_ps(d0, d2);
      r[i][1] = _mm512_add_ps(d1, d2);
      r[i][2] = _mm512_sub_ps(d2, d1);
      r[i][3] = _mm512_sub_ps(d1, d3);
    }
    float* out = v + ci * ldv;
    for (int j = 0; j < 4; ++j) {
      _mm512_storeu_ps(out + (0 * 4 + j) * xi_stride, _mm512_sub_ps(r[0][j], r[2][j]));
      _mm512_storeu_ps(out + (1 * 4 + j) * xi_stride, _mm512_add_ps(r[1][j], r[2][j]));
      _mm512_storeu_ps(out + (2 * 4 + j) * xi_stride, _mm512_sub_ps(r[2][j], r[1][j]));
      _mm512_storeu_ps(out + (3 * 4 + j) * xi_stride, _mm512_sub_ps(r[1][j], r[3][j]));
    }
  }
}

// transform_output_group for two groups at once (M[.][mo][j .. j + 16): group a's tiles, then group b's): the sums
// in 512-bit vectors, then each 256-bit half is its group's row segments, added to, clamped and stored as there.
__attribute__((target("avx512f,avx2,fma"))) void transform_output_groups_avx512(const float* mt, int64_t xi_stride,
                                                                                const Plan& p, const TileGroup& ga,
                                                                                const TileGroup& gb, int64_t mo,
                                                                                float* y, const Epilogue& e) {
  __m512 s0[4], s1[4];
  for (int j = 0; j < 4; ++j) {
    const __m512 m0 = _mm512_loadu_ps(mt + (0 * 4 + j) * xi_stride), m1 = _mm512_loadu_ps(mt + (1 * 4 + j) * xi_stride);
    const __m512 m2 = _mm512_loadu_ps(mt + (2 * 4 + j) * xi_stride), m3 = _mm512_loadu_ps(mt + (3 * 4 + j) * xi_stride);
    s0[j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    s1[j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
  }
  const __m512 bias = _mm512_set1_ps(e.bias ? e.bias[mo] : 0.0f);
  __m512 rows[2][2];  // [output row of the tile][left / right column]
  rows[0][0] = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]);
  rows[0][1] = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
  rows[1][0] = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
  rows[1][1] = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
  const int64_t plane = mo * p.h * p.w;
  const TileGroup* groups[2] = {&ga, &gb};
  for (int row = 0; row < 2; ++row) {
    __m512 left = rows[row][0], right = rows[row][1];
    if (e.bias) left = _mm512_add_ps(left, bias), right = _mm512_add_ps(right, bias);
    const __m512 lo = _mm512_maskz_unpacklo_ps(0xFFFF, left, right), hi = _mm512_maskz_unpackhi_ps(0xFFFF, left, right);
    const __m256 seg[2][2] = {{half_of<0>(lo), half_of<0>(hi)}, {half_of<1>(lo), half_of<1>(hi)}};  // [group][run]
    for (int grp = 0; grp < 2; ++grp)
      for (int run = 0; run < 2; ++run) {
        const int64_t at = plane + groups[grp]->out[run] + row * p.w;
        __m256 out = seg[grp][run];
        if (e.residual) out = _mm256_add_ps(out, _mm256_loadu_ps(e.residual + at));
        if (e.relu) out = _mm256_max_ps(_mm256_setzero_ps(), out);  // NaN passes, as the Relu kernel
        _mm256_storeu_ps(y + at, out);
      }
  }
}

// One block's three stages for tiles [b0, b0 + tb) (tb a multiple of 8), per instruction set: V into `v`, M = U V
// into `m` (BlockGemm), Y from `m`.
struct BlockKernels {
  void (*transform_input)(const float* xp, const Plan& p, int64_t b0, int64_t tb, float* v, int64_t ld);
  BlockGemm gemm;
  void (*transform_output)(const float* m, int64_t ld, int64_t rows_padded, const Plan& p, int64_t b0, int64_t tb,
                           float* y, const Epilogue& e);
};

__attribute__((target("avx2,fma"))) void transform_input_block_avx2(const float* xp, const Plan& p, int64_t b0,
                                                                    int64_t tb, float* v, int64_t ld) {
  for (int64_t j = 0; j < tb; j += 8) transform_input_group(xp, p, tile_group(p, b0 + j), v + j, ld);
}
__attribute__((target("avx2,fma"))) void transform_output_block_avx2(const float* m, int64_t ld, int64_t rows_padded,
                                                                     const Plan& p, int64_t b0, int64_t tb, float* y,
                                                                     const Epilogue& e) {
  for (int64_t mo = 0; mo < p.m; ++mo)
    for (int64_t j = 0; j < tb; j += 8)
      transform_output_group(m + mo * ld + j, rows_padded * ld, p, tile_group(p, b0 + j), mo, y, e);
}
constexpr BlockKernels kAvx2Kernels = {transform_input_block_avx2, gemm_block_avx2, transform_output_block_avx2};

// 16 tiles at a time, a last group of 8 by the AVX2 code.
__attribute__((target("avx512f,avx2,fma"))) void transform_input_block_avx512(const float* xp, const Plan& p,
                                                                              int64_t b0, int64_t tb, float* v,
                                                                              int64_t ld) {
  int64_t j = 0;
  for (; j + 16 <= tb; j += 16)
    transform_input_groups_avx512(xp, p, tile_group(p, b0 + j), tile_group(p, b0 + j + 8), v + j, ld);
  if (j < tb) transform_input_group(xp, p, tile_group(p, b0 + j), v + j, ld);
}
__attribute__((target("avx512f,avx2,fma"))) void transform_output_block_avx512(const float* m, int64_t ld,
                                                                               int64_t rows_padded, const Plan& p,
                                                                               int64_t b0, int64_t tb, float* y,
                                                                               const Epilogue& e) {
  for (int64_t mo = 0; mo < p.m; ++mo) {
    int64_t j = 0;
    for (; j + 16 <= tb; j += 16)
      transform_output_groups_avx512(m + mo * ld + j, rows_padded * ld, p, tile_group(p, b0 + j),
                                     tile_group(p, b0 + j + 8), mo, y, e);
    if (j < tb) transform_output_group(m + mo * ld + j, rows_padded * ld, p, tile_group(p, b0 + j), mo, y, e);
  }
}
constexpr BlockKernels kAvx512Kernels = {transform_input_block_avx512, gemm_block_avx512,
                                         transform_output_block_avx512};

// Per-thread buffers: one block's transformed inputs and GEMM results (the padded images are padded_image.h's).
struct Scratch {
  std::vector<float> v, m;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Tiles [t0, t1) of one padded image (t0, t1 multiples of 8) -> their outputs in y.
void conv_tiles(const float* xp, const WinogradWeights& u, const Plan& p, int64_t t0, int64_t t1, float* y,
                const Epilogue& e, const BlockKernels& k, Scratch& s) {
  // Rows of 8 floats more than a block: with exactly 2048 / C floats per row, the 16 streams of the input transform
  // would sit 8 KB apart, all in the same L1 set.
  const int64_t ld = p.block + 8, rows_padded = u.panels * kRows;
  s.v.resize(static_cast<size_t>(kXi * p.c * ld));
  s.m.resize(static_cast<size_t>(kXi * rows_padded * ld));
  for (int64_t b0 = t0; b0 < t1; b0 += p.block) {
    const int64_t tb = std::min(p.block, t1 - b0);
    k.transform_input(xp, p, b0, tb, s.v.data(), ld);
    k.gemm(u, tb, s.v.data(), ld, s.m.data());
    k.transform_output(s.m.data(), ld, rows_padded, p, b0, tb, y, e);
  }
}

struct WinogradSetup {
  Node node;
  ConvFusion fusion;  // add and relu only
  std::shared_ptr<const WinogradWeights> weights;  // when W is a constant of the graph
  const float* weights_for = nullptr;              // the constant's data they were transformed from
  PreparedKernel direct;                           // shapes this kernel does not cover
  const BlockKernels* kernels = &kAvx2Kernels;     // AVX-512 when the CPU has it, chosen at preparation
};

// Runs the conv when the inputs are what this kernel covers; false otherwise.
bool run_winograd(const WinogradSetup& s, const Inputs& in, Tensor& out) {
  const Tensor* x = in[0];
  const Tensor* w = in.size() > 1 ? in[1] : nullptr;
  const Tensor* b = in.size() > 2 ? in[2] : nullptr;
  const Tensor* r = s.fusion.add ? in[3] : nullptr;
  if (!has_avx2_fma() || !x || !w || x->dtype != DType::f32 || w->dtype != DType::f32 || x->rank() != 4 ||
      w->rank() != 4 || w->shape[1] != x->shape[1] || w->shape[2] != 3 || w->shape[3] != 3 ||
      (b && (b->dtype != DType::f32 || b->numel() != w->shape[0])))
    return false;
  Plan p;
  const int64_t n = x->shape[0];
  p.c = x->shape[1], p.h = x->shape[2], p.w = x->shape[3], p.m = w->shape[0];
  // Whole 2x2 tiles, runs of 4 tiles within a tile row, groups of 8 tiles within the image.
  if (p.c == 0 || p.m == 0 || p.h % 4 != 0 || p.w % 8 != 0 || p.h == 0) return false;
  const Shape y_shape = {n, p.m, p.h, p.w};
  if (r && (r->dtype != DType::f32 || r->shape != y_shape)) return false;
  p.tiles_w = p.w / 2;
  p.tiles = p.h / 2 * p.tiles_w;
  p.hp = p.h + 2, p.wp = p.w + 2;
  // A block's transformed inputs and GEMM results (16 x max(C, M) x block floats each) stay within ~64 KB, in L2
  // next to the weights (measured best: 64 tiles at C = 16, 16 at C = 64).
  p.block = std::clamp<int64_t>(1024 / std::max(p.c, p.m) / 8 * 8, 8, 256);
  const WinogradWeights* u = s.weights.get();
  thread_local WinogradWeights run_weights;
  if (!u || s.weights_for != w->data<float>() || u->m != p.m || u->c != p.c) {
    transform_weights(w->data<float>(), p.m, p.c, run_weights);  // W computed at run time
    u = &run_weights;
  }
  out.reset(DType::f32, y_shape);
  Epilogue e;
  e.bias = b ? b->data<float>() : nullptr;
  e.relu = s.fusion.relu;
  const int64_t image_in = p.c * p.h * p.w, image_out = p.m * p.h * p.w;
  const float* xb = x->data<float>();
  float* yb = out.data<float>();
  const PaddedGeometry padded{p.c, p.h, p.w, 1, 1, p.hp, p.wp};
  const int threads = intra_op_threads();
  if (threads > 1 && n == 1 && p.tiles >= 16 && p.m * p.c * p.h * p.w * 9 >= min_multiply_adds_to_split()) {
    // One image over the intra-op threads: the caller pads it, each thread transforms its own tiles.
    p.block = std::min(p.block, std::max<int64_t>(8, p.tiles / (2 * threads) / 8 * 8));
    float* shared = padded_buffer(padded);
    pad_image(xb, padded, shared);
    const int64_t chunks = (p.tiles + p.block - 1) / p.block;
    e.residual = r ? r->data<float>() : nullptr;
    parallel_for(chunks, threads, [&](int64_t k) {
      conv_tiles(shared, *u, p, k * p.block, std::min(p.tiles, (k + 1) * p.block), yb, e, *s.kernels, scratch());
    });
    return true;
  }
  parallel_for(n, threads, [&](int64_t i) {
    float* xp = padded_buffer(padded);  // kPaddedSlack covers the last run's loads, 2 floats past the image
    pad_image(xb + i * image_in, padded, xp);
    Epilogue ei = e;
    ei.residual = r ? r->data<float>() + i * image_out : nullptr;
    conv_tiles(xp, *u, p, 0, p.tiles, yb + i * image_out, ei, *s.kernels, scratch());
  });
  return true;
}

}  // namespace

PreparedKernel prepare_conv_f32_winograd(const Node& node, const Graph& graph, ConvFusion fusion) {
  if (node.op_type != "Conv" || !node.domain.empty() || fusion.fake_quant || fusion.conv_fake_quant) return nullptr;
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (!(auto_pad.empty() || auto_pad == "NOTSET") || node.attr_int("group", 1) != 1) return nullptr;
  if (node.attr_ints("pads", {0, 0, 0, 0}) != std::vector<int64_t>{1, 1, 1, 1} ||
      node.attr_ints("strides", {1, 1}) != std::vector<int64_t>{1, 1} ||
      node.attr_ints("dilations", {1, 1}) != std::vector<int64_t>{1, 1} ||
      node.attr_ints("kernel_shape", {3, 3}) != std::vector<int64_t>{3, 3})
    return nullptr;
  auto setup = std::make_shared<WinogradSetup>();
  setup->node = node;
  setup->fusion = fusion;
  if (use_avx512_float_kernels()) setup->kernels = &kAvx512Kernels;
  setup->direct = prepare_conv_f32_fused(node, graph, fusion);
  if (!setup->direct) return nullptr;
  if (node.inputs.size() > 1)
    if (const Tensor* w = graph.initializer(node.inputs[1]))
      if (w->dtype == DType::f32 && w->rank() == 4 && w->shape[2] == 3 && w->shape[3] == 3 && w->numel() > 0) {
        auto u = std::make_shared<WinogradWeights>();
        transform_weights(w->data<float>(), w->shape[0], w->shape[1], *u);
        setup->weights = u;
        setup->weights_for = w->data<float>();
      }
  return [setup](const Inputs& in, std::vector<Tensor>& out) {
    if (!run_winograd(*setup, in, out[0])) setup->direct(in, out);
  };
}

}  // namespace qplay::fast
