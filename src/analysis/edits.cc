#include "analysis/edits.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include "analysis/layers.h"
#include "analysis/quant_grid.h"
#include "graph/quant_params.h"

namespace qplay {
namespace {

// Suffix of the Clip that set_bits puts before an activation's QuantizeLinear.
const char* const kNarrowSuffix = "_narrow";

std::string num_str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

double parse_number(const std::string& text, const std::string& whole) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("cannot parse '" + whole + "': '" + text + "' is not a number");
}

bool is_graph_output(const Graph& g, const std::string& value) {
  for (const auto& o : g.outputs)
    if (o.name == value) return true;
  return false;
}

// The parameter set of `tensor`; a narrowed activation is still found by its own name.
const QuantParam& find_param(const std::vector<QuantParam>& params, const std::string& tensor) {
  if (const QuantParam* p = find_quant_param(params, tensor)) return *p;
  if (const QuantParam* p = find_quant_param(params, tensor + kNarrowSuffix)) return *p;
  throw Error("the model has no quantized tensor named '" + tensor + "'");
}

// The name of an initializer `name` that only the nodes of `p` read: the same one, or a copy
// under a new name when other nodes share it (so an edit never leaks into another tensor).
std::string own_initializer(Graph& g, const QuantParam& p, const std::string& name, std::set<std::string>& dirty) {
  bool shared = false;
  for (int c : g.consumers_of(name))
    shared |= std::find(p.nodes.begin(), p.nodes.end(), g.nodes[c].name) == p.nodes.end();
  if (!shared) return name;
  std::string copy = p.tensor + "." + name + "_edited";
  while (g.initializers.count(copy)) copy += "_";
  g.initializers[copy] = g.initializers.at(name);
  for (auto& n : g.nodes)
    if (std::find(p.nodes.begin(), p.nodes.end(), n.name) != p.nodes.end())
      for (auto& in : n.inputs)
        if (in == name) in = copy;
  dirty.insert(copy);
  return copy;
}

void check_channel(const QuantParam& p, const Edit& e, size_t channels) {
  if (e.channel >= static_cast<int64_t>(channels))
    throw Error(p.tensor + ": channel " + std::to_string(e.channel) + " is out of range (" +
                std::to_string(channels) + " channel" + (channels == 1 ? "" : "s") + ")");
}

// The Clip node set_bits inserted before the Q of activation `p`, or -1.
int narrow_clip_of(const Graph& g, const QuantParam& p) {
  const int clip = g.producer_of(p.tensor);
  if (clip < 0) return -1;
  const Node& n = g.nodes[clip];
  return n.op_type == "Clip" && n.name == n.input(0) + "_clip" && n.outputs[0] == n.input(0) + kNarrowSuffix ? clip
                                                                                                            : -1;
}

// Sets the narrow Clip's float bounds to the codes [qlo, qhi] of grid (s, Z).
void set_clip_bounds(Graph& g, const Node& clip, int64_t qlo, int64_t qhi, float s, int64_t z,
                     std::set<std::string>& dirty) {
  g.initializers[clip.input(1)] = make_scalar_f32(s * static_cast<float>(qlo - z));
  g.initializers[clip.input(2)] = make_scalar_f32(s * static_cast<float>(qhi - z));
  dirty.insert(clip.input(1));
  dirty.insert(clip.input(2));
}

// Codes [qlo, qhi] an existing narrow Clip admits under the grid (s, Z) it was set for.
std::pair<int64_t, int64_t> clip_codes(const Graph& g, const Node& clip, float s, int64_t z) {
  const float lo = g.initializer(clip.input(1))->data<float>()[0];
  const float hi = g.initializer(clip.input(2))->data<float>()[0];
  return {std::llround(lo / s) + z, std::llround(hi / s) + z};
}

void set_scale_or_zero_point(Graph& g, const QuantParam& p, const Edit& e, std::set<std::string>& dirty) {
  const bool is_scale = e.kind == Edit::Kind::set_scale;
  const std::string label = p.tensor + (is_scale ? ".scale" : ".zero_point") +
                            (e.channel >= 0 ? "[" + std::to_string(e.channel) + "]" : "");
  if (is_scale && !(std::isfinite(e.value) && e.value > 0))
    throw Error(label + " = " + num_str(e.value) + ": a scale must be finite and greater than 0");
  const std::string& source = is_scale ? p.scale_name : p.zero_point_name;
  if (source.empty() || g.initializer(source) == nullptr)
    throw Error(label + ": the tensor has no constant " + (is_scale ? "scale" : "zero point") + " to edit");
  const Tensor& current = *g.initializer(source);
  check_channel(p, e, static_cast<size_t>(current.numel()));
  if (!is_scale) {
    const int64_t lo = dtype_min(current.dtype), hi = dtype_max(current.dtype);
    if (!(e.value == std::floor(e.value) && e.value >= double(lo) && e.value <= double(hi)))
      throw Error(label + " = " + num_str(e.value) + " is outside the " + dtype_name(current.dtype) + " range " +
                  std::to_string(lo) + ".." + std::to_string(hi));
  }

  // A narrowed activation keeps its narrow codes: remember them before the grid moves.
  const int clip = p.kind == "activation" ? narrow_clip_of(g, p) : -1;
  std::pair<int64_t, int64_t> codes;
  if (clip >= 0) codes = clip_codes(g, g.nodes[clip], p.scales.at(0), p.zero_points.empty() ? 0 : p.zero_points[0]);

  const std::string name = own_initializer(g, p, source, dirty);
  Tensor& t = g.initializers.at(name);
  for (int64_t c = 0; c < t.numel(); ++c) {
    if (e.channel >= 0 && c != e.channel) continue;
    if (is_scale) t.data<float>()[c] = static_cast<float>(e.value);
    else if (t.dtype == DType::u8) t.data<uint8_t>()[c] = static_cast<uint8_t>(e.value);
    else if (t.dtype == DType::i8) t.data<int8_t>()[c] = static_cast<int8_t>(e.value);
    else if (t.dtype == DType::i32) t.data<int32_t>()[c] = static_cast<int32_t>(e.value);
    else t.data<int64_t>()[c] = static_cast<int64_t>(e.value);
  }
  dirty.insert(name);
  if (clip >= 0) {
    const QuantParam& edited = find_param(list_quant_params(g), p.tensor);
    set_clip_bounds(g, Node(g.nodes[clip]), codes.first, codes.second, edited.scales.at(0),
                    edited.zero_points.empty() ? 0 : edited.zero_points[0], dirty);
  }
}

// One channel's grid mapped onto N bits (see edits.h).
struct NarrowGrid {
  float scale;
  int64_t zero_point;
};

NarrowGrid narrow_grid(float s, int64_t z, int64_t qmin8, int64_t qmax8, int64_t qmin, int64_t qmax) {
  const double ratio = double(qmax8 - qmin8) / double(qmax - qmin);
  const int64_t zn = qmin + std::llround(double(z - qmin8) / ratio);
  return {static_cast<float>(double(s) * ratio), std::clamp(zn, qmin, qmax)};
}

void set_bits(Graph& g, const QuantParam& p, const Edit& e, std::set<std::string>& dirty) {
  const std::string label = p.tensor + " bits";
  if (!(e.value == std::floor(e.value) && e.value >= 2 && e.value <= 8))
    throw Error(label + " = " + num_str(e.value) + ": the bit width must be 2..8");
  if (p.dtype != DType::u8 && p.dtype != DType::i8)
    throw Error(label + ": only 8-bit tensors can be narrowed (" + p.tensor + " is " + dtype_name(p.dtype) + ")");
  if (p.kind != "weight" && p.kind != "activation")
    throw Error(label + ": only weights and activations can be narrowed (" + p.tensor + " is " + p.kind + ")");
  const QuantGrid grid = quant_grid(p);
  const int bits = static_cast<int>(e.value);
  const int64_t qmin = p.dtype == DType::i8 ? -(int64_t(1) << (bits - 1)) : 0;
  const int64_t qmax = p.dtype == DType::i8 ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1;

  // A tensor narrowed before is narrowed from the 8-bit grid it came from, not again.
  const int clip = p.kind == "activation" ? narrow_clip_of(g, p) : -1;
  if (clip >= 0 && grid.channels() != 1) throw Error(label + ": per-channel activations cannot be narrowed");

  std::vector<NarrowGrid> narrow;
  for (size_t c = 0; c < grid.channels(); ++c)
    narrow.push_back(narrow_grid(grid.scales[c], grid.zero_points[c], grid.qmin, grid.qmax, qmin, qmax));

  const std::string scale_name = own_initializer(g, p, p.scale_name, dirty);
  const std::string zp_name = p.zero_point_name.empty() ? "" : own_initializer(g, p, p.zero_point_name, dirty);
  for (size_t c = 0; c < narrow.size(); ++c) {
    g.initializers.at(scale_name).data<float>()[c] = narrow[c].scale;
    if (zp_name.empty()) continue;
    Tensor& zp = g.initializers.at(zp_name);
    if (zp.dtype == DType::u8) zp.data<uint8_t>()[c] = static_cast<uint8_t>(narrow[c].zero_point);
    else zp.data<int8_t>()[c] = static_cast<int8_t>(narrow[c].zero_point);
  }
  dirty.insert(scale_name);
  if (!zp_name.empty()) dirty.insert(zp_name);

  if (p.kind == "weight") {
    // q' = clamp(round(s (q - Z) / s') + Z', qminN, qmaxN), per channel.
    Tensor& stored = g.initializers.at(p.tensor);
    const Tensor real = dequantize(stored, grid);
    const int64_t channels = static_cast<int64_t>(grid.channels());
    int64_t inner = 1;
    if (channels > 1)
      for (size_t d = static_cast<size_t>(grid.axis) + 1; d < stored.rank(); ++d) inner *= stored.shape[d];
    for (int64_t i = 0; i < stored.numel(); ++i) {
      const NarrowGrid& n = narrow[channels > 1 ? (i / inner) % channels : 0];
      const int64_t q = std::clamp<int64_t>(std::llround(std::nearbyint(real.data<float>()[i] / n.scale)) + n.zero_point,
                                            qmin, qmax);
      if (stored.dtype == DType::u8) stored.data<uint8_t>()[i] = static_cast<uint8_t>(q);
      else stored.data<int8_t>()[i] = static_cast<int8_t>(q);
    }
    dirty.insert(p.tensor);
    return;
  }

  // Activation: clamp the float input to the narrow grid's bounds before every Q of the set.
  if (grid.channels() != 1) throw Error(label + ": per-channel activations cannot be narrowed");
  if (clip >= 0) {
    set_clip_bounds(g, Node(g.nodes[clip]), qmin, qmax, narrow[0].scale, narrow[0].zero_point, dirty);
    return;
  }
  Node node;
  node.name = p.tensor + "_clip";
  node.op_type = "Clip";
  node.inputs = {p.tensor, p.tensor + "_clip_min", p.tensor + "_clip_max"};
  node.outputs = {p.tensor + kNarrowSuffix};
  set_clip_bounds(g, node, qmin, qmax, narrow[0].scale, narrow[0].zero_point, dirty);
  for (auto& n : g.nodes)
    if (n.op_type == "QuantizeLinear" && n.input(0) == p.tensor) n.inputs[0] = node.outputs[0];
  g.nodes.push_back(node);
  dirty.insert(node.outputs[0]);
  sort_topologically(g);
}

// Removes Q/DQ nodes nobody reads any more, and the initializers only they read.
void remove_unread_quantize_nodes(Graph& g) {
  for (bool removed = true; removed;) {
    removed = false;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& n = g.nodes[i];
      if (n.op_type != "QuantizeLinear" && n.op_type != "DequantizeLinear") continue;
      if (!g.consumers_of(n.outputs[0]).empty() || is_graph_output(g, n.outputs[0])) continue;
      const std::vector<std::string> inputs = n.inputs;
      g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
      for (const auto& in : inputs)
        if (g.initializer(in) && g.consumers_of(in).empty() && !is_graph_output(g, in)) g.initializers.erase(in);
      removed = true;
      break;
    }
  }
}

