#include "analysis/metrics.h"

#include <algorithm>
#include <cmath>

namespace qplay {

double sqnr_db(double signal_sq, double noise_sq) {
  if (noise_sq == 0.0) return std::numeric_limits<double>::infinity();
  if (signal_sq == 0.0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal_sq / noise_sq);  // = 20 log10(||x|| / ||x - y||)
}

void add_sample(ErrorAccumulator& acc, const float* x, const float* y, int64_t n) {
  // Four independent partial sums per quantity let the additions overlap in the CPU; the
  // summation order is still fixed, so results are reproducible.
  double x2[4] = {}, y2[4] = {}, xy[4] = {}, e2[4] = {}, emax[4] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) {
      const double a = x[i + k], b = y[i + k], d = a - b;
      x2[k] += a * a;
      y2[k] += b * b;
      xy[k] += a * b;
      e2[k] += d * d;
      emax[k] = std::max(emax[k], std::abs(d));
    }
  }
  for (; i < n; ++i) {
    const double a = x[i], b = y[i], d = a - b;
    x2[0] += a * a;
    y2[0] += b * b;
    xy[0] += a * b;
    e2[0] += d * d;
    emax[0] = std::max(emax[0], std::abs(d));
  }
  const double sx2 = (x2[0] + x2[1]) + (x2[2] + x2[3]);
  const double sy2 = (y2[0] + y2[1]) + (y2[2] + y2[3]);
  const double sxy = (xy[0] + xy[1]) + (xy[2] + xy[3]);
  const double se2 = (e2[0] + e2[1]) + (e2[2] + e2[3]);
  const double smax = std::max(std::max(emax[0], emax[1]), std::max(emax[2], emax[3]));

  add_sample_sums(acc, SampleSums{n, sx2, sy2, sxy, se2, smax, {}});
}

void add_sample_sums(ErrorAccumulator& acc, const SampleSums& s) {
  acc.elements += s.elements;
  acc.sum_x2 += s.x2;
  acc.sum_y2 += s.y2;
  acc.sum_xy += s.xy;
  acc.sum_err2 += s.err2;
  acc.max_abs_err = std::max(acc.max_abs_err, s.max_abs_err);
  acc.samples += 1;
  const double db = sqnr_db(s.x2, s.err2);
  if (db == std::numeric_limits<double>::infinity())
    acc.exact_samples += 1;
  else if (db == -std::numeric_limits<double>::infinity())
    acc.zero_reference_samples += 1;
  else
    acc.sum_sample_sqnr_db += db;
}

void add_batch(ErrorAccumulator& acc, const Tensor& x, const Tensor& y) {
  if (x.dtype != DType::f32 || y.dtype != DType::f32)
    throw Error(std::string("compared tensors must be float32, got ") + dtype_name(x.dtype) + " and " +
                dtype_name(y.dtype));
  if (x.numel() != y.numel() || x.rank() == 0 || y.rank() == 0 || x.shape[0] != y.shape[0])
    throw Error("compared tensors differ in size: " + shape_str(x.shape) + " vs " + shape_str(y.shape));
  const int64_t rows = x.shape[0];
  if (rows == 0) return;
  const int64_t per_row = x.numel() / rows;
  for (int64_t r = 0; r < rows; ++r)
    add_sample(acc, x.data<float>() + r * per_row, y.data<float>() + r * per_row, per_row);
}

void merge(ErrorAccumulator& into, const ErrorAccumulator& from) {
  into.elements += from.elements;
  into.sum_x2 += from.sum_x2;
  into.sum_y2 += from.sum_y2;
  into.sum_xy += from.sum_xy;
  into.sum_err2 += from.sum_err2;
  into.max_abs_err = std::max(into.max_abs_err, from.max_abs_err);
  into.samples += from.samples;
  into.exact_samples += from.exact_samples;
  into.zero_reference_samples += from.zero_reference_samples;
  into.sum_sample_sqnr_db += from.sum_sample_sqnr_db;
}

ErrorMetrics error_metrics(const ErrorAccumulator& acc, double scale) {
  ErrorMetrics m;
  m.elements = acc.elements;
  m.samples = acc.samples;
  m.exact_samples = acc.exact_samples;
  m.sqnr_db = sqnr_db(acc.sum_x2, acc.sum_err2);
  const int64_t finite = acc.samples - acc.exact_samples - acc.zero_reference_samples;
  m.mean_sample_sqnr_db = finite > 0 ? acc.sum_sample_sqnr_db / static_cast<double>(finite) : m.sqnr_db;
  m.mse = acc.elements ? acc.sum_err2 / static_cast<double>(acc.elements) : 0.0;
  m.rmse = std::sqrt(m.mse);
  if (acc.sum_x2 == 0.0 && acc.sum_y2 == 0.0)
    m.cosine = 1.0;
  else if (acc.sum_x2 == 0.0 || acc.sum_y2 == 0.0)
    m.cosine = 0.0;
  else
    m.cosine = acc.sum_xy / std::sqrt(acc.sum_x2 * acc.sum_y2);
  m.max_abs = acc.max_abs_err;
  if (scale > 0.0) m.rmse_over_scale = m.rmse / scale;
  return m;
}

