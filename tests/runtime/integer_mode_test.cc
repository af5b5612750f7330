// Integer mode end to end: the lowering pass on hand-built graphs (before and after) and on the
// shipped models, and the lowered ResNet-8 models against ONNX Runtime and against simulate mode
// on the first 1,000 test images. The agreement figures are printed and recorded as properties.
#include "runtime/integer/integer_mode.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "graph/validate.h"
#include "io/onnx_model.h"
#include "runtime/integer/lower.h"
#include "session/evaluate.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using integer::RunMode;
using testing::first_1000_test_images;
using testing::model_path;

// ---- building small graphs -----------------------------------------------------------------

Node make_node(const std::string& name, const std::string& op, std::vector<std::string> inputs,
               std::vector<std::string> outputs) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

void set_ints(Node& n, const char* key, std::vector<int64_t> v) {
  n.attrs[key].kind = Attribute::Kind::Ints;
  n.attrs[key].ints = std::move(v);
}

void set_int(Node& n, const char* key, int64_t v) {
  n.attrs[key].kind = Attribute::Kind::Int;
  n.attrs[key].i = v;
}

Tensor scalar_u8(uint8_t v) {
  Tensor t(DType::u8, {});
  t.bytes[0] = v;
  return t;
}

Tensor scalar_i8(int8_t v) {
  Tensor t(DType::i8, {});
  t.bytes[0] = static_cast<uint8_t>(v);
  return t;
}

Tensor random_i8(Shape shape, std::mt19937& rng) {
  Tensor t(DType::i8, std::move(shape));
  std::uniform_int_distribution<int> d(-127, 127);
  for (auto& b : t.bytes) b = static_cast<uint8_t>(static_cast<int8_t>(d(rng)));
  return t;
}

Tensor random_f32(Shape shape, std::mt19937& rng, float lo, float hi) {
  Tensor t(DType::f32, std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

int count_ops(const Graph& g, const std::string& op_type) {
  return static_cast<int>(
      std::count_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.op_type == op_type; }));
}

std::map<std::string, Tensor> run_graph(const Graph& g, const std::map<std::string, Tensor>& feeds) {
  return Executor(std::make_shared<const Graph>(g)).run(feeds);
}

