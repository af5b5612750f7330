// The HTTP server end to end: a Playground with the shipped models and sample, served on a free
// loopback port, called through httplib::Client. Results are checked against the library called
// directly (session::evaluate, apply_edits + Executor), not against the server's own numbers.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stb_image.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "analysis/edits.h"
#include "io/onnx_model.h"
#include "runtime/integer/integer_mode.h"
#include "runtime/executor.h"
#include "server/http_server.h"
#include "server/images.h"
#include "server/static_files.h"
#include "session/evaluate.h"
#include "support/test_support.h"

namespace qplay::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kCacheImages = 100;

PlaygroundOptions test_options(const std::string& workspace) {
  PlaygroundOptions o;
  o.models = {testing::model_path("resnet8_fp32.onnx"), testing::model_path("resnet8_int8.onnx"),
              testing::model_path("resnet8_uint8.onnx")};
  o.workspace = workspace;
  o.cache_images = kCacheImages;
  o.background_caches = false;
  o.calibration = testing::source_dir() + "/data/cifar10_train_1000.bin";
  return o;
}

// ctest runs every test in a process of its own, two at a time: directories are per process.
fs::path fresh_dir(const std::string& name) {
  const fs::path dir = testing::output_dir("server") + "/" + name + "-" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Outputs of a graph on image k of the shipped sample.
Tensor run_on_image(std::shared_ptr<const Graph> g, const Dataset& data, int64_t k) {
  const Executor exec(g);
  const ValueInfo& in = g->inputs.at(0);
  std::map<std::string, Tensor> feeds{{in.name, make_image_batch(data, k, 1, image_layout_for(in))}};
  return exec.run(feeds).at(g->outputs.at(0).name);
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path root = fresh_dir("suite");
    web_ = root / "web";
    fs::create_directories(web_ / "app");
    std::ofstream(web_ / "index.html") << "<!doctype html><title>qplay</title>";
    std::ofstream(web_ / "app" / "main.js") << "console.log('qplay')";
    std::ofstream(root / "secret.txt") << "not for the browser";
    fs::create_symlink(root, web_ / "outside");  // a link leading out of the web directory

    playground_ = new Playground(test_options((root / "workspace").string()));
    http_ = new HttpServer(*playground_, web_.string());
    port_ = http_->bind("127.0.0.1", 0);
    http_->start_background();
  }
  static void TearDownTestSuite() {
    delete http_;
    delete playground_;
    std::error_code ec;
    fs::remove_all(web_.parent_path(), ec);
  }

  static httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c;
  }

  static json get_json(const std::string& path, int expected = 200) {
    auto c = client();
    auto res = c.Get(path.c_str());
    EXPECT_TRUE(res) << path;
    if (!res) return nullptr;
    EXPECT_EQ(res->status, expected) << path << ": " << res->body;
    return json::parse(res->body);
  }

  static json post_json(const std::string& path, const json& body, int expected) {
    auto c = client();
    auto res = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(res) << path;
    if (!res) return nullptr;
    EXPECT_EQ(res->status, expected) << path << " " << body.dump() << ": " << res->body;
    return json::parse(res->body);
  }

  static int64_t base_version(const std::string& model) {
    const json session = get_json("/api/session");  // named: the loop must not outlive it
    for (const auto& m : session["models"])
      if (m["id"] == model) return m["base_version"].get<int64_t>();
    ADD_FAILURE() << "no model " << model;
    return -1;
  }

  static json wait_for_job(int64_t id) {
    for (int i = 0; i < 1200; ++i) {
      json j = get_json("/api/jobs/" + std::to_string(id));
      if (j["state"] != "running") return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "job " << id << " did not finish";
    return nullptr;
  }

  static std::shared_ptr<const Graph> load(const std::string& file) {
    return std::make_shared<const Graph>(load_onnx(testing::model_path(file)));
  }

  static inline Playground* playground_ = nullptr;
  static inline HttpServer* http_ = nullptr;
  static inline int port_ = 0;
  static inline fs::path web_;
};

TEST_F(ServerTest, SessionListsModelsDataAndLimits) {
  const json s = get_json("/api/session");
  ASSERT_EQ(s["models"].size(), 3u);
  EXPECT_EQ(s["fp32_model"], "resnet8_fp32");
  EXPECT_EQ(s["models"][0]["kind"], "fp32");
  EXPECT_TRUE(s["models"][0]["base_version"].is_null());
  EXPECT_EQ(s["models"][1]["id"], "resnet8_int8");
  EXPECT_EQ(s["models"][1]["kind"], "quantized");
  EXPECT_EQ(s["models"][1]["format"], "qdq");
  EXPECT_EQ(s["models"][1]["layers"], 14);
  EXPECT_EQ(s["models"][1]["cache"], "ready");
  EXPECT_EQ(s["data"]["images"], 1000);
  EXPECT_EQ(s["data"]["classes"].size(), 10u);
  EXPECT_EQ(s["data"]["classes"][3], "cat");
  EXPECT_EQ(s["limits"]["model_upload_bytes"], 64 << 20);
  EXPECT_EQ(s["limits"]["image_upload_bytes"], 4 << 20);
}

