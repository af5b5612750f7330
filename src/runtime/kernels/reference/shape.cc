// Reference kernels for the data-movement ops: Flatten, Reshape, Transpose, Concat, Identity,
// Squeeze, Unsqueeze, Pad. None of them computes on values, so all work on every dtype.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <type_traits>

#include "runtime/kernels/reference/common.h"

namespace qplay {
namespace {

// Row-major strides of `shape`.
std::vector<int64_t> row_major_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t k = shape.size(); k-- > 1;) strides[k - 1] = strides[k] * shape[k];
  return strides;
}

// "[a,b,c]" for a list of integers (shape_str would print negative entries as '?').
std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(v[i]);
  }
  return s + "]";
}

// Reads a 0-D or 1-D int64 tensor (shape, axes or pads inputs) into a vector.
std::vector<int64_t> read_int64_list(const Node& node, const Tensor& t, const char* role) {
  ref::expect_dtype(node, t, DType::i64, role);
  if (t.rank() > 1) ref::fail(node, std::string(role) + " must be 1-D, got shape " + shape_str(t.shape));
  const int64_t* p = t.data<int64_t>();
  return std::vector<int64_t>(p, p + t.numel());
}

// Normalises a list of axes against `rank`, rejecting out-of-range and repeated axes.
std::vector<int64_t> normalize_axes(const Node& node, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (int64_t a : axes) {
    const int64_t n = ref::normalize_axis(node, a, rank);
    if (!seen.insert(n).second) ref::fail(node, "axis " + std::to_string(a) + " is repeated");
    out.push_back(n);
  }
  return out;
}

// The same data under a new shape (Flatten, Reshape, Squeeze, Unsqueeze).
void copy_with_shape(const Tensor& x, Shape shape, Tensor& y) {
  y.reset(x.dtype, std::move(shape));
  std::memcpy(y.bytes.data(), x.bytes.data(), y.bytes.size());
}

// ---------------------------------------------------------------------------------------------

// Identity: y = x.
void identity_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  copy_with_shape(x, x.shape, ref::first_output(node, outputs));
}

// Flatten: 2-D view [prod(dims[0:axis]), prod(dims[axis:])]; axis in [-rank, rank], default 1.
void flatten_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  int64_t axis = node.attr_int("axis", 1);
  if (axis < -rank || axis > rank)
    ref::fail(node, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  const int64_t outer = ref::dims_product(x.shape, 0, static_cast<size_t>(axis));
  const int64_t inner = ref::dims_product(x.shape, static_cast<size_t>(axis), x.rank());
  copy_with_shape(x, {outer, inner}, ref::first_output(node, outputs));
}

// Reshape (opset 5+): the target shape is input #1 (int64). An entry 0 copies the input's
// dimension at that position (unless allowzero=1, where 0 is a literal zero); one entry may
// be -1 and is inferred from the element count.
void reshape_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const std::vector<int64_t> requested = read_int64_list(node, ref::need_input(node, inputs, 1), "shape");
  const bool allow_zero = node.attr_int("allowzero", 0) != 0;

  Shape shape(requested.size());
  int64_t inferred = -1;  // position of the -1 entry, if any
  bool has_zero = false;
  for (size_t i = 0; i < requested.size(); ++i) {
    const int64_t d = requested[i];
    if (d == -1) {
      if (inferred >= 0) ref::fail(node, "shape " + ints_str(requested) + " has more than one -1");
      inferred = static_cast<int64_t>(i);
      shape[i] = 1;
    } else if (d < -1) {
      ref::fail(node, "shape " + ints_str(requested) + " has invalid dimension " + std::to_string(d));
    } else if (d == 0 && !allow_zero) {
      if (i >= x.rank())
        ref::fail(node, "shape entry " + std::to_string(i) + " is 0 (copy input dimension) but the input " +
                            shape_str(x.shape) + " has rank " + std::to_string(x.rank()));
      shape[i] = x.shape[i];
    } else {
      // A dimension larger than the element count can never fit (and could overflow the product).
      if (x.numel() > 0 && d > x.numel())
        ref::fail(node, "cannot reshape " + shape_str(x.shape) + " to " + ints_str(requested));
      has_zero = has_zero || d == 0;
      shape[i] = d;
    }
  }
  if (allow_zero && has_zero && inferred >= 0)
    ref::fail(node, "shape " + ints_str(requested) + " has both 0 and -1 while allowzero=1");
  if (inferred >= 0) {
    const int64_t known = shape_numel(shape);
    if (known == 0 || x.numel() % known != 0)
      ref::fail(node, "cannot infer the -1 dimension of shape " + ints_str(requested) + " for input " +
                          shape_str(x.shape));
    shape[static_cast<size_t>(inferred)] = x.numel() / known;
  }
  if (shape_numel(shape) != x.numel())
    ref::fail(node, "cannot reshape " + shape_str(x.shape) + " (" + std::to_string(x.numel()) +
                        " elements) to " + shape_str(shape));
  copy_with_shape(x, std::move(shape), ref::first_output(node, outputs));
}

