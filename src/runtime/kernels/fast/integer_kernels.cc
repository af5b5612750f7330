// Fast kernels for the integer ops: prepare (pack weights, precompute multipliers) once per
// node, then compute. Bit-exact with runtime/integer/reference.h; anything unusual at run time
// (types or shapes that differ from what was prepared) goes to the reference, which validates.
//
// QConv is a direct convolution over an int16 copy of each image, so no im2col matrix is built:
//   buffer[cp][phase][hp][q][2] = x[2cp + t][hp - pad_top][q * stride_w + phase - pad_left] - x_zp
// (0 in the padding and for the missing channel of an odd count). Splitting the padded columns
// into stride_w phases makes the inputs of 8 consecutive output pixels 8 consecutive pairs for
// every kernel tap, whatever the stride: output column ox, tap kx reads padded column
// ox * stride_w + kx * dilation_w = (ox + kx * dilation_w / stride_w) * stride_w + phase.
// QGemm uses the same micro-kernel with rows of A as the pixels. A QConv whose output only a QAdd
// reads runs as one kernel with it (the executor fuses them), and pools whose window is the whole
// plane sum contiguous values.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include "runtime/cpu_features.h"
#include "runtime/integer/params.h"
#include "runtime/integer/reference.h"
#include "runtime/kernels/fast/integer_providers.h"
#include "runtime/kernels/fast/qconv_onednn.h"
#include "runtime/kernels/fast/qgemm_s16.h"
#include "runtime/kernels/fast/requantize_avx2.h"
#include "runtime/kernels/fast/requantize_avx512.h"
#include "runtime/kernels/fast/winograd_s16.h"

namespace qplay::fast {
namespace {

using namespace integer;

// (w - w_zp) for row m and depth index k, as the packers read it.
using WeightAt = std::function<int32_t(int64_t m, int64_t k)>;

// Weights in the qgemm_s16.h layout, with bias and output stage per row (rows padded to 4).
struct PackedWeights {
  int64_t rows = 0, tiles = 0, k_pairs = 0;
  std::vector<int16_t> data;
  std::vector<int32_t> bias;
  std::vector<RowRequant> requant;  // per row (unused with float output)
};

// k-pair j of row m holds depth indices depth_of(j, 0) and depth_of(j, 1) (-1 = zero padding).
PackedWeights pack_weights(int64_t rows, int64_t k_pairs, const std::function<int64_t(int64_t j, int t)>& depth_of,
                           const WeightAt& weight, const std::vector<int32_t>& bias,
                           const std::vector<FixedPointMultiplier>& multipliers) {
  PackedWeights p;
  p.rows = rows;
  p.tiles = (rows + kTileRows - 1) / kTileRows;
  p.k_pairs = k_pairs;
  p.data.assign(static_cast<size_t>(p.tiles * k_pairs * kTileRows * 2), 0);
  p.bias.assign(static_cast<size_t>(p.tiles * kTileRows), 0);
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t tile = m / kTileRows, r = m % kTileRows;
    for (int64_t j = 0; j < k_pairs; ++j)
      for (int t = 0; t < 2; ++t) {
        const int64_t k = depth_of(j, t);
        if (k >= 0)
          p.data[static_cast<size_t>(((tile * k_pairs + j) * kTileRows + r) * 2 + t)] =
              static_cast<int16_t>(weight(m, k));
      }
    p.bias[m] = bias[m];
  }
  for (const auto& mult : multipliers) p.requant.push_back(make_row_requant(mult));
  p.requant.resize(static_cast<size_t>(p.tiles * kTileRows), make_row_requant({0, 31}));
  return p;
}

// Up to 8 consecutive output pixels: where their inputs start in the buffer and where they go.
struct PixelGroup {
  int64_t base = 0;  // pair index in the input buffer for k-pair offset 0
  int64_t out = 0;   // index of the first pixel in the output plane (or output row for gemm)
  int count = 0;     // 1..8; 0 marks the unused half of the last tile
};

// Runs every tile of one image: tiles of 4 output channels x 2 groups of 8 pixels, channel
// tiles outermost so a tile's packed weights stay in L1 while the image streams by.
// `store(tile, group0, group1, acc)` consumes the tile's accumulators (group1.count may be 0).
template <typename Store>
void run_tiles(const QKernels& k, const PackedWeights& w, const std::vector<int32_t>& offsets,
               const std::vector<PixelGroup>& groups, const int16_t* buffer, Store store) {
  alignas(32) int32_t acc[kTileRows * 2 * kGroupPixels];
  for (int64_t tile = 0; tile < w.tiles; ++tile) {
    const int16_t* wt = w.data.data() + tile * w.k_pairs * kTileRows * 2;
    const int32_t* bias = w.bias.data() + tile * kTileRows;
    for (size_t g = 0; g < groups.size(); g += 2) {
      const PixelGroup& g0 = groups[g];
      const PixelGroup g1 = g + 1 < groups.size() ? groups[g + 1] : PixelGroup{g0.base, g0.out, 0};
      k.tile(w.k_pairs, wt, offsets.data(), buffer + 2 * g0.base, buffer + 2 * g1.base, bias, acc);
      store(tile, g0, g1, acc);
    }
  }
}

OutputClamp output_clamp(const OutputStage& s) { return {s.zero_point, s.lo, s.hi, s.dtype == DType::i8}; }

// Scratch buffers are per thread: one executor serves several threads at once.
std::vector<int16_t>& scratch() {
  thread_local std::vector<int16_t> buffer;
  return buffer;
}

// ---- QConv ---------------------------------------------------------------------------------

struct QConvPlan {
  Shape w_shape;
  int64_t channels = 0, channel_pairs = 0;
  DType x_type = DType::u8;
  int32_t x_zero_point = 0;
  PackedWeights weights;
  std::shared_ptr<const WinogradS16Weights> winograd;  // 3x3 stride 1 padding 1 (else null)
  // oneDNN's sums (AVX-512 VNNI CPUs, int8 weights with zero point 0, channel counts multiples of 16; else
  // null), plus onednn_offset[m] = bias[m] - x_zp * sum(w[m]): then acc = sums + offset, as the tile's.
  std::shared_ptr<const OnednnConvSums> onednn;
  std::vector<int32_t> onednn_offset;
  OutputClamp clamp;
  QKernels kernels;
};

// Where one image's int16 copy lives: [channel_pairs][phases][padded_h][phase_w][2].
struct ConvBufferLayout {
  int64_t phases = 1, padded_h = 0, phase_w = 0;
  int64_t pairs() const { return phases * padded_h * phase_w; }  // per channel pair
};

ConvBufferLayout conv_buffer_layout(const ConvGeometry& g) {
  ConvBufferLayout l;
  l.phases = g.stride_w;
  l.padded_h = g.in_h + g.pad_top + g.pad_bottom;
  l.phase_w = (g.in_w + g.pad_left + g.pad_right + g.stride_w - 1) / g.stride_w;
  return l;
}

// Writes count pairs (a[i * stride] - zp, b[i * stride] - zp); b == nullptr reads as zp.
template <typename X>
void interleave_portable(const X* a, const X* b, int64_t count, int64_t stride, int32_t zp, int16_t* out) {
  for (int64_t i = 0; i < count; ++i) {
    out[2 * i] = static_cast<int16_t>(a[i * stride] - zp);
    out[2 * i + 1] = static_cast<int16_t>(b ? b[i * stride] - zp : 0);
  }
}

// 8 values at p[0], p[stride], ... (stride 1 or 2) as int16 minus the zero point.
template <typename X>
__attribute__((target("avx2"))) inline __m128i load8_minus_zp(const X* p, int64_t stride, __m128i zp) {
  const __m128i even_bytes = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
  __m128i v = stride == 1 ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))
                          : _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), even_bytes);
  v = std::is_same_v<X, uint8_t> ? _mm_cvtepu8_epi16(v) : _mm_cvtepi8_epi16(v);
  return _mm_sub_epi16(v, zp);
}

