// JSON and text renderings of a quantization run (qplay quantize --json / text).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "quantize/quantize.h"

namespace qplay::quantize {

// Describes the options as the CLI spells them (e.g. "W8A8 per-channel int8/int8 minmax").
std::string describe_options(const QuantizeOptions& options);

nlohmann::json quantize_report_json(const QuantizeReport& report, const QuantizeOptions& options,
                                    const std::string& model_path, const std::string& output_path,
                                    const std::string& calibration_source);
std::string quantize_report_text(const nlohmann::json& report);

}  // namespace qplay::quantize