// Transpose: y[i_0, ..., i_{r-1}] with y.shape[k] = x.shape[perm[k]], i.e. output axis k is
// input axis perm[k]. perm defaults to reversing the axes.
void transpose_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const size_t rank = x.rank();
  std::vector<int64_t> perm = node.attr_ints("perm");
  if (!node.has_attr("perm")) {
    perm.resize(rank);
    for (size_t k = 0; k < rank; ++k) perm[k] = static_cast<int64_t>(rank - 1 - k);
  }
  if (perm.size() != rank)
    ref::fail(node, "perm has " + std::to_string(perm.size()) + " entries for an input of rank " +
                        std::to_string(rank));
  std::vector<bool> used(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(rank) || used[static_cast<size_t>(p)])
      ref::fail(node, "perm " + ints_str(perm) + " is not a permutation of 0.." + std::to_string(rank) + "-1");
    used[static_cast<size_t>(p)] = true;
  }

  Shape out_shape(rank);
  const std::vector<int64_t> in_strides = row_major_strides(x.shape);
  std::vector<int64_t> step(rank);  // input stride when output axis k advances by one
  for (size_t k = 0; k < rank; ++k) {
    out_shape[k] = x.shape[static_cast<size_t>(perm[k])];
    step[k] = in_strides[static_cast<size_t>(perm[k])];
  }
  Tensor& y = ref::first_output(node, outputs);
  y.reset(x.dtype, out_shape);

  ref::visit_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    std::vector<int64_t> index(rank, 0);
    int64_t in_offset = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      py[i] = px[in_offset];
      for (size_t k = rank; k-- > 0;) {  // odometer increment of the output index
        if (++index[k] < out_shape[k]) {
          in_offset += step[k];
          break;
        }
        in_offset -= step[k] * (out_shape[k] - 1);
        index[k] = 0;
      }
    }
  });
}

// Concat: joins the inputs along `axis` (negative counts from the end). All inputs share dtype
// and rank, and agree on every other dimension.
void concat_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& first = ref::need_input(node, inputs, 0);
  if (!node.has_attr("axis")) ref::fail(node, "missing required attribute 'axis'");
  const int64_t rank = static_cast<int64_t>(first.rank());
  const size_t axis = static_cast<size_t>(ref::normalize_axis(node, node.attr_int("axis", 0), rank));

  Shape out_shape = first.shape;
  out_shape[axis] = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = ref::need_input(node, inputs, i);
    ref::expect_dtype(node, t, first.dtype, ("input #" + std::to_string(i)).c_str());
    bool compatible = t.rank() == first.rank();
    for (size_t k = 0; compatible && k < t.rank(); ++k)
      compatible = k == axis || t.shape[k] == first.shape[k];
    if (!compatible)
      ref::fail(node, "input #" + std::to_string(i) + " has shape " + shape_str(t.shape) +
                          ", incompatible with " + shape_str(first.shape) + " for concatenation on axis " +
                          std::to_string(axis));
    out_shape[axis] += t.shape[axis];
  }
  Tensor& y = ref::first_output(node, outputs);
  y.reset(first.dtype, out_shape);

  // View each tensor as [outer, block]: outer = prod(dims before axis); the output row is the
  // inputs' rows laid end to end.
  const int64_t outer = ref::dims_product(out_shape, 0, axis);
  const size_t elem = dtype_size(first.dtype);
  const int64_t out_block = y.numel() / std::max<int64_t>(outer, 1);
  int64_t column = 0;  // where the current input starts inside an output row
  for (const Tensor* t : inputs) {
    const int64_t block = outer == 0 ? 0 : t->numel() / outer;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(y.bytes.data() + static_cast<size_t>(o * out_block + column) * elem,
                  t->bytes.data() + static_cast<size_t>(o * block) * elem, static_cast<size_t>(block) * elem);
    column += block;
  }
}

