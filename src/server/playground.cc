#include "server/playground.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include "analysis/capture.h"
#include "analysis/compare.h"
#include "analysis/histogram.h"
#include "analysis/quant_grid.h"
#include "analysis/reports.h"
#include "analysis/residuals.h"
#include "analysis/sensitivity.h"
#include "graph/quant_params.h"
#include "io/onnx_model.h"
#include "quantize/quantize.h"
#include "quantize/report.h"
#include "runtime/integer/integer_mode.h"
#include "server/images.h"
#include "session/evaluate.h"
#include "session/reports.h"

namespace qplay::server {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kRuntimeCacheSize = 32;  // materialized versions kept (graph + executor each)
constexpr const char* kHistoryFormat = "qplay-history-1";

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string model_format(const Graph& g) {
  bool qdq = false;
  for (const auto& n : g.nodes) {
    if (n.op_type.rfind("QLinear", 0) == 0) return "qoperator";
    qdq = qdq || n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear";
  }
  return qdq ? "qdq" : "fp32";
}

json value_info_json(const ValueInfo& v) {
  json shape = json::array();
  for (size_t i = 0; i < v.shape.size(); ++i) {
    if (v.shape[i] >= 0)
      shape.push_back(v.shape[i]);
    else
      shape.push_back(i < v.dim_params.size() && !v.dim_params[i].empty() ? v.dim_params[i] : "?");
  }
  return {{"name", v.name}, {"dtype", dtype_name(v.dtype)}, {"shape", shape}};
}

json attribute_json(const Attribute& a) {
  switch (a.kind) {
    case Attribute::Kind::Int:
      return a.i;
    case Attribute::Kind::Float:
      return json_number(a.f);
    case Attribute::Kind::String:
      return a.s;
    case Attribute::Kind::Ints:
      return a.ints;
    case Attribute::Kind::Floats: {
      json out = json::array();
      for (float f : a.floats) out.push_back(json_number(f));
      return out;
    }
    case Attribute::Kind::Strings:
      return a.strings;
    case Attribute::Kind::Tensor:
      return a.t ? json{{"dtype", dtype_name(a.t->dtype)}, {"shape", a.t->shape}} : json(nullptr);
  }
  return nullptr;
}

// Softmax probabilities unless the output already is a distribution (a Softmax-ended model).
std::vector<double> probabilities(const float* out, int64_t n) {
  std::vector<double> p(out, out + n);
  double sum = 0.0;
  bool distribution = true;
  for (double v : p) {
    distribution = distribution && v >= 0.0 && v <= 1.0;
    sum += v;
  }
  if (distribution && std::abs(sum - 1.0) < 1e-3) return p;
  const double mx = *std::max_element(p.begin(), p.end());
  sum = 0.0;
  for (double& v : p) sum += (v = std::exp(v - mx));
  for (double& v : p) v /= sum;
  return p;
}

json prediction_json(const Tensor& output) {
  const int64_t n = output.numel();
  const std::vector<double> p = probabilities(output.data<float>(), n);
  std::vector<int> order(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  const auto& names = cifar10_class_names();
  json top = json::array();
  for (int k = 0; k < std::min<int64_t>(5, n); ++k) {
    const int i = order[k];
    top.push_back(
        {{"class", i < int(names.size()) ? names[i] : std::to_string(i)}, {"index", i}, {"probability", p[i]}});
  }
  return {{"prediction", order.empty() ? -1 : order[0]}, {"top5", top}};
}

// One image of a data set as a data set of its own (what the analysis functions take).
Dataset one_image(const Dataset& data, int64_t index) {
  Dataset d;
  d.source = data.source + "#" + std::to_string(index);
  d.labels = {data.labels[index]};
  d.pixels.assign(data.pixels.begin() + index * kCifarPixels, data.pixels.begin() + (index + 1) * kCifarPixels);
  return d;
}

int64_t check_image(const Dataset& data, int64_t index) {
  if (index < 0 || index >= data.size())
    throw HttpError(404, "image " + std::to_string(index) + " is out of range (the data set has " +
                             std::to_string(data.size()) + " images: 0.." + std::to_string(data.size() - 1) + ")");
  return index;
}

// An optional positive image count; absent or null = the whole data set (-1).
int64_t limit_of(const json& request, const char* key = "limit") {
  if (!request.contains(key) || request[key].is_null()) return -1;
  if (!request[key].is_number_integer() || request[key].get<int64_t>() < 1)
    throw HttpError(400, std::string("'") + key + "' must be a positive integer (got " + request[key].dump() + ")");
  return request[key].get<int64_t>();
}

int64_t int_field(const json& request, const char* key) {
  if (!request.contains(key)) throw HttpError(400, std::string("missing field '") + key + "'");
  if (!request[key].is_number_integer())
    throw HttpError(400, std::string("'") + key + "' must be an integer (got " + request[key].dump() + ")");
  return request[key].get<int64_t>();
}

std::string string_field(const json& request, const char* key) {
  if (!request.contains(key)) throw HttpError(400, std::string("missing field '") + key + "'");
  if (!request[key].is_string())
    throw HttpError(400, std::string("'") + key + "' must be a string (got " + request[key].dump() + ")");
  return request[key].get<std::string>();
}

Edit::Kind edit_kind(const std::string& name) {
  if (name == "set_scale") return Edit::Kind::set_scale;
  if (name == "set_zero_point") return Edit::Kind::set_zero_point;
  if (name == "set_bits") return Edit::Kind::set_bits;
  if (name == "bypass_layer") return Edit::Kind::bypass_layer;
  throw Error("unknown edit kind '" + name + "' (expected set_scale, set_zero_point, set_bits or bypass_layer)");
}

const char* edit_kind_name(Edit::Kind k) {
  switch (k) {
    case Edit::Kind::set_scale:
      return "set_scale";
    case Edit::Kind::set_zero_point:
      return "set_zero_point";
    case Edit::Kind::set_bits:
      return "set_bits";
    case Edit::Kind::bypass_layer:
      return "bypass_layer";
  }
  return "?";
}

Edit edit_from_string(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  auto starts = [&](const char* prefix) { return s.rfind(prefix, 0) == 0; };
  if (starts("--set ")) return parse_set_edit(s.substr(6));
  if (starts("--bits ")) return parse_bits_edit(s.substr(7));
  if (starts("--bypass ")) return bypass_edit(s.substr(9));
  return parse_set_edit(s);
}

Edit edit_from_json(const json& e) {
  if (e.is_string()) return edit_from_string(e.get<std::string>());
  if (!e.is_object()) throw Error("an edit is a string or an object, not " + e.dump());
  for (const char* key : {"set", "bits", "bypass"}) {
    if (!e.contains(key)) continue;
    if (!e[key].is_string()) throw Error(std::string("'") + key + "' must be a string");
    const std::string text = e[key].get<std::string>();
    if (std::string(key) == "set") return parse_set_edit(text);
    if (std::string(key) == "bits") return parse_bits_edit(text);
    if (text.empty()) throw Error("'bypass' needs a layer name");
    return bypass_edit(text);
  }
  if (!e.contains("kind") || !e["kind"].is_string())
    throw Error("an edit object needs 'kind' (or one of 'set', 'bits', 'bypass'): " + e.dump());
  Edit out;
  out.kind = edit_kind(e["kind"].get<std::string>());
  if (!e.contains("target") || !e["target"].is_string() || e["target"].get<std::string>().empty())
    throw Error("edit " + e.dump() + " needs a 'target' (tensor or layer name)");
  out.target = e["target"].get<std::string>();
  if (e.contains("channel") && !e["channel"].is_null()) {
    if (!e["channel"].is_number_integer()) throw Error("'channel' must be an integer in " + e.dump());
    out.channel = e["channel"].get<int64_t>();
  }
  if (out.kind != Edit::Kind::bypass_layer) {
    if (!e.contains("value") || !e["value"].is_number()) throw Error("edit " + e.dump() + " needs a numeric 'value'");
    out.value = e["value"].get<double>();
  }
  return out;
}

// Which layer a parameter set belongs to: its producer's layer (outputs, weights, biases), else the first
// layer reading it (the image input).
std::map<std::string, std::string> layer_of_params(const std::vector<Layer>& layers) {
  std::map<std::string, std::string> owner;
  for (const Layer& l : layers)
    for (const std::string* p : {&l.output_params, &l.weight_params, &l.bias_params})
      if (!p->empty()) owner.emplace(*p, l.name);
  for (const Layer& l : layers)
    for (const auto& p : l.input_params)
      if (!p.empty()) owner.emplace(p, l.name);
  return owner;
}

// clip_rate: the share of the FP32 layer output outside the output grid (the same reference
// values for the accumulated and the isolated run).
json error_with_clip(const ErrorMetrics& m, const LayerComparison& l) {
  json j = error_metrics_json(m);
  j["clip_rate"] = l.has_clipping ? json(clipping_rate(l.clipping)) : json(nullptr);
  return j;
}

void write_file_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) throw Error("cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, path);  // atomic on POSIX: readers see the old or the new file, never half
}

}  // namespace

