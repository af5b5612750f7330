#include "io/onnx_model.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "graph/validate.h"

namespace qplay {
namespace {

DType dtype_from_onnx(int t, const std::string& what) {
  switch (t) {
    case onnx::TensorProto_DataType_FLOAT: return DType::f32;
    case onnx::TensorProto_DataType_UINT8: return DType::u8;
    case onnx::TensorProto_DataType_INT8: return DType::i8;
    case onnx::TensorProto_DataType_INT32: return DType::i32;
    case onnx::TensorProto_DataType_INT64: return DType::i64;
  }
  const std::string name = onnx::TensorProto_DataType_IsValid(t)
                               ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t))
                               : std::to_string(t);
  throw Error(what + " has element type " + name +
              ", which qplay does not support (float32, uint8, int8, int32, int64)");
}

int dtype_to_onnx(DType t) {
  switch (t) {
    case DType::f32: return onnx::TensorProto_DataType_FLOAT;
    case DType::u8: return onnx::TensorProto_DataType_UINT8;
    case DType::i8: return onnx::TensorProto_DataType_INT8;
    case DType::i32: return onnx::TensorProto_DataType_INT32;
    case DType::i64: return onnx::TensorProto_DataType_INT64;
  }
  return onnx::TensorProto_DataType_UNDEFINED;
}

// Copies `count` values from a repeated proto field into the tensor, checking each fits T.
template <typename T, typename Field>
void copy_checked(const Field& field, Tensor& t, const std::string& what) {
  T* out = t.data<T>();
  for (int i = 0; i < field.size(); ++i) {
    const auto v = field.Get(i);
    if constexpr (std::is_integral_v<T>) {
      if (v < static_cast<decltype(v)>(std::numeric_limits<T>::min()) ||
          v > static_cast<decltype(v)>(std::numeric_limits<T>::max()))
        throw Error(what + " value " + std::to_string(v) + " is out of range for " + dtype_name(t.dtype));
    }
    out[i] = static_cast<T>(v);
  }
}

Tensor tensor_from_proto(const onnx::TensorProto& p, const std::string& what_in) {
  const std::string what = what_in + " '" + p.name() + "'";
  if (p.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    throw Error(what + " stores its data in an external file, which qplay does not read");
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) throw Error(what + " has a negative dimension");
  Tensor t(dtype_from_onnx(p.data_type(), what), shape);
  const size_t n = static_cast<size_t>(t.numel());
  if (p.has_raw_data()) {
    if (p.raw_data().size() != t.bytes.size())
      throw Error(what + " holds " + std::to_string(p.raw_data().size()) + " bytes of data, expected " +
                  std::to_string(t.bytes.size()) + " for shape " + shape_str(shape));
    std::memcpy(t.bytes.data(), p.raw_data().data(), t.bytes.size());
    return t;
  }
  auto expect_count = [&](int have) {
    if (static_cast<size_t>(have) != n)
      throw Error(what + " holds " + std::to_string(have) + " values, expected " + std::to_string(n) +
                  " for shape " + shape_str(shape));
  };
  switch (t.dtype) {
    case DType::f32: expect_count(p.float_data_size()); copy_checked<float>(p.float_data(), t, what); break;
    case DType::u8: expect_count(p.int32_data_size()); copy_checked<uint8_t>(p.int32_data(), t, what); break;
    case DType::i8: expect_count(p.int32_data_size()); copy_checked<int8_t>(p.int32_data(), t, what); break;
    case DType::i32: expect_count(p.int32_data_size()); copy_checked<int32_t>(p.int32_data(), t, what); break;
    case DType::i64: expect_count(p.int64_data_size()); copy_checked<int64_t>(p.int64_data(), t, what); break;
  }
  return t;
}

void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto& p) {
  p.set_name(name);
  p.set_data_type(dtype_to_onnx(t.dtype));
  for (int64_t d : t.shape) p.add_dims(d);
  p.set_raw_data(std::string(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size()));
}

Attribute attribute_from_proto(const onnx::AttributeProto& a, const std::string& node_what) {
  Attribute out;
  switch (a.type()) {
    case onnx::AttributeProto_AttributeType_INT: out.kind = Attribute::Kind::Int; out.i = a.i(); break;
    case onnx::AttributeProto_AttributeType_FLOAT: out.kind = Attribute::Kind::Float; out.f = a.f(); break;
    case onnx::AttributeProto_AttributeType_STRING: out.kind = Attribute::Kind::String; out.s = a.s(); break;
    case onnx::AttributeProto_AttributeType_INTS:
      out.kind = Attribute::Kind::Ints;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto_AttributeType_FLOATS:
      out.kind = Attribute::Kind::Floats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto_AttributeType_STRINGS:
      out.kind = Attribute::Kind::Strings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto_AttributeType_TENSOR:
      out.kind = Attribute::Kind::Tensor;
      out.t = std::make_shared<Tensor>(tensor_from_proto(a.t(), node_what + " attribute " + a.name()));
      break;
    default:
      throw Error(node_what + ": attribute '" + a.name() + "' has a type qplay does not support");
  }
  return out;
}

