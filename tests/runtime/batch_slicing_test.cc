// Batch slicing (ExecutorOptions::batch_slice): a large batch run as slices of images through the
// whole graph must give every bit of the whole-batch run, on the shipped models in each mode; a
// graph where an output image may depend on other images (or an input without the batch on axis
// 0) runs whole and stays correct. Executor::run_capturing hands over, slice by slice, the values a
// ValueHook sees whole.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "io/cifar10.h"
#include "io/onnx_model.h"
#include "runtime/executor.h"
#include "runtime/integer/integer_mode.h"
#include "support/kernel_test_helpers.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using testing::int_attr;
using testing::ints_attr;

using integer::RunMode;

ExecutorOptions slice(int64_t images) {
  ExecutorOptions o;
  o.batch_slice = images;
  return o;
}

void expect_same_bits(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype, b.dtype);
  ASSERT_EQ(a.shape, b.shape);
  EXPECT_EQ(0, std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()));
}

Tensor random_f32(Shape shape, std::mt19937& rng) {
  Tensor t(DType::f32, std::move(shape));
  std::uniform_real_distribution<float> d(-2, 2);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Options whose provider records the batch size each `op_type` node sees (running its reference kernel).
ExecutorOptions recording(const std::string& op_type, std::vector<int64_t>& seen) {
  ExecutorOptions o;
  o.batch_slice = 16;
  o.providers.push_back([op_type, &seen](const Node& node, const Graph&) -> PreparedKernel {
    if (node.op_type != op_type) return nullptr;
    PreparedKernel reference = bind_reference_kernel(node);
    return [reference, &seen](const Inputs& in, std::vector<Tensor>& out) {
      seen.push_back(in.at(0)->shape.at(0));
      reference(in, out);
    };
  });
  return o;
}

// The shipped ResNet-8s: FP32 (BatchNormalization folded and kept), the QDQ models in simulate
// mode and lowered to integer ops, at batch sizes below, at and above the slice, uneven and large.
TEST(BatchSlicing, ShippedModelsGiveTheWholeBatchBits) {
  const Dataset& data = testing::test_sample();
  struct Case {
    const char* file;
    RunMode mode;
  };
  const Case cases[] = {{"resnet8_fp32.onnx", RunMode::simulate},
                        {"resnet8_fp32_bn.onnx", RunMode::simulate},
                        {"resnet8_u8act_s8w_pertensor.onnx", RunMode::simulate},
                        {"resnet8_s8act_s8w_perchannel.onnx", RunMode::simulate},
                        {"resnet8_u8act_s8w_pertensor.onnx", RunMode::integer},
                        {"resnet8_s8act_s8w_perchannel.onnx", RunMode::integer},
                        {"resnet8_int8.onnx", RunMode::integer},
                        {"resnet8_uint8.onnx", RunMode::integer}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.file) + " " + integer::run_mode_name(c.mode));
    const auto g = integer::graph_for_mode(load_onnx(testing::model_path(c.file)), c.mode);
    std::vector<int64_t> seen;
    const Executor sliced(g), whole(g, slice(0)), small(g, slice(5)), probe(g, recording("Softmax", seen));
    EXPECT_EQ(sliced.batch_slice(), ExecutorOptions{}.batch_slice);
    EXPECT_EQ(whole.batch_slice(), 0);
    const ValueInfo& in = g->inputs.at(0);
    const std::string& out = g->outputs.at(0).name;
    for (int64_t batch : {1, 15, 16, 17, 33, 100}) {
      SCOPED_TRACE("batch " + std::to_string(batch));
      std::map<std::string, Tensor> feeds;
      feeds[in.name] = make_image_batch(data, 100, batch, image_layout_for(in));
      const Tensor want = whole.run(feeds).at(out);
      ASSERT_EQ(want.shape.at(0), batch);
      expect_same_bits(sliced.run(feeds).at(out), want);
      expect_same_bits(sliced.run(feeds).at(out), want);  // buffers recycled from the first run's slices
      expect_same_bits(small.run(feeds).at(out), want);
      seen.clear();
      expect_same_bits(probe.run(feeds).at(out), want);
      if (batch == 100) {
        EXPECT_EQ(seen, (std::vector<int64_t>{15, 15, 14, 14, 14, 14, 14}));
      }
      if (batch == 16) {
        EXPECT_EQ(seen, (std::vector<int64_t>{16}));
      }
    }
  }
}