TEST_F(ServerTest, GraphNamesNodesLayersAndInitializers) {
  const json g = get_json("/api/models/resnet8_int8/graph");
  const auto graph = load("resnet8_int8.onnx");
  ASSERT_EQ(g["nodes"].size(), graph->nodes.size());
  bool conv_found = false;
  for (const auto& n : g["nodes"])
    if (n["op_type"] == "Conv" && n["name"] == "conv2d") {
      conv_found = true;
      EXPECT_EQ(n["layer"], "conv2d");
      EXPECT_TRUE(n["attributes"].contains("pads"));
    }
  EXPECT_TRUE(conv_found);
  EXPECT_EQ(g["initializers"].size(), graph->initializers.size());
  EXPECT_EQ(g["layers"].size(), 14u);
  EXPECT_EQ(g["inputs"][0]["name"], graph->inputs[0].name);
}

TEST_F(ServerTest, ScaleEditChangesSingleImageOutputsAndAccuracyIsIncremental) {
  const int64_t base = base_version("resnet8_int8");
  const json v = post_json("/api/versions", {{"parent", base}, {"edits", {"activation_2.scale=0.5"}}}, 201);
  ASSERT_TRUE(v.contains("id"));
  EXPECT_EQ(v["parent"], base);
  EXPECT_EQ(v["model"], "resnet8_int8");
  ASSERT_EQ(v["edits"].size(), 1u);
  EXPECT_EQ(v["edits"][0], "--set activation_2.scale=0.5");
  EXPECT_EQ(v["edit_list"][0]["kind"], "set_scale");

  // Accuracy of the edited model on the cached images, against a full run of apply_edits' graph.
  const auto graph = load("resnet8_int8.onnx");
  auto edited = std::make_shared<const Graph>(apply_edits(*graph, {parse_set_edit("activation_2.scale=0.5")}));
  EvalOptions eo;
  eo.limit = kCacheImages;
  const EvalResult truth = evaluate(Executor(edited), playground_->data(), eo);
  const json& acc = v["accuracy"][std::to_string(kCacheImages)];
  EXPECT_EQ(acc["correct"], truth.correct);
  EXPECT_EQ(acc["source"], "incremental");
  EXPECT_EQ(v["evaluation"]["correct_after"], truth.correct);

  const json before = post_json("/api/infer", {{"version", base}, {"image", 7}}, 200);
  const json after = post_json("/api/infer", {{"version", v["id"]}, {"image", 7}}, 200);
  EXPECT_EQ(before["fp32"], after["fp32"]);
  EXPECT_NE(before["quantized"]["top5"][0]["probability"], after["quantized"]["top5"][0]["probability"]);
  EXPECT_EQ(after["label"], playground_->data().labels[7]);
  ASSERT_EQ(after["layers"].size(), 14u);
  EXPECT_TRUE(after["layers"][0]["accumulated"].contains("sqnr_db"));
  EXPECT_TRUE(after["layers"][0]["accumulated"].contains("clip_rate"));
  // The layer producing the edited activation now has a ~10x coarser output grid: its own
  // (isolated) error grows by ~20 dB.
  std::string owner;
  const json quant = get_json("/api/versions/" + std::to_string(v["id"].get<int64_t>()) + "/quant");
  for (const auto& t : quant["tensors"])
    if (t["tensor"] == "activation_2") owner = t["layer"];
  ASSERT_FALSE(owner.empty());
  auto sqnr = [](const json& r, const std::string& layer) {
    for (const auto& l : r["layers"])
      if (l["layer"] == layer) return l["isolated"]["sqnr_db"].get<double>();
    return 0.0;
  };
  EXPECT_LT(sqnr(after, owner), sqnr(before, owner) - 10.0) << owner;

  // The quantized prediction equals a direct run of the edited graph.
  const Tensor out = run_on_image(edited, playground_->data(), 7);
  const int64_t argmax = std::max_element(out.data<float>(), out.data<float>() + out.numel()) - out.data<float>();
  EXPECT_EQ(after["quantized"]["prediction"], argmax);
}

// "mode": "integer" re-evaluates in integer mode (a full integer-mode run of the edited model);
// the version's recorded accuracy stays simulate mode's; an unknown mode is refused by name.
TEST_F(ServerTest, EditsReevaluateInIntegerModeOnRequest) {
  const int64_t base = base_version("resnet8_uint8");
  const std::string edit = "conv2d_6.weight_quantized.scale=0.002";
  const json v = post_json("/api/versions", {{"parent", base}, {"edits", {edit}}, {"mode", "integer"}}, 201);
  EXPECT_EQ(v["evaluation"]["mode"], "integer");
  EXPECT_FALSE(v["accuracy"].contains(std::to_string(kCacheImages))) << v.dump();
  const auto edited = integer::graph_for_mode(apply_edits(*load("resnet8_uint8.onnx"), {parse_set_edit(edit)}),
                                              integer::RunMode::integer);
  EvalOptions eo;
  eo.limit = kCacheImages;
  const EvalResult truth = evaluate(Executor(edited), playground_->data(), eo);
  EXPECT_EQ(v["evaluation"]["correct_after"], truth.correct);
  const json simulate = post_json("/api/versions", {{"parent", base}, {"edits", {edit}}, {"mode", "simulate"}}, 201);
  EXPECT_EQ(simulate["evaluation"]["mode"], "simulate");
  EXPECT_TRUE(simulate["accuracy"].contains(std::to_string(kCacheImages)));

  const json bad = post_json("/api/versions", {{"parent", base}, {"edits", {edit}}, {"mode", "float16"}}, 400);
  EXPECT_NE(bad["error"].get<std::string>().find("'float16'"), std::string::npos) << bad.dump();
}