// A small QDQ network in the layout ONNX Runtime's quantizer writes:
//   x -> Q -> DQ -> Conv(DQ w per channel, DQ bias) -> Relu -> Q(r) -> DQ --------------+
//             DQ -> Conv 1x1 stride 1 (per tensor)  -> Q(p) -> DQ ---------------------- Add -> Relu -> Q(s)
//   -> DQ -> GlobalAveragePool -> Flatten -> Q(f) -> DQ -> MatMul(DQ w2) -> Q(y) -> DQ -> out
// Quantized values r_q, s_q and y_q are graph outputs too, to compare codes.
Graph tiny_qdq_graph(std::mt19937& rng) {
  Graph g;
  g.name = "tiny";
  g.opset = 13;
  g.inputs = {{"x", DType::f32, {-1, 4, 6, 6}, {"N", "", "", ""}}};
  auto& init = g.initializers;
  init["x_s"] = make_scalar_f32(0.02f);
  init["x_zp"] = scalar_u8(128);
  init["w1"] = random_i8({6, 4, 3, 3}, rng);
  std::vector<float> w1_s = {0.004f, 0.006f, 0.003f, 0.005f, 0.007f, 0.0045f};
  init["w1_s"] = make_f32({6}, w1_s);
  init["w1_zp"] = Tensor(DType::i8, {6});
  Tensor b1(DType::i32, {6});
  std::vector<float> b1_s(6);
  for (int i = 0; i < 6; ++i) {
    b1.data<int32_t>()[i] = static_cast<int32_t>(rng() % 2001) - 1000;
    b1_s[i] = 0.02f * w1_s[i];
  }
  init["b1"] = b1;
  init["b1_s"] = make_f32({6}, b1_s);
  init["r_s"] = make_scalar_f32(0.03f);
  init["r_zp"] = scalar_u8(0);
  init["w2"] = random_i8({6, 4, 1, 1}, rng);
  init["w2_s"] = make_scalar_f32(0.01f);
  init["w2_zp"] = scalar_i8(0);
  init["p_s"] = make_scalar_f32(0.04f);
  init["p_zp"] = scalar_u8(131);
  init["s_s"] = make_scalar_f32(0.05f);
  init["s_zp"] = scalar_u8(0);
  init["f_s"] = make_scalar_f32(0.01f);
  init["f_zp"] = scalar_u8(3);
  init["w3"] = random_i8({6, 5}, rng);
  init["w3_s"] = make_scalar_f32(0.02f);
  init["w3_zp"] = scalar_i8(0);
  init["y_s"] = make_scalar_f32(0.015f);
  init["y_zp"] = scalar_i8(-5);

  Node conv1 = make_node("conv1", "Conv", {"x_dq", "w1_dq", "b1_dq"}, {"c1"});
  set_ints(conv1, "pads", {1, 1, 1, 1});
  Node w1_dq = make_node("w1_dq", "DequantizeLinear", {"w1", "w1_s", "w1_zp"}, {"w1_dq"});
  set_int(w1_dq, "axis", 0);
  Node b1_dq = make_node("b1_dq", "DequantizeLinear", {"b1", "b1_s"}, {"b1_dq"});
  set_int(b1_dq, "axis", 0);
  g.nodes = {
      make_node("x_q", "QuantizeLinear", {"x", "x_s", "x_zp"}, {"x_q"}),
      make_node("x_dq", "DequantizeLinear", {"x_q", "x_s", "x_zp"}, {"x_dq"}),
      w1_dq,
      b1_dq,
      conv1,
      make_node("relu1", "Relu", {"c1"}, {"r"}),
      make_node("r_q", "QuantizeLinear", {"r", "r_s", "r_zp"}, {"r_q"}),
      make_node("r_dq", "DequantizeLinear", {"r_q", "r_s", "r_zp"}, {"r_dq"}),
      make_node("w2_dq", "DequantizeLinear", {"w2", "w2_s", "w2_zp"}, {"w2_dq"}),
      make_node("conv2", "Conv", {"x_dq", "w2_dq"}, {"c2"}),
      make_node("p_q", "QuantizeLinear", {"c2", "p_s", "p_zp"}, {"p_q"}),
      make_node("p_dq", "DequantizeLinear", {"p_q", "p_s", "p_zp"}, {"p_dq"}),
      make_node("add", "Add", {"r_dq", "p_dq"}, {"sum"}),
      make_node("relu2", "Relu", {"sum"}, {"s"}),
      make_node("s_q", "QuantizeLinear", {"s", "s_s", "s_zp"}, {"s_q"}),
      make_node("s_dq", "DequantizeLinear", {"s_q", "s_s", "s_zp"}, {"s_dq"}),
      make_node("gap", "GlobalAveragePool", {"s_dq"}, {"pooled"}),
      make_node("flatten", "Flatten", {"pooled"}, {"flat"}),
      make_node("f_q", "QuantizeLinear", {"flat", "f_s", "f_zp"}, {"f_q"}),
      make_node("f_dq", "DequantizeLinear", {"f_q", "f_s", "f_zp"}, {"f_dq"}),
      make_node("w3_dq", "DequantizeLinear", {"w3", "w3_s", "w3_zp"}, {"w3_dq"}),
      make_node("matmul", "MatMul", {"f_dq", "w3_dq"}, {"mm"}),
      make_node("y_q", "QuantizeLinear", {"mm", "y_s", "y_zp"}, {"y_q"}),
      make_node("y_dq", "DequantizeLinear", {"y_q", "y_s", "y_zp"}, {"out"}),
  };
  g.outputs = {{"out", DType::f32, {-1, 5}, {}},
               {"r_q", DType::u8, {}, {}},
               {"s_q", DType::u8, {}, {}},
               {"y_q", DType::i8, {}, {}}};
  sort_topologically(g);
  validate_graph(g);
  return g;
}

// ---- the lowering pass -------------------------------------------------------------------

