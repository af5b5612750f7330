// BatchNormalization folding: the folded graph computes what the unfolded one does, and what the
// shipped pre-folded model does.
#include "quantize/fold_batchnorm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "quantize_test_support.h"
#include "support/test_support.h"

namespace qplay::quantize {
namespace {

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

TEST(FoldBatchnorm, ResNet8MatchesUnfoldedAndShippedFoldedModel) {
  const Graph with_bn = load_onnx(qplay::testing::model_path("resnet8_fp32_bn.onnx"));
  Graph folded = with_bn;
  EXPECT_EQ(fold_batchnorm(folded), 7);
  for (const auto& n : folded.nodes) EXPECT_NE(n.op_type, "BatchNormalization") << n.name;
  EXPECT_EQ(folded.nodes.size(), with_bn.nodes.size() - 7);

  const Dataset test = load_cifar10(qplay::testing::first_1000_test_images());
  const auto unfolded_out = testing::run_model(with_bn, test, 200).outputs;
  const auto folded_out = testing::run_model(folded, test, 200).outputs;
  const auto shipped_out =
      testing::run_model(load_onnx(qplay::testing::model_path("resnet8_fp32.onnx")), test, 200).outputs;
  EXPECT_LE(max_abs_difference(folded_out, unfolded_out), 1e-4f);
  EXPECT_LE(max_abs_difference(folded_out, shipped_out), 1e-4f);

  // The folded graph also survives export and re-import (checker, validation).
  const Graph reloaded = load_onnx_from_bytes(export_onnx_bytes(folded), "folded");
  EXPECT_EQ(reloaded.nodes.size(), folded.nodes.size());
}

// A hand-sized case: y = BN(conv(x)) with a 1x1 conv, checked against the formula.
TEST(FoldBatchnorm, SingleChannelFormula) {
  Graph g;
  g.opset = 13;
  g.inputs.push_back({"x", DType::f32, {1, 1, 1, 2}, {}});
  g.outputs.push_back({"y", DType::f32, {1, 1, 1, 2}, {}});
  g.initializers["w"] = make_f32({1, 1, 1, 1}, {2.0f});
  g.initializers["b"] = make_f32({1}, {1.0f});
  g.initializers["gamma"] = make_f32({1}, {3.0f});
  g.initializers["beta"] = make_f32({1}, {0.5f});
  g.initializers["mean"] = make_f32({1}, {4.0f});
  g.initializers["var"] = make_f32({1}, {0.25f});
  g.nodes.push_back(Node{"conv", "Conv", "", {"x", "w", "b"}, {"c"}, {}});
  Node bn{"bn", "BatchNormalization", "", {"c", "gamma", "beta", "mean", "var"}, {"y"}, {}};
  bn.attrs["epsilon"].kind = Attribute::Kind::Float;
  bn.attrs["epsilon"].f = 0.0f;
  g.nodes.push_back(bn);
  ASSERT_EQ(fold_batchnorm(g), 1);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].outputs[0], "y");  // the conv took over the graph output's name
  // factor = 3 / sqrt(0.25) = 6: w' = 12, b' = (1 - 4) * 6 + 0.5 = -17.5
  EXPECT_FLOAT_EQ(g.initializer(g.nodes[0].input(1))->data<float>()[0], 12.0f);
  EXPECT_FLOAT_EQ(g.initializer(g.nodes[0].input(2))->data<float>()[0], -17.5f);
}

}  // namespace
}  // namespace qplay::quantize