std::vector<Edit> parse_edit_list(const json& edits) {
  if (!edits.is_array()) throw HttpError(400, "'edits' must be an array (got " + edits.dump() + ")");
  std::vector<Edit> out;
  for (size_t i = 0; i < edits.size(); ++i) {
    try {
      out.push_back(edit_from_json(edits[i]));
    } catch (const Error& e) {
      throw HttpError(400, "edit " + std::to_string(i) + ": " + e.what());
    }
  }
  return out;
}

json edit_json(const Edit& e) {
  return {{"kind", edit_kind_name(e.kind)}, {"target", e.target}, {"channel", e.channel}, {"value", e.value}};
}

// ---------------------------------------------------------------------------------------------
// Jobs

bool Job::finished() const { return state != "running"; }

json Job::to_json_locked() const {
  json j = {
      {"id", id},           {"kind", kind},       {"state", state},    {"progress", {{"done", done}, {"total", total}}},
      {"created", created}, {"seconds", seconds}, {"request", request}};
  if (state == "done") j["result"] = result;
  if (state == "failed") j["error"] = error;
  return j;
}

json Job::to_json() const {
  std::lock_guard<std::mutex> lock(mu);
  return to_json_locked();
}

// ---------------------------------------------------------------------------------------------
// Loading

Playground::Playground(PlaygroundOptions options) : options_(std::move(options)) {
  if (options_.models.empty()) throw Error("no models given");
  if (options_.threads < 1) throw Error("thread count must be at least 1");
  data_ = load_cifar10(options_.data.empty() ? default_test_sample_path() : options_.data);
  if (data_.size() == 0) throw Error(data_.source + ": the data set has no images");
  fs::create_directories(fs::path(options_.workspace) / "models");
  workspace_lock_ = std::make_unique<WorkspaceLock>(options_.workspace);

  for (const auto& path : options_.models) {
    auto g = std::make_shared<const Graph>(load_onnx(path));
    const std::string id = fs::path(path).stem().string();
    if (models_.count(id)) throw Error("two models are named '" + id + "' (" + models_[id]->path + ", " + path + ")");
    register_model_locked(make_entry(g, path, id));
  }
  if (fp32_id_.empty())
    throw Error(
        "qplay serve needs an FP32 model as the reference (e.g. models/resnet8_fp32.onnx); none of the given "
        "models is FP32");
  load_history();
  std::vector<std::string> quantized;
  for (const auto& id : model_order_) {
    auto& m = models_[id];
    if (m->kind != "quantized") continue;
    quantized.push_back(id);
    for (const auto& [vid, v] : versions_)
      if (v.model == id && v.parent < 0 && v.edits.empty()) {
        m->base_version = vid;
        break;
      }
    if (m->base_version < 0) m->base_version = new_version_locked(id).id;
  }
  save_history_locked();
  for (const auto& id : quantized) cache_state_[id] = "building";
  if (options_.background_caches)
    start_cache_thread(quantized);
  else
    build_caches(quantized);
}

Playground::~Playground() {
  stopping_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, job] : jobs_) job->cancel = true;
  }
  // Threads may append to threads_ (a quantize job starting a cache build):
  // join until none is left.
  for (;;) {
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (threads_.empty()) break;
      t = std::move(threads_.back());
      threads_.pop_back();
    }
    if (t.joinable()) t.join();
  }
}

std::shared_ptr<ModelEntry> Playground::make_entry(std::shared_ptr<const Graph> g, const std::string& path,
                                                   const std::string& id) const {
  auto m = std::make_shared<ModelEntry>();
  m->id = id;
  m->path = path;
  m->graph = g;
  m->format = model_format(*g);
  m->kind = m->format == "fp32" ? "fp32" : "quantized";
  m->layers = group_layers(*g);
  m->executor = std::make_shared<const Executor>(g);
  image_input(*g);  // refuse models that are not image classifiers here, not at the first request
  return m;
}

Version& Playground::new_version_locked(const std::string& model, int64_t parent) {
  Version& v = versions_[next_version_];
  v.id = next_version_++;
  v.model = model;
  v.parent = parent;
  v.created = now_iso();
  return v;
}

void Playground::register_model_locked(std::shared_ptr<ModelEntry> entry) {
  if (entry->kind == "fp32" && fp32_id_.empty()) fp32_id_ = entry->id;
  model_order_.push_back(entry->id);
  models_[entry->id] = std::move(entry);
}

std::string Playground::unique_model_id_locked(const std::string& wanted) const {
  std::string base;
  for (char c : wanted)
    base += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') ? c : '_';
  while (!base.empty() && base[0] == '.') base.erase(0, 1);
  if (base.empty()) base = "model";
  std::string id = base;
  for (int k = 2; models_.count(id) || reserved_ids_.count(id); ++k) id = base + "_" + std::to_string(k);
  return id;
}

void Playground::load_history() {
  const fs::path path = fs::path(options_.workspace) / "history.json";
  if (!fs::exists(path)) return;
  try {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    const json h = json::parse(ss.str());
    if (!h.is_object() || h.value("format", "") != kHistoryFormat)
      throw Error("not a qplay history file (format '" + h.value("format", std::string("?")) + "')");
    for (const auto& m : h.value("models", json::array())) {
      const std::string id = m.at("id").get<std::string>(), file = m.at("path").get<std::string>();
      try {
        if (models_.count(id)) continue;
        auto entry = make_entry(std::make_shared<const Graph>(load_onnx(file)), file, id);
        entry->in_workspace = true;
        register_model_locked(entry);
      } catch (const std::exception& e) {
        std::cerr << "qplay: warning: history: model '" << id << "' not loaded: " << e.what() << "\n";
        dormant_models_.push_back(m);
      }
    }
    int64_t max_id = 0;
    for (const auto& jv : h.at("versions")) {
      Version v;
      v.id = jv.at("id").get<int64_t>();
      v.model = jv.at("model").get<std::string>();
      v.parent = jv.at("parent").is_null() ? -1 : jv.at("parent").get<int64_t>();
      v.created = jv.value("created", "");
      max_id = std::max(max_id, v.id);
      try {
        auto it = models_.find(v.model);
        if (it == models_.end()) throw Error("no model '" + v.model + "' is loaded");
        if (it->second->kind != "quantized") throw Error("model '" + v.model + "' is not quantized");
        for (const auto& e : jv.at("edits")) v.edits.push_back(edit_from_json(e));
        apply_edits_tracked(*it->second->graph, v.edits);  // re-validated against the model as it is now
      } catch (const std::exception& e) {
        // Not shown, but kept in the file: the model may be served again another time.
        std::cerr << "qplay: warning: history: version " << v.id << " not available: " << e.what() << "\n";
        dormant_versions_.push_back(jv);
        continue;
      }
      // Named first: a range-for over value(...).items() would iterate a destroyed temporary.
      const json accuracy = jv.value("accuracy", json::object());
      for (const auto& [k, a] : accuracy.items())
        v.accuracy[std::stoll(k)] = {a.at("images").get<int64_t>(), a.at("correct").get<int64_t>(),
                                     a.value("source", "")};
      versions_[v.id] = v;
    }
    next_version_ = std::max<int64_t>({next_version_, max_id + 1, h.value("next_version", int64_t(1))});
  } catch (const std::exception& e) {
    // A broken history must not stop the server: keep it aside for the user and start afresh.
    const fs::path aside = path.string() + ".corrupt-" + std::to_string(std::time(nullptr));
    std::error_code ec;
    fs::rename(path, aside, ec);
    std::cerr << "qplay: warning: " << path.string() << " is unreadable (" << e.what() << "); moved to "
              << aside.string() << ", starting a new history\n";
    versions_.clear();
    dormant_versions_.clear();
    dormant_models_.clear();
  }
}

