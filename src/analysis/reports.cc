#include "analysis/reports.h"

#include <fmt/format.h>

#include <cmath>

namespace qplay {

using nlohmann::json;

json json_number(double v) {
  if (std::isnan(v)) return nullptr;
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

json layers_json(const Graph& g, const std::vector<Layer>& layers) {
  json out = json::array();
  for (const auto& L : layers) {
    json nodes = json::array();
    for (int n : L.nodes) nodes.push_back(g.nodes[n].name);
    out.push_back({{"name", L.name},
                   {"kind", L.kind},
                   {"op_type", L.op_type},
                   {"qoperator", L.qoperator},
                   {"nodes", nodes},
                   {"inputs", L.inputs},
                   {"input_params", L.input_params},
                   {"output", L.output},
                   {"output_codes", L.output_codes},
                   {"output_dequantized", L.output_dequantized},
                   {"output_params", L.output_params},
                   {"weight", L.weight},
                   {"weight_params", L.weight_params},
                   {"bias", L.bias},
                   {"bias_params", L.bias_params},
                   {"quant_params", L.quant_params}});
  }
  return out;
}

json error_metrics_json(const ErrorMetrics& m) {
  return {{"sqnr_db", json_number(m.sqnr_db)},
          {"mean_image_sqnr_db", json_number(m.mean_sample_sqnr_db)},
          {"mse", json_number(m.mse)},
          {"rmse", json_number(m.rmse)},
          {"cosine", json_number(m.cosine)},
          {"max_abs", json_number(m.max_abs)},
          {"rmse_over_scale", json_number(m.rmse_over_scale)},
          {"elements", m.elements},
          {"images", m.samples},
          {"exact_images", m.exact_samples}};
}

json code_stats_json(const CodeStats& s) {
  return {{"bits", s.bits},
          {"qmin", s.qmin},
          {"qmax", s.qmax},
          {"codes", s.codes},
          {"at_qmin", s.at_qmin},
          {"at_qmax", s.at_qmax},
          {"at_limits_rate", s.at_limits_rate},
          {"distinct", s.distinct},
          {"range_use", s.range_use}};
}

json clipping_json(const ClippingCounts& c) {
  return {{"values", c.values}, {"below", c.below}, {"above", c.above}, {"rate", clipping_rate(c)}};
}

json quant_grid_json(const QuantGrid& grid) {
  json clip_min = json::array(), clip_max = json::array();
  for (size_t c = 0; c < grid.channels(); ++c) {
    clip_min.push_back(grid.clip_min(c));
    clip_max.push_back(grid.clip_max(c));
  }
  return {{"dtype", dtype_name(grid.dtype)},
          {"bits", grid.bits()},
          {"axis", grid.axis < 0 ? json(nullptr) : json(grid.axis)},
          {"qmin", grid.qmin},
          {"qmax", grid.qmax},
          {"scales", grid.scales},
          {"zero_points", grid.zero_points},
          {"clip_min", clip_min},
          {"clip_max", clip_max}};
}

json compare_json(const Comparison& c, const std::string& fp32_path, const std::string& quantized_path,
                  const std::string& data_source) {
  json j;
  j["fp32_model"] = fp32_path;
  j["quantized_model"] = quantized_path;
  j["data"] = data_source;
  j["image"] = c.single_image ? json(c.first_image) : json(nullptr);
  j["first_image"] = c.first_image;
  j["images"] = c.images;
  j["seconds"] = c.seconds;
  const AccuracyBreakdown& a = c.accuracy;
  j["accuracy"] = {{"images", a.images},
                   {"fp32_correct", a.fp32_correct},
                   {"quantized_correct", a.quantized_correct},
                   {"fp32_accuracy", a.fp32_accuracy()},
                   {"quantized_accuracy", a.quantized_accuracy()},
                   {"differing_images", a.differing_images}};
  if (c.single_image && !a.fp32_predictions.empty())
    j["prediction"] = {{"label", a.labels.empty() ? json(nullptr) : json(a.labels[0])},
                       {"fp32", a.fp32_predictions[0]},
                       {"quantized", a.quantized_predictions[0]}};
  j["layers"] = json::array();
  for (const auto& L : c.layers) {
    j["layers"].push_back(
        {{"name", L.name},
         {"kind", L.kind},
         {"op_type", L.op_type},
         {"fp32_layer", L.fp32_name},
         {"compared_value", L.compared_value},
         {"fp32_value", L.fp32_value},
         {"quant_params", L.quant_params},
         {"output_quant_param", L.output_params.empty() ? json(nullptr) : json(L.output_params)},
         {"scale", json_number(L.scale)},
         {"accumulated", error_metrics_json(L.accumulated)},
         {"isolated", L.has_isolated ? error_metrics_json(L.isolated) : json(nullptr)},
         {"codes", L.has_codes ? code_stats_json(L.codes) : json(nullptr)},
         {"isolated_codes", L.has_codes && L.has_isolated ? code_stats_json(L.isolated_codes) : json(nullptr)},
         {"clipping", L.has_clipping ? clipping_json(L.clipping) : json(nullptr)}});
  }
  j["unmatched"] = {{"quantized", c.unmatched_quantized}, {"fp32", c.unmatched_fp32}};
  return j;
}

namespace {

// A JSON number (or "inf"/null) formatted for a table cell.
std::string cell(const json& v, const char* format) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return fmt::format(fmt::runtime(format), v.get<double>());
}

}  // namespace

std::string compare_text(const json& j) {
  std::string s;
  const json& a = j["accuracy"];
  s += fmt::format("fp32       {}\nquantized  {}\n", j["fp32_model"].get<std::string>(),
                   j["quantized_model"].get<std::string>());
  const int64_t first = j["first_image"].get<int64_t>(), n = j["images"].get<int64_t>();
  if (j["image"].is_null())
    s += fmt::format("data       {} (images {}..{})\n", j["data"].get<std::string>(), first, first + n - 1);
  else
    s += fmt::format("data       {} (image {})\n", j["data"].get<std::string>(), first);
  if (j.contains("prediction")) {
    const json& p = j["prediction"];
    s += fmt::format("prediction label {}, fp32 {}, quantized {}\n", cell(p["label"], "{:.0f}"), p["fp32"].get<int>(),
                     p["quantized"].get<int>());
  } else {
    const auto& diff = a["differing_images"];
    s += fmt::format("accuracy   fp32 {:.2f}%, quantized {:.2f}%; predictions differ on {} image(s)",
                     100.0 * a["fp32_accuracy"].get<double>(), 100.0 * a["quantized_accuracy"].get<double>(),
                     diff.size());
    if (!diff.empty()) {
      s += ":";
      for (size_t i = 0; i < diff.size() && i < 20; ++i) s += fmt::format(" {}", diff[i].get<int64_t>());
      if (diff.size() > 20) s += " ...";
    }
    s += "\n";
  }
  s += "\nSQNR in dB (acc: whole quantized model; iso: this layer alone on FP32 inputs); other columns: acc;\n"
       "clip %: FP32 values outside the output grid (quantizing them saturates)\n";
  s += fmt::format("{:<20} {:<6} {:>8} {:>8} {:>10} {:>8} {:>9} {:>7} {:>7} {:>6}\n", "layer", "kind", "SQNR acc",
                   "SQNR iso", "MSE", "cosine", "max abs", "rmse/s", "clip %", "range");
  for (const auto& L : j["layers"]) {
    const json& acc = L["accumulated"];
    const json none;
    const json& iso = L["isolated"].is_null() ? none : L["isolated"]["sqnr_db"];
    const json& codes = L["codes"];
    const json& clipping = L["clipping"];
    s += fmt::format("{:<20} {:<6} {:>8} {:>8} {:>10} {:>8} {:>9} {:>7} {:>7} {:>6}\n", L["name"].get<std::string>(),
                     L["kind"].get<std::string>(), cell(acc["sqnr_db"], "{:.2f}"), cell(iso, "{:.2f}"),
                     cell(acc["mse"], "{:.3g}"), cell(acc["cosine"], "{:.5f}"), cell(acc["max_abs"], "{:.4g}"),
                     cell(acc["rmse_over_scale"], "{:.3f}"),
                     clipping.is_null() ? "-" : fmt::format("{:.2g}", 100.0 * clipping["rate"].get<double>()),
                     codes.is_null() ? "-" : fmt::format("{:.2f}", codes["range_use"].get<double>()));
  }
  for (const char* side : {"quantized", "fp32"})
    if (!j["unmatched"][side].empty()) s += fmt::format("unmatched {} layers: {}\n", side, j["unmatched"][side].dump());
  return s;
}

json histogram_json(const TensorHistogram& h, const std::string& model_path, const std::string& fp32_path,
                    const std::string& data_source) {
  auto values_json = [](const Histogram& v) {
    return json{{"counts", v.counts}, {"below", v.below},          {"above", v.above},
                {"total", v.total},   {"min", json_number(v.min)}, {"max", json_number(v.max)}};
  };
  auto channels_json = [](const std::optional<ChannelRanges>& r) {
    return r ? json{{"axis", r->axis}, {"min", r->min}, {"max", r->max}} : json(nullptr);
  };
  const Histogram& any = h.has_float ? h.float_values : h.dequantized;
  json j;
  j["model"] = model_path;
  j["fp32_model"] = fp32_path.empty() ? json(nullptr) : json(fp32_path);
  j["data"] = h.kind == "activation" ? json(data_source) : json(nullptr);
  j["tensor"] = h.tensor;
  j["kind"] = h.kind;
  j["images"] = h.kind == "activation" ? json(h.images) : json(nullptr);
  j["bins"] = any.counts.size();
  j["edges"] = bin_edges(any);
  if (h.has_float) {
    j["float"] = values_json(h.float_values);
    j["float"]["value"] = h.float_value;
    j["float"]["source"] = h.float_source;
  } else {
    j["float"] = nullptr;
  }
  if (h.has_dequantized) {
    j["dequantized"] = values_json(h.dequantized);
    j["dequantized"]["value"] = h.dequantized_value;
    j["dequantized"]["codes_value"] = h.codes_value;
  } else {
    j["dequantized"] = nullptr;
  }
  if (h.grid) {
    j["grid"] = quant_grid_json(*h.grid);
    j["grid"]["quant_param"] = h.quant_param;
  } else {
    j["grid"] = nullptr;
  }
  j["float_channels"] = channels_json(h.float_channels);
  j["dequantized_channels"] = channels_json(h.dequantized_channels);
  j["note"] = h.note.empty() ? json(nullptr) : json(h.note);
  return j;
}

std::string histogram_text(const json& j) {
  std::string s;
  s += fmt::format("model       {}\ntensor      {} ({})\n", j["model"].get<std::string>(),
                   j["tensor"].get<std::string>(), j["kind"].get<std::string>());
  if (!j["images"].is_null())
    s += fmt::format("images      {} from {}\n", j["images"].get<int64_t>(), j["data"].get<std::string>());
  for (const char* side : {"float", "dequantized"}) {
    const json& v = j[side];
    if (v.is_null()) continue;
    s += fmt::format("{:<12}'{}'{}: {} values in [{}, {}]\n", side, v["value"].get<std::string>(),
                     v.contains("source") ? fmt::format(" ({})", v["source"].get<std::string>()) : "",
                     v["total"].get<int64_t>(), cell(v["min"], "{:.6g}"), cell(v["max"], "{:.6g}"));
  }
  if (!j["grid"].is_null()) {
    const json& g = j["grid"];
    const auto& scales = g["scales"];
    if (scales.size() == 1)
      s += fmt::format("grid        {} q in [{}, {}], scale {:.6g}, zero point {}, float range [{:.6g}, {:.6g}]\n",
                       g["dtype"].get<std::string>(), g["qmin"].get<int64_t>(), g["qmax"].get<int64_t>(),
                       scales[0].get<double>(), g["zero_points"][0].get<int64_t>(), g["clip_min"][0].get<double>(),
                       g["clip_max"][0].get<double>());
    else
      s += fmt::format("grid        {} q in [{}, {}], {} per-channel scales along axis {}\n",
                       g["dtype"].get<std::string>(), g["qmin"].get<int64_t>(), g["qmax"].get<int64_t>(), scales.size(),
                       g["axis"].dump());
  }
  if (!j["note"].is_null()) s += fmt::format("note        {}\n", j["note"].get<std::string>());

  // One line per bin: its range, the counts and a bar per side scaled to the largest count.
  const auto& edges = j["edges"];
  const json empty_counts = json::array();
  const json& fc = j["float"].is_null() ? empty_counts : j["float"]["counts"];
  const json& dc = j["dequantized"].is_null() ? empty_counts : j["dequantized"]["counts"];
  int64_t peak = 1;
  for (const auto* counts : {&fc, &dc})
    for (const auto& c : *counts) peak = std::max(peak, c.get<int64_t>());
  auto bar = [&](int64_t n, char c) { return std::string(static_cast<size_t>(20 * n / peak), c); };
  s += fmt::format("\n{:>12} {:>12} {:>10} {:>10}  {:<20} {}\n", "from", "to", "float", "dequant", "float", "dequant");
  for (size_t b = 0; b + 1 < edges.size(); ++b) {
    const int64_t f = b < fc.size() ? fc[b].get<int64_t>() : 0;
    const int64_t d = b < dc.size() ? dc[b].get<int64_t>() : 0;
    s += fmt::format("{:>12.5g} {:>12.5g} {:>10} {:>10}  {:<20} {}\n", edges[b].get<double>(),
                     edges[b + 1].get<double>(), fc.empty() ? "-" : std::to_string(f),
                     dc.empty() ? "-" : std::to_string(d), bar(f, '#'), bar(d, '='));
  }

  // Weights: one row per output channel, float and dequantized side by side.
  const json& fch = j["float_channels"];
  const json& dch = j["dequantized_channels"];
  if (!fch.is_null() || !dch.is_null()) {
    const json& any = fch.is_null() ? dch : fch;
    s += fmt::format("\nper output channel (axis {})\n{:>7} {:>12} {:>12} {:>12} {:>12}\n", any["axis"].get<int64_t>(),
                     "channel", "float min", "float max", "dequant min", "dequant max");
    auto at = [](const json& r, const char* key, size_t c) {
      return r.is_null() ? std::string("-") : fmt::format("{:.5g}", r[key][c].get<double>());
    };
    for (size_t c = 0; c < any["min"].size(); ++c)
      s += fmt::format("{:>7} {:>12} {:>12} {:>12} {:>12}\n", c, at(fch, "min", c), at(fch, "max", c),
                       at(dch, "min", c), at(dch, "max", c));
  }
  return s;
}

// The shapes of `qplay edit --json` (its "evaluation"), `residuals --json` and `sensitivity --json`.

json edit_evaluation_json(const Reevaluation& before, const Reevaluation& after, const std::string& data,
                          double capture_seconds) {
  int64_t changed = 0;
  for (int64_t i = 0; i < after.images; ++i) changed += before.predictions[i] != after.predictions[i];
  return {{"data", data},
          {"images", after.images},
          {"correct_before", before.correct},
          {"correct_after", after.correct},
          {"accuracy_before", before.accuracy()},
          {"accuracy_after", after.accuracy()},
          {"changed_predictions", changed},
          {"recomputed_nodes", after.recomputed_nodes.size()},
          {"total_nodes", after.total_nodes},
          {"fed_values", after.fed_values},
          {"cache_bytes", after.cache_bytes},
          {"fed_bytes", after.fed_bytes},
          {"capture_seconds", capture_seconds},
          {"reevaluate_seconds", after.seconds}};
}

json residuals_json(const ResidualStudy& s, const std::string& model, const std::string& data,
                    const std::string& fp32_model) {
  json adds = json::array();
  for (const auto& a : s.adds) {
    json scales = json::array();
    for (double v : a.input_scales) scales.push_back(json_number(v));
    adds.push_back({{"name", a.name},
                    {"inputs", a.inputs},
                    {"input_scales", scales},
                    {"scale_ratio", json_number(a.scale_ratio)},
                    {"float_value", a.float_value},
                    {"dequantized_value", a.dequantized_value},
                    {"output_scale", json_number(a.output_scale)},
                    {"requantization", error_metrics_json(a.requantization)},
                    {"fp32_layer", a.has_fp32 ? json(a.fp32_layer) : json(nullptr)},
                    {"fp32_value", a.has_fp32 ? json(a.fp32_value) : json(nullptr)},
                    {"compared_value", a.has_fp32 ? json(a.compared_value) : json(nullptr)},
                    {"against_fp32", a.has_fp32 ? error_metrics_json(a.against_fp32) : json(nullptr)}});
  }
  return {{"model", model},
          {"fp32_model", s.has_fp32 ? json(fp32_model) : json(nullptr)},
          {"data", data},
          {"images", s.images},
          {"adds", adds}};
}

json sensitivity_json(const Sensitivity& s, const std::string& fp32, const std::string& quantized,
                      const std::string& data) {
  json layers = json::array();
  for (const auto& l : s.layers) {
    json sweep = json::array();
    for (size_t i = 0; i < l.weight_bits.size(); ++i)
      sweep.push_back({{"bits", l.weight_bits[i]}, {"accuracy", l.weight_bits_accuracy[i]}});
    layers.push_back({{"name", l.name},
                      {"kind", l.kind},
                      {"only_this_quantized", l.only_this_quantized},
                      {"all_but_this_quantized", l.all_but_this},
                      {"weight_bits", sweep}});
  }
  return {{"fp32_model", fp32},
          {"quantized_model", quantized},
          {"data", data},
          {"images", s.images},
          {"fp32_accuracy", s.fp32_accuracy},
          {"quantized_accuracy", s.quantized_accuracy},
          {"all_bypassed_accuracy", s.all_bypassed_accuracy},
          {"layers", layers}};
}

json mode_comparison_json(const ModeComparison& c, const std::string& model, const std::string& data) {
  json layers = json::array();
  for (const auto& l : c.layers)
    layers.push_back(
        {{"name", l.layer},
         {"codes_value", l.codes_value},
         {"codes", l.codes},
         {"differing_codes", l.differing},
         {"differing_rate", l.codes ? static_cast<double>(l.differing) / static_cast<double>(l.codes) : 0.0},
         {"max_code_difference", l.max_code_difference},
         {"integer_vs_simulate", error_metrics_json(l.error)}});
  return {{"model", model},
          {"data", data},
          {"images", c.images},
          {"simulate_accuracy", c.simulate_accuracy},
          {"integer_accuracy", c.integer_accuracy},
          {"top1_agreement", c.top1_agreement},
          {"max_output_difference", json_number(c.max_output_difference)},
          {"layers", layers}};
}

std::string mode_comparison_text(const json& j) {
  std::string s = fmt::format("model      {}\ndata       {} ({} images)\n", j["model"].get<std::string>(),
                              j["data"].get<std::string>(), j["images"].get<int64_t>());
  s += fmt::format(
      "accuracy   simulate {:.2f}%, integer {:.2f}%; top-1 agrees on {} of {} images; largest output "
      "difference {}\n",
      100.0 * j["simulate_accuracy"].get<double>(), 100.0 * j["integer_accuracy"].get<double>(),
      j["top1_agreement"].get<int64_t>(), j["images"].get<int64_t>(), cell(j["max_output_difference"], "{:.3g}"));
  s += "\nEach layer's output codes, integer mode against simulate mode (the reference); SQNR of the dequantized\n"
       "values, rmse/s in output-grid steps\n";
  s += fmt::format("{:<20} {:>12} {:>10} {:>9} {:>9} {:>9} {:>7}\n", "layer", "codes", "differing", "%", "max diff",
                   "SQNR", "rmse/s");
  for (const auto& L : j["layers"]) {
    const json& e = L["integer_vs_simulate"];
    s += fmt::format("{:<20} {:>12} {:>10} {:>9.4f} {:>9} {:>9} {:>7}\n", L["name"].get<std::string>(),
                     L["codes"].get<int64_t>(), L["differing_codes"].get<int64_t>(),
                     100.0 * L["differing_rate"].get<double>(), L["max_code_difference"].get<int64_t>(),
                     cell(e["sqnr_db"], "{:.2f}"), cell(e["rmse_over_scale"], "{:.4f}"));
  }
  return s;
}

}  // namespace qplay