// The same as interleave_portable for stride 1 or 2, 16 or 8 pairs at a time. Loads may read
// past the row (the extra values are dropped) but never past `end`, the end of the tensor.
template <typename X>
__attribute__((target("avx2"))) inline void interleave_avx2(const X* a, const X* b, int64_t count, int64_t stride,
                                                            const X* end, int32_t zp, int16_t* out) {
  const int64_t readable = end - (b ? std::max(a, b) : a);  // elements left in the tensor after the later row
  const __m128i zpv = _mm_set1_epi16(static_cast<int16_t>(zp));
  const int64_t load_width = stride == 1 ? 8 : 16;
  int64_t i = 0;
  if (stride == 1) {  // 16 pairs per step
    const __m256i zp16 = _mm256_set1_epi16(static_cast<int16_t>(zp));
    for (; i + 16 <= count; i += 16) {  // reads a[i .. i+15], all inside the row
      const __m128i a8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
      const __m256i a16 =
          _mm256_sub_epi16(std::is_same_v<X, uint8_t> ? _mm256_cvtepu8_epi16(a8) : _mm256_cvtepi8_epi16(a8), zp16);
      __m256i b16 = _mm256_setzero_si256();
      if (b) {
        const __m128i b8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
        b16 = _mm256_sub_epi16(std::is_same_v<X, uint8_t> ? _mm256_cvtepu8_epi16(b8) : _mm256_cvtepi8_epi16(b8), zp16);
      }
      // unpack works per 128-bit lane: lo = pairs 0-3 | 8-11, hi = pairs 4-7 | 12-15.
      const __m256i lo = _mm256_unpacklo_epi16(a16, b16), hi = _mm256_unpackhi_epi16(a16, b16);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i), _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
  }
  for (; i + 8 <= count && i * stride + load_width <= readable; i += 8) {
    const __m128i a16 = load8_minus_zp(a + i * stride, stride, zpv);
    const __m128i b16 = b ? load8_minus_zp(b + i * stride, stride, zpv) : _mm_setzero_si128();
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), _mm_unpacklo_epi16(a16, b16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i + 8), _mm_unpackhi_epi16(a16, b16));
  }
  interleave_portable(a + i * stride, b ? b + i * stride : nullptr, count - i, stride, zp, out + 2 * i);
}

// Which padded rows and column phases some output pixel reads: the others are not written and
// stay zero (a 1x1 stride-2 convolution reads a quarter of its input).
struct ConvBufferUse {
  std::vector<char> row, phase;
  std::vector<int64_t> q_begin, q_end;  // per phase: columns q holding image columns (others are padding)
};

ConvBufferUse conv_buffer_use(const ConvGeometry& g, const ConvBufferLayout& l) {
  ConvBufferUse u;
  u.row.assign(static_cast<size_t>(l.padded_h), 0);
  u.phase.assign(static_cast<size_t>(l.phases), 0);
  for (int64_t oy = 0; oy < g.out_h; ++oy)
    for (int64_t ky = 0; ky < g.kernel_h; ++ky) u.row[oy * g.stride_h + ky * g.dilation_h] = 1;
  for (int64_t kx = 0; kx < g.kernel_w; ++kx) u.phase[(kx * g.dilation_w) % l.phases] = 1;
  for (int64_t phase = 0; phase < l.phases; ++phase) {
    // Column q of this phase is image column q * stride + phase - pad_left.
    const int64_t first = phase - g.pad_left;
    const int64_t begin = first >= 0 ? 0 : (-first + g.stride_w - 1) / g.stride_w;
    const int64_t end = first >= g.in_w ? 0 : (g.in_w - first + g.stride_w - 1) / g.stride_w;
    u.q_begin.push_back(std::min(begin, l.phase_w));
    u.q_end.push_back(std::max(std::min(end, l.phase_w), u.q_begin.back()));
  }
  return u;
}

// Writes the image columns of the int16 copy of image `x` (C x H x W) into `buffer` (see the
// file comment). The padding is the same for every image, so run_qconv zeroes it once per call.
template <typename X>
void fill_conv_buffer_portable(const X* x, const ConvGeometry& g, const ConvBufferLayout& l, const ConvBufferUse& use,
                               int64_t channel_pairs, int32_t zp, int16_t* buffer) {
  const int64_t plane = g.in_h * g.in_w;
  for (int64_t cp = 0; cp < channel_pairs; ++cp) {
    const X* c0 = x + (2 * cp) * plane;
    const X* c1 = 2 * cp + 1 < g.in_channels ? c0 + plane : nullptr;
    for (int64_t phase = 0; phase < l.phases; ++phase) {
      const int64_t q_begin = use.q_begin[phase], count = use.q_end[phase] - q_begin;
      if (!use.phase[phase] || count == 0) continue;
      const int64_t first_col = phase - g.pad_left + q_begin * g.stride_w;  // image column of q_begin
      for (int64_t ih = 0; ih < g.in_h; ++ih) {
        const int64_t hp = ih + g.pad_top;
        if (!use.row[hp]) continue;
        int16_t* out = buffer + 2 * (((cp * l.phases + phase) * l.padded_h + hp) * l.phase_w + q_begin);
        interleave_portable(c0 + ih * g.in_w + first_col, c1 ? c1 + ih * g.in_w + first_col : nullptr, count,
                            g.stride_w, zp, out);
      }
    }
  }
}

// The same loop compiled for AVX2 as a whole, so the row conversions inline (stride_w <= 2).
// (A shared template cannot take the AVX2 conversion as a callback: it would not inline.)
template <typename X>
__attribute__((target("avx2"))) void fill_conv_buffer_avx2(const X* x, const X* end, const ConvGeometry& g,
                                                           const ConvBufferLayout& l, const ConvBufferUse& use,
                                                           int64_t channel_pairs, int32_t zp, int16_t* buffer) {
  const int64_t plane = g.in_h * g.in_w;
  for (int64_t cp = 0; cp < channel_pairs; ++cp) {
    const X* c0 = x + (2 * cp) * plane;
    const X* c1 = 2 * cp + 1 < g.in_channels ? c0 + plane : nullptr;
    for (int64_t phase = 0; phase < l.phases; ++phase) {
      const int64_t q_begin = use.q_begin[phase], count = use.q_end[phase] - q_begin;
      if (!use.phase[phase] || count == 0) continue;
      const int64_t first_col = phase - g.pad_left + q_begin * g.stride_w;
      for (int64_t ih = 0; ih < g.in_h; ++ih) {
        const int64_t hp = ih + g.pad_top;
        if (!use.row[hp]) continue;
        int16_t* out = buffer + 2 * (((cp * l.phases + phase) * l.padded_h + hp) * l.phase_w + q_begin);
        interleave_avx2(c0 + ih * g.in_w + first_col, c1 ? c1 + ih * g.in_w + first_col : nullptr, count, g.stride_w,
                        end, zp, out);
      }
    }
  }
}

// False when the image's int16 copy is too large for the int32 offsets of the micro-kernel (the
// caller then runs the reference).
bool qconv_fits(const QConvPlan& p, const ConvGeometry& g) {
  return p.channel_pairs * conv_buffer_layout(g).pairs() <= (int64_t{1} << 30);
}

// The int16 copy of image n of x, laid out for geometry g (its column phases: g.stride_w).
void fill_conv_buffer(const QConvPlan& p, const ConvGeometry& g, const ConvBufferLayout& l, const ConvBufferUse& use,
                      const Tensor& x, int64_t n, int16_t* buffer) {
  const int64_t image = n * g.in_channels * g.in_h * g.in_w;
  if (n + 1 < g.batch)  // the next image is in L3 by now (the previous layer wrote the whole batch)
    for (int64_t byte = 0; byte < g.in_channels * g.in_h * g.in_w; byte += 64)
      __builtin_prefetch(x.bytes.data() + image + g.in_channels * g.in_h * g.in_w + byte);
  const bool avx2 = p.kernels.avx2 && g.stride_w <= 2;
  if (p.x_type == DType::u8 && avx2)
    fill_conv_buffer_avx2(x.data<uint8_t>() + image, x.data<uint8_t>() + x.numel(), g, l, use, p.channel_pairs,
                          p.x_zero_point, buffer);
  else if (p.x_type == DType::u8)
    fill_conv_buffer_portable(x.data<uint8_t>() + image, g, l, use, p.channel_pairs, p.x_zero_point, buffer);
  else if (avx2)
    fill_conv_buffer_avx2(x.data<int8_t>() + image, x.data<int8_t>() + x.numel(), g, l, use, p.channel_pairs,
                          p.x_zero_point, buffer);
  else
    fill_conv_buffer_portable(x.data<int8_t>() + image, g, l, use, p.channel_pairs, p.x_zero_point, buffer);
}

