// The executor's preparation (constant folding, Conv+Add+Relu fusion) and buffer recycling must not change a single
// bit: a run without a hook (fused) equals a run with one (node by node), repeated runs equal the first, and the hook
// still sees every value every node produces.
#include "runtime/executor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "io/cifar10.h"
#include "io/onnx_model.h"
#include "runtime/integer/lower.h"
#include "runtime/thread_pool.h"
#include "support/kernel_test_helpers.h"
#include "support/test_support.h"

namespace qplay {
namespace {

std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}


Node conv3x3(const std::string& name, const std::string& x, const std::string& w, const std::string& b,
             const std::string& y) {
  Node n{name, "Conv", "", {x, w, b}, {y}, {}};
  n.attrs["pads"] = testing::ints_attr({1, 1, 1, 1});
  return n;
}

// A small residual network: float weights, and one conv whose weights come from a DequantizeLinear of int8 codes
// (folded at preparation), like a QDQ model.
std::shared_ptr<const Graph> residual_graph(std::mt19937& rng) {
  Graph g;
  g.inputs.push_back({"x", DType::f32, {-1, 8, 12, 12}, {"N", "", "", ""}});
  g.outputs.push_back({"out", DType::f32, {}, {}});
  g.initializers["w1"] = make_f32({8, 8, 3, 3}, random_floats(8 * 8 * 9, rng, -0.3f, 0.3f));
  g.initializers["b1"] = make_f32({8}, random_floats(8, rng));
  Tensor codes(DType::i8, {8, 8, 3, 3});
  for (auto& c : codes.bytes) c = static_cast<uint8_t>(rng() % 61 - 30);
  g.initializers["w2q"] = codes;
  g.initializers["w2s"] = make_scalar_f32(0.01f);
  Tensor zp(DType::i8, {});
  zp.data<int8_t>()[0] = 0;
  g.initializers["w2z"] = zp;
  g.initializers["b2"] = make_f32({8}, random_floats(8, rng));
  g.initializers["w3"] = make_f32({7, 8, 3, 3}, random_floats(7 * 8 * 9, rng, -0.3f, 0.3f));
  g.nodes.push_back(conv3x3("c1", "x", "w1", "b1", "c1_out"));
  g.nodes.push_back(Node{"r1", "Relu", "", {"c1_out"}, {"r1_raw"}, {}});
  // An activation QDQ pair (fused into c1's epilogue).
  g.initializers["as"] = make_scalar_f32(0.02f);
  Tensor azp(DType::u8, {});
  azp.data<uint8_t>()[0] = 0;
  g.initializers["az"] = azp;
  g.nodes.push_back(Node{"q1", "QuantizeLinear", "", {"r1_raw", "as", "az"}, {"r1_q"}, {}});
  g.nodes.push_back(Node{"dq1", "DequantizeLinear", "", {"r1_q", "as", "az"}, {"r1_out"}, {}});
  g.nodes.push_back(Node{"dq", "DequantizeLinear", "", {"w2q", "w2s", "w2z"}, {"w2"}, {}});
  g.nodes.push_back(conv3x3("c2", "r1_out", "w2", "b2", "c2_out"));
  g.nodes.push_back(Node{"add", "Add", "", {"x", "c2_out"}, {"sum"}, {}});  // the conv is the second addend
  g.nodes.push_back(Node{"r2", "Relu", "", {"sum"}, {"r2_out"}, {}});
  g.nodes.push_back(conv3x3("c3", "r2_out", "w3", "", "c3_out"));  // no bias, no fusion
  Node pool{"pool", "MaxPool", "", {"c3_out"}, {"p_out"}, {}};
  pool.attrs["kernel_shape"] = testing::ints_attr({2, 2});
  pool.attrs["strides"] = testing::ints_attr({2, 2});
  g.nodes.push_back(pool);
  g.nodes.push_back(Node{"gap", "GlobalAveragePool", "", {"p_out"}, {"out"}, {}});
  return std::make_shared<const Graph>(std::move(g));
}

void expect_same_bits(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype, b.dtype);
  ASSERT_EQ(a.shape, b.shape);
  ASSERT_EQ(0, std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()));
}

