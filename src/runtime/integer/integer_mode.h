// The two ways qplay runs a quantized model:
//   simulate: the graph as written; QuantizeLinear/DequantizeLinear per the ONNX spec, every
//             other op in float (ONNX Runtime with graph optimisations off);
//   integer:  QDQ groups and QOperator ops lowered to the "qplay" integer ops (lower.h):
//             8-bit operands, int32 accumulation, fixed-point requantization, as integer-only
//             deployment targets compute (docs/quantization.md).
#pragma once

#include <memory>
#include <string>

#include "graph/ir.h"

namespace qplay::integer {

enum class RunMode { simulate, integer };

// "simulate" or "integer"; throws qplay::Error naming the value otherwise.
RunMode parse_run_mode(const std::string& name);
const char* run_mode_name(RunMode mode);

// The graph to execute in `mode` (integer: lower_to_integer(model)). Run it with a normal
// Executor: its fast kernels include the integer ones (kernels/fast/integer_providers.h).
std::shared_ptr<const Graph> graph_for_mode(const Graph& model, RunMode mode);

}  // namespace qplay::integer
