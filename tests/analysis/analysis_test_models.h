// Models shared by the analysis tests (header only: the test glob compiles *_test.cc files):
// the shipped ResNet-8 files, loaded once, and a tiny QOperator graph built in memory.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "graph/ir.h"
#include "io/onnx_model.h"
#include "support/test_support.h"

namespace qplay::testing {

inline const char* kFp32 = "resnet8_fp32.onnx";
inline const char* kFp32Bn = "resnet8_fp32_bn.onnx";
inline const char* kPerTensor = "resnet8_u8act_s8w_pertensor.onnx";
inline const char* kPerChannel = "resnet8_s8act_s8w_perchannel.onnx";

// models/<file>, loaded once per test binary.
inline std::shared_ptr<const Graph> shipped_model(const std::string& file) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Graph>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& g = cache[file];
  if (!g) g = std::make_shared<const Graph>(load_onnx(model_path(file)));
  return g;
}

namespace detail {

template <typename T>
inline Tensor typed(DType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t(dtype, std::move(shape));
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

inline Attribute ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::Ints;
  a.ints = std::move(v);
  return a;
}

}  // namespace detail

// x [1,1,4,4] float -> QuantizeLinear -> QLinearConv "qconv1" (2 channels, per-channel weights)
// -> QLinearConv "qconv2" (1 channel) -> DequantizeLinear -> y; 3x3 kernels, pads 1.
inline Graph tiny_qoperator_graph() {
  Graph g;
  g.opset = 13;
  g.inputs.push_back({"x", DType::f32, {1, 1, 4, 4}, {}});
  g.outputs.push_back({"y", DType::f32, {1, 1, 4, 4}, {}});
  auto& init = g.initializers;
  init["x_scale"] = make_scalar_f32(0.05f);
  init["x_zero_point"] = detail::typed<uint8_t>(DType::u8, {}, {128});
  init["w1"] =
      detail::typed<int8_t>(DType::i8, {2, 1, 3, 3}, {1, -2, 3, 4, 5, -6, 7, 8, 9, -9, 8, 7, 6, 5, 4, 3, -2, 1});
  init["w1_scale"] = make_f32({2}, {0.02f, 0.03f});
  init["w1_zero_point"] = detail::typed<int8_t>(DType::i8, {2}, {0, 0});
  init["b1"] = detail::typed<int32_t>(DType::i32, {2}, {50, -40});
  init["h_scale"] = make_scalar_f32(0.04f);
  init["h_zero_point"] = detail::typed<uint8_t>(DType::u8, {}, {120});
  init["w2"] =
      detail::typed<int8_t>(DType::i8, {1, 2, 3, 3}, {3, 1, -4, 1, 5, 9, -2, 6, 5, 3, -5, 8, 9, 7, -9, 3, 2, 3});
  init["w2_scale"] = make_scalar_f32(0.01f);
  init["w2_zero_point"] = detail::typed<int8_t>(DType::i8, {}, {0});
  init["z_scale"] = make_scalar_f32(0.03f);
  init["z_zero_point"] = detail::typed<uint8_t>(DType::u8, {}, {110});
  const std::map<std::string, Attribute> conv_attrs{{"kernel_shape", detail::ints({3, 3})},
                                                    {"pads", detail::ints({1, 1, 1, 1})}};
  g.nodes.push_back(Node{"quantize_x", "QuantizeLinear", "", {"x", "x_scale", "x_zero_point"}, {"xq"}, {}});
  g.nodes.push_back(
      Node{"qconv1",
           "QLinearConv",
           "",
           {"xq", "x_scale", "x_zero_point", "w1", "w1_scale", "w1_zero_point", "h_scale", "h_zero_point", "b1"},
           {"hq"},
           conv_attrs});
  g.nodes.push_back(
      Node{"qconv2",
           "QLinearConv",
           "",
           {"hq", "h_scale", "h_zero_point", "w2", "w2_scale", "w2_zero_point", "z_scale", "z_zero_point"},
           {"zq"},
           conv_attrs});
  g.nodes.push_back(Node{"dequantize_z", "DequantizeLinear", "", {"zq", "z_scale", "z_zero_point"}, {"y"}, {}});
  return g;
}

}  // namespace qplay::testing