void Playground::save_history_locked() const {
  json h = {{"format", kHistoryFormat}, {"next_version", next_version_}, {"data", data_.source}};
  h["models"] = json::array();
  for (const auto& id : model_order_) {
    const auto& m = models_.at(id);
    if (m->in_workspace) h["models"].push_back({{"id", id}, {"path", m->path}});
  }
  for (const auto& m : dormant_models_) h["models"].push_back(m);
  h["versions"] = json::array();
  for (const auto& [id, v] : versions_) {
    json jv = version_json_locked(v);
    jv["edits"] = jv["edit_list"];
    jv.erase("edit_list");
    h["versions"].push_back(jv);
  }
  for (const auto& jv : dormant_versions_) h["versions"].push_back(jv);
  try {
    write_file_atomically(fs::path(options_.workspace) / "history.json", h.dump(1));
  } catch (const std::exception& e) {
    // The versions stay in memory; the user learns the workspace is not writable.
    std::cerr << "qplay: warning: cannot save the history: " << e.what() << "\n";
  }
}

void Playground::build_caches(std::vector<std::string> models) {
  // The FP32 predictions first: every evaluate job's "flipped" list needs them.
  try {
    fp32_predictions();
  } catch (const Cancelled&) {
    return;  // shutting down
  } catch (const std::exception& e) {
    std::cerr << "qplay: warning: FP32 evaluation failed: " << e.what() << "\n";
  }
  for (const auto& id : models) {
    std::shared_ptr<const Graph> g;
    {
      std::lock_guard<std::mutex> lock(mu_);
      g = models_.at(id)->graph;
    }
    std::string state;
    std::shared_ptr<const BaseCache> cache;
    try {
      ReevalOptions ro;
      ro.limit = options_.cache_images;
      ro.threads = options_.threads;
      ro.progress = [this](int64_t, int64_t) { return !stopping_.load(); };
      cache = std::make_shared<const BaseCache>(capture_base(g, data_, ro));
      state = "ready";
    } catch (const Cancelled&) {
      state = "failed: cancelled";
    } catch (const std::exception& e) {
      state = std::string("failed: ") + e.what();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cache) {
        caches_[id] = cache;
        cache_used_[{integer::RunMode::simulate, id}] = ++cache_clock_;
        enforce_cache_budget_locked({integer::RunMode::simulate, id});
      }
      cache_state_[id] = state;
      // The base version's accuracy comes with the cache.
      if (cache) {
        const Reevaluation r = base_result(*cache);
        auto& v = versions_.at(models_.at(id)->base_version);
        if (!v.accuracy.count(r.images)) {
          v.accuracy[r.images] = {r.images, r.correct, "full"};
          save_history_locked();
        }
      }
    }
    caches_changed_.notify_all();
  }
}

void Playground::spawn_locked(std::function<void()> work) {
  // A thread in exited_threads_ has released mu_ for the last time, so joining it here cannot wait on us.
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (exited_threads_.erase(it->get_id())) {
      it->join();
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
  threads_.emplace_back([this, work = std::move(work)] {
    struct Exit {
      Playground* pg;
      ~Exit() {
        std::lock_guard<std::mutex> lock(pg->mu_);
        pg->exited_threads_.insert(std::this_thread::get_id());
      }
    } exit{this};
    work();
  });
}

size_t Playground::unjoined_threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_.size();
}

void Playground::start_cache_thread(std::vector<std::string> models) {
  std::lock_guard<std::mutex> lock(mu_);
  spawn_locked([this, models] { build_caches(models); });
}

void Playground::wait_until_ready() const {
  std::unique_lock<std::mutex> lock(mu_);
  caches_changed_.wait(lock, [&] {
    for (const auto& [id, state] : cache_state_)
      if (state == "building") return false;
    return true;
  });
}

const std::vector<int>& Playground::fp32_predictions() const {
  std::lock_guard<std::mutex> lock(fp32_mu_);
  if (!fp32_done_) {
    EvalOptions eo;
    eo.threads = options_.threads;
    eo.progress = [this](int64_t, int64_t) { return !stopping_.load(); };
    fp32_predictions_ = evaluate(*fp32_model()->executor, data_, eo).predictions;
    fp32_done_ = true;
  }
  return fp32_predictions_;
}

// ---------------------------------------------------------------------------------------------
// Lookups

std::shared_ptr<const ModelEntry> Playground::model_locked(const std::string& id) const {
  auto it = models_.find(id);
  if (it == models_.end()) {
    std::string known;
    for (const auto& m : model_order_) known += (known.empty() ? "" : ", ") + m;
    throw HttpError(404, "unknown model '" + id + "' (loaded: " + known + ")");
  }
  return it->second;
}

std::shared_ptr<const ModelEntry> Playground::fp32_model() const {
  std::lock_guard<std::mutex> lock(mu_);
  return models_.at(fp32_id_);
}

const Version& Playground::version_locked(int64_t id) const {
  auto it = versions_.find(id);
  if (it == versions_.end()) throw HttpError(404, "unknown version " + std::to_string(id));
  return it->second;
}

std::shared_ptr<const BaseCache> Playground::cache_of(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = caches_.find(model);
  if (it != caches_.end()) {
    cache_used_[{integer::RunMode::simulate, model}] = ++cache_clock_;
    return it->second;
  }
  if (auto state = cache_state_.find(model); state != cache_state_.end() && state->second == "evicted" && !stopping_) {
    state->second = "building";
    spawn_locked([this, model] { build_caches({model}); });
  }
  return nullptr;
}

void Playground::enforce_cache_budget_locked(const std::pair<integer::RunMode, std::string>& keep) {
  if (options_.cache_budget_bytes <= 0) return;
  int64_t bytes = 0;
  for (const auto& [id, c] : caches_) bytes += c->bytes;
  for (const auto& [id, c] : integer_caches_) bytes += c->bytes;
  while (bytes > options_.cache_budget_bytes) {
    auto oldest = cache_used_.end();
    for (auto it = cache_used_.begin(); it != cache_used_.end(); ++it)
      if (it->first != keep && (oldest == cache_used_.end() || it->second < oldest->second)) oldest = it;
    if (oldest == cache_used_.end()) return;  // only `keep` is left: it stays, even if larger than the budget
    const auto [mode, id] = oldest->first;
    cache_used_.erase(oldest);
    const bool simulate = mode == integer::RunMode::simulate;
    auto& caches = simulate ? caches_ : integer_caches_;
    auto it = caches.find(id);
    if (it == caches.end()) continue;
    const int64_t freed = it->second->bytes;  // requests still holding it keep it alive until they finish
    caches.erase(it);
    if (simulate) cache_state_[id] = "evicted";
    bytes -= freed;
    std::cerr << "qplay: dropped the " << integer::run_mode_name(mode) << "-mode cache of '" << id << "' ("
              << freed / (1 << 20) << " MB) to stay within the cache budget of "
              << options_.cache_budget_bytes / (1 << 20) << " MB; it is rebuilt when next needed\n";
  }
}