void attribute_to_proto(const std::string& key, const Attribute& a, onnx::AttributeProto& p) {
  p.set_name(key);
  switch (a.kind) {
    case Attribute::Kind::Int: p.set_type(onnx::AttributeProto_AttributeType_INT); p.set_i(a.i); break;
    case Attribute::Kind::Float: p.set_type(onnx::AttributeProto_AttributeType_FLOAT); p.set_f(a.f); break;
    case Attribute::Kind::String: p.set_type(onnx::AttributeProto_AttributeType_STRING); p.set_s(a.s); break;
    case Attribute::Kind::Ints:
      p.set_type(onnx::AttributeProto_AttributeType_INTS);
      for (auto v : a.ints) p.add_ints(v);
      break;
    case Attribute::Kind::Floats:
      p.set_type(onnx::AttributeProto_AttributeType_FLOATS);
      for (auto v : a.floats) p.add_floats(v);
      break;
    case Attribute::Kind::Strings:
      p.set_type(onnx::AttributeProto_AttributeType_STRINGS);
      for (const auto& v : a.strings) p.add_strings(v);
      break;
    case Attribute::Kind::Tensor:
      p.set_type(onnx::AttributeProto_AttributeType_TENSOR);
      tensor_to_proto(*a.t, "", *p.mutable_t());
      break;
  }
}

ValueInfo value_info_from_proto(const onnx::ValueInfoProto& v) {
  ValueInfo out;
  out.name = v.name();
  const std::string what = "graph input/output '" + v.name() + "'";
  if (!v.type().has_tensor_type()) throw Error(what + " is not a tensor");
  const auto& tt = v.type().tensor_type();
  out.dtype = dtype_from_onnx(tt.elem_type(), what);
  if (tt.has_shape()) {
    for (const auto& d : tt.shape().dim()) {
      out.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
      out.dim_params.push_back(d.has_dim_param() ? d.dim_param() : "");
    }
  }
  return out;
}

void value_info_to_proto(const ValueInfo& v, onnx::ValueInfoProto& p) {
  p.set_name(v.name);
  auto* tt = p.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(dtype_to_onnx(v.dtype));
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < v.shape.size(); ++i) {
    auto* d = shape->add_dim();
    if (v.shape[i] >= 0) d->set_dim_value(v.shape[i]);
    else d->set_dim_param(i < v.dim_params.size() && !v.dim_params[i].empty() ? v.dim_params[i] : "N");
  }
}

// Constant nodes become initializers so kernels never see them.
Tensor constant_value(const onnx::NodeProto& n, const std::string& what) {
  for (const auto& a : n.attribute()) {
    if (a.name() == "value") return tensor_from_proto(a.t(), what);
    if (a.name() == "value_float") return make_scalar_f32(a.f());
    if (a.name() == "value_floats")
      return make_f32({static_cast<int64_t>(a.floats_size())}, {a.floats().begin(), a.floats().end()});
    if (a.name() == "value_int") return make_i64({}, {a.i()});
    if (a.name() == "value_ints")
      return make_i64({static_cast<int64_t>(a.ints_size())}, {a.ints().begin(), a.ints().end()});
  }
  throw Error(what + " has no value attribute qplay can read");
}