TEST(IntegerLowering, LeavesFp32ModelUnchanged) {
  for (const char* file : {"resnet8_fp32.onnx", "resnet8_fp32_bn.onnx"}) {
    SCOPED_TRACE(file);
    const Graph fp32 = load_onnx(model_path(file));
    const Graph lowered = lower_to_integer(fp32);
    ASSERT_EQ(lowered.nodes.size(), fp32.nodes.size());
    for (size_t i = 0; i < fp32.nodes.size(); ++i) {
      EXPECT_EQ(lowered.nodes[i].name, fp32.nodes[i].name);
      EXPECT_EQ(lowered.nodes[i].op_type, fp32.nodes[i].op_type);
      EXPECT_EQ(lowered.nodes[i].domain, fp32.nodes[i].domain);
      EXPECT_EQ(lowered.nodes[i].inputs, fp32.nodes[i].inputs);
      EXPECT_EQ(lowered.nodes[i].outputs, fp32.nodes[i].outputs);
    }
    ASSERT_EQ(lowered.initializers.size(), fp32.initializers.size());
    for (const auto& [name, t] : fp32.initializers) {
      ASSERT_TRUE(lowered.initializers.count(name)) << name;
      EXPECT_EQ(lowered.initializers.at(name).bytes, t.bytes) << name;
    }
  }
}

TEST(IntegerLowering, ResNet8QdqGroupsBecomeIntegerOpsWithTheirNames) {
  for (const char* file : {"resnet8_u8act_s8w_pertensor.onnx", "resnet8_s8act_s8w_perchannel.onnx"}) {
    SCOPED_TRACE(file);
    const Graph qdq = load_onnx(model_path(file));
    const Graph lowered = lower_to_integer(qdq);
    EXPECT_EQ(count_ops(lowered, "QConv"), 9);
    EXPECT_EQ(count_ops(lowered, "QAdd"), 3);
    EXPECT_EQ(count_ops(lowered, "QAveragePool"), 1);
    EXPECT_EQ(count_ops(lowered, "QGemm"), 1);
    EXPECT_EQ(count_ops(lowered, "Relu"), 0);              // all fused into output clamps
    EXPECT_EQ(count_ops(lowered, "DequantizeLinear"), 0);  // every group became integer
    EXPECT_EQ(count_ops(lowered, "QuantizeLinear"), 1);    // the input: float -> uint8/int8
    EXPECT_EQ(count_ops(lowered, "Transpose"), 1);         // NHWC -> NCHW, still float
    for (const Node& n : qdq.nodes) {
      if (n.op_type != "Conv" && n.op_type != "Add" && n.op_type != "Gemm" && n.op_type != "AveragePool") continue;
      const int i = lowered.find_node(n.name);
      ASSERT_GE(i, 0) << n.name << " lost its name";
      EXPECT_EQ(lowered.nodes[i].domain, "qplay") << n.name;
    }
    // The classifier keeps float logits (no Q after the Gemm); Softmax stays float.
    const Node& dense = lowered.nodes[lowered.find_node("dense")];
    EXPECT_EQ(dense.op_type, "QGemm");
    EXPECT_EQ(dense.outputs.at(0), "dense_logits");
    EXPECT_EQ(dense.inputs.size(), 7u);  // no y_scale / y_zero_point: float output
    // The pool now feeds Flatten with 8-bit data; Flatten writes what the Q after it wrote.
    const Node& flatten = lowered.nodes[lowered.find_node("flatten")];
    EXPECT_EQ(flatten.outputs.at(0), "flatten_q");
  }
}

