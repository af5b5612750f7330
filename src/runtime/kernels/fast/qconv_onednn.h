// The int32 sums of an 8-bit convolution by oneDNN (Debian's libdnnl), for the integer QConv on CPUs
// with AVX-512 VNNI. Only the sums: the requantization stays integer_kernels.cc's (eq. 8), so the
// codes are those of every other QConv kernel, bit for bit.
//
// Why oneDNN here and nowhere else. Measured per ResNet-8 conv shape (batch 8, one thread, this
// project's 2-core AVX-512 VNNI machine; docs/ARCHITECTURE.md): its int8 kernels (vpdpbusd, 64
// byte products per instruction, activations in NHWC) take 47 us per image for all of ResNet-8's
// convs where qplay's own int16 kernels took about twice as long; its fp32 kernels took 131 us
// (NHWC) against qplay's Winograd, and change the summation order the simulate mode needs.
//
// Why the sums are exact. vpdpbusd multiplies u8 by s8 and adds four products into int32 without
// saturation; signed activations go through oneDNN's +128 shift and its exact compensation. On
// CPUs without VNNI oneDNN's int8 path halves the weights to avoid vpmaddubsw's saturation, which
// is not exact: it is not used there. Weights must be int8 with zero point 0 (w - w_zp in int8);
// the activation zero point is handled by padding with it and subtracting x_zp * sum(w) (the
// caller's per-channel offset), so sum((x - x_zp) * w) comes out exactly, as int32 arithmetic.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

namespace qplay::fast {

struct OnednnConvShape {
  int64_t out_channels = 0, in_channels = 0, kernel_h = 0, kernel_w = 0;
  bool x_signed = false;  // int8 activations (else uint8)
};

struct OnednnConvInput {
  const void* x = nullptr;  // [batch][in_channels][in_h][in_w] 8-bit codes
  int64_t batch = 0, in_h = 0, in_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int32_t pad_code = 0;  // the activation zero point: what padding holds
  int64_t out_h = 0, out_w = 0;
};

class OnednnConvSums {
 public:
  // Null when oneDNN is not built in, this CPU lacks AVX-512 VNNI, use is switched off, or the
  // shape is not one it serves (channel counts multiples of 16). weights: [M][C][kh][kw], int8.
  static std::shared_ptr<const OnednnConvSums> create(const OnednnConvShape& shape, const int8_t* weights);

  // sums[n][oy][ox][m] = sum over c, ky, kx of xp[n][c][oy*stride_h + ky][ox*stride_w + kx] * w[m][c][ky][kx],
  // xp being x padded with pad_code. Thread-safe; one thread per call.
  void run(const OnednnConvInput& in, int32_t* sums) const;

  struct Impl;
  explicit OnednnConvSums(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<Impl> impl_;
};

// Built with oneDNN and on a CPU with AVX-512 VNNI.
bool onednn_qconv_available();
// Off: create() returns null, so kernels prepared afterwards use qplay's own (tests, A/B benchmarks).
void set_onednn_qconv_enabled(bool enabled);

}  // namespace qplay::fast
