#include "runtime/kernels/fast/winograd_s16.h"

#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "graph/ir.h"

namespace qplay::fast {

bool winograd_s16_exact(int64_t channels) { return channels > 0 && 4 * 9 * channels * 255 * 255 < (int64_t{1} << 31); }

WinogradS16Weights pack_winograd_s16(int64_t rows, int64_t channels, const WinogradWeightAt& weight) {
  static constexpr int kG[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};  // G' = 2 G
  WinogradS16Weights p;
  p.rows = rows;
  p.row_tiles = (rows + 3) / 4;
  p.channel_pairs = (channels + 1) / 2;
  p.data.assign(static_cast<size_t>(kWinogradPositions * p.row_tiles * p.channel_pairs * 8), 0);
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t c = 0; c < channels; ++c) {
      int64_t g[3][3], left[4][3];  // g, then G' g
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) g[ky][kx] = weight(m, c, ky, kx);
      for (int a = 0; a < 4; ++a)
        for (int kx = 0; kx < 3; ++kx) left[a][kx] = kG[a][0] * g[0][kx] + kG[a][1] * g[1][kx] + kG[a][2] * g[2][kx];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          const int64_t u = left[a][0] * kG[b][0] + left[a][1] * kG[b][1] + left[a][2] * kG[b][2];
          if (u < std::numeric_limits<int16_t>::min() || u > std::numeric_limits<int16_t>::max())
            throw Error("Winograd weight transform out of int16 range (weight minus zero point too large)");
          const int64_t at = (((a * 4 + b) * p.row_tiles + m / 4) * p.channel_pairs + c / 2) * 8 + (m % 4) * 2 + c % 2;
          p.data[static_cast<size_t>(at)] = static_cast<int16_t>(u);
        }
    }
  return p;
}

// ---- input transform: V = B^T d B ------------------------------------------------------------

void winograd_s16_input_portable(const int16_t* buffer, const WinogradInputLayout& l, int64_t first_tile, int16_t* v) {
  const int64_t parity_plane = l.padded_h * l.phase_w;  // pairs per channel pair and parity
  const int64_t last = std::min(first_tile + kWinogradBlockTiles, l.tiles);
  for (int64_t t = first_tile; t < last; ++t) {
    const int64_t ty = t / l.tiles_w, tx = t % l.tiles_w, slot = t - first_tile;
    for (int64_t cp = 0; cp < l.channel_pairs; ++cp) {
      // Tile (ty, tx) reads padded rows 2ty..2ty+3 and columns 2tx..2tx+3: the even ones are
      // q = tx and tx + 1 of parity 0, the odd ones the same q of parity 1.
      const int16_t* even = buffer + 2 * ((2 * cp) * parity_plane + 2 * ty * l.phase_w + tx);
      const int16_t* odd = even + 2 * parity_plane;
      for (int lane = 0; lane < 2; ++lane) {
        int32_t d[4][4], s[4][4];
        for (int i = 0; i < 4; ++i) {
          const int64_t row = 2 * i * l.phase_w + lane;
          d[i][0] = even[row];
          d[i][1] = odd[row];
          d[i][2] = even[row + 2];
          d[i][3] = odd[row + 2];
          s[i][0] = d[i][0] - d[i][2];
          s[i][1] = d[i][1] + d[i][2];
          s[i][2] = d[i][2] - d[i][1];
          s[i][3] = d[i][1] - d[i][3];
        }
        for (int b = 0; b < 4; ++b) {
          const int32_t col[4] = {s[0][b] - s[2][b], s[1][b] + s[2][b], s[2][b] - s[1][b], s[1][b] - s[3][b]};
          for (int a = 0; a < 4; ++a)
            v[(((a * 4 + b) * l.channel_pairs + cp) * kWinogradBlockTiles + slot) * 2 + lane] =
                static_cast<int16_t>(col[a]);
        }
      }
    }
  }
}

namespace {
__attribute__((target("avx2"))) inline __m256i load_two_units(const int16_t* base, int64_t unit0, int64_t unit1) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + unit0))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + unit1)), 1);
}
}  // namespace