TEST_F(ServerTest, EditFormsAreEquivalentAndInvalidEditsNameTensorAndValue) {
  const int64_t base = base_version("resnet8_uint8");
  const json a = post_json("/api/versions",
                           {{"parent", base},
                            {"evaluate", false},
                            {"edits",
                             {"--bits conv2d_3.weight_quantized=4", json{{"bypass", "add_1"}},
                              json{{"kind", "set_zero_point"}, {"target", "activation_2"}, {"value", 3}}}}},
                           201);
  EXPECT_EQ(a["edits"],
            json({"--bits conv2d_3.weight_quantized=4", "--bypass add_1", "--set activation_2.zero_point=3"}));
  // A child version keeps the parent's edits.
  const json b = post_json("/api/versions", {{"parent", a["id"]}, {"edits", {"activation_3.scale=0.1"}}}, 201);
  EXPECT_EQ(b["edits"].size(), 4u);
  EXPECT_EQ(b["parent"], a["id"]);

  const json bad = post_json("/api/versions", {{"parent", base}, {"edits", {"activation_2.scale=-1"}}}, 400);
  const std::string msg = bad["error"];
  EXPECT_NE(msg.find("activation_2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("-1"), std::string::npos) << msg;
  const json unknown = post_json("/api/versions", {{"parent", base}, {"edits", {"nope.scale=1"}}}, 400);
  EXPECT_NE(unknown["error"].get<std::string>().find("nope"), std::string::npos);
  const json bits = post_json("/api/versions", {{"parent", base}, {"edits", {json{{"bits", "activation=9"}}}}}, 400);
  EXPECT_NE(bits["error"].get<std::string>().find("9"), std::string::npos);

  // The quantized tensors after the edits: narrowed bits and the new zero point.
  const json q = get_json("/api/versions/" + std::to_string(b["id"].get<int64_t>()) + "/quant");
  bool weight_seen = false, act_seen = false;
  for (const auto& t : q["tensors"]) {
    if (t["tensor"] == "conv2d_3.weight_quantized") {
      weight_seen = true;
      EXPECT_EQ(t["bits"], 4);
      EXPECT_EQ(t["qmin"], -8);
      EXPECT_EQ(t["qmax"], 7);
      EXPECT_EQ(t["role"], "weight");
      EXPECT_EQ(t["layer"], "conv2d_3");
      EXPECT_TRUE(t["edited"].get<bool>());
    }
    if (t["tensor"] == "activation_3") {
      act_seen = true;
      EXPECT_FLOAT_EQ(t["scales"][0].get<float>(), 0.1f);
    }
  }
  EXPECT_TRUE(weight_seen);
  EXPECT_TRUE(act_seen);
  EXPECT_EQ(q["layers"].size(), 14u);
}

TEST_F(ServerTest, EvaluateJobMatchesSessionEvaluateAndIsRecorded) {
  const int64_t base = base_version("resnet8_int8");
  const json v = post_json("/api/versions", {{"parent", base}, {"edits", {"--bits conv2d_5.weight_quantized=3"}}}, 201);
  const int64_t vid = v["id"];
  const json started = post_json("/api/jobs", {{"kind", "evaluate"}, {"version", vid}, {"limit", 150}}, 202);
  const json job = wait_for_job(started["id"]);
  ASSERT_EQ(job["state"], "done") << job.dump();

  const auto graph = load("resnet8_int8.onnx");
  auto edited = std::make_shared<const Graph>(apply_edits(*graph, {parse_bits_edit("conv2d_5.weight_quantized=3")}));
  EvalOptions eo;
  eo.limit = 150;
  const EvalResult truth = evaluate(Executor(edited), playground_->data(), eo);
  const json& r = job["result"];
  EXPECT_EQ(r["images"], 150);
  EXPECT_EQ(r["correct"], truth.correct);
  EXPECT_EQ(r["confusion"], json(truth.confusion));
  EXPECT_EQ(r["per_class"].size(), 10u);
  EXPECT_EQ(job["progress"]["done"], 150);

  const EvalResult fp32 = evaluate(Executor(load("resnet8_fp32.onnx")), playground_->data(), eo);
  size_t flipped = 0;
  for (int64_t i = 0; i < 150; ++i) flipped += fp32.predictions[i] != truth.predictions[i];
  EXPECT_EQ(r["flipped"].size(), flipped);

  const json recorded = get_json("/api/versions/" + std::to_string(vid));
  EXPECT_EQ(recorded["accuracy"]["150"]["correct"], truth.correct);
  EXPECT_EQ(recorded["accuracy"]["150"]["source"], "job");
}

TEST_F(ServerTest, ExportedModelReloadsAndComputesTheSameOutputs) {
  const int64_t base = base_version("resnet8_uint8");
  const json v = post_json(
      "/api/versions", {{"parent", base}, {"edits", {"activation_4.scale=0.2", json{{"bypass", "conv2d_2"}}}}}, 201);
  auto c = client();
  auto res = c.Get(("/api/versions/" + std::to_string(v["id"].get<int64_t>()) + "/export.onnx").c_str());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Disposition").find("attachment"), std::string::npos);
  auto exported = std::make_shared<const Graph>(load_onnx_from_bytes(res->body, "export.onnx"));
  auto direct = std::make_shared<const Graph>(
      apply_edits(*load("resnet8_uint8.onnx"), {parse_set_edit("activation_4.scale=0.2"), bypass_edit("conv2d_2")}));
  for (int64_t k : {0, 5, 42}) {
    const Tensor a = run_on_image(exported, playground_->data(), k);
    const Tensor b = run_on_image(direct, playground_->data(), k);
    ASSERT_EQ(a.bytes.size(), b.bytes.size());
    EXPECT_EQ(0, std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size())) << "image " << k;
  }
}

TEST_F(ServerTest, ImagesListAndPng) {
  const json list = get_json("/api/images?offset=10&limit=5");
  EXPECT_EQ(list["total"], 1000);
  ASSERT_EQ(list["images"].size(), 5u);
  EXPECT_EQ(list["images"][0]["index"], 10);
  EXPECT_EQ(list["images"][0]["label"], playground_->data().labels[10]);

  auto c = client();
  auto res = c.Get("/api/images/3.png");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "image/png");
  int w = 0, h = 0, n = 0;
  uint8_t* px =
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(res->body.data()), int(res->body.size()), &w, &h, &n, 3);
  ASSERT_NE(px, nullptr);
  EXPECT_EQ(w, 32);
  EXPECT_EQ(h, 32);
  const uint8_t* planar = &playground_->data().pixels[3 * kCifarPixels];
  EXPECT_EQ(px[0], planar[0]);                       // R of pixel 0
  EXPECT_EQ(px[3 * 33 + 2], planar[2 * 1024 + 33]);  // B of pixel (1, 1)
  stbi_image_free(px);

  // The same image uploaded as a PNG predicts exactly as the data-set image.
  const int64_t base = base_version("resnet8_int8");
  const std::string b64 = [&] {
    static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    const std::string& s = res->body;
    for (size_t i = 0; i < s.size(); i += 3) {
      uint32_t v = uint8_t(s[i]) << 16;
      if (i + 1 < s.size()) v |= uint8_t(s[i + 1]) << 8;
      if (i + 2 < s.size()) v |= uint8_t(s[i + 2]);
      out += abc[(v >> 18) & 63];
      out += abc[(v >> 12) & 63];
      out += i + 1 < s.size() ? abc[(v >> 6) & 63] : '=';
      out += i + 2 < s.size() ? abc[v & 63] : '=';
    }
    return out;
  }();
  const json up = post_json("/api/infer", {{"version", base}, {"png", b64}}, 200);
  const json ref = post_json("/api/infer", {{"version", base}, {"image", 3}}, 200);
  EXPECT_TRUE(up["image"].is_null());
  EXPECT_EQ(up["fp32"], ref["fp32"]);
  EXPECT_EQ(up["quantized"], ref["quantized"]);
}

