#include "runtime/integer/integer_mode.h"

#include "runtime/integer/lower.h"

namespace qplay::integer {

RunMode parse_run_mode(const std::string& name) {
  if (name == "simulate") return RunMode::simulate;
  if (name == "integer") return RunMode::integer;
  throw Error("unknown mode '" + name + "' (expected simulate or integer)");
}

const char* run_mode_name(RunMode mode) { return mode == RunMode::integer ? "integer" : "simulate"; }

std::shared_ptr<const Graph> graph_for_mode(const Graph& model, RunMode mode) {
  return std::make_shared<const Graph>(mode == RunMode::integer ? lower_to_integer(model) : model);
}

}  // namespace qplay::integer