Graph graph_from_model(const onnx::ModelProto& model, const std::string& label) {
  Graph g;
  g.ir_version = model.ir_version();
  g.producer = model.producer_name();
  g.opset = -1;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") g.opset = op.version();
  if (g.opset < 0) throw Error(label + ": the model imports no default-domain (ai.onnx) opset");
  if (g.opset < kMinOpset || g.opset > kMaxOpset)
    throw Error(label + ": opset " + std::to_string(g.opset) + " is outside the range qplay supports (" +
                std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ")");
  if (!model.has_graph()) throw Error(label + ": the file holds no graph");
  const auto& pg = model.graph();
  g.name = pg.name();

  for (const auto& init : pg.initializer()) g.initializers[init.name()] = tensor_from_proto(init, "initializer");
  for (const auto& in : pg.input())
    if (!g.initializers.count(in.name())) g.inputs.push_back(value_info_from_proto(in));
  for (const auto& out : pg.output()) g.outputs.push_back(value_info_from_proto(out));
  if (g.outputs.empty()) throw Error(label + ": the graph has no outputs");

  std::set<std::string> used_names;
  for (int i = 0; i < pg.node_size(); ++i) {
    const auto& pn = pg.node(i);
    Node n;
    n.op_type = pn.op_type();
    n.domain = pn.domain() == "ai.onnx" ? "" : pn.domain();
    n.name = pn.name().empty() ? pn.op_type() + "_" + std::to_string(i) : pn.name();
    while (used_names.count(n.name)) n.name += "_";
    used_names.insert(n.name);
    const std::string what = n.op_type + " node '" + n.name + "'";
    if (n.op_type == "Constant" && n.domain.empty()) {
      if (pn.output_size() != 1) throw Error(what + " must have one output");
      g.initializers[pn.output(0)] = constant_value(pn, what);
      continue;
    }
    n.inputs.assign(pn.input().begin(), pn.input().end());
    n.outputs.assign(pn.output().begin(), pn.output().end());
    for (const auto& a : pn.attribute()) n.attrs[a.name()] = attribute_from_proto(a, what);
    // Kernels whose semantics changed across opsets (Softmax) read the model's opset here.
    Attribute opset_attr;
    opset_attr.i = g.opset;
    n.attrs["__opset"] = opset_attr;
    g.nodes.push_back(std::move(n));
  }
  sort_topologically(g);
  validate_graph(g);
  return g;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open model file '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Graph load_onnx_from_bytes(const std::string& bytes, const std::string& label) {
  if (bytes.empty()) throw Error(label + ": the file is empty");
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes))
    throw Error(label + ": not a valid ONNX model (the protobuf data could not be parsed; truncated or not ONNX?)");
  if (!model.has_graph() || model.graph().node_size() == 0)
    throw Error(label + ": not a valid ONNX model (no graph or no nodes; truncated or not ONNX?)");
  // The ONNX checker knows opsets up to its own release; newer models skip it.
  bool checkable = true;
  for (const auto& op : model.opset_import())
    if ((op.domain().empty() || op.domain() == "ai.onnx") && op.version() > 17) checkable = false;
  if (checkable) {
    try {
      onnx::checker::check_model(model);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (auto cut = msg.find("\n\n==>"); cut != std::string::npos) msg.resize(cut);
      throw Error(label + ": the ONNX checker rejects the model: " + msg);
    }
  }
  return graph_from_model(model, label);
}

Tensor load_tensor_proto(const std::string& bytes, const std::string& label) {
  onnx::TensorProto p;
  if (!p.ParseFromString(bytes)) throw Error(label + ": not a valid ONNX TensorProto");
  return tensor_from_proto(p, label);
}

Graph load_onnx(const std::string& path) { return load_onnx_from_bytes(read_file(path), path); }

std::string export_onnx_bytes(const Graph& g) {
  onnx::ModelProto model;
  model.set_ir_version(g.ir_version > 0 ? g.ir_version : 7);
  model.set_producer_name("qplay");
  auto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(g.opset);
  auto* pg = model.mutable_graph();
  pg->set_name(g.name.empty() ? "qplay" : g.name);
  for (const auto& v : g.inputs) value_info_to_proto(v, *pg->add_input());
  for (const auto& v : g.outputs) value_info_to_proto(v, *pg->add_output());
  for (const auto& [name, t] : g.initializers) tensor_to_proto(t, name, *pg->add_initializer());
  std::set<std::string> domains;
  for (const auto& n : g.nodes) {
    auto* pn = pg->add_node();
    pn->set_name(n.name);
    pn->set_op_type(n.op_type);
    if (!n.domain.empty()) { pn->set_domain(n.domain); domains.insert(n.domain); }
    for (const auto& in : n.inputs) pn->add_input(in);
    for (const auto& out : n.outputs) pn->add_output(out);
    for (const auto& [key, a] : n.attrs)
      if (key.rfind("__", 0) != 0) attribute_to_proto(key, a, *pn->add_attribute());
  }
  for (const auto& d : domains) {
    auto* extra = model.add_opset_import();
    extra->set_domain(d);
    extra->set_version(1);
  }
  std::string out;
  if (!model.SerializeToString(&out)) throw Error("could not serialise the model");
  return out;
}

void save_onnx(const Graph& g, const std::string& path) {
  const std::string bytes = export_onnx_bytes(g);
  // Write beside the target and rename, so a failed write never leaves half a model.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw Error("cannot write '" + path + "': " + std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) throw Error("cannot write '" + path + "': " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error("cannot write '" + path + "': " + std::strerror(errno));
}

}  // namespace qplay
