// Bad input through the real binary: one line naming the problem, exit code 1, no crash.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <limits>

#include "io/onnx_model.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace qplay {
namespace {

using testing::expect_clean_error;
using testing::qplay_cli;
using testing::model_path;
using testing::output_dir;
using testing::read_binary;
using testing::write_binary;

TEST(CliErrors, MissingModelFile) {
  expect_clean_error(qplay_cli("info /no/such/model.onnx"), "cannot open model file '/no/such/model.onnx'");
}

TEST(CliErrors, TruncatedModel) {
  const std::string path = output_dir("cli") + "/truncated.onnx";
  write_binary(path, read_binary(model_path("resnet8_fp32.onnx")).substr(0, 5000));
  expect_clean_error(qplay_cli("eval " + path), "not a valid ONNX model");
}

TEST(CliErrors, GarbageModel) {
  const std::string path = output_dir("cli") + "/garbage.onnx";
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 2654435761u) >> 13);
  write_binary(path, junk);
  expect_clean_error(qplay_cli("info " + path), "not a valid ONNX model");
}

TEST(CliErrors, UnsupportedOperatorNamesOpNodeAndOpset) {
  Graph g;
  g.opset = 13;
  g.inputs.push_back({"x", DType::f32, {1, 4}, {}});
  g.outputs.push_back({"y", DType::f32, {1, 4}, {}});
  g.nodes.push_back(Node{"my_erf", "Erf", "", {"x"}, {"y"}, {}});
  const std::string path = output_dir("cli") + "/unsupported.onnx";
  write_binary(path, export_onnx_bytes(g));
  expect_clean_error(qplay_cli("info " + path), "unsupported operator 'Erf' (node 'my_erf', opset 13)");
}

TEST(CliErrors, ModelInputIncompatibleWithCifar) {
  Graph g;
  g.opset = 13;
  g.inputs.push_back({"x", DType::f32, {-1, 3, 16, 16}, {"N", "", "", ""}});
  g.outputs.push_back({"y", DType::f32, {-1, 3, 16, 16}, {"N", "", "", ""}});
  g.nodes.push_back(Node{"r", "Relu", "", {"x"}, {"y"}, {}});
  const std::string path = output_dir("cli") + "/wrong_input.onnx";
  write_binary(path, export_onnx_bytes(g));
  expect_clean_error(qplay_cli("eval " + path), "not compatible with CIFAR-10 images");
}

TEST(CliErrors, DataFileNotWholeRecords) {
  const std::string path = output_dir("cli") + "/bad_size.bin";
  write_binary(path, std::string(3073 * 2 + 5, '\1'));
  expect_clean_error(qplay_cli("eval " + model_path("resnet8_fp32.onnx") + " --data " + path),
                     "not a multiple of the 3,073-byte");
}

TEST(CliErrors, MissingDataFile) {
  expect_clean_error(qplay_cli("eval " + model_path("resnet8_fp32.onnx") + " --data /no/such.bin"),
                     "data path '/no/such.bin' does not exist");
}

// Rewrites one initializer of the per-tensor QDQ model and returns the new file's path.
std::string qdq_with_modified(const std::string& suffix, const std::function<void(onnx::TensorProto&)>& edit,
                              const std::string& initializer) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(read_binary(model_path("resnet8_u8act_s8w_pertensor.onnx"))));
  bool found = false;
  for (auto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == initializer) { edit(t); found = true; }
  EXPECT_TRUE(found) << initializer;
  const std::string path = output_dir("cli") + "/qdq_" + suffix + ".onnx";
  write_binary(path, m.SerializeAsString());
  return path;
}

void set_float(onnx::TensorProto& t, float v) {
  t.clear_raw_data();
  t.clear_float_data();
  t.add_float_data(v);
}

TEST(CliErrors, ZeroScale) {
  const auto path = qdq_with_modified("zero_scale", [](auto& t) { set_float(t, 0.0f); }, "activation_scale");
  expect_clean_error(qplay_cli("info " + path), "scale is 0; a scale must be finite and greater than 0");
}

TEST(CliErrors, NanScale) {
  const auto path = qdq_with_modified(
      "nan_scale", [](auto& t) { set_float(t, std::numeric_limits<float>::quiet_NaN()); }, "activation_scale");
  const auto r = qplay_cli("eval " + path);
  expect_clean_error(r, "activation_scale");
  EXPECT_NE(r.output.find("nan"), std::string::npos) << r.output;
}

TEST(CliErrors, ZeroPointOutOfRange) {
  const auto path = qdq_with_modified(
      "zp_range",
      [](onnx::TensorProto& t) {
        t.clear_raw_data();
        t.clear_int32_data();
        t.add_int32_data(300);  // uint8 values travel in int32_data; 300 cannot be a uint8
      },
      "activation_zero_point");
  expect_clean_error(qplay_cli("info " + path), "value 300 is out of range for uint8");
}

TEST(CliErrors, BadOptions) {
  const auto r = qplay_cli("eval --batch 0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("--batch"), std::string::npos) << r.output;
  EXPECT_NE(qplay_cli("frobnicate").code, 0);
}

}  // namespace
}  // namespace qplay