std::shared_ptr<const BaseCache> Playground::integer_cache_of(const ModelEntry& model) {
  auto cached = [&]() -> std::shared_ptr<const BaseCache> {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = integer_caches_.find(model.id);
    if (it == integer_caches_.end()) return nullptr;
    cache_used_[{integer::RunMode::integer, model.id}] = ++cache_clock_;
    return it->second;
  };
  // Kept even when the simulate cache was dropped for the budget: it does not depend on it.
  if (auto cache = cached()) return cache;
  if (!cache_of(model.id)) return nullptr;  // the images are not cached yet
  std::lock_guard<std::mutex> build(integer_caches_mu_);
  if (auto cache = cached()) return cache;  // built by the request this one waited for
  ReevalOptions ro;
  ro.limit = options_.cache_images;
  ro.threads = options_.threads;
  ro.mode = integer::RunMode::integer;
  ro.progress = [this](int64_t, int64_t) { return !stopping_.load(); };
  auto cache = std::make_shared<const BaseCache>(capture_base(model.graph, data_, ro));
  std::lock_guard<std::mutex> lock(mu_);
  integer_caches_[model.id] = cache;
  cache_used_[{integer::RunMode::integer, model.id}] = ++cache_clock_;
  enforce_cache_budget_locked({integer::RunMode::integer, model.id});
  return cache;
}

std::shared_ptr<const VersionRuntime> Playground::runtime(int64_t version) const {
  std::vector<Edit> edits;
  std::shared_ptr<const ModelEntry> model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = runtimes_.find(version);
    if (it != runtimes_.end()) return it->second;
    const Version& v = version_locked(version);
    edits = v.edits;
    model = model_locked(v.model);
  }
  // Built outside the lock: applying edits and preparing kernels takes milliseconds.
  auto rt = std::make_shared<VersionRuntime>();
  rt->version = version;
  rt->model = model->id;
  rt->graph = edits.empty() ? model->graph : std::make_shared<const Graph>(apply_edits(*model->graph, edits));
  rt->executor = edits.empty() ? model->executor : std::make_shared<const Executor>(rt->graph);
  rt->params = list_quant_params(*rt->graph);
  rt->layers = group_layers(*rt->graph, rt->params);
  std::lock_guard<std::mutex> lock(mu_);
  runtimes_[version] = rt;
  runtime_order_.erase(std::remove(runtime_order_.begin(), runtime_order_.end(), version), runtime_order_.end());
  runtime_order_.push_back(version);
  while (runtime_order_.size() > kRuntimeCacheSize) {
    runtimes_.erase(runtime_order_.front());
    runtime_order_.erase(runtime_order_.begin());
  }
  return rt;
}

std::shared_ptr<const Comparison> Playground::image_comparison(const VersionRuntime& rt, int64_t image) const {
  constexpr size_t kKept = 64;  // ~14 layers of metrics each: small
  const std::pair<int64_t, int64_t> key{rt.version, image};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = comparisons_.find(key);
    if (it != comparisons_.end()) return it->second;
  }
  CompareOptions co;
  co.image = image;
  co.batch = 1;
  co.threads = 1;
  const auto fp32 = fp32_model();
  co.fp32_executor = fp32->executor;
  co.quantized_executor = rt.executor;
  auto c = std::make_shared<const Comparison>(compare_models(fp32->graph, rt.graph, data_, co));
  std::lock_guard<std::mutex> lock(mu_);
  if (comparisons_.emplace(key, c).second) comparison_order_.push_back(key);
  while (comparison_order_.size() > kKept) {
    comparisons_.erase(comparison_order_.front());
    comparison_order_.erase(comparison_order_.begin());
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Session, graph, versions

json Playground::session_json() const {
  std::lock_guard<std::mutex> lock(mu_);
  json models = json::array();
  for (const auto& id : model_order_) {
    const auto& m = models_.at(id);
    json jm = {{"id", id},
               {"path", m->path},
               {"kind", m->kind},
               {"format", m->format},
               {"nodes", m->graph->nodes.size()},
               {"layers", m->layers.size()},
               {"base_version", m->base_version < 0 ? json(nullptr) : json(m->base_version)}};
    if (m->kind == "quantized") {
      auto it = cache_state_.find(id);
      jm["cache"] = it == cache_state_.end() ? "building" : it->second;
      auto c = caches_.find(id);
      jm["cache_images"] = c == caches_.end() ? json(nullptr) : json(c->second->images);
    }
    models.push_back(jm);
  }
  return {{"models", models},
          {"fp32_model", fp32_id_},
          {"data", {{"source", data_.source}, {"images", data_.size()}, {"classes", cifar10_class_names()}}},
          {"limits", {{"model_upload_bytes", kModelUploadBytes}, {"image_upload_bytes", kImageUploadBytes}}}};
}

json Playground::graph_json(const std::string& model) const {
  std::shared_ptr<const ModelEntry> m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    m = model_locked(model);
  }
  const Graph& g = *m->graph;
  std::vector<std::string> layer_of(g.nodes.size());
  for (const Layer& l : m->layers)
    for (int n : l.nodes)
      if (layer_of[n].empty()) layer_of[n] = l.name;  // producers come first: their output Q/DQ stay theirs
  json nodes = json::array();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    json attrs = json::object();
    for (const auto& [k, a] : n.attrs) attrs[k] = attribute_json(a);
    nodes.push_back({{"name", n.name},
                     {"op_type", n.op_type},
                     {"domain", n.domain},
                     {"inputs", n.inputs},
                     {"outputs", n.outputs},
                     {"layer", layer_of[i].empty() ? json(nullptr) : json(layer_of[i])},
                     {"attributes", attrs}});
  }
  json inputs = json::array(), outputs = json::array(), inits = json::array();
  for (const auto& v : g.inputs) inputs.push_back(value_info_json(v));
  for (const auto& v : g.outputs) outputs.push_back(value_info_json(v));
  for (const auto& [name, t] : g.initializers)
    inits.push_back({{"name", name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}});
  return {{"id", m->id},        {"nodes", nodes},        {"inputs", inputs},
          {"outputs", outputs}, {"initializers", inits}, {"layers", layers_json(g, m->layers)}};
}

json Playground::version_json_locked(const Version& v) const {
  json edits = json::array(), list = json::array();
  for (const Edit& e : v.edits) {
    edits.push_back(edit_str(e));
    list.push_back(edit_json(e));
  }
  json acc = json::object();
  for (const auto& [n, a] : v.accuracy)
    acc[std::to_string(n)] = {{"images", a.images},
                              {"correct", a.correct},
                              {"accuracy", a.images ? double(a.correct) / double(a.images) : 0.0},
                              {"source", a.source}};
  return {{"id", v.id},     {"model", v.model},  {"parent", v.parent < 0 ? json(nullptr) : json(v.parent)},
          {"edits", edits}, {"edit_list", list}, {"created", v.created},
          {"accuracy", acc}};
}

json Playground::versions_json() const {
  std::lock_guard<std::mutex> lock(mu_);
  json out = json::array();
  for (const auto& [id, v] : versions_) out.push_back(version_json_locked(v));
  return {{"versions", out}};
}

json Playground::version_json(int64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_json_locked(version_locked(id));
}

std::vector<Edit> Playground::parse_edits(const json& edits) const { return parse_edit_list(edits); }

