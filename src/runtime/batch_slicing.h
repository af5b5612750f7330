// Which nodes may run a batch as consecutive slices of images (ExecutorOptions::batch_slice):
// exactly those whose output image i depends on input image i alone, so that running images
// [b, e) of every batch-major input gives images [b, e) of the output. Decided once per node at
// preparation from what is known then (constants, ranks), conservatively: an op not on the list,
// or one whose attributes or broadcasting leave any doubt, is not separable.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "graph/ir.h"

namespace qplay {

// What preparation knows about one input of a node.
struct SliceOperand {
  enum class Kind : uint8_t { absent, constant, batched };
  Kind kind = Kind::absent;
  const Tensor* constant = nullptr;  // kind constant: an initializer or a folded node's output
  int64_t rank = -1;                 // kind batched (axis 0 is the batch): its rank, -1 when unknown
};

// The rank of the node's one output (-1 if unknown), which is batch-major, when the node is
// batch-separable for these operands (at least one batched); std::nullopt when it is not or
// cannot be shown to be.
std::optional<int64_t> batch_separable_rank(const Node& node, const std::vector<SliceOperand>& inputs);

}  // namespace qplay
