#include "quantize/range_methods.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "graph/ir.h"

namespace qplay::quantize {

CalibrationMethod parse_calibration_method(const std::string& name) {
  if (name == "minmax") return CalibrationMethod::minmax;
  if (name == "percentile") return CalibrationMethod::percentile;
  if (name == "entropy") return CalibrationMethod::entropy;
  if (name == "mse") return CalibrationMethod::mse;
  throw Error("unknown calibration method '" + name + "' (expected minmax, percentile, entropy or mse)");
}

const char* calibration_method_name(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::minmax:
      return "minmax";
    case CalibrationMethod::percentile:
      return "percentile";
    case CalibrationMethod::entropy:
      return "entropy";
    case CalibrationMethod::mse:
      return "mse";
  }
  return "?";
}

namespace {

void require_histogram(const ActivationStats& s, const char* method) {
  if (!s.has_histogram()) throw Error(std::string("internal: the ") + method + " method needs a histogram");
}

RealRange within_min_max(const ActivationStats& s, double lo, double hi) {
  return {static_cast<float>(std::clamp<double>(lo, s.min, s.max)),
          static_cast<float>(std::clamp<double>(hi, s.min, s.max))};
}

// The value below which `rank` of the histogram's values lie (0 <= rank <= total). Exact zeros
// are a point mass at 0 between the negative and the positive bins.
double value_at_rank(const ActivationStats& s, double rank) {
  const int64_t half = s.bins_per_side();
  const double w = s.bin_width();
  double below = 0.0;
  auto walk = [&](int64_t first, int64_t last, double& out) {
    for (int64_t i = first; i < last; ++i) {
      const double n = static_cast<double>(s.bins[i]);
      if (n > 0.0 && below + n >= rank) {
        out = -s.limit + (static_cast<double>(i) + (rank - below) / n) * w;
        return true;
      }
      below += n;
    }
    return false;
  };
  double v = 0.0;
  if (walk(0, half, v)) return v;
  below += static_cast<double>(s.zeros);
  if (below >= rank) return 0.0;
  if (walk(half, 2 * half, v)) return v;
  return s.limit;
}

}  // namespace

RealRange minmax_range(const ActivationStats& s) {
  if (s.count == 0) return {0.0f, 0.0f};
  return {s.min, s.max};
}

RealRange percentile_range(const ActivationStats& s, double percentile) {
  require_histogram(s, "percentile");
  const double total = static_cast<double>(s.histogram_total());
  if (total == 0.0) return {0.0f, 0.0f};
  const double keep = percentile / 100.0;
  return within_min_max(s, value_at_rank(s, (1.0 - keep) * total), value_at_rank(s, keep * total));
}

RealRange entropy_range(const ActivationStats& s, int levels) {
  require_histogram(s, "entropy");
  const std::vector<uint64_t> hist = absolute_histogram(s);
  const int64_t n = static_cast<int64_t>(hist.size());
  levels = std::max(1, std::min<int>(levels, static_cast<int>(n)));

  std::vector<double> tail(n + 1, 0.0);  // tail[i] = sum of hist[i..n)
  for (int64_t i = n - 1; i >= 0; --i) tail[i] = tail[i + 1] + static_cast<double>(hist[i]);
  if (tail[0] == 0.0) return {0.0f, 0.0f};

  int64_t best = n;
  double best_kl = std::numeric_limits<double>::infinity();
  std::vector<double> q(n);
  for (int64_t t = levels; t <= n; ++t) {
    // Q: the first t bins merged into `levels` groups, each group's count spread evenly over
    // its non-empty bins (empty bins stay empty: quantization does not create values there).
    for (int g = 0; g < levels; ++g) {
      const int64_t begin = g * t / levels, end = (g + 1) * t / levels;
      double mass = 0.0;
      int64_t nonempty = 0;
      for (int64_t i = begin; i < end; ++i) {
        mass += static_cast<double>(hist[i]);
        nonempty += hist[i] != 0;
      }
      for (int64_t i = begin; i < end; ++i) q[i] = hist[i] ? mass / static_cast<double>(nonempty) : 0.0;
    }
    // P: the same bins with everything beyond t clipped into the last one. Both P and Q sum to
    // tail[0] except for the clipped mass, so normalise each by its own sum.
    const double p_sum = tail[0];
    const double q_sum = tail[0] - tail[t];
    double kl = 0.0;
    for (int64_t i = 0; i < t; ++i) {
      const double p = static_cast<double>(hist[i]) + (i == t - 1 ? tail[t] : 0.0);
      if (p == 0.0) continue;
      const double pn = p / p_sum;
      const double qn = q_sum > 0.0 && q[i] > 0.0 ? q[i] / q_sum : 1e-12;  // smoothing: P has mass Q lacks
      kl += pn * std::log(pn / qn);
    }
    if (kl < best_kl) {
      best_kl = kl;
      best = t;
    }
  }
  const double threshold = static_cast<double>(best) * s.bin_width();
  return within_min_max(s, -threshold, threshold);
}