void bypass_layer(Graph& g, const std::vector<QuantParam>& params, const Edit& e, std::set<std::string>& dirty) {
  const std::vector<Layer> layers = group_layers(g, params);
  const int li = find_layer(layers, e.target);
  if (li < 0) throw Error("the model has no layer named '" + e.target + "'");
  const Layer& layer = layers[li];
  if (layer.qoperator) throw Error("layer '" + e.target + "' is a " + layer.op_type + " (QOperator) layer; it cannot be bypassed");

  Node& compute = g.nodes[layer.compute_node];
  for (auto& operand : compute.inputs) {
    const int dq = g.producer_of(operand);
    if (dq < 0 || g.nodes[dq].op_type != "DequantizeLinear") continue;
    const Node& dq_node = g.nodes[dq];
    if (g.initializer(dq_node.input(0))) {
      // Weight or bias: a float initializer under the DQ's output name replaces the DQ.
      // The DQ, left without readers, is removed below with its integer initializers.
      const QuantParam* p = find_quant_param(params, dq_node.input(0));
      if (!p) continue;
      const std::string value = dq_node.outputs[0];
      g.initializers[value] = dequantize(*g.initializer(dq_node.input(0)), quant_grid(*p));
      g.nodes[dq].outputs[0] = value + "_unread";
      dirty.insert(value);
      continue;
    }
    const int q = g.producer_of(dq_node.input(0));
    if (q >= 0 && g.nodes[q].op_type == "QuantizeLinear") operand = g.nodes[q].input(0);
  }
  for (const auto& out : compute.outputs) dirty.insert(out);
  remove_unread_quantize_nodes(g);
}

}  // namespace