// fill_conv_buffer for the Winograd copy (winograd_geometry, columns split by parity), 8 image
// columns at a time: image column 2q goes to parity 1 at q, column 2q + 1 to parity 0 at q + 1.
template <typename X>
__attribute__((target("avx2"))) void fill_winograd_buffer_avx2(const X* x, const ConvGeometry& g,
                                                               const ConvBufferLayout& l, int64_t channel_pairs,
                                                               int32_t zp, int16_t* buffer) {
  const int64_t plane = g.in_h * g.in_w, parity_plane = l.padded_h * l.phase_w;
  const __m128i zpv = _mm_set1_epi16(static_cast<int16_t>(zp));
  for (int64_t cp = 0; cp < channel_pairs; ++cp) {
    const X* c0 = x + (2 * cp) * plane;
    const X* c1 = 2 * cp + 1 < g.in_channels ? c0 + plane : nullptr;
    int16_t* even = buffer + 2 * (2 * cp) * parity_plane;
    int16_t* odd = even + 2 * parity_plane;
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      const int64_t row = 2 * (ih + 1) * l.phase_w;
      for (int64_t col = 0; col < g.in_w; col += 8) {
        const __m128i a = load8_minus_zp(c0 + ih * g.in_w + col, 1, zpv);
        const __m128i b = c1 ? load8_minus_zp(c1 + ih * g.in_w + col, 1, zpv) : _mm_setzero_si128();
        const __m128 lo = _mm_castsi128_ps(_mm_unpacklo_epi16(a, b)), hi = _mm_castsi128_ps(_mm_unpackhi_epi16(a, b));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(odd + row + col),
                         _mm_castps_si128(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(even + row + col + 2),
                         _mm_castps_si128(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))));
      }
    }
  }
}

// The geometries winograd_s16.h covers: 3x3, stride 1, dilation 1, padding 1 on every side,
// an even height and a width that is a multiple of 8.
bool winograd_geometry(const ConvGeometry& g) {
  return g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 &&
         g.dilation_w == 1 && g.pad_top == 1 && g.pad_left == 1 && g.pad_bottom == 1 && g.pad_right == 1 &&
         g.group == 1 && g.in_h % 2 == 0 && g.in_w % 8 == 0 && g.in_h > 0 && g.out_h == g.in_h && g.out_w == g.in_w;
}

// run_qconv_tiles for winograd_geometry: per block of 16 output tiles (2x2 pixels each), the
// input transform, 16 micro-kernel calls per 4 output channels (one per position), and the
// output transform, which hands each unit of 4 tiles to `store` as two groups of 8 pixels.
template <typename Store>
void run_qconv_winograd_tiles(const QConvPlan& p, const ConvGeometry& g, const Tensor& x, Store store) {
  const WinogradS16Weights& w = *p.winograd;
  ConvGeometry split = g;  // the direct kernel's copy with 2 column phases: the column parities
  split.stride_w = 2;
  const ConvBufferLayout l = conv_buffer_layout(split);
  const ConvBufferUse use = conv_buffer_use(split, l);
  std::vector<int16_t>& buffer = scratch();
  buffer.assign(static_cast<size_t>(2 * (p.channel_pairs * l.pairs() + 2 * kGroupPixels)), 0);  // padding = 0
  thread_local std::vector<int16_t> transformed;
  // Slots past the last tile may hold an earlier call's values: their results are never stored.
  transformed.resize(static_cast<size_t>(kWinogradPositions * p.channel_pairs * kWinogradBlockTiles * 2));

  const WinogradInputLayout in{p.channel_pairs, l.padded_h, l.phase_w, g.in_w / 2, (g.in_h / 2) * (g.in_w / 2)};
  std::vector<int32_t> offsets(static_cast<size_t>(p.channel_pairs));
  for (int64_t j = 0; j < p.channel_pairs; ++j) offsets[j] = static_cast<int32_t>(j * kWinogradBlockTiles);
  const bool avx512 = p.kernels.avx512 && has_avx512bw();
  const auto input = avx512           ? winograd_s16_input_avx512
                     : p.kernels.avx2 ? winograd_s16_input_avx2
                                      : winograd_s16_input_portable;
  const auto output = avx512           ? winograd_s16_output_avx512
                      : p.kernels.avx2 ? winograd_s16_output_avx2
                                       : winograd_s16_output_portable;
  const int32_t zero_bias[kTileRows] = {};
  alignas(32) int32_t products[kWinogradPositions * kTileRows * kWinogradBlockTiles];
  alignas(32) int32_t units[4 * kTileRows * 2 * kGroupPixels];
  const int64_t position_stride = 2 * p.channel_pairs * kWinogradBlockTiles;
  for (int64_t n = 0; n < g.batch; ++n) {
    const int64_t image = n * g.in_channels * g.in_h * g.in_w;
    if (p.kernels.avx2 && p.x_type == DType::u8)
      fill_winograd_buffer_avx2(x.data<uint8_t>() + image, g, l, p.channel_pairs, p.x_zero_point, buffer.data());
    else if (p.kernels.avx2)
      fill_winograd_buffer_avx2(x.data<int8_t>() + image, g, l, p.channel_pairs, p.x_zero_point, buffer.data());
    else
      fill_conv_buffer(p, split, l, use, x, n, buffer.data());
    for (int64_t first = 0; first < in.tiles; first += kWinogradBlockTiles) {
      input(buffer.data(), in, first, transformed.data());
      for (int64_t row_tile = 0; row_tile < w.row_tiles; ++row_tile) {
        for (int pos = 0; pos < kWinogradPositions; ++pos) {
          const int16_t* v = transformed.data() + pos * position_stride;
          p.kernels.tile(w.channel_pairs, w.at(pos, row_tile), offsets.data(), v, v + 2 * kGroupPixels, zero_bias,
                         products + pos * kTileRows * kWinogradBlockTiles);
        }
        output(products, p.weights.bias.data() + row_tile * kTileRows, units);
        for (int u = 0; u < 4 && first + 4 * u < in.tiles; ++u) {
          const int64_t t = first + 4 * u, ty = t / in.tiles_w, tx = t % in.tiles_w;
          const PixelGroup upper{0, 2 * ty * g.out_w + 2 * tx, kGroupPixels};
          const PixelGroup lower{0, (2 * ty + 1) * g.out_w + 2 * tx, kGroupPixels};
          store(n, row_tile, upper, lower, units + u * kTileRows * 2 * kGroupPixels);
        }
      }
    }
  }
}

