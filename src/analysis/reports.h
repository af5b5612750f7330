// JSON shapes of the analysis (CLI --json today, the HTTP API and web UI later) and their text
// renderings. docs/ANALYSIS.md documents the shapes; change both together.
//
// Non-finite numbers: JSON has none, so +inf/-inf (an SQNR of identical tensors) are written as
// the strings "inf"/"-inf", and NaN (a metric that does not apply) as null.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/compare.h"
#include "analysis/histogram.h"
#include "analysis/layers.h"
#include "analysis/mode_compare.h"
#include "analysis/reevaluate.h"
#include "analysis/residuals.h"
#include "analysis/sensitivity.h"

namespace qplay {

// A number, or "inf"/"-inf", or null for NaN.
nlohmann::json json_number(double v);

nlohmann::json layers_json(const Graph& g, const std::vector<Layer>& layers);
nlohmann::json error_metrics_json(const ErrorMetrics& m);
nlohmann::json code_stats_json(const CodeStats& s);
nlohmann::json clipping_json(const ClippingCounts& c);
nlohmann::json quant_grid_json(const QuantGrid& grid);

nlohmann::json compare_json(const Comparison& c, const std::string& fp32_path, const std::string& quantized_path,
                            const std::string& data_source);
std::string compare_text(const nlohmann::json& report);

nlohmann::json histogram_json(const TensorHistogram& h, const std::string& model_path, const std::string& fp32_path,
                              const std::string& data_source);
std::string histogram_text(const nlohmann::json& report);

// `qplay edit --json`'s "evaluation": the base model (before) against the edited one (after).
nlohmann::json edit_evaluation_json(const Reevaluation& before, const Reevaluation& after, const std::string& data,
                                    double capture_seconds);
// `fp32_model`: the path of the FP32 model the study was given (null in the JSON without one).
nlohmann::json residuals_json(const ResidualStudy& s, const std::string& model, const std::string& data,
                              const std::string& fp32_model = "");
// `qplay compare-modes`: simulate against integer mode per layer (docs/ANALYSIS.md).
nlohmann::json mode_comparison_json(const ModeComparison& c, const std::string& model, const std::string& data);
std::string mode_comparison_text(const nlohmann::json& report);

nlohmann::json sensitivity_json(const Sensitivity& s, const std::string& fp32, const std::string& quantized,
                                const std::string& data);

}  // namespace qplay
