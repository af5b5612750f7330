// Fast kernels and the providers that bind them to the nodes they can handle.
// Each fast kernel computes what its reference kernel computes (tests/runtime/fast_kernels_test.cc
// checks them against each other on random shapes); nodes they do not handle run the reference.
#pragma once

#include <vector>

#include "runtime/executor.h"

namespace qplay::fast {

// Conv (float32, 2-D, group 1, explicit pads): im2col + sgemm in ONNX Runtime's order.
PreparedKernel prepare_conv_f32(const Node& node, const Graph& graph);

// Relu, same-shape Add, per-tensor QuantizeLinear/DequantizeLinear (float32 <-> 8-bit), AVX2.
PreparedKernel prepare_elementwise_f32(const Node& node, const Graph& graph);

// All fast providers, in the order the executor should try them.
std::vector<KernelProvider> all_providers();

}  // namespace qplay::fast
