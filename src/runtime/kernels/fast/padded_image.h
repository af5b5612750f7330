// The zero-padded copy of one image that the float convolutions (conv_f32.cc, winograd_f32.cc) read
// their taps from: X [C, H, W] into the interior of [C, hp, wp], hp = pad_top + H + pad_bottom,
// wp = pad_left + W + pad_right. Each thread keeps one buffer per geometry (a model's layers have
// few), zero-filled when created; only the interior is ever written, so the border stays zero
// without being rewritten for every image.
#pragma once

#include <cstdint>

namespace qplay::fast {

struct PaddedGeometry {
  int64_t c = 0, h = 0, w = 0, pad_top = 0, pad_left = 0, hp = 0, wp = 0;
  bool operator==(const PaddedGeometry&) const = default;
};

// Zeros after the image in every buffer: vector loads of the kernels may read past the last tap.
constexpr int64_t kPaddedSlack = 64;

// This thread's buffer for `g` (c * hp * wp + kPaddedSlack floats).
float* padded_buffer(const PaddedGeometry& g);

// x [C, H, W] -> the interior of xp. AVX2: for the kernels' AVX2 paths only.
void pad_image(const float* x, const PaddedGeometry& g, float* xp);

}  // namespace qplay::fast
