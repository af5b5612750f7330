#include "session/reports.h"

#include <fmt/format.h>

#include <map>

#include "graph/quant_params.h"
#include "io/cifar10.h"

namespace qplay {

using nlohmann::json;

namespace {

json value_info_json(const ValueInfo& v) {
  json shape = json::array();
  for (size_t i = 0; i < v.shape.size(); ++i) {
    if (v.shape[i] >= 0) shape.push_back(v.shape[i]);
    else shape.push_back(i < v.dim_params.size() && !v.dim_params[i].empty() ? v.dim_params[i] : "?");
  }
  return {{"name", v.name}, {"dtype", dtype_name(v.dtype)}, {"shape", shape}};
}

}  // namespace

json model_info_json(const Graph& g, const std::string& path) {
  json info;
  info["model"] = path;
  info["opset"] = g.opset;
  info["producer"] = g.producer;
  info["inputs"] = json::array();
  for (const auto& v : g.inputs) info["inputs"].push_back(value_info_json(v));
  info["outputs"] = json::array();
  for (const auto& v : g.outputs) info["outputs"].push_back(value_info_json(v));
  info["node_count"] = g.nodes.size();
  std::map<std::string, int> ops;
  for (const auto& n : g.nodes) ops[n.op_type]++;
  info["op_counts"] = ops;
  int64_t params = 0;
  for (const auto& [name, t] : g.initializers) params += t.numel();
  info["initializer_elements"] = params;
  info["quantized_tensors"] = json::array();
  for (const auto& q : list_quant_params(g)) {
    info["quantized_tensors"].push_back({{"tensor", q.tensor},
                                         {"kind", q.kind},
                                         {"nodes", q.nodes},
                                         {"dtype", dtype_name(q.dtype)},
                                         {"axis", q.axis < 0 ? json(nullptr) : json(q.axis)},
                                         {"scale_name", q.scale_name},
                                         {"zero_point_name", q.zero_point_name},
                                         {"scales", q.scales},
                                         {"zero_points", q.zero_points}});
  }
  return info;
}

json eval_json(const EvalResult& r, const std::string& model_path, const std::string& data_source,
               const EvalOptions& options) {
  json j;
  j["model"] = model_path;
  j["data"] = data_source;
  j["images"] = r.images;
  j["correct"] = r.correct;
  j["accuracy"] = r.accuracy();
  j["seconds"] = r.seconds;
  j["images_per_second"] = r.images_per_second();
  j["batch"] = options.batch;
  j["threads"] = options.threads;
  const auto& names = cifar10_class_names();
  j["per_class"] = json::array();
  for (size_t c = 0; c < r.class_total.size(); ++c) {
    j["per_class"].push_back({{"class", c < names.size() ? names[c] : std::to_string(c)},
                              {"total", r.class_total[c]},
                              {"correct", r.class_correct[c]},
                              {"accuracy", r.class_total[c] ? double(r.class_correct[c]) / r.class_total[c] : 0.0}});
  }
  j["confusion"] = r.confusion;
  return j;
}

std::string model_info_text(const json& info) {
  std::string s;
  s += fmt::format("model      {}\nopset      {}\nnodes      {}\n", info["model"].get<std::string>(),
                   info["opset"].get<int64_t>(), info["node_count"].get<int64_t>());
  for (const auto& v : info["inputs"]) s += fmt::format("input      {} {} {}\n", v["name"].get<std::string>(), v["dtype"].get<std::string>(), v["shape"].dump());
  for (const auto& v : info["outputs"]) s += fmt::format("output     {} {} {}\n", v["name"].get<std::string>(), v["dtype"].get<std::string>(), v["shape"].dump());
  s += "ops       ";
  for (const auto& [op, n] : info["op_counts"].items()) s += fmt::format(" {}x{}", op, n.get<int>());
  s += "\n";
  const auto& q = info["quantized_tensors"];
  if (q.empty()) {
    s += "quantized tensors: none (float model)\n";
    return s;
  }
  s += fmt::format("quantized tensors: {}\n", q.size());
  s += fmt::format("  {:<34} {:<10} {:<6} {:>5} {:>14} {:>6}\n", "tensor", "kind", "type", "axis", "scale", "zp");
  for (const auto& t : q) {
    const auto& scales = t["scales"];
    const auto& zps = t["zero_points"];
    std::string scale_txt, zp_txt;
    if (scales.size() == 1) {
      scale_txt = fmt::format("{:.6g}", scales[0].get<double>());
      zp_txt = zps.empty() ? "0" : std::to_string(zps[0].get<int64_t>());
    } else if (!scales.empty()) {
      double lo = scales[0].get<double>(), hi = lo;
      for (const auto& v : scales) { lo = std::min(lo, v.get<double>()); hi = std::max(hi, v.get<double>()); }
      scale_txt = fmt::format("{:.3g}..{:.3g}", lo, hi);
      zp_txt = fmt::format("x{}", zps.size());
    } else {
      scale_txt = "(computed)";
    }
    s += fmt::format("  {:<34} {:<10} {:<6} {:>5} {:>14} {:>6}\n", t["tensor"].get<std::string>(),
                     t["kind"].get<std::string>(), t["dtype"].get<std::string>(),
                     t["axis"].is_null() ? "-" : std::to_string(t["axis"].get<int64_t>()), scale_txt, zp_txt);
  }
  return s;
}

std::string eval_text(const json& j) {
  std::string s;
  s += fmt::format("model     {}\ndata      {} ({} images)\naccuracy  {:.2f}% ({}/{})\nspeed     {:.0f} images/s "
                   "(batch {}, {} threads, {:.2f} s)\n",
                   j["model"].get<std::string>(), j["data"].get<std::string>(), j["images"].get<int64_t>(),
                   100.0 * j["accuracy"].get<double>(), j["correct"].get<int64_t>(), j["images"].get<int64_t>(),
                   j["images_per_second"].get<double>(), j["batch"].get<int64_t>(), j["threads"].get<int>(),
                   j["seconds"].get<double>());
  s += "\nper class\n";
  for (const auto& c : j["per_class"])
    s += fmt::format("  {:<11} {:6.2f}% ({}/{})\n", c["class"].get<std::string>(), 100.0 * c["accuracy"].get<double>(),
                     c["correct"].get<int64_t>(), c["total"].get<int64_t>());
  s += "\nconfusion (rows: true class, columns: predicted)\n     ";
  const auto& conf = j["confusion"];
  for (size_t c = 0; c < conf.size(); ++c) s += fmt::format("{:>6}", c);
  s += "\n";
  for (size_t r = 0; r < conf.size(); ++r) {
    s += fmt::format("  {:>2} ", r);
    for (const auto& v : conf[r]) s += fmt::format("{:>6}", v.get<int64_t>());
    s += "\n";
  }
  return s;
}

}  // namespace qplay