TEST(IntegerLowering, TinyQdqGraphComputesTheSameBeforeAndAfter) {
  std::mt19937 rng(21);
  const Graph qdq = tiny_qdq_graph(rng);
  const Graph lowered = lower_to_integer(qdq);
  EXPECT_EQ(count_ops(lowered, "QConv"), 2);
  EXPECT_EQ(count_ops(lowered, "QAdd"), 1);
  EXPECT_EQ(count_ops(lowered, "QGlobalAveragePool"), 1);
  EXPECT_EQ(count_ops(lowered, "QGemm"), 1);
  EXPECT_EQ(count_ops(lowered, "DequantizeLinear"), 1);  // the final DQ -> float output stays
  EXPECT_EQ(lowered.nodes[lowered.find_node("conv1")].attr_int("relu", 0), 1);
  EXPECT_EQ(lowered.nodes[lowered.find_node("add")].attr_int("relu", 0), 1);

  std::map<std::string, Tensor> feeds;
  feeds["x"] = random_f32({3, 4, 6, 6}, rng, -2.5f, 2.5f);
  const auto before = run_graph(qdq, feeds);
  const auto after = run_graph(lowered, feeds);
  // Float requantization (simulate) and fixed point (integer) round the same real value; they
  // may differ by one code where it lies within float rounding of a half-way point, and such a
  // difference can grow by a code in the layers after it.
  const std::pair<const char*, double> tolerance[] = {{"r_q", 1.0}, {"s_q", 2.0}, {"y_q", 2.0}};
  for (const auto& [value, codes] : tolerance) {
    const Tensor& a = before.at(value);
    const Tensor& b = after.at(value);
    ASSERT_EQ(a.dtype, b.dtype) << value;
    ASSERT_EQ(a.shape, b.shape) << value;
    int64_t same = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      EXPECT_LE(std::fabs(a.at_as_double(i) - b.at_as_double(i)), codes) << value << "[" << i << "]";
      same += a.at_as_double(i) == b.at_as_double(i);
    }
    EXPECT_GE(same, a.numel() * 9 / 10) << value << ": " << same << "/" << a.numel() << " codes equal";
  }
}

// A bias whose scale is not x_scale * w_scale (what an edit of the input or weight scale leaves) is requantized to
// it, so the group stays integer; the result still agrees with the float (simulate) run of the same graph.
TEST(IntegerLowering, BiasInAnotherScaleIsRequantized) {
  std::mt19937 rng(23);
  Graph qdq = tiny_qdq_graph(rng);
  Tensor& b1_s = qdq.initializers.at("b1_s");
  for (int64_t c = 0; c < b1_s.numel(); ++c) b1_s.data<float>()[c] *= 1.37f;
  const Graph lowered = lower_to_integer(qdq);
  EXPECT_EQ(count_ops(lowered, "QConv"), 2);
  EXPECT_EQ(count_ops(lowered, "Conv"), 0);
  const Node& conv1 = lowered.nodes[lowered.find_node("conv1")];
  ASSERT_EQ(conv1.op_type, "QConv");
  const std::string& bias_name = conv1.inputs.back();
  ASSERT_NE(bias_name, "b1");
  const Tensor& requantized = lowered.initializers.at(bias_name);
  const Tensor& b1 = qdq.initializers.at("b1");
  const Tensor& w1_s = qdq.initializers.at("w1_s");
  for (int64_t c = 0; c < b1.numel(); ++c) {
    // The same real value in the accumulator's units, 0.02 * w1_s[c] (to the nearest integer).
    const double real = double{b1.data<int32_t>()[c]} * b1_s.data<float>()[c];
    const double step = double{0.02f} * w1_s.data<float>()[c];
    EXPECT_LE(std::fabs(requantized.data<int32_t>()[c] * step - real), 0.5 * step + 1e-12) << "channel " << c;
  }
  std::map<std::string, Tensor> feeds;
  feeds["x"] = random_f32({3, 4, 6, 6}, rng, -2.5f, 2.5f);
  const auto before = run_graph(qdq, feeds);
  const auto after = run_graph(lowered, feeds);
  const Tensor& a = before.at("r_q");
  const Tensor& b = after.at("r_q");
  ASSERT_EQ(a.shape, b.shape);
  int64_t same = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    EXPECT_LE(std::fabs(a.at_as_double(i) - b.at_as_double(i)), 1.0) << i;
    same += a.at_as_double(i) == b.at_as_double(i);
  }
  EXPECT_GE(same, a.numel() * 9 / 10);
}