TEST_F(ServerTest, LayerDetailHasWeightAndActivationHistograms) {
  const int64_t base = base_version("resnet8_int8");
  const json l = get_json("/api/versions/" + std::to_string(base) + "/layers/conv2d_1?image=4&bins=32");
  EXPECT_EQ(l["layer"], "conv2d_1");
  EXPECT_EQ(l["kind"], "conv");
  ASSERT_FALSE(l["metrics"].is_null());
  EXPECT_TRUE(l["metrics"]["accumulated"].contains("sqnr_db"));
  EXPECT_EQ(l["weight"]["histogram"]["bins"], 32);
  EXPECT_EQ(l["weight"]["histogram"]["kind"], "weight");
  const auto& channels = l["weight"]["per_channel"];
  ASSERT_EQ(channels.size(), 16u);
  EXPECT_FALSE(channels[0]["scale"].is_null());  // per-channel weights in this model
  EXPECT_EQ(l["weight"]["heatmap"]["rows"], 16);
  EXPECT_EQ(l["weight"]["heatmap"]["values"].size(), 16u);
  EXPECT_EQ(l["weight"]["heatmap"]["values"][0].size(), l["weight"]["heatmap"]["cols"].get<size_t>());
  EXPECT_EQ(l["activation"]["images"], 1);
  EXPECT_FALSE(l["activation"]["histogram"]["float"].is_null());
  EXPECT_FALSE(l["activation"]["histogram"]["grid"].is_null());

  get_json("/api/versions/" + std::to_string(base) + "/layers/conv99", 404);
  get_json("/api/versions/" + std::to_string(base) + "/layers/conv2d?image=5000", 404);
}

TEST_F(ServerTest, ResidualsMatchTheCliShape) {
  const json r = get_json("/api/versions/" + std::to_string(base_version("resnet8_uint8")) + "/residuals?limit=20");
  EXPECT_EQ(r["images"], 20);
  ASSERT_EQ(r["adds"].size(), 3u);
  EXPECT_EQ(r["adds"][0]["name"], "add");
  EXPECT_TRUE(r["adds"][0]["requantization"].contains("sqnr_db"));
  // Against the playground's FP32 model: upstream error on top of the requantization's.
  EXPECT_FALSE(r["fp32_model"].is_null());
  EXPECT_EQ(r["adds"][0]["fp32_layer"], "add");
  EXPECT_LT(r["adds"][0]["against_fp32"]["sqnr_db"].get<double>(), r["adds"][0]["requantization"]["sqnr_db"].get<double>());
}

