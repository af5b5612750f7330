// The QDQ graphs qplay writes: ONNX Runtime's layout and names (compared with the shipped models
// that ORT's quantizer made), narrow widths, excluded nodes, biases, bias correction.
#include <gtest/gtest.h>

#include <set>

#include "quantize_test_support.h"
#include "support/test_support.h"

namespace qplay::quantize {
namespace {

// Calibrated once for the whole file: quantizing again from it is cheap.
const PreparedModel& prepared() {
  static const PreparedModel p = prepare_model(load_onnx(qplay::testing::model_path("resnet8_fp32.onnx")),
                                               testing::calibration_sample(), true, false);
  return p;
}

Graph quantized(const QuantizeOptions& o, QuantizeReport* report = nullptr) {
  return quantize_prepared(prepared(), testing::calibration_sample(), o, report);
}

std::set<std::string> node_names(const Graph& g) {
  std::set<std::string> s;
  for (const auto& n : g.nodes) s.insert(n.name + " (" + n.op_type + ")");
  return s;
}

void expect_same_layout(const Graph& ours, const Graph& reference) {
  EXPECT_EQ(node_names(ours), node_names(reference));
  ASSERT_EQ(ours.initializers.size(), reference.initializers.size());
  for (const auto& [name, t] : reference.initializers) {
    const Tensor* mine = ours.initializer(name);
    ASSERT_NE(mine, nullptr) << name;
    EXPECT_EQ(mine->dtype, t.dtype) << name;
    EXPECT_EQ(mine->shape, t.shape) << name;
  }
  for (const auto& n : reference.nodes) {
    const int i = ours.find_node(n.name);
    ASSERT_GE(i, 0) << n.name;
    EXPECT_EQ(ours.nodes[i].inputs, n.inputs) << n.name;
    EXPECT_EQ(ours.nodes[i].attr_int("axis", -99), n.attr_int("axis", -99)) << n.name;
  }
}

TEST(QdqLayout, PerTensorUint8MatchesOrtQuantizerLayout) {
  QuantizeOptions o;  // defaults: uint8 activations, int8 per-tensor weights, minmax
  const Graph g = quantized(o);
  expect_same_layout(g, load_onnx(qplay::testing::model_path("resnet8_u8act_s8w_pertensor.onnx")));
  // The image input keeps every pixel exact: scale 1, zero point 0.
  EXPECT_FLOAT_EQ(g.initializer("input_nchw_scale")->data<float>()[0], 1.0f);
  EXPECT_EQ(g.initializer("input_nchw_zero_point")->data<uint8_t>()[0], 0);
}

TEST(QdqLayout, PerChannelInt8MatchesOrtQuantizerLayout) {
  QuantizeOptions o;
  o.format.activation_type = DType::i8;
  o.format.per_channel = true;
  const Graph g = quantized(o);
  expect_same_layout(g, load_onnx(qplay::testing::model_path("resnet8_s8act_s8w_perchannel.onnx")));
}

TEST(QdqLayout, BiasScaleIsInputScaleTimesWeightScale) {
  QuantizeOptions o;
  o.format.per_channel = true;
  const Graph g = quantized(o);
  const float in_scale = g.initializer("activation_scale")->data<float>()[0];
  const Tensor& w_scale = *g.initializer("conv2d_1.weight_scale");
  const Tensor& b_scale = *g.initializer("conv2d_1.bias_scale");
  ASSERT_EQ(b_scale.numel(), w_scale.numel());
  for (int64_t c = 0; c < w_scale.numel(); ++c)
    EXPECT_FLOAT_EQ(b_scale.data<float>()[c], in_scale * w_scale.data<float>()[c]);
  EXPECT_EQ(g.initializer("conv2d_1.bias_quantized")->dtype, DType::i32);
  EXPECT_EQ(g.initializer("conv2d_1.bias_zero_point")->data<int32_t>()[0], 0);
}

TEST(QdqLayout, NarrowWidthsStayInTheirCodes) {
  QuantizeOptions o;
  o.format.weight_bits = 4;
  o.format.activation_bits = 4;
  const Graph g = quantized(o);
  // Weights: 4-bit symmetric codes [-7, 7] in int8 storage.
  for (const auto& [name, t] : g.initializers) {
    if (t.dtype != DType::i8) continue;
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_LE(std::abs(int(t.data<int8_t>()[i])), 7) << name;
  }
  // Activations: a Clip before every QuantizeLinear, and every code in [0, 15] when run.
  int clips = 0, quantizers = 0;
  for (const auto& n : g.nodes) {
    clips += n.op_type == "Clip";
    quantizers += n.op_type == "QuantizeLinear";
  }
  EXPECT_EQ(clips, quantizers);
  const Executor ex(std::make_shared<const Graph>(g));
  const Dataset test = load_cifar10(qplay::testing::first_1000_test_images());
  int checked = 0;
  ex.run({{"input", make_image_batch(test, 0, 20, ImageLayout::nhwc)}},
         [&](int, const std::string& value, const Tensor& t) {
           if (t.dtype != DType::u8) return;
           ++checked;
           for (int64_t i = 0; i < t.numel(); ++i) ASSERT_LE(t.data<uint8_t>()[i], 15) << value;
         });
  EXPECT_EQ(checked, quantizers);
}

TEST(QdqLayout, ExcludedNodeStaysFloat) {
  QuantizeOptions o;
  o.excluded = {"conv2d", "dense"};
  const Graph g = quantized(o);
  const Node& conv = g.nodes[g.find_node("conv2d")];
  EXPECT_EQ(conv.inputs, (std::vector<std::string>{"input_nchw", "conv2d.weight", "conv2d.bias"}));
  EXPECT_EQ(g.initializer("conv2d.weight")->dtype, DType::f32);
  EXPECT_EQ(g.find_node("input_nchw_QuantizeLinear"), -1);  // its only reader is excluded
  EXPECT_EQ(g.nodes[g.find_node("dense")].input(1), "dense.weight");
  EXPECT_GE(g.find_node("conv2d_1.weight_DequantizeLinear"), 0);  // the others are quantized
  o.excluded = {"no_such_node"};
  EXPECT_THROW(quantized(o), Error);
}

TEST(QdqLayout, BiasCorrectionShrinksTheMeanShift) {
  QuantizeOptions o;
  o.format.weight_bits = 4;
  o.format.per_channel = true;
  o.bias_correction = true;
  o.bias_correction_rounds = 2;
  QuantizeReport report;
  // Measured on 100 of the calibration images (eight prefix runs per round) to keep the test short.
  quantize_prepared(prepared(), testing::calibration_sample(100), o, &report);
  EXPECT_EQ(report.bias_correction.layers, 10);  // 9 convs and the dense layer
  ASSERT_EQ(report.bias_correction.mean_abs_shift.size(), 2u);
  EXPECT_EQ(report.bias_correction.levels, 8);  // conv2d_3/conv2d_5 and conv2d_6/conv2d_8 share a depth
  // The second sweep finds almost nothing left to correct.
  EXPECT_LT(report.bias_correction.mean_abs_shift[1], 0.05 * report.bias_correction.mean_abs_shift[0]);
}

}  // namespace
}  // namespace qplay::quantize