Edit parse_set_edit(const std::string& text) {
  static const std::regex form(R"(^(.+)\.(scale|zero_point)(\[([0-9]+)\])?=(.+)$)");
  std::smatch m;
  if (!std::regex_match(text, m, form))
    throw Error("cannot parse '" + text + "': expected TENSOR.scale=V, TENSOR.scale[c]=V or TENSOR.zero_point=Z");
  Edit e;
  e.kind = m[2] == "scale" ? Edit::Kind::set_scale : Edit::Kind::set_zero_point;
  e.target = m[1];
  e.channel = m[4].matched ? std::stoll(m[4]) : -1;
  e.value = parse_number(m[5], text);
  return e;
}

Edit parse_bits_edit(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0) throw Error("cannot parse '" + text + "': expected TENSOR=N");
  Edit e;
  e.kind = Edit::Kind::set_bits;
  e.target = text.substr(0, eq);
  e.value = parse_number(text.substr(eq + 1), text);
  return e;
}

Edit bypass_edit(const std::string& layer) {
  Edit e;
  e.kind = Edit::Kind::bypass_layer;
  e.target = layer;
  return e;
}

std::string edit_str(const Edit& e) {
  const std::string channel = e.channel >= 0 ? "[" + std::to_string(e.channel) + "]" : "";
  switch (e.kind) {
    case Edit::Kind::set_scale: return "--set " + e.target + ".scale" + channel + "=" + num_str(e.value);
    case Edit::Kind::set_zero_point: return "--set " + e.target + ".zero_point" + channel + "=" + num_str(e.value);
    case Edit::Kind::set_bits: return "--bits " + e.target + "=" + num_str(e.value);
    case Edit::Kind::bypass_layer: return "--bypass " + e.target;
  }
  return "";
}

EditedGraph apply_edits_tracked(const Graph& original, const std::vector<Edit>& edits) {
  EditedGraph out{original, {}};
  for (const Edit& e : edits) {
    const std::vector<QuantParam> params = list_quant_params(out.graph);
    if (e.kind == Edit::Kind::bypass_layer) {
      bypass_layer(out.graph, params, e, out.dirty);
      continue;
    }
    const QuantParam& p = find_param(params, e.target);
    if (e.kind == Edit::Kind::set_bits) set_bits(out.graph, p, e, out.dirty);
    else set_scale_or_zero_point(out.graph, p, e, out.dirty);
  }
  return out;
}

Graph apply_edits(const Graph& original, const std::vector<Edit>& edits) {
  return apply_edits_tracked(original, edits).graph;
}

}  // namespace qplay