// Simulate against integer mode for a served quantized model: the CLI's shape over the cached
// images; an FP32 model and an unknown one are refused.
TEST_F(ServerTest, ModeComparisonOfAQuantizedModel) {
  const json m = get_json("/api/models/resnet8_uint8/modes");
  EXPECT_EQ(m["model_id"], "resnet8_uint8");
  EXPECT_EQ(m["images"], kCacheImages);
  EXPECT_LE(m["top1_agreement"].get<int64_t>(), kCacheImages);
  EXPECT_GE(m["top1_agreement"].get<int64_t>(), kCacheImages - 1);
  ASSERT_GE(m["layers"].size(), 12u);
  EXPECT_EQ(m["layers"][0]["name"], "conv2d");
  EXPECT_TRUE(m["layers"][0]["integer_vs_simulate"].contains("sqnr_db"));
  EXPECT_NE(get_json("/api/models/resnet8_fp32/modes", 400)["error"].get<std::string>().find("FP32"),
            std::string::npos);
  get_json("/api/models/no_such_model/modes", 404);
}

// Threads of finished jobs are joined when the next job starts: a long-running server does not
// keep one unjoined thread (and its stack) per job it ever ran.
TEST_F(ServerTest, FinishedJobThreadsAreJoined) {
  const int64_t base = base_version("resnet8_int8");
  auto run_one = [&] {
    const json started = post_json("/api/jobs", {{"kind", "evaluate"}, {"version", base}, {"limit", 10}}, 202);
    EXPECT_EQ(wait_for_job(started["id"].get<int64_t>())["state"], "done");
  };
  run_one();
  const size_t before = playground_->unjoined_threads();
  for (int i = 0; i < 12; ++i) run_one();
  EXPECT_LE(playground_->unjoined_threads(), before + 1);  // the last job's, not 12 more
}

TEST_F(ServerTest, EventStreamDeliversProgressAndFinalEvent) {
  const int64_t base = base_version("resnet8_int8");
  const json started = post_json("/api/jobs", {{"kind", "compare"}, {"version", base}, {"limit", 100}}, 202);
  std::string stream;
  auto c = client();
  auto res = c.Get(("/api/jobs/" + std::to_string(started["id"].get<int64_t>()) + "/events").c_str(),
                   [&](const char* data, size_t n) {
                     stream.append(data, n);
                     return true;
                   });
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  EXPECT_NE(stream.find("event: progress\ndata: {\"done\":"), std::string::npos) << stream;
  const size_t done = stream.find("event: done\ndata: ");
  ASSERT_NE(done, std::string::npos) << stream;
  const json final_job = json::parse(stream.substr(done + 18, stream.find("\n\n", done) - done - 18));
  EXPECT_EQ(final_job["state"], "done");
  EXPECT_EQ(final_job["result"]["images"], 100);
  EXPECT_EQ(final_job["result"]["layers"].size(), 14u);

  // A stream opened after the end sends the final event at once.
  std::string late;
  c.Get(("/api/jobs/" + std::to_string(started["id"].get<int64_t>()) + "/events").c_str(),
        [&](const char* d, size_t n) {
          late.append(d, n);
          return true;
        });
  EXPECT_EQ(late.rfind("event: done\n", 0), 0u) << late;
}

