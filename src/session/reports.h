// JSON shapes shared by the CLI's --json output and (later) the HTTP API. docs/JSON.md
// documents them; change both together.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "graph/ir.h"
#include "session/evaluate.h"

namespace qplay {

nlohmann::json model_info_json(const Graph& g, const std::string& path);
nlohmann::json eval_json(const EvalResult& r, const std::string& model_path, const std::string& data_source,
                         const EvalOptions& options);

// Human-readable renderings of the same data.
std::string model_info_text(const nlohmann::json& info);
std::string eval_text(const nlohmann::json& report);

}  // namespace qplay
