#include "quantize/qdq.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qplay::quantize {

WeightRangeMethod parse_weight_range_method(const std::string& name) {
  if (name == "minmax") return WeightRangeMethod::minmax;
  if (name == "mse") return WeightRangeMethod::mse;
  throw Error("unknown weight range method '" + name + "' (expected minmax or mse)");
}

IntRange activation_codes(const QdqFormat& f) {
  return int_range(f.activation_type, f.activation_bits, f.symmetric_activations);
}
bool weights_symmetric(const QdqFormat& f) { return f.weight_type == DType::i8; }
IntRange weight_codes(const QdqFormat& f) { return int_range(f.weight_type, f.weight_bits, weights_symmetric(f)); }

bool is_quantizable_op(const Node& n) {
  if (!n.domain.empty()) return false;
  static const std::set<std::string> ops = {"Conv",    "Gemm",        "MatMul",           "Add",
                                            "MaxPool", "AveragePool", "GlobalAveragePool"};
  return ops.count(n.op_type) != 0;
}

int weight_input_index(const Node& n, const Graph& g) {
  if (!n.domain.empty() || (n.op_type != "Conv" && n.op_type != "Gemm" && n.op_type != "MatMul")) return -1;
  if (n.op_type == "Gemm" && n.attr_int("transA", 0) != 0) return -1;
  const Tensor* w = g.initializer(n.input(1));
  if (!w || w->dtype != DType::f32 || w->rank() < 2) return -1;
  if (n.op_type != "Conv" && w->rank() != 2) return -1;
  return 1;
}

int64_t weight_channel_axis(const Node& n) {
  if (n.op_type == "Conv") return 0;
  if (n.op_type == "Gemm") return n.attr_int("transB", 0) ? 0 : 1;
  return 1;  // MatMul: [K, N]
}

int bias_input_index(const Node& n, const Graph& g) {
  if (weight_input_index(n, g) < 0 || n.op_type == "MatMul") return -1;
  // Gemm computes alpha*A*B + beta*C; the int32 bias layout assumes alpha = beta = 1.
  if (n.op_type == "Gemm" && (n.attr_float("alpha", 1.0f) != 1.0f || n.attr_float("beta", 1.0f) != 1.0f)) return -1;
  const Tensor* w = g.initializer(n.input(1));
  const Tensor* b = g.initializer(n.input(2));
  if (!b || b->dtype != DType::f32 || b->rank() != 1) return -1;
  if (b->shape[0] != w->shape[weight_channel_axis(n)]) return -1;
  if (g.consumers_of(n.input(2)).size() != 1) return -1;  // its scale depends on this node's input
  return 2;
}

std::vector<std::string> activations_to_quantize(const Graph& g, const std::set<std::string>& excluded) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& n : g.nodes) {
    if (!is_quantizable_op(n) || excluded.count(n.name)) continue;
    const int w = weight_input_index(n, g), b = bias_input_index(n, g);
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string& v = n.inputs[i];
      if (v.empty() || static_cast<int>(i) == w || static_cast<int>(i) == b || g.initializer(v)) continue;
      if (n.op_type != "Add" && n.op_type != "MatMul" && i != 0) continue;  // Conv/Gemm/pool: data is input 0
      if (seen.insert(v).second) out.push_back(v);
    }
  }
  return out;
}

namespace {

// Views a tensor as [outer, channels, inner] around `axis` (channels = 1 for axis -1).
struct ChannelView {
  int64_t outer = 1, channels = 1, inner = 1;
};

ChannelView channel_view(const Shape& shape, int64_t axis) {
  ChannelView v;
  if (axis < 0) {
    v.inner = shape_numel(shape);
    return v;
  }
  for (int64_t k = 0; k < axis; ++k) v.outer *= shape[k];
  v.channels = shape[axis];
  for (size_t k = static_cast<size_t>(axis) + 1; k < shape.size(); ++k) v.inner *= shape[k];
  return v;
}

std::vector<float> channel_values(const Tensor& w, const ChannelView& v, int64_t c) {
  std::vector<float> out;
  out.reserve(static_cast<size_t>(v.outer * v.inner));
  const float* p = w.data<float>();
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i) out.push_back(p[(o * v.channels + c) * v.inner + i]);
  return out;
}