TEST_F(ServerTest, CancelStopsAJob) {
  const int64_t base = base_version("resnet8_int8");
  const json started =
      post_json("/api/jobs", {{"kind", "sensitivity"}, {"version", base}, {"options", {{"bits", {2, 4, 6, 8}}}}}, 202);
  const std::string path = "/api/jobs/" + std::to_string(started["id"].get<int64_t>());
  auto c = client();
  auto res = c.Delete(path.c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  const json job = wait_for_job(started["id"]);
  EXPECT_EQ(job["state"], "cancelled") << job.dump();
  EXPECT_FALSE(job.contains("result"));
}

TEST_F(ServerTest, QuantizeJobAddsAModelWithABaseVersion) {
  const json started = post_json(
      "/api/jobs",
      {{"kind", "quantize"},
       {"model", "resnet8_fp32"},
       {"options", {{"method", "minmax"}, {"per_channel", true}, {"calib_count", 50}, {"name", "w8a8_test"}}}},
      202);
  const json job = wait_for_job(started["id"]);
  ASSERT_EQ(job["state"], "done") << job.dump();
  EXPECT_EQ(job["result"]["model"], "w8a8_test");
  const int64_t v = job["result"]["version"];
  bool listed = false;
  const json session = get_json("/api/session");
  for (const auto& m : session["models"])
    if (m["id"] == "w8a8_test") {
      listed = true;
      EXPECT_EQ(m["kind"], "quantized");
      EXPECT_EQ(m["base_version"], v);
    }
  EXPECT_TRUE(listed);
  const json r = post_json("/api/infer", {{"version", v}, {"image", 0}}, 200);
  EXPECT_EQ(r["layers"].size(), 14u);
  post_json("/api/jobs", {{"kind", "quantize"}, {"model", "resnet8_fp32"}, {"options", {{"wbits", 9}}}}, 400);
  post_json("/api/jobs", {{"kind", "quantize"}, {"model", "resnet8_fp32"}, {"options", {{"colour", "red"}}}}, 400);
}

TEST_F(ServerTest, StaticFilesStayInsideTheWebDirectory) {
  auto c = client();
  auto index = c.Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_NE(index->body.find("qplay"), std::string::npos);
  auto js = c.Get("/app/main.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_NE(js->get_header_value("Content-Type").find("javascript"), std::string::npos);
  for (const char* path : {"/../secret.txt", "/app/../../secret.txt", "/%2e%2e/secret.txt", "/outside/secret.txt",
                           "//etc/passwd", "/..%2fsecret.txt", "/app/..\\..\\secret.txt", "/missing.html"}) {
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
    EXPECT_EQ(res->body.find("not for the browser"), std::string::npos) << path;
    EXPECT_TRUE(json::parse(res->body).contains("error")) << path;
  }
  // Brotli (quality 11 in Debian's httplib build) is never chosen: it takes seconds on big files.
  auto br = c.Get("/app/main.js", {{"Accept-Encoding", "gzip, deflate, br"}});
  ASSERT_TRUE(br);
  EXPECT_NE(br->get_header_value("Content-Encoding"), "br");
  // The resolver itself, without the HTTP layer's normalization.
  EXPECT_FALSE(resolve_static_path(web_.string(), "/../secret.txt"));
  EXPECT_FALSE(resolve_static_path(web_.string(), "/outside/secret.txt"));
  EXPECT_FALSE(resolve_static_path(web_.string(), "/app/../../secret.txt"));
  EXPECT_FALSE(resolve_static_path(web_.string(), "relative.txt"));
  EXPECT_TRUE(resolve_static_path(web_.string(), "/app/main.js"));
  EXPECT_TRUE(resolve_static_path(web_.string(), "/"));
}

TEST_F(ServerTest, OversizedUploadsAre413) {
  auto c = client();
  const std::string big((64u << 20) + (2u << 20), 'x');
  auto res = c.Post("/api/models?name=big", big, "application/octet-stream");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_TRUE(json::parse(res->body).contains("error")) << res->body;

  const std::string png(6u << 20, 'A');  // base64 of ~4.5 MB
  const json r = post_json("/api/infer", {{"version", base_version("resnet8_int8")}, {"png", png}}, 413);
  EXPECT_NE(r["error"].get<std::string>().find("MB"), std::string::npos);

  // A model upload within the limit works.
  auto ok = c.Post("/api/models?name=uploaded", testing::read_binary(testing::model_path("resnet8_uint8.onnx")),
                   "application/octet-stream");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201) << ok->body;
  EXPECT_EQ(json::parse(ok->body)["kind"], "quantized");
  auto junk = c.Post("/api/models?name=junk", std::string("not onnx"), "application/octet-stream");
  ASSERT_TRUE(junk);
  EXPECT_EQ(junk->status, 400);
}

TEST_F(ServerTest, BadRequestsAre4xxWithAMessage) {
  const std::string base = std::to_string(base_version("resnet8_int8"));
  struct Case {
    const char* method;
    std::string path;
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"GET", "/api/models/nope/graph", "", 404},
      {"GET", "/api/versions/99999", "", 404},
      {"GET", "/api/versions/abc/quant", "", 404},
      {"GET", "/api/versions/99999/export.onnx", "", 404},
      {"GET", "/api/versions/" + base + "/layers/nope", "", 404},
      {"GET", "/api/images/1000.png", "", 404},
      {"GET", "/api/images?offset=-1", "", 400},
      {"GET", "/api/images?limit=zero", "", 400},
      {"GET", "/api/jobs/99999", "", 404},
      {"DELETE", "/api/jobs/99999", "", 404},
      {"GET", "/api/jobs/99999/events", "", 404},
      {"GET", "/api/nothing", "", 404},
      {"POST", "/api/versions", "{not json", 400},
      {"POST", "/api/versions", "", 400},
      {"POST", "/api/versions", R"({"parent": 99999, "edits": []})", 404},
      {"POST", "/api/versions", R"({"parent": )" + base + R"(, "edits": "x.scale=1"})", 400},
      {"POST", "/api/versions", R"({"parent": )" + base + R"(, "edits": [{"kind": "paint"}]})", 400},
      {"POST", "/api/versions", R"({"parent": )" + base + R"(, "edits": ["activation.zero_point=300"]})", 400},
      {"POST", "/api/versions", R"({"parent": )" + base + R"(, "edits": [{"bypass": "conv99"}]})", 400},
      {"POST", "/api/versions", R"({"parent": )" + base + R"(, "colour": 1})", 400},
      {"POST", "/api/versions", R"({"model": "resnet8_fp32", "edits": []})", 400},
      {"POST", "/api/infer", R"({"version": )" + base + R"(, "image": 1000})", 404},
      {"POST", "/api/infer", R"({"version": 99999, "image": 0})", 404},
      {"POST", "/api/infer", R"({"version": )" + base + R"(})", 400},
      {"POST", "/api/infer", R"({"version": )" + base + R"(, "png": "!!!"})", 400},
      {"POST", "/api/infer", R"({"version": )" + base + R"(, "png": "aGVsbG8="})", 400},
      {"POST", "/api/infer", R"({"image": 0})", 400},
      {"POST", "/api/jobs", R"({"kind": "dance", "version": 1})", 400},
      {"POST", "/api/jobs", R"({"kind": "evaluate", "version": 99999})", 404},
      {"POST", "/api/jobs", R"({"kind": "evaluate", "version": )" + base + R"(, "limit": 0})", 400},
      {"POST", "/api/jobs", R"({"kind": "sensitivity", "version": )" + base + R"(, "options": {"bits": [1]}})", 400},
      {"POST", "/api/jobs", R"({"kind": "compare"})", 400},
      {"DELETE", "/api/session", "", 405},
      {"POST", "/api/session", "{}", 405},
      {"PUT", "/api/versions", "{}", 405},
      {"DELETE", "/api/versions/" + base, "", 405},
      {"POST", "/api/images/1.png", "{}", 405},
  };
  auto c = client();
  for (const Case& k : cases) {
    const std::string m = k.method;
    httplib::Result res = m == "GET"      ? c.Get(k.path.c_str())
                          : m == "DELETE" ? c.Delete(k.path.c_str())
                          : m == "PUT"    ? c.Put(k.path.c_str(), k.body, "application/json")
                                          : c.Post(k.path.c_str(), k.body, "application/json");
    ASSERT_TRUE(res) << m << " " << k.path;
    EXPECT_EQ(res->status, k.status) << m << " " << k.path << " " << k.body << " -> " << res->body;
    json j;
    ASSERT_NO_THROW(j = json::parse(res->body)) << m << " " << k.path << ": " << res->body;
    ASSERT_TRUE(j.contains("error")) << res->body;
    EXPECT_FALSE(j["error"].get<std::string>().empty());
  }
  // The server is still up.
  EXPECT_EQ(get_json("/api/session")["models"].size() >= 3, true);
}

