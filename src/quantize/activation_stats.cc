#include "quantize/activation_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "graph/ir.h"

namespace qplay::quantize {

uint64_t ActivationStats::histogram_total() const { return std::accumulate(bins.begin(), bins.end(), zeros); }

void observe_min_max(ActivationStats& s, const float* values, int64_t n) {
  float lo = s.min, hi = s.max;
  bool integers = s.all_integers;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  for (int64_t i = 0; i < n && integers; ++i) integers = values[i] == std::nearbyint(values[i]);
  s.min = lo;
  s.max = hi;
  s.all_integers = integers;
  s.count += static_cast<uint64_t>(n);
}

void start_histogram(ActivationStats& s, int bins_per_side) {
  s.limit = s.count ? std::max(std::fabs(static_cast<double>(s.min)), std::fabs(static_cast<double>(s.max))) : 0.0;
  if (!(s.limit > 0.0)) s.limit = 1.0;  // an all-zero tensor: any geometry works
  s.bins.assign(static_cast<size_t>(2 * bins_per_side), 0);
  s.zeros = 0;
}

void observe_histogram(ActivationStats& s, const float* values, int64_t n) {
  const int64_t last = static_cast<int64_t>(s.bins.size()) - 1;
  const double inv_width = 1.0 / s.bin_width();
  for (int64_t i = 0; i < n; ++i) {
    const float v = values[i];
    if (v == 0.0f) {
      ++s.zeros;
      continue;
    }
    // Values beyond the first pass's range cannot occur (same images, same model); clamp anyway.
    const int64_t bin = static_cast<int64_t>((static_cast<double>(v) + s.limit) * inv_width);
    ++s.bins[static_cast<size_t>(std::clamp<int64_t>(bin, 0, last))];
  }
}

void merge_stats(ActivationStats& into, const ActivationStats& from) {
  into.min = std::min(into.min, from.min);
  into.max = std::max(into.max, from.max);
  into.count += from.count;
  into.all_integers = into.all_integers && from.all_integers;
  if (from.bins.empty()) return;
  if (into.bins.empty()) {
    into.limit = from.limit;
    into.bins.assign(from.bins.size(), 0);
  }
  if (into.bins.size() != from.bins.size() || into.limit != from.limit)
    throw Error("internal: merging histograms of different geometry");
  for (size_t i = 0; i < into.bins.size(); ++i) into.bins[i] += from.bins[i];
  into.zeros += from.zeros;
}

std::vector<uint64_t> absolute_histogram(const ActivationStats& s) {
  const int64_t half = s.bins_per_side();
  std::vector<uint64_t> abs_bins(static_cast<size_t>(half), 0);
  for (int64_t i = 0; i < half; ++i) {
    // Bin half+i covers [i*w, (i+1)*w); its mirror half-1-i covers [-(i+1)*w, -i*w).
    abs_bins[i] = s.bins[half + i] + s.bins[half - 1 - i];
  }
  return abs_bins;
}

}  // namespace qplay::quantize
