// Integer micro-kernels of the fast QConv/QGemm: int16 operands (x - x_zp, w - w_zp, each in
// [-255, 255]), exact int32 sums, and the fixed-point output stage of docs/quantization.md eq. (8).
//
// Data layouts (all int16, operands in pairs so one 32-bit lane holds two consecutive k):
//   packed weights  [M/4 tiles][k_pairs][4 rows][2]          rows past M and k past K are 0
//   input buffer    any layout in which, for each k-pair j, the 8 pixels of a group lie at
//                   base + 2 * offsets[j] as 8 consecutive (k, k+1) pairs
// The conv and gemm drivers (integer_kernels.cc) build the input buffer and the offsets.
//
// Why int16 and _mm256_madd_epi16: it multiplies int16 pairs and adds each pair into an int32
// lane exactly (|x w| <= 255 * 255, a pair sum <= 130050). _mm256_maddubs_epi16 would take the
// 8-bit values directly but adds pairs into int16 with saturation (255 * 127 * 2 > 32767), which
// is not the arithmetic of the model; it is what makes ONNX Runtime's default u8s8 path on
// AVX2 disagree with its own exact path (docs/quantization.md, "Agreement").
#pragma once

#include <cstdint>

#include "runtime/integer/fixed_point.h"

namespace qplay::fast {

constexpr int kTileRows = 4;     // output channels per tile
constexpr int kGroupPixels = 8;  // pixels per group; a tile covers two groups

// acc[r * 16 + g * 8 + i] = bias[r] + sum_j sum_t w[(j * 4 + r) * 2 + t] * x_g[(offsets[j] + i) * 2 + t]
// for r < 4, g < 2 (x_0 = group0, x_1 = group1), i < 8.
using QTileKernel = void (*)(int64_t k_pairs, const int16_t* w, const int32_t* offsets, const int16_t* group0,
                             const int16_t* group1, const int32_t* bias, int32_t* acc);

void qtile_4x16_portable(int64_t k_pairs, const int16_t* w, const int32_t* offsets, const int16_t* group0,
                         const int16_t* group1, const int32_t* bias, int32_t* acc);
void qtile_4x16_avx2(int64_t k_pairs, const int16_t* w, const int32_t* offsets, const int16_t* group0,
                     const int16_t* group1, const int32_t* bias, int32_t* acc);
// AVX-512 VNNI (vpdpwssd): the same sums as qtile_4x16_avx2. Only on CPUs with avx512f+vl+vnni.
void qtile_4x16_vnni(int64_t k_pairs, const int16_t* w, const int32_t* offsets, const int16_t* group0,
                     const int16_t* group1, const int32_t* bias, int32_t* acc);

// Eq. (8) for one output channel, with the constants of the vector form precomputed.
struct RowRequant {
  integer::FixedPointMultiplier multiplier;
  int32_t acc_limit = INT32_MAX;  // 1024 when M >= 1: larger |acc| saturate anyway (keeps products in range)
  int64_t rounding = 0;           // 2^(shift-1) + 2^62: the +2^62 keeps the 64-bit sum non-negative ...
  int32_t offset = 0;             // ... and low32(2^(62-shift)) takes it back out after the shift
};
RowRequant make_row_requant(integer::FixedPointMultiplier m);

struct OutputClamp {
  int32_t zero_point = 0, lo = 0, hi = 255;
  bool is_signed = false;  // int8 output (else uint8)
};

// Where a tile's results go: row r (< rows), group g (< 2) -> out + r * row_stride + group_out[g],
// group_count[g] consecutive 8-bit values (0 = nothing).
struct TileDestination {
  uint8_t* out = nullptr;
  int64_t row_stride = 0;
  int rows = kTileRows;
  int64_t group_out[2] = {0, 0};
  int group_count[2] = {0, 0};
};

// Eq. (8) on a tile's accumulators: y = clamp(zero_point + round(acc * M[r]), lo, hi).
using QStoreTile = void (*)(const int32_t* acc, const RowRequant* rows, const OutputClamp& clamp,
                            const TileDestination& dst);
void store_tile_portable(const int32_t* acc, const RowRequant* rows, const OutputClamp& clamp,
                         const TileDestination& dst);
void store_tile_avx2(const int32_t* acc, const RowRequant* rows, const OutputClamp& clamp, const TileDestination& dst);
// The same with 16-lane vectors (AVX-512F): one vector per row.
void store_tile_avx512(const int32_t* acc, const RowRequant* rows, const OutputClamp& clamp,
                       const TileDestination& dst);

struct QKernels {
  QTileKernel tile;
  QStoreTile store;
  bool avx2;            // AVX2 (or better) forms of the other integer kernels
  bool avx512 = false;  // AVX-512 forms of the stores (with the VNNI tile)
};

// The best kernels this CPU runs (VNNI, AVX2 or portable), unless the portable or AVX2 ones are forced.
QKernels select_qkernels();

// For tests: makes select_qkernels() (and so the integer providers prepared afterwards) choose
// the portable kernels. Process-wide; not for use while other threads prepare kernels.
void force_portable_qkernels(bool portable);
// For tests: the AVX2 tile even where VNNI is available (both are then testable on one machine).
void force_avx2_qkernels(bool avx2);

}  // namespace qplay::fast
