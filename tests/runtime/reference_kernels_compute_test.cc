// Reference kernels for Conv/QLinearConv, pools and Gemm/MatMul/QLinearMatMul against
// values computed by hand on small tensors (the arithmetic is spelled out next to each case).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "graph/ir.h"
#include "runtime/op_registry.h"
#include "support/kernel_test_helpers.h"

using namespace qplay;
using namespace qplay::testing;

namespace {

std::vector<float> iota_f32(int n, float start = 1.0f) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

Node make_node(const std::string& op, const std::string& name, std::map<std::string, Attribute> attrs = {},
               std::vector<std::string> outputs = {"y"}) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.outputs = std::move(outputs);
  n.attrs = std::move(attrs);
  return n;
}

// Runs the op's reference kernel; nullptr entries are omitted optional inputs.
std::vector<Tensor> run(const Node& node, const std::vector<const Tensor*>& inputs) {
  const OpSpec* spec = find_op(node.op_type);
  if (spec == nullptr || spec->reference == nullptr) throw std::runtime_error("no kernel for " + node.op_type);
  std::vector<Tensor> outputs(node.outputs.size());
  spec->reference(node, inputs, outputs);
  return outputs;
}

void expect_f32(const Tensor& t, const Shape& shape, const std::vector<float>& want) {
  ASSERT_EQ(t.dtype, DType::f32);
  ASSERT_EQ(t.shape, shape);
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.data<float>()[i], want[i], 1e-5) << "element " << i;
}

template <typename T>
void expect_values(const Tensor& t, DType dtype, const Shape& shape, const std::vector<T>& want) {
  ASSERT_EQ(t.dtype, dtype);
  ASSERT_EQ(t.shape, shape);
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(static_cast<int64_t>(t.data<T>()[i]), static_cast<int64_t>(want[i])) << "element " << i;
}

// Expects the call to throw qplay::Error mentioning the node's name and `fragment`.
void expect_error(const Node& node, const std::vector<const Tensor*>& inputs, const std::string& fragment) {
  try {
    run(node, inputs);
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'" + node.name + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

}  // namespace

TEST(ReferenceKernelsRegistry, OpSpecsHaveInputCountsAndOpsets) {
  const OpSpec* conv = find_op("Conv");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->min_inputs, 2);
  EXPECT_EQ(conv->max_inputs, 3);
  const OpSpec* qconv = find_op("QLinearConv");
  ASSERT_NE(qconv, nullptr);
  EXPECT_EQ(qconv->min_inputs, 8);
  EXPECT_EQ(qconv->max_inputs, 9);
  EXPECT_EQ(qconv->min_opset, 10);
  const OpSpec* qmm = find_op("QLinearMatMul");
  ASSERT_NE(qmm, nullptr);
  EXPECT_EQ(qmm->min_inputs, 8);
  EXPECT_EQ(qmm->max_inputs, 8);
  for (const char* op : {"AveragePool", "MaxPool", "GlobalAveragePool", "Gemm", "MatMul"}) {
    const OpSpec* spec = find_op(op);
    ASSERT_NE(spec, nullptr) << op;
    EXPECT_NE(spec->reference, nullptr) << op;
  }
}

// ---- Conv ---------------------------------------------------------------------------------