// run_capturing on the shipped models: every value a node produces (and the input), put together
// from the slices in the order they arrive, has the bits the hook of an unsliced run sees; constants
// arrive once, whole; the outputs are run()'s.
TEST(BatchSlicing, CaptureGivesWhatAHookSees) {
  const Dataset& data = testing::test_sample();
  const std::pair<const char*, RunMode> cases[] = {{"resnet8_fp32.onnx", RunMode::simulate},
                                                   {"resnet8_u8act_s8w_pertensor.onnx", RunMode::simulate},
                                                   {"resnet8_s8act_s8w_perchannel.onnx", RunMode::integer}};
  for (const auto& [file, mode] : cases) {
    SCOPED_TRACE(std::string(file) + " " + integer::run_mode_name(mode));
    const auto g = integer::graph_for_mode(load_onnx(testing::model_path(file)), mode);
    const ValueInfo& in = g->inputs.at(0);
    std::vector<std::string> wanted = {in.name};
    for (const Node& n : g->nodes) wanted.insert(wanted.end(), n.outputs.begin(), n.outputs.end());
    for (int64_t slice_images : {int64_t{0}, int64_t{8}}) {
      const Executor ex(g, slice(slice_images));
      for (int64_t batch : {1, 33}) {
        SCOPED_TRACE("slice " + std::to_string(slice_images) + ", batch " + std::to_string(batch));
        std::map<std::string, Tensor> feeds;
        feeds[in.name] = make_image_batch(data, 40, batch, image_layout_for(in));
        std::map<std::string, Tensor> hooked;
        const auto want = ex.run(feeds, [&](int, const std::string& v, const Tensor& t) { hooked[v] = t; });
        hooked[in.name] = feeds.at(in.name);

        std::vector<Tensor> got(wanted.size());
        std::vector<int64_t> next_image(wanted.size(), 0), constant_calls(wanted.size(), 0);
        const auto sink = [&](size_t k, const Tensor& part, int64_t first_image, int64_t images) {
          ASSERT_LT(k, wanted.size());
          if (first_image < 0) {
            ++constant_calls[k];
            got[k] = part;
            return;
          }
          ASSERT_EQ(first_image, next_image[k]) << wanted[k];
          ASSERT_EQ(part.shape.at(0), images) << wanted[k];
          next_image[k] += images;
          if (first_image == 0) got[k] = Tensor(part.dtype, {0});
          got[k].shape = part.shape;
          got[k].shape[0] = next_image[k];
          got[k].bytes.insert(got[k].bytes.end(), part.bytes.begin(), part.bytes.end());
        };
        std::map<std::string, const Tensor*> borrowed = {{in.name, &feeds.at(in.name)}};
        const auto outs = ex.run_capturing(borrowed, wanted, sink);
        expect_same_bits(outs.at(g->outputs[0].name), want.at(g->outputs[0].name));
        int constants = 0;
        for (size_t k = 0; k < wanted.size(); ++k) {
          SCOPED_TRACE(wanted[k]);
          ASSERT_TRUE(hooked.count(wanted[k]));
          expect_same_bits(got[k], hooked.at(wanted[k]));
          EXPECT_LE(constant_calls[k], 1);
          if (constant_calls[k] == 1) {
            ++constants;
            EXPECT_EQ(next_image[k], 0);
          } else {
            EXPECT_EQ(next_image[k], batch);
          }
        }
        if (mode == RunMode::simulate && std::string(file) != "resnet8_fp32.onnx") {
          EXPECT_GT(constants, 0);  // the dequantized weights, folded at preparation
        }
      }
    }
  }
}

