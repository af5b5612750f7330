// Models written by `qplay quantize` run the same in ONNX Runtime (optimisations off: float
// fake quantization, the semantics qplay simulates) and in qplay.
#include <gtest/gtest.h>

#include <algorithm>

#include "quantize_test_support.h"
#include "support/test_support.h"

namespace qplay::quantize {
namespace {

int argmax(const float* row, int64_t n) { return static_cast<int>(std::max_element(row, row + n) - row); }

void expect_agreement(const QuantizeOptions& o, const std::string& file) {
  const Graph model = load_onnx(qplay::testing::model_path("resnet8_fp32.onnx"));
  const std::string path = qplay::testing::output_dir("quantize") + "/" + file;
  save_onnx(quantize_model(model, testing::calibration_sample(), o), path);

  const std::string data = qplay::testing::first_1000_test_images();
  const EvalResult ours = testing::run_model(load_onnx(path), load_cifar10(data), 1000);
  const std::vector<float> ort = qplay::testing::ort_outputs(path, data, 1000, /*optimize=*/false);
  ASSERT_EQ(ours.outputs.size(), ort.size());
  int64_t same = 0;
  for (int64_t i = 0; i < ours.images; ++i)
    same += argmax(&ours.outputs[i * ours.classes], ours.classes) == argmax(&ort[i * ours.classes], ours.classes);
  ::testing::Test::RecordProperty("top1_agreement", std::to_string(same) + "/" + std::to_string(ours.images));
  EXPECT_GE(same, ours.images * 999 / 1000) << "top-1 agreement " << same << "/" << ours.images;
  EXPECT_GT(ours.accuracy(), 0.5);  // and the model is still a classifier
}

TEST(QuantizedOrtAgreement, Uint8PerTensorW8A8) {
  QuantizeOptions o;
  expect_agreement(o, "u8_pertensor.onnx");
}

TEST(QuantizedOrtAgreement, Int8PerChannelEntropyWithBiasCorrection) {
  QuantizeOptions o;
  o.format.activation_type = DType::i8;
  o.format.per_channel = true;
  o.method = CalibrationMethod::entropy;
  o.bias_correction = true;
  o.bias_correction_images = 100;
  expect_agreement(o, "s8_perchannel_entropy_bc.onnx");
}

TEST(QuantizedOrtAgreement, NarrowW4A5WithClipAndGptqRounding) {
  QuantizeOptions o;
  o.format.weight_bits = 4;
  o.format.activation_bits = 5;
  o.format.per_channel = true;
  o.method = CalibrationMethod::mse;
  o.gptq_rounding = true;
  o.rounding.images = 100;
  expect_agreement(o, "w4a5_mse.onnx");
}

}  // namespace
}  // namespace qplay::quantize