double weight_mse(const std::vector<float>& values, ScaleZeroPoint p, IntRange codes) {
  double err = 0.0;
  for (float x : values) {
    const double d = x - dequantize_value(quantize_value(x, p, codes), p);
    err += d * d;
  }
  return err;
}

ScaleZeroPoint params_for_values(const std::vector<float>& values, IntRange codes, bool symmetric,
                                 WeightRangeMethod method) {
  float lo = 0.0f, hi = 0.0f;
  for (float x : values) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  ScaleZeroPoint best = choose_scale_zero_point(lo, hi, codes, symmetric);
  if (method == WeightRangeMethod::minmax) return best;
  // Search a clipped range [a*lo, a*hi]: at few bits, a finer grid for the bulk of the weights
  // is worth saturating the few largest ones.
  double best_err = weight_mse(values, best, codes);
  for (int k = 20; k < 100; ++k) {
    const float a = static_cast<float>(k) / 100.0f;
    const ScaleZeroPoint p = choose_scale_zero_point(a * lo, a * hi, codes, symmetric);
    const double err = weight_mse(values, p, codes);
    if (err < best_err) {
      best_err = err;
      best = p;
    }
  }
  return best;
}

Tensor scalar_tensor(DType t, double v) {
  Tensor out(t, {});
  switch (t) {
    case DType::f32:
      out.data<float>()[0] = static_cast<float>(v);
      break;
    case DType::u8:
      out.data<uint8_t>()[0] = static_cast<uint8_t>(v);
      break;
    case DType::i8:
      out.data<int8_t>()[0] = static_cast<int8_t>(v);
      break;
    case DType::i32:
      out.data<int32_t>()[0] = static_cast<int32_t>(v);
      break;
    case DType::i64:
      out.data<int64_t>()[0] = static_cast<int64_t>(v);
      break;
  }
  return out;
}

void store_code(Tensor& t, int64_t i, int32_t q) {
  if (t.dtype == DType::u8)
    t.data<uint8_t>()[i] = static_cast<uint8_t>(q);
  else
    t.data<int8_t>()[i] = static_cast<int8_t>(q);
}

Node make_node(const std::string& name, const std::string& op, std::vector<std::string> inputs,
               std::vector<std::string> outputs) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

void set_axis(Node& n, int64_t axis) {
  Attribute a;
  a.kind = Attribute::Kind::Int;
  a.i = axis;
  n.attrs["axis"] = a;
}

}  // namespace

std::vector<ScaleZeroPoint> weight_params(const Tensor& w, int64_t axis, IntRange codes, bool symmetric,
                                          WeightRangeMethod method) {
  const ChannelView v = channel_view(w.shape, axis);
  std::vector<ScaleZeroPoint> out;
  for (int64_t c = 0; c < v.channels; ++c)
    out.push_back(params_for_values(channel_values(w, v, c), codes, symmetric, method));
  return out;
}

Tensor fake_quantize_weight(const Tensor& w, const WeightQuant& q) {
  Tensor out = w;
  const ChannelView v = channel_view(w.shape, q.axis);
  float* p = out.data<float>();
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t c = 0; c < v.channels; ++c)
      for (int64_t i = 0; i < v.inner; ++i) {
        float& x = p[(o * v.channels + c) * v.inner + i];
        x = dequantize_value(quantize_value(x, q.params[c], q.codes), q.params[c]);
      }
  return out;
}

