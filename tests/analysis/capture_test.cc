// Capturing intermediate tensors through the executor hook.
#include "analysis/capture.h"

#include <gtest/gtest.h>

#include "analysis/analysis_test_models.h"
#include "analysis/layers.h"
#include "analysis/quant_grid.h"
#include "graph/quant_params.h"

namespace qplay {
namespace {

using testing::test_sample;
using testing::shipped_model;

// dequantized == (code - zp) * scale exactly, element by element (float32 product).
void expect_codes_match_dequantized(const Graph& g, const Capture& c, const std::string& codes_value) {
  ASSERT_TRUE(c.dequantized_of.count(codes_value)) << codes_value;
  const Tensor& codes = c.at(codes_value);
  const Tensor& dq = c.at(c.dequantized_of.at(codes_value));
  ASSERT_EQ(codes.shape, dq.shape);
  const Node& q = g.nodes[g.producer_of(codes_value)];
  const float scale = g.initializer(q.input(1))->data<float>()[0];
  const int64_t zp = static_cast<int64_t>(g.initializer(q.input(2))->at_as_double(0));
  for (int64_t i = 0; i < codes.numel(); ++i) {
    const float expected = static_cast<float>(static_cast<int64_t>(codes.at_as_double(i)) - zp) * scale;
    ASSERT_EQ(dq.data<float>()[i], expected) << codes_value << " element " << i;
  }
}

TEST(Capture, QuantizedTensorsComeWithCodesAndDequantizedValues) {
  for (const char* file : {testing::kPerTensor, testing::kPerChannel}) {
    auto g = shipped_model(file);
    const Executor exec(g);
    // Asking for the codes brings the DQ output too, and vice versa.
    const Capture c = capture_images(exec, test_sample(), 0, 2, {"activation_2_q", "conv2d_4_dq"});
    EXPECT_EQ(c.values.size(), 4u);
    EXPECT_EQ(c.at("activation_2_q").shape, (Shape{2, 16, 32, 32}));
    EXPECT_EQ(c.at("activation_2_q").dtype, file == testing::kPerTensor ? DType::u8 : DType::i8);
    EXPECT_EQ(c.dequantized_of.at("conv2d_4_q"), "conv2d_4_dq");
    expect_codes_match_dequantized(*g, c, "activation_2_q");
    expect_codes_match_dequantized(*g, c, "conv2d_4_q");
  }
}

TEST(Capture, EmptyRequestKeepsEveryValueAndChangesNoOutput) {
  auto g = shipped_model(testing::kPerTensor);
  const Executor exec(g);
  const Capture c = capture_images(exec, test_sample(), 3, 2);
  size_t produced = 0;
  for (const auto& n : g->nodes) produced += n.outputs.size();
  EXPECT_EQ(c.values.size(), produced + 1);  // + the image input
  EXPECT_TRUE(c.has("input"));
  for (const auto& [codes, dq] : c.dequantized_of) expect_codes_match_dequantized(*g, c, codes);
  EXPECT_EQ(c.dequantized_of.size(), 14u);  // one per QuantizeLinear

  std::map<std::string, Tensor> feeds;
  feeds["input"] = make_image_batch(test_sample(), 3, 2, ImageLayout::nhwc);
  EXPECT_EQ(c.at("output").bytes, exec.run(feeds).at("output").bytes);
}

TEST(Capture, SelectedValuesOnlyAndNamedErrors) {
  auto g = shipped_model(testing::kFp32);
  const Executor exec(g);
  const Capture c = capture_images(exec, test_sample(), 0, 1, {"activation", "conv2d.weight", "input"});
  EXPECT_EQ(c.values.size(), 3u);  // a value, an initializer and the graph input
  EXPECT_TRUE(c.dequantized_of.empty());
  try {
    c.at("activation_1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'activation_1' was not captured"), std::string::npos);
  }
  try {
    capture_images(exec, test_sample(), 0, 1, {"no_such_value"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no value named 'no_such_value'"), std::string::npos);
  }
  EXPECT_THROW(capture_images(exec, test_sample(), 999, 2, {"activation"}), Error);  // past the end
}

TEST(Capture, DequantizeHelperMatchesDequantizeLinearPerChannel) {
  // Weights behind per-channel DQ nodes: the library's dequantize() computes what the kernel does.
  auto g = shipped_model(testing::kPerChannel);
  const auto params = list_quant_params(*g);
  const Executor exec(g);
  const Capture c = capture_images(exec, test_sample(), 0, 1, {"conv2d_3.weight_dq"});
  const QuantGrid grid = quant_grid(*find_quant_param(params, "conv2d_3.weight_quantized"));
  EXPECT_EQ(grid.axis, 0);
  EXPECT_EQ(dequantize(*g->initializer("conv2d_3.weight_quantized"), grid).bytes, c.at("conv2d_3.weight_dq").bytes);
}

}  // namespace
}  // namespace qplay
