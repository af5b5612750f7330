// Edits of a quantized (QDQ) model's quantization, as plain data: set a scale or zero point,
// narrow a tensor to N bits, or switch a layer back to FP32. apply_edits() returns a new graph
// and the names it changed (the "dirty" set that incremental re-evaluation starts from).
//
// Tensors are named as list_quant_params() names them (QuantParam::tensor): the float value
// entering an activation's QuantizeLinear ("activation_2"), or a weight's stored integer
// initializer ("conv2d.weight_quantized"). Layers are named by their compute node (group_layers).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace qplay {

struct Edit {
  enum class Kind : uint8_t { set_scale, set_zero_point, set_bits, bypass_layer };
  Kind kind = Kind::set_scale;
  std::string target;    // quantized tensor (set_*), or layer name (bypass_layer)
  int64_t channel = -1;  // set_scale / set_zero_point: -1 = every channel (or the one scale)
  double value = 0.0;    // the scale, the zero point, or the bit width
};

// Parses the CLI forms: "TENSOR.scale=V", "TENSOR.scale[c]=V", "TENSOR.zero_point=Z",
// "TENSOR.zero_point[c]=Z" (tensor names may contain dots), and "TENSOR=N" for bits.
// Throws qplay::Error quoting the text when it does not parse.
Edit parse_set_edit(const std::string& text);
Edit parse_bits_edit(const std::string& text);
Edit bypass_edit(const std::string& layer);

std::string edit_str(const Edit& e);  // the CLI form back, for reports

struct EditedGraph {
  Graph graph;
  // Initializers whose contents are new or changed, and values whose producer changed (their
  // readers must be recomputed). Structural changes (rewired inputs, inserted or removed nodes)
  // are also visible as nodes that differ from the original's (see reevaluate.h).
  std::set<std::string> dirty;
};

// Applies `edits` in order to a copy of `original` (which is never touched). The whole list is
// validated first: an unknown tensor or layer, a scale <= 0 or not finite, a zero point outside
// its type's range, bits outside 2..8, or a channel out of range throws qplay::Error naming the
// tensor and the value, and nothing is returned. An empty list returns the original (reset).
//
// Semantics (r = s (q - Z) throughout):
// - set_scale / set_zero_point change the parameter initializer of that tensor only: when the
//   initializer is shared with other parameter sets, the tensor gets its own copy.
//   Activations: the Q and its DQ share the initializer, so both change. Weights: the stored
//   integers stay; their dequantized values change.
// - set_bits N (8-bit storage kept, codes limited to the N-bit range [qminN, qmaxN]: signed
//   -2^(N-1)..2^(N-1)-1, unsigned 0..2^N-1). The float range of the current 8-bit grid,
//   [s (qmin8 - Z), s (qmax8 - Z)], is mapped onto the narrow grid:
//       s' = s (qmax8 - qmin8) / (qmaxN - qminN)
//       Z' = qminN + round((Z - qmin8) (qmaxN - qminN) / (qmax8 - qmin8))
//   per channel. Weights: each stored code is requantized, q' = clamp(round(s (q - Z) / s') + Z',
//   qminN, qmaxN). Activations: Q and DQ get (s', Z'), and a Clip to [s' (qminN - Z'),
//   s' (qmaxN - Z')] is inserted before the Q, since QuantizeLinear saturates only to the
//   storage type. Bias (int32) cannot be narrowed.
// - bypass_layer L: L's compute node reads FP32: each activation operand DQ(Q(x)) is replaced by
//   x, and each weight/bias DQ by a float initializer of the same name holding its dequantized
//   values (numerically the same weights: the FP32 originals are not in a QDQ model). Q/DQ
//   pairs other layers still read stay; those left without readers are removed. The output Q/DQ
//   of L is the next layer's input and is left to that layer. QOperator layers are refused.
EditedGraph apply_edits_tracked(const Graph& original, const std::vector<Edit>& edits);
Graph apply_edits(const Graph& original, const std::vector<Edit>& edits);

}  // namespace qplay
