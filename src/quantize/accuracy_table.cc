#include "quantize/accuracy_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "session/evaluate.h"

namespace qplay::quantize {

const char* recipe_name(Recipe r) {
  switch (r) {
    case Recipe::plain:
      return "plain";
    case Recipe::tuned:
      return "tuned";
    case Recipe::gptq:
      return "gptq";
  }
  return "?";
}

Recipe parse_recipe(const std::string& name) {
  if (name == "plain") return Recipe::plain;
  if (name == "tuned") return Recipe::tuned;
  if (name == "gptq") return Recipe::gptq;
  throw Error("unknown recipe '" + name + "' (expected plain, tuned or gptq)");
}

QuantizeOptions cell_options(const TableCell& cell, const TableSpec& spec) {
  QuantizeOptions o;
  o.method = cell.method;
  o.percentile = spec.percentile;
  o.format.activation_type = spec.activation_type;
  o.format.weight_type = DType::i8;
  o.format.per_channel = cell.per_channel;
  o.format.weight_bits = cell.weight_bits;
  o.format.activation_bits = cell.activation_bits;
  o.run.threads = spec.threads;
  if (cell.recipe != Recipe::plain) {
    o.equalize = true;
    o.format.weight_range = WeightRangeMethod::mse;
    o.bias_correction = true;
  }
  o.gptq_rounding = cell.recipe == Recipe::gptq;
  return o;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

EvalResult score(const Graph& g, const Dataset& test, const TableSpec& spec) {
  const Executor executor(std::make_shared<const Graph>(g));
  EvalOptions eval;
  eval.limit = spec.test_limit;
  eval.threads = spec.threads;
  return evaluate(executor, test, eval);
}

}  // namespace

AccuracyTable run_accuracy_table(const Graph& fp32, const std::string& model_path, const Dataset& test,
                                 const Dataset& calibration, const TableSpec& spec,
                                 const std::function<void(const TableCell&)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  AccuracyTable table;
  table.model = model_path;
  table.test_source = test.source;
  table.calibration_source = calibration.source;
  table.calibration_images = calibration.size();
  const EvalResult reference = score(fp32, test, spec);
  table.fp32_accuracy = reference.accuracy();
  table.test_images = reference.images;

  // Timing of a whole quantization per method (calibration included), W8A8 per tensor.
  for (Recipe r : spec.recipes)
    for (CalibrationMethod m : spec.methods) {
      TableCell cell;
      cell.method = m;
      cell.recipe = r;
      const auto t0 = std::chrono::steady_clock::now();
      quantize_model(fp32, calibration, cell_options(cell, spec));
      table.timings.push_back({m, r, seconds_since(t0)});
    }

  for (Recipe recipe : spec.recipes) {
    BatchRunOptions run;
    run.threads = spec.threads;
    const PreparedModel prepared = prepare_model(fp32, calibration, true, recipe != Recipe::plain, run);
    std::vector<std::pair<int, int>> pairs = spec.pairs;
    if (pairs.empty())
      for (int wb : spec.weight_bits)
        for (int ab : spec.activation_bits) pairs.push_back({wb, ab});
    for (CalibrationMethod m : spec.methods)
      for (bool per_channel : spec.per_channel)
        for (const auto& [wb, ab] : pairs) {
          TableCell cell{recipe, m, per_channel, wb, ab};
          const Graph q = quantize_prepared(prepared, calibration, cell_options(cell, spec));
          const EvalResult r = score(q, test, spec);
          cell.correct = r.correct;
          cell.images = r.images;
          table.cells.push_back(cell);
          if (progress) progress(cell);
        }
  }
  table.seconds = seconds_since(start);
  return table;
}

nlohmann::json accuracy_table_json(const AccuracyTable& t) {
  nlohmann::json j;
  j["model"] = t.model;
  j["test_source"] = t.test_source;
  j["calibration_source"] = t.calibration_source;
  j["calibration_images"] = t.calibration_images;
  j["fp32_accuracy"] = t.fp32_accuracy;
  j["test_images"] = t.test_images;
  j["seconds"] = t.seconds;
  j["timings"] = nlohmann::json::array();
  for (const auto& m : t.timings)
    j["timings"].push_back(
        {{"method", calibration_method_name(m.method)}, {"recipe", recipe_name(m.recipe)}, {"seconds", m.seconds}});
  j["cells"] = nlohmann::json::array();
  for (const auto& c : t.cells)
    j["cells"].push_back({{"recipe", recipe_name(c.recipe)},
                          {"method", calibration_method_name(c.method)},
                          {"per_channel", c.per_channel},
                          {"weight_bits", c.weight_bits},
                          {"activation_bits", c.activation_bits},
                          {"correct", c.correct},
                          {"images", c.images},
                          {"accuracy", c.accuracy()}});
  return j;
}

AccuracyTable accuracy_table_from_json(const nlohmann::json& j) {
  AccuracyTable t;
  t.model = j.at("model");
  t.test_source = j.at("test_source");
  t.calibration_source = j.at("calibration_source");
  t.calibration_images = j.at("calibration_images");
  t.fp32_accuracy = j.at("fp32_accuracy");
  t.test_images = j.at("test_images");
  t.seconds = j.at("seconds");
  for (const auto& m : j.at("timings"))
    t.timings.push_back(
        {parse_calibration_method(m.at("method")), parse_recipe(m.at("recipe")), m.at("seconds").get<double>()});
  for (const auto& c : j.at("cells"))
    t.cells.push_back({parse_recipe(c.at("recipe")), parse_calibration_method(c.at("method")), c.at("per_channel"),
                       c.at("weight_bits"), c.at("activation_bits"), c.at("correct"), c.at("images")});
  return t;
}

void merge_tables(AccuracyTable& into, const AccuracyTable& more) {
  if (more.test_images < into.test_images) {
    into.partial_images = more.test_images;
    into.partial_fp32_accuracy = more.fp32_accuracy;
  }
  for (const auto& c : more.cells) {
    auto same = std::find_if(into.cells.begin(), into.cells.end(), [&](const TableCell& o) {
      return o.recipe == c.recipe && o.method == c.method && o.per_channel == c.per_channel &&
             o.weight_bits == c.weight_bits && o.activation_bits == c.activation_bits;
    });
    if (same == into.cells.end())
      into.cells.push_back(c);
    else if (c.images > same->images)
      *same = c;
  }
  for (const auto& m : more.timings) {
    const bool known = std::any_of(into.timings.begin(), into.timings.end(),
                                   [&](const MethodTiming& o) { return o.method == m.method && o.recipe == m.recipe; });
    if (!known) into.timings.push_back(m);
  }
  into.seconds += more.seconds;
}

namespace {

// Another project's PyTorch fake-quantization map (REFERENCE.md): per-tensor symmetric weights.
constexpr double kReferenceGrid[5][5] = {{11.69, 33.70, 48.03, 51.18, 51.64},
                                         {10.48, 44.52, 60.10, 72.05, 75.77},
                                         {12.06, 52.31, 76.57, 83.02, 84.81},
                                         {12.35, 54.02, 75.49, 85.34, 86.20},
                                         {12.65, 55.25, 76.86, 86.15, 87.05}};

const TableCell* find_cell(const AccuracyTable& t, Recipe r, CalibrationMethod m, bool pc, int wb, int ab) {
  for (const auto& c : t.cells)
    if (c.recipe == r && c.method == m && c.per_channel == pc && c.weight_bits == wb && c.activation_bits == ab)
      return &c;
  return nullptr;
}

// Best cell for a width pair; per_channel: 0 = per tensor only, 1 = per channel only, -1 = either.
// Cells on the whole test set come first; others only when no whole-set cell exists.
const TableCell* best_cell(const AccuracyTable& t, int wb, int ab, int per_channel) {
  const TableCell* best = nullptr;
  auto better = [&](const TableCell& c) {
    if (!best) return true;
    const bool c_full = c.images >= t.test_images, best_full = best->images >= t.test_images;
    if (c_full != best_full) return c_full;
    return c.accuracy() > best->accuracy();
  };
  for (const auto& c : t.cells)
    if (c.weight_bits == wb && c.activation_bits == ab && (per_channel < 0 || c.per_channel == (per_channel == 1)) &&
        better(c))
      best = &c;
  return best;
}

// Paths as a reader of the repository sees them: relative to it, or ../shared/...
std::string display_path(std::string p) {
  const std::string source = std::string(QPLAY_SOURCE_DIR) + "/";
  const std::string shared = source.substr(0, source.rfind('/', source.size() - 2) + 1) + "shared/";
  if (p.rfind(source, 0) == 0) return p.substr(source.size());
  if (p.rfind(shared, 0) == 0) return "../shared/" + p.substr(shared.size());
  return p;
}

std::string pct(double a) { return fmt::format("{:.2f}", 100.0 * a); }

// A cell's accuracy, marked when it was scored on fewer images than the full test set.
std::string cell_pct(const TableCell* c, int64_t full) {
  if (!c) return "-";
  return pct(c->accuracy()) + (c->images < full ? "\\*" : "");
}

std::string cell_label(const TableCell& c) {
  return fmt::format("{} {}, {}", recipe_name(c.recipe), calibration_method_name(c.method),
                     c.per_channel ? "per-channel" : "per-tensor");
}

std::string grid_header(const TableSpec& spec) {
  std::string s = "| wq \\ aq |";
  for (int ab : spec.activation_bits) s += fmt::format(" {} |", ab);
  s += "\n|---|";
  for (size_t i = 0; i < spec.activation_bits.size(); ++i) s += "---:|";
  return s + "\n";
}

}  // namespace

std::string accuracy_table_markdown(const AccuracyTable& t, const TableSpec& spec) {
  std::string s;
  s += "# Accuracy of qplay's post-training quantization (ResNet-8, CIFAR-10)\n\n";
  s += "Generated by `qplay accuracy-table` (`make accuracy-table`); do not edit by hand. The method and\n";
  s += "options are described in docs/QUANTIZE.md, the reference figures in ../shared/reference/REFERENCE.md.\n\n";
  s += fmt::format("- model: `{}` (FP32 in qplay: {}% on these images)\n", display_path(t.model), pct(t.fp32_accuracy));
  s += fmt::format("- test images: {} from `{}`\n", t.test_images, display_path(t.test_source));
  s += fmt::format("- calibration: {} training images, `{}`\n", t.calibration_images,
                   display_path(t.calibration_source));
  s += fmt::format("- activations {} (asymmetric), weights int8 symmetric (codes +-(2^(wq-1) - 1)); widths below 8\n",
                   dtype_name(spec.activation_type));
  s += "  bits are emulated in 8-bit storage with narrowed code ranges (docs/QUANTIZE.md)\n";
  s += "- recipes: **plain** = the calibration method alone with min/max weight ranges (ONNX Runtime's\n";
  s += "  quantize_static); **tuned** = cross-layer equalization + MSE-searched weight ranges + empirical\n";
  s += "  bias correction, with the same calibration method for activations; **gptq** = tuned + Hessian-guided\n";
  s += "  (GPTQ) weight rounding instead of rounding to nearest\n";
  s += fmt::format("- whole sweep: {:.0f} s on this machine (2 cores, shared)\n", t.seconds);
  int64_t fewest = t.test_images;
  for (const auto& c : t.cells) fewest = std::min(fewest, c.images);
  if (fewest < t.test_images) {
    s += fmt::format("- \\* = scored on the first {} test images only, not the whole set (a shortened sweep)", fewest);
    if (t.partial_images == fewest)
      s += fmt::format("; the FP32 model scores {}% on those, so compare \\* cells with that",
                       pct(t.partial_fp32_accuracy));
    s += "\n";
  }
  s += "- `-` = not measured in this sweep\n\n";

  s += "## Targets\n\n| target | reached | best cell |\n|---|---:|---|\n";
  struct Target {
    const char* name;
    int wb, ab, per_channel;
    double goal;
  };
  const Target targets[] = {{"W8A8 per-channel >= 87.19%", 8, 8, 1, 87.19},
                            {"W8A8 per-tensor >= 87.0%", 8, 8, 0, 87.0},
                            {"W4A8 >= 83%", 4, 8, -1, 83.0},
                            {"W6A6 >= 86%", 6, 6, -1, 86.0},
                            {"W5A5 >= 80%", 5, 5, -1, 80.0},
                            {"W4A4 >= 70%", 4, 4, -1, 70.0}};
  for (const auto& target : targets) {
    const TableCell* c = best_cell(t, target.wb, target.ab, target.per_channel);
    if (!c) continue;
    const bool met = 100.0 * c->accuracy() >= target.goal - 1e-9;
    s += fmt::format("| {} | {}% {} | {} |\n", target.name, cell_pct(c, t.test_images), met ? "yes" : "**no**",
                     cell_label(*c));
  }

  s += fmt::format("\n## Quantization time (whole `quantize_model`: BN folding, calibration on {} images, QDQ\n",
                   t.calibration_images);
  s += "writing; W8A8 per tensor; measured during the sweep, so other work on the machine shows)\n\n";
  s += "| method | recipe | seconds |\n|---|---|---:|\n";
  for (const auto& m : t.timings)
    s += fmt::format("| {} | {} | {:.2f} |\n", calibration_method_name(m.method), recipe_name(m.recipe), m.seconds);

  s += "\n## Best over methods and recipes (accuracy %, per tensor / per channel)\n\n" + grid_header(spec);
  for (int wb : spec.weight_bits) {
    s += fmt::format("| {} |", wb);
    for (int ab : spec.activation_bits) {
      const TableCell* pt = best_cell(t, wb, ab, 0);
      const TableCell* pc = best_cell(t, wb, ab, 1);
      s += fmt::format(" {} / {} |", cell_pct(pt, t.test_images), cell_pct(pc, t.test_images));
    }
    s += "\n";
  }
  s += "\nReference (REFERENCE.md: another project's PyTorch fake quantization, per-tensor symmetric weights):\n\n";
  s += "| wq \\ aq | 4 | 5 | 6 | 7 | 8 |\n|---|---:|---:|---:|---:|---:|\n";
  for (int w = 0; w < 5; ++w) {
    s += fmt::format("| {} |", w + 4);
    for (int a = 0; a < 5; ++a) s += fmt::format(" {:.2f} |", kReferenceGrid[w][a]);
    s += "\n";
  }
  s += "\nW8A8 references: ORT quantize_static uint8 MinMax per tensor (BN not folded) 86.75%, int8 85.58%;\n";
  s += "QDQ uint8/int8 per tensor, BN folded 86.97%; QDQ int8/int8 per channel 87.21%; PyTorch FX int8 85.68%.\n";

  for (Recipe r : spec.recipes)
    for (CalibrationMethod m : spec.methods) {
      s += fmt::format("\n## {} recipe, {} (accuracy %, per tensor / per channel)\n\n", recipe_name(r),
                       calibration_method_name(m));
      s += grid_header(spec);
      for (int wb : spec.weight_bits) {
        s += fmt::format("| {} |", wb);
        for (int ab : spec.activation_bits) {
          const TableCell* pt = find_cell(t, r, m, false, wb, ab);
          const TableCell* pc = find_cell(t, r, m, true, wb, ab);
          s += fmt::format(" {} / {} |", cell_pct(pt, t.test_images), cell_pct(pc, t.test_images));
        }
        s += "\n";
      }
    }
  return s;
}

}  // namespace qplay::quantize
