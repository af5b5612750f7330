// Unit tests of the reference kernels for elementwise, shape, normalization and quantize ops.
// Expected values are computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "runtime/op_registry.h"
#include "support/kernel_test_helpers.h"

using namespace qplay;
using namespace qplay::testing;

namespace {

template <typename T>
std::vector<T> values_of(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

Node make_node(const std::string& op_type, std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = "test_" + op_type;
  n.op_type = op_type;
  n.attrs = std::move(attrs);
  n.outputs = {"y"};
  return n;
}

// Runs the op's reference kernel on `inputs` (nullptr = omitted optional input).
Tensor run(const Node& node, const Inputs& inputs) {
  const OpSpec* spec = find_op(node.op_type);
  if (spec == nullptr || spec->reference == nullptr) throw std::runtime_error("no kernel for " + node.op_type);
  std::vector<Tensor> outputs(1);
  spec->reference(node, inputs, outputs);
  return outputs[0];
}

void expect_floats_near(const Tensor& t, const std::vector<float>& want, float tol = 1e-6f) {
  ASSERT_EQ(t.dtype, DType::f32);
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.data<float>()[i], want[i], tol) << "element " << i;
}

// Expects the kernel to throw qplay::Error with a message containing every string in `parts`.
void expect_error(const Node& node, const Inputs& inputs, const std::vector<std::string>& parts) {
  try {
    run(node, inputs);
    ADD_FAILURE() << node.op_type << " did not throw";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Elementwise

TEST(ReferenceElementwise, AddBroadcastsRowVector) {
  const Tensor a = make_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = make_f32({3}, {10, 20, 30});
  const Tensor y = run(make_node("Add"), {&a, &b});
  EXPECT_EQ(y.shape, (Shape{2, 3}));
  expect_floats_near(y, {11, 22, 33, 14, 25, 36});
}

TEST(ReferenceElementwise, MulBroadcastsColumnByRow) {
  const Tensor a = make_f32({2, 1}, {2, 3});
  const Tensor b = make_f32({1, 3}, {1, 10, 100});
  const Tensor y = run(make_node("Mul"), {&a, &b});
  EXPECT_EQ(y.shape, (Shape{2, 3}));
  expect_floats_near(y, {2, 20, 200, 3, 30, 300});
}

TEST(ReferenceElementwise, SubWithScalarOnEitherSide) {
  const Tensor a = make_f32({3}, {5, 6, 7});
  const Tensor s = make_scalar_f32(1.5f);
  const Tensor y = run(make_node("Sub"), {&a, &s});
  EXPECT_EQ(y.shape, (Shape{3}));
  expect_floats_near(y, {3.5f, 4.5f, 5.5f});
  const Tensor z = run(make_node("Sub"), {&s, &a});
  expect_floats_near(z, {-3.5f, -4.5f, -5.5f});
}

TEST(ReferenceElementwise, IntegerDivTruncatesTowardZero) {
  const Tensor a = i32({4}, {7, -7, 7, -7});
  const Tensor b = i32({4}, {2, 2, -2, -2});
  const Tensor y = run(make_node("Div"), {&a, &b});
  ASSERT_EQ(y.dtype, DType::i32);
  EXPECT_EQ(values_of<int32_t>(y), (std::vector<int32_t>{3, -3, -3, 3}));

  const Tensor c = make_tensor<int64_t>(DType::i64, {2}, {9, -1});
  const Tensor d = make_tensor<int64_t>(DType::i64, {}, {4});
  EXPECT_EQ(values_of<int64_t>(run(make_node("Div"), {&c, &d})), (std::vector<int64_t>{2, 0}));

  const Tensor zero = i32({}, {0});
  expect_error(make_node("Div"), {&a, &zero}, {"test_Div", "division by zero"});
}

TEST(ReferenceElementwise, Uint8ArithmeticWraps) {
  const Tensor a = u8({3}, {250, 3, 16});
  const Tensor b = u8({3}, {10, 5, 17});
  EXPECT_EQ(values_of<uint8_t>(run(make_node("Add"), {&a, &b})), (std::vector<uint8_t>{4, 8, 33}));
  EXPECT_EQ(values_of<uint8_t>(run(make_node("Sub"), {&a, &b})), (std::vector<uint8_t>{240, 254, 255}));
  EXPECT_EQ(values_of<uint8_t>(run(make_node("Mul"), {&a, &b})), (std::vector<uint8_t>{196, 15, 16}));
  EXPECT_EQ(values_of<uint8_t>(run(make_node("Div"), {&a, &b})), (std::vector<uint8_t>{25, 0, 0}));
}

TEST(ReferenceElementwise, BinaryRejectsMixedTypesAndBadShapes) {
  const Tensor f = make_f32({2}, {1, 2});
  const Tensor i = i32({2}, {1, 2});
  expect_error(make_node("Add"), {&f, &i}, {"test_Add", "float32", "int32"});
  const Tensor g = make_f32({3}, {1, 2, 3});
  expect_error(make_node("Add"), {&f, &g}, {"test_Add", "broadcast"});
  expect_error(make_node("Add"), {&f, nullptr}, {"test_Add", "missing"});
}

TEST(ReferenceElementwise, ReluLeakyReluSigmoid) {
  const Tensor x = make_f32({4}, {-2, -0.5f, 0, 3});
  expect_floats_near(run(make_node("Relu"), {&x}), {0, 0, 0, 3});
  expect_floats_near(run(make_node("LeakyRelu"), {&x}), {-0.02f, -0.005f, 0, 3});
  expect_floats_near(run(make_node("LeakyRelu", {{"alpha", float_attr(0.5f)}}), {&x}), {-1, -0.25f, 0, 3});
  const Tensor s = make_f32({3}, {0, std::log(3.0f), -std::log(3.0f)});
  expect_floats_near(run(make_node("Sigmoid"), {&s}), {0.5f, 0.75f, 0.25f});
  const Tensor q = i8({3}, {-5, 0, 7});
  EXPECT_EQ(values_of<int8_t>(run(make_node("Relu"), {&q})), (std::vector<int8_t>{0, 0, 7}));
}

TEST(ReferenceElementwise, ClipAttributeForm) {
  const Tensor x = make_f32({5}, {-3, -1, 0, 1, 3});
  const Node both = make_node("Clip", {{"min", float_attr(-1.5f)}, {"max", float_attr(2)}});
  expect_floats_near(run(both, {&x}), {-1.5f, -1, 0, 1, 2});
  const Node only_max = make_node("Clip", {{"max", float_attr(0.5f)}});
  expect_floats_near(run(only_max, {&x}), {-3, -1, 0, 0.5f, 0.5f});
}

TEST(ReferenceElementwise, ClipInputForm) {
  const Tensor x = make_f32({5}, {-3, -1, 0, 1, 3});
  const Tensor lo = make_scalar_f32(-2);
  const Tensor hi = make_scalar_f32(0.5f);
  expect_floats_near(run(make_node("Clip"), {&x, &lo, &hi}), {-2, -1, 0, 0.5f, 0.5f});
  expect_floats_near(run(make_node("Clip"), {&x, nullptr, &hi}), {-3, -1, 0, 0.5f, 0.5f});
  expect_floats_near(run(make_node("Clip"), {&x, &lo}), {-2, -1, 0, 1, 3});
  expect_floats_near(run(make_node("Clip"), {&x}), {-3, -1, 0, 1, 3});

  // Integer types, bounds of the same type.
  const Tensor q = i8({4}, {-128, -3, 4, 127});
  const Tensor qlo = i8({}, {-5});
  const Tensor qhi = i8({}, {3});
  EXPECT_EQ(values_of<int8_t>(run(make_node("Clip"), {&q, &qlo, &qhi})), (std::vector<int8_t>{-5, -3, 3, 3}));
  expect_error(make_node("Clip"), {&x, &qlo}, {"test_Clip", "min"});
}

// ---------------------------------------------------------------------------------------------
// Normalization

TEST(ReferenceNormalization, SoftmaxOnARow) {
  // softmax([0, ln 2, ln 5]) = [1, 2, 5] / 8; a large offset must not overflow.
  const float l2 = std::log(2.0f), l5 = std::log(5.0f);
  const Tensor x = make_f32({2, 3}, {0, l2, l5, 1000, 1000 + l2, 1000 + l5});
  const Tensor y = run(make_node("Softmax"), {&x});
  // 1000 + ln 2 is only representable to ~6e-5 in float32, hence the looser tolerance.
  expect_floats_near(y, {0.125f, 0.25f, 0.625f, 0.125f, 0.25f, 0.625f}, 1e-4f);

  // Along axis 0 instead: each column is (a, a + delta) -> softmax depends only on delta.
  const Tensor c = make_f32({2, 2}, {0, 5, l2 + std::log(1.5f), 5});
  const Tensor z = run(make_node("Softmax", {{"axis", int_attr(0)}}), {&c});
  expect_floats_near(z, {0.25f, 0.5f, 0.75f, 0.5f});
}

TEST(ReferenceNormalization, SoftmaxBeforeOpset13CoercesTo2D) {
  // Shape [1, 2, 2], axis 1 (default): one group of all 4 elements.
  const Tensor x = make_f32({1, 2, 2}, {0, 0, 0, 0});
  const Tensor old = run(make_node("Softmax", {{"__opset", int_attr(11)}}), {&x});
  expect_floats_near(old, {0.25f, 0.25f, 0.25f, 0.25f});
  const Tensor now = run(make_node("Softmax", {{"__opset", int_attr(13)}}), {&x});
  expect_floats_near(now, {0.5f, 0.5f, 0.5f, 0.5f});
}

TEST(ReferenceNormalization, BatchNormalizationByHand) {
  // x: N=1, C=2, 2 elements per channel.
  const Tensor x = make_f32({1, 2, 2}, {1, 3, 2, 6});
  const Tensor scale = make_f32({2}, {2, 0.5f});
  const Tensor bias = make_f32({2}, {1, -1});
  const Tensor mean = make_f32({2}, {1, 2});
  const Tensor var = make_f32({2}, {4, 16});
  const Node node = make_node("BatchNormalization", {{"epsilon", float_attr(0)}});
  // c0: 2*(x-1)/2+1 -> 1, 3;   c1: 0.5*(x-2)/4-1 -> -1, -0.5
  expect_floats_near(run(node, {&x, &scale, &bias, &mean, &var}), {1, 3, -1, -0.5f});

  const Tensor bad = make_f32({3}, {1, 1, 1});
  expect_error(node, {&x, &bad, &bias, &mean, &var}, {"test_BatchNormalization", "scale"});
  expect_error(make_node("BatchNormalization", {{"training_mode", int_attr(1)}}), {&x, &scale, &bias, &mean, &var},
               {"test_BatchNormalization", "training_mode"});
}

// ---------------------------------------------------------------------------------------------
// Shape ops

TEST(ReferenceShape, ReshapeZeroAndMinusOne) {
  const Tensor x = make_f32({2, 3, 4}, std::vector<float>(24, 1.0f));
  const Tensor shape = make_i64({3}, {0, -1, 2});
  const Tensor y = run(make_node("Reshape"), {&x, &shape});
  EXPECT_EQ(y.shape, (Shape{2, 6, 2}));

  const Tensor empty = make_f32({0, 3}, {});
  const Tensor zero_shape = make_i64({2}, {3, 0});
  EXPECT_EQ(run(make_node("Reshape", {{"allowzero", int_attr(1)}}), {&empty, &zero_shape}).shape, (Shape{3, 0}));

  const Tensor two_minus = make_i64({2}, {-1, -1});
  expect_error(make_node("Reshape"), {&x, &two_minus}, {"test_Reshape", "-1"});
  const Tensor wrong = make_i64({2}, {5, 5});
  expect_error(make_node("Reshape"), {&x, &wrong}, {"test_Reshape", "cannot reshape"});
}

TEST(ReferenceShape, FlattenAxes) {
  const Tensor x = make_f32({2, 3, 4}, std::vector<float>(24, 0.0f));
  EXPECT_EQ(run(make_node("Flatten"), {&x}).shape, (Shape{2, 12}));
  EXPECT_EQ(run(make_node("Flatten", {{"axis", int_attr(0)}}), {&x}).shape, (Shape{1, 24}));
  EXPECT_EQ(run(make_node("Flatten", {{"axis", int_attr(-1)}}), {&x}).shape, (Shape{6, 4}));
  EXPECT_EQ(run(make_node("Flatten", {{"axis", int_attr(3)}}), {&x}).shape, (Shape{24, 1}));
}

TEST(ReferenceShape, TransposeWithPermAndDefault) {
  const Tensor x = make_f32({2, 3}, {0, 1, 2, 3, 4, 5});
  const Tensor t = run(make_node("Transpose"), {&x});
  EXPECT_EQ(t.shape, (Shape{3, 2}));
  expect_floats_near(t, {0, 3, 1, 4, 2, 5});

  // x[a][b][c] = 100a + 10b + c, shape [2,2,3]; perm [2,0,1] -> y[c][a][b].
  std::vector<float> v;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 3; ++c) v.push_back(100.0f * a + 10.0f * b + c);
  const Tensor x3 = make_f32({2, 2, 3}, v);
  const Tensor y = run(make_node("Transpose", {{"perm", ints_attr({2, 0, 1})}}), {&x3});
  EXPECT_EQ(y.shape, (Shape{3, 2, 2}));
  expect_floats_near(y, {0, 10, 100, 110, 1, 11, 101, 111, 2, 12, 102, 112});
  expect_error(make_node("Transpose", {{"perm", ints_attr({0, 0, 1})}}), {&x3}, {"test_Transpose", "perm"});
}

TEST(ReferenceShape, ConcatNegativeAxis) {
  const Tensor a = i32({2, 1}, {1, 2});
  const Tensor b = i32({2, 2}, {3, 4, 5, 6});
  const Tensor y = run(make_node("Concat", {{"axis", int_attr(-1)}}), {&a, &b});
  EXPECT_EQ(y.shape, (Shape{2, 3}));
  EXPECT_EQ(values_of<int32_t>(y), (std::vector<int32_t>{1, 3, 4, 2, 5, 6}));
  const Tensor z = run(make_node("Concat", {{"axis", int_attr(-2)}}), {&b, &b});
  EXPECT_EQ(z.shape, (Shape{4, 2}));
  EXPECT_EQ(values_of<int32_t>(z), (std::vector<int32_t>{3, 4, 5, 6, 3, 4, 5, 6}));
  expect_error(make_node("Concat", {{"axis", int_attr(0)}}), {&a, &b}, {"test_Concat", "incompatible"});
}

TEST(ReferenceShape, SqueezeByInputAndAttribute) {
  const Tensor x = make_f32({1, 3, 1, 2}, {1, 2, 3, 4, 5, 6});
  const Tensor axes = make_i64({1}, {-2});
  EXPECT_EQ(run(make_node("Squeeze"), {&x, &axes}).shape, (Shape{1, 3, 2}));
  EXPECT_EQ(run(make_node("Squeeze", {{"axes", ints_attr({0})}}), {&x}).shape, (Shape{3, 1, 2}));
  EXPECT_EQ(run(make_node("Squeeze"), {&x}).shape, (Shape{3, 2}));
  const Tensor bad = make_i64({1}, {1});
  expect_error(make_node("Squeeze"), {&x, &bad}, {"test_Squeeze", "axis 1"});
}

TEST(ReferenceShape, UnsqueezeByInputAndAttribute) {
  const Tensor x = make_f32({3, 4}, std::vector<float>(12, 2.0f));
  const Tensor axes = make_i64({2}, {3, 0});
  const Tensor y = run(make_node("Unsqueeze"), {&x, &axes});
  EXPECT_EQ(y.shape, (Shape{1, 3, 4, 1}));
  expect_floats_near(y, std::vector<float>(12, 2.0f));
  EXPECT_EQ(run(make_node("Unsqueeze", {{"axes", ints_attr({-1})}}), {&x}).shape, (Shape{3, 4, 1}));
  expect_error(make_node("Unsqueeze"), {&x}, {"test_Unsqueeze", "axes"});
}

TEST(ReferenceShape, IdentityCopies) {
  const Tensor x = u8({2}, {7, 9});
  const Tensor y = run(make_node("Identity"), {&x});
  EXPECT_EQ(y.dtype, DType::u8);
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{7, 9}));
}