TEST(BatchSlicing, CaptureOfAnUnknownValueIsAnError) {
  const auto g = std::make_shared<const Graph>(load_onnx(testing::model_path("resnet8_fp32.onnx")));
  const Executor ex(g);
  const Tensor x(DType::f32, {2, 32, 32, 3});
  const std::map<std::string, const Tensor*> feeds = {{g->inputs.at(0).name, &x}};
  try {
    ex.run_capturing(feeds, {"no_such_value"}, [](size_t, const Tensor&, int64_t, int64_t) {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'no_such_value'"), std::string::npos) << e.what();
  }
}

// ---- small graphs ----------------------------------------------------------------------------


// x [N, 4] -> node(x, constants...) -> y.
Graph one_node(Node node, Shape x_shape = {-1, 4}) {
  Graph g;
  g.inputs.push_back({"x", DType::f32, x_shape, {}});
  g.outputs.push_back({node.outputs.at(0), DType::f32, {}, {}});
  g.nodes.push_back(std::move(node));
  return g;
}

// The slice a graph runs with when asked for 16 (0: it runs whole batches).
int64_t slice_of(Graph g) { return Executor(std::make_shared<const Graph>(std::move(g)), slice(16)).batch_slice(); }

// Preparation's verdict, op by op: separable only where output image i provably depends on input image i alone.
TEST(BatchSlicing, DecidesPerOpConservatively) {
  std::mt19937 rng(3);
  // Add with a constant that broadcasts without the batch, or carries one of its own.
  for (const auto& [shape, want] : std::vector<std::pair<Shape, int64_t>>{
           {{4}, 16}, {{1, 4}, 16}, {{20, 4}, 0}, {{1, 20, 4}, 0}, {{}, 16}}) {
    SCOPED_TRACE(shape_str(shape));
    Graph g = one_node(Node{"add", "Add", "", {"x", "c"}, {"y"}, {}});
    g.initializers["c"] = random_f32(shape, rng);
    EXPECT_EQ(slice_of(g), want);
  }
  {  // an input of unknown rank: broadcasting cannot be checked
    Graph g = one_node(Node{"add", "Add", "", {"x", "c"}, {"y"}, {}}, {});
    g.initializers["c"] = random_f32({4}, rng);
    EXPECT_EQ(slice_of(g), 0);
  }
  for (const auto& [axis, want] : std::vector<std::pair<int64_t, int64_t>>{{1, 16}, {-1, 16}, {0, 0}, {-2, 0}}) {
    Node softmax{"sm", "Softmax", "", {"x"}, {"y"}, {}};
    softmax.attrs["axis"] = int_attr(axis);
    EXPECT_EQ(slice_of(one_node(softmax)), want) << "Softmax axis " << axis;
    Node flatten{"f", "Flatten", "", {"x"}, {"y"}, {}};
    flatten.attrs["axis"] = int_attr(axis);
    EXPECT_EQ(slice_of(one_node(flatten)), want) << "Flatten axis " << axis;
  }
  {
    Node t{"t", "Transpose", "", {"x"}, {"y"}, {}};
    t.attrs["perm"] = ints_attr({0, 2, 1});
    EXPECT_EQ(slice_of(one_node(t, {-1, 4, 2})), 16);
    t.attrs["perm"] = ints_attr({1, 0, 2});
    EXPECT_EQ(slice_of(one_node(t, {-1, 4, 2})), 0);
  }
  for (const auto& [shape, allowzero, want] :
       std::vector<std::tuple<std::vector<int64_t>, int64_t, int64_t>>{{{0, -1}, 0, 16},
                                                                       {{0, 2, 2}, 0, 16},
                                                                       {{0, -1}, 1, 0},
                                                                       {{1, -1}, 0, 0},
                                                                       {{-1, 4}, 0, 0}}) {
    Graph g = one_node(Node{"r", "Reshape", "", {"x", "shape"}, {"y"}, {}});
    g.nodes[0].attrs["allowzero"] = int_attr(allowzero);
    g.initializers["shape"] = make_i64({static_cast<int64_t>(shape.size())}, shape);
    EXPECT_EQ(slice_of(g), want) << "Reshape to " << shape_str(shape) << " allowzero " << allowzero;
  }
  {  // Gemm: B a constant, C broadcast over rows; not a transposed A, a per-row C or a B fed at run time
    Graph g = one_node(Node{"gemm", "Gemm", "", {"x", "b", "c"}, {"y"}, {}});
    g.initializers["b"] = random_f32({4, 3}, rng);
    g.initializers["c"] = random_f32({3}, rng);
    EXPECT_EQ(slice_of(g), 16);
    g.initializers["c"] = random_f32({20, 3}, rng);
    EXPECT_EQ(slice_of(g), 0);
    g.initializers["c"] = random_f32({1, 3}, rng);
    g.nodes[0].attrs["transA"] = int_attr(1);
    EXPECT_EQ(slice_of(g), 0);
    g.nodes[0].attrs["transA"] = int_attr(0);
    g.initializers.erase("b");
    g.inputs.push_back({"b", DType::f32, {4, 3}, {}});
    EXPECT_EQ(slice_of(g), 0);
  }
  {  // per-axis quantization on the batch axis
    Graph g = one_node(Node{"q", "QuantizeLinear", "", {"x", "s", "z"}, {"y"}, {}});
    g.outputs[0].dtype = DType::u8;
    g.initializers["s"] = make_f32({4}, {0.1f, 0.2f, 0.3f, 0.4f});
    g.initializers["z"] = Tensor(DType::u8, {4});
    EXPECT_EQ(slice_of(g), 16);  // axis 1 by default
    g.nodes[0].attrs["axis"] = int_attr(0);
    EXPECT_EQ(slice_of(g), 0);
  }
  {  // Concat joins images only along another axis
    Node concat{"cat", "Concat", "", {"x", "x"}, {"y"}, {}};
    concat.attrs["axis"] = int_attr(1);
    EXPECT_EQ(slice_of(one_node(concat)), 16);
    concat.attrs["axis"] = int_attr(0);
    EXPECT_EQ(slice_of(one_node(concat)), 0);
  }
  {  // an op off the list
    Graph g = one_node(Node{"sq", "Squeeze", "", {"x"}, {"y"}, {}});
    EXPECT_EQ(slice_of(g), 0);
  }
}

// Graphs that must run whole give the right answer: a Concat on the batch axis, a Reshape folding the
// batch into one row, a Gemm whose B is fed with as many rows as the batch, an input without the batch.
TEST(BatchSlicing, NonSeparableGraphsRunWholeAndCorrectly) {
  std::mt19937 rng(5);
  const int64_t n = 20;
  const Tensor x = random_f32({n, 4}, rng);
  std::vector<float> relu(x.data<float>(), x.data<float>() + x.numel());
  for (float& v : relu) v = v < 0 ? 0 : v;

  {
    Graph g = one_node(Node{"relu", "Relu", "", {"x"}, {"r"}, {}});
    Node concat{"cat", "Concat", "", {"r", "x"}, {"y"}, {}};
    concat.attrs["axis"] = int_attr(0);
    g.nodes.push_back(concat);
    g.outputs[0].name = "y";
    const Executor ex(std::make_shared<const Graph>(g));
    EXPECT_EQ(ex.batch_slice(), 0);
    const Tensor y = ex.run({{"x", x}}).at("y");
    ASSERT_EQ(y.shape, (Shape{2 * n, 4}));
    EXPECT_EQ(0, std::memcmp(y.data<float>(), relu.data(), relu.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(y.data<float>() + relu.size(), x.data<float>(), x.bytes.size()));
  }
  {
    Graph g = one_node(Node{"relu", "Relu", "", {"x"}, {"r"}, {}});
    g.nodes.push_back(Node{"flat", "Reshape", "", {"r", "shape"}, {"y"}, {}});
    g.initializers["shape"] = make_i64({2}, {1, -1});
    g.outputs[0].name = "y";
    const Executor ex(std::make_shared<const Graph>(g));
    EXPECT_EQ(ex.batch_slice(), 0);
    const Tensor y = ex.run({{"x", x}}).at("y");
    ASSERT_EQ(y.shape, (Shape{1, n * 4}));
    EXPECT_EQ(0, std::memcmp(y.data<float>(), relu.data(), relu.size() * sizeof(float)));
  }
  {  // Y = A B with B [n, 3] fed: it has the batch's row count, so only preparation can tell that every row of Y
     // reads all of B
    Graph g = one_node(Node{"gemm", "Gemm", "", {"a", "b"}, {"y"}, {}}, {-1, -1});
    g.inputs[0].name = "a";
    g.inputs.push_back({"b", DType::f32, {-1, 3}, {}});
    const Executor ex(std::make_shared<const Graph>(g));
    EXPECT_EQ(ex.batch_slice(), 0);
    const Tensor a = random_f32({n, n}, rng), b = random_f32({n, 3}, rng);
    const Tensor y = ex.run({{"a", a}, {"b", b}}).at("y");
    ASSERT_EQ(y.shape, (Shape{n, 3}));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        double want = 0;
        for (int64_t k = 0; k < n; ++k) want += double{a.data<float>()[i * n + k]} * b.data<float>()[k * 3 + j];
        EXPECT_NEAR(y.data<float>()[i * 3 + j], want, 1e-5) << i << "," << j;
      }
  }
  {  // separable, but the second input's axis 0 is not the batch at run time: run whole (broadcast)
    Graph g = one_node(Node{"add", "Add", "", {"x", "z"}, {"y"}, {}});
    g.inputs.push_back({"z", DType::f32, {-1, 4}, {}});
    const Executor ex(std::make_shared<const Graph>(g));
    EXPECT_EQ(ex.batch_slice(), ExecutorOptions{}.batch_slice);
    const Tensor z = random_f32({1, 4}, rng);
    const Tensor y = ex.run({{"x", x}, {"z", z}}).at("y");
    ASSERT_EQ(y.shape, x.shape);
    for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(y.data<float>()[i], x.data<float>()[i] + z.data<float>()[i % 4]);
  }
}

// A separable graph with two inputs and two outputs of different dtypes: outputs land in the right rows.
TEST(BatchSlicing, SeveralInputsAndOutputs) {
  std::mt19937 rng(7);
  Graph g;
  g.inputs.push_back({"a", DType::f32, {-1, 3, 2}, {}});
  g.inputs.push_back({"b", DType::f32, {-1, 3, 2}, {}});
  g.outputs.push_back({"sum", DType::f32, {}, {}});
  g.outputs.push_back({"q", DType::u8, {}, {}});
  g.initializers["s"] = make_scalar_f32(0.05f);
  g.initializers["z"] = Tensor(DType::u8, {});
  g.nodes.push_back(Node{"add", "Add", "", {"a", "b"}, {"sum"}, {}});
  Node sm{"sm", "Softmax", "", {"sum"}, {"p"}, {}};
  sm.attrs["axis"] = int_attr(1);
  g.nodes.push_back(sm);
  g.nodes.push_back(Node{"q", "QuantizeLinear", "", {"p", "s", "z"}, {"q"}, {}});
  const auto graph = std::make_shared<const Graph>(g);
  std::vector<int64_t> seen;
  ExecutorOptions probe_options = recording("Add", seen);
  probe_options.batch_slice = 4;
  const Executor sliced(graph, slice(4)), whole(graph, slice(0)), probe(graph, probe_options);
  EXPECT_EQ(sliced.batch_slice(), 4);
  for (int64_t n : {3, 9, 37}) {
    const std::map<std::string, Tensor> feeds = {{"a", random_f32({n, 3, 2}, rng)}, {"b", random_f32({n, 3, 2}, rng)}};
    const auto want = whole.run(feeds), got = sliced.run(feeds);
    expect_same_bits(got.at("sum"), want.at("sum"));
    expect_same_bits(got.at("q"), want.at("q"));
    seen.clear();
    expect_same_bits(probe.run(feeds).at("q"), want.at("q"));
    if (n == 37) {
      EXPECT_EQ(seen, (std::vector<int64_t>{4, 4, 4, 4, 4, 4, 4, 3, 3, 3}));
    }
  }
}

}  // namespace
}  // namespace qplay
