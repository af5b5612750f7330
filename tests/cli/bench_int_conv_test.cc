// `qplay bench --int-conv`: integer mode with oneDNN's conv sums (auto, on AVX-512 VNNI CPUs) and with
// qplay's own kernels only must score the same images identically (the kernels are tested bit for bit in
// integer_kernels_test.cc; this checks the switch reaches them), and a wrong value is refused.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/kernels/fast/qconv_onednn.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using nlohmann::json;
using testing::model_path;
using testing::qplay_cli;

json integer_bench(const std::string& int_conv) {
  const auto r = qplay_cli("bench " + model_path("resnet8_u8act_s8w_pertensor.onnx") +
                           " --mode integer --limit 300 --batch 50 --repeat 1 --warmup-images 0 --int-conv " +
                           int_conv + " --json");
  EXPECT_EQ(r.code, 0) << r.output;
  return json::parse(r.output);
}

TEST(BenchIntConv, OwnKernelsAndOnednnScoreTheSameImages) {
  const json own = integer_bench("own"), with_onednn = integer_bench("auto");
  EXPECT_EQ(own["images"], 300);
  EXPECT_EQ(own["correct"], with_onednn["correct"]);
  EXPECT_GT(own["correct"].get<int64_t>(), 200);  // ResNet-8 scores about 87%
  const std::string isa = with_onednn["isa"];
  EXPECT_EQ(isa.find("oneDNN") != std::string::npos, fast::onednn_qconv_available()) << isa;
  EXPECT_EQ(own["isa"].get<std::string>().find("oneDNN"), std::string::npos);
}

TEST(BenchIntConv, UnknownValueIsRefused) {
  const auto r =
      qplay_cli("bench " + model_path("resnet8_u8act_s8w_pertensor.onnx") + " --mode integer --int-conv fast");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("--int-conv"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qplay