// The tile accumulators of channels m0..m0+15 (4 tiles: acc[t * 64 ...]) for two pixel groups, from oneDNN's
// sums ([pixel][M], int32) plus the offset: 16 pixel rows of 16 channels transposed to 16 channel rows of 16
// pixels. Lanes past a group's count repeat its first pixel (the stores never write them).
__attribute__((target("avx512f"))) void onednn_sums_to_tiles(const int32_t* sums, int64_t m_count, int64_t m0,
                                                             const PixelGroup& g0, const PixelGroup& g1,
                                                             const int32_t* offset, int32_t* acc) {
  __m512i r[16], t[16], q[16];
  for (int i = 0; i < 16; ++i) {
    const PixelGroup& grp = i < 8 ? g0 : (g1.count > 0 ? g1 : g0);
    const int64_t pixel = grp.out + (i % 8 < grp.count ? i % 8 : 0);
    r[i] = _mm512_loadu_si512(sums + pixel * m_count + m0);
  }
  for (int k = 0; k < 8; ++k) {  // within each 128-bit lane L (channels 4L..4L+3)
    t[2 * k] = _mm512_mask_unpacklo_epi32(r[2 * k], kAll, r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_mask_unpackhi_epi32(r[2 * k], kAll, r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // q[4k + j], lane L: channel 4L + j of pixels 4k..4k+3
    q[4 * k + 0] = _mm512_mask_unpacklo_epi64(t[4 * k], kAll64, t[4 * k], t[4 * k + 2]);
    q[4 * k + 1] = _mm512_mask_unpackhi_epi64(t[4 * k], kAll64, t[4 * k], t[4 * k + 2]);
    q[4 * k + 2] = _mm512_mask_unpacklo_epi64(t[4 * k + 1], kAll64, t[4 * k + 1], t[4 * k + 3]);
    q[4 * k + 3] = _mm512_mask_unpackhi_epi64(t[4 * k + 1], kAll64, t[4 * k + 1], t[4 * k + 3]);
  }
  for (int j = 0; j < 4; ++j) {  // gather lane L of q[j], q[4 + j], q[8 + j], q[12 + j]: channel 4L + j, 16 pixels
    const __m512i a = _mm512_mask_shuffle_i32x4(q[j], kAll, q[j], q[4 + j], 0x44),
                  b = _mm512_mask_shuffle_i32x4(q[j], kAll, q[j], q[4 + j], 0xEE);
    const __m512i c = _mm512_mask_shuffle_i32x4(q[8 + j], kAll, q[8 + j], q[12 + j], 0x44),
                  d = _mm512_mask_shuffle_i32x4(q[8 + j], kAll, q[8 + j], q[12 + j], 0xEE);
    const __m512i lanes[4] = {
        _mm512_mask_shuffle_i32x4(a, kAll, a, c, 0x88), _mm512_mask_shuffle_i32x4(a, kAll, a, c, 0xDD),
        _mm512_mask_shuffle_i32x4(b, kAll, b, d, 0x88), _mm512_mask_shuffle_i32x4(b, kAll, b, d, 0xDD)};
    for (int L = 0; L < 4; ++L) {
      const int channel = 4 * L + j;
      _mm512_storeu_si512(acc + channel * 16, _mm512_add_epi32(lanes[L], _mm512_set1_epi32(offset[m0 + channel])));
    }
  }
}

// run_qconv_tiles by oneDNN's sums (p.onednn): the same tiles, handed to `store` in the same form.
template <typename Store>
void run_qconv_onednn_tiles(const QConvPlan& p, const ConvGeometry& g, const Tensor& x, Store store) {
  const int64_t plane = g.out_h * g.out_w, m_count = g.out_channels;
  thread_local std::vector<int32_t> sums;
  sums.resize(static_cast<size_t>(g.batch * plane * m_count));
  OnednnConvInput in;
  in.x = x.bytes.data();
  in.batch = g.batch;
  in.in_h = g.in_h;
  in.in_w = g.in_w;
  in.stride_h = g.stride_h;
  in.stride_w = g.stride_w;
  in.pad_top = g.pad_top;
  in.pad_left = g.pad_left;
  in.pad_bottom = g.pad_bottom;
  in.pad_right = g.pad_right;
  in.pad_code = p.x_zero_point;
  in.out_h = g.out_h;
  in.out_w = g.out_w;
  p.onednn->run(in, sums.data());
  std::vector<PixelGroup> groups;
  for (int64_t oy = 0; oy < g.out_h; ++oy)
    for (int64_t ox = 0; ox < g.out_w; ox += kGroupPixels)
      groups.push_back({0, oy * g.out_w + ox, static_cast<int>(std::min<int64_t>(kGroupPixels, g.out_w - ox))});
  alignas(64) int32_t acc[16 * 16];
  for (int64_t n = 0; n < g.batch; ++n) {
    const int32_t* image = sums.data() + n * plane * m_count;
    for (size_t k = 0; k < groups.size(); k += 2) {
      const PixelGroup& g0 = groups[k];
      const PixelGroup g1 = k + 1 < groups.size() ? groups[k + 1] : PixelGroup{g0.base, g0.out, 0};
      for (int64_t m0 = 0; m0 < m_count; m0 += 16) {
        onednn_sums_to_tiles(image, m_count, m0, g0, g1, p.onednn_offset.data(), acc);
        for (int t = 0; t < 4; ++t) store(n, m0 / kTileRows + t, g0, g1, acc + t * kTileRows * 16);
      }
    }
  }
}

// oneDNN's sums serve this geometry: the plan has them (its other conditions are the plan's), no dilation.
bool use_onednn(const QConvPlan& p, const ConvGeometry& g) {
  return p.onednn && g.dilation_h == 1 && g.dilation_w == 1;
}

// Computes every tile of the convolution of x (geometry g, qconv_fits) and hands it to
// `store(n, tile, group0, group1, acc)`, which writes image n's outputs.
template <typename Store>
void run_qconv_tiles(const QConvPlan& p, const ConvGeometry& g, const Tensor& x, Store store) {
  if (use_onednn(p, g)) return run_qconv_onednn_tiles(p, g, x, store);
  if (p.winograd && winograd_geometry(g)) return run_qconv_winograd_tiles(p, g, x, store);
  const ConvBufferLayout l = conv_buffer_layout(g);
  // Offsets of each k-pair, in the packing order j = (ky * kernel_w + kx) * channel_pairs + cp.
  std::vector<int32_t> offsets(static_cast<size_t>(p.weights.k_pairs));
  for (int64_t ky = 0; ky < g.kernel_h; ++ky)
    for (int64_t kx = 0; kx < g.kernel_w; ++kx)
      for (int64_t cp = 0; cp < p.channel_pairs; ++cp) {
        const int64_t col = kx * g.dilation_w;
        offsets[(ky * g.kernel_w + kx) * p.channel_pairs + cp] = static_cast<int32_t>(
            ((cp * l.phases + col % l.phases) * l.padded_h + ky * g.dilation_h) * l.phase_w + col / l.phases);
      }
  std::vector<PixelGroup> groups;
  for (int64_t oy = 0; oy < g.out_h; ++oy)
    for (int64_t ox = 0; ox < g.out_w; ox += kGroupPixels)
      groups.push_back({oy * g.stride_h * l.phase_w + ox, oy * g.out_w + ox,
                        static_cast<int>(std::min<int64_t>(kGroupPixels, g.out_w - ox))});

  const ConvBufferUse use = conv_buffer_use(g, l);
  std::vector<int16_t>& buffer = scratch();
  buffer.assign(static_cast<size_t>(2 * (p.channel_pairs * l.pairs() + 2 * kGroupPixels)), 0);  // padding = 0
  for (int64_t n = 0; n < g.batch; ++n) {
    fill_conv_buffer(p, g, l, use, x, n, buffer.data());
    run_tiles(p.kernels, p.weights, offsets, groups, buffer.data(),
              [&](int64_t tile, const PixelGroup& g0, const PixelGroup& g1, const int32_t* acc) {
                store(n, tile, g0, g1, acc);
              });
  }
}

// Where tile `tile` of image n of an [N, M, out_h, out_w] output of 8-bit values starts and goes.
TileDestination tile_destination(const QConvPlan& p, const ConvGeometry& g, uint8_t* y, int64_t n, int64_t tile,
                                 const PixelGroup& g0, const PixelGroup& g1) {
  const int64_t out_plane = g.out_h * g.out_w;
  TileDestination dst;
  dst.out = y + (n * g.out_channels + tile * kTileRows) * out_plane;
  dst.row_stride = out_plane;
  dst.rows = static_cast<int>(std::min<int64_t>(kTileRows, p.weights.rows - tile * kTileRows));
  dst.group_out[0] = g0.out;
  dst.group_out[1] = g1.out;
  dst.group_count[0] = g0.count;
  dst.group_count[1] = g1.count;
  return dst;
}

// Returns false (and computes nothing) when the image's int16 copy is too large for the int32
// offsets of the micro-kernel; the caller then runs the reference.
bool run_qconv(const QConvPlan& p, const Node& node, const Tensor& x, Tensor& y) {
  const ConvGeometry g = conv_geometry(node, x.shape, p.w_shape);
  if (!qconv_fits(p, g)) return false;
  y.reset(p.clamp.is_signed ? DType::i8 : DType::u8, {g.batch, g.out_channels, g.out_h, g.out_w});
  run_qconv_tiles(p, g, x, [&](int64_t n, int64_t tile, const PixelGroup& g0, const PixelGroup& g1, const int32_t* acc) {
    p.kernels.store(acc, p.weights.requant.data() + tile * kTileRows, p.clamp, tile_destination(p, g, y.bytes.data(), n, tile, g0, g1));
  });
  return true;
}

// ---- QGemm ---------------------------------------------------------------------------------

struct QGemmPlan {
  Shape b_shape;
  int64_t depth = 0, cols = 0;
  DType a_type = DType::u8;
  int32_t a_zero_point = 0;
  bool float_output = false;
  std::vector<float> dequant_scale;
  PackedWeights weights;
  OutputClamp clamp;
  QKernels kernels;
};

// Returns false (computing nothing) when A's int16 copy is too large for int32 offsets.
bool run_qgemm(const QGemmPlan& p, const Node& node, const Tensor& a, Tensor& y) {
  const GemmGeometry g = gemm_geometry(node, a.shape, p.b_shape);
  // Buffer [k_pairs][row_stride][2]: rows of A are the "pixels", k-pair j at offset j * row_stride.
  const int64_t row_stride = g.rows + kGroupPixels;
  if (p.weights.k_pairs * row_stride > (int64_t{1} << 30)) return false;
  std::vector<int16_t>& buffer = scratch();
  buffer.assign(static_cast<size_t>(2 * (p.weights.k_pairs * row_stride + 2 * kGroupPixels)), 0);
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t k = 0; k < g.depth; ++k) {
      const int32_t v = p.a_type == DType::u8 ? int32_t{a.data<uint8_t>()[r * g.depth + k]}
                                              : int32_t{a.data<int8_t>()[r * g.depth + k]};
      buffer[static_cast<size_t>(2 * ((k / 2) * row_stride + r) + k % 2)] = static_cast<int16_t>(v - p.a_zero_point);
    }
  std::vector<int32_t> offsets(static_cast<size_t>(p.weights.k_pairs));
  for (int64_t j = 0; j < p.weights.k_pairs; ++j) offsets[j] = static_cast<int32_t>(j * row_stride);
  std::vector<PixelGroup> groups;
  for (int64_t r = 0; r < g.rows; r += kGroupPixels)
    groups.push_back({r, r, static_cast<int>(std::min<int64_t>(kGroupPixels, g.rows - r))});

  y.reset(p.float_output ? DType::f32 : (p.clamp.is_signed ? DType::i8 : DType::u8), g.out_shape);
  // Y is [rows, cols] with the tile's channels as columns: a strided store, done in scalar
  // (the classifier head of a CNN is a few hundred values per image).
  run_tiles(p.kernels, p.weights, offsets, groups, buffer.data(),
            [&](int64_t tile, const PixelGroup& g0, const PixelGroup& g1, const int32_t* acc) {
              for (int r = 0; r < kTileRows; ++r) {
                const int64_t n = tile * kTileRows + r;
                if (n >= g.cols) break;
                for (const PixelGroup* grp : {&g0, &g1})
                  for (int i = 0; i < grp->count; ++i) {
                    const int32_t v = acc[r * 16 + (grp == &g1 ? 8 : 0) + i];
                    const int64_t at = (grp->out + i) * g.cols + n;
                    if (p.float_output)
                      y.data<float>()[at] = static_cast<float>(v) * p.dequant_scale[n];
                    else
                      y.bytes[static_cast<size_t>(at)] = static_cast<uint8_t>(
                          requantize(v, p.weights.requant[n].multiplier, p.clamp.zero_point, p.clamp.lo, p.clamp.hi));
                  }
              }
            });
  return true;
}

// ---- QAdd (same shapes) --------------------------------------------------------------------

static_assert(kAddLeftShift == 20, "eq. (7a) in fixed_point.h assumes QAdd's inputs are shifted by 2^20");

struct QAddPlan {
  QAddQuant quant;
  integer::AddInputMultiplier a_input, b_input;  // eq. (7a) forms of quant's a and b multipliers
  RowRequant out_requant;
  OutputClamp clamp;
  DType a_type = DType::u8, b_type = DType::u8;
  bool avx2 = false;  // also false when a multiplier has no (7a) form (never for eq. 12's)
};

template <typename T>
__attribute__((target("avx2"))) inline __m256i load8_as_i32(const T* p) {
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return std::is_same_v<T, uint8_t> ? _mm256_cvtepu8_epi32(v) : _mm256_cvtepi8_epi32(v);
}

// The constants of eq. (11)-(13) as vectors, broadcast once per kernel call.
struct QAddVectors {
  __m256i a_zp, b_zp, y_zp, lo, hi;
  AddInputVectors a, b;
  RequantVectors out;
};

__attribute__((target("avx2"))) inline QAddVectors broadcast_qadd(const QAddPlan& p) {
  return {_mm256_set1_epi32(p.quant.a_zero_point), _mm256_set1_epi32(p.quant.b_zero_point),
          _mm256_set1_epi32(p.clamp.zero_point),   _mm256_set1_epi32(p.clamp.lo),
          _mm256_set1_epi32(p.clamp.hi),           broadcast_add_input(p.a_input),
          broadcast_add_input(p.b_input),          broadcast_requant(p.out_requant)};
}

// For callers not compiled for AVX2 (a struct of vectors goes by pointer, not by value).
__attribute__((target("avx2"))) void broadcast_qadd_to(const QAddPlan& p, QAddVectors* v) { *v = broadcast_qadd(p); }

// Eq. (11)-(13) on 8 lanes of codes (int32), the input terms by (7a): the output codes, inside
// [lo, hi]. Always inlined: as a call it cost a third of the fused conv store.
__attribute__((target("avx2"), always_inline)) inline __m256i qadd8_avx2(const QAddVectors& v, __m256i a, __m256i b) {
  const __m256i sum = _mm256_add_epi32(multiply_add_input_avx2(_mm256_sub_epi32(a, v.a_zp), v.a),
                                       multiply_add_input_avx2(_mm256_sub_epi32(b, v.b_zp), v.b));
  const __m256i y = _mm256_add_epi32(multiply_by_fixed_point_avx2(sum, v.out), v.y_zp);
  return _mm256_min_epi32(_mm256_max_epi32(y, v.lo), v.hi);
}

// 8 int32 lanes already inside Y's range, stored as 8 values of Y.
template <typename Y>
__attribute__((target("avx2"))) inline void store8_avx2(__m256i v, Y* y) {
  const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i bytes = std::is_same_v<Y, int8_t> ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(y), bytes);
}

