#include "graph/ir.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <set>
#include <sstream>

namespace qplay {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::u8: return "uint8";
    case DType::i8: return "int8";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::u8: return 1;
    case DType::i8: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) os << ',';
    if (shape[i] < 0) os << '?'; else os << shape[i];
  }
  os << ']';
  return os.str();
}

double Tensor::at_as_double(int64_t i) const {
  switch (dtype) {
    case DType::f32: return data<float>()[i];
    case DType::u8: return data<uint8_t>()[i];
    case DType::i8: return data<int8_t>()[i];
    case DType::i32: return data<int32_t>()[i];
    case DType::i64: return static_cast<double>(data<int64_t>()[i]);
  }
  return 0;
}

Tensor make_f32(Shape shape, const std::vector<float>& values) {
  Tensor t(DType::f32, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel()) throw Error("make_f32: value count does not match shape");
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

Tensor make_i64(Shape shape, const std::vector<int64_t>& values) {
  Tensor t(DType::i64, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel()) throw Error("make_i64: value count does not match shape");
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

Tensor make_scalar_f32(float v) { return make_f32({}, {v}); }

int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.i;
}
float Node::attr_float(const std::string& key, float fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.f;
}
std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.s;
}
std::vector<int64_t> Node::attr_ints(const std::string& key, std::vector<int64_t> fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.ints;
}
std::vector<float> Node::attr_floats(const std::string& key, std::vector<float> fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.floats;
}
const Tensor* Node::attr_tensor(const std::string& key) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? nullptr : it->second.t.get();
}
const std::string& Node::input(size_t i) const {
  static const std::string none;
  return i < inputs.size() ? inputs[i] : none;
}

const Tensor* Graph::initializer(const std::string& name) const {
  auto it = initializers.find(name);
  return it == initializers.end() ? nullptr : &it->second;
}

int Graph::producer_of(const std::string& value) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (o == value) return static_cast<int>(i);
  return -1;
}

std::vector<int> Graph::consumers_of(const std::string& value) const {
  std::vector<int> out;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& in : nodes[i].inputs)
      if (in == value) { out.push_back(static_cast<int>(i)); break; }
  return out;
}

int Graph::find_node(const std::string& node_name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == node_name) return static_cast<int>(i);
  return -1;
}

void sort_topologically(Graph& g) {
  std::set<std::string> available;
  for (const auto& in : g.inputs) available.insert(in.name);
  for (const auto& [name, t] : g.initializers) available.insert(name);

  std::map<std::string, int> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer[o] = static_cast<int>(i);

  const size_t n = g.nodes.size();
  std::vector<int> missing(n, 0);
  std::vector<std::vector<int>> dependents(n);
  for (size_t i = 0; i < n; ++i) {
    std::set<int> deps;
    for (const auto& in : g.nodes[i].inputs) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        throw Error("node '" + g.nodes[i].name + "' (" + g.nodes[i].op_type + ") reads '" + in +
                    "', which no node, input or initializer provides");
      deps.insert(it->second);
    }
    missing[i] = static_cast<int>(deps.size());
    for (int d : deps) dependents[d].push_back(static_cast<int>(i));
  }
  // Min-heap on the original index keeps file order among ready nodes.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i)
    if (missing[i] == 0) ready.push(static_cast<int>(i));
  std::vector<Node> sorted;
  sorted.reserve(n);
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    sorted.push_back(g.nodes[i]);
    for (int d : dependents[i])
      if (--missing[d] == 0) ready.push(d);
  }
  if (sorted.size() != n) throw Error("graph '" + g.name + "' has a cycle");
  g.nodes = std::move(sorted);
}

}  // namespace qplay
