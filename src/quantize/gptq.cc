#include "quantize/gptq.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace qplay::quantize {
namespace {

// In-place lower Cholesky factor of a symmetric positive definite n x n matrix (row-major):
// a = L L^T, L written into the lower triangle (upper triangle cleared). False if not SPD.
bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / d;
    }
    for (int64_t i = 0; i < j; ++i) a[i * n + j] = 0.0;
  }
  return true;
}

// Inverse of an SPD matrix from its lower Cholesky factor L: A^-1 = L^-T L^-1.
std::vector<double> inverse_from_cholesky(const std::vector<double>& l, int64_t n) {
  std::vector<double> linv(static_cast<size_t>(n * n), 0.0);  // L^-1, lower triangular
  for (int64_t j = 0; j < n; ++j) {
    linv[j * n + j] = 1.0 / l[j * n + j];
    for (int64_t i = j + 1; i < n; ++i) {
      double s = 0.0;
      for (int64_t k = j; k < i; ++k) s += l[i * n + k] * linv[k * n + j];
      linv[i * n + j] = -s / l[i * n + i];
    }
  }
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (int64_t k = i; k < n; ++k) s += linv[k * n + i] * linv[k * n + j];
      inv[i * n + j] = inv[j * n + i] = s;
    }
  return inv;
}

// How a layer's input vectors are cut from its input tensor.
struct LayerGeometry {
  bool conv = false;
  int64_t k = 0;  // length of one input vector
  int64_t cin = 0, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pad_top = 0, pad_left = 0, pad_bottom = 0,
          pad_right = 0;
};

struct Layer {
  std::string node;
  std::string input;   // FP32 activation read by the node
  std::string weight;  // initializer name
  LayerGeometry geo;
  std::vector<std::vector<double>> gram;  // per thread, k x k (upper triangle filled)
  std::vector<int64_t> samples;           // per thread
};

bool layer_geometry(const Node& n, const Tensor& w, LayerGeometry& g) {
  if (n.op_type == "Conv") {
    if (w.rank() != 4 || n.attr_int("group", 1) != 1) return false;
    const std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
    if (!(auto_pad.empty() || auto_pad == "NOTSET")) return false;
    const auto pads = n.attr_ints("pads", {0, 0, 0, 0});
    const auto strides = n.attr_ints("strides", {1, 1});
    const auto dil = n.attr_ints("dilations", {1, 1});
    if (pads.size() != 4 || strides.size() != 2 || dil.size() != 2) return false;
    g.conv = true;
    g.cin = w.shape[1];
    g.kh = w.shape[2];
    g.kw = w.shape[3];
    g.sh = strides[0];
    g.sw = strides[1];
    g.dh = dil[0];
    g.dw = dil[1];
    g.pad_top = pads[0];
    g.pad_left = pads[1];
    g.pad_bottom = pads[2];
    g.pad_right = pads[3];
    g.k = g.cin * g.kh * g.kw;
    return true;
  }
  if (w.rank() != 2) return false;
  g.k = (n.op_type == "Gemm" && n.attr_int("transB", 0)) ? w.shape[1] : w.shape[0];
  return true;
}

// Adds x x^T of the sampled input vectors of one batch to `gram` (upper triangle).
void accumulate_gram(const Layer& layer, const Tensor& x, int64_t per_image, std::vector<double>& gram,
                     int64_t& samples) {
  const LayerGeometry& g = layer.geo;
  const int64_t k = g.k;
  std::vector<float> vectors;  // [count x k]
  const int64_t n = x.shape[0];
  if (g.conv) {
    if (x.rank() != 4 || x.shape[1] != g.cin) return;
    const int64_t h = x.shape[2], wd = x.shape[3];
    const int64_t oh = (h + g.pad_top + g.pad_bottom - ((g.kh - 1) * g.dh + 1)) / g.sh + 1;
    const int64_t ow = (wd + g.pad_left + g.pad_right - ((g.kw - 1) * g.dw + 1)) / g.sw + 1;
    const int64_t positions = oh * ow, take = std::min(per_image, positions);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t t = 0; t < take; ++t) {
        // Evenly spread positions, shifted per image so all positions get used.
        const int64_t p = (t * positions / take + b) % positions;
        const int64_t oy = p / ow, ox = p % ow;
        for (int64_t c = 0; c < g.cin; ++c)
          for (int64_t ky = 0; ky < g.kh; ++ky)
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh, ix = ox * g.sw - g.pad_left + kx * g.dw;
              const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < wd;
              vectors.push_back(inside ? x.data<float>()[((b * g.cin + c) * h + iy) * wd + ix] : 0.0f);
            }
      }
  } else {
    if (x.numel() != n * k) return;
    vectors.assign(x.data<float>(), x.data<float>() + x.numel());
  }
  const int64_t count = static_cast<int64_t>(vectors.size()) / k;
  // Transposed to [k x count] so each entry of the Gram matrix is one contiguous dot product.
  std::vector<float> columns(vectors.size());
  for (int64_t s = 0; s < count; ++s)
    for (int64_t i = 0; i < k; ++i) columns[i * count + s] = vectors[s * k + i];
  for (int64_t i = 0; i < k; ++i) {
    const float* a = &columns[i * count];
    for (int64_t j = i; j < k; ++j) {
      const float* b = &columns[j * count];
      double dot = 0.0;
      for (int64_t s = 0; s < count; ++s) dot += static_cast<double>(a[s]) * b[s];
      gram[i * k + j] += dot;
    }
  }
  samples += count;
}