json Playground::create_version(const json& request) {
  if (!request.is_object()) throw HttpError(400, "the request body must be a JSON object");
  for (const auto& [key, value] : request.items())
    if (key != "parent" && key != "model" && key != "edits" && key != "replace" && key != "evaluate" && key != "mode")
      throw HttpError(400, "unknown field '" + key + "' (expected parent, model, edits, replace, evaluate, mode)");
  const std::vector<Edit> added = parse_edits(request.contains("edits") ? request["edits"] : json::array());
  const bool replace = request.value("replace", false);
  const bool run_eval = request.value("evaluate", true);
  // How the re-evaluation runs: simulate (default) or integer; another name -> qplay::Error -> 400.
  const integer::RunMode mode =
      request.contains("mode") ? integer::parse_run_mode(string_field(request, "mode")) : integer::RunMode::simulate;

  std::shared_ptr<const ModelEntry> model;
  std::vector<Edit> edits;
  int64_t parent = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (request.contains("parent") && !request["parent"].is_null()) {
      parent = int_field(request, "parent");
      const Version& p = version_locked(parent);
      model = model_locked(p.model);
      if (!replace) edits = p.edits;
    } else if (request.contains("model")) {
      model = model_locked(string_field(request, "model"));
      if (model->kind != "quantized")
        throw HttpError(400, "model '" + model->id + "' is FP32: versions edit a quantized model's quantization");
      parent = model->base_version;
    } else {
      throw HttpError(400, "missing field 'parent' (the version to start from) or 'model'");
    }
  }
  edits.insert(edits.end(), added.begin(), added.end());
  EditedGraph edited = apply_edits_tracked(*model->graph, edits);  // qplay::Error names tensor and value -> 400

  json evaluation = nullptr;
  std::optional<AccuracyRecord> record;
  if (run_eval) {
    if (auto cache = mode == integer::RunMode::integer ? integer_cache_of(*model) : cache_of(model->id)) {
      const Reevaluation after = reevaluate(*cache, edited);
      evaluation = edit_evaluation_json(base_result(*cache), after, data_.source, 0.0);
      evaluation["mode"] = integer::run_mode_name(mode);
      // A version's recorded accuracy is simulate mode's (what evaluate jobs measure too).
      if (mode == integer::RunMode::simulate) record = AccuracyRecord{after.images, after.correct, "incremental"};
    }
  }

  auto rt = std::make_shared<VersionRuntime>();
  rt->model = model->id;
  rt->graph = edits.empty() ? model->graph : std::make_shared<const Graph>(edited.graph);
  rt->executor = edits.empty() ? model->executor : std::make_shared<const Executor>(rt->graph);
  rt->params = list_quant_params(*rt->graph);
  rt->layers = group_layers(*rt->graph, rt->params);

  std::lock_guard<std::mutex> lock(mu_);
  Version& v = new_version_locked(model->id, parent);
  v.edits = edits;
  if (record) v.accuracy[record->images] = *record;
  rt->version = v.id;
  runtimes_[v.id] = rt;
  runtime_order_.push_back(v.id);
  save_history_locked();
  json out = version_json_locked(v);
  out["evaluation"] = evaluation;
  if (evaluation.is_null() && run_eval)
    out["note"] = "the re-evaluation cache of '" + model->id + "' is not ready yet; run an evaluate job";
  return out;
}

void Playground::record_accuracy(int64_t version, const AccuracyRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = versions_.find(version);
  if (it == versions_.end()) return;
  it->second.accuracy[record.images] = record;
  save_history_locked();
}

json Playground::quant_json(int64_t version) const {
  const auto rt = runtime(version);
  std::vector<Edit> edits;
  {
    std::lock_guard<std::mutex> lock(mu_);
    edits = version_locked(version).edits;
  }
  std::map<std::string, int> narrowed;  // the last set_bits of each tensor
  std::set<std::string> edited;
  for (const Edit& e : edits) {
    edited.insert(e.target);
    if (e.kind == Edit::Kind::set_bits) narrowed[e.target] = static_cast<int>(e.value);
  }
  const auto owner = layer_of_params(rt->layers);
  json tensors = json::array();
  for (const QuantParam& p : rt->params) {
    json t = {{"tensor", p.tensor},
              {"role", p.kind},
              {"dtype", dtype_name(p.dtype)},
              {"axis", p.axis < 0 ? json(nullptr) : json(p.axis)},
              {"scale_name", p.scale_name},
              {"zero_point_name", p.zero_point_name},
              {"layer", owner.count(p.tensor) ? json(owner.at(p.tensor)) : json(nullptr)},
              {"edited", edited.count(p.tensor) != 0}};
    try {
      const QuantGrid grid = quant_grid(p);
      int bits = grid.bits();
      int64_t qmin = grid.qmin, qmax = grid.qmax;
      if (auto it = narrowed.find(p.tensor); it != narrowed.end()) {
        bits = it->second;
        const bool is_signed = grid.qmin < 0;
        qmin = is_signed ? -(int64_t(1) << (bits - 1)) : 0;
        qmax = is_signed ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1;
      }
      json clip_min = json::array(), clip_max = json::array();
      for (size_t c = 0; c < grid.channels(); ++c) {
        clip_min.push_back(double(grid.scales[c]) * double(qmin - grid.zero_points[c]));
        clip_max.push_back(double(grid.scales[c]) * double(qmax - grid.zero_points[c]));
      }
      t["bits"] = bits;
      t["qmin"] = qmin;
      t["qmax"] = qmax;
      t["scales"] = grid.scales;
      t["zero_points"] = grid.zero_points;
      t["clip_min"] = clip_min;
      t["clip_max"] = clip_max;
    } catch (const Error& e) {
      t["bits"] = nullptr;
      t["scales"] = p.scales;
      t["zero_points"] = p.zero_points;
      t["note"] = e.what();
    }
    tensors.push_back(t);
  }
  return {{"version", version},
          {"model", rt->model},
          {"tensors", tensors},
          {"layers", layers_json(*rt->graph, rt->layers)}};
}

std::pair<std::string, std::string> Playground::export_onnx(int64_t version) const {
  const auto rt = runtime(version);
  return {export_onnx_bytes(*rt->graph), rt->model + "_v" + std::to_string(version) + ".onnx"};
}

json Playground::residuals(int64_t version, int64_t limit) const {
  const auto rt = runtime(version);
  ResidualOptions ro;
  ro.limit = limit;
  ro.threads = options_.threads;
  ro.progress = [this](int64_t, int64_t) { return !stopping_.load(); };
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    path = model_locked(rt->model)->path;
  }
  const auto fp32 = fp32_model();  // each Add's output is also measured against the FP32 Add
  json j = residuals_json(study_residuals(rt->graph, data_, ro, fp32->graph), path, data_.source, fp32->path);
  j["version"] = version;
  return j;
}

json Playground::mode_comparison(const std::string& model_id) {
  std::shared_ptr<const ModelEntry> model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    model = model_locked(model_id);
  }
  if (model->kind != "quantized")
    throw HttpError(400,
                    "model '" + model->id + "' is FP32: simulate and integer mode differ only for quantized models");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = mode_comparisons_.find(model->id); it != mode_comparisons_.end()) return it->second;
  }
  const auto simulate = cache_of(model->id);
  const auto integer = simulate ? integer_cache_of(*model) : nullptr;
  if (!simulate || !integer)
    throw HttpError(503, "the cache of model '" + model->id + "' is still being built; try again shortly");
  json j = mode_comparison_json(compare_modes(*simulate, *integer), model->path, data_.source);
  j["model_id"] = model->id;
  std::lock_guard<std::mutex> lock(mu_);
  mode_comparisons_[model->id] = j;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Images and inference

json Playground::images_json(int64_t offset, int64_t limit) const {
  if (offset < 0 || offset > data_.size())
    throw HttpError(400, "offset " + std::to_string(offset) + " is outside 0.." + std::to_string(data_.size()));
  if (limit < 1 || limit > 1000) throw HttpError(400, "limit " + std::to_string(limit) + " is outside 1..1000");
  const auto& names = cifar10_class_names();
  json images = json::array();
  for (int64_t i = offset; i < std::min(offset + limit, data_.size()); ++i)
    images.push_back({{"index", i}, {"label", data_.labels[i]}, {"class", names.at(data_.labels[i])}});
  return {{"total", data_.size()}, {"offset", offset}, {"images", images}};
}