// Eq. (11)-(13) on 8 lanes, then the scalar reference for the tail.
template <typename A, typename B, typename Y>
__attribute__((target("avx2"))) void qadd_avx2(const QAddPlan& p, const A* a, const B* b, Y* y, int64_t count) {
  const QAddVectors v = broadcast_qadd(p);
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) store8_avx2(qadd8_avx2(v, load8_as_i32(a + i), load8_as_i32(b + i)), y + i);
  for (; i < count; ++i) y[i] = static_cast<Y>(qadd_value(p.quant, a[i], b[i]));
}

template <typename A, typename B, typename Y>
void qadd_portable(const QAddPlan& p, const A* a, const B* b, Y* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = static_cast<Y>(qadd_value(p.quant, a[i], b[i]));
}

template <typename F>
void visit_8bit(DType t, F&& f) {
  if (t == DType::u8)
    f(uint8_t{});
  else
    f(int8_t{});
}

template <typename A, typename B, typename Y>
void qadd_span(const QAddPlan& p, const A* a, const B* b, Y* y, int64_t count) {
  if (p.avx2)
    qadd_avx2(p, a, b, y, count);
  else
    qadd_portable(p, a, b, y, count);
}

void run_qadd(const QAddPlan& p, const Tensor& a, const Tensor& b, Tensor& y) {
  y.reset(p.clamp.is_signed ? DType::i8 : DType::u8, a.shape);
  visit_8bit(p.a_type, [&](auto at) {
    visit_8bit(p.b_type, [&](auto bt) {
      visit_8bit(y.dtype, [&](auto yt) {
        using A = decltype(at);
        using B = decltype(bt);
        using Y = decltype(yt);
        qadd_span(p, a.data<A>(), b.data<B>(), y.data<Y>(), a.numel());
      });
    });
  });
}