TEST(IntegerLowering, QOperatorConvAndMatMulBecomeIntegerOps) {
  std::mt19937 rng(22);
  Graph g;
  g.opset = 13;
  g.inputs = {{"x", DType::u8, {1, 3, 7, 7}, {}}};
  g.initializers["x_s"] = make_scalar_f32(0.05f);
  g.initializers["x_zp"] = scalar_u8(120);
  g.initializers["w"] = random_i8({4, 3, 3, 3}, rng);
  g.initializers["w_s"] = make_scalar_f32(0.01f);
  g.initializers["w_zp"] = scalar_i8(0);
  g.initializers["y_s"] = make_scalar_f32(0.08f);
  g.initializers["y_zp"] = scalar_u8(10);
  g.initializers["m"] = random_i8({7, 2}, rng);
  g.initializers["m_s"] = make_f32({2}, {0.02f, 0.03f});
  g.initializers["m_zp"] = Tensor(DType::i8, {2});
  g.initializers["z_s"] = make_scalar_f32(0.2f);
  g.initializers["z_zp"] = scalar_u8(100);
  Node conv = make_node("qconv", "QLinearConv", {"x", "x_s", "x_zp", "w", "w_s", "w_zp", "y_s", "y_zp"}, {"y"});
  set_ints(conv, "pads", {1, 1, 1, 1});
  g.nodes = {conv,
             make_node("qmatmul", "QLinearMatMul", {"y", "y_s", "y_zp", "m", "m_s", "m_zp", "z_s", "z_zp"}, {"z"})};
  g.outputs = {{"y", DType::u8, {}, {}}, {"z", DType::u8, {}, {}}};
  const Graph lowered = lower_to_integer(g);
  EXPECT_EQ(lowered.nodes[lowered.find_node("qconv")].op_type, "QConv");
  EXPECT_EQ(lowered.nodes[lowered.find_node("qmatmul")].op_type, "QGemm");

  std::map<std::string, Tensor> feeds;
  feeds["x"] = Tensor(DType::u8, {1, 3, 7, 7});
  for (auto& b : feeds["x"].bytes) b = static_cast<uint8_t>(rng());
  const auto before = run_graph(g, feeds), after = run_graph(lowered, feeds);
  for (const char* value : {"y", "z"})
    for (int64_t i = 0; i < before.at(value).numel(); ++i)
      EXPECT_LE(std::fabs(before.at(value).at_as_double(i) - after.at(value).at_as_double(i)), 1.0) << value << i;
}

// Average pools with padding, strides and both count_include_pad settings, and a grouped
// convolution (which the fast kernel leaves to the reference), before and after lowering.
TEST(IntegerLowering, PaddedPoolsAndGroupedConvComputeTheSameBeforeAndAfter) {
  std::mt19937 rng(24);
  for (int count_include_pad = 0; count_include_pad < 2; ++count_include_pad) {
    SCOPED_TRACE(count_include_pad ? "count_include_pad" : "count only the image");
    Graph g;
    g.opset = 13;
    g.inputs = {{"x", DType::f32, {2, 4, 9, 7}, {}}};
    g.initializers["s"] = make_scalar_f32(0.03f);
    g.initializers["zp"] = scalar_i8(-7);
    g.initializers["ys"] = make_scalar_f32(0.02f);
    g.initializers["yzp"] = scalar_i8(3);
    g.initializers["w"] = random_i8({6, 2, 3, 3}, rng);
    g.initializers["ws"] = make_scalar_f32(0.01f);
    g.initializers["wzp"] = scalar_i8(0);
    g.initializers["cs"] = make_scalar_f32(0.05f);
    Node pool = make_node("pool", "AveragePool", {"x_dq"}, {"p"});
    set_ints(pool, "kernel_shape", {3, 2});
    set_ints(pool, "strides", {2, 1});
    set_ints(pool, "pads", {1, 0, 1, 1});
    set_int(pool, "count_include_pad", count_include_pad);
    Node conv = make_node("gconv", "Conv", {"x_dq", "w_dq"}, {"c"});
    set_int(conv, "group", 2);
    set_ints(conv, "pads", {1, 1, 1, 1});
    g.nodes = {make_node("x_q", "QuantizeLinear", {"x", "s", "zp"}, {"x_q"}),
               make_node("x_dq", "DequantizeLinear", {"x_q", "s", "zp"}, {"x_dq"}),
               pool,
               make_node("p_q", "QuantizeLinear", {"p", "ys", "yzp"}, {"p_q"}),
               make_node("w_dq", "DequantizeLinear", {"w", "ws", "wzp"}, {"w_dq"}),
               conv,
               make_node("c_q", "QuantizeLinear", {"c", "cs", "yzp"}, {"c_q"})};
    g.outputs = {{"p_q", DType::i8, {}, {}}, {"c_q", DType::i8, {}, {}}};
    const Graph lowered = lower_to_integer(g);
    EXPECT_EQ(lowered.nodes[lowered.find_node("pool")].op_type, "QAveragePool");
    EXPECT_EQ(lowered.nodes[lowered.find_node("gconv")].op_type, "QConv");
    std::map<std::string, Tensor> feeds;
    feeds["x"] = random_f32({2, 4, 9, 7}, rng, -3.0f, 3.0f);
    const auto before = run_graph(g, feeds), after = run_graph(lowered, feeds);
    for (const char* value : {"p_q", "c_q"}) {
      ASSERT_EQ(before.at(value).shape, after.at(value).shape) << value;
      for (int64_t i = 0; i < before.at(value).numel(); ++i)
        EXPECT_LE(std::fabs(before.at(value).at_as_double(i) - after.at(value).at_as_double(i)), 1.0) << value << i;
    }
  }
}

