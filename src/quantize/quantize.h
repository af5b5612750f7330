// Post-training static quantization of an FP32 model into the QDQ layout, end to end:
//   fold BatchNormalization -> [cross-layer equalization] -> calibrate (FP32 model, training
//   images) -> choose ranges -> plan scales -> [GPTQ rounding] -> [bias correction] -> write Q/DQ.
// Each step is a free function of its own file; this one only strings them together.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/cifar10.h"
#include "quantize/activation_stats.h"
#include "quantize/bias_correction.h"
#include "quantize/calibration.h"
#include "quantize/gptq.h"
#include "quantize/qdq.h"
#include "quantize/range_methods.h"

namespace qplay::quantize {

struct QuantizeOptions {
  QdqFormat format;
  CalibrationMethod method = CalibrationMethod::minmax;
  double percentile = 99.99;
  std::set<std::string> excluded;  // node names kept in FP32
  bool equalize = false;           // cross-layer equalization before calibration
  bool gptq_rounding = false;      // Hessian-guided weight rounding instead of nearest
  RoundingOptions rounding;
  bool bias_correction = false;
  int64_t bias_correction_images = 256;  // of the calibration images, spread evenly: the channel
                                         // means need far fewer images than the ranges, and each
                                         // depth level costs one run over them
  int bias_correction_rounds = 1;        // depth-ordered sweeps; one is exact up to rounding
  BatchRunOptions run;
};

// The FP32 model made ready once for any number of quantizations of it (the accuracy table
// quantizes one model 200 ways): BN folded, optionally equalized, statistics collected.
struct PreparedModel {
  Graph fp32;
  int folded_batchnorms = 0;
  int equalized_pairs = 0;
  std::set<std::string> node_names;     // of the model as given (what --exclude may name)
  std::vector<std::string> candidates;  // activations any plan may quantize (nothing excluded)
  std::map<std::string, ActivationStats> stats;
  bool histograms = false;
  double seconds = 0.0;
};

// `histograms` = false is enough for minmax (one pass instead of two).
PreparedModel prepare_model(const Graph& model, const Dataset& calibration, bool histograms, bool equalize,
                            const BatchRunOptions& run = {});

struct ActivationReport {
  std::string tensor;
  float min = 0.0f, max = 0.0f;  // seen during calibration
  RealRange range;               // chosen by the method
  ScaleZeroPoint params;
};

struct QuantizeReport {
  int folded_batchnorms = 0;
  int equalized_pairs = 0;
  int64_t calibration_images = 0;
  std::vector<ActivationReport> activations;
  int quantized_weights = 0;
  int gptq_layers = 0;
  BiasCorrectionReport bias_correction;
  double calibration_seconds = 0.0;
  double total_seconds = 0.0;
};

// Quantizes a prepared model (the calibration images are needed again only for bias correction).
Graph quantize_prepared(const PreparedModel& prepared, const Dataset& calibration, const QuantizeOptions& options,
                        QuantizeReport* report = nullptr);

// Everything in one call. Throws qplay::Error for a bad option (an excluded node the model does
// not have, a bit width outside 2..8, histograms missing for a histogram method).
Graph quantize_model(const Graph& model, const Dataset& calibration, const QuantizeOptions& options,
                     QuantizeReport* report = nullptr);

// Validates the option values that do not depend on the model.
void validate_options(const QuantizeOptions& options);

}  // namespace qplay::quantize
