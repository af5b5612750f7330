// Calibration data selection and streaming statistics.
#include "quantize/calibration.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "quantize_test_support.h"
#include "support/test_support.h"

namespace qplay::quantize {
namespace {

std::vector<int64_t> per_class(const Dataset& d) {
  std::vector<int64_t> n(kCifarClasses, 0);
  for (auto l : d.labels) n[l]++;
  return n;
}

TEST(Calibration, DefaultSampleIsTheShippedTrainingSample) {
  const std::string shared = qplay::testing::shared_dir();
  if (shared.empty() || !std::filesystem::exists(shared + "/data/cifar10/data_batch_1.bin"))
    GTEST_SKIP() << "../shared/data/cifar10 is not here";
  EXPECT_EQ(default_calibration_path(), shared + "/data/cifar10/data_batch_1.bin");
  const Dataset chosen = select_calibration_images(load_calibration_data(default_calibration_path()), 1000, 0);
  const Dataset shipped = load_cifar10(default_train_sample_path());
  EXPECT_EQ(chosen.labels, shipped.labels);
  EXPECT_TRUE(chosen.pixels == shipped.pixels);
}

TEST(Calibration, StratifiedAndDeterministicPerSeed) {
  const Dataset train = load_cifar10(default_train_sample_path(), CifarSplit::train);
  const Dataset a = select_calibration_images(train, 205, 7);
  const Dataset b = select_calibration_images(train, 205, 7);
  const Dataset c = select_calibration_images(train, 205, 8);
  EXPECT_EQ(a.size(), 205);
  EXPECT_TRUE(a.pixels == b.pixels);
  EXPECT_FALSE(a.pixels == c.pixels);
  const auto counts = per_class(a);
  for (int k = 0; k < kCifarClasses; ++k) EXPECT_EQ(counts[k], k < 5 ? 21 : 20) << k;
  EXPECT_THROW(select_calibration_images(train, 2000, 0), Error);  // 100 per class available
}

TEST(Calibration, RefusesTestImagesAndMissingFiles) {
  EXPECT_THROW(load_calibration_data(default_test_sample_path()), Error);
  EXPECT_THROW(load_calibration_data("/somewhere/test_batch.bin"), Error);
  try {
    load_calibration_data("/no/such/calib.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'/no/such/calib.bin' does not exist"), std::string::npos) << e.what();
  }
}

TEST(Calibration, StatisticsStreamOverBatchesAndThreads) {
  const Graph model = load_onnx(qplay::testing::model_path("resnet8_fp32.onnx"));
  const Dataset& images = testing::calibration_sample(200);
  BatchRunOptions one_thread{1, 200}, two_threads{2, 32};
  const auto a = collect_activation_stats(model, {"input_nchw", "activation", "conv2d_2"}, images, true, one_thread);
  const auto b = collect_activation_stats(model, {"input_nchw", "activation", "conv2d_2"}, images, true, two_threads);
  // Raw pixels: 0..255 integers, every value counted once.
  EXPECT_EQ(a.at("input_nchw").min, 0.0f);
  EXPECT_EQ(a.at("input_nchw").max, 255.0f);
  EXPECT_TRUE(a.at("input_nchw").all_integers);
  EXPECT_EQ(a.at("input_nchw").count, 200u * kCifarPixels);
  EXPECT_EQ(a.at("input_nchw").histogram_total(), 200u * kCifarPixels);
  EXPECT_GE(a.at("activation").min, 0.0f);  // a ReLU output
  EXPECT_LT(a.at("conv2d_2").min, 0.0f);    // a conv output feeding Add
  for (const auto& [name, s] : a) {
    EXPECT_EQ(s.min, b.at(name).min) << name;
    EXPECT_EQ(s.max, b.at(name).max) << name;
    EXPECT_EQ(s.zeros, b.at(name).zeros) << name;
    EXPECT_TRUE(s.bins == b.at(name).bins) << name;  // batch split and threads do not matter
  }
}

}  // namespace
}  // namespace qplay::quantize