TEST(IntegerLowering, GroupsWhoseFloatValuesAreStillNeededStayFloat) {
  std::mt19937 rng(23);
  Graph g = tiny_qdq_graph(rng);
  g.outputs.push_back({"c2", DType::f32, {}, {}});  // conv2's float output is now a graph output
  const Graph lowered = lower_to_integer(g);
  EXPECT_EQ(lowered.nodes[lowered.find_node("conv2")].op_type, "Conv");
  EXPECT_EQ(lowered.nodes[lowered.find_node("conv1")].op_type, "QConv");
  std::map<std::string, Tensor> feeds;
  feeds["x"] = random_f32({1, 4, 6, 6}, rng, -2.5f, 2.5f);
  EXPECT_EQ(run_graph(lowered, feeds).at("c2").bytes, run_graph(g, feeds).at("c2").bytes);
}

// ---- the shipped models against ONNX Runtime and simulate mode -------------------------------

EvalResult evaluate_mode(const std::string& model, const std::string& data, RunMode mode) {
  const Executor executor(integer::graph_for_mode(load_onnx(model), mode));
  EvalOptions options;
  options.limit = 1000;
  return evaluate(executor, load_cifar10(data), options);
}

int64_t same_top1(const std::vector<float>& a, const std::vector<float>& b, int64_t classes) {
  int64_t same = 0;
  for (size_t i = 0; i + classes <= a.size() && i + classes <= b.size(); i += classes)
    same += std::max_element(&a[i], &a[i] + classes) - &a[i] == std::max_element(&b[i], &b[i] + classes) - &b[i];
  return same;
}

