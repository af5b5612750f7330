// The accuracy map behind docs/ACCURACY.md: one FP32 model quantized at every weight/activation
// width, per tensor and per channel, with each calibration method, scored on the test set.
// Calibration statistics are collected once and reused by every cell.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/cifar10.h"
#include "quantize/quantize.h"

namespace qplay::quantize {

// A recipe: what is applied on top of the calibration method.
//   plain: the method alone, minmax weight ranges (what ORT's quantize_static does)
//   tuned: cross-layer equalization + MSE weight ranges + empirical bias correction
//   gptq:  tuned + Hessian-guided (GPTQ) weight rounding
enum class Recipe { plain, tuned, gptq };
const char* recipe_name(Recipe r);
Recipe parse_recipe(const std::string& name);

struct TableSpec {
  std::vector<CalibrationMethod> methods = {CalibrationMethod::minmax, CalibrationMethod::percentile,
                                            CalibrationMethod::entropy, CalibrationMethod::mse};
  std::vector<bool> per_channel = {false, true};
  std::vector<int> weight_bits = {4, 5, 6, 7, 8};
  std::vector<int> activation_bits = {4, 5, 6, 7, 8};
  // When not empty: only these (weight bits, activation bits) pairs instead of the full grid.
  std::vector<std::pair<int, int>> pairs;
  std::vector<Recipe> recipes = {Recipe::plain, Recipe::tuned, Recipe::gptq};
  DType activation_type = DType::u8;
  double percentile = 99.99;
  int64_t test_limit = -1;  // -1: every test image
  int threads = 2;
};

struct TableCell {
  Recipe recipe = Recipe::plain;
  CalibrationMethod method = CalibrationMethod::minmax;
  bool per_channel = false;
  int weight_bits = 8;
  int activation_bits = 8;
  int64_t correct = 0;
  int64_t images = 0;
  double accuracy() const { return images ? static_cast<double>(correct) / images : 0.0; }
};

struct MethodTiming {
  CalibrationMethod method;
  Recipe recipe = Recipe::plain;
  double seconds = 0.0;  // quantize_model with the calibration images, W8A8 per tensor
};

struct AccuracyTable {
  std::string model;
  std::string test_source;
  std::string calibration_source;
  int64_t calibration_images = 0;
  double fp32_accuracy = 0.0;
  int64_t test_images = 0;
  // Set by merge_tables when a merged run scored fewer images: its FP32 accuracy on them.
  int64_t partial_images = 0;
  double partial_fp32_accuracy = 0.0;
  std::vector<TableCell> cells;
  std::vector<MethodTiming> timings;
  double seconds = 0.0;
};

QuantizeOptions cell_options(const TableCell& cell, const TableSpec& spec);

// Runs the sweep. `progress` (may be empty) is told about each finished cell.
AccuracyTable run_accuracy_table(const Graph& fp32, const std::string& model_path, const Dataset& test,
                                 const Dataset& calibration, const TableSpec& spec,
                                 const std::function<void(const TableCell&)>& progress);

// The whole result as JSON and back (so the Markdown can be re-rendered without re-running).
nlohmann::json accuracy_table_json(const AccuracyTable& table);
AccuracyTable accuracy_table_from_json(const nlohmann::json& j);
// Cells of `more` added to `into` (a cell measured in both keeps the one on more images).
void merge_tables(AccuracyTable& into, const AccuracyTable& more);

// docs/ACCURACY.md: the grids, the reference figures beside them and the targets.
std::string accuracy_table_markdown(const AccuracyTable& table, const TableSpec& spec);

}  // namespace qplay::quantize
