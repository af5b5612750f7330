// The state behind `qplay serve`: the models (loaded once), the data set, the versions (a quantized model's
// base plus an edit list), and the background jobs. The HTTP routes (http_server.cc) only parse and validate
// requests and call these methods, which return the JSON shapes of docs/API.md.
//
// Thread-safety: every public method may be called from several request threads at once. One mutex guards the
// maps; long work (inference, re-evaluation, jobs) runs outside it on immutable, shared data (graphs, the
// re-evaluation caches, materialized versions).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "analysis/compare.h"
#include "analysis/edits.h"
#include "analysis/layers.h"
#include "analysis/reevaluate.h"
#include "io/cifar10.h"
#include "runtime/executor.h"
#include "runtime/integer/integer_mode.h"
#include "server/workspace_lock.h"

namespace qplay::server {

// A user error with the HTTP status it maps to (400 invalid, 404 unknown, 405, 409, 413).
struct HttpError : Error {
  int status;
  HttpError(int status_code, const std::string& message) : Error(message), status(status_code) {}
};

constexpr size_t kModelUploadBytes = 64u << 20;
constexpr size_t kImageUploadBytes = 4u << 20;

struct PlaygroundOptions {
  std::vector<std::string> models;  // ONNX files; the first FP32 one is the reference
  std::string data;                 // CIFAR-10 batch file or folder
  std::string workspace;            // history.json and models made by quantize jobs / uploads
  int threads = 2;
  int64_t cache_images = -1;      // images kept in the re-evaluation caches; -1 = the whole data set
  // Bytes the re-evaluation caches of all models may hold together: past it the least recently used
  // ones are dropped and rebuilt when next needed (each quantize job or upload adds a cache). <= 0: no limit.
  int64_t cache_budget_bytes = int64_t{4} << 30;
  bool background_caches = true;  // false: build them in the constructor (tests)
  std::string calibration;        // quantize jobs' calibration data ("" = the CLI default)
};

struct ModelEntry {
  std::string id;  // file stem, unique
  std::string path;
  std::string kind;    // "fp32" | "quantized"
  std::string format;  // "fp32" | "qdq" | "qoperator"
  std::shared_ptr<const Graph> graph;
  std::shared_ptr<const Executor> executor;  // of the model as loaded (thread-safe)
  std::vector<Layer> layers;
  int64_t base_version = -1;
  bool in_workspace = false;  // made by a quantize job or uploaded: listed in history.json
};

struct AccuracyRecord {
  int64_t images = 0;
  int64_t correct = 0;
  std::string source;  // "incremental" | "full" | "job"
};

struct Version {
  int64_t id = 0;
  std::string model;
  int64_t parent = -1;                         // -1: a base version
  std::vector<Edit> edits;                     // relative to the model's base, in order
  std::string created;                         // ISO 8601 UTC
  std::map<int64_t, AccuracyRecord> accuracy;  // by number of images (the first N)
};

// A version made runnable: the edited graph, its executor and its layers. Immutable.
struct VersionRuntime {
  int64_t version = 0;
  std::string model;
  std::shared_ptr<const Graph> graph;
  std::shared_ptr<const Executor> executor;
  std::vector<QuantParam> params;
  std::vector<Layer> layers;
};

struct Job {
  int64_t id = 0;
  std::string kind;
  std::string created;
  nlohmann::json request;

  mutable std::mutex mu;
  std::condition_variable changed;  // notified on progress and on the end
  std::string state = "running";    // running | done | failed | cancelled
  int64_t done = 0, total = 0;
  uint64_t revision = 0;  // bumped on every change, so event streams see what is new
  nlohmann::json result;
  std::string error;
  double seconds = 0.0;
  std::atomic<bool> cancel{false};

  bool finished() const;           // caller holds mu
  nlohmann::json to_json() const;  // takes mu
  nlohmann::json to_json_locked() const;
};

class Playground {
 public:
  explicit Playground(PlaygroundOptions options);
  ~Playground();  // cancels jobs and cache building, joins their threads
  Playground(const Playground&) = delete;
  Playground& operator=(const Playground&) = delete;

  nlohmann::json session_json() const;
  nlohmann::json graph_json(const std::string& model) const;

  nlohmann::json versions_json() const;
  nlohmann::json version_json(int64_t id) const;
  nlohmann::json create_version(const nlohmann::json& request);  // 201 body
  nlohmann::json quant_json(int64_t version) const;
  // The edited model as ONNX bytes and a file name for it.
  std::pair<std::string, std::string> export_onnx(int64_t version) const;
  nlohmann::json residuals(int64_t version, int64_t limit) const;
  // compare_modes of a quantized model over the cached images (builds its integer cache on first
  // use); 503 while its simulate cache is being built.
  nlohmann::json mode_comparison(const std::string& model);

  nlohmann::json images_json(int64_t offset, int64_t limit) const;
  std::string image_png(int64_t index) const;

  nlohmann::json infer(const nlohmann::json& request) const;
  nlohmann::json layer_json(int64_t version, const std::string& layer, int64_t image, int bins, int64_t limit) const;

  // Adds an uploaded ONNX model (kept in the workspace); FP32 or quantized.
  nlohmann::json add_model(const std::string& bytes, const std::string& name);

  int64_t start_job(const nlohmann::json& request);  // returns the job id
  std::shared_ptr<Job> job(int64_t id) const;        // throws 404
  nlohmann::json jobs_json() const;
  nlohmann::json cancel_job(int64_t id);

