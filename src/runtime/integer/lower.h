// Integer lowering: rewrites the QDQ node groups ONNX Runtime fuses into integer kernels, and
// the QOperator ops, into the integer ops of domain "qplay" (runtime/integer/params.h):
//
//   DQ(x) + DQ(w) [+ DQ(int32 bias)] -> Conv [-> Relu] -> Q          => qplay.QConv
//   DQ(a) + DQ(b) [+ DQ(int32 bias)] -> Gemm|MatMul [-> Relu] -> Q   => qplay.QGemm (8-bit output)
//   DQ(a) + DQ(b) [+ DQ(int32 bias)] -> Gemm|MatMul (no Q)           => qplay.QGemm (float output)
//   DQ(a) + DQ(b) -> Add [-> Relu] -> Q                              => qplay.QAdd
//   DQ(x) -> AveragePool|GlobalAveragePool [-> Flatten|Reshape|Squeeze|Unsqueeze ...] -> Q
//                                 => qplay.QAveragePool|QGlobalAveragePool [-> the same moves on 8-bit data]
//   QLinearConv => qplay.QConv;  QLinearMatMul (2-D constant b) => qplay.QGemm
//
// Weights, biases, scales and zero points must be initializers (multipliers are computed once);
// activation scales must be per tensor; weights per tensor or per output channel. Everything
// else stays as it is, so Q/DQ at the boundaries keep the graph runnable (input Transpose -> Q
// stays float -> int). A rewritten node keeps the name of the node it replaces (Conv, Gemm,
// Add, pool); its output is the value the group's QuantizeLinear produced. DequantizeLinear
// nodes left without readers are dropped.
#pragma once

#include "graph/ir.h"

namespace qplay {

// Returns the lowered graph (validated; runs with the normal Executor). A graph without
// quantized groups, like an FP32 model, comes back unchanged.
Graph lower_to_integer(const Graph& qdq);

}  // namespace qplay
