// Folds BatchNormalization into the Conv that feeds it, before quantization: the quantized
// model then has one weight tensor and one bias per conv and no separate scale/shift to
// quantize (fewer rounding points, the layout ONNX Runtime's quantizer expects).
#pragma once

#include "graph/ir.h"

namespace qplay::quantize {

// For every BatchNormalization (inference form: 5 inputs, one output) whose input is produced by
// a Conv read by nothing else, rewrites the Conv as
//   W'[o] = W[o] * g[o] / sqrt(v[o] + eps),   b'[o] = (b[o] - m[o]) * g[o] / sqrt(v[o] + eps) + beta[o]
// and removes the BatchNormalization. The BN's readers then read the Conv's output (or the Conv
// takes over the BN's output name when that is a graph output). Returns how many were folded;
// BatchNormalization nodes that do not fit the pattern stay as they are.
int fold_batchnorm(Graph& g);

}  // namespace qplay::quantize