// ---- QConv -> QAdd, fused by the executor ----------------------------------------------------

// Each tile's conv codes are computed exactly as the conv's own store writes them (into a small
// buffer), then eq. (11)-(13) adds the addend at the same positions: the arithmetic of the two
// nodes, bit for bit, without writing and re-reading the conv's output.
struct QConvAddPlan {
  std::shared_ptr<const QConvPlan> conv;
  std::shared_ptr<const QAddPlan> add;
  bool conv_is_a = true;  // the conv's output is the Add's input a (else b)
};

// AVX2: the conv's codes stay in registers as int32 (the values its store would pack, eq. 8),
// and go straight into eq. (11)-(13) with the addend.
template <typename O, typename Y>
__attribute__((target("avx2"))) void store_tile_add_avx2(const int32_t* acc, const RowRequant* rows,
                                                         const OutputClamp& clamp, const QAddVectors& add,
                                                         bool conv_is_a, const O* other, Y* out, int64_t row_stride,
                                                         int row_count, const PixelGroup* groups[2]) {
  const __m256i zp = _mm256_set1_epi32(clamp.zero_point);
  const __m256i lo = _mm256_set1_epi32(clamp.lo), hi = _mm256_set1_epi32(clamp.hi);
  for (int r = 0; r < row_count; ++r) {
    const RequantVectors requant = broadcast_requant(rows[r]);
    for (int k = 0; k < 2; ++k) {
      const PixelGroup& grp = *groups[k];
      if (grp.count == 0) continue;
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + r * 16 + k * kGroupPixels));
      const __m256i c =
          _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(multiply_by_fixed_point_avx2(a, requant), zp), lo), hi);
      const O* o = other + r * row_stride + grp.out;
      Y* y = out + r * row_stride + grp.out;
      if (grp.count == kGroupPixels) {
        const __m256i v = load8_as_i32(o);
        store8_avx2(conv_is_a ? qadd8_avx2(add, c, v) : qadd8_avx2(add, v, c), y);
        continue;
      }
      O o8[kGroupPixels] = {};  // a partial group: never read or write past it
      Y y8[kGroupPixels];
      std::memcpy(o8, o, static_cast<size_t>(grp.count) * sizeof(O));
      const __m256i v = load8_as_i32(o8);
      store8_avx2(conv_is_a ? qadd8_avx2(add, c, v) : qadd8_avx2(add, v, c), y8);
      std::memcpy(y, y8, static_cast<size_t>(grp.count) * sizeof(Y));
    }
  }
}

// ---- the same on 16 lanes (AVX-512), for a tile whose two groups are full ----

struct QAddVectors16 {
  __m512i a_zp, b_zp, y_zp, lo, hi;
  AddInputVectors16 a, b;
  RequantVectors16 out;
};

__attribute__((target("avx512f"))) void broadcast_qadd16_to(const QAddPlan& p, QAddVectors16* v) {
  *v = {_mm512_set1_epi32(p.quant.a_zero_point), _mm512_set1_epi32(p.quant.b_zero_point),
        _mm512_set1_epi32(p.clamp.zero_point),   _mm512_set1_epi32(p.clamp.lo),
        _mm512_set1_epi32(p.clamp.hi),           broadcast_add_input16(p.a_input),
        broadcast_add_input16(p.b_input),        broadcast_requant16(p.out_requant)};
}

// qadd8_avx2 on 16 lanes.
__attribute__((target("avx512f"), always_inline)) inline __m512i qadd16_avx512(const QAddVectors16& v, __m512i a,
                                                                               __m512i b) {
  const __m512i sum = _mm512_add_epi32(multiply_add_input_avx512(_mm512_sub_epi32(a, v.a_zp), v.a),
                                       multiply_add_input_avx512(_mm512_sub_epi32(b, v.b_zp), v.b));
  const __m512i y = _mm512_add_epi32(multiply_by_fixed_point_avx512(sum, v.out), v.y_zp);
  return _mm512_mask_min_epi32(y, kAll, _mm512_mask_max_epi32(y, kAll, y, v.lo), v.hi);
}

// 8 values at a and 8 at b (the two groups of a tile row) as 16 int32 lanes.
template <typename T>
__attribute__((target("avx512f"))) inline __m512i load_groups_as_i32(const T* a, const T* b) {
  const __m128i v = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a)),
                                       _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b)));
  const __m512i none = _mm512_setzero_si512();  // masked forms: see requantize_avx512.h
  return std::is_same_v<T, uint8_t> ? _mm512_mask_cvtepu8_epi32(none, kAll, v)
                                    : _mm512_mask_cvtepi8_epi32(none, kAll, v);
}

// store_tile_add_avx2 with one 16-lane vector per tile row when both groups are full (8 adjacent pixels of a row
// each, anywhere: e.g. the two output rows of a Winograd tile); a partial group goes to store_tile_add_avx2.
template <typename O, typename Y>
__attribute__((target("avx512f,avx2"))) void store_tile_add_avx512(const int32_t* acc, const RowRequant* rows,
                                                                   const OutputClamp& clamp, const QAddVectors& add8,
                                                                   const QAddVectors16& add, bool conv_is_a,
                                                                   const O* other, Y* out, int64_t row_stride,
                                                                   int row_count, const PixelGroup* groups[2]) {
  const PixelGroup& g0 = *groups[0];
  const PixelGroup& g1 = *groups[1];
  if (g0.count != kGroupPixels || g1.count != kGroupPixels) {
    store_tile_add_avx2(acc, rows, clamp, add8, conv_is_a, other, out, row_stride, row_count, groups);
    return;
  }
  const bool joined = g1.out == g0.out + kGroupPixels;
  const __m512i zp = _mm512_set1_epi32(clamp.zero_point);
  const __m512i lo = _mm512_set1_epi32(clamp.lo), hi = _mm512_set1_epi32(clamp.hi);
  for (int r = 0; r < row_count; ++r) {
    const __m512i c = requantize_codes16(_mm512_loadu_si512(acc + r * 16), rows[r], zp, lo, hi);
    const O* o = other + r * row_stride;
    const __m512i v = load_groups_as_i32(o + g0.out, o + g1.out);
    // Inside Y's range: the low byte of each lane is the code.
    const __m128i bytes = _mm512_mask_cvtepi32_epi8(_mm_setzero_si128(), kAll,
                                                    conv_is_a ? qadd16_avx512(add, c, v) : qadd16_avx512(add, v, c));
    Y* y = out + r * row_stride;
    if (joined) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y + g0.out), bytes);
    } else {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y + g0.out), bytes);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y + g1.out), _mm_unpackhi_epi64(bytes, bytes));
    }
  }
}

