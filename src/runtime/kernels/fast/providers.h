// Fast kernels and the providers that bind them to the nodes they can handle. Each fast kernel computes what its
// reference kernel computes (tests/runtime/fast_kernels_test.cc checks them against each other on random shapes); nodes
// they do not handle run the reference.
#pragma once

#include <vector>

#include "runtime/executor.h"

namespace qplay::fast {

// Conv (float32, 2-D, group 1, explicit pads): packed weights + strip-gathered patches + an AVX2 register-tiled GEMM,
// accumulating in ONNX Runtime's (MLAS's) order; see conv_f32.cc.
PreparedKernel prepare_conv_f32(const Node& node, const Graph& graph);

// Epilogues the executor fuses into a float Conv at preparation (executor.cc): the fused kernel
// performs exactly the float operations of the unfused chain
//   Conv -> [QuantizeLinear -> DequantizeLinear] -> [Add] -> [Relu] -> [QuantizeLinear -> DequantizeLinear]
// (each pair per tensor, as QDQ models write it; the first only in front of a fused Add, as in a
// QDQ residual block), so its results are bit-identical to running the nodes one by one with their
// fast kernels.
// A QuantizeLinear -> DequantizeLinear pair: y = (clamp(nearbyint(x / q_scale) + q_zero_point) - dq_zero_point) *
// dq_scale, the clamp range that of q_dtype.
struct FakeQuant {
  DType q_dtype = DType::u8;  // u8 or i8
  float q_scale = 1.0f, dq_scale = 1.0f;
  int32_t q_zero_point = 0, dq_zero_point = 0;
};
struct ConvFusion {
  bool conv_fake_quant = false;  // the conv output's own pair, before the Add
  FakeQuant conv_quant;
  bool add = false;         // y = y + addend (the addend has the conv output's shape)
  bool relu = false;        // y = max(0, y)
  bool fake_quant = false;  // the result's pair
  FakeQuant quant;
};
// Inputs of the fused kernel: the conv's three inputs (X, W, B; nullptr for an omitted B) and, with `add`, the addend.
// nullptr when the conv is not one the fast path handles.
PreparedKernel prepare_conv_f32_fused(const Node& conv, const Graph& graph, ConvFusion fusion);

// The same conv and Add/Relu epilogue by Winograd's F(2x2, 3x3) (winograd_f32.cc) for 3x3, stride-1, pad-1 convs:
// 2.25x fewer multiply-adds, but sums that differ from the direct kernel's in the last bits, so only for graphs
// whose conv outputs are not quantized (the executor decides). nullptr for other convs or a fusion with a
// QuantizeLinear -> DequantizeLinear pair; shapes it does not cover at run time go to the direct kernel.
PreparedKernel prepare_conv_f32_winograd(const Node& conv, const Graph& graph, ConvFusion fusion);

// For tests: makes the float kernels prepared afterwards use their AVX2 code even on CPUs with AVX-512 (today: the
// Winograd conv). Process-wide; not for use while other threads prepare kernels.
void force_avx2_float_kernels(bool avx2);

// Relu, same-shape Add, per-tensor QuantizeLinear/DequantizeLinear (float32 <-> 8-bit), AVX2.
PreparedKernel prepare_elementwise_f32(const Node& node, const Graph& graph);

// MaxPool / AveragePool (float32, 2-D, no dilation, ceil_mode 0) and GlobalAveragePool: the reference's arithmetic
// (double sums) without its per-element index bookkeeping.
PreparedKernel prepare_pool_f32(const Node& node, const Graph& graph);

// Transpose of a rank-2 to rank-6 tensor of any element size: a strided copy.
PreparedKernel prepare_transpose(const Node& node, const Graph& graph);

// All fast providers, in the order the executor should try them.
std::vector<KernelProvider> all_providers();

}  // namespace qplay::fast