// History: versions survive a restart of the Playground; a corrupt file is moved aside.
TEST(ServerHistoryTest, VersionsSurviveARestartAndCorruptHistoryIsMovedAside) {
  const fs::path ws = fresh_dir("history");
  int64_t id = 0, uint8_first = 0;
  {
    Playground pg(test_options(ws.string()));
    const int64_t base = pg.session_json()["models"][1]["base_version"];
    uint8_first = pg.session_json()["models"][2]["base_version"];
    const json v = pg.create_version({{"parent", base}, {"edits", {"activation_2.scale=0.07", "--bypass add"}}});
    id = v["id"];
    // An uploaded model is listed in the history and comes back with it (its base version too).
    const json up = pg.add_model(testing::read_binary(testing::model_path("resnet8_uint8.onnx")), "exported_edit");
    EXPECT_EQ(up["id"], "exported_edit");
    pg.wait_until_ready();
  }
  ASSERT_TRUE(fs::exists(ws / "history.json"));
  EXPECT_FALSE(fs::exists(ws / "history.json.tmp"));
  {
    // Served without the uint8 model: its versions are hidden, not erased.
    PlaygroundOptions o = test_options(ws.string());
    o.models.pop_back();
    Playground pg(o);
    for (const auto& v : pg.versions_json()["versions"]) EXPECT_NE(v["model"], "resnet8_uint8");
    EXPECT_EQ(pg.version_json(id)["model"], "resnet8_int8");
  }
  {
    Playground pg(test_options(ws.string()));
    const json v = pg.version_json(id);
    EXPECT_EQ(v["edits"], json({"--set activation_2.scale=0.07", "--bypass add"}));
    EXPECT_EQ(v["accuracy"][std::to_string(kCacheImages)]["source"], "incremental");
    const json next = pg.create_version({{"parent", id}, {"edits", json::array()}});
    EXPECT_GT(next["id"].get<int64_t>(), id);  // ids are never reused
    const json s = pg.session_json();
    ASSERT_EQ(s["models"].size(), 4u);
    EXPECT_EQ(s["models"][2]["base_version"], uint8_first);  // kept while it was not served
    EXPECT_EQ(s["models"][3]["id"], "exported_edit");
    EXPECT_FALSE(s["models"][3]["base_version"].is_null());
  }
  for (const auto& e : fs::directory_iterator(ws))
    EXPECT_EQ(e.path().filename().string().find("corrupt"), std::string::npos) << "history was not readable";
  std::ofstream(ws / "history.json") << "{\"format\": \"qplay-history-1\", \"versions\": [tru";
  {
    Playground pg(test_options(ws.string()));
    EXPECT_THROW(pg.version_json(id), HttpError);
    EXPECT_EQ(pg.versions_json()["versions"].size(), 2u);  // the two base versions, fresh (no upload listed)
  }
  bool aside = false;
  for (const auto& e : fs::directory_iterator(ws))
    aside = aside || e.path().filename().string().find("corrupt") != std::string::npos;
  EXPECT_TRUE(aside);
}

// One server per workspace: a second Playground on it is refused with a message naming the
// workspace and the holder, and nothing of the first one's history is touched; once the first is
// gone the workspace is free again.
TEST(ServerHistoryTest, ASecondServerOnTheSameWorkspaceIsRefused) {
  const fs::path ws = fresh_dir("lock");
  int64_t id = 0;
  {
    Playground first(test_options(ws.string()));
    const int64_t base = first.session_json()["models"][1]["base_version"];
    id = first.create_version({{"parent", base}, {"edits", {"activation_2.scale=0.07"}}})["id"];
    try {
      Playground second(test_options(ws.string()));
      FAIL() << "a second server on the same workspace was accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("in use by another qplay serve"), std::string::npos) << what;
      EXPECT_NE(what.find(ws.string()), std::string::npos) << what;
      EXPECT_NE(what.find("pid " + std::to_string(getpid())), std::string::npos) << what;
    }
    EXPECT_EQ(first.version_json(id)["edits"], json({"--set activation_2.scale=0.07"}));
  }
  Playground again(test_options(ws.string()));
  EXPECT_EQ(again.version_json(id)["edits"], json({"--set activation_2.scale=0.07"}));
}