template <typename C, typename O, typename Y>  // conv codes, other addend, output
void run_qconv_add(const QConvAddPlan& p, const ConvGeometry& g, const Tensor& x, const Tensor& addend, Tensor& y) {
  const QConvPlan& conv = *p.conv;
  const int64_t out_plane = g.out_h * g.out_w;
  const O* other = addend.data<O>();
  Y* out = y.data<Y>();
  if (conv.kernels.avx2 && p.add->avx2) {
    QAddVectors add;  // broadcast once per call, not per tile
    broadcast_qadd_to(*p.add, &add);
    if (conv.kernels.avx512) {
      QAddVectors16 add16;
      broadcast_qadd16_to(*p.add, &add16);
      run_qconv_tiles(
          conv, g, x, [&](int64_t n, int64_t tile, const PixelGroup& g0, const PixelGroup& g1, const int32_t* acc) {
            const int64_t first = (n * g.out_channels + tile * kTileRows) * out_plane;
            const PixelGroup* groups[2] = {&g0, &g1};
            store_tile_add_avx512(acc, conv.weights.requant.data() + tile * kTileRows, conv.clamp, add, add16,
                                  p.conv_is_a, other + first, out + first, out_plane,
                                  static_cast<int>(std::min<int64_t>(kTileRows, conv.weights.rows - tile * kTileRows)),
                                  groups);
          });
      return;
    }
    run_qconv_tiles(conv, g, x, [&](int64_t n, int64_t tile, const PixelGroup& g0, const PixelGroup& g1, const int32_t* acc) {
      const int64_t first = (n * g.out_channels + tile * kTileRows) * out_plane;
      const PixelGroup* groups[2] = {&g0, &g1};
      store_tile_add_avx2(acc, conv.weights.requant.data() + tile * kTileRows, conv.clamp, add, p.conv_is_a,
                          other + first, out + first, out_plane,
                          static_cast<int>(std::min<int64_t>(kTileRows, conv.weights.rows - tile * kTileRows)), groups);
    });
    return;
  }
  run_qconv_tiles(conv, g, x, [&](int64_t n, int64_t tile, const PixelGroup& g0, const PixelGroup& g1, const int32_t* acc) {
    alignas(16) uint8_t codes[kTileRows * 2 * kGroupPixels];  // row r, group k at codes + 16 r + 8 k
    TileDestination dst;
    dst.out = codes;
    dst.row_stride = 2 * kGroupPixels;
    dst.rows = static_cast<int>(std::min<int64_t>(kTileRows, conv.weights.rows - tile * kTileRows));
    dst.group_out[1] = kGroupPixels;
    dst.group_count[0] = g0.count;
    dst.group_count[1] = g1.count;
    conv.kernels.store(acc, conv.weights.requant.data() + tile * kTileRows, conv.clamp, dst);
    const bool joined = g0.count == kGroupPixels && g1.count > 0 && g1.out == g0.out + kGroupPixels;
    for (int r = 0; r < dst.rows; ++r) {
      const int64_t row = (n * g.out_channels + tile * kTileRows + r) * out_plane;
      const C* c = reinterpret_cast<const C*>(codes + r * dst.row_stride);
      auto add = [&](int64_t first, int from, int count) {
        if (p.conv_is_a)
          qadd_span(*p.add, c + from, other + row + first, out + row + first, count);
        else
          qadd_span(*p.add, other + row + first, c + from, out + row + first, count);
      };
      if (joined) {
        add(g0.out, 0, g0.count + g1.count);
      } else {
        add(g0.out, 0, g0.count);
        add(g1.out, kGroupPixels, g1.count);
      }
    }
  });
}

// Inputs of `node` with the listed (constant) ones taken from the graph's initializers and the
// others null; false if a listed input is named but not an initializer.
bool constant_inputs(const Node& node, const Graph& graph, std::initializer_list<size_t> constant, Inputs& inputs) {
  inputs.assign(node.inputs.size(), nullptr);
  for (size_t i : constant) {
    if (i >= node.inputs.size() || node.inputs[i].empty()) continue;
    inputs[i] = graph.initializer(node.inputs[i]);
    if (inputs[i] == nullptr) return false;
  }
  return true;
}

std::shared_ptr<const QConvPlan> make_qconv_plan(const Node& node, const Graph& graph) {
  if (!is_integer_op(node, "QConv") || node.attr_int("group", 1) != 1) return nullptr;
  Inputs constants;
  if (!constant_inputs(node, graph, {1, 2, 3, 4, 5, 6, 7, 8}, constants) || node.inputs.size() < 8) return nullptr;
  const Tensor& w = *constants[3];
  if (w.rank() != 4 || !is_8bit(w.dtype)) return nullptr;
  const QConvQuant q = make_qconv_quant(node, constants);  // validates; throws naming node and value

  auto plan = std::make_shared<QConvPlan>();
  plan->w_shape = w.shape;
  plan->channels = w.shape[1];
  plan->channel_pairs = (plan->channels + 1) / 2;
  plan->x_type = constants[2]->dtype;
  plan->x_zero_point = q.x_zero_point;
  plan->clamp = output_clamp(q.out);
  plan->kernels = select_qkernels();
  const int64_t kh = w.shape[2], kw = w.shape[3], cp_count = plan->channel_pairs, channels = plan->channels;
  const int64_t depth = channels * kh * kw;
  // Depth index (c, ky, kx) of k-pair j = (ky * kw + kx) * channel_pairs + cp, element t.
  auto depth_of = [=](int64_t j, int t) -> int64_t {
    const int64_t c = 2 * (j % cp_count) + t, tap = j / cp_count;
    return c < channels ? (c * kh + tap / kw) * kw + tap % kw : -1;
  };
  WeightAt weight = [&](int64_t m, int64_t k) {
    const int32_t v =
        w.dtype == DType::u8 ? int32_t{w.data<uint8_t>()[m * depth + k]} : int32_t{w.data<int8_t>()[m * depth + k]};
    return v - q.w_zero_point[m];
  };
  plan->weights = pack_weights(w.shape[0], kh * kw * cp_count, depth_of, weight, q.bias, q.out.multiplier);
  const bool symmetric_int8 = w.dtype == DType::i8 && std::all_of(q.w_zero_point.begin(), q.w_zero_point.end(),
                                                                  [](int32_t z) { return z == 0; });
  if (symmetric_int8 && plan->kernels.avx512) {
    plan->onednn = OnednnConvSums::create({w.shape[0], channels, kh, kw, plan->x_type == DType::i8}, w.data<int8_t>());
    if (plan->onednn) {
      plan->onednn_offset.resize(static_cast<size_t>(w.shape[0]));
      for (int64_t m = 0; m < w.shape[0]; ++m) {
        int64_t sum = 0;
        for (int64_t k = 0; k < depth; ++k) sum += w.data<int8_t>()[m * depth + k];
        plan->onednn_offset[m] = static_cast<int32_t>(q.bias[m] - int64_t{q.x_zero_point} * sum);
      }
    }
  }
  // Winograd weights only for convs whose attributes give winograd_geometry on some input.
  if (kh == 3 && kw == 3 && winograd_s16_exact(channels) &&
      winograd_geometry(conv_geometry(node, {1, channels, 8, 8}, w.shape)))
    plan->winograd = std::make_shared<const WinogradS16Weights>(
        pack_winograd_s16(w.shape[0], channels, [&](int64_t m, int64_t c, int ky, int kx) {
          return weight(m, (c * kh + ky) * kw + kx);
        }));
  return plan;
}

std::shared_ptr<const QAddPlan> make_qadd_plan(const Node& node, const Graph& graph) {
  if (!is_integer_op(node, "QAdd")) return nullptr;
  Inputs constants;
  if (!constant_inputs(node, graph, {1, 2, 4, 5, 6, 7}, constants) || node.inputs.size() != 8) return nullptr;
  auto plan = std::make_shared<QAddPlan>();
  plan->quant = make_qadd_quant(node, constants);
  plan->out_requant = make_row_requant(plan->quant.out.multiplier[0]);
  plan->clamp = output_clamp(plan->quant.out);
  plan->a_type = constants[2]->dtype;
  plan->b_type = constants[5]->dtype;
  plan->avx2 = select_qkernels().avx2 && integer::add_input_multiplier(plan->quant.a_multiplier, &plan->a_input) &&
               integer::add_input_multiplier(plan->quant.b_multiplier, &plan->b_input);
  return plan;
}

}  // namespace

PreparedKernel prepare_qconv(const Node& node, const Graph& graph) {
  const std::shared_ptr<const QConvPlan> plan = make_qconv_plan(node, graph);
  if (!plan) return nullptr;
  const ReferenceKernel reference = find_op("QConv", kDomain)->reference;
  return [plan, node, reference](const Inputs& in, std::vector<Tensor>& out) {
    const Tensor* x = in.empty() ? nullptr : in[0];
    if (!x || x->dtype != plan->x_type || x->rank() != 4 || x->shape[1] != plan->channels)
      return reference(node, in, out);
    if (!run_qconv(*plan, node, *x, out.at(0))) reference(node, in, out);
  };
}