// Row r of the weight as the layer multiplies it with an input vector, and back.
struct RowView {
  int64_t rows = 0, k = 0;
  bool transposed = false;  // stored [k x rows] (Gemm transB = 0, MatMul)
};

RowView row_view(const Node& n, const Tensor& w) {
  RowView v;
  if (n.op_type == "Conv") {
    v.rows = w.shape[0];
    v.k = w.numel() / v.rows;
  } else if (n.op_type == "Gemm" && n.attr_int("transB", 0)) {
    v.rows = w.shape[0];
    v.k = w.shape[1];
  } else {
    v.rows = w.shape[1];
    v.k = w.shape[0];
    v.transposed = true;
  }
  return v;
}

}  // namespace

void gptq_round_rows(std::vector<double>& w, int64_t rows, int64_t k, std::vector<double> h,
                     const std::vector<ScaleZeroPoint>& params, IntRange codes, double damping) {
  // Inputs never seen non-zero carry no information: weight them like an identity would.
  double mean_diag = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    if (h[i * k + i] <= 0.0) h[i * k + i] = 1.0;
    mean_diag += h[i * k + i];
  }
  mean_diag /= static_cast<double>(k);
  for (int64_t i = 0; i < k; ++i) h[i * k + i] += damping * mean_diag;
  if (!cholesky_lower(h, k)) throw Error("internal: input statistics are not positive definite");
  std::vector<double> u = inverse_from_cholesky(h, k);  // H^-1
  if (!cholesky_lower(u, k)) throw Error("internal: inverse input statistics are not positive definite");
  // u now holds L with H^-1 = L L^T; the algorithm walks U = L^T: U[i][j] = u[j * k + i].

  for (int64_t r = 0; r < rows; ++r) {
    const ScaleZeroPoint p = params[params.size() == 1 ? 0 : r];
    double* row = &w[r * k];
    for (int64_t i = 0; i < k; ++i) {
      const double rounded = dequantize_value(quantize_value(static_cast<float>(row[i]), p, codes), p);
      // The error, scaled by U[i][i], is spread over the columns still to be rounded: the
      // optimal update of the remaining weights given that column i is now fixed.
      const double err = (row[i] - rounded) / u[i * k + i];
      row[i] = rounded;
      for (int64_t j = i + 1; j < k; ++j) row[j] -= err * u[j * k + i];
    }
  }
}

int round_weights_gptq(Graph& fp32, const QuantPlan& plan, const Dataset& images, const RoundingOptions& options,
                       const BatchRunOptions& run) {
  std::vector<Layer> layers;
  for (const auto& n : fp32.nodes) {
    if (plan.excluded.count(n.name) || weight_input_index(n, fp32) < 0) continue;
    const auto it = plan.weights.find(n.input(1));
    if (it == plan.weights.end() || it->second.node != n.name) continue;  // a shared weight: its first reader only
    Layer layer;
    if (!layer_geometry(n, *fp32.initializer(n.input(1)), layer.geo)) continue;
    layer.node = n.name;
    layer.input = n.input(0);
    layer.weight = n.input(1);
    const size_t threads = static_cast<size_t>(std::max(1, run.threads));
    layer.gram.assign(threads, std::vector<double>(static_cast<size_t>(layer.geo.k * layer.geo.k), 0.0));
    layer.samples.assign(threads, 0);
    layers.push_back(std::move(layer));
  }
  if (layers.empty()) return 0;

  const Dataset sample = subsample_evenly(images, options.images);
  const int64_t per_image = std::max<int64_t>(1, (options.samples_per_layer + sample.size() - 1) / sample.size());
  std::map<std::string, std::vector<Layer*>> readers;
  for (auto& l : layers) readers[l.input].push_back(&l);
  const Executor executor(std::make_shared<const Graph>(fp32));
  run_batches(executor, sample, run, [&](int thread, const std::string& value, const Tensor& t) {
    auto it = readers.find(value);
    if (it == readers.end() || t.dtype != DType::f32) return;
    for (Layer* l : it->second) accumulate_gram(*l, t, per_image, l->gram[thread], l->samples[thread]);
  });

  int rounded = 0;
  for (auto& l : layers) {
    const int64_t k = l.geo.k;
    std::vector<double> h(static_cast<size_t>(k * k), 0.0);
    int64_t samples = 0;
    for (size_t t = 0; t < l.gram.size(); ++t) {
      samples += l.samples[t];
      for (size_t i = 0; i < h.size(); ++i) h[i] += l.gram[t][i];
    }
    if (samples == 0) continue;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = i; j < k; ++j) h[j * k + i] = h[i * k + j] = h[i * k + j] / static_cast<double>(samples);

    const Node& node = fp32.nodes[fp32.find_node(l.node)];
    Tensor& weight = fp32.initializers.at(l.weight);
    const WeightQuant& q = plan.weights.at(l.weight);
    const RowView v = row_view(node, weight);
    if (v.k != k) continue;
    std::vector<double> w(static_cast<size_t>(v.rows * k));
    float* data = weight.data<float>();
    for (int64_t r = 0; r < v.rows; ++r)
      for (int64_t i = 0; i < k; ++i) w[r * k + i] = v.transposed ? data[i * v.rows + r] : data[r * k + i];
    gptq_round_rows(w, v.rows, k, std::move(h), q.params, q.codes, options.damping);
    for (int64_t r = 0; r < v.rows; ++r)
      for (int64_t i = 0; i < k; ++i)
        (v.transposed ? data[i * v.rows + r] : data[r * k + i]) = static_cast<float>(w[r * k + i]);
    ++rounded;
  }
  return rounded;
}

}  // namespace qplay::quantize
