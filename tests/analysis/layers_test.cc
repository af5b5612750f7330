// Layer grouping on the shipped models (FP32, FP32 with BatchNormalization, QDQ per tensor and
// per channel) and on a QOperator graph.
#include "analysis/layers.h"

#include <gtest/gtest.h>

#include <map>

#include "analysis/analysis_test_models.h"
#include "analysis/compare.h"
#include "analysis/reports.h"
#include "runtime/executor.h"

namespace qplay {
namespace {

using testing::shipped_model;

std::map<std::string, int> kind_counts(const std::vector<Layer>& layers) {
  std::map<std::string, int> counts;
  for (const auto& L : layers) counts[L.kind]++;
  return counts;
}

std::vector<std::string> node_names(const Graph& g, const Layer& L) {
  std::vector<std::string> names;
  for (int n : L.nodes) names.push_back(g.nodes[n].name);
  return names;
}

const Layer& layer_named(const std::vector<Layer>& layers, const std::string& name) {
  const int i = find_layer(layers, name);
  if (i < 0) throw Error("no layer " + name);
  return layers[i];
}

using Strings = std::vector<std::string>;

TEST(Layers, EveryShippedModelHas14LayersOfTheSameKinds) {
  // 9 Conv (+Relu), 3 Add (+Relu), 1 AveragePool, 1 Gemm; Transpose, Flatten and Softmax are
  // not layers of their own.
  const std::map<std::string, int> expected{{"conv", 9}, {"add", 3}, {"pool", 1}, {"gemm", 1}};
  for (const char* file : {testing::kFp32, testing::kFp32Bn, testing::kPerTensor, testing::kPerChannel}) {
    const auto layers = group_layers(*shipped_model(file));
    EXPECT_EQ(layers.size(), 14u) << file;
    EXPECT_EQ(kind_counts(layers), expected) << file;
    for (size_t i = 1; i < layers.size(); ++i) EXPECT_LT(layers[i - 1].compute_node, layers[i].compute_node);
  }
}

TEST(Layers, QdqConvGroupsInputDqWeightBiasReluAndOutputQdq) {
  const Graph& g = *shipped_model(testing::kPerTensor);
  const auto layers = group_layers(g);
  const Layer& L = layer_named(layers, "conv2d_1");
  EXPECT_EQ(L.kind, "conv");
  EXPECT_EQ(L.op_type, "Conv");
  EXPECT_FALSE(L.qoperator);
  EXPECT_EQ(node_names(g, L), (Strings{"activation_DequantizeLinear", "conv2d_1.weight_DequantizeLinear",
                                       "conv2d_1.bias_DequantizeLinear", "conv2d_1", "activation_1",
                                       "activation_1_QuantizeLinear", "activation_1_DequantizeLinear"}));
  EXPECT_EQ(L.inputs, Strings{"activation"});  // the float value entering the input Q
  EXPECT_EQ(L.input_is_codes, std::vector<bool>{false});
  EXPECT_EQ(L.output, "activation_1");  // after the fused Relu, before the Q
  EXPECT_EQ(L.output_codes, "activation_1_q");
  EXPECT_EQ(L.output_dequantized, "activation_1_dq");
  EXPECT_EQ(L.weight, "conv2d_1.weight_quantized");
  EXPECT_EQ(L.bias, "conv2d_1.bias_quantized");
  EXPECT_EQ(L.quant_params,
            (Strings{"activation", "conv2d_1.weight_quantized", "conv2d_1.bias_quantized", "activation_1"}));
  EXPECT_EQ(layer_result(L), "activation_1_dq");

  // Every name is a parameter set list_quant_params knows.
  const auto params = list_quant_params(g);
  for (const auto& name : L.quant_params) EXPECT_NE(find_quant_param(params, name), nullptr) << name;
}

TEST(Layers, QdqConvWithoutReluAddAveragePoolAndGemm) {
  const Graph& g = *shipped_model(testing::kPerChannel);
  const auto layers = group_layers(g);

  const Layer& conv = layer_named(layers, "conv2d_2");  // no Relu: Conv -> Q directly
  EXPECT_EQ(conv.output, "conv2d_2");
  EXPECT_EQ(conv.output_codes, "conv2d_2_q");
  EXPECT_EQ(conv.weight_params, "conv2d_2.weight_quantized");
  const auto params = list_quant_params(g);
  EXPECT_EQ(find_quant_param(params, conv.weight_params)->axis, 0);  // per channel

  const Layer& add = layer_named(layers, "add");  // two DQ inputs, then Relu
  EXPECT_EQ(add.inputs, (Strings{"activation", "conv2d_2"}));
  EXPECT_EQ(add.input_params, (Strings{"activation", "conv2d_2"}));
  EXPECT_EQ(add.output, "activation_2");
  EXPECT_EQ(add.weight, "");
  EXPECT_EQ(add.quant_params, (Strings{"activation", "conv2d_2", "activation_2"}));

  const Layer& pool = layer_named(layers, "average_pooling2d");  // reaches its Q through Flatten
  EXPECT_EQ(pool.inputs, Strings{"activation_6"});
  EXPECT_EQ(pool.output, "flatten");
  EXPECT_EQ(pool.output_codes, "flatten_q");
  EXPECT_EQ(node_names(g, pool), (Strings{"activation_6_DequantizeLinear", "average_pooling2d", "flatten",
                                          "flatten_QuantizeLinear", "flatten_DequantizeLinear"}));

  const Layer& dense = layer_named(layers, "dense");  // last layer: no output Q
  EXPECT_EQ(dense.kind, "gemm");
  EXPECT_EQ(dense.inputs, Strings{"flatten"});
  EXPECT_EQ(dense.output, "dense_logits");
  EXPECT_EQ(dense.output_codes, "");
  EXPECT_EQ(layer_result(dense), "dense_logits");
  EXPECT_EQ(dense.quant_params, (Strings{"flatten", "dense.weight_quantized", "dense.bias_quantized"}));
}

TEST(Layers, Fp32LayersFuseBatchNormalizationAndRelu) {
  const Graph& g = *shipped_model(testing::kFp32Bn);
  const auto layers = group_layers(g);
  const Layer& conv = layer_named(layers, "conv2d");
  EXPECT_EQ(node_names(g, conv), (Strings{"conv2d", "batch_normalization", "activation"}));
  EXPECT_EQ(conv.output, "activation");
  EXPECT_EQ(conv.inputs, Strings{"input_nchw"});
  EXPECT_EQ(conv.weight, "conv2d.weight");
  EXPECT_TRUE(conv.quant_params.empty());
  EXPECT_EQ(layer_named(layers, "conv2d_2").output, "batch_normalization_2");  // BN, no Relu
  EXPECT_EQ(layer_named(layers, "add_1").inputs, (Strings{"conv2d_5", "batch_normalization_4"}));

  const Graph& folded = *shipped_model(testing::kFp32);
  const auto folded_layers = group_layers(folded);
  EXPECT_EQ(layer_named(folded_layers, "conv2d_2").output, "conv2d_2");
  // Without a Q behind it an FP32 pool keeps its own output (Flatten stays outside).
  EXPECT_EQ(layer_named(folded_layers, "average_pooling2d").output, "average_pooling2d");
  EXPECT_EQ(layer_result(layer_named(folded_layers, "conv2d")), "activation");
}

TEST(Layers, QOperatorNodesAreLayersWithCodesOperands) {
  const Graph g = testing::tiny_qoperator_graph();
  const auto layers = group_layers(g);
  ASSERT_EQ(layers.size(), 2u);
  const Layer& first = layers[0];
  EXPECT_EQ(first.name, "qconv1");
  EXPECT_EQ(first.kind, "conv");
  EXPECT_TRUE(first.qoperator);
  EXPECT_EQ(first.inputs, Strings{"x"});  // the float value behind the QuantizeLinear
  EXPECT_EQ(first.input_is_codes, std::vector<bool>{false});
  EXPECT_EQ(first.weight, "w1");
  EXPECT_EQ(first.bias, "b1");
  EXPECT_EQ(first.output, "");
  EXPECT_EQ(first.output_codes, "hq");
  EXPECT_EQ(first.output_dequantized, "");
  EXPECT_EQ(layer_result(first), "hq");
  EXPECT_EQ(first.quant_params, (Strings{"x", "w1", "hq"}));

  const Layer& second = layers[1];
  EXPECT_EQ(second.inputs, Strings{"hq"});  // codes straight from qconv1: no float tensor exists
  EXPECT_EQ(second.input_is_codes, std::vector<bool>{true});
  EXPECT_EQ(second.input_params, Strings{"hq"});
  EXPECT_EQ(second.output_codes, "zq");
  EXPECT_EQ(second.output_dequantized, "y");
  EXPECT_EQ(node_names(g, second), (Strings{"qconv2", "dequantize_z"}));
}

TEST(Layers, IsolatedQOperatorLayerReproducesTheModelFromFloatInputs) {
  // qconv2 alone, fed the dequantized output of qconv1: the synthesized QuantizeLinear must give
  // back qconv1's codes, so the isolated output equals the whole model's output exactly.
  auto g = std::make_shared<const Graph>(testing::tiny_qoperator_graph());
  const auto params = list_quant_params(*g);
  const auto layers = group_layers(*g, params);
  const Executor whole(g);
  Tensor x(DType::f32, {1, 1, 4, 4});
  for (int i = 0; i < 16; ++i) x.data<float>()[i] = 0.37f * static_cast<float>(i % 7) - 1.1f;
  std::map<std::string, Tensor> hidden;
  const auto out = whole.run({{"x", x}}, [&](int, const std::string& v, const Tensor& t) { hidden[v] = t; });

  const IsolatedLayer second = isolate_layer(*g, layers[1], params);
  EXPECT_EQ(second.inputs, Strings{"hq_float"});
  EXPECT_EQ(second.result, "y");
  EXPECT_EQ(second.codes, "zq");
  const QuantGrid hgrid = quant_grid(*find_quant_param(params, "hq"));
  const Executor iso(std::make_shared<const Graph>(second.graph));
  const auto iso_out = iso.run({{"hq_float", dequantize(hidden.at("hq"), hgrid)}});
  ASSERT_EQ(iso_out.at("y").bytes, out.at("y").bytes);
  EXPECT_EQ(iso_out.at("zq").bytes, hidden.at("zq").bytes);

  // qconv1 has no DQ of its own: its isolated graph dequantizes the codes itself.
  const IsolatedLayer first = isolate_layer(*g, layers[0], params);
  EXPECT_EQ(first.inputs, Strings{"x"});
  EXPECT_EQ(first.result, "hq_isolated_dequantized");
  const auto first_out = Executor(std::make_shared<const Graph>(first.graph)).run({{"x", x}});
  EXPECT_EQ(first_out.at("hq_isolated_dequantized").bytes, dequantize(hidden.at("hq"), hgrid).bytes);
}

TEST(Layers, JsonListsEveryLayer) {
  const Graph& g = *shipped_model(testing::kPerTensor);
  const auto j = layers_json(g, group_layers(g));
  ASSERT_EQ(j.size(), 14u);
  EXPECT_EQ(j[0]["name"], "conv2d");
  EXPECT_EQ(j[0]["inputs"][0], "input_nchw");
  EXPECT_EQ(j[0]["output_codes"], "activation_q");
  EXPECT_EQ(j[0]["nodes"].size(), 7u);
}

}  // namespace
}  // namespace qplay