// Two units (8 tiles) at a time: each unit's 4 tiles read 4 consecutive pairs per padded row and
// parity, so a row of the 4x4 input tiles of 8 tiles is two 16-byte loads per column. Units past
// the last tile repeat the previous unit (their results are not stored).
__attribute__((target("avx2"))) void winograd_s16_input_avx2(const int16_t* buffer, const WinogradInputLayout& l,
                                                             int64_t first_tile, int16_t* v) {
  const int64_t parity_plane = l.padded_h * l.phase_w;
  for (int half = 0; half < 2; ++half) {
    const int64_t t0 = first_tile + 8 * half;
    if (t0 >= l.tiles) break;
    const int64_t t1 = t0 + 4 < l.tiles ? t0 + 4 : t0;
    const int64_t unit0 = 2 * (2 * (t0 / l.tiles_w) * l.phase_w + t0 % l.tiles_w);
    const int64_t unit1 = 2 * (2 * (t1 / l.tiles_w) * l.phase_w + t1 % l.tiles_w);
    for (int64_t cp = 0; cp < l.channel_pairs; ++cp) {
      const int16_t* even = buffer + 2 * (2 * cp) * parity_plane;
      const int16_t* odd = even + 2 * parity_plane;
      __m256i s[4][4];
      for (int i = 0; i < 4; ++i) {
        const int64_t row = 2 * i * l.phase_w;
        const __m256i d0 = load_two_units(even + row, unit0, unit1), d1 = load_two_units(odd + row, unit0, unit1);
        const __m256i d2 = load_two_units(even + row + 2, unit0, unit1),
                      d3 = load_two_units(odd + row + 2, unit0, unit1);
        s[i][0] = _mm256_sub_epi16(d0, d2);
        s[i][1] = _mm256_add_epi16(d1, d2);
        s[i][2] = _mm256_sub_epi16(d2, d1);
        s[i][3] = _mm256_sub_epi16(d1, d3);
      }
      int16_t* out = v + 2 * (cp * kWinogradBlockTiles + 8 * half);
      const int64_t position_stride = 2 * l.channel_pairs * kWinogradBlockTiles;
      for (int b = 0; b < 4; ++b) {
        const __m256i col[4] = {_mm256_sub_epi16(s[0][b], s[2][b]), _mm256_add_epi16(s[1][b], s[2][b]),
                                _mm256_sub_epi16(s[2][b], s[1][b]), _mm256_sub_epi16(s[1][b], s[3][b])};
        for (int a = 0; a < 4; ++a)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (a * 4 + b) * position_stride), col[a]);
      }
    }
  }
}

namespace {
// One padded row of the four units at `unit` (int16 offsets) in a 512-bit vector: 16 tiles. Units in
// one tile row lie back to back (a 32-pixel-wide image), and then one load takes them all.
__attribute__((target("avx512f,avx512bw"))) inline __m512i load_four_units(const int16_t* base, const int64_t* unit,
                                                                           bool adjacent) {
  if (adjacent) return _mm512_loadu_si512(base + unit[0]);
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + unit[0])));
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + unit[1])), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + unit[2])), 2);
  return _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + unit[3])), 3);
}
}  // namespace

// As winograd_s16_input_avx2 with the block's four units in one vector (lanes of 128 bits: unit k =
// tiles first + 4k .. first + 4k + 3). Units past the last tile repeat the one before.
__attribute__((target("avx512f,avx512bw"))) void winograd_s16_input_avx512(const int16_t* buffer,
                                                                           const WinogradInputLayout& l,
                                                                           int64_t first_tile, int16_t* v) {
  const int64_t parity_plane = l.padded_h * l.phase_w;
  int64_t unit[4];
  int64_t t = first_tile;
  for (int k = 0; k < 4; ++k) {
    if (first_tile + 4 * k < l.tiles) t = first_tile + 4 * k;
    unit[k] = 2 * (2 * (t / l.tiles_w) * l.phase_w + t % l.tiles_w);
  }
  const bool adjacent = unit[1] == unit[0] + 8 && unit[2] == unit[0] + 16 && unit[3] == unit[0] + 24;
  const int64_t position_stride = 2 * l.channel_pairs * kWinogradBlockTiles;
  for (int64_t cp = 0; cp < l.channel_pairs; ++cp) {
    const int16_t* even = buffer + 2 * (2 * cp) * parity_plane;
    const int16_t* odd = even + 2 * parity_plane;
    __m512i s[4][4];
    for (int i = 0; i < 4; ++i) {
      const int64_t row = 2 * i * l.phase_w;
      const __m512i d0 = load_four_units(even + row, unit, adjacent), d1 = load_four_units(odd + row, unit, adjacent);
      const __m512i d2 = load_four_units(even + row + 2, unit, adjacent),
                    d3 = load_four_units(odd + row + 2, unit, adjacent);
      s[i][0] = _mm512_sub_epi16(d0, d2);
      s[i][1] = _mm512_add_epi16(d1, d2);
      s[i][2] = _mm512_sub_epi16(d2, d1);
      s[i][3] = _mm512_sub_epi16(d1, d3);
    }
    int16_t* out = v + 2 * cp * kWinogradBlockTiles;
    for (int b = 0; b < 4; ++b) {
      const __m512i col[4] = {_mm512_sub_epi16(s[0][b], s[2][b]), _mm512_add_epi16(s[1][b], s[2][b]),
                              _mm512_sub_epi16(s[2][b], s[1][b]), _mm512_sub_epi16(s[1][b], s[3][b])};
      for (int a = 0; a < 4; ++a) _mm512_storeu_si512(out + (a * 4 + b) * position_stride, col[a]);
    }
  }
}

// ---- output transform: Y = A^T M A / 4 + bias --------------------------------------------------