QuantPlan plan_quantization(const Graph& fp32, const std::map<std::string, RealRange>& ranges, const QdqFormat& format,
                            const std::set<std::string>& excluded) {
  if (fp32.opset < 13)
    throw Error("quantization writes opset-13 QDQ nodes; the model is opset " + std::to_string(fp32.opset));
  QuantPlan plan;
  plan.format = format;
  plan.excluded = excluded;
  const IntRange a_codes = activation_codes(format);
  const bool narrow = format.activation_bits < 8;
  for (const auto& tensor : activations_to_quantize(fp32, excluded)) {
    auto it = ranges.find(tensor);
    if (it == ranges.end()) throw Error("internal: no calibrated range for tensor '" + tensor + "'");
    ActivationQuant a;
    a.calibrated = it->second;
    a.codes = a_codes;
    a.storage = format.activation_type;
    a.params = choose_scale_zero_point(it->second.lo, it->second.hi, a_codes, format.symmetric_activations);
    a.clip = narrow;
    plan.activations[tensor] = a;
  }
  const IntRange w_codes = weight_codes(format);
  for (const auto& n : fp32.nodes) {
    if (!is_quantizable_op(n) || excluded.count(n.name)) continue;
    const int wi = weight_input_index(n, fp32);
    if (wi < 0 || plan.weights.count(n.input(wi))) continue;
    WeightQuant q;
    q.node = n.name;
    q.axis = format.per_channel ? weight_channel_axis(n) : -1;
    q.codes = w_codes;
    q.storage = format.weight_type;
    q.params =
        weight_params(*fp32.initializer(n.input(wi)), q.axis, w_codes, weights_symmetric(format), format.weight_range);
    plan.weights[n.input(wi)] = q;
  }
  return plan;
}

