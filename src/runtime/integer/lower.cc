// The integer lowering pass (see lower.h): one small selector per anchor op type, each
// following its pattern's shape from the anchor outwards, and one rewrite step.
#include "runtime/integer/lower.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "graph/validate.h"
#include "runtime/integer/params.h"

namespace qplay::integer {
namespace {

// A node group found by a selector, and what replaces it.
struct Rewrite {
  std::vector<int> replaced;  // indices of the group's nodes (anchor, Relu, moves, Q); DQs are never replaced
  std::vector<Node> nodes;    // the replacement, placed where the group's last node was
};

// State shared by the selectors: the graph being read, initializers the rewrite adds
// (zero points a model left implicit) and every value name in use (for fresh names).
struct Context {
  const Graph& g;
  std::map<std::string, Tensor> added_initializers;
  std::set<std::string> names;
};

// One quantized value as a DequantizeLinear reads it or a QuantizeLinear writes it.
struct QuantizedValue {
  std::string value;       // the 8-bit (or int32) tensor
  std::string scale;       // initializer
  std::string zero_point;  // initializer (created when the model omitted it)
};

// What follows an anchor: an optional Relu, then the QuantizeLinear producing `output`.
struct OutputQuantize {
  std::vector<int> nodes;  // [Relu,] Q
  QuantizedValue output;
  bool relu = false;
};

bool is_onnx_op(const Node& n, const char* op_type) {
  return n.op_type == op_type && (n.domain.empty() || n.domain == "ai.onnx");
}

std::string fresh_name(Context& ctx, const std::string& base) {
  std::string name = base;
  for (int i = 1; ctx.names.count(name); ++i) name = base + "_" + std::to_string(i);
  ctx.names.insert(name);
  return name;
}

const Tensor* constant(const Context& ctx, const std::string& name) {
  if (name.empty()) return nullptr;
  if (const Tensor* t = ctx.g.initializer(name)) return t;
  auto it = ctx.added_initializers.find(name);
  return it == ctx.added_initializers.end() ? nullptr : &it->second;
}

const Node* producer(const Context& ctx, const std::string& value) {
  const int i = ctx.g.producer_of(value);
  return i < 0 ? nullptr : &ctx.g.nodes[i];
}

bool is_graph_output(const Context& ctx, const std::string& value) {
  for (const auto& out : ctx.g.outputs)
    if (out.name == value) return true;
  return false;
}

// The only node reading `value`, or -1 (no reader, several readers, or a graph output that
// must survive the rewrite).
int sole_consumer(const Context& ctx, const std::string& value) {
  if (is_graph_output(ctx, value)) return -1;
  const std::vector<int> readers = ctx.g.consumers_of(value);
  return readers.size() == 1 ? readers[0] : -1;
}

bool is_8bit_type(DType t) { return t == DType::u8 || t == DType::i8; }

// Zero point of a Q/DQ: the named initializer, or a zero tensor of `dtype` shaped like the
// scale when the model omitted it. "" when the named zero point is not a constant.
std::string zero_point_or_zeros(Context& ctx, const Node& qdq, DType dtype) {
  const std::string& named = qdq.input(2);
  if (!named.empty()) return constant(ctx, named) ? named : "";
  const Tensor* scale = constant(ctx, qdq.input(1));
  const std::string name = fresh_name(ctx, qdq.input(1) + "_zero_point");
  Tensor zeros(dtype, scale ? scale->shape : Shape{});
  std::fill(zeros.bytes.begin(), zeros.bytes.end(), uint8_t{0});
  ctx.added_initializers[name] = std::move(zeros);
  return name;
}

bool plain_qdq(const Node& n) { return n.attr_int("block_size", 0) == 0; }

// DQ(activation): per-tensor constant scale and an 8-bit constant zero point (whose type is the
// activation's type, which the lowering cannot otherwise know).
std::optional<QuantizedValue> dequantized_activation(Context& ctx, const std::string& value) {
  const Node* dq = producer(ctx, value);
  if (!dq || !is_onnx_op(*dq, "DequantizeLinear") || !plain_qdq(*dq)) return std::nullopt;
  const Tensor* scale = constant(ctx, dq->input(1));
  const Tensor* zp = constant(ctx, dq->input(2));
  if (!scale || scale->dtype != DType::f32 || scale->numel() != 1) return std::nullopt;
  if (!zp || !is_8bit_type(zp->dtype) || zp->numel() != 1) return std::nullopt;
  return QuantizedValue{dq->input(0), dq->input(1), dq->input(2)};
}

// DQ(constant 8-bit weight): scale per tensor or per `channel_axis` of the weight.
std::optional<QuantizedValue> dequantized_weight(Context& ctx, const std::string& value, int64_t rank,
                                                 int64_t channel_axis) {
  const Node* dq = producer(ctx, value);
  if (!dq || !is_onnx_op(*dq, "DequantizeLinear") || !plain_qdq(*dq)) return std::nullopt;
  const Tensor* w = constant(ctx, dq->input(0));
  const Tensor* scale = constant(ctx, dq->input(1));
  if (!w || !is_8bit_type(w->dtype) || static_cast<int64_t>(w->rank()) != rank) return std::nullopt;
  if (!scale || scale->dtype != DType::f32) return std::nullopt;
  if (scale->numel() != 1) {
    int64_t axis = dq->attr_int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis != channel_axis || scale->rank() != 1 || scale->numel() != w->shape[channel_axis]) return std::nullopt;
  }
  const std::string zp = zero_point_or_zeros(ctx, *dq, w->dtype);
  if (zp.empty() || constant(ctx, zp)->dtype != w->dtype) return std::nullopt;
  return QuantizedValue{dq->input(0), dq->input(1), zp};
}

// DQ(constant int32 bias [channels]) as an int32 bias in the accumulator's scale, x_scale * w_scale[c] (eq. 3). A
// bias whose scale is already that one (within float rounding), as quantizers write it, is used as it is; another
// (e.g. after an edit of the input or weight scale) is requantized to it, round(b * s_b / (s_x s_w[c])), as converters
// to integer-only formats do: its real value moves by at most half an accumulator step. A bias that no longer fits
// int32 keeps the group in float.
std::optional<std::string> dequantized_bias(Context& ctx, const std::string& value, const QuantizedValue& x,
                                            const QuantizedValue& w, int64_t channels) {
  const Node* dq = producer(ctx, value);
  if (!dq || !is_onnx_op(*dq, "DequantizeLinear") || !plain_qdq(*dq)) return std::nullopt;
  const Tensor* bias = constant(ctx, dq->input(0));
  const Tensor* bias_scale = constant(ctx, dq->input(1));
  const Tensor* bias_zp = constant(ctx, dq->input(2));
  if (!bias || bias->dtype != DType::i32 || bias->rank() != 1 || bias->numel() != channels) return std::nullopt;
  if (!bias_scale || bias_scale->dtype != DType::f32 || (bias_scale->numel() != 1 && bias_scale->numel() != channels))
    return std::nullopt;
  if (!dq->input(2).empty()) {
    if (!bias_zp) return std::nullopt;
    for (int64_t i = 0; i < bias_zp->numel(); ++i)
      if (bias_zp->at_as_double(i) != 0) return std::nullopt;
  }
  const double xs = constant(ctx, x.scale)->data<float>()[0];
  const Tensor& ws = *constant(ctx, w.scale);
  Tensor requantized(DType::i32, {channels});
  bool same_scale = true;
  for (int64_t c = 0; c < channels; ++c) {
    const double want = xs * ws.data<float>()[ws.numel() == 1 ? 0 : c];
    const double got = bias_scale->data<float>()[bias_scale->numel() == 1 ? 0 : c];
    if (!(want > 0) || !std::isfinite(got)) return std::nullopt;
    same_scale = same_scale && std::fabs(got - want) <= 1e-5 * want;
    const double b = std::nearbyint(double{bias->data<int32_t>()[c]} * got / want);
    if (!(std::fabs(b) <= 2147483647.0)) return std::nullopt;
    requantized.data<int32_t>()[c] = static_cast<int32_t>(b);
  }
  if (same_scale) return dq->input(0);
  const std::string name = fresh_name(ctx, dq->input(0) + "_requantized");
  ctx.added_initializers[name] = std::move(requantized);
  return name;
}

// Q with a per-tensor constant scale and an 8-bit zero point (uint8 when omitted, unless the
// opset-21 output_dtype attribute says int8).
std::optional<QuantizedValue> quantize_node(Context& ctx, const Node& q) {
  if (!is_onnx_op(q, "QuantizeLinear") || !plain_qdq(q)) return std::nullopt;
  const Tensor* scale = constant(ctx, q.input(1));
  if (!scale || scale->dtype != DType::f32 || scale->numel() != 1) return std::nullopt;
  const int64_t output_dtype = q.attr_int("output_dtype", 0);
  if (output_dtype != 0 && output_dtype != 2 && output_dtype != 3) return std::nullopt;  // ONNX uint8 = 2, int8 = 3
  const std::string zp = zero_point_or_zeros(ctx, q, output_dtype == 3 ? DType::i8 : DType::u8);
  if (zp.empty() || !is_8bit_type(constant(ctx, zp)->dtype) || constant(ctx, zp)->numel() != 1) return std::nullopt;
  return QuantizedValue{q.outputs.at(0), q.input(1), zp};
}

// anchor output [-> Relu] -> Q, each value read only by the next node.
std::optional<OutputQuantize> quantized_output(Context& ctx, const std::string& value, bool allow_relu) {
  OutputQuantize out;
  int next = sole_consumer(ctx, value);
  if (next < 0) return std::nullopt;
  if (allow_relu && is_onnx_op(ctx.g.nodes[next], "Relu")) {
    out.relu = true;
    out.nodes.push_back(next);
    next = sole_consumer(ctx, ctx.g.nodes[next].outputs.at(0));
    if (next < 0) return std::nullopt;
  }
  auto q = quantize_node(ctx, ctx.g.nodes[next]);
  if (!q) return std::nullopt;
  out.nodes.push_back(next);
  out.output = *q;
  return out;
}

Node integer_node(const Node& anchor, const char* op_type, std::vector<std::string> inputs, std::string output) {
  Node n;
  n.name = anchor.name;  // analysis maps layers by the original node names
  n.op_type = op_type;
  n.domain = kDomain;
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  return n;
}

void copy_attrs(const Node& from, Node& to, std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    if (from.has_attr(key)) to.attrs[key] = from.attrs.at(key);
}

void set_int_attr(Node& n, const char* key, int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::Int;
  a.i = v;
  n.attrs[key] = a;
}

// ---- selectors -------------------------------------------------------------------------

// DQ(x) + DQ(w) [+ DQ(bias)] -> Conv [-> Relu] -> Q
std::optional<Rewrite> select_conv(Context& ctx, int anchor) {
  const Node& conv = ctx.g.nodes[anchor];
  auto x = dequantized_activation(ctx, conv.input(0));
  auto w = dequantized_weight(ctx, conv.input(1), /*rank=*/4, /*channel_axis=*/0);
  if (!x || !w) return std::nullopt;
  const int64_t channels = constant(ctx, w->value)->shape[0];
  std::optional<std::string> bias;
  if (!conv.input(2).empty() && !(bias = dequantized_bias(ctx, conv.input(2), *x, *w, channels))) return std::nullopt;
  auto y = quantized_output(ctx, conv.outputs.at(0), /*allow_relu=*/true);
  if (!y) return std::nullopt;

  std::vector<std::string> inputs = {x->value, x->scale,      x->zero_point,   w->value,
                                     w->scale, w->zero_point, y->output.scale, y->output.zero_point};
  if (bias) inputs.push_back(*bias);
  Node q = integer_node(conv, "QConv", inputs, y->output.value);
  copy_attrs(conv, q, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", "__opset"});
  set_int_attr(q, "relu", y->relu);
  Rewrite r{{anchor}, {q}};
  r.replaced.insert(r.replaced.end(), y->nodes.begin(), y->nodes.end());
  return r;
}

// DQ(a) + DQ(b) [+ DQ(bias)] -> Gemm|MatMul [[-> Relu] -> Q]; without Q the output stays float.
std::optional<Rewrite> select_gemm(Context& ctx, int anchor) {
  const Node& op = ctx.g.nodes[anchor];
  const bool gemm = op.op_type == "Gemm";
  if (gemm &&
      (op.attr_int("transA", 0) != 0 || op.attr_float("alpha", 1.0f) != 1.0f || op.attr_float("beta", 1.0f) != 1.0f))
    return std::nullopt;
  const bool trans_b = gemm && op.attr_int("transB", 0) != 0;
  auto a = dequantized_activation(ctx, op.input(0));
  auto b = dequantized_weight(ctx, op.input(1), /*rank=*/2, /*channel_axis=*/trans_b ? 0 : 1);
  if (!a || !b) return std::nullopt;
  const int64_t cols = constant(ctx, b->value)->shape[trans_b ? 0 : 1];
  std::optional<std::string> bias;
  if (gemm && !op.input(2).empty() && !(bias = dequantized_bias(ctx, op.input(2), *a, *b, cols))) return std::nullopt;
  auto y = quantized_output(ctx, op.outputs.at(0), /*allow_relu=*/true);

  std::vector<std::string> inputs = {
      a->value, a->scale, a->zero_point, b->value, b->scale, b->zero_point, bias ? *bias : std::string()};
  if (y) {
    inputs.push_back(y->output.scale);
    inputs.push_back(y->output.zero_point);
  } else {
    while (!inputs.empty() && inputs.back().empty()) inputs.pop_back();  // trailing optionals omitted
  }
  Node q = integer_node(op, "QGemm", inputs, y ? y->output.value : op.outputs.at(0));
  copy_attrs(op, q, {"__opset"});
  set_int_attr(q, "transB", trans_b);
  set_int_attr(q, "relu", y && y->relu);
  Rewrite r{{anchor}, {q}};
  if (y) r.replaced.insert(r.replaced.end(), y->nodes.begin(), y->nodes.end());
  return r;
}

// DQ(a) + DQ(b) -> Add [-> Relu] -> Q
std::optional<Rewrite> select_add(Context& ctx, int anchor) {
  const Node& add = ctx.g.nodes[anchor];
  auto a = dequantized_activation(ctx, add.input(0));
  auto b = dequantized_activation(ctx, add.input(1));
  if (!a || !b) return std::nullopt;
  auto y = quantized_output(ctx, add.outputs.at(0), /*allow_relu=*/true);
  if (!y) return std::nullopt;
  Node q = integer_node(
      add, "QAdd",
      {a->value, a->scale, a->zero_point, b->value, b->scale, b->zero_point, y->output.scale, y->output.zero_point},
      y->output.value);
  copy_attrs(add, q, {"__opset"});
  set_int_attr(q, "relu", y->relu);
  Rewrite r{{anchor}, {q}};
  r.replaced.insert(r.replaced.end(), y->nodes.begin(), y->nodes.end());
  return r;
}

// Ops that only move elements: Q commutes with them (per-tensor Q is elementwise), so
// pool -> moves -> Q computes what pool -> Q -> moves computes.
bool moves_elements_only(const Node& n) {
  return is_onnx_op(n, "Flatten") || is_onnx_op(n, "Reshape") || is_onnx_op(n, "Squeeze") ||
         is_onnx_op(n, "Unsqueeze") || is_onnx_op(n, "Identity");
}

// DQ(x) -> AveragePool|GlobalAveragePool [-> moves ...] -> Q
std::optional<Rewrite> select_pool(Context& ctx, int anchor) {
  const Node& pool = ctx.g.nodes[anchor];
  const bool global = pool.op_type == "GlobalAveragePool";
  if (!global) {
    if (pool.attr_ints("kernel_shape").size() != 2 || pool.attr_int("ceil_mode", 0) != 0) return std::nullopt;
    const auto dilations = pool.attr_ints("dilations", {1, 1});
    if (dilations != std::vector<int64_t>{1, 1}) return std::nullopt;
  }
  auto x = dequantized_activation(ctx, pool.input(0));
  if (!x) return std::nullopt;
  std::vector<int> moves;
  std::string value = pool.outputs.at(0);
  int next = sole_consumer(ctx, value);
  while (next >= 0 && moves_elements_only(ctx.g.nodes[next]) && ctx.g.nodes[next].input(0) == value) {
    moves.push_back(next);
    value = ctx.g.nodes[next].outputs.at(0);
    next = sole_consumer(ctx, value);
  }
  if (next < 0) return std::nullopt;
  auto y = quantize_node(ctx, ctx.g.nodes[next]);
  if (!y) return std::nullopt;

  Rewrite r{{anchor}, {}};
  // The pool now produces the 8-bit value; the moves carry it on; the last one writes Q's output.
  std::string pooled = moves.empty() ? y->value : fresh_name(ctx, pool.outputs.at(0) + "_q");
  Node q = integer_node(pool, global ? "QGlobalAveragePool" : "QAveragePool",
                        {x->value, x->scale, x->zero_point, y->scale, y->zero_point}, pooled);
  copy_attrs(pool, q, {"auto_pad", "count_include_pad", "kernel_shape", "pads", "strides", "__opset"});
  r.nodes.push_back(q);
  for (size_t i = 0; i < moves.size(); ++i) {
    Node move = ctx.g.nodes[moves[i]];
    move.inputs[0] = pooled;
    pooled = i + 1 == moves.size() ? y->value : fresh_name(ctx, move.outputs[0] + "_q");
    move.outputs[0] = pooled;
    r.nodes.push_back(move);
    r.replaced.push_back(moves[i]);
  }
  r.replaced.push_back(next);
  return r;
}

// The QOperator ops map input for input (their scales and zero points must be constants).
bool constants(const Context& ctx, const Node& n, std::initializer_list<int> inputs) {
  for (int i : inputs)
    if (!constant(ctx, n.input(i))) return false;
  return true;
}

std::optional<Rewrite> select_qlinear_conv(Context& ctx, int anchor) {
  const Node& conv = ctx.g.nodes[anchor];
  const Tensor* w = constant(ctx, conv.input(3));
  if (!w || w->rank() != 4 || !constants(ctx, conv, {1, 2, 4, 5, 6, 7})) return std::nullopt;
  Node q = integer_node(conv, "QConv", conv.inputs, conv.outputs.at(0));
  q.attrs = conv.attrs;
  set_int_attr(q, "relu", 0);
  return Rewrite{{anchor}, {q}};
}

std::optional<Rewrite> select_qlinear_matmul(Context& ctx, int anchor) {
  const Node& mm = ctx.g.nodes[anchor];
  const Tensor* b = constant(ctx, mm.input(3));
  if (!b || b->rank() != 2 || !constants(ctx, mm, {1, 2, 4, 5, 6, 7})) return std::nullopt;
  const Tensor* b_scale = constant(ctx, mm.input(4));
  if (b_scale->numel() != 1 && !(b_scale->rank() == 1 && b_scale->numel() == b->shape[1])) return std::nullopt;
  Node q = integer_node(
      mm, "QGemm",
      {mm.input(0), mm.input(1), mm.input(2), mm.input(3), mm.input(4), mm.input(5), "", mm.input(6), mm.input(7)},
      mm.outputs.at(0));
  copy_attrs(mm, q, {"__opset"});
  return Rewrite{{anchor}, {q}};
}

using Selector = std::optional<Rewrite> (*)(Context&, int);

// The op table of the pass: anchor op type -> selector.
const std::map<std::string, Selector>& selectors() {
  static const std::map<std::string, Selector> table = {
      {"Conv", select_conv},
      {"Gemm", select_gemm},
      {"MatMul", select_gemm},
      {"Add", select_add},
      {"AveragePool", select_pool},
      {"GlobalAveragePool", select_pool},
      {"QLinearConv", select_qlinear_conv},
      {"QLinearMatMul", select_qlinear_matmul},
  };
  return table;
}

// Drops DequantizeLinear nodes nobody reads any more, then initializers only they read.
void drop_unread_dequantize(Graph& g, const std::set<std::string>& initializers_before_read) {
  std::set<std::string> read;
  for (const auto& out : g.outputs) read.insert(out.name);
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs) read.insert(in);
  std::vector<Node> kept;
  for (auto& n : g.nodes)
    if (!(is_onnx_op(n, "DequantizeLinear") && !read.count(n.outputs.at(0)))) kept.push_back(std::move(n));
  g.nodes = std::move(kept);

  std::set<std::string> still_read;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs) still_read.insert(in);
  for (const auto& out : g.outputs) still_read.insert(out.name);
  for (auto it = g.initializers.begin(); it != g.initializers.end();)
    it = initializers_before_read.count(it->first) && !still_read.count(it->first) ? g.initializers.erase(it)
                                                                                   : std::next(it);
}

}  // namespace
}  // namespace qplay::integer