// Past the cache budget the least recently used re-evaluation cache is dropped; the next request
// that needs it gets "not ready" and starts the rebuild, after which re-evaluation gives what a
// cache built directly gives.
TEST(ServerCacheBudgetTest, LeastRecentlyUsedCacheIsDroppedAndRebuiltOnDemand) {
  const fs::path ws = fresh_dir("budget");
  PlaygroundOptions o = test_options(ws.string());
  o.cache_budget_bytes = 1;  // room for one cache only: the one just built or used stays
  Playground pg(o);
  auto cache_state = [&](const std::string& id) -> std::string {
    const json session = pg.session_json();  // named: the loop must not outlive it
    for (const auto& m : session["models"])
      if (m["id"] == id) return m["cache"];
    return "no model " + id;
  };
  // The constructor built int8's cache, then uint8's, which pushed int8's out.
  EXPECT_EQ(cache_state("resnet8_int8"), "evicted");
  EXPECT_EQ(cache_state("resnet8_uint8"), "ready");

  const json request = {{"model", "resnet8_int8"}, {"edits", {"activation_2.scale=0.07"}}};
  const json first = pg.create_version(request);
  EXPECT_TRUE(first["evaluation"].is_null()) << first.dump();
  EXPECT_NE(first.value("note", "").find("not ready"), std::string::npos) << first.dump();
  pg.wait_until_ready();
  EXPECT_EQ(cache_state("resnet8_int8"), "ready");
  EXPECT_EQ(cache_state("resnet8_uint8"), "evicted");

  const json second = pg.create_version(request);
  ASSERT_FALSE(second["evaluation"].is_null()) << second.dump();
  const auto graph = std::make_shared<const Graph>(load_onnx(testing::model_path("resnet8_int8.onnx")));
  ReevalOptions ro;
  ro.limit = kCacheImages;
  const BaseCache direct = capture_base(graph, pg.data(), ro);
  const Reevaluation want = reevaluate(direct, apply_edits_tracked(*graph, {parse_set_edit("activation_2.scale=0.07")}));
  EXPECT_EQ(second["evaluation"]["correct_after"].get<int64_t>(), want.correct) << second.dump();
  EXPECT_EQ(second["evaluation"]["images"].get<int64_t>(), want.images);
  EXPECT_EQ(want.images, kCacheImages);
}

// The command: `qplay serve --port 0` prints the port it really got, serves, and stops cleanly on SIGTERM.
TEST(ServerCliTest, ServePrintsTheRealPortAndStopsOnSigterm) {
  const fs::path dir = fresh_dir("cli");
  fs::create_directories(dir / "web");
  std::ofstream(dir / "web" / "index.html") << "<title>qplay cli</title>";
  const std::string ws = (dir / "workspace").string(), web = (dir / "web").string();
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(QPLAY_BINARY, "qplay", "serve", "--port", "0", "--workspace", ws.c_str(), "--web", web.c_str(),
          "--cache-images", "20", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string line;
  pollfd p{out[0], POLLIN, 0};
  while (line.find('\n') == std::string::npos && poll(&p, 1, 120000) > 0) {
    char buf[256];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  std::smatch m;
  const bool printed = std::regex_search(line, m, std::regex(R"(qplay: serving http://127\.0\.0\.1:(\d+)/)"));
  EXPECT_TRUE(printed) << line;
  if (printed) {
    const int port = std::stoi(m[1]);
    EXPECT_GT(port, 0);
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    auto s = c.Get("/api/session");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->status, 200);
    EXPECT_EQ(json::parse(s->body)["models"].size(), 3u);
    auto index = c.Get("/");
    ASSERT_TRUE(index);
    EXPECT_NE(index->body.find("qplay cli"), std::string::npos);
  }
  kill(pid, SIGTERM);
  int status = -1;
  for (int i = 0; i < 600 && waitpid(pid, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  close(out[0]);
  ASSERT_TRUE(WIFEXITED(status)) << "qplay serve did not stop on SIGTERM";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(fs::exists(fs::path(ws) / "history.json"));

  std::string output;
  EXPECT_EQ(testing::run_command(std::string(QPLAY_BINARY) + " serve --model nope.onnx --workspace " + ws, output), 1);
  EXPECT_NE(output.find("nope.onnx"), std::string::npos) << output;
  EXPECT_EQ(testing::run_command(std::string(QPLAY_BINARY) + " serve --port 70000 --workspace " + ws, output), 1);
  EXPECT_NE(output.find("70000"), std::string::npos) << output;
}

TEST(ServerImagesTest, Base64DecodesStandardAndUrlForms) {
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(base64_decode("aGVsbG8"), "hello");
  EXPECT_EQ(base64_decode("data:image/png;base64,aGk="), "hi");
  EXPECT_THROW(base64_decode("a*b"), Error);
}

}  // namespace
}  // namespace qplay::server