TEST(ReferenceShape, PadConstantReflectEdge) {
  const Tensor x = make_f32({1, 3}, {1, 2, 3});
  const Tensor pads = make_i64({4}, {0, 2, 0, 1});  // axis 1: 2 before, 1 after
  const Tensor value = make_scalar_f32(9);

  const Tensor c = run(make_node("Pad"), {&x, &pads, &value});
  EXPECT_EQ(c.shape, (Shape{1, 6}));
  expect_floats_near(c, {9, 9, 1, 2, 3, 9});
  expect_floats_near(run(make_node("Pad"), {&x, &pads}), {0, 0, 1, 2, 3, 0});

  expect_floats_near(run(make_node("Pad", {{"mode", string_attr("reflect")}}), {&x, &pads}), {3, 2, 1, 2, 3, 2});
  expect_floats_near(run(make_node("Pad", {{"mode", string_attr("edge")}}), {&x, &pads}), {1, 1, 1, 2, 3, 3});

  // 2-D, both axes, int32.
  const Tensor m = i32({2, 2}, {1, 2, 3, 4});
  const Tensor p1 = make_i64({4}, {1, 0, 0, 1});  // one row above, one column right
  EXPECT_EQ(values_of<int32_t>(run(make_node("Pad", {{"mode", string_attr("edge")}}), {&m, &p1})),
            (std::vector<int32_t>{1, 2, 2, 1, 2, 2, 3, 4, 4}));
  EXPECT_EQ(values_of<int32_t>(run(make_node("Pad", {{"mode", string_attr("reflect")}}), {&m, &p1})),
            (std::vector<int32_t>{3, 4, 3, 1, 2, 1, 3, 4, 3}));

  // Opset-2 attribute form.
  const Node old = make_node("Pad", {{"pads", ints_attr({0, 1, 0, 0})}, {"value", float_attr(-1)}});
  expect_floats_near(run(old, {&x}), {-1, 1, 2, 3});

  const Tensor short_pads = make_i64({2}, {1, 1});
  expect_error(make_node("Pad"), {&x, &short_pads}, {"test_Pad", "pads"});
}

