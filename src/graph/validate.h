// Checks a graph before it runs: every op known to the op table with a legal input count,
// quantization parameters stored as initializers finite, positive and in range.
#pragma once

#include "graph/ir.h"

namespace qplay {

// Throws qplay::Error naming the node/tensor and the offending value.
void validate_graph(const Graph& g);

// Checks one quantization parameter pair (used by the validator and by edits).
// `scale` must be float32 with finite values > 0; `zero_point` (may be null) must be of an
// integer type and, when `qmin`/`qmax` are given, inside that range.
void validate_quant_params(const std::string& what, const Tensor& scale, const Tensor* zero_point);

}  // namespace qplay