namespace {

struct WeightedValue {
  double value;
  double count;
};

// Expected squared error of quantizing the histogram's values onto the grid of [lo, hi].
double histogram_mse(const std::vector<WeightedValue>& values, float lo, float hi, IntRange range, bool symmetric) {
  const ScaleZeroPoint p = choose_scale_zero_point(lo, hi, range, symmetric);
  const double grid_lo = range_low(p, range), grid_hi = range_high(p, range);
  const double rounding = static_cast<double>(p.scale) * p.scale / 12.0;
  double err = 0.0;
  for (const auto& v : values) {
    if (v.value < grid_lo)
      err += v.count * (v.value - grid_lo) * (v.value - grid_lo);
    else if (v.value > grid_hi)
      err += v.count * (v.value - grid_hi) * (v.value - grid_hi);
    else
      err += v.count * rounding;
  }
  return err;
}

}  // namespace

RealRange mse_range(const ActivationStats& s, IntRange range, bool symmetric) {
  require_histogram(s, "mse");
  std::vector<WeightedValue> values;  // non-empty bins at their centres; exact zeros cost nothing
  for (int64_t i = 0; i < static_cast<int64_t>(s.bins.size()); ++i)
    if (s.bins[i]) values.push_back({s.bin_center(i), static_cast<double>(s.bins[i])});
  if (values.empty()) return {0.0f, 0.0f};

  const float lo0 = std::min(s.min, 0.0f), hi0 = std::max(s.max, 0.0f);
  constexpr int kSteps = 200;
  RealRange best{lo0, hi0};
  double best_err = histogram_mse(values, lo0, hi0, range, symmetric);
  auto consider = [&](float lo, float hi) {
    const double err = histogram_mse(values, lo, hi, range, symmetric);
    if (err < best_err) {
      best_err = err;
      best = {lo, hi};
    }
  };
  for (int k = 1; k < kSteps; ++k) {  // shrink both ends together
    const float a = static_cast<float>(k) / kSteps;
    consider(a * lo0, a * hi0);
  }
  if (!symmetric && lo0 < 0.0f && hi0 > 0.0f) {
    for (int round = 0; round < 2; ++round) {  // then each end alone (the grid is asymmetric)
      const RealRange start = best;
      for (int k = 1; k <= kSteps; ++k) consider(lo0 * k / kSteps, start.hi);
      const RealRange mid = best;
      for (int k = 1; k <= kSteps; ++k) consider(mid.lo, hi0 * k / kSteps);
    }
  }
  return best;
}

RealRange choose_range(const ActivationStats& s, const RangeOptions& o) {
  const double codes = static_cast<double>(o.codes.qmax - o.codes.qmin);
  const bool exact_integers = s.count > 0 && s.all_integers && (std::max(s.max, 0.0f) - std::min(s.min, 0.0f)) <= codes;
  if (o.method == CalibrationMethod::minmax || exact_integers) return minmax_range(s);
  if (o.method == CalibrationMethod::percentile) return percentile_range(s, o.percentile);
  if (o.method == CalibrationMethod::entropy) {
    const int codes_count = o.codes.qmax - o.codes.qmin + 1;
    const bool one_signed = s.min >= 0.0f || s.max <= 0.0f;
    return entropy_range(s, one_signed ? codes_count : codes_count / 2);
  }
  return mse_range(s, o.codes, o.symmetric);
}

}  // namespace qplay::quantize