// ---------------------------------------------------------------------------------------------
// Quantization

TEST(ReferenceQuantize, QuantizeRoundsHalfToEven) {
  const Tensor x = make_f32({7}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f});
  const Tensor scale = make_scalar_f32(1);
  const Tensor zp = u8({}, {10});
  const Tensor y = run(make_node("QuantizeLinear"), {&x, &scale, &zp});
  ASSERT_EQ(y.dtype, DType::u8);
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{10, 12, 12, 10, 8, 8, 12}));
}

TEST(ReferenceQuantize, QuantizeSaturatesUint8AndInt8) {
  const Tensor x = make_f32({4}, {-1000, -2, 2, 1000});
  const Tensor scale = make_scalar_f32(2);
  // No zero point: uint8, zero point 0.
  EXPECT_EQ(values_of<uint8_t>(run(make_node("QuantizeLinear"), {&x, &scale})),
            (std::vector<uint8_t>{0, 0, 1, 255}));
  const Tensor zp8 = i8({}, {-1});
  const Tensor y = run(make_node("QuantizeLinear"), {&x, &scale, &zp8});
  ASSERT_EQ(y.dtype, DType::i8);
  EXPECT_EQ(values_of<int8_t>(y), (std::vector<int8_t>{-128, -2, 0, 127}));
}