// ONNX Runtime with exact uint8 x int8 products (see integer_ort_exact_u8s8.js).
std::vector<float> ort_outputs_exact_u8s8(const std::string& model, const std::string& data, int64_t limit) {
  const std::string out = testing::output_dir("ort") + "/ort_exact_" + std::to_string(::getpid()) + ".bin";
  const std::string cmd = "node '" + testing::source_dir() + "/tests/runtime/integer_ort_exact_u8s8.js' '" + model +
                          "' '" + data + "' " + std::to_string(limit) + " all '" + out + "'";
  std::string log;
  if (testing::run_command(cmd, log) != 0) throw std::runtime_error("ONNX Runtime oracle failed: " + cmd + "\n" + log);
  const std::string bytes = testing::read_binary(out);
  std::remove(out.c_str());
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

void report(const char* key, const char* what, int64_t same, int64_t n) {
  std::printf("  %-58s top-1 agreement %4lld/%lld (%.1f%%)\n", what, static_cast<long long>(same),
              static_cast<long long>(n), 100.0 * static_cast<double>(same) / static_cast<double>(n));
  ::testing::Test::RecordProperty(key, std::to_string(same) + "/" + std::to_string(n));
}

TEST(IntegerMode, Int8PerChannelModelAgreesWithOnnxRuntimeAndSimulate) {
  const std::string data = first_1000_test_images();
  const std::string model = model_path("resnet8_s8act_s8w_perchannel.onnx");
  const EvalResult integer = evaluate_mode(model, data, RunMode::integer);
  const EvalResult simulate = evaluate_mode(model, data, RunMode::simulate);
  const std::vector<float> ort = testing::ort_outputs(model, data, 1000, /*optimize=*/true);
  const int64_t n = integer.images, k = integer.classes;
  ASSERT_EQ(n, 1000);
  ASSERT_EQ(ort.size(), static_cast<size_t>(n * k));
  std::printf("resnet8_s8act_s8w_perchannel, first %lld test images:\n", static_cast<long long>(n));
  const int64_t vs_ort = same_top1(integer.outputs, ort, k),
                vs_simulate = same_top1(integer.outputs, simulate.outputs, k);
  report("integer_vs_ort", "integer vs ONNX Runtime (all optimisations)", vs_ort, n);
  report("integer_vs_simulate", "integer vs simulate", vs_simulate, n);
  EXPECT_GE(vs_ort, n * 999 / 1000);
  EXPECT_GE(vs_simulate, n * 999 / 1000);
}

// ONNX Runtime's default optimised uint8 x int8 path on AVX2 without VNNI saturates pairs of
// products at int16 (docs/quantization.md, "Agreement"); qplay computes them exactly. So the
// 99.9% bar is held against ONNX Runtime's exact path, and against the default path qplay must
// agree as well as ONNX Runtime's own exact path does.
TEST(IntegerMode, Uint8PerTensorModelAgreesWithOnnxRuntimeAndSimulate) {
  const std::string data = first_1000_test_images();
  const std::string model = model_path("resnet8_u8act_s8w_pertensor.onnx");
  const EvalResult integer = evaluate_mode(model, data, RunMode::integer);
  const EvalResult simulate = evaluate_mode(model, data, RunMode::simulate);
  const std::vector<float> ort = testing::ort_outputs(model, data, 1000, /*optimize=*/true);
  const std::vector<float> ort_exact = ort_outputs_exact_u8s8(model, data, 1000);
  const int64_t n = integer.images, k = integer.classes;
  ASSERT_EQ(n, 1000);
  ASSERT_EQ(ort.size(), static_cast<size_t>(n * k));
  ASSERT_EQ(ort_exact.size(), static_cast<size_t>(n * k));
  std::printf("resnet8_u8act_s8w_pertensor, first %lld test images:\n", static_cast<long long>(n));
  const int64_t vs_exact = same_top1(integer.outputs, ort_exact, k);
  const int64_t vs_ort = same_top1(integer.outputs, ort, k);
  const int64_t ort_exact_vs_ort = same_top1(ort_exact, ort, k);
  const int64_t vs_simulate = same_top1(integer.outputs, simulate.outputs, k);
  report("integer_vs_ort_exact_u8s8", "integer vs ONNX Runtime (all optimisations, exact u8s8)", vs_exact, n);
  report("integer_vs_ort", "integer vs ONNX Runtime (all optimisations, default)", vs_ort, n);
  report("ort_exact_u8s8_vs_ort", "ONNX Runtime exact u8s8 vs ONNX Runtime default", ort_exact_vs_ort, n);
  report("integer_vs_simulate", "integer vs simulate", vs_simulate, n);
  EXPECT_GE(vs_exact, n * 999 / 1000);
  EXPECT_GE(vs_ort + 2, ort_exact_vs_ort);
  EXPECT_GE(vs_simulate, n * 999 / 1000);
}

TEST(IntegerMode, CliRunsIntegerMode) {
  std::string out;
  const std::string cmd = std::string(QPLAY_BINARY) + " eval '" + model_path("resnet8_u8act_s8w_pertensor.onnx") +
                          "' --mode integer --limit 200";
  ASSERT_EQ(testing::run_command(cmd, out), 0) << out;
  EXPECT_NE(out.find("accuracy"), std::string::npos) << out;
  ASSERT_NE(testing::run_command(std::string(QPLAY_BINARY) + " eval --mode fixed", out), 0);
  EXPECT_NE(out.find("--mode"), std::string::npos) << out;
}

}  // namespace
}  // namespace qplay