std::string Playground::image_png(int64_t index) const {
  check_image(data_, index);
  return cifar_image_png(&data_.pixels[static_cast<size_t>(index) * kCifarPixels]);
}

json Playground::infer(const json& request) const {
  const auto start = std::chrono::steady_clock::now();
  if (!request.is_object()) throw HttpError(400, "the request body must be a JSON object");
  for (const auto& [key, value] : request.items())
    if (key != "version" && key != "model" && key != "image" && key != "png")
      throw HttpError(400, "unknown field '" + key + "' (expected version or model, and image or png)");

  // The image: one of the data set, or an upload.
  Dataset one;
  json image = nullptr, label = nullptr;
  if (request.contains("image") == request.contains("png"))
    throw HttpError(400,
                    "give exactly one of 'image' (an index into the data "
                    "set) and 'png' (base64 image)");
  if (request.contains("image")) {
    const int64_t k = check_image(data_, int_field(request, "image"));
    one = one_image(data_, k);
    image = k;
    label = data_.labels[k];
  } else {
    const std::string text = string_field(request, "png");
    if (text.size() > kImageUploadBytes / 3 * 4 + 1024)
      throw HttpError(413, "the uploaded image is larger than " + std::to_string(kImageUploadBytes >> 20) + " MB");
    std::string bytes;
    try {
      bytes = base64_decode(text);
      one.pixels = decode_image_to_cifar(bytes);
    } catch (const Error& e) {
      throw HttpError(400, std::string("'png': ") + e.what());
    }
    one.source = "upload";
    one.labels = {0};  // unknown; only predictions are reported
  }

  // The model: a version of a quantized model, or a model as loaded.
  std::shared_ptr<const VersionRuntime> rt;
  std::shared_ptr<const ModelEntry> fp32 = fp32_model(), model;
  json version = nullptr;
  if (request.contains("version")) {
    rt = runtime(int_field(request, "version"));
    version = rt->version;
  } else if (request.contains("model")) {
    std::lock_guard<std::mutex> lock(mu_);
    model = model_locked(string_field(request, "model"));
  } else {
    throw HttpError(400, "missing field 'version' (or 'model')");
  }
  std::shared_ptr<const Graph> quantized_graph;
  std::shared_ptr<const Executor> quantized_exec;
  std::string model_id;
  if (rt) {
    quantized_graph = rt->graph;
    quantized_exec = rt->executor;
    model_id = rt->model;
  } else {
    model_id = model->id;
    if (model->kind == "quantized") {
      quantized_graph = model->graph;
      quantized_exec = model->executor;
    } else {
      fp32 = model;  // an FP32 model answers for itself
    }
  }

  auto run = [&](const Executor& exec) {
    const ValueInfo& in = image_input(exec.graph());
    std::map<std::string, Tensor> feeds{{in.name, make_image_batch(one, 0, 1, image_layout_for(in))}};
    return exec.run(feeds).at(exec.graph().outputs.at(0).name);
  };
  json out = {{"image", image}, {"label", label}, {"version", version}, {"model", model_id}};
  out["fp32"] = prediction_json(run(*fp32->executor));
  out["quantized"] = nullptr;
  out["layers"] = json::array();
  if (quantized_exec) {
    out["quantized"] = prediction_json(run(*quantized_exec));
    std::shared_ptr<const Comparison> comparison;
    if (rt && !image.is_null()) {
      comparison = image_comparison(*rt, image.get<int64_t>());
    } else {
      CompareOptions co;
      co.image = 0;
      co.batch = 1;
      co.threads = 1;
      co.fp32_executor = fp32->executor;
      co.quantized_executor = quantized_exec;
      comparison = std::make_shared<const Comparison>(compare_models(fp32->graph, quantized_graph, one, co));
    }
    for (const auto& l : comparison->layers)
      out["layers"].push_back(
          {{"layer", l.name},
           {"kind", l.kind},
           {"fp32_layer", l.fp32_name},
           {"accumulated", error_with_clip(l.accumulated, l)},
           {"isolated", l.has_isolated ? error_with_clip(l.isolated, l) : json(nullptr)}});
  }
  out["seconds"] = seconds_since(start);
  return out;
}

json Playground::layer_json(int64_t version, const std::string& layer_name, int64_t image, int bins,
                            int64_t limit) const {
  const auto rt = runtime(version);
  const int li = find_layer(rt->layers, layer_name);
  if (li < 0) {
    std::string known;
    for (const auto& l : rt->layers) known += (known.empty() ? "" : ", ") + l.name;
    throw HttpError(
        404, "version " + std::to_string(version) + " has no layer named '" + layer_name + "' (layers: " + known + ")");
  }
  if (bins < 1 || bins > 4096) throw HttpError(400, "bins " + std::to_string(bins) + " is outside 1..4096");
  if (image >= 0) check_image(data_, image);
  const Layer& layer = rt->layers[li];
  const auto fp32 = fp32_model();
  std::string model_path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    model_path = model_locked(rt->model)->path;
  }
  json out = {{"version", version},
              {"layer", layer.name},
              {"kind", layer.kind},
              {"op_type", layer.op_type},
              {"image", image < 0 ? json(nullptr) : json(image)}};

  // Metrics of this layer on image k.
  out["metrics"] = nullptr;
  if (image >= 0) {
    for (const auto& l : image_comparison(*rt, image)->layers)
      if (l.name == layer.name)
        out["metrics"] = {{"fp32_layer", l.fp32_name},
                          {"accumulated", error_metrics_json(l.accumulated)},
                          {"isolated", l.has_isolated ? error_metrics_json(l.isolated) : json(nullptr)},
                          {"codes", l.has_codes ? code_stats_json(l.codes) : json(nullptr)},
                          {"clipping", l.has_clipping ? clipping_json(l.clipping) : json(nullptr)}};
  }

  HistogramOptions ho;
  ho.bins = bins;
  ho.threads = options_.threads;
  ho.limit = limit;

  // Weight: histogram, per output channel ranges and grid, and the dequantized values as a heat map.
  out["weight"] = nullptr;
  const std::string weight = !layer.weight_params.empty() ? layer.weight_params : layer.weight;
  if (!weight.empty()) {
    json w = {{"tensor", weight}};
    try {
      const TensorHistogram h = tensor_histogram(rt->graph, weight, fp32->graph, data_, ho);
      w["histogram"] = histogram_json(h, model_path, fp32->path, data_.source);
      json channels = json::array();
      const auto& ranges = h.dequantized_channels ? h.dequantized_channels : h.float_channels;
      if (ranges)
        for (size_t c = 0; c < ranges->min.size(); ++c) {
          json ch = {{"channel", c},
                     {"min", ranges->min[c]},
                     {"max", ranges->max[c]},
                     {"scale", nullptr},
                     {"zero_point", nullptr}};
          if (h.grid && h.grid->channels() > 0) {
            const size_t g = h.grid->channels() == 1 ? 0 : c;
            if (g < h.grid->channels()) {
              ch["scale"] = h.grid->scales[g];
              ch["zero_point"] = h.grid->zero_points[g];
            }
          }
          channels.push_back(ch);
        }
      w["per_channel"] = channels;
    } catch (const Error& e) {
      w["histogram"] = nullptr;
      w["per_channel"] = json::array();
      w["error"] = e.what();
    }
    // Heat map: dequantized (or float) weights as [first dimension] x [the rest].
    w["heatmap"] = nullptr;
    const Tensor* t = rt->graph->initializer(layer.weight);
    if (t && t->rank() >= 1 && t->shape[0] > 0) {
      Tensor values;
      if (t->dtype == DType::f32) {
        values = *t;
      } else if (const QuantParam* p = find_quant_param(rt->params, layer.weight_params)) {
        values = dequantize(*t, quant_grid(*p));
      }
      if (values.dtype == DType::f32 && values.numel() > 0) {
        const int64_t rows = values.shape[0], cols = values.numel() / rows;
        json grid = json::array();
        const float* v = values.data<float>();
        for (int64_t r = 0; r < rows; ++r) grid.push_back(std::vector<float>(v + r * cols, v + (r + 1) * cols));
        w["heatmap"] = {{"rows", rows}, {"cols", cols}, {"values", grid}};
      }
    }
    out["weight"] = w;
  }

  // Activation (the layer's output): FP32 values vs this version's dequantized values, with the grid.
  out["activation"] = nullptr;
  const std::string activation = !layer.output_params.empty() ? layer.output_params : layer.output;
  if (!activation.empty()) {
    json a = {{"tensor", activation}};
    try {
      const Dataset one = image >= 0 ? one_image(data_, image) : Dataset{};
      const TensorHistogram h = tensor_histogram(rt->graph, activation, fp32->graph, image >= 0 ? one : data_, ho);
      a["images"] = h.images;
      a["histogram"] = histogram_json(h, model_path, fp32->path, image >= 0 ? one.source : data_.source);
    } catch (const Error& e) {
      a["histogram"] = nullptr;
      a["error"] = e.what();
    }
    out["activation"] = a;
  }
  return out;
}