TEST(ReferenceConv, Pads1OnesKernelSumsNeighbourhoods) {
  // X = [[1,2,3],[4,5,6],[7,8,9]], W = 3x3 ones, pads 1: y[i][j] = sum of the 3x3 neighbourhood.
  const Tensor x = f32({1, 1, 3, 3}, iota_f32(9));
  const Tensor w = f32({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  const Node node = make_node("Conv", "conv", {{"pads", ints_attr({1, 1, 1, 1})}, {"kernel_shape", ints_attr({3, 3})}});
  const auto y = run(node, {&x, &w});
  expect_f32(y[0], {1, 1, 3, 3}, {12, 21, 16, 27, 45, 33, 24, 39, 28});
}

TEST(ReferenceConv, IsCrossCorrelationWithBias) {
  // W = [[1,0,0],[0,0,0],[0,0,2]], pads 1, B = 0.5: y[i][j] = x[i-1][j-1] + 2 x[i+1][j+1] + 0.5
  // (no kernel flip; out-of-range x is 0).
  const Tensor x = f32({1, 1, 3, 3}, iota_f32(9));
  const Tensor w = f32({1, 1, 3, 3}, {1, 0, 0, 0, 0, 0, 0, 0, 2});
  const Tensor b = f32({1}, {0.5f});
  const Node node = make_node("Conv", "conv", {{"pads", ints_attr({1, 1, 1, 1})}});
  const auto y = run(node, {&x, &w, &b});
  expect_f32(y[0], {1, 1, 3, 3}, {10.5f, 12.5f, 0.5f, 16.5f, 19.5f, 2.5f, 0.5f, 4.5f, 5.5f});
}

TEST(ReferenceConv, Strides2) {
  // X[r][c] = 5r + c on 5x5, 3x3 ones, stride 2: windows at rows/cols {0, 2}.
  // Sum over a window at (r0, c0) = 3*5*(3 r0 + 3) + 3*(3 c0 + 3).
  const Tensor x = f32({1, 1, 5, 5}, iota_f32(25, 0.0f));
  const Tensor w = f32({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  const Node node = make_node("Conv", "conv", {{"strides", ints_attr({2, 2})}});
  const auto y = run(node, {&x, &w});
  expect_f32(y[0], {1, 1, 2, 2}, {54, 72, 144, 162});
}

TEST(ReferenceConv, GroupsSplitChannels) {
  // group 2: output 0 sees channels {0,1}, output 1 sees channels {2,3}.
  // y0 = 1*1 + 2*10 = 21, y1 = 3*100 + 4*1000 = 4300.
  const Tensor x = f32({1, 4, 1, 1}, {1, 2, 3, 4});
  const Tensor w = f32({2, 2, 1, 1}, {1, 10, 100, 1000});
  const Node node = make_node("Conv", "conv", {{"group", int_attr(2)}});
  const auto y = run(node, {&x, &w});
  expect_f32(y[0], {1, 2, 1, 1}, {21, 4300});
}

TEST(ReferenceConv, Depthwise1D) {
  // 1-D depthwise (group = C = 2): channel 0 [1,2,3] * [1,1] -> [3,5]; channel 1 [4,5,6] * [1,-1] -> [-1,-1].
  const Tensor x = f32({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor w = f32({2, 1, 2}, {1, 1, 1, -1});
  const Node node = make_node("Conv", "conv", {{"group", int_attr(2)}});
  const auto y = run(node, {&x, &w});
  expect_f32(y[0], {1, 2, 2}, {3, 5, -1, -1});
}

TEST(ReferenceConv, Dilation) {
  // Kernel [1,10] with dilation 2 taps x[i] and x[i+2]: y = [1+30, 2+40, 3+50].
  const Tensor x = f32({1, 1, 5}, {1, 2, 3, 4, 5});
  const Tensor w = f32({1, 1, 2}, {1, 10});
  const Node node = make_node("Conv", "conv", {{"dilations", ints_attr({2})}});
  const auto y = run(node, {&x, &w});
  expect_f32(y[0], {1, 1, 3}, {31, 42, 53});
}

TEST(ReferenceConv, SameUpperAndSameLowerPadOppositeEnds) {
  // in 4, kernel 2, stride 1: output 4, one pad in total.
  // SAME_UPPER pads the end:   y[i] = x[i] + 10 x[i+1]  -> [21, 32, 43, 4]
  // SAME_LOWER pads the start: y[i] = x[i-1] + 10 x[i]  -> [10, 21, 32, 43]
  const Tensor x = f32({1, 1, 4}, {1, 2, 3, 4});
  const Tensor w = f32({1, 1, 2}, {1, 10});
  const auto upper = run(make_node("Conv", "conv", {{"auto_pad", string_attr("SAME_UPPER")}}), {&x, &w});
  expect_f32(upper[0], {1, 1, 4}, {21, 32, 43, 4});
  const auto lower = run(make_node("Conv", "conv", {{"auto_pad", string_attr("SAME_LOWER")}}), {&x, &w});
  expect_f32(lower[0], {1, 1, 4}, {10, 21, 32, 43});
  const auto valid = run(make_node("Conv", "conv", {{"auto_pad", string_attr("VALID")}}), {&x, &w});
  expect_f32(valid[0], {1, 1, 3}, {21, 32, 43});
}

TEST(ReferenceConv, ThreeDimensional) {
  // 2x2x2 ones over a 2x2x2 input 1..8 -> 36; with two output channels (second weight = 2s) -> 72.
  const Tensor x = f32({1, 1, 2, 2, 2}, iota_f32(8));
  std::vector<float> wv(8, 1.0f);
  wv.resize(16, 2.0f);
  const Tensor w = f32({2, 1, 2, 2, 2}, wv);
  const auto y = run(make_node("Conv", "conv"), {&x, &w});
  expect_f32(y[0], {1, 2, 1, 1, 1}, {36, 72});
}

TEST(ReferenceConv, RejectsBadShapesNamingTheNode) {
  const Tensor x = f32({1, 2, 3, 3}, iota_f32(18));
  const Tensor w3 = f32({1, 3, 1, 1}, {1, 1, 1});
  expect_error(make_node("Conv", "conv_bad"), {&x, &w3}, "channel mismatch");

  const Tensor w = f32({3, 1, 1, 1}, {1, 1, 1});
  expect_error(make_node("Conv", "conv_group", {{"group", int_attr(2)}}), {&x, &w}, "not divisible by group");

  const Tensor w_ok = f32({1, 2, 1, 1}, {1, 1});
  const Tensor b_bad = f32({2}, {0, 0});
  expect_error(make_node("Conv", "conv_bias"), {&x, &w_ok, &b_bad}, "bias B");
  expect_error(make_node("Conv", "conv_missing"), {&x}, "missing required input");
  expect_error(make_node("Conv", "conv_ks", {{"kernel_shape", ints_attr({3, 3})}}), {&x, &w_ok}, "kernel_shape");
  expect_error(make_node("Conv", "conv_pads", {{"pads", ints_attr({1, 1})}}), {&x, &w_ok}, "pads");

  const Tensor big_w = f32({1, 2, 5, 5}, std::vector<float>(50, 1.0f));
  expect_error(make_node("Conv", "conv_big"), {&x, &big_w}, "exceeds padded input");

  const Tensor x_rank2 = f32({2, 3}, iota_f32(6));
  expect_error(make_node("Conv", "conv_rank"), {&x_rank2, &w_ok}, "expected rank");

  const Tensor x_u8 = u8({1, 2, 1, 1}, {1, 2});
  expect_error(make_node("Conv", "conv_type"), {&x_u8, &w_ok}, "float32");
}

// ---- QLinearConv --------------------------------------------------------------------------

TEST(ReferenceQLinearConv, PerChannelScalesRoundingAndSaturation) {
  // x = [10,20,30,40] (u8, scale 0.5, zp 10) -> x - zp = [0,10,20,30].
  // w (i8) = [3,-2,5], w_zp = [1,0,0] -> w - zp = [2,-2,5]; w_scale = [0.25, 0.25, 4]; B = [4,-4,0].
  // y_scale 1, y_zp 5 (u8). Multipliers x_scale*w_scale/y_scale = [0.125, 0.125, 2].
  //   m=0: acc = [4,24,44,64]     * 0.125 = [0.5,3,5.5,8]     -> round-half-even [0,3,6,8]    + 5 = [5,8,11,13]
  //   m=1: acc = [-4,-24,-44,-64] * 0.125 = [-0.5,-3,-5.5,-8] -> [0,-3,-6,-8] + 5 = [5,2,-1,-3] -> saturate [5,2,0,0]
  //   m=2: acc = [0,50,100,150]   * 2     = [0,100,200,300]   + 5 = [5,105,205,305] -> saturate [5,105,205,255]
  const Tensor x = u8({1, 1, 2, 2}, {10, 20, 30, 40});
  const Tensor x_scale = f32({}, {0.5f});
  const Tensor x_zp = u8({}, {10});
  const Tensor w = i8({3, 1, 1, 1}, {3, -2, 5});
  const Tensor w_scale = f32({3}, {0.25f, 0.25f, 4.0f});
  const Tensor w_zp = i8({3}, {1, 0, 0});
  const Tensor y_scale = f32({}, {1.0f});
  const Tensor y_zp = u8({}, {5});
  const Tensor b = i32({3}, {4, -4, 0});
  const auto y = run(make_node("QLinearConv", "qconv"), {&x, &x_scale, &x_zp, &w, &w_scale, &w_zp, &y_scale, &y_zp, &b});
  expect_values<uint8_t>(y[0], DType::u8, {1, 3, 2, 2}, {5, 8, 11, 13, 5, 2, 0, 0, 5, 105, 205, 255});
}

TEST(ReferenceQLinearConv, PaddingIsTheZeroPointNotRawZero) {
  // x - x_zp = [2,4], w - w_zp = [0,1,2], pads 1 on each side of the width:
  //   y0 = pad*0 + 2*1 + 4*2 = 10, y1 = 2*0 + 4*1 + pad*2 = 4 (pads contribute real value 0).
  // Output is int8 because y_zero_point is int8.
  const Tensor x = u8({1, 1, 1, 2}, {12, 14});
  const Tensor one = f32({}, {1.0f});
  const Tensor x_zp = u8({}, {10});
  const Tensor w = u8({1, 1, 1, 3}, {1, 2, 3});
  const Tensor w_zp = u8({}, {1});
  const Tensor y_zp = i8({}, {0});
  const Node node = make_node("QLinearConv", "qconv_pad", {{"pads", ints_attr({0, 1, 0, 1})}});
  const auto y = run(node, {&x, &one, &x_zp, &w, &one, &w_zp, &one, &y_zp});
  expect_values<int8_t>(y[0], DType::i8, {1, 1, 1, 2}, {10, 4});
}

TEST(ReferenceQLinearConv, RejectsBadParameters) {
  const Tensor x = u8({1, 1, 2, 2}, {1, 2, 3, 4});
  const Tensor one = f32({}, {1.0f});
  const Tensor zp = u8({}, {0});
  const Tensor w = u8({2, 1, 1, 1}, {1, 2});
  const Tensor bad_scale = f32({3}, {1, 1, 1});
  expect_error(make_node("QLinearConv", "qconv_scale"), {&x, &one, &zp, &w, &bad_scale, &zp, &one, &zp}, "w_scale");
  const Tensor zp_i8 = i8({}, {0});
  expect_error(make_node("QLinearConv", "qconv_zp"), {&x, &one, &zp_i8, &w, &one, &zp, &one, &zp}, "x_zero_point");
  const Tensor xf = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  expect_error(make_node("QLinearConv", "qconv_type"), {&xf, &one, &zp, &w, &one, &zp, &one, &zp}, "uint8 or int8");
  const Tensor w_wrong_c = u8({2, 3, 1, 1}, {1, 2, 3, 4, 5, 6});
  expect_error(make_node("QLinearConv", "qconv_c"), {&x, &one, &zp, &w_wrong_c, &one, &zp, &one, &zp},
               "channel mismatch");
  const Tensor b_f32 = f32({2}, {0, 0});
  expect_error(make_node("QLinearConv", "qconv_b"), {&x, &one, &zp, &w, &one, &zp, &one, &zp, &b_f32}, "bias B");
  const Tensor zero = f32({}, {0.0f});
  expect_error(make_node("QLinearConv", "qconv_ys"), {&x, &one, &zp, &w, &one, &zp, &zero, &zp}, "y_scale");
}

// ---- Pools --------------------------------------------------------------------------------

TEST(ReferenceAveragePool, CountIncludePadBothWays) {
  // X = 1..9 (3x3), kernel 3, pads 1, stride 2 -> windows start at -1 and 1, each holds 4 real values:
  //   sums 1+2+4+5=12, 2+3+5+6=16, 4+5+7+8=24, 5+6+8+9=28.
  // count_include_pad=0 divides by 4; =1 divides by 9 (all taps lie inside the padded input).
  const Tensor x = f32({1, 1, 3, 3}, iota_f32(9));
  std::map<std::string, Attribute> attrs = {
      {"kernel_shape", ints_attr({3, 3})}, {"pads", ints_attr({1, 1, 1, 1})}, {"strides", ints_attr({2, 2})}};
  const auto excl = run(make_node("AveragePool", "avg", attrs), {&x});
  expect_f32(excl[0], {1, 1, 2, 2}, {3, 4, 6, 7});
  attrs["count_include_pad"] = int_attr(1);
  const auto incl = run(make_node("AveragePool", "avg", attrs), {&x});
  expect_f32(incl[0], {1, 1, 2, 2}, {12.0f / 9, 16.0f / 9, 24.0f / 9, 28.0f / 9});
}

TEST(ReferenceAveragePool, CeilModeKeepsPartialWindows) {
  // X = 1..16 (4x4), kernel 3, stride 2, ceil_mode: out = ceil((4-3)/2)+1 = 2; the second window
  // per dim hangs one column past the input and averages only the real elements:
  //   [0..2]x[0..2] = 54/9 = 6, [0..2]x[2..3] = 45/6 = 7.5, [2..3]x[0..2] = 72/6 = 12, [2..3]x[2..3] = 54/4 = 13.5
  const Tensor x = f32({1, 1, 4, 4}, iota_f32(16));
  std::map<std::string, Attribute> attrs = {
      {"kernel_shape", ints_attr({3, 3})}, {"strides", ints_attr({2, 2})}, {"ceil_mode", int_attr(1)}};
  const auto y = run(make_node("AveragePool", "avg_ceil", attrs), {&x});
  expect_f32(y[0], {1, 1, 2, 2}, {6, 7.5f, 12, 13.5f});
  // Without explicit pads, count_include_pad changes nothing: the ceil overhang is never counted.
  attrs["count_include_pad"] = int_attr(1);
  const auto incl = run(make_node("AveragePool", "avg_ceil", attrs), {&x});
  expect_f32(incl[0], {1, 1, 2, 2}, {6, 7.5f, 12, 13.5f});
  // Floor mode keeps only the first window.
  attrs.erase("ceil_mode");
  const auto floor = run(make_node("AveragePool", "avg_floor", attrs), {&x});
  expect_f32(floor[0], {1, 1, 1, 1}, {6});
}

TEST(ReferenceAveragePool, CeilModeWithPadsCountsPadsButNotOverhang) {
  // 1-D x = [1,2,3,4], kernel 3, stride 2, pads [1,1], ceil: out = ceil((4+2-3)/2)+1 = 3, windows at
  // -1, 1, 3. Window 3 covers {3 (real), 4 (pad), 5 (ceil overhang)}.
  //   count_include_pad=0: [ (1+2)/2, (2+3+4)/3, 4/1 ] = [1.5, 3, 4]
  //   count_include_pad=1: [ 3/3, 9/3, 4/2 ]           = [1, 3, 2]
  const Tensor x = f32({1, 1, 4}, {1, 2, 3, 4});
  std::map<std::string, Attribute> attrs = {
      {"kernel_shape", ints_attr({3})}, {"strides", ints_attr({2})}, {"pads", ints_attr({1, 1})}, {"ceil_mode", int_attr(1)}};
  expect_f32(run(make_node("AveragePool", "avg", attrs), {&x})[0], {1, 1, 3}, {1.5f, 3, 4});
  attrs["count_include_pad"] = int_attr(1);
  expect_f32(run(make_node("AveragePool", "avg", attrs), {&x})[0], {1, 1, 3}, {1, 3, 2});
}

TEST(ReferenceAveragePool, SameUpperAndThreeD) {
  // 1-D SAME_UPPER, kernel 2: pad one at the end, not counted: [(1+2)/2, (2+3)/2, 3/1].
  const Tensor x = f32({1, 1, 3}, {1, 2, 3});
  const Node upper = make_node("AveragePool", "avg", {{"kernel_shape", ints_attr({2})}, {"auto_pad", string_attr("SAME_UPPER")}});
  expect_f32(run(upper, {&x})[0], {1, 1, 3}, {1.5f, 2.5f, 3});
  // SAME_LOWER pads the start: [1/1, 1.5, 2.5].
  const Node lower = make_node("AveragePool", "avg", {{"kernel_shape", ints_attr({2})}, {"auto_pad", string_attr("SAME_LOWER")}});
  expect_f32(run(lower, {&x})[0], {1, 1, 3}, {1, 1.5f, 2.5f});
  // 3-D: mean of 1..8 = 4.5.
  const Tensor x3 = f32({1, 1, 2, 2, 2}, iota_f32(8));
  expect_f32(run(make_node("AveragePool", "avg3", {{"kernel_shape", ints_attr({2, 2, 2})}}), {&x3})[0], {1, 1, 1, 1, 1},
             {4.5f});
}

TEST(ReferenceMaxPool, BasicStridesAndDilations) {
  // [[1,5,2],[7,3,9],[4,8,6]], kernel 2, stride 1 -> [[7,9],[8,9]].
  const Tensor x = f32({1, 1, 3, 3}, {1, 5, 2, 7, 3, 9, 4, 8, 6});
  expect_f32(run(make_node("MaxPool", "max", {{"kernel_shape", ints_attr({2, 2})}}), {&x})[0], {1, 1, 2, 2}, {7, 9, 8, 9});
  // X = 1..16 (4x4), kernel 2, dilation 2: taps (r, c), (r, c+2), (r+2, c), (r+2, c+2) -> [11,12,15,16].
  const Tensor x4 = f32({1, 1, 4, 4}, iota_f32(16));
  const Node dilated = make_node("MaxPool", "max_dil", {{"kernel_shape", ints_attr({2, 2})}, {"dilations", ints_attr({2, 2})}});
  expect_f32(run(dilated, {&x4})[0], {1, 1, 2, 2}, {11, 12, 15, 16});
}

TEST(ReferenceMaxPool, PaddingNeverWinsInt8) {
  // All-negative int8 input with pads 1: pads must not contribute a 0.
  const Tensor x = i8({1, 1, 2, 2}, {-5, -3, -7, -1});
  const Node node = make_node("MaxPool", "max_i8", {{"kernel_shape", ints_attr({2, 2})}, {"pads", ints_attr({1, 1, 1, 1})}});
  expect_values<int8_t>(run(node, {&x})[0], DType::i8, {1, 1, 3, 3}, {-5, -3, -3, -5, -1, -1, -7, -1, -1});
}

TEST(ReferenceMaxPool, CeilModeDropsWindowStartingInPadding) {
  // x = [1,2,3,4] (u8), kernel 2, stride 2, pads [0,1], ceil: ceil((4+1-2)/2)+1 = 3 windows, but the
  // third would start at 4, inside the end padding, so it is dropped -> [2, 4].
  const Tensor x = u8({1, 1, 4}, {1, 2, 3, 4});
  const Node node = make_node("MaxPool", "max_ceil",
                              {{"kernel_shape", ints_attr({2})}, {"strides", ints_attr({2})}, {"pads", ints_attr({0, 1})}, {"ceil_mode", int_attr(1)}});
  expect_values<uint8_t>(run(node, {&x})[0], DType::u8, {1, 1, 2}, {2, 4});
  // Ceil mode keeps a window that starts inside the input: x = [1..5], kernel 2, stride 2 -> [2, 4, 5].
  const Tensor x5 = u8({1, 1, 5}, {1, 2, 3, 4, 5});
  const Node keep = make_node("MaxPool", "max_ceil", {{"kernel_shape", ints_attr({2})}, {"strides", ints_attr({2})}, {"ceil_mode", int_attr(1)}});
  expect_values<uint8_t>(run(keep, {&x5})[0], DType::u8, {1, 1, 3}, {2, 4, 5});
}

TEST(ReferencePools, RejectUnsupportedAndBadInput) {
  const Tensor x = f32({1, 1, 3, 3}, iota_f32(9));
  expect_error(make_node("MaxPool", "max_indices", {{"kernel_shape", ints_attr({2, 2})}}, {"y", "indices"}), {&x}, "Indices");
  expect_error(make_node("MaxPool", "max_order", {{"kernel_shape", ints_attr({2, 2})}, {"storage_order", int_attr(1)}}), {&x},
               "storage_order");
  expect_error(make_node("AveragePool", "avg_no_kernel"), {&x}, "kernel_shape");
  expect_error(make_node("AveragePool", "avg_ks_len", {{"kernel_shape", ints_attr({2})}}), {&x}, "kernel_shape");
  expect_error(make_node("AveragePool", "avg_big", {{"kernel_shape", ints_attr({4, 4})}}), {&x}, "exceeds padded input");
  expect_error(make_node("AveragePool", "avg_pad", {{"kernel_shape", ints_attr({2, 2})}, {"pads", ints_attr({2, 2, 2, 2})}}), {&x},
               "smaller than kernel_shape");
  expect_error(make_node("AveragePool", "avg_autopad", {{"kernel_shape", ints_attr({2, 2})}, {"auto_pad", string_attr("SAME")}}),
               {&x}, "auto_pad");
  const Tensor xi = i32({1, 1, 2, 2}, {1, 2, 3, 4});
  expect_error(make_node("MaxPool", "max_i32", {{"kernel_shape", ints_attr({2, 2})}}), {&xi}, "int32");
  const Tensor x2 = f32({3, 3}, iota_f32(9));
  expect_error(make_node("GlobalAveragePool", "gap_rank"), {&x2}, "rank");
}

TEST(ReferenceGlobalAveragePool, MeanPerChannel) {
  const Tensor x = f32({1, 2, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 40});
  expect_f32(run(make_node("GlobalAveragePool", "gap"), {&x})[0], {1, 2, 1, 1}, {2.5f, 25});
}

// ---- Gemm / MatMul ------------------------------------------------------------------------

TEST(ReferenceGemm, TransposesAlphaBetaAndRowBroadcastC) {
  // A = [[1,2,3],[4,5,6]], B = [[1,0],[0,1],[1,1]] -> AB = [[4,5],[10,11]].
  // Stored transposed (transA, transB); alpha 2, beta 0.5, C = [10,20] broadcast over rows:
  //   Y = 2 AB + 0.5 C = [[13,20],[25,32]].
  const Tensor at = f32({3, 2}, {1, 4, 2, 5, 3, 6});
  const Tensor bt = f32({2, 3}, {1, 0, 1, 0, 1, 1});
  const Tensor c = f32({2}, {10, 20});
  const Node node = make_node("Gemm", "gemm", {{"transA", int_attr(1)}, {"transB", int_attr(1)},
                                               {"alpha", float_attr(2.0f)}, {"beta", float_attr(0.5f)}});
  expect_f32(run(node, {&at, &bt, &c})[0], {2, 2}, {13, 20, 25, 32});
}

TEST(ReferenceGemm, ColumnAndScalarCAndNoC) {
  const Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  const Tensor c_col = f32({2, 1}, {100, 200});
  expect_f32(run(make_node("Gemm", "gemm"), {&a, &b, &c_col})[0], {2, 2}, {104, 105, 210, 211});
  const Tensor c_scalar = f32({}, {1});
  expect_f32(run(make_node("Gemm", "gemm"), {&a, &b, &c_scalar})[0], {2, 2}, {5, 6, 11, 12});
  expect_f32(run(make_node("Gemm", "gemm"), {&a, &b, nullptr})[0], {2, 2}, {4, 5, 10, 11});
  expect_f32(run(make_node("Gemm", "gemm"), {&a, &b})[0], {2, 2}, {4, 5, 10, 11});
}

TEST(ReferenceGemm, RejectsBadShapes) {
  const Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  const Tensor c_bad = f32({3}, {1, 2, 3});
  expect_error(make_node("Gemm", "gemm_c"), {&a, &b, &c_bad}, "not broadcastable");
  expect_error(make_node("Gemm", "gemm_k", {{"transB", int_attr(1)}}), {&a, &b}, "inner dimensions");
  const Tensor v = f32({3}, {1, 2, 3});
  expect_error(make_node("Gemm", "gemm_rank"), {&v, &b}, "rank 2");
}

TEST(ReferenceMatMul, BatchBroadcastBothSides) {
  // A [2,1,1,2] (a0=[1,2], a1=[3,4]) x B [3,2,1] (b0=[1,1], b1=[1,-1], b2=[0,10]) -> [2,3,1,1], Y[i][j] = a_i . b_j.
  const Tensor a = f32({2, 1, 1, 2}, {1, 2, 3, 4});
  const Tensor b = f32({3, 2, 1}, {1, 1, 1, -1, 0, 10});
  expect_f32(run(make_node("MatMul", "mm"), {&a, &b})[0], {2, 3, 1, 1}, {3, -1, 20, 7, -1, 40});
  // Rank-2 B is shared by every batch of A: [[1,2]] and [[3,4]] times [[1,10],[100,1000]].
  const Tensor a3 = f32({2, 1, 2}, {1, 2, 3, 4});
  const Tensor b2 = f32({2, 2}, {1, 10, 100, 1000});
  expect_f32(run(make_node("MatMul", "mm"), {&a3, &b2})[0], {2, 1, 2}, {201, 2010, 403, 4030});
}

TEST(ReferenceMatMul, OneDimensionalOperands) {
  const Tensor v = f32({3}, {1, 2, 3});
  const Tensor m = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  expect_f32(run(make_node("MatMul", "mm"), {&v, &m})[0], {2}, {4, 5});  // row vector times matrix
  const Tensor m23 = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor ones = f32({3}, {1, 1, 1});
  expect_f32(run(make_node("MatMul", "mm"), {&m23, &ones})[0], {2}, {6, 15});  // matrix times column
  expect_f32(run(make_node("MatMul", "mm"), {&v, &v})[0], {}, {14});           // dot product
}

TEST(ReferenceMatMul, IntegersAndErrors) {
  const Tensor a = i32({1, 2}, {3, 4});
  const Tensor b = i32({2, 1}, {5, 6});
  expect_values<int32_t>(run(make_node("MatMul", "mm"), {&a, &b})[0], DType::i32, {1, 1}, {39});
  const Tensor bf = f32({2, 1}, {5, 6});
  expect_error(make_node("MatMul", "mm_types"), {&a, &bf}, "input B");
  const Tensor x = f32({2, 3}, iota_f32(6));
  expect_error(make_node("MatMul", "mm_k"), {&x, &x}, "inner dimensions");
  const Tensor xb = f32({2, 2, 3}, iota_f32(12));
  const Tensor yb = f32({3, 3, 1}, iota_f32(9));
  expect_error(make_node("MatMul", "mm_batch"), {&xb, &yb}, "cannot broadcast");
}

// ---- QLinearMatMul ------------------------------------------------------------------------

TEST(ReferenceQLinearMatMul, PerColumnScaleZeroPointsAndTies) {
  // a (u8, scale 1, zp 10) = [[12,14],[10,11]] -> [[2,4],[0,1]].
  // b (i8) = [[1,2],[3,-4]], b_zp = [0,-1] per column -> [[1,3],[3,-3]]; b_scale = [0.5, 1].
  // acc = [[14,-6],[3,-3]]; multipliers a_scale*b_scale/y_scale with y_scale 2: [0.25, 0.5].
  // scaled = [[3.5,-3],[0.75,-1.5]] -> round-half-even [[4,-3],[1,-2]] -> + y_zp (-1) = [[3,-4],[0,-3]].
  const Tensor a = u8({2, 2}, {12, 14, 10, 11});
  const Tensor a_scale = f32({}, {1.0f});
  const Tensor a_zp = u8({}, {10});
  const Tensor b = i8({2, 2}, {1, 2, 3, -4});
  const Tensor b_scale = f32({2}, {0.5f, 1.0f});
  const Tensor b_zp = i8({2}, {0, -1});
  const Tensor y_scale = f32({}, {2.0f});
  const Tensor y_zp = i8({}, {-1});
  const auto y = run(make_node("QLinearMatMul", "qmm"), {&a, &a_scale, &a_zp, &b, &b_scale, &b_zp, &y_scale, &y_zp});
  expect_values<int8_t>(y[0], DType::i8, {2, 2}, {3, -4, 0, -3});
}

TEST(ReferenceQLinearMatMul, SaturatesAndBroadcastsBatches) {
  // 255*255 = 65025 saturates to 127 (i8 output) / 255 (u8 output); -128*127 saturates to -128.
  // Batched a [2,1,1] times shared b [1,1].
  const Tensor a = u8({2, 1, 1}, {255, 1});
  const Tensor b = u8({1, 1}, {255});
  const Tensor one = f32({1}, {1.0f});
  const Tensor zp_u8 = u8({1}, {0});
  const Tensor zp_i8 = i8({1}, {0});
  expect_values<int8_t>(run(make_node("QLinearMatMul", "qmm"), {&a, &one, &zp_u8, &b, &one, &zp_u8, &one, &zp_i8})[0],
                        DType::i8, {2, 1, 1}, {127, 127});
  expect_values<uint8_t>(run(make_node("QLinearMatMul", "qmm"), {&a, &one, &zp_u8, &b, &one, &zp_u8, &one, &zp_u8})[0],
                         DType::u8, {2, 1, 1}, {255, 255});
  const Tensor an = i8({1, 1}, {-128});
  const Tensor bp = i8({1, 1}, {127});
  expect_values<int8_t>(run(make_node("QLinearMatMul", "qmm"), {&an, &one, &zp_i8, &bp, &one, &zp_i8, &one, &zp_i8})[0],
                        DType::i8, {1, 1}, {-128});
}

TEST(ReferenceQLinearMatMul, RejectsBadParameters) {
  const Tensor a = u8({2, 2}, {1, 2, 3, 4});
  const Tensor one = f32({}, {1.0f});
  const Tensor zp = u8({}, {0});
  const Tensor per_row = f32({2}, {1.0f, 1.0f});
  expect_error(make_node("QLinearMatMul", "qmm_a_scale"), {&a, &per_row, &zp, &a, &one, &zp, &one, &zp}, "a_scale");
  const Tensor b_scale3 = f32({3}, {1, 1, 1});
  expect_error(make_node("QLinearMatMul", "qmm_b_scale"), {&a, &one, &zp, &a, &b_scale3, &zp, &one, &zp}, "b_scale");
  const Tensor zp_i8 = i8({}, {0});
  expect_error(make_node("QLinearMatMul", "qmm_b_zp"), {&a, &one, &zp, &a, &one, &zp_i8, &one, &zp}, "b_zero_point");
  const Tensor b_bad = u8({3, 2}, {1, 2, 3, 4, 5, 6});
  expect_error(make_node("QLinearMatMul", "qmm_k"), {&a, &one, &zp, &b_bad, &one, &zp, &one, &zp}, "inner dimensions");
  expect_error(make_node("QLinearMatMul", "qmm_missing"), {&a, &one, &zp, &a, &one, &zp, &one}, "missing required input");
}