namespace qplay {

Graph lower_to_integer(const Graph& qdq) {
  using namespace integer;
  Context ctx{qdq, {}, {}};
  for (const auto& in : qdq.inputs) ctx.names.insert(in.name);
  for (const auto& [name, t] : qdq.initializers) ctx.names.insert(name);
  for (const auto& n : qdq.nodes)
    for (const auto& o : n.outputs) ctx.names.insert(o);

  const size_t n = qdq.nodes.size();
  std::vector<bool> claimed(n, false);
  std::map<int, Rewrite> rewrite_at;  // keyed by the position of the group's last node
  for (size_t i = 0; i < n; ++i) {
    if (claimed[i]) continue;
    const Node& node = qdq.nodes[i];
    if (!(node.domain.empty() || node.domain == "ai.onnx")) continue;
    auto sel = selectors().find(node.op_type);
    if (sel == selectors().end()) continue;
    std::optional<Rewrite> r = sel->second(ctx, static_cast<int>(i));
    if (!r || std::any_of(r->replaced.begin(), r->replaced.end(), [&](int k) { return claimed[k]; })) continue;
    for (int k : r->replaced) claimed[k] = true;
    const int last = *std::max_element(r->replaced.begin(), r->replaced.end());
    rewrite_at.emplace(last, std::move(*r));
  }
  if (rewrite_at.empty()) return qdq;

  Graph out = qdq;
  out.nodes.clear();
  for (size_t i = 0; i < n; ++i) {
    auto it = rewrite_at.find(static_cast<int>(i));
    if (it != rewrite_at.end())
      out.nodes.insert(out.nodes.end(), it->second.nodes.begin(), it->second.nodes.end());
    else if (!claimed[i])
      out.nodes.push_back(qdq.nodes[i]);
  }
  std::set<std::string> read_before;
  for (const auto& node : qdq.nodes)
    for (const auto& in : node.inputs)
      if (qdq.initializer(in)) read_before.insert(in);
  drop_unread_dequantize(out, read_before);
  // Zero points the rewrite created (for Q/DQ that omitted them), where a rewritten node reads them.
  for (const auto& node : out.nodes)
    for (const auto& in : node.inputs)
      if (ctx.added_initializers.count(in)) out.initializers[in] = ctx.added_initializers.at(in);
  sort_topologically(out);
  validate_graph(out);
  return out;
}

}  // namespace qplay