TEST(ReferenceQuantize, QuantizePerAxis) {
  // x [2, 2, 1], axis 1: channel 0 scale 1 zp 0, channel 1 scale 0.5 zp 100.
  const Tensor x = make_f32({2, 2, 1}, {3, 3, -4, -4});
  const Tensor scale = make_f32({2}, {1, 0.5f});
  const Tensor zp = u8({2}, {0, 100});
  EXPECT_EQ(values_of<uint8_t>(run(make_node("QuantizeLinear"), {&x, &scale, &zp})),
            (std::vector<uint8_t>{3, 106, 0, 92}));
  // Same along axis -3 (the first axis): row 0 uses channel 0, row 1 channel 1.
  const Node neg = make_node("QuantizeLinear", {{"axis", int_attr(-3)}});
  EXPECT_EQ(values_of<uint8_t>(run(neg, {&x, &scale, &zp})), (std::vector<uint8_t>{3, 3, 92, 92}));

  const Tensor wrong_len = make_f32({3}, {1, 1, 1});
  expect_error(make_node("QuantizeLinear"), {&x, &wrong_len}, {"test_QuantizeLinear", "3 elements"});
  const Tensor zp_scalar = u8({}, {0});
  expect_error(make_node("QuantizeLinear"), {&x, &scale, &zp_scalar}, {"test_QuantizeLinear", "zero point"});
}

