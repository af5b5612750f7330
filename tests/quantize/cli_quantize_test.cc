// `qplay quantize` through the real binary: a working run, and bad options as one-line errors
// with exit status 1.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "io/onnx_model.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using testing::expect_clean_error;
using testing::qplay_cli;
using testing::model_path;
using testing::output_dir;

std::string quantize_args(const std::string& extra, int64_t calib_count = 100) {
  return "quantize " + model_path("resnet8_fp32.onnx") + " -o " + output_dir("cli_quantize") + "/out.onnx " +
         "--calib " + default_train_sample_path() + " --calib-count " + std::to_string(calib_count) + " " + extra;
}

TEST(CliQuantize, WritesALoadableQdqModelAndReportsJson) {
  const std::string out = output_dir("cli_quantize") + "/w6a6.onnx";
  const auto r = qplay_cli("quantize " + model_path("resnet8_fp32_bn.onnx") + " -o " + out + " --calib " +
                           default_train_sample_path() + " --calib-count 200 --method percentile --percentile 99.9 " +
                           "--wbits 6 --abits 6 --per-channel --act int8 --exclude dense --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["folded_batchnorms"], 7);
  EXPECT_EQ(j["calibration"]["images"], 200);
  EXPECT_EQ(j["settings"]["activation_bits"], 6);
  EXPECT_EQ(j["quantized_weights"], 9);  // dense excluded
  const Graph g = load_onnx(out);
  EXPECT_GE(g.find_node("activation_Clip"), 0);
}

TEST(CliQuantize, BitsOutOfRange) {
  expect_clean_error(qplay_cli(quantize_args("--wbits 9")), "--wbits 9 is outside 2..8");
  expect_clean_error(qplay_cli(quantize_args("--abits 1")), "--abits 1 is outside 2..8");
}

TEST(CliQuantize, UnknownMethodAndTypes) {
  expect_clean_error(qplay_cli(quantize_args("--method kl")), "unknown calibration method 'kl'");
  expect_clean_error(qplay_cli(quantize_args("--act int4")), "--act 'int4' is not a quantized type");
}

TEST(CliQuantize, ExcludingAMissingNode) {
  expect_clean_error(qplay_cli(quantize_args("--exclude conv2d,no_such_conv")),
                     "cannot exclude node 'no_such_conv': the model has no such node");
}

TEST(CliQuantize, CalibrationFileMissingOrTestData) {
  expect_clean_error(qplay_cli("quantize " + model_path("resnet8_fp32.onnx") + " -o " + output_dir("cli_quantize") +
                               "/x.onnx --calib /no/such/calib.bin"),
                     "calibration data '/no/such/calib.bin' does not exist");
  expect_clean_error(qplay_cli("quantize " + model_path("resnet8_fp32.onnx") + " -o " + output_dir("cli_quantize") +
                               "/x.onnx --calib " + default_test_sample_path()),
                     "is test data; calibrate on training images");
}

TEST(CliQuantize, TooManyCalibrationImages) {
  expect_clean_error(qplay_cli(quantize_args("", 5000)), "a stratified 5000 needs 500");
}

}  // namespace
}  // namespace qplay