Graph insert_qdq(const Graph& fp32, const QuantPlan& plan) {
  Graph out = fp32;
  out.nodes.clear();
  std::set<std::string> emitted_weights;

  auto emit_activation = [&](const std::string& x) {
    const ActivationQuant& a = plan.activations.at(x);
    const std::string scale = x + "_scale", zero_point = x + "_zero_point";
    out.initializers[scale] = scalar_tensor(DType::f32, a.params.scale);
    out.initializers[zero_point] = scalar_tensor(a.storage, a.params.zero_point);
    std::string q_input = x;
    if (a.clip) {
      // QuantizeLinear saturates to the storage type only; clipping to the real values of the
      // narrow range's ends first makes every code land in [qmin, qmax].
      out.initializers[x + "_clip_min"] = scalar_tensor(DType::f32, range_low(a.params, a.codes));
      out.initializers[x + "_clip_max"] = scalar_tensor(DType::f32, range_high(a.params, a.codes));
      q_input = x + "_clipped";
      out.nodes.push_back(make_node(x + "_Clip", "Clip", {x, x + "_clip_min", x + "_clip_max"}, {q_input}));
    }
    out.nodes.push_back(make_node(x + "_QuantizeLinear", "QuantizeLinear", {q_input, scale, zero_point}, {x + "_q"}));
    out.nodes.push_back(
        make_node(x + "_DequantizeLinear", "DequantizeLinear", {x + "_q", scale, zero_point}, {x + "_dq"}));
  };

  auto emit_weight = [&](const std::string& w_name) {
    if (!emitted_weights.insert(w_name).second) return;
    const WeightQuant& q = plan.weights.at(w_name);
    const Tensor& w = *fp32.initializer(w_name);
    Tensor codes(q.storage, w.shape);
    const ChannelView v = channel_view(w.shape, q.axis);
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t c = 0; c < v.channels; ++c)
        for (int64_t i = 0; i < v.inner; ++i) {
          const int64_t k = (o * v.channels + c) * v.inner + i;
          store_code(codes, k, quantize_value(w.data<float>()[k], q.params[c], q.codes));
        }
    const int64_t n = static_cast<int64_t>(q.params.size());
    Tensor scale(DType::f32, q.axis < 0 ? Shape{} : Shape{n});
    Tensor zero_point(q.storage, q.axis < 0 ? Shape{} : Shape{n});
    for (int64_t c = 0; c < n; ++c) {
      scale.data<float>()[c] = q.params[c].scale;
      store_code(zero_point, c, q.params[c].zero_point);
    }
    out.initializers[w_name + "_quantized"] = std::move(codes);
    out.initializers[w_name + "_scale"] = std::move(scale);
    out.initializers[w_name + "_zero_point"] = std::move(zero_point);
    Node dq = make_node(w_name + "_DequantizeLinear", "DequantizeLinear",
                        {w_name + "_quantized", w_name + "_scale", w_name + "_zero_point"}, {w_name + "_dq"});
    if (q.axis >= 0) set_axis(dq, q.axis);
    out.nodes.push_back(std::move(dq));
  };

  // bias_q = round(b / (s_x * s_w)) in int32, zero point 0: the integer accumulator's own scale.
  auto emit_bias = [&](const std::string& b_name, const ActivationQuant& input, const WeightQuant& w) {
    const Tensor& b = *fp32.initializer(b_name);
    const int64_t n = b.numel();
    const bool per_channel = w.params.size() > 1;
    Tensor codes(DType::i32, b.shape);
    Tensor scale(DType::f32, per_channel ? Shape{n} : Shape{});
    Tensor zero_point(DType::i32, per_channel ? Shape{n} : Shape{});
    for (int64_t c = 0; c < n; ++c) {
      const float s = input.params.scale * w.params[per_channel ? c : 0].scale;
      if (per_channel || c == 0) {
        scale.data<float>()[c] = s;
        zero_point.data<int32_t>()[c] = 0;
      }
      const double q = std::nearbyint(static_cast<double>(b.data<float>()[c]) / s);
      codes.data<int32_t>()[c] = static_cast<int32_t>(
          std::clamp<double>(q, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
    }
    out.initializers[b_name + "_quantized"] = std::move(codes);
    out.initializers[b_name + "_scale"] = std::move(scale);
    out.initializers[b_name + "_zero_point"] = std::move(zero_point);
    Node dq = make_node(b_name + "_DequantizeLinear", "DequantizeLinear",
                        {b_name + "_quantized", b_name + "_scale", b_name + "_zero_point"}, {b_name + "_dq"});
    if (per_channel) set_axis(dq, 0);
    out.nodes.push_back(std::move(dq));
  };

  for (const auto& in : fp32.inputs)
    if (plan.activations.count(in.name)) emit_activation(in.name);

  for (const Node& original : fp32.nodes) {
    Node n = original;
    if (is_quantizable_op(n) && !plan.excluded.count(n.name)) {
      const int wi = weight_input_index(n, fp32), bi = bias_input_index(n, fp32);
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (static_cast<int>(i) != wi && static_cast<int>(i) != bi && plan.activations.count(n.inputs[i]))
          n.inputs[i] = n.inputs[i] + "_dq";
      if (wi >= 0 && plan.weights.count(original.input(wi))) {
        const std::string w_name = original.input(wi);
        emit_weight(w_name);
        n.inputs[wi] = w_name + "_dq";
        const auto input = plan.activations.find(original.input(0));
        if (bi >= 0 && input != plan.activations.end()) {
          emit_bias(original.input(bi), input->second, plan.weights.at(w_name));
          n.inputs[bi] = original.input(bi) + "_dq";
        }
      }
    }
    out.nodes.push_back(std::move(n));
    for (const auto& o : original.outputs)
      if (plan.activations.count(o)) emit_activation(o);
  }

  // Float weights and biases that only the quantized nodes read are gone from the model.
  std::set<std::string> read;
  for (const auto& n : out.nodes)
    for (const auto& in : n.inputs) read.insert(in);
  for (auto it = out.initializers.begin(); it != out.initializers.end();)
    it = read.count(it->first) ? std::next(it) : out.initializers.erase(it);
  return out;
}

}  // namespace qplay::quantize