TEST(Executor, FusedRunsEqualHookedRunsAndRepeatBitForBit) {
  std::mt19937 rng(29);
  const auto g = residual_graph(rng);
  const Executor ex(g);
  for (int64_t batch : {1, 3, 2}) {
    std::map<std::string, Tensor> feeds;
    feeds["x"] = make_f32({batch, 8, 12, 12}, random_floats(batch * 8 * 144, rng, -2, 2));
    const Tensor plain = ex.run(feeds).at("out");
    std::map<std::string, Tensor> seen;
    std::vector<int> order;
    const Tensor hooked = ex.run(feeds, [&](int node, const std::string& value, const Tensor& t) {
                              order.push_back(node);
                              seen[value] = t;
                            }).at("out");
    expect_same_bits(plain, hooked);
    expect_same_bits(plain, ex.run(feeds).at("out"));  // recycled buffers
    // Every node reported once, in order, including the folded DequantizeLinear.
    ASSERT_EQ(order.size(), g->nodes.size());
    for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], static_cast<int>(i));
    EXPECT_EQ(seen.size(), g->nodes.size());
    EXPECT_EQ(seen.at("w2").shape, (Shape{8, 8, 3, 3}));
    EXPECT_EQ(seen.at("c1_out").shape, (Shape{batch, 8, 12, 12}));

    // Against the reference kernels: float tolerance (the reference accumulates in double).
    ExecutorOptions ref_only;
    ref_only.fast_kernels = false;
    const Tensor want = Executor(g, ref_only).run(feeds).at("out");
    ASSERT_EQ(want.shape, plain.shape);
    for (int64_t i = 0; i < want.numel(); ++i)
      EXPECT_NEAR(plain.data<float>()[i], want.data<float>()[i], 1e-4 * (1 + std::fabs(want.data<float>()[i])));
  }
}

// A value declared a graph output is materialised even where fusion would absorb it (the codes
// re-evaluation keeps): it equals what a hook sees, and the other outputs do not change. Borrowed
// feeds (run_borrowed) give the same as copied ones.
TEST(Executor, IntermediateGraphOutputsEqualHookedValues) {
  std::mt19937 rng(31);
  const auto g = residual_graph(rng);
  auto with_codes = std::make_shared<Graph>(*g);
  with_codes->outputs.push_back({"r1_q", DType::u8, {}, {}});
  const Executor plain(g), keeping(with_codes);
  std::map<std::string, Tensor> feeds;
  feeds["x"] = make_f32({2, 8, 12, 12}, random_floats(2 * 8 * 144, rng, -2, 2));
  Tensor hooked_codes;
  const Tensor want = plain.run(feeds, [&](int, const std::string& value, const Tensor& t) {
                             if (value == "r1_q") hooked_codes = t;
                           }).at("out");
  for (int repeat = 0; repeat < 2; ++repeat) {  // the second run on recycled buffers
    const auto got = keeping.run_borrowed({{"x", &feeds.at("x")}});
    expect_same_bits(got.at("out"), want);
    expect_same_bits(got.at("r1_q"), hooked_codes);
  }
  expect_same_bits(keeping.run(feeds).at("r1_q"), hooked_codes);
  EXPECT_THROW(keeping.run_borrowed({}), Error);
}

TEST(Executor, ConcurrentRunsShareOneExecutor) {
  std::mt19937 rng(31);
  const auto g = residual_graph(rng);
  const Executor ex(g);
  std::vector<std::map<std::string, Tensor>> feeds(4);
  std::vector<Tensor> want;
  for (auto& f : feeds) {
    f["x"] = make_f32({2, 8, 12, 12}, random_floats(2 * 8 * 144, rng, -2, 2));
    want.push_back(ex.run(f).at("out"));
  }
  std::vector<Tensor> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int i = t; i < 8; i += 2) got[i] = ex.run(feeds[i % 4]).at("out");
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) expect_same_bits(got[i], want[i % 4]);
}

// Intra-op threads split each conv's work; every output element is computed by the same code, so
// the bits do not depend on the thread count (batch 1 splits strips, larger batches split images).
TEST(Executor, IntraOpThreadsGiveTheSameBits) {
  std::mt19937 rng(37);
  const auto g = residual_graph(rng);
  ExecutorOptions two;
  two.intra_op_threads = 2;
  const Executor serial(g), split(g, two);
  const int64_t threshold = min_multiply_adds_to_split();
  set_min_multiply_adds_to_split(0);  // these small convs would otherwise stay on one thread
  for (int64_t batch : {1, 3}) {
    std::map<std::string, Tensor> feeds;
    feeds["x"] = make_f32({batch, 8, 12, 12}, random_floats(batch * 8 * 144, rng, -2, 2));
    const Tensor want = serial.run(feeds).at("out");
    for (int rep = 0; rep < 20; ++rep) expect_same_bits(want, split.run(feeds).at("out"));
  }
  set_min_multiply_adds_to_split(threshold);
}