TEST(ReferenceQuantize, DequantizePerTensorAndPerAxis) {
  const Tensor x = u8({4}, {0, 3, 128, 255});
  const Tensor scale = make_scalar_f32(2);
  const Tensor zp = u8({}, {128});
  expect_floats_near(run(make_node("DequantizeLinear"), {&x, &scale, &zp}), {-256, -250, 0, 254});

  // x [1, 2, 2] int8, axis 1: channel 0 scale 0.5 zp -2, channel 1 scale 4 zp 3.
  const Tensor q = i8({1, 2, 2}, {-2, 0, 3, -128});
  const Tensor s2 = make_f32({2}, {0.5f, 4});
  const Tensor z2 = i8({2}, {-2, 3});
  expect_floats_near(run(make_node("DequantizeLinear"), {&q, &s2, &z2}), {0, 1, 0, -524});

  // int32 with no zero point.
  const Tensor acc = i32({2}, {-7, 100000});
  const Tensor s3 = make_scalar_f32(0.25f);
  expect_floats_near(run(make_node("DequantizeLinear"), {&acc, &s3}), {-1.75f, 25000});

  const Tensor wrong_zp = i8({}, {0});
  expect_error(make_node("DequantizeLinear"), {&x, &scale, &wrong_zp}, {"test_DequantizeLinear", "int8"});
  const Tensor zp32 = i32({}, {1});
  expect_error(make_node("DequantizeLinear"), {&acc, &s3, &zp32}, {"test_DequantizeLinear", "must be 0"});
}

TEST(ReferenceQuantize, ZeroOrNanScaleIsRejectedNamingTheNode) {
  const Tensor x = make_f32({2}, {1, 2});
  const Tensor q = u8({2}, {1, 2});
  const Tensor zero = make_scalar_f32(0);
  const Tensor nan = make_scalar_f32(std::numeric_limits<float>::quiet_NaN());
  const Tensor negative = make_f32({2}, {1, -0.5f});

  Node quant = make_node("QuantizeLinear");
  quant.name = "conv1_quant";
  Node dequant = make_node("DequantizeLinear");
  dequant.name = "conv1_dequant";
  expect_error(quant, {&x, &zero}, {"conv1_quant", "scale", "0"});
  expect_error(quant, {&x, &nan}, {"conv1_quant", "scale", "nan"});
  expect_error(dequant, {&q, &zero}, {"conv1_dequant", "scale", "0"});
  expect_error(dequant, {&q, &nan}, {"conv1_dequant", "scale", "nan"});
  Node per_axis = make_node("DequantizeLinear", {{"axis", int_attr(0)}});
  expect_error(per_axis, {&q, &negative}, {"test_DequantizeLinear", "scale[1]", "-0.5"});
}