PreparedKernel prepare_qgemm(const Node& node, const Graph& graph) {
  if (!is_integer_op(node, "QGemm")) return nullptr;
  Inputs constants;
  if (!constant_inputs(node, graph, {1, 2, 3, 4, 5, 6, 7, 8}, constants) || node.inputs.size() < 6) return nullptr;
  const Tensor& b = *constants[3];
  if (b.rank() != 2 || !is_8bit(b.dtype)) return nullptr;
  const QGemmQuant q = make_qgemm_quant(node, constants);

  auto plan = std::make_shared<QGemmPlan>();
  const bool trans_b = node.attr_int("transB", 0) != 0;
  plan->b_shape = b.shape;
  plan->depth = trans_b ? b.shape[1] : b.shape[0];
  plan->cols = trans_b ? b.shape[0] : b.shape[1];
  plan->a_type = constants[2]->dtype;
  plan->a_zero_point = q.a_zero_point;
  plan->float_output = q.float_output;
  plan->dequant_scale = q.dequant_scale;
  plan->clamp = output_clamp(q.out);
  plan->kernels = select_qkernels();
  const int64_t depth = plan->depth, cols = plan->cols;
  auto depth_of = [=](int64_t j, int t) -> int64_t { return 2 * j + t < depth ? 2 * j + t : -1; };
  WeightAt weight = [&](int64_t n, int64_t k) {
    const int64_t i = trans_b ? n * depth + k : k * cols + n;
    const int32_t v = b.dtype == DType::u8 ? int32_t{b.data<uint8_t>()[i]} : int32_t{b.data<int8_t>()[i]};
    return v - q.b_zero_point[n];
  };
  plan->weights = pack_weights(cols, (depth + 1) / 2, depth_of, weight, q.bias, q.out.multiplier);

  const ReferenceKernel reference = find_op("QGemm", kDomain)->reference;
  return [plan, node, reference](const Inputs& in, std::vector<Tensor>& out) {
    const Tensor* a = in.empty() ? nullptr : in[0];
    if (!a || a->dtype != plan->a_type || a->rank() < 1 || a->shape.back() != plan->depth)
      return reference(node, in, out);
    if (!run_qgemm(*plan, node, *a, out.at(0))) reference(node, in, out);
  };
}

PreparedKernel prepare_qadd(const Node& node, const Graph& graph) {
  const std::shared_ptr<const QAddPlan> plan = make_qadd_plan(node, graph);
  if (!plan) return nullptr;
  const ReferenceKernel reference = find_op("QAdd", kDomain)->reference;
  return [plan, node, reference](const Inputs& in, std::vector<Tensor>& out) {
    const Tensor* a = in.size() > 3 ? in[0] : nullptr;
    const Tensor* b = in.size() > 3 ? in[3] : nullptr;
    if (!a || !b || a->shape != b->shape || a->dtype != plan->a_type || b->dtype != plan->b_type)
      return reference(node, in, out);  // broadcasting and anything unusual
    run_qadd(*plan, *a, *b, out.at(0));
  };
}

PreparedKernel prepare_qconv_add(const Node& conv, const Node& add, const Graph& graph) {
  if (!is_integer_op(add, "QAdd") || add.inputs.size() != 8 || conv.outputs.size() != 1) return nullptr;
  const bool is_a = add.inputs[0] == conv.outputs[0], is_b = add.inputs[3] == conv.outputs[0];
  if (is_a == is_b) return nullptr;  // not an input of the Add, or both of them
  auto plan = std::make_shared<QConvAddPlan>();
  plan->conv = make_qconv_plan(conv, graph);
  plan->add = make_qadd_plan(add, graph);
  plan->conv_is_a = is_a;
  if (!plan->conv || !plan->add) return nullptr;
  const DType conv_type = plan->conv->clamp.is_signed ? DType::i8 : DType::u8;
  const DType other_type = is_a ? plan->add->b_type : plan->add->a_type;
  if (conv_type != (is_a ? plan->add->a_type : plan->add->b_type)) return nullptr;

  // The unfused kernels, for inputs the fused one was not prepared for.
  const PreparedKernel conv_kernel = prepare_qconv(conv, graph), add_kernel = prepare_qadd(add, graph);
  return [plan, conv, conv_kernel, add_kernel, is_a, other_type](const Inputs& in, std::vector<Tensor>& out) {
    const size_t addend_at = kQConvAddInputs + (is_a ? 3 : 0);
    const Tensor* x = in.at(0);
    const Tensor* addend = in.at(addend_at);
    const QConvPlan& c = *plan->conv;
    const ConvGeometry g = x && x->dtype == c.x_type && x->rank() == 4 && x->shape[1] == c.channels
                               ? conv_geometry(conv, x->shape, c.w_shape)
                               : ConvGeometry{};
    const Shape y_shape = {g.batch, g.out_channels, g.out_h, g.out_w};
    if (g.batch == 0 || !qconv_fits(c, g) || !addend || addend->dtype != other_type || addend->shape != y_shape) {
      std::vector<Tensor> conv_out(1);
      conv_kernel(Inputs(in.begin(), in.begin() + kQConvAddInputs), conv_out);
      Inputs add_in(in.begin() + kQConvAddInputs, in.end());
      add_in[is_a ? 0 : 3] = &conv_out[0];
      return add_kernel(add_in, out);
    }
    Tensor& y = out.at(0);
    y.reset(plan->add->clamp.is_signed ? DType::i8 : DType::u8, y_shape);
    visit_8bit(c.clamp.is_signed ? DType::i8 : DType::u8, [&](auto ct) {
      visit_8bit(other_type, [&](auto ot) {
        visit_8bit(y.dtype, [&](auto yt) {
          run_qconv_add<decltype(ct), decltype(ot), decltype(yt)>(*plan, g, *x, *addend, y);
        });
      });
    });
  };
}

// ---- QAveragePool / QGlobalAveragePool ---------------------------------------------------------

// Windows covering a whole plane (ResNet-8's final pooling, every global pool): eq. (14) over
// contiguous values, which the compiler vectorises. Other windows run the reference.
PreparedKernel prepare_qpool(const Node& node, const Graph& graph) {
  if (!is_integer_op(node, "QAveragePool") && !is_integer_op(node, "QGlobalAveragePool")) return nullptr;
  Inputs constants;
  if (!constant_inputs(node, graph, {1, 2, 3, 4}, constants) || node.inputs.size() != 5) return nullptr;
  const ReferenceKernel reference = find_op(node.op_type, kDomain)->reference;
  return [node, reference](const Inputs& in, std::vector<Tensor>& out) {
    const Tensor* x = in.empty() ? nullptr : in[0];
    if (!x || !is_8bit(x->dtype) || x->rank() < 3) return reference(node, in, out);
    const PoolGeometry g = pool_geometry(node, x->shape);
    const int64_t count = g.in_h * g.in_w;
    if (g.out_h != 1 || g.out_w != 1 || g.kernel_h != g.in_h || g.kernel_w != g.in_w || g.pad_top != 0 ||
        g.pad_left != 0)
      return reference(node, in, out);
    const QPoolQuant q = make_qpool_quant(node, in, count);  // validates like the reference
    Tensor& y = out.at(0);
    y.reset(q.out.dtype, g.out_shape);
    visit_8bit(x->dtype, [&](auto xt) {
      using X = decltype(xt);
      const X* plane = x->data<X>();
      for (int64_t nc = 0; nc < g.batch * g.channels; ++nc, plane += count) {
        int32_t sum = 0;  // the reference's sum of (x - x_zp), in another order: exact (<= 2^23 terms)
        for (int64_t i = 0; i < count; ++i) sum += plane[i];
        sum -= static_cast<int32_t>(count) * q.x_zero_point;
        const int32_t v = requantize(sum, q.out.multiplier[count], q.out.zero_point, q.out.lo, q.out.hi);
        y.bytes[static_cast<size_t>(nc)] = static_cast<uint8_t>(v);  // two's complement for int8
      }
    });
  };
}

std::vector<KernelProvider> integer_providers() { return {prepare_qconv, prepare_qgemm, prepare_qadd, prepare_qpool}; }

}  // namespace qplay::fast
