// Matching quantized layers to FP32 layers: the four shipped pairs (BatchNormalization folded
// and not), then FP32 models whose names were changed so only topology can pair them.
#include "analysis/match.h"

#include <gtest/gtest.h>

#include <map>

#include "analysis/analysis_test_models.h"

namespace qplay {
namespace {

using testing::shipped_model;
using Strings = std::vector<std::string>;

struct Matched {
  std::vector<Layer> fp32_layers, quantized_layers;
  LayerMatching m;
  // quantized layer name -> its FP32 partner
  const Layer& fp32_of(const std::string& quantized_name) const {
    const int q = find_layer(quantized_layers, quantized_name);
    const LayerPair* p = pair_of_quantized(m, q);
    if (p == nullptr) throw Error("unpaired " + quantized_name);
    return fp32_layers[p->fp32];
  }
  const LayerPair& pair(const std::string& quantized_name) const {
    return *pair_of_quantized(m, find_layer(quantized_layers, quantized_name));
  }
};

Matched match(const Graph& fp32, const Graph& quantized) {
  Matched r;
  r.fp32_layers = group_layers(fp32);
  r.quantized_layers = group_layers(quantized);
  r.m = match_layers(fp32, r.fp32_layers, quantized, r.quantized_layers);
  return r;
}

TEST(Match, AllFourShippedPairsMatchEveryLayerByTopologyAndName) {
  for (const char* f : {testing::kFp32, testing::kFp32Bn})
    for (const char* q : {testing::kPerTensor, testing::kPerChannel}) {
      const Matched r = match(*shipped_model(f), *shipped_model(q));
      SCOPED_TRACE(std::string(f) + " vs " + q);
      EXPECT_EQ(r.m.pairs.size(), 14u);
      EXPECT_TRUE(r.m.unmatched_quantized.empty());
      EXPECT_TRUE(r.m.unmatched_fp32.empty());
      for (const auto& p : r.m.pairs) {
        EXPECT_TRUE(p.same_sources);
        EXPECT_TRUE(p.same_name);
        EXPECT_EQ(r.quantized_layers[p.quantized].name, r.fp32_layers[p.fp32].name);
      }
      EXPECT_EQ(r.pair("conv2d").fp32_inputs, Strings{"input_nchw"});
      EXPECT_EQ(r.pair("dense").fp32_inputs, Strings{"flatten"});
      EXPECT_EQ(r.fp32_of("average_pooling2d").output, "average_pooling2d");
    }
}

TEST(Match, BatchNormalizationModelPairsWithTheBnOutputs) {
  const Matched r = match(*shipped_model(testing::kFp32Bn), *shipped_model(testing::kPerChannel));
  EXPECT_EQ(r.fp32_of("conv2d").output, "activation");               // Conv -> BN -> Relu
  EXPECT_EQ(r.fp32_of("conv2d_2").output, "batch_normalization_2");  // Conv -> BN
  EXPECT_EQ(r.fp32_of("conv2d_7").output, "batch_normalization_6");
  EXPECT_EQ(r.fp32_of("conv2d_8").output, "conv2d_8");  // shortcut conv has no BN
  EXPECT_EQ(r.pair("add_1").fp32_inputs, (Strings{"conv2d_5", "batch_normalization_4"}));
  EXPECT_EQ(r.pair("add_2").fp32_inputs, (Strings{"conv2d_8", "batch_normalization_6"}));

  const Matched folded = match(*shipped_model(testing::kFp32), *shipped_model(testing::kPerTensor));
  EXPECT_EQ(folded.fp32_of("conv2d_2").output, "conv2d_2");
  EXPECT_EQ(folded.pair("add_1").fp32_inputs, (Strings{"conv2d_5", "conv2d_4"}));
}

// Renames every node and every value except the graph's inputs and outputs.
Graph renamed(const Graph& g, std::map<std::string, std::string>& original_node_name) {
  Graph r = g;
  std::map<std::string, std::string> value;
  auto rename = [&](const std::string& v) {
    for (const auto& io : g.inputs)
      if (io.name == v) return v;
    for (const auto& io : g.outputs)
      if (io.name == v) return v;
    auto [it, inserted] = value.try_emplace(v, "t" + std::to_string(value.size()));
    return it->second;
  };
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    Node& n = r.nodes[i];
    original_node_name["node_" + std::to_string(i)] = n.name;
    n.name = "node_" + std::to_string(i);
    for (auto& in : n.inputs)
      if (!in.empty()) in = rename(in);
    for (auto& out : n.outputs) out = rename(out);
  }
  r.initializers.clear();
  for (const auto& [name, t] : g.initializers) r.initializers[rename(name)] = t;
  return r;
}

TEST(Match, RenamedFp32ModelWithSwappedAddOperandsStillPairsByTopology) {
  std::map<std::string, std::string> original;
  Graph fp32 = renamed(*shipped_model(testing::kFp32Bn), original);
  // Swap the operands of add_1 (now node_17): the pair must follow the sources, not positions.
  Node& add1 = fp32.nodes[fp32.find_node("node_17")];
  ASSERT_EQ(original["node_17"], "add_1");
  const std::string conv5 = add1.inputs[0], bn4 = add1.inputs[1];
  std::swap(add1.inputs[0], add1.inputs[1]);

  const Matched r = match(fp32, *shipped_model(testing::kPerTensor));
  EXPECT_EQ(r.m.pairs.size(), 14u);
  for (const auto& p : r.m.pairs) {
    EXPECT_TRUE(p.same_sources);
    EXPECT_FALSE(p.same_name);
    EXPECT_EQ(original[r.fp32_layers[p.fp32].name], r.quantized_layers[p.quantized].name);
  }
  EXPECT_EQ(r.pair("add_1").fp32_inputs, (Strings{conv5, bn4}));  // quantized order: conv2d_5, conv2d_4
}

TEST(Match, MisleadingNamesLoseToTopology) {
  // Exchange the names of conv2d_4 and conv2d_5 in the FP32 model: each quantized conv must
  // still pair with the node that computes the same thing.
  Graph fp32 = *shipped_model(testing::kFp32);
  std::swap(fp32.nodes[fp32.find_node("conv2d_4")].name, fp32.nodes[fp32.find_node("conv2d_5")].name);
  const Matched r = match(fp32, *shipped_model(testing::kPerChannel));
  EXPECT_EQ(r.m.pairs.size(), 14u);
  EXPECT_EQ(r.fp32_of("conv2d_4").name, "conv2d_5");
  EXPECT_EQ(r.fp32_of("conv2d_4").weight, "conv2d_4.weight");
  EXPECT_FALSE(r.pair("conv2d_4").same_name);
  EXPECT_TRUE(r.pair("conv2d_4").same_sources);
}

TEST(Match, LayerSourcesFollowQdqAndShapeNodes) {
  const Graph& q = *shipped_model(testing::kPerTensor);
  const auto layers = group_layers(q);
  const auto sources = layer_sources(q, layers);
  auto src = [&](const std::string& name) {
    Strings out;
    for (int s : sources[find_layer(layers, name)]) out.push_back(s < 0 ? "<input>" : layers[s].name);
    return out;
  };
  EXPECT_EQ(src("conv2d"), Strings{"<input>"});  // through Q/DQ and the Transpose
  EXPECT_EQ(src("add"), (Strings{"conv2d", "conv2d_2"}));
  EXPECT_EQ(src("conv2d_5"), Strings{"add"});
  EXPECT_EQ(src("dense"), Strings{"average_pooling2d"});
}

TEST(Match, UnmatchedLayersAreReported) {
  // The FP32 model's dense layer turned into a node that is no layer: the quantized dense
  // finds no partner and is reported.
  Graph cut = *shipped_model(testing::kFp32);
  cut.nodes[cut.find_node("dense")].op_type = "Identity";
  const Matched r = match(cut, *shipped_model(testing::kPerChannel));
  EXPECT_EQ(r.m.pairs.size(), 13u);
  ASSERT_EQ(r.m.unmatched_quantized.size(), 1u);
  EXPECT_EQ(r.quantized_layers[r.m.unmatched_quantized[0]].name, "dense");
  EXPECT_TRUE(r.m.unmatched_fp32.empty());
}

TEST(Match, GemmAndMatMulAreOneFamily) {
  // Quantizers may turn Gemm into MatMul (or QLinearMatMul): the layers still pair.
  Graph fp32 = *shipped_model(testing::kFp32);
  fp32.nodes[fp32.find_node("dense")].op_type = "MatMul";
  const Matched r = match(fp32, *shipped_model(testing::kPerChannel));
  EXPECT_EQ(r.m.pairs.size(), 14u);
  EXPECT_EQ(r.fp32_of("dense").op_type, "MatMul");
}

}  // namespace
}  // namespace qplay
