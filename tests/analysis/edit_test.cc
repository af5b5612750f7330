// Edits of quantization parameters, incremental re-evaluation (bit-exact against a full run of
// the edited model) and the exported edited model against ONNX Runtime.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "analysis/analysis_test_models.h"
#include "analysis/edits.h"
#include "analysis/layers.h"
#include "analysis/quant_grid.h"
#include "analysis/reevaluate.h"
#include "graph/quant_params.h"
#include "session/evaluate.h"

#include <nlohmann/json.hpp>

namespace qplay {
namespace {

using testing::test_sample;
using testing::kPerChannel;
using testing::kPerTensor;
using testing::shipped_model;

const QuantParam& param(const Graph& g, const std::string& tensor) {
  static std::vector<QuantParam> keep;  // list_quant_params returns by value
  keep = list_quant_params(g);
  const QuantParam* p = find_quant_param(keep, tensor);
  if (!p) throw Error("no quant param " + tensor);
  return *p;
}

Edit set_scale(const std::string& tensor, double v, int64_t channel = -1) {
  Edit e;
  e.kind = Edit::Kind::set_scale;
  e.target = tensor;
  e.value = v;
  e.channel = channel;
  return e;
}

std::string error_of(const Graph& g, const std::vector<Edit>& edits) {
  try {
    apply_edits(g, edits);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Outputs of a full run of `g` over the first n sample images (in integer mode: lowered first).
EvalResult full_run(const Graph& g, int64_t n, integer::RunMode mode = integer::RunMode::simulate) {
  Executor ex(integer::graph_for_mode(g, mode));
  EvalOptions o;
  o.limit = n;
  o.batch = 50;
  return evaluate(ex, test_sample(), o);
}

int argmax(const float* row, int64_t n) { return static_cast<int>(std::max_element(row, row + n) - row); }

TEST(EditParse, CliForms) {
  Edit e = parse_set_edit("conv2d.weight_quantized.scale[3]=0.5");
  EXPECT_EQ(e.kind, Edit::Kind::set_scale);
  EXPECT_EQ(e.target, "conv2d.weight_quantized");
  EXPECT_EQ(e.channel, 3);
  EXPECT_EQ(e.value, 0.5);
  e = parse_set_edit("activation_2.zero_point=3");
  EXPECT_EQ(e.kind, Edit::Kind::set_zero_point);
  EXPECT_EQ(e.target, "activation_2");
  e = parse_bits_edit("activation=4");
  EXPECT_EQ(e.kind, Edit::Kind::set_bits);
  EXPECT_EQ(e.value, 4);
  EXPECT_THROW(parse_set_edit("activation.scale"), Error);
  EXPECT_THROW(parse_set_edit("activation.scale=abc"), Error);
}

TEST(EditApply, ScaleEditChangesACopyOnly) {
  const auto base = shipped_model(kPerTensor);
  const float before = param(*base, "activation_2").scales[0];
  const EditedGraph edited = apply_edits_tracked(*base, {set_scale("activation_2", 0.07)});
  EXPECT_FLOAT_EQ(param(edited.graph, "activation_2").scales[0], 0.07f);
  EXPECT_EQ(param(*base, "activation_2").scales[0], before);
  EXPECT_EQ(edited.dirty.count(param(edited.graph, "activation_2").scale_name), 1u);
  // Per channel: one channel only.
  const auto pc = shipped_model(kPerChannel);
  const QuantParam w = param(*pc, "conv2d_3.weight_quantized");
  const Graph g = apply_edits(*pc, {set_scale(w.tensor, 0.25, 1)});
  const QuantParam e = param(g, w.tensor);
  EXPECT_EQ(e.scales[0], w.scales[0]);
  EXPECT_EQ(e.scales[1], 0.25f);
  // Reset: the empty list gives the model back.
  EXPECT_EQ(apply_edits(*base, {}).nodes.size(), base->nodes.size());
}

TEST(EditApply, InvalidEditsThrowNamingTensorAndValue) {
  const Graph& g = *shipped_model(kPerTensor);
  EXPECT_NE(error_of(g, {set_scale("nope", 1)}).find("'nope'"), std::string::npos);
  EXPECT_NE(error_of(g, {set_scale("activation", 0)}).find("activation.scale = 0"), std::string::npos);
  EXPECT_NE(error_of(g, {set_scale("activation", NAN)}).find("activation.scale = nan"), std::string::npos);
  EXPECT_NE(error_of(g, {parse_set_edit("activation.zero_point=256")}).find("activation.zero_point = 256"),
            std::string::npos);
  EXPECT_NE(error_of(g, {parse_bits_edit("activation=9")}).find("activation bits = 9"), std::string::npos);
  EXPECT_NE(error_of(g, {parse_bits_edit("conv2d.bias_quantized=4")}).find("int32"), std::string::npos);
  EXPECT_NE(error_of(g, {bypass_edit("conv99")}).find("'conv99'"), std::string::npos);
  EXPECT_NE(error_of(g, {set_scale("activation", 1, 5)}).find("channel 5"), std::string::npos);
}

TEST(EditApply, BitsNarrowWeightCodesAndActivationRange) {
  const Graph& g = *shipped_model(kPerTensor);
  const Graph e = apply_edits(g, {parse_bits_edit("conv2d_1.weight_quantized=4"), parse_bits_edit("activation_1=3")});
  const Tensor& w = *e.initializer("conv2d_1.weight_quantized");
  const auto [lo, hi] = std::minmax_element(w.data<int8_t>(), w.data<int8_t>() + w.numel());
  EXPECT_GE(*lo, -8);
  EXPECT_LE(*hi, 7);
  EXPECT_NEAR(param(e, "conv2d_1.weight_quantized").scales[0], param(g, "conv2d_1.weight_quantized").scales[0] * 17.0,
              1e-6);
  // The activation's codes stay within 0..7 on real images.
  const ValueInfo& in = e.inputs[0];
  Executor ex(std::make_shared<const Graph>(e));
  std::map<std::string, Tensor> feeds{{in.name, make_image_batch(test_sample(), 0, 4, image_layout_for(in))}};
  int max_code = -1;
  ex.run(feeds, [&](int, const std::string& v, const Tensor& t) {
    if (v == "activation_1_q" || (t.dtype == DType::u8 && v.rfind("activation_1", 0) == 0))
      max_code = std::max<int>(max_code, *std::max_element(t.data<uint8_t>(), t.data<uint8_t>() + t.numel()));
  });
  EXPECT_GE(max_code, 0);
  EXPECT_LE(max_code, 7);
  // Narrowing again starts from the narrowed grid's clip, not a second Clip.
  const Graph twice = apply_edits(e, {parse_bits_edit("activation_1=5")});
  EXPECT_EQ(twice.nodes.size(), e.nodes.size());
}

TEST(EditApply, BypassMakesTheLayerReadFloat) {
  const Graph& g = *shipped_model(kPerTensor);
  const Graph e = apply_edits(g, {bypass_edit("conv2d_1")});
  const Node& conv = e.nodes[e.find_node("conv2d_1")];
  for (const auto& in : conv.inputs) {
    const int p = e.producer_of(in);
    EXPECT_TRUE(p < 0 || e.nodes[p].op_type != "DequantizeLinear") << in;
  }
  EXPECT_EQ(e.initializer(conv.input(1))->dtype, DType::f32);
  EXPECT_EQ(group_layers(e).size(), 14u);
}

// Edits at the first, a middle and the last layer: the incremental path computes exactly what
// a full run of the edited model computes, from one cache of the base model.
TEST(EditReevaluate, BitExactAgainstFullRunFor200Images) {
  const auto base = shipped_model(kPerTensor);
  ReevalOptions o;
  o.limit = 200;
  const BaseCache cache = capture_base(base, test_sample(), o);
  EXPECT_GT(cache.bytes, 0u);
  EXPECT_EQ(std::memcmp(cache.outputs.data(), full_run(*base, 200).outputs.data(), cache.outputs.size() * 4), 0);

  const std::vector<std::vector<Edit>> cases = {
      {set_scale("conv2d.weight_quantized", 0.0002)},                      // first layer
      {parse_bits_edit("activation_3=5"), bypass_edit("conv2d_4")},          // middle
      {set_scale("dense.weight_quantized", 0.03), bypass_edit("dense")},     // last
      // Last stage: the residual Add's other addend is a cached checkpoint, whose
      // DequantizeLinear the recomputation runs first so the conv -> Add fusion takes it.
      {set_scale("conv2d_7.weight_quantized", 0.0016)},
      // Residual branch; with the same scale a zero point moves only the clipping bounds.
      {parse_set_edit("conv2d_2.zero_point=40")},
  };
  for (const auto& edits : cases) {
    SCOPED_TRACE(edit_str(edits[0]));
    const EditedGraph edited = apply_edits_tracked(*base, edits);
    const Reevaluation r = reevaluate(cache, edited);
    const EvalResult full = full_run(edited.graph, 200);
    ASSERT_EQ(r.outputs.size(), full.outputs.size());
    EXPECT_EQ(std::memcmp(r.outputs.data(), full.outputs.data(), r.outputs.size() * sizeof(float)), 0);
    EXPECT_EQ(r.correct, full.correct);
    EXPECT_NE(std::memcmp(r.outputs.data(), cache.outputs.data(), r.outputs.size() * sizeof(float)), 0);
    EXPECT_LT(r.recomputed_nodes.size(), edited.graph.nodes.size());
    EXPECT_LE(r.fed_bytes, r.cache_bytes);
  }
  // The last layer's edit recomputes only the tail.
  const Reevaluation tail = reevaluate(cache, apply_edits_tracked(*base, cases[2]));
  EXPECT_LE(tail.recomputed_nodes.size(), 10u);
  // Reset: nothing recomputed, the base outputs.
  const Reevaluation reset = reevaluate(cache, apply_edits_tracked(*base, {}));
  EXPECT_TRUE(reset.recomputed_nodes.empty());
  EXPECT_EQ(reset.outputs, cache.outputs);
}

// A version's checkpoints (the cache's, overlaid with those reevaluate(keep_codes) recomputed)
// are exactly what capturing the edited model itself keeps, tensor for tensor.
void expect_checkpoints_of_edited_model(const BaseCache& cache, const EditedGraph& edited, const Reevaluation& r) {
  ReevalOptions o = cache.options;
  o.limit = cache.images;
  const BaseCache full = capture_base(std::make_shared<const Graph>(edited.graph), test_sample(), o);
  ASSERT_EQ(r.recomputed_checkpoints.size(), cache.batches.size());
  ASSERT_EQ(full.batches.size(), cache.batches.size());
  size_t recomputed = 0;
  for (size_t b = 0; b < full.batches.size(); ++b)
    for (const auto& [value, expected] : full.batches[b]) {
      SCOPED_TRACE(value);
      const auto it = r.recomputed_checkpoints[b].find(value);
      recomputed += it != r.recomputed_checkpoints[b].end();
      const Tensor* got = it != r.recomputed_checkpoints[b].end() ? &it->second : nullptr;
      if (got == nullptr && cache.batches[b].count(value)) got = &cache.batches[b].at(value);
      ASSERT_NE(got, nullptr);
      EXPECT_EQ(got->dtype, expected.dtype);
      EXPECT_EQ(got->shape, expected.shape);
      EXPECT_TRUE(got->bytes == expected.bytes);
    }
  EXPECT_GT(recomputed, 0u);
}

const std::vector<std::vector<Edit>>& edits_at_three_depths() {
  static const std::vector<std::vector<Edit>> cases = {
      {set_scale("conv2d.weight_quantized", 0.0002)},                   // first layer
      {parse_bits_edit("activation_3=5"), bypass_edit("conv2d_4")},     // middle
      {parse_set_edit("activation_6.scale=0.2")},                        // last stage
      {set_scale("dense.weight_quantized", 0.03)},                       // last layer
  };
  return cases;
}

// keep_codes runs without a ValueHook (the kept codes are outputs of the recomputed sub-graph):
// the codes and the outputs are still those of a full run of the edited model.
TEST(EditReevaluate, KeptCodesEqualThoseOfTheEditedModel) {
  const auto base = shipped_model(kPerTensor);
  ReevalOptions o;
  o.limit = 120;
  const BaseCache cache = capture_base(base, test_sample(), o);
  for (const auto& edits : edits_at_three_depths()) {
    SCOPED_TRACE(edit_str(edits[0]));
    const EditedGraph edited = apply_edits_tracked(*base, edits);
    const Reevaluation with_codes = reevaluate(cache, edited, nullptr, true);
    EXPECT_EQ(with_codes.outputs, reevaluate(cache, edited).outputs);
    EXPECT_EQ(std::memcmp(with_codes.outputs.data(), full_run(edited.graph, 120).outputs.data(),
                          with_codes.outputs.size() * sizeof(float)),
              0);
    expect_checkpoints_of_edited_model(cache, edited, with_codes);
  }
}

// Integer mode: a cache of the lowered base, edited models lowered alike; the result is a full
// integer-mode run of the edited model, bit for bit, and the kept codes are its codes.
TEST(EditReevaluate, IntegerModeBitExactAgainstFullIntegerRun) {
  const auto base = shipped_model(kPerTensor);
  ReevalOptions o;
  o.limit = 150;
  o.mode = integer::RunMode::integer;
  const BaseCache cache = capture_base(base, test_sample(), o);
  const EvalResult base_full = full_run(*base, 150, integer::RunMode::integer);
  EXPECT_EQ(std::memcmp(cache.outputs.data(), base_full.outputs.data(), cache.outputs.size() * 4), 0);
  // Integer mode computes other outputs than simulate mode (or this test would prove nothing).
  EXPECT_NE(std::memcmp(cache.outputs.data(), full_run(*base, 150).outputs.data(), cache.outputs.size() * 4), 0);

  for (const auto& edits : edits_at_three_depths()) {
    SCOPED_TRACE(edit_str(edits[0]));
    const EditedGraph edited = apply_edits_tracked(*base, edits);
    const Reevaluation r = reevaluate(cache, edited, nullptr, true);
    const EvalResult full = full_run(edited.graph, 150, integer::RunMode::integer);
    ASSERT_EQ(r.outputs.size(), full.outputs.size());
    EXPECT_EQ(std::memcmp(r.outputs.data(), full.outputs.data(), r.outputs.size() * sizeof(float)), 0);
    EXPECT_EQ(r.correct, full.correct);
    EXPECT_NE(std::memcmp(r.outputs.data(), cache.outputs.data(), r.outputs.size() * sizeof(float)), 0);
    EXPECT_LT(r.recomputed_nodes.size(), static_cast<size_t>(r.total_nodes));
    expect_checkpoints_of_edited_model(cache, edited, r);
  }
  // The last layer's edit recomputes only the tail: its DQs, the Gemm (left in float) and Softmax.
  const Reevaluation tail = reevaluate(cache, apply_edits_tracked(*base, edits_at_three_depths().back()));
  EXPECT_LE(tail.recomputed_nodes.size(), 5u);
  const Reevaluation reset = reevaluate(cache, apply_edits_tracked(*base, {}));
  EXPECT_TRUE(reset.recomputed_nodes.empty());
  EXPECT_EQ(reset.outputs, cache.outputs);
}

// The exported edited model, run by ONNX Runtime, agrees with qplay's run of it.
TEST(EditOrt, ExportedEditedModelAgreesWithOnnxRuntime) {
  const auto base = shipped_model(kPerChannel);
  const std::vector<Edit> edits = {set_scale("activation_2", param(*base, "activation_2").scales[0] * 1.5),
                                   parse_bits_edit("conv2d_3.weight_quantized=4"), parse_bits_edit("activation_4=6"),
                                   bypass_edit("conv2d_6")};
  const Graph edited = apply_edits(*base, edits);
  const std::string path = testing::output_dir("edit") + "/edited.onnx";
  testing::write_binary(path, export_onnx_bytes(edited));

  const EvalResult ours = full_run(load_onnx(path), 200);
  const EvalResult before = full_run(*base, 200);
  EXPECT_NE(std::memcmp(ours.outputs.data(), before.outputs.data(), ours.outputs.size() * sizeof(float)), 0);

  const std::vector<float> ort = testing::ort_outputs(path, default_test_sample_path(), 200, false);
  ASSERT_EQ(ort.size(), ours.outputs.size());
  const int64_t n = ours.images, k = ours.classes;
  int64_t same_top1 = 0;
  float worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    same_top1 += argmax(&ours.outputs[i * k], k) == argmax(&ort[i * k], k);
    for (int64_t c = 0; c < k; ++c) worst = std::max(worst, std::fabs(ours.outputs[i * k + c] - ort[i * k + c]));
  }
  EXPECT_GE(same_top1 * 1000, n * 995) << same_top1 << "/" << n;
  EXPECT_LE(worst, 0.05f);
  RecordProperty("max_abs_diff", std::to_string(worst));
}

}  // namespace
}  // namespace qplay

namespace qplay {
namespace {

TEST(EditCli, WritesModelEvaluatesAndFailsInOneLine) {
  const std::string out = testing::output_dir("edit") + "/cli_edited.onnx";
  const std::string model = testing::model_path(testing::kPerTensor);
  std::string output;
  ASSERT_EQ(testing::run_command(std::string(QPLAY_BINARY) + " edit " + model + " -o " + out +
                                     " --set activation_2.scale=0.08 --bypass dense --eval --limit 50 --json",
                                 output),
            0)
      << output;
  const auto j = nlohmann::json::parse(output);
  EXPECT_EQ(j["evaluation"]["images"], 50);
  EXPECT_EQ(j["edits"].size(), 2u);
  EXPECT_EQ(load_onnx(out).nodes.size(), j["nodes_after"].get<size_t>());

  EXPECT_EQ(testing::run_command(std::string(QPLAY_BINARY) + " edit " + model + " --set activation_2.scale=nan", output),
            1);
  EXPECT_EQ(output, "qplay: error: activation_2.scale = nan: a scale must be finite and greater than 0\n");
}

}  // namespace
}  // namespace qplay
