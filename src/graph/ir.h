// qplay's intermediate representation: plain data, no behaviour beyond accessors.
// A Graph is what the importer produces and what every pass, kernel and analysis reads.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace qplay {

// The element types qplay computes with (those of FP32 and 8-bit quantized CNNs).
enum class DType : uint8_t { f32, u8, i8, i32, i64 };

const char* dtype_name(DType t);
size_t dtype_size(DType t);

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);

// A dense row-major tensor. Storage is a byte vector so one type serves every dtype;
// typed views are taken with data<T>(). Reset keeps capacity, so executors can reuse buffers.
struct Tensor {
  DType dtype = DType::f32;
  Shape shape;
  std::vector<uint8_t> bytes;

  Tensor() = default;
  Tensor(DType t, Shape s) { reset(t, std::move(s)); }

  void reset(DType t, Shape s) {
    dtype = t;
    shape = std::move(s);
    bytes.resize(static_cast<size_t>(shape_numel(shape)) * dtype_size(t));
  }
  int64_t numel() const { return shape_numel(shape); }
  size_t rank() const { return shape.size(); }

  template <typename T> T* data() { return reinterpret_cast<T*>(bytes.data()); }
  template <typename T> const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }

  // Element i as double, whatever the dtype (for validation and reporting, not hot loops).
  double at_as_double(int64_t i) const;
};

// Build small tensors in tests and passes.
Tensor make_f32(Shape shape, const std::vector<float>& values);
Tensor make_i64(Shape shape, const std::vector<int64_t>& values);
Tensor make_scalar_f32(float v);

struct Attribute {
  enum class Kind : uint8_t { Int, Float, String, Ints, Floats, Strings, Tensor };
  Kind kind = Kind::Int;
  int64_t i = 0;
  float f = 0.0f;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  std::shared_ptr<qplay::Tensor> t;
};

struct Node {
  std::string name;     // ONNX node name (made unique by the importer when missing)
  std::string op_type;  // ONNX op type, e.g. "Conv"
  std::string domain;   // "" for the default ONNX domain
  std::vector<std::string> inputs;   // value names; "" marks an omitted optional input
  std::vector<std::string> outputs;  // value names; "" marks an omitted optional output
  std::map<std::string, Attribute> attrs;

  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& key, std::vector<float> fallback = {}) const;
  const Tensor* attr_tensor(const std::string& key) const;

  // Input i's value name, or "" when absent.
  const std::string& input(size_t i) const;
};

// A graph input or output: name, element type and shape. Dimensions < 0 are dynamic
// (e.g. the batch), and dim_params keeps their symbolic names ("N") for export.
struct ValueInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::vector<std::string> dim_params;
};

struct Graph {
  std::string name;
  int64_t opset = 13;          // default-domain opset the model was written for
  int64_t ir_version = 7;
  std::string producer;
  std::vector<ValueInfo> inputs;   // real inputs only (initializers excluded)
  std::vector<ValueInfo> outputs;
  std::vector<Node> nodes;         // always in topological order (the importer sorts)
  std::map<std::string, Tensor> initializers;

  const Tensor* initializer(const std::string& name) const;
  // Index of the node producing `value`, or -1 for graph inputs / initializers / unknown.
  int producer_of(const std::string& value) const;
  // Indices of the nodes consuming `value`.
  std::vector<int> consumers_of(const std::string& value) const;
  int find_node(const std::string& node_name) const;
};

// Reorders g.nodes topologically (stable: keeps file order where possible).
// Throws if the graph has a cycle or a node reads a value nothing produces.
void sort_topologically(Graph& g);

// Errors that carry a message meant for the user (bad model, bad data, bad option).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace qplay
