// Reference kernels for Softmax and BatchNormalization (inference). float32 only.
#include <algorithm>
#include <cmath>

#include "runtime/kernels/reference/common.h"

namespace qplay {
namespace {

// Softmax: y = exp(x - max) / sum(exp(x - max)), the max and sum taken over a group of elements
// (subtracting the max changes nothing mathematically but keeps exp from overflowing).
//   opset >= 13: the group is the elements along `axis` (default -1).
//   opset <  13: x is coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])] (axis default 1)
//                and the group is a whole row.
// The model's opset is read from the "__opset" attribute the importer puts on every node.
void softmax_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  ref::expect_dtype(node, x, DType::f32, "input");
  const int64_t rank = static_cast<int64_t>(x.rank());
  const bool coerce_2d = node.attr_int("__opset", 13) < 13;
  const size_t axis =
      static_cast<size_t>(ref::normalize_axis(node, node.attr_int("axis", coerce_2d ? 1 : -1), rank));

  // View x as [outer, n, inner]; each softmax group is n elements `inner` apart.
  const int64_t outer = ref::dims_product(x.shape, 0, axis);
  const int64_t n = coerce_2d ? ref::dims_product(x.shape, axis, x.rank()) : x.shape[axis];
  const int64_t inner = coerce_2d ? 1 : ref::dims_product(x.shape, axis + 1, x.rank());

  Tensor& y = ref::first_output(node, outputs);
  y.reset(DType::f32, x.shape);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * n * inner + i;
      float max_value = -INFINITY;
      for (int64_t j = 0; j < n; ++j) max_value = std::max(max_value, px[base + j * inner]);
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        const float e = std::exp(px[base + j * inner] - max_value);
        py[base + j * inner] = e;
        sum += e;
      }
      for (int64_t j = 0; j < n; ++j) py[base + j * inner] /= sum;
    }
  }
}

// BatchNormalization, inference mode, over the channel axis 1 of x = [N, C, D1, ...]:
//   y = scale[c] * (x - mean[c]) / sqrt(var[c] + epsilon) + B[c]      (epsilon default 1e-5)
// training_mode=1 (opset 14+), spatial=0 (opset 7-8) and the training-only extra outputs are
// rejected.
void batch_normalization_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const Tensor& scale = ref::need_input(node, inputs, 1);
  const Tensor& bias = ref::need_input(node, inputs, 2);
  const Tensor& mean = ref::need_input(node, inputs, 3);
  const Tensor& var = ref::need_input(node, inputs, 4);

  if (node.attr_int("training_mode", 0) != 0)
    ref::fail(node, "training_mode=1 is not supported (qplay runs inference only)");
  if (node.attr_int("spatial", 1) == 0)
    ref::fail(node, "spatial=0 (per-activation statistics) is not supported");
  for (size_t k = 1; k < node.outputs.size(); ++k)
    if (!node.outputs[k].empty())
      ref::fail(node, "output #" + std::to_string(k) + " (a training-mode statistic) is not supported");

  ref::expect_dtype(node, x, DType::f32, "X");
  if (x.rank() < 2) ref::fail(node, "X must have rank >= 2 (N x C x ...), got shape " + shape_str(x.shape));
  const int64_t channels = x.shape[1];
  const std::pair<const Tensor*, const char*> params[] = {
      {&scale, "scale"}, {&bias, "B"}, {&mean, "input_mean"}, {&var, "input_var"}};
  for (const auto& [t, role] : params) {
    ref::expect_dtype(node, *t, DType::f32, role);
    if (t->rank() != 1 || t->shape[0] != channels)
      ref::fail(node, std::string(role) + " has shape " + shape_str(t->shape) + ", expected [" +
                          std::to_string(channels) + "] for X " + shape_str(x.shape));
  }
  const float epsilon = node.attr_float("epsilon", 1e-5f);

  Tensor& y = ref::first_output(node, outputs);
  y.reset(DType::f32, x.shape);
  const int64_t batch = x.shape[0];
  const int64_t spatial_size = ref::dims_product(x.shape, 2, x.rank());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      const float m = mean.data<float>()[c];
      const float s = scale.data<float>()[c];
      const float shift = bias.data<float>()[c];
      const float std_dev = std::sqrt(var.data<float>()[c] + epsilon);
      const int64_t base = (b * channels + c) * spatial_size;
      for (int64_t i = 0; i < spatial_size; ++i) py[base + i] = s * ((px[base + i] - m) / std_dev) + shift;
    }
  }
}

}  // namespace

void register_normalization_ops(std::vector<OpSpec>& table) {
  //                op_type               domain min max opset kernel
  table.push_back({"Softmax", "", 1, 1, 1, softmax_kernel});
  table.push_back({"BatchNormalization", "", 5, 5, 7, batch_normalization_kernel});
}

}  // namespace qplay