// The shipped QDQ ResNet-8s: each residual block's conv -> Q -> DQ -> Add -> Relu -> Q -> DQ runs as one kernel, also
// when the other addend comes from a conv later in node order (a shortcut conv whose Q -> DQ another fused kernel
// computes), and the fused run still gives every output bit of the node-by-node run.
TEST(Executor, QdqResidualBlocksFuseBitForBit) {
  for (const std::string file : {"resnet8_u8act_s8w_pertensor.onnx", "resnet8_s8act_s8w_perchannel.onnx"}) {
    SCOPED_TRACE(file);
    const auto g = std::make_shared<const Graph>(load_onnx(testing::model_path(file)));
    const Executor ex(g);
    // Conv -> Relu -> Q -> DQ: conv2d, conv2d_1, conv2d_3, conv2d_6 (4 x 3); residual second convs with the whole
    // chain Q, DQ, Add, Relu, Q, DQ: conv2d_2, and the later of each projection pair, conv2d_5 and conv2d_8 (3 x 6);
    // the earlier of each pair keeps its own Q -> DQ only: conv2d_4, conv2d_7 (2 x 2).
    EXPECT_EQ(ex.absorbed_nodes(), 4u * 3 + 3u * 6 + 2u * 2);
    const Dataset data = load_cifar10(default_test_sample_path());
    std::map<std::string, Tensor> feeds;
    feeds[g->inputs.at(0).name] = make_image_batch(data, 0, 7, image_layout_for(g->inputs.at(0)));
    const Tensor fused = ex.run(feeds).at(g->outputs.at(0).name);
    const Tensor hooked = ex.run(feeds, [](int, const std::string&, const Tensor&) {}).at(g->outputs.at(0).name);
    expect_same_bits(fused, hooked);
  }
}

// Winograd convs only where nothing is quantized: the QDQ models run bit-identical with the option on and off (their
// convs keep ONNX Runtime's summation order), the FP32 model's logits move in the last bits only (and the capture
// hook sees the same kernels, so hooked and fused runs still agree bit for bit).
TEST(Executor, WinogradOnlyInFloatOnlyGraphs) {
  const Dataset data = load_cifar10(default_test_sample_path());
  ExecutorOptions direct;
  direct.winograd = false;
  for (const std::string file :
       {"resnet8_fp32.onnx", "resnet8_u8act_s8w_pertensor.onnx", "resnet8_s8act_s8w_perchannel.onnx"}) {
    SCOPED_TRACE(file);
    const auto g = std::make_shared<const Graph>(load_onnx(testing::model_path(file)));
    std::map<std::string, Tensor> feeds;
    feeds[g->inputs.at(0).name] = make_image_batch(data, 0, 9, image_layout_for(g->inputs.at(0)));
    const Executor with(g), without(g, direct);
    const Tensor a = with.run(feeds).at(g->outputs.at(0).name), b = without.run(feeds).at(g->outputs.at(0).name);
    expect_same_bits(a, with.run(feeds, [](int, const std::string&, const Tensor&) {}).at(g->outputs.at(0).name));
    if (file != "resnet8_fp32.onnx") {
      expect_same_bits(a, b);
      continue;
    }
    ASSERT_EQ(a.shape, b.shape);
    double max_diff = 0;
    for (int64_t i = 0; i < a.numel(); ++i)
      max_diff = std::max(max_diff, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
    EXPECT_GT(max_diff, 0.0) << "the FP32 model should run Winograd convs";
    EXPECT_LT(max_diff, 1e-4);
  }
}

// Lowered to integer ops, each residual block's QAdd fuses into the QConv of its later branch
// (conv2d_2, conv2d_5, conv2d_8), bit for bit.
TEST(Executor, IntegerResidualBlocksFuseBitForBit) {
  for (const std::string file : {"resnet8_u8act_s8w_pertensor.onnx", "resnet8_s8act_s8w_perchannel.onnx"}) {
    SCOPED_TRACE(file);
    const auto g = std::make_shared<const Graph>(lower_to_integer(load_onnx(testing::model_path(file))));
    const Executor ex(g);
    EXPECT_EQ(ex.absorbed_nodes(), 3u);
    const Dataset data = load_cifar10(default_test_sample_path());
    std::map<std::string, Tensor> feeds;
    feeds[g->inputs.at(0).name] = make_image_batch(data, 0, 7, image_layout_for(g->inputs.at(0)));
    const Tensor fused = ex.run(feeds).at(g->outputs.at(0).name);
    const Tensor hooked = ex.run(feeds, [](int, const std::string&, const Tensor&) {}).at(g->outputs.at(0).name);
    expect_same_bits(fused, hooked);
  }
}

// A node that fails on constant inputs is not folded: the error comes from run(), naming the node.
TEST(Executor, ConstantNodeErrorsSurfaceAtRunTime) {
  Graph g;
  g.inputs.push_back({"x", DType::f32, {2}, {}});
  g.outputs.push_back({"y", DType::f32, {}, {}});
  g.initializers["a"] = make_f32({3}, {1, 2, 3});
  g.initializers["b"] = make_f32({2}, {1, 2});
  g.nodes.push_back(Node{"bad_add", "Add", "", {"a", "b"}, {"c"}, {}});
  g.nodes.push_back(Node{"use", "Add", "", {"x", "c"}, {"y"}, {}});
  const Executor ex(std::make_shared<const Graph>(g));
  std::map<std::string, Tensor> feeds;
  feeds["x"] = make_f32({2}, {1, 1});
  try {
    ex.run(feeds);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bad_add"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qplay