void winograd_s16_output_portable(const int32_t* products, const int32_t* bias, int32_t* units) {
  for (int r = 0; r < 4; ++r)
    for (int slot = 0; slot < kWinogradBlockTiles; ++slot) {
      // uint32: the sums are exact modulo 2^32 (see the header), and wrap without UB.
      uint32_t m[4][4], p[4][2];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) m[a][b] = static_cast<uint32_t>(products[(a * 4 + b) * 64 + r * 16 + slot]);
      for (int a = 0; a < 4; ++a) {
        p[a][0] = m[a][0] + m[a][1] + m[a][2];
        p[a][1] = m[a][1] - m[a][2] - m[a][3];
      }
      const int unit = slot / 4, column = 2 * (slot % 4);
      for (int q = 0; q < 2; ++q) {
        const uint32_t y[2] = {p[0][q] + p[1][q] + p[2][q], p[1][q] - p[2][q] - p[3][q]};
        for (int row = 0; row < 2; ++row)  // 4 Y fits in int32, so >> 2 of it is Y exactly
          units[unit * 64 + r * 16 + row * 8 + column + q] = static_cast<int32_t>(
              static_cast<uint32_t>(static_cast<int32_t>(y[row]) >> 2) + static_cast<uint32_t>(bias[r]));
      }
    }
}

__attribute__((target("avx2"))) void winograd_s16_output_avx2(const int32_t* products, const int32_t* bias,
                                                              int32_t* units) {
  for (int r = 0; r < 4; ++r) {
    const __m256i b = _mm256_set1_epi32(bias[r]);
    for (int half = 0; half < 2; ++half) {
      __m256i p[4][2];
      for (int a = 0; a < 4; ++a) {
        const int32_t* row = products + a * 4 * 64 + r * 16 + half * 8;
        const __m256i m0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
        const __m256i m1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 64));
        const __m256i m2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 128));
        const __m256i m3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 192));
        p[a][0] = _mm256_add_epi32(_mm256_add_epi32(m0, m1), m2);
        p[a][1] = _mm256_sub_epi32(_mm256_sub_epi32(m1, m2), m3);
      }
      __m256i y[2][2];  // [output row][column within the tile], lanes = 8 tiles
      for (int q = 0; q < 2; ++q) {
        y[0][q] =
            _mm256_add_epi32(_mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(p[0][q], p[1][q]), p[2][q]), 2), b);
        y[1][q] =
            _mm256_add_epi32(_mm256_srai_epi32(_mm256_sub_epi32(_mm256_sub_epi32(p[1][q], p[2][q]), p[3][q]), 2), b);
      }
      for (int row = 0; row < 2; ++row) {
        // Lanes 0-3 are unit 2 half, lanes 4-7 unit 2 half + 1; pixels alternate columns 0 and 1.
        const __m256i lo = _mm256_unpacklo_epi32(y[row][0], y[row][1]),
                      hi = _mm256_unpackhi_epi32(y[row][0], y[row][1]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(units + (2 * half) * 64 + r * 16 + row * 8),
                            _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(units + (2 * half + 1) * 64 + r * 16 + row * 8),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
      }
    }
  }
}

// As winograd_s16_output_avx2 with all 16 tiles of a row in one vector.
__attribute__((target("avx512f,avx512bw"))) void winograd_s16_output_avx512(const int32_t* products,
                                                                            const int32_t* bias, int32_t* units) {
  // unpacklo/hi interleave the two columns within each 128-bit lane (lane L: tiles 4L..4L+3, i.e. unit L); these
  // gather lo's and hi's lane L next to each other: unit L's 8 values of an output row.
  const __m512i units01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i units23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int r = 0; r < 4; ++r) {
    const __m512i b = _mm512_set1_epi32(bias[r]);
    __m512i p[4][2];
    for (int a = 0; a < 4; ++a) {
      const int32_t* row = products + a * 4 * 64 + r * 16;
      const __m512i m0 = _mm512_loadu_si512(row), m1 = _mm512_loadu_si512(row + 64);
      const __m512i m2 = _mm512_loadu_si512(row + 128), m3 = _mm512_loadu_si512(row + 192);
      p[a][0] = _mm512_add_epi32(_mm512_add_epi32(m0, m1), m2);
      p[a][1] = _mm512_sub_epi32(_mm512_sub_epi32(m1, m2), m3);
    }
    for (int row = 0; row < 2; ++row) {
      __m512i y[2];  // [column within the tile], lanes = 16 tiles
      for (int q = 0; q < 2; ++q) {
        const __m512i sum = row == 0 ? _mm512_add_epi32(_mm512_add_epi32(p[0][q], p[1][q]), p[2][q])
                                     : _mm512_sub_epi32(_mm512_sub_epi32(p[1][q], p[2][q]), p[3][q]);
        y[q] = _mm512_add_epi32(_mm512_srai_epi32(sum, 2), b);
      }
      const __m512i lo = _mm512_unpacklo_epi32(y[0], y[1]), hi = _mm512_unpackhi_epi32(y[0], y[1]);
      const __m512i u01 = _mm512_permutex2var_epi64(lo, units01, hi), u23 = _mm512_permutex2var_epi64(lo, units23, hi);
      int32_t* dst = units + r * 16 + row * 8;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_castsi512_si256(u01));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 64), _mm512_extracti64x4_epi64(u01, 1));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 128), _mm512_castsi512_si256(u23));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 192), _mm512_extracti64x4_epi64(u23, 1));
    }
  }
}

}  // namespace qplay::fast
