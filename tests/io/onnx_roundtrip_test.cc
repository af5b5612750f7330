#include <gtest/gtest.h>

#include "io/onnx_model.h"
#include "runtime/executor.h"
#include "session/evaluate.h"
#include "support/test_support.h"

namespace qplay {
namespace {

// import -> export -> import must give a graph that computes exactly the same outputs.
TEST(OnnxRoundTrip, ExportedModelsComputeTheSameOutputs) {
  const Dataset data = load_cifar10(default_test_sample_path());
  EvalOptions opt;
  opt.limit = 200;
  for (const char* file : {"resnet8_fp32.onnx", "resnet8_fp32_bn.onnx", "resnet8_u8act_s8w_pertensor.onnx",
                           "resnet8_s8act_s8w_perchannel.onnx"}) {
    SCOPED_TRACE(file);
    auto original = std::make_shared<const Graph>(load_onnx(testing::model_path(file)));
    auto again = std::make_shared<const Graph>(load_onnx_from_bytes(export_onnx_bytes(*original), "exported"));
    EXPECT_EQ(again->nodes.size(), original->nodes.size());
    EXPECT_EQ(again->initializers.size(), original->initializers.size());
    const auto a = evaluate(Executor(original), data, opt);
    const auto b = evaluate(Executor(again), data, opt);
    ASSERT_EQ(a.outputs.size(), b.outputs.size());
    EXPECT_EQ(0, std::memcmp(a.outputs.data(), b.outputs.data(), a.outputs.size() * sizeof(float)));
  }
}

TEST(Cifar10, LoadsSampleStratified) {
  const Dataset d = load_cifar10(default_test_sample_path());
  ASSERT_EQ(d.size(), 1000);
  std::vector<int> per_class(10, 0);
  for (auto l : d.labels) per_class[l]++;
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 100);
  // The first CIFAR-10 test labels are 3, 8, 8, 0 (cat, ship, ship, airplane).
  EXPECT_EQ(d.labels[0], 3);
  EXPECT_EQ(d.labels[1], 8);
}

TEST(Cifar10, BatchLayoutsAgree) {
  const Dataset d = load_cifar10(default_test_sample_path());
  const Tensor nhwc = make_image_batch(d, 5, 2, ImageLayout::nhwc);
  const Tensor nchw = make_image_batch(d, 5, 2, ImageLayout::nchw);
  // pixel (n=1, c=2, y=7, x=9)
  EXPECT_EQ(nhwc.data<float>()[1 * 3072 + (7 * 32 + 9) * 3 + 2], nchw.data<float>()[1 * 3072 + 2 * 1024 + 7 * 32 + 9]);
  EXPECT_EQ(nchw.data<float>()[1 * 3072 + 2 * 1024 + 7 * 32 + 9], d.pixels[6 * 3072 + 2 * 1024 + 7 * 32 + 9]);
  EXPECT_THROW(make_image_batch(d, 999, 2, ImageLayout::nhwc), Error);
}

}  // namespace
}  // namespace qplay
