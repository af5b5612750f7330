#include "runtime/batch_slicing.h"

#include <set>
#include <string>

#include "runtime/integer/params.h"

namespace qplay {
namespace {

using Kind = SliceOperand::Kind;
using Rank = std::optional<int64_t>;

bool batched(const std::vector<SliceOperand>& in, size_t i) { return i < in.size() && in[i].kind == Kind::batched; }
bool constant(const std::vector<SliceOperand>& in, size_t i) { return i < in.size() && in[i].kind == Kind::constant; }

// Inputs from `first` on are constants or omitted (weights, scales, zero points, shapes).
bool constants_from(const std::vector<SliceOperand>& in, size_t first) {
  for (size_t i = first; i < in.size(); ++i)
    if (in[i].kind == Kind::batched) return false;
  return true;
}

// Axis `axis` of a rank-`rank` tensor normalised to [0, rank); -1 when out of range or the rank is unknown (Flatten
// takes axis = rank, which puts the whole batch on axis 0).
int64_t normalized_axis(int64_t axis, int64_t rank) {
  if (rank < 0 || axis < -rank || axis >= rank) return -1;
  return axis < 0 ? axis + rank : axis;
}

// Numpy broadcasting aligns shapes on the right, so a batched operand stays on axis 0 only at the
// output's full rank, and a constant must not reach axis 0 unless it is 1 there. Every batched
// operand has the batch N on axis 0 (N > 1 when slicing), so two of them never broadcast axis 0.
Rank broadcast_rank(const std::vector<const SliceOperand*>& ops) {
  int64_t rank = -1;
  for (const SliceOperand* o : ops) {
    if (o->kind == Kind::absent) return std::nullopt;
    if (o->kind != Kind::batched) continue;
    if (o->rank < 1 || (rank >= 0 && o->rank != rank)) return std::nullopt;
    rank = o->rank;
  }
  if (rank < 0) return std::nullopt;
  for (const SliceOperand* o : ops)
    if (o->kind == Kind::constant) {
      const Shape& s = o->constant->shape;
      if (static_cast<int64_t>(s.size()) > rank || (static_cast<int64_t>(s.size()) == rank && s[0] != 1))
        return std::nullopt;
    }
  return rank;
}

}  // namespace

std::optional<int64_t> batch_separable_rank(const Node& node, const std::vector<SliceOperand>& in) {
  // One output (MaxPool's Indices and BatchNormalization's training statistics span the batch).
  if (node.outputs.empty() || node.outputs[0].empty()) return std::nullopt;
  for (size_t k = 1; k < node.outputs.size(); ++k)
    if (!node.outputs[k].empty()) return std::nullopt;
  const std::string& op = node.op_type;
  const int64_t x_rank = batched(in, 0) ? in[0].rank : -1;

  if (node.domain == integer::kDomain) {
    // Integer mode (runtime/integer/params.h): x / a is input 0, everything else but QAdd's b is
    // a constant (weights, scales, zero points, bias).
    if (op == "QConv" || op == "QAveragePool" || op == "QGlobalAveragePool")
      return batched(in, 0) && constants_from(in, 1) ? Rank(x_rank) : std::nullopt;
    if (op == "QGemm")  // rows = the product of A's leading dims: image-major when A has rank >= 2
      return batched(in, 0) && x_rank >= 2 && constants_from(in, 1) ? Rank(x_rank) : std::nullopt;
    if (op == "QAdd" && in.size() == 8) {
      for (size_t i : {1, 2, 4, 5, 6, 7})
        if (!constant(in, i)) return std::nullopt;
      return broadcast_rank({&in[0], &in[3]});
    }
    return std::nullopt;
  }
  if (!node.domain.empty() && node.domain != "ai.onnx") return std::nullopt;

  // Per image (or per element, or per (image, channel) plane) with constant parameters.
  static const std::set<std::string> per_image = {"Conv",        "QLinearConv",       "Relu",      "LeakyRelu",
                                                  "Sigmoid",     "Clip",              "Identity",  "MaxPool",
                                                  "AveragePool", "GlobalAveragePool", "BatchNormalization"};
  if (per_image.count(op)) {
    if (op == "BatchNormalization" && node.attr_int("training_mode", 0) != 0) return std::nullopt;
    return batched(in, 0) && constants_from(in, 1) ? Rank(x_rank) : std::nullopt;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div")
    return in.size() == 2 ? broadcast_rank({&in[0], &in[1]}) : std::nullopt;
  if (op == "QuantizeLinear" || op == "DequantizeLinear") {
    // Per tensor, or per axis on an axis other than the batch's.
    if (!batched(in, 0) || !constants_from(in, 1) || !constant(in, 1) || node.attr_int("block_size", 0) != 0)
      return std::nullopt;
    if (in[1].constant->numel() == 1) return x_rank;
    return normalized_axis(node.attr_int("axis", 1), x_rank) >= 1 ? Rank(x_rank) : std::nullopt;
  }
  if (op == "Flatten")  // [d0, d1 * ...] for axis >= 1
    return batched(in, 0) && normalized_axis(node.attr_int("axis", 1), x_rank) >= 1 ? Rank(2) : std::nullopt;
  if (op == "Gemm") {
    // Y = A B + C with A [N, K] (not transposed) and C broadcast over the rows.
    if (!batched(in, 0) || x_rank != 2 || node.attr_int("transA", 0) != 0 || !constant(in, 1) ||
        !constants_from(in, 2))
      return std::nullopt;
    const bool row_c = constant(in, 2) && in[2].constant->rank() == 2 && in[2].constant->shape[0] != 1;
    return row_c ? std::nullopt : Rank(2);
  }
  if (op == "MatMul" || op == "QLinearMatMul") {
    // A [N, ..., M, K] times a constant matrix B (MatMul input 1, QLinearMatMul input 3).
    const size_t b = op == "MatMul" ? 1 : 3;
    if (!batched(in, 0) || x_rank < 2 || !constants_from(in, 1) || !constant(in, b) || in[b].constant->rank() != 2)
      return std::nullopt;
    return x_rank;
  }
  if (op == "Reshape") {
    // A constant shape whose first entry 0 copies the batch (allowzero=1 would make it a literal 0).
    if (!batched(in, 0) || !constant(in, 1) || node.attr_int("allowzero", 0) != 0) return std::nullopt;
    const Tensor& shape = *in[1].constant;
    if (shape.dtype != DType::i64 || shape.rank() != 1 || shape.numel() < 1 || shape.data<int64_t>()[0] != 0)
      return std::nullopt;
    return shape.numel();
  }
  if (op == "Transpose") {
    const std::vector<int64_t> perm = node.attr_ints("perm");
    if (!batched(in, 0) || perm.empty() || perm[0] != 0) return std::nullopt;
    return static_cast<int64_t>(perm.size());
  }
  if (op == "Softmax") {
    const bool coerce_2d = node.attr_int("__opset", 13) < 13;  // then rows [d0 * ... * d(axis-1), rest]
    const int64_t axis = normalized_axis(node.attr_int("axis", coerce_2d ? 1 : -1), x_rank);
    return batched(in, 0) && axis >= 1 ? Rank(x_rank) : std::nullopt;
  }
  if (op == "Concat") {
    // Along another axis than the batch's, of batched inputs only (a constant has no batch to join).
    int64_t rank = -1;
    for (const SliceOperand& o : in) {
      if (o.kind != Kind::batched || o.rank < 1 || (rank >= 0 && o.rank != rank)) return std::nullopt;
      rank = o.rank;
    }
    return normalized_axis(node.attr_int("axis", 0), rank) >= 1 ? Rank(rank) : std::nullopt;
  }
  return std::nullopt;  // shape ops, Pad, Squeeze/Unsqueeze, anything new: run whole batches
}

}  // namespace qplay