json Playground::add_model(const std::string& bytes, const std::string& name) {
  if (bytes.size() > kModelUploadBytes)
    throw HttpError(413, "the model is larger than " + std::to_string(kModelUploadBytes >> 20) + " MB");
  std::shared_ptr<const Graph> g;
  try {
    g = std::make_shared<const Graph>(load_onnx_from_bytes(bytes, name.empty() ? "upload" : name));
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = unique_model_id_locked(name.empty() ? "upload" : fs::path(name).stem().string());
    reserved_ids_.insert(id);  // a concurrent upload of the same name picks another id (and file)
  }
  std::shared_ptr<ModelEntry> entry;
  try {
    // Absolute, so the history still finds the file when the server starts from another directory.
    const fs::path path = fs::absolute(fs::path(options_.workspace) / "models" / (id + ".onnx"));
    write_file_atomically(path, bytes);
    entry = make_entry(g, path.string(), id);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ids_.erase(id);
    throw;
  }
  entry->in_workspace = true;
  json out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ids_.erase(id);
    if (entry->kind == "quantized") {
      entry->base_version = new_version_locked(id).id;
      cache_state_[id] = "building";
    }
    register_model_locked(entry);
    save_history_locked();
    out = {{"id", id},
           {"path", entry->path},
           {"kind", entry->kind},
           {"format", entry->format},
           {"nodes", g->nodes.size()},
           {"layers", entry->layers.size()},
           {"base_version", entry->base_version < 0 ? json(nullptr) : json(entry->base_version)}};
  }
  if (entry->kind == "quantized") start_cache_thread({id});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Jobs

namespace {

quantize::QuantizeOptions parse_quantize_options(const json& o, int threads, int64_t& calib_count, uint64_t& seed,
                                                 std::string& name) {
  using namespace qplay::quantize;
  static const std::set<std::string> known = {
      "method",        "percentile",   "act",      "weights",         "per_channel",
      "symmetric_act", "wbits",        "abits",    "bias_correction", "bias_correction_images",
      "equalize",      "weight_range", "rounding", "exclude",         "calib_count",
      "seed",          "name"};
  if (!o.is_object()) throw HttpError(400, "'options' must be an object");
  for (const auto& [key, value] : o.items())
    if (!known.count(key)) throw HttpError(400, "unknown quantize option '" + key + "'");
  auto str = [&](const char* key, const char* fallback) {
    if (!o.contains(key)) return std::string(fallback);
    if (!o[key].is_string()) throw HttpError(400, std::string("option '") + key + "' must be a string");
    return o[key].get<std::string>();
  };
  auto boolean = [&](const char* key) {
    if (!o.contains(key)) return false;
    if (!o[key].is_boolean()) throw HttpError(400, std::string("option '") + key + "' must be true or false");
    return o[key].get<bool>();
  };
  auto integer = [&](const char* key, int64_t fallback) {
    if (!o.contains(key)) return fallback;
    if (!o[key].is_number_integer()) throw HttpError(400, std::string("option '") + key + "' must be an integer");
    return o[key].get<int64_t>();
  };
  auto storage = [&](const char* key, const char* fallback) {
    const std::string v = str(key, fallback);
    if (v == "uint8") return DType::u8;
    if (v == "int8") return DType::i8;
    throw HttpError(400, std::string("option '") + key + "' '" + v + "' is not uint8 or int8");
  };
  QuantizeOptions q;
  try {
    q.format.weight_bits = static_cast<int>(integer("wbits", 8));
    q.format.activation_bits = static_cast<int>(integer("abits", 8));
    for (const char* key : {"wbits", "abits"}) {
      const int64_t b = integer(key, 8);
      if (b < 2 || b > 8)
        throw HttpError(400, std::string("option '") + key + "' " + std::to_string(b) + " is outside 2..8");
    }
    q.format.activation_type = storage("act", "uint8");
    q.format.weight_type = storage("weights", "int8");
    q.format.per_channel = boolean("per_channel");
    q.format.symmetric_activations = boolean("symmetric_act");
    q.format.weight_range = parse_weight_range_method(str("weight_range", "minmax"));
    q.method = parse_calibration_method(str("method", "minmax"));
    if (o.contains("percentile")) {
      if (!o["percentile"].is_number()) throw HttpError(400, "option 'percentile' must be a number");
      q.percentile = o["percentile"].get<double>();
    }
    if (o.contains("exclude")) {
      if (!o["exclude"].is_array()) throw HttpError(400, "option 'exclude' must be an array of node names");
      for (const auto& n : o["exclude"]) {
        if (!n.is_string()) throw HttpError(400, "option 'exclude' must be an array of node names");
        q.excluded.insert(n.get<std::string>());
      }
    }
    q.equalize = boolean("equalize");
    const std::string rounding = str("rounding", "nearest");
    if (rounding != "nearest" && rounding != "gptq")
      throw HttpError(400, "option 'rounding' '" + rounding + "' is not nearest or gptq");
    q.gptq_rounding = rounding == "gptq";
    q.bias_correction = boolean("bias_correction");
    q.bias_correction_images = integer("bias_correction_images", 256);
    calib_count = integer("calib_count", 1000);
    if (calib_count < 1) throw HttpError(400, "option 'calib_count' must be at least 1");
    const int64_t s = integer("seed", 0);
    if (s < 0) throw HttpError(400, "option 'seed' must be >= 0");
    seed = static_cast<uint64_t>(s);
    name = str("name", "");
    q.run.threads = threads;
    validate_options(q);
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  return q;
}

}  // namespace

int64_t Playground::start_job(const json& request) {
  if (!request.is_object()) throw HttpError(400, "the request body must be a JSON object");
  static const std::set<std::string> kinds = {"evaluate", "compare", "sensitivity", "residuals", "quantize"};
  for (const auto& [key, value] : request.items())
    if (key != "kind" && key != "version" && key != "model" && key != "limit" && key != "options")
      throw HttpError(400, "unknown field '" + key + "' (expected kind, version or model, limit, options)");
  const std::string kind = string_field(request, "kind");
  if (!kinds.count(kind))
    throw HttpError(400,
                    "unknown job kind '" + kind + "' (expected evaluate, compare, sensitivity, residuals, quantize)");
  limit_of(request);
  const json options = request.value("options", json::object());
  if (!options.is_object()) throw HttpError(400, "'options' must be an object");

  // Everything a job needs is checked now, so a bad request is a 4xx and not a failed job.
  if (kind == "quantize") {
    std::lock_guard<std::mutex> lock(mu_);
    const auto m = model_locked(request.contains("model") ? string_field(request, "model") : fp32_id_);
    if (m->kind != "fp32") throw HttpError(400, "quantize needs an FP32 model; '" + m->id + "' is quantized");
    int64_t c;
    uint64_t s;
    std::string n;
    parse_quantize_options(options, options_.threads, c, s, n);
  } else if (request.contains("version")) {
    runtime(int_field(request, "version"));  // 404 for an unknown version
  } else if (kind == "evaluate" && request.contains("model")) {
    std::lock_guard<std::mutex> lock(mu_);
    model_locked(string_field(request, "model"));
  } else {
    throw HttpError(400, "missing field 'version'" + std::string(kind == "evaluate" ? " (or 'model')" : ""));
  }
  if (kind == "compare")
    for (const auto& [key, value] : options.items())
      if (key != "isolated" || !value.is_boolean())
        throw HttpError(400, "compare options: only 'isolated' (true/false)");
  if (kind == "sensitivity")
    for (const auto& [key, value] : options.items()) {
      if (key != "bits" || !value.is_array()) throw HttpError(400, "sensitivity options: only 'bits' (an array)");
      for (const auto& b : value)
        if (!b.is_number_integer() || b.get<int>() < 2 || b.get<int>() > 8)
          throw HttpError(400, "sensitivity option 'bits': " + b.dump() + " is not a bit width 2..8");
    }
  if ((kind == "evaluate" || kind == "residuals") && !options.empty()) throw HttpError(400, kind + " takes no options");

  auto job = std::make_shared<Job>();
  job->kind = kind;
  job->created = now_iso();
  job->request = request;
  std::lock_guard<std::mutex> lock(mu_);
  job->id = next_job_++;
  jobs_[job->id] = job;
  spawn_locked([this, job] { run_job(job); });
  return job->id;
}

std::shared_ptr<Job> Playground::job(int64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) throw HttpError(404, "unknown job " + std::to_string(id));
  return it->second;
}

