// qplay against ONNX Runtime (the independent oracle) on the shipped models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "io/onnx_model.h"
#include "runtime/executor.h"
#include "session/evaluate.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using testing::first_1000_test_images;
using testing::model_path;
using testing::ort_outputs;

EvalResult run_qplay(const std::string& model, const std::string& data, int64_t limit) {
  Executor ex(std::make_shared<const Graph>(load_onnx(model)));
  EvalOptions opt;
  opt.limit = limit;
  return evaluate(ex, load_cifar10(data), opt);
}

int argmax(const float* row, int64_t n) { return static_cast<int>(std::max_element(row, row + n) - row); }

TEST(OrtAgreement, Fp32OutputsWithin1e4) {
  const std::string data = first_1000_test_images();
  for (const char* file : {"resnet8_fp32.onnx", "resnet8_fp32_bn.onnx"}) {
    SCOPED_TRACE(file);
    const EvalResult q = run_qplay(model_path(file), data, 1000);
    const std::vector<float> ort = ort_outputs(model_path(file), data, 1000, /*optimize=*/true);
    ASSERT_EQ(q.outputs.size(), ort.size());
    float worst = 0;
    for (size_t i = 0; i < ort.size(); ++i) worst = std::max(worst, std::fabs(q.outputs[i] - ort[i]));
    EXPECT_LE(worst, 1e-4f);
  }
}

TEST(OrtAgreement, QdqSimulateModeMatchesOrtWithoutOptimisations) {
  const std::string data = first_1000_test_images();
  for (const char* file : {"resnet8_u8act_s8w_pertensor.onnx", "resnet8_s8act_s8w_perchannel.onnx"}) {
    SCOPED_TRACE(file);
    const EvalResult q = run_qplay(model_path(file), data, 1000);
    const std::vector<float> ort = ort_outputs(model_path(file), data, 1000, /*optimize=*/false);
    ASSERT_EQ(q.outputs.size(), ort.size());
    const int64_t n = q.images, k = q.classes;
    int64_t same_top1 = 0, within = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* a = &q.outputs[i * k];
      const float* b = &ort[i * k];
      same_top1 += argmax(a, k) == argmax(b, k);
      float worst = 0;
      for (int64_t c = 0; c < k; ++c) worst = std::max(worst, std::fabs(a[c] - b[c]));
      within += worst <= 1e-3f;
    }
    RecordProperty("top1_agreement", std::to_string(same_top1) + "/" + std::to_string(n));
    EXPECT_GE(same_top1, n * 999 / 1000) << "top-1 agreement " << same_top1 << "/" << n;
    EXPECT_GE(within, n * 99 / 100) << "images within 1e-3: " << within << "/" << n;
  }
}

// Published/ORT-measured accuracies on the full test set (shared/models/SOURCE.md).
TEST(FullTestSet, AccuracyMatchesReference) {
  const std::string full = testing::full_test_batch();
  if (full.empty()) GTEST_SKIP() << "../shared/data/cifar10/test_batch.bin not present";
  const EvalResult fp32 = run_qplay(model_path("resnet8_fp32.onnx"), full, -1);
  EXPECT_EQ(fp32.images, 10000);
  EXPECT_EQ(fp32.correct, 8719);
  const EvalResult u8 = run_qplay(model_path("resnet8_u8act_s8w_pertensor.onnx"), full, -1);
  EXPECT_NEAR(u8.accuracy() * 100, 86.98, 0.02 + 1e-9);
  const EvalResult s8 = run_qplay(model_path("resnet8_s8act_s8w_perchannel.onnx"), full, -1);
  EXPECT_NEAR(s8.accuracy() * 100, 87.20, 0.02 + 1e-9);
}

}  // namespace
}  // namespace qplay
