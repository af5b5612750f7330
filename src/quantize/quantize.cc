#include "quantize/quantize.h"

#include <chrono>

#include "quantize/equalize.h"
#include "quantize/fold_batchnorm.h"

namespace qplay::quantize {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_bits(const char* what, int bits) {
  if (bits < 2 || bits > 8) throw Error(std::string(what) + " bit width " + std::to_string(bits) + " is outside 2..8");
}

}  // namespace

void validate_options(const QuantizeOptions& o) {
  check_bits("activation", o.format.activation_bits);
  check_bits("weight", o.format.weight_bits);
  for (DType t : {o.format.activation_type, o.format.weight_type})
    if (t != DType::u8 && t != DType::i8) throw Error("quantized types must be uint8 or int8");
  if (!(o.percentile > 0.0 && o.percentile <= 100.0))
    throw Error("percentile " + std::to_string(o.percentile) + " is outside (0, 100]");
  if (o.bias_correction_rounds < 1) throw Error("bias correction needs at least one round");
  if (o.bias_correction_images < 1) throw Error("bias correction needs at least one image");
}

PreparedModel prepare_model(const Graph& model, const Dataset& calibration, bool histograms, bool equalize,
                            const BatchRunOptions& run) {
  const auto start = std::chrono::steady_clock::now();
  if (calibration.size() == 0) throw Error("no calibration images");
  PreparedModel p;
  for (const auto& n : model.nodes) p.node_names.insert(n.name);
  p.fp32 = model;
  p.folded_batchnorms = fold_batchnorm(p.fp32);
  if (equalize) p.equalized_pairs = equalize_cross_layer(p.fp32);
  p.candidates = activations_to_quantize(p.fp32, {});
  p.stats = collect_activation_stats(p.fp32, p.candidates, calibration, histograms, run);
  p.histograms = histograms;
  p.seconds = seconds_since(start);
  return p;
}

Graph quantize_prepared(const PreparedModel& prepared, const Dataset& calibration, const QuantizeOptions& options,
                        QuantizeReport* report) {
  const auto start = std::chrono::steady_clock::now();
  validate_options(options);
  for (const auto& name : options.excluded)
    if (!prepared.node_names.count(name)) throw Error("cannot exclude node '" + name + "': the model has no such node");
  if (options.method != CalibrationMethod::minmax && !prepared.histograms)
    throw Error(std::string("internal: the ") + calibration_method_name(options.method) + " method needs histograms");

  Graph fp32 = prepared.fp32;
  RangeOptions range_options;
  range_options.method = options.method;
  range_options.percentile = options.percentile;
  range_options.codes = activation_codes(options.format);
  range_options.symmetric = options.format.symmetric_activations;
  std::map<std::string, RealRange> ranges;
  for (const auto& [tensor, stats] : prepared.stats) ranges[tensor] = choose_range(stats, range_options);

  const QuantPlan plan = plan_quantization(fp32, ranges, options.format, options.excluded);
  // Rounding moves the weights onto their grids (same scales); bias correction then measures
  // the model with those weights.
  const int gptq_layers =
      options.gptq_rounding ? round_weights_gptq(fp32, plan, calibration, options.rounding, options.run) : 0;
  BiasCorrectionReport bias_report;
  if (options.bias_correction)
    bias_report = correct_biases(fp32, plan, subsample_evenly(calibration, options.bias_correction_images),
                                 options.bias_correction_rounds, options.run);
  Graph out = insert_qdq(fp32, plan);
  out.producer = "qplay quantize";

  if (report) {
    report->folded_batchnorms = prepared.folded_batchnorms;
    report->equalized_pairs = prepared.equalized_pairs;
    report->calibration_images = calibration.size();
    report->activations.clear();
    for (const auto& tensor : activations_to_quantize(fp32, options.excluded)) {
      const ActivationStats& s = prepared.stats.at(tensor);
      const ActivationQuant& a = plan.activations.at(tensor);
      report->activations.push_back({tensor, s.min, s.max, a.calibrated, a.params});
    }
    report->quantized_weights = static_cast<int>(plan.weights.size());
    report->gptq_layers = gptq_layers;
    report->bias_correction = bias_report;
    report->calibration_seconds = prepared.seconds;
    report->total_seconds = prepared.seconds + seconds_since(start);
  }
  return out;
}

Graph quantize_model(const Graph& model, const Dataset& calibration, const QuantizeOptions& options,
                     QuantizeReport* report) {
  validate_options(options);
  for (const auto& name : options.excluded)
    if (model.find_node(name) < 0) throw Error("cannot exclude node '" + name + "': the model has no such node");
  const bool histograms = options.method != CalibrationMethod::minmax;
  const PreparedModel prepared = prepare_model(model, calibration, histograms, options.equalize, options.run);
  return quantize_prepared(prepared, calibration, options, report);
}

}  // namespace qplay::quantize