json Playground::jobs_json() const {
  std::vector<std::shared_ptr<Job>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, j] : jobs_) all.push_back(j);
  }
  json out = json::array();
  for (const auto& j : all) {
    json s = j->to_json();
    s.erase("result");  // the list stays small; GET /api/jobs/{id} has it
    out.push_back(s);
  }
  return {{"jobs", out}};
}

json Playground::cancel_job(int64_t id) {
  auto j = job(id);
  j->cancel = true;
  return j->to_json();
}

void Playground::run_job(std::shared_ptr<Job> job) {
  const auto start = std::chrono::steady_clock::now();
  Job& j = *job;
  const Progress progress = [this, &j, start](int64_t done, int64_t total) {
    {
      std::lock_guard<std::mutex> lock(j.mu);
      j.done = done;
      j.total = total;
      j.seconds = seconds_since(start);
      ++j.revision;
    }
    j.changed.notify_all();
    return !j.cancel.load() && !stopping_.load();
  };
  json result;
  std::string state = "done", error;
  try {
    const json& r = j.request;
    const int64_t limit = limit_of(r);
    const json options = r.value("options", json::object());
    if (j.kind == "evaluate") {
      result = run_evaluate(j, progress);
    } else if (j.kind == "quantize") {
      result = run_quantize(j, progress);
    } else {
      const auto rt = runtime(r.at("version").get<int64_t>());
      const auto fp32 = fp32_model();
      std::string path;
      {
        std::lock_guard<std::mutex> lock(mu_);
        path = model_locked(rt->model)->path;
      }
      const std::string label = path + " (version " + std::to_string(rt->version) + ")";
      if (j.kind == "compare") {
        CompareOptions co;
        co.limit = limit;
        co.threads = options_.threads;
        co.isolated = options.value("isolated", true);
        co.progress = progress;
        result = compare_json(compare_models(fp32->graph, rt->graph, data_, co), fp32->path, label, data_.source);
      } else if (j.kind == "sensitivity") {
        SensitivityOptions so;
        so.limit = limit < 0 ? data_.size() : limit;
        so.threads = options_.threads;
        so.weight_bits = options.value("bits", std::vector<int>{});
        so.progress = progress;
        result =
            sensitivity_json(study_sensitivity(fp32->graph, rt->graph, data_, so), fp32->path, label, data_.source);
      } else {  // residuals
        ResidualOptions ro;
        ro.limit = limit < 0 ? data_.size() : limit;
        ro.threads = options_.threads;
        ro.progress = progress;
        result =
            residuals_json(study_residuals(rt->graph, data_, ro, fp32->graph), label, data_.source, fp32->path);
      }
      result["version"] = rt->version;
    }
  } catch (const Cancelled&) {
    state = "cancelled";
  } catch (const std::exception& e) {
    state = "failed";
    error = e.what();
  }
  {
    std::lock_guard<std::mutex> lock(j.mu);
    // A cancel request that came after the last batch does not undo a finished result.
    j.state = state;
    j.result = std::move(result);
    j.error = error;
    j.seconds = seconds_since(start);
    ++j.revision;
  }
  j.changed.notify_all();
}

json Playground::run_evaluate(Job& job, const Progress& progress) {
  const json& r = job.request;
  std::shared_ptr<const Executor> exec;
  std::string model_id, path;
  int64_t version = -1;
  if (r.contains("version")) {
    const auto rt = runtime(r["version"].get<int64_t>());
    exec = rt->executor;
    model_id = rt->model;
    version = rt->version;
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    const auto m = model_locked(r["model"].get<std::string>());
    exec = m->executor;
    model_id = m->id;
    version = m->base_version;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    path = model_locked(model_id)->path;
  }
  EvalOptions eo;
  eo.limit = limit_of(r);
  eo.threads = options_.threads;
  eo.progress = progress;
  const EvalResult result = evaluate(*exec, data_, eo);
  json j = eval_json(result, path, data_.source, eo);
  j["model"] = model_id;
  j["version"] = version < 0 ? json(nullptr) : json(version);
  j["flipped"] = json::array();
  if (model_id != fp32_model()->id) {
    const std::vector<int>& reference = fp32_predictions();
    for (int64_t i = 0; i < result.images; ++i)
      if (result.predictions[i] != reference[i])
        j["flipped"].push_back(
            {{"index", i}, {"label", data_.labels[i]}, {"fp32", reference[i]}, {"quantized", result.predictions[i]}});
  }
  if (version >= 0) record_accuracy(version, {result.images, result.correct, "job"});
  return j;
}

json Playground::run_quantize(Job& job, const Progress& progress) {
  const json& r = job.request;
  int64_t calib_count = 1000;
  uint64_t seed = 0;
  std::string name;
  quantize::QuantizeOptions q =
      parse_quantize_options(r.value("options", json::object()), options_.threads, calib_count, seed, name);
  q.run.check = [&progress](int64_t, int64_t) { return progress(1, 4); };
  std::shared_ptr<const ModelEntry> fp32;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fp32 = model_locked(r.contains("model") ? r["model"].get<std::string>() : fp32_id_);
  }
  const auto start = std::chrono::steady_clock::now();
  report_progress(progress, 0, 4);
  const std::string calib_path =
      options_.calibration.empty() ? quantize::default_calibration_path() : options_.calibration;
  const Dataset calibration =
      quantize::select_calibration_images(quantize::load_calibration_data(calib_path), calib_count, seed);
  report_progress(progress, 1, 4);
  quantize::QuantizeReport report;
  const Graph quantized = quantize::quantize_model(*fp32->graph, calibration, q, &report);
  report.total_seconds = seconds_since(start);
  report_progress(progress, 2, 4);

  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = unique_model_id_locked(name.empty() ? fp32->id + "_q" : name);
  }
  const std::string bytes = export_onnx_bytes(quantized);
  const json model = add_model(bytes, id);
  report_progress(progress, 4, 4);
  return {{"model", model["id"]},
          {"version", model["base_version"]},
          {"report", quantize::quantize_report_json(report, q, fp32->path, model["path"].get<std::string>(),
                                                    calibration.source)}};
}

}  // namespace qplay::server