  // Blocks until the background caches are built (tests; the server never waits).
  void wait_until_ready() const;
  // Threads started and not joined yet: running ones and finished ones the next spawn joins (tests).
  size_t unjoined_threads() const;
  const Dataset& data() const { return data_; }
  const std::string& workspace() const { return options_.workspace; }
  bool stopping() const { return stopping_; }

 private:
  std::shared_ptr<const ModelEntry> model_locked(const std::string& id) const;
  const Version& version_locked(int64_t id) const;
  std::shared_ptr<const VersionRuntime> runtime(int64_t version) const;
  // The simulate-mode re-evaluation cache of `model`, or null while it is built (a dropped one is
  // rebuilt in the background from here).
  std::shared_ptr<const BaseCache> cache_of(const std::string& model);
  // The integer-mode re-evaluation cache of `model` (built on the first request that asks for it,
  // once its simulate-mode cache is ready), or null while that one is not.
  std::shared_ptr<const BaseCache> integer_cache_of(const ModelEntry& model);
  // compare_models of a version against the FP32 model on one data-set image, kept for the
  // requests that follow (inference, then the layers of the same image).
  std::shared_ptr<const Comparison> image_comparison(const VersionRuntime& rt, int64_t image) const;
  std::shared_ptr<const ModelEntry> fp32_model() const;
  nlohmann::json version_json_locked(const Version& v) const;
  std::vector<Edit> parse_edits(const nlohmann::json& edits) const;
  std::shared_ptr<ModelEntry> make_entry(std::shared_ptr<const Graph> g, const std::string& path,
                                         const std::string& id) const;
  void register_model_locked(std::shared_ptr<ModelEntry> entry);
  // A new version of `model` with the next id and the current time, stored; returns it for the caller to fill.
  Version& new_version_locked(const std::string& model, int64_t parent = -1);
  std::string unique_model_id_locked(const std::string& wanted) const;
  void record_accuracy(int64_t version, const AccuracyRecord& record);
  void load_history();
  void save_history_locked() const;
  void build_caches(std::vector<std::string> models);
  // Keeps the caches within options_.cache_budget_bytes by dropping the least recently used ones
  // other than `keep`. Caller holds mu_.
  void enforce_cache_budget_locked(const std::pair<integer::RunMode, std::string>& keep);
  void start_cache_thread(std::vector<std::string> models);
  // Runs `work` on a new thread in threads_, after joining the threads that have finished. Caller holds mu_.
  void spawn_locked(std::function<void()> work);
  void run_job(std::shared_ptr<Job> job);
  nlohmann::json run_evaluate(Job& job, const Progress& progress);
  nlohmann::json run_quantize(Job& job, const Progress& progress);
  const std::vector<int>& fp32_predictions() const;

  PlaygroundOptions options_;
  std::unique_ptr<WorkspaceLock> workspace_lock_;  // released last, after the history's final save
  Dataset data_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  mutable std::condition_variable caches_changed_;
  std::map<std::string, std::shared_ptr<ModelEntry>> models_;
  std::vector<std::string> model_order_;
  std::set<std::string> reserved_ids_;  // model ids of uploads being written
  // History entries of models not served this time (or whose edits no longer apply): written
  // back unchanged, so serving another set of models does not erase them.
  std::vector<nlohmann::json> dormant_models_;
  std::vector<nlohmann::json> dormant_versions_;
  std::string fp32_id_;
  std::map<int64_t, Version> versions_;
  int64_t next_version_ = 1;
  std::map<std::string, std::shared_ptr<const BaseCache>> caches_;
  std::map<std::string, std::string> cache_state_;  // building | ready | evicted | failed: message
  // Last use (cache_clock_) of each cache in caches_ and integer_caches_, by (mode, model id).
  std::map<std::pair<integer::RunMode, std::string>, uint64_t> cache_used_;
  uint64_t cache_clock_ = 0;
  std::mutex integer_caches_mu_;  // held while one is built (so it is built once)
  std::map<std::string, std::shared_ptr<const BaseCache>> integer_caches_;
  // mode_comparison's answer per model: both caches are immutable once built, so it is computed once.
  std::map<std::string, nlohmann::json> mode_comparisons_;
  mutable std::map<int64_t, std::shared_ptr<const VersionRuntime>> runtimes_;  // small, recently used
  mutable std::vector<int64_t> runtime_order_;
  mutable std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const Comparison>> comparisons_;  // (version, image)
  mutable std::vector<std::pair<int64_t, int64_t>> comparison_order_;
  std::map<int64_t, std::shared_ptr<Job>> jobs_;
  int64_t next_job_ = 1;
  std::vector<std::thread> threads_;  // cache builders and jobs
  // Threads whose work has returned: joined by the next spawn_locked (a finished thread keeps its
  // stack until joined, so a long-running server would otherwise accumulate one per job).
  std::set<std::thread::id> exited_threads_;

  mutable std::mutex fp32_mu_;  // the FP32 model's predictions over the data set, computed once
  mutable std::vector<int> fp32_predictions_;
  mutable bool fp32_done_ = false;
};

// The edit list of a request: strings in the CLI forms ("T.scale=V", "--set ...", "--bits T=N", "--bypass
// L"), {"set"|"bits"|"bypass": "..."} or {kind, target, channel, value}. Throws HttpError 400 naming the
// entry.
std::vector<Edit> parse_edit_list(const nlohmann::json& edits);
nlohmann::json edit_json(const Edit& e);  // the structured form

}  // namespace qplay::server
