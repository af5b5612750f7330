#include "quantize/report.h"

#include <fmt/format.h>

namespace qplay::quantize {

std::string describe_options(const QuantizeOptions& o) {
  const QdqFormat& f = o.format;
  std::string s = fmt::format("W{}A{} {} {}w/{}a {}", f.weight_bits, f.activation_bits,
                              f.per_channel ? "per-channel" : "per-tensor", dtype_name(f.weight_type),
                              dtype_name(f.activation_type), calibration_method_name(o.method));
  if (o.method == CalibrationMethod::percentile) s += fmt::format(" {}", o.percentile);
  if (f.symmetric_activations) s += " symmetric-act";
  if (f.weight_range == WeightRangeMethod::mse) s += " weight-range=mse";
  if (o.equalize) s += " equalize";
  if (o.gptq_rounding) s += " gptq-rounding";
  if (o.bias_correction) s += " bias-correction";
  return s;
}

nlohmann::json quantize_report_json(const QuantizeReport& r, const QuantizeOptions& o, const std::string& model_path,
                                    const std::string& output_path, const std::string& calibration_source) {
  nlohmann::json j;
  j["model"] = model_path;
  j["output"] = output_path;
  j["settings"] = {{"summary", describe_options(o)},
                   {"method", calibration_method_name(o.method)},
                   {"percentile", o.percentile},
                   {"activation_type", dtype_name(o.format.activation_type)},
                   {"weight_type", dtype_name(o.format.weight_type)},
                   {"activation_bits", o.format.activation_bits},
                   {"weight_bits", o.format.weight_bits},
                   {"per_channel", o.format.per_channel},
                   {"symmetric_activations", o.format.symmetric_activations},
                   {"weight_range", o.format.weight_range == WeightRangeMethod::mse ? "mse" : "minmax"},
                   {"equalize", o.equalize},
                   {"bias_correction", o.bias_correction},
                   {"rounding", o.gptq_rounding ? "gptq" : "nearest"},
                   {"excluded", std::vector<std::string>(o.excluded.begin(), o.excluded.end())}};
  j["calibration"] = {{"source", calibration_source}, {"images", r.calibration_images}};
  j["folded_batchnorms"] = r.folded_batchnorms;
  j["equalized_pairs"] = r.equalized_pairs;
  j["quantized_weights"] = r.quantized_weights;
  j["gptq_layers"] = r.gptq_layers;
  nlohmann::json acts = nlohmann::json::array();
  for (const auto& a : r.activations)
    acts.push_back({{"tensor", a.tensor},
                    {"min", a.min},
                    {"max", a.max},
                    {"range", {a.range.lo, a.range.hi}},
                    {"scale", a.params.scale},
                    {"zero_point", a.params.zero_point}});
  j["activations"] = acts;
  if (o.bias_correction)
    j["bias_correction"] = {{"layers", r.bias_correction.layers},
                            {"mean_abs_shift_per_round", r.bias_correction.mean_abs_shift}};
  j["seconds"] = {{"calibration", r.calibration_seconds}, {"total", r.total_seconds}};
  return j;
}

std::string quantize_report_text(const nlohmann::json& j) {
  std::string s;
  s += fmt::format("model        {}\n", j["model"].get<std::string>());
  s += fmt::format("output       {}\n", j["output"].get<std::string>());
  s += fmt::format("settings     {}\n", j["settings"]["summary"].get<std::string>());
  s += fmt::format("calibration  {} images from {}\n", j["calibration"]["images"].get<int64_t>(),
                   j["calibration"]["source"].get<std::string>());
  s += fmt::format("folded BN    {}    equalized pairs {}    quantized weights {}\n", j["folded_batchnorms"].get<int>(),
                   j["equalized_pairs"].get<int>(), j["quantized_weights"].get<int>());
  s += fmt::format("activations  {}\n", j["activations"].size());
  s += fmt::format("  {:<28} {:>10} {:>10} {:>10} {:>10} {:>12} {:>5}\n", "tensor", "min", "max", "range lo",
                   "range hi", "scale", "zp");
  for (const auto& a : j["activations"])
    s += fmt::format("  {:<28} {:>10.4g} {:>10.4g} {:>10.4g} {:>10.4g} {:>12.6g} {:>5}\n",
                     a["tensor"].get<std::string>(), a["min"].get<float>(), a["max"].get<float>(),
                     a["range"][0].get<float>(), a["range"][1].get<float>(), a["scale"].get<float>(),
                     a["zero_point"].get<int>());
  if (j.contains("bias_correction")) {
    s += fmt::format("bias correction  {} layers, mean |shift| per round:", j["bias_correction"]["layers"].get<int>());
    for (const auto& v : j["bias_correction"]["mean_abs_shift_per_round"]) s += fmt::format(" {:.3g}", v.get<double>());
    s += "\n";
  }
  s += fmt::format("time         {:.2f} s (calibration {:.2f} s)\n", j["seconds"]["total"].get<double>(),
                   j["seconds"]["calibration"].get<double>());
  return s;
}

}  // namespace qplay::quantize