// The axes of Squeeze/Unsqueeze: input #1 (opset >= 13) if given, else the attribute
// (opset < 13); empty when neither is present.
std::vector<int64_t> squeeze_axes(const Node& node, const Inputs& inputs) {
  if (inputs.size() > 1 && inputs[1] != nullptr) return read_int64_list(node, *inputs[1], "axes");
  return node.attr_ints("axes");
}

// Squeeze: removes the listed axes, each of which must have size 1. With no axes (or an empty
// axes tensor) every size-1 dimension is removed.
void squeeze_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const std::vector<int64_t> axes = normalize_axes(node, squeeze_axes(node, inputs), static_cast<int64_t>(x.rank()));
  std::vector<bool> drop(x.rank(), false);
  if (axes.empty()) {
    for (size_t k = 0; k < x.rank(); ++k) drop[k] = x.shape[k] == 1;
  } else {
    for (int64_t a : axes) {
      if (x.shape[static_cast<size_t>(a)] != 1)
        ref::fail(node, "cannot squeeze axis " + std::to_string(a) + " of shape " + shape_str(x.shape) +
                            ": its size is not 1");
      drop[static_cast<size_t>(a)] = true;
    }
  }
  Shape shape;
  for (size_t k = 0; k < x.rank(); ++k)
    if (!drop[k]) shape.push_back(x.shape[k]);
  copy_with_shape(x, std::move(shape), ref::first_output(node, outputs));
}

// Unsqueeze: inserts size-1 dimensions at the listed axes, which index the *output*
// (rank = input rank + number of axes; negative allowed, any order, no repeats).
void unsqueeze_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const std::vector<int64_t> raw_axes = squeeze_axes(node, inputs);
  if (raw_axes.empty()) ref::fail(node, "needs a non-empty 'axes' (input #1 or attribute)");
  const int64_t out_rank = static_cast<int64_t>(x.rank() + raw_axes.size());
  const std::vector<int64_t> axes = normalize_axes(node, raw_axes, out_rank);

  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int64_t a : axes) inserted[static_cast<size_t>(a)] = true;
  Shape shape(static_cast<size_t>(out_rank));
  size_t next_input_dim = 0;
  for (size_t k = 0; k < shape.size(); ++k) shape[k] = inserted[k] ? 1 : x.shape[next_input_dim++];
  copy_with_shape(x, std::move(shape), ref::first_output(node, outputs));
}

// ---------------------------------------------------------------------------------------------
// Pad

enum class PadMode { constant, reflect, edge };

// Maps output coordinate o on one axis to the input coordinate it reads, or -1 for a constant.
// i = o - pad_begin; inside [0, n) it is read directly. Outside:
//   constant: -1 (the pad value);  edge: the nearest border element;
//   reflect: mirrored about the border elements without repeating them (numpy 'reflect'),
//            periodically with period 2(n-1) so pads wider than the axis are defined too.
int64_t pad_source_index(PadMode mode, int64_t o, int64_t pad_begin, int64_t n) {
  const int64_t i = o - pad_begin;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::edge: return i < 0 ? 0 : n - 1;
    case PadMode::reflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      const int64_t m = ((i % period) + period) % period;
      return m < n ? m : period - m;
    }
  }
  return -1;
}

