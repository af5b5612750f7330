// Winograd F(2x2, 3x3) for the integer QConv (3x3, stride 1, dilation 1, padding 1): the same
// int32 sums as the direct kernel, bit for bit, with 16 multiplies per 2x2 outputs instead of 36.
//
// Why it is exact. With G' = 2G the transforms have integer coefficients:
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G' = [2 0 0; 1 1 1; 1 -1 1; 0 0 2]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// and A^T [(G' g G'^T) . (B^T d B)] A = 4 Y, where Y is the direct convolution's sum. The
// operands stay int16 (|B^T d B| <= 4 * 255, |G' g G'^T| <= 9 * 255), each _mm256_madd_epi16
// pair is exact, and every later step is an addition or subtraction in int32, i.e. exact modulo
// 2^32. So the int32 result is 4 Y modulo 2^32, which is 4 Y itself when |4 Y| < 2^31
// (winograd_s16_exact checks it from the channel count), and an arithmetic shift by 2 gives Y.
//
// Layouts (int16 pairs: channels 2cp and 2cp+1 of the same position, as in qgemm_s16.h):
//   input buffer  the direct kernel's padded copy with the columns split by parity,
//                 [cp][parity][H+2][W/2+1][2]: padded column 2q + parity (column 0 = padding)
//   V             per block of 16 tiles, [16 positions][cp][16 tiles][2]
//   weights       [16 positions][M/4 tiles][cp][4 rows][2] (qgemm_s16.h's packing per position)
//   products      the micro-kernel's accumulators per position, [16][4 rows][16 tiles]
// Tiles are numbered row-major over the (H/2) x (W/2) output tiles; W % 8 == 0, so 4
// consecutive tiles lie in one tile row and cover 2 output rows x 8 columns: one "unit", which
// the output transform hands to the conv's store as the two groups of a micro-kernel tile.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace qplay::fast {

constexpr int kWinogradPositions = 16;
constexpr int kWinogradBlockTiles = 16;

// |4 Y| < 2^31 for every input: 4 * 9 * channels * 255 * 255 < 2^31.
bool winograd_s16_exact(int64_t channels);

// (w - w_zp) of output channel m, input channel c, tap (ky, kx).
using WinogradWeightAt = std::function<int32_t(int64_t m, int64_t c, int ky, int kx)>;

struct WinogradS16Weights {
  int64_t rows = 0, row_tiles = 0, channel_pairs = 0;
  std::vector<int16_t> data;  // [16][row_tiles][channel_pairs][4][2]

  const int16_t* at(int position, int64_t row_tile) const {
    return data.data() + (position * row_tiles + row_tile) * channel_pairs * 8;
  }
};

// G' g G'^T for every (m, c), packed; throws if a transformed weight left int16 (|w - w_zp| > 3640).
WinogradS16Weights pack_winograd_s16(int64_t rows, int64_t channels, const WinogradWeightAt& weight);

// B^T d B for the tiles [first_tile, first_tile + 16) of one image of tiles_w (a multiple of 4)
// tiles per row (slots past `tiles` get unspecified values); `buffer` as above, rows of phase_w
// pairs, padded_h rows per parity.
struct WinogradInputLayout {
  int64_t channel_pairs = 0, padded_h = 0, phase_w = 0, tiles_w = 0, tiles = 0;
};
void winograd_s16_input_portable(const int16_t* buffer, const WinogradInputLayout& l, int64_t first_tile, int16_t* v);
void winograd_s16_input_avx2(const int16_t* buffer, const WinogradInputLayout& l, int64_t first_tile, int16_t* v);
// The same on 512-bit vectors, all 16 tiles at once (AVX-512F+BW; the same integer operations, so the same bits).
void winograd_s16_input_avx512(const int16_t* buffer, const WinogradInputLayout& l, int64_t first_tile, int16_t* v);

// A^T M A / 4 + bias for 4 rows x 16 tiles, from the 16 positions' accumulators `products`
// ([16][64]), into `units` ([4][64]): unit u (tiles 4u..4u+3) in the micro-kernel's accumulator
// layout, row r at 16 r, group 0 = the unit's upper output row (8 values), group 1 = the lower.
void winograd_s16_output_portable(const int32_t* products, const int32_t* bias, int32_t* units);
void winograd_s16_output_avx2(const int32_t* products, const int32_t* bias, int32_t* units);
void winograd_s16_output_avx512(const int32_t* products, const int32_t* bias, int32_t* units);

}  // namespace qplay::fast
