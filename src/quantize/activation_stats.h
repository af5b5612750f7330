// Streaming statistics of one activation tensor over the calibration images: min, max and a
// histogram. Nothing is stored per image, so calibration memory does not grow with the data.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace qplay::quantize {

// Two passes fill it: the first sees min/max, the second the histogram over [-limit, limit]
// (limit = max(|min|, |max|) from pass one). Bins are symmetric about 0, so the histogram of
// |x| that the entropy method needs is an exact fold of this one. Exact zeros (ReLU outputs)
// are counted apart: they are representable at every scale and must not weigh on range choices.
struct ActivationStats {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  uint64_t count = 0;        // values seen in the min/max pass
  bool all_integers = true;  // every value seen was a whole number (e.g. raw 0..255 pixels)

  double limit = 0.0;          // histogram covers [-limit, limit]
  std::vector<uint64_t> bins;  // 2 * bins_per_side; bin i covers [-limit + i*w, -limit + (i+1)*w)
  uint64_t zeros = 0;          // exact zeros seen in the histogram pass (not in `bins`)

  bool has_histogram() const { return !bins.empty(); }
  int64_t bins_per_side() const { return static_cast<int64_t>(bins.size() / 2); }
  double bin_width() const { return bins.empty() ? 0.0 : 2.0 * limit / static_cast<double>(bins.size()); }
  double bin_center(int64_t i) const { return -limit + (static_cast<double>(i) + 0.5) * bin_width(); }
  uint64_t histogram_total() const;  // sum of bins + zeros
};

constexpr int kDefaultBinsPerSide = 2048;

void observe_min_max(ActivationStats& s, const float* values, int64_t n);
// Allocates the histogram from the min/max seen so far.
void start_histogram(ActivationStats& s, int bins_per_side = kDefaultBinsPerSide);
void observe_histogram(ActivationStats& s, const float* values, int64_t n);
// Adds `from` (another thread's share of the same tensor, same histogram geometry) into `into`.
void merge_stats(ActivationStats& into, const ActivationStats& from);

// Counts of |x| over [0, limit] in bins_per_side bins (the negative half folded onto the
// positive one); exact zeros are left out.
std::vector<uint64_t> absolute_histogram(const ActivationStats& s);

}  // namespace qplay::quantize