// Converts the opset-2 float `value` attribute to T (saturating for integer types).
template <typename T> T pad_value_from_float(float v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T{0};
    const double d = std::trunc(static_cast<double>(v));
    if (d <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (d >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(d);
  }
}

// Pad: out.shape[k] = in.shape[k] + begin[k] + end[k]. Opset 11+: pads = input #1 (int64,
// [x1_begin, x2_begin, ..., x1_end, x2_end, ...]), optional constant_value = input #2 (scalar of
// x's type), optional axes = input #3 (opset 18: pads then cover only those axes). Opset 2: the
// `pads` and float `value` attributes, used when input #1 is absent. Negative pads crop.
void pad_kernel(const Node& node, const Inputs& inputs, std::vector<Tensor>& outputs) {
  const Tensor& x = ref::need_input(node, inputs, 0);
  const size_t rank = x.rank();
  const auto has_input = [&](size_t i) { return i < inputs.size() && inputs[i] != nullptr; };

  const std::string mode_name = node.attr_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") mode = PadMode::constant;
  else if (mode_name == "reflect") mode = PadMode::reflect;
  else if (mode_name == "edge") mode = PadMode::edge;
  else ref::fail(node, "unsupported mode '" + mode_name + "' (expected constant, reflect or edge)");

  std::vector<int64_t> pads;
  if (has_input(1)) pads = read_int64_list(node, *inputs[1], "pads");
  else if (node.has_attr("pads")) pads = node.attr_ints("pads");
  else ref::fail(node, "missing pads (input #1 or attribute)");

  // The axes the pads refer to: all of them, or input #3.
  std::vector<int64_t> axes;
  if (has_input(3)) {
    axes = normalize_axes(node, read_int64_list(node, *inputs[3], "axes"), static_cast<int64_t>(rank));
  } else {
    for (size_t k = 0; k < rank; ++k) axes.push_back(static_cast<int64_t>(k));
  }
  if (pads.size() != 2 * axes.size())
    ref::fail(node, "pads has " + std::to_string(pads.size()) + " entries, expected " +
                        std::to_string(2 * axes.size()) + " for input shape " + shape_str(x.shape));
  std::vector<int64_t> begin(rank, 0), end(rank, 0);
  for (size_t j = 0; j < axes.size(); ++j) {
    begin[static_cast<size_t>(axes[j])] = pads[j];
    end[static_cast<size_t>(axes[j])] = pads[j + axes.size()];
  }

  Shape out_shape(rank);
  for (size_t k = 0; k < rank; ++k) {
    out_shape[k] = x.shape[k] + begin[k] + end[k];
    if (out_shape[k] < 0)
      ref::fail(node, "pads " + ints_str(pads) + " crop axis " + std::to_string(k) + " of " +
                          shape_str(x.shape) + " below zero");
    const bool grows = begin[k] > 0 || end[k] > 0;
    if (mode != PadMode::constant && grows && x.shape[k] == 0)
      ref::fail(node, "cannot " + mode_name + "-pad axis " + std::to_string(k) + " of size 0");
  }

  if (has_input(2)) {
    ref::expect_dtype(node, *inputs[2], x.dtype, "constant_value");
    if (inputs[2]->numel() != 1)
      ref::fail(node, "constant_value must be a scalar, got shape " + shape_str(inputs[2]->shape));
  }

  Tensor& y = ref::first_output(node, outputs);
  y.reset(x.dtype, out_shape);
  const std::vector<int64_t> in_strides = row_major_strides(x.shape);

  ref::visit_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T value = has_input(2) ? inputs[2]->data<T>()[0] : pad_value_from_float<T>(node.attr_float("value", 0.0f));
    const T* px = x.data<T>();
    T* py = y.data<T>();
    std::vector<int64_t> index(rank, 0);  // output multi-index
    for (int64_t i = 0; i < y.numel(); ++i) {
      // Map every coordinate back to the input; any constant-padded coordinate gives `value`.
      int64_t in_offset = 0;
      bool inside = true;
      for (size_t k = 0; k < rank && inside; ++k) {
        const int64_t src = pad_source_index(mode, index[k], begin[k], x.shape[k]);
        if (src < 0) inside = false;
        else in_offset += src * in_strides[k];
      }
      py[i] = inside ? px[in_offset] : value;
      for (size_t k = rank; k-- > 0;) {
        if (++index[k] < out_shape[k]) break;
        index[k] = 0;
      }
    }
  });
}

}  // namespace

void register_shape_ops(std::vector<OpSpec>& table) {
  constexpr int unbounded = std::numeric_limits<int>::max();
  //                op_type      domain min max opset kernel
  table.push_back({"Flatten", "", 1, 1, 1, flatten_kernel});
  table.push_back({"Reshape", "", 2, 2, 5, reshape_kernel});
  table.push_back({"Transpose", "", 1, 1, 1, transpose_kernel});
  table.push_back({"Concat", "", 1, unbounded, 4, concat_kernel});
  table.push_back({"Identity", "", 1, 1, 1, identity_kernel});
  table.push_back({"Squeeze", "", 1, 2, 1, squeeze_kernel});
  table.push_back({"Unsqueeze", "", 1, 2, 1, unsqueeze_kernel});
  table.push_back({"Pad", "", 1, 4, 2, pad_kernel});
}

}  // namespace qplay
