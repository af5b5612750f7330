// Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019): for a Conv -> Relu ->
// Conv chain, ReLU(x / s) = ReLU(x) / s for s > 0, so output channel i of the first conv may be
// divided by s_i and input channel i of the second multiplied by s_i without changing the model.
// Choosing s_i = sqrt(r1_i / r2_i) (r = max |w| of the channel) gives both channels the range
// sqrt(r1_i * r2_i), which evens out per-tensor weight ranges.
#pragma once

#include "graph/ir.h"

namespace qplay::quantize {

// Equalizes every Conv -> Relu -> Conv chain whose intermediate values have no other reader
// (the second conv has group 1). Returns the number of chains equalized. Run before calibration.
int equalize_cross_layer(Graph& g);

}  // namespace qplay::quantize
