// Pairs each layer of a quantized model with its counterpart in a separate FP32 model.
//
// Names alone are not enough (quantizers rename tensors and insert Q/DQ nodes; BatchNormalization
// may be folded on one side only), so layers are matched by topology: walking the layers in
// order, a quantized layer pairs with an unused FP32 layer of the same kind, the same weight size
// and the same source layers (the layers whose outputs it reads, through Q/DQ and shape-only
// nodes, already paired). Among several candidates an equal compute-node name wins, then the
// first in order. Layers with no topological candidate fall back to an unused layer of the same
// kind and name.
#pragma once

#include <string>
#include <vector>

#include "analysis/layers.h"
#include "graph/ir.h"

namespace qplay {

struct LayerPair {
  int quantized = -1;  // index into the quantized model's layers
  int fp32 = -1;       // index into the FP32 model's layers
  bool same_name = false;
  bool same_sources = false;  // false: paired by name only
  // The FP32 values that play the quantized layer's inputs, one per Layer::inputs entry
  // (Add operands may come in the other order).
  std::vector<std::string> fp32_inputs;
};

struct LayerMatching {
  std::vector<LayerPair> pairs;  // in the quantized model's layer order
  std::vector<int> unmatched_quantized;
  std::vector<int> unmatched_fp32;
};

// For every layer, the layer each input comes from (-1: a graph input such as the image).
std::vector<std::vector<int>> layer_sources(const Graph& g, const std::vector<Layer>& layers);

LayerMatching match_layers(const Graph& fp32, const std::vector<Layer>& fp32_layers, const Graph& quantized,
                           const std::vector<Layer>& quantized_layers);

// The pair of quantized layer `index`, or nullptr.
const LayerPair* pair_of_quantized(const LayerMatching& m, int index);

}  // namespace qplay