ClipBounds clip_bounds(double scale, int64_t zero_point, int64_t qmin, int64_t qmax) {
  const double lo = scale * (static_cast<double>(qmin - zero_point) - 0.5);
  const double hi = scale * (static_cast<double>(qmax - zero_point) + 0.5);
  // For float32 x: x < lo  <=>  x < (the smallest float >= lo), and x > hi  <=>  x > (the largest
  // float <= hi). Rounding the bounds to nearest instead could move a value across them.
  ClipBounds b;
  b.below = static_cast<float>(lo);
  if (static_cast<double>(b.below) < lo) b.below = std::nextafter(b.below, std::numeric_limits<float>::infinity());
  b.above = static_cast<float>(hi);
  if (static_cast<double>(b.above) > hi) b.above = std::nextafter(b.above, -std::numeric_limits<float>::infinity());
  return b;
}

ClipBounds clip_bounds(const QuantGrid& grid, size_t channel) {
  return clip_bounds(grid.scales.at(channel), grid.zero_points.at(channel), grid.qmin, grid.qmax);
}

void add_clipped(ClippingCounts& acc, const float* x, int64_t n, const ClipBounds& bounds) {
  int64_t below = 0, above = 0;
  for (int64_t i = 0; i < n; ++i) {
    below += x[i] < bounds.below;  // NaN is neither
    above += x[i] > bounds.above;
  }
  acc.values += n;
  acc.below += below;
  acc.above += above;
}

void add_clipped(ClippingCounts& acc, const float* x, const Shape& shape, const QuantGrid& grid) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (grid.channels() == 1) {
    add_clipped(acc, x, n, clip_bounds(grid, 0));
    return;
  }
  const int64_t rank = static_cast<int64_t>(shape.size());
  const int64_t axis = grid.axis < 0 ? grid.axis + rank : grid.axis;
  if (axis < 0 || axis >= rank || shape[axis] != static_cast<int64_t>(grid.channels()))
    throw Error("a grid of " + std::to_string(grid.channels()) + " channels along axis " + std::to_string(grid.axis) +
                " does not fit values of shape " + shape_str(shape));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= shape[d];
  std::vector<ClipBounds> bounds;
  for (size_t c = 0; c < grid.channels(); ++c) bounds.push_back(clip_bounds(grid, c));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < shape[axis]; ++c)
      add_clipped(acc, x + (o * shape[axis] + c) * inner, inner, bounds[static_cast<size_t>(c)]);
}

void merge(ClippingCounts& into, const ClippingCounts& from) {
  into.values += from.values;
  into.below += from.below;
  into.above += from.above;
}

double clipping_rate(const ClippingCounts& c) {
  return c.values ? static_cast<double>(c.below + c.above) / static_cast<double>(c.values) : 0.0;
}

CodeAccumulator make_code_accumulator(DType dtype) {
  if (dtype != DType::u8 && dtype != DType::i8)
    throw Error(std::string("code statistics need 8-bit codes, not ") + dtype_name(dtype));
  CodeAccumulator acc;
  acc.qmin = dtype_min(dtype);
  acc.qmax = dtype_max(dtype);
  acc.counts.assign(static_cast<size_t>(acc.qmax - acc.qmin + 1), 0);
  return acc;
}

void add_codes(CodeAccumulator& acc, const Tensor& codes) {
  const int64_t n = codes.numel();
  if (codes.dtype == DType::u8 && acc.qmin == 0) {
    const uint8_t* q = codes.data<uint8_t>();
    for (int64_t i = 0; i < n; ++i) acc.counts[q[i]]++;
  } else if (codes.dtype == DType::i8 && acc.qmin == -128) {
    const int8_t* q = codes.data<int8_t>();
    for (int64_t i = 0; i < n; ++i) acc.counts[q[i] + 128]++;
  } else {
    throw Error(std::string("codes of type ") + dtype_name(codes.dtype) + " do not fit a grid " +
                std::to_string(acc.qmin) + ".." + std::to_string(acc.qmax));
  }
}

void merge(CodeAccumulator& into, const CodeAccumulator& from) {
  if (into.counts.empty()) {
    into = from;
    return;
  }
  for (size_t i = 0; i < into.counts.size() && i < from.counts.size(); ++i) into.counts[i] += from.counts[i];
}

CodeStats code_stats(const CodeAccumulator& acc) {
  CodeStats s;
  s.qmin = acc.qmin;
  s.qmax = acc.qmax;
  if (acc.counts.empty()) return s;
  s.bits = static_cast<int>(std::lround(std::log2(static_cast<double>(acc.counts.size()))));
  for (int64_t c : acc.counts) {
    s.codes += c;
    s.distinct += c > 0;
  }
  s.at_qmin = acc.counts.front();
  s.at_qmax = acc.counts.back();
  s.at_limits_rate = s.codes ? static_cast<double>(s.at_qmin + s.at_qmax) / static_cast<double>(s.codes) : 0.0;
  s.range_use = static_cast<double>(s.distinct) / static_cast<double>(acc.counts.size());
  return s;
}

}  // namespace qplay
