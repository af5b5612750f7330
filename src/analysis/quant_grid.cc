#include "analysis/quant_grid.h"

#include <limits>

namespace qplay {

int QuantGrid::bits() const { return static_cast<int>(dtype_size(dtype) * 8); }

int64_t dtype_min(DType t) {
  switch (t) {
    case DType::u8:
      return 0;
    case DType::i8:
      return std::numeric_limits<int8_t>::min();
    case DType::i32:
      return std::numeric_limits<int32_t>::min();
    default:
      return std::numeric_limits<int64_t>::min();
  }
}

int64_t dtype_max(DType t) {
  switch (t) {
    case DType::u8:
      return std::numeric_limits<uint8_t>::max();
    case DType::i8:
      return std::numeric_limits<int8_t>::max();
    case DType::i32:
      return std::numeric_limits<int32_t>::max();
    default:
      return std::numeric_limits<int64_t>::max();
  }
}

QuantGrid quant_grid(const QuantParam& p) {
  if (p.scales.empty())
    throw Error("the quantization scale of '" + p.tensor + "' ('" + p.scale_name +
                "') is computed at run time; there is no fixed grid to describe");
  QuantGrid grid;
  grid.dtype = p.dtype;
  grid.qmin = dtype_min(p.dtype);
  grid.qmax = dtype_max(p.dtype);
  grid.axis = p.scales.size() > 1 ? p.axis : -1;
  grid.scales = p.scales;
  grid.zero_points = p.zero_points;
  grid.zero_points.resize(grid.scales.size(), p.zero_points.size() == 1 ? p.zero_points[0] : 0);
  return grid;
}

namespace {

template <typename Q>
void dequantize_all(const Tensor& codes, const QuantGrid& grid, int64_t outer, int64_t channels, int64_t inner,
                    Tensor& out) {
  const Q* q = codes.data<Q>();
  float* r = out.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c) {
      const size_t k = channels == 1 ? 0 : static_cast<size_t>(c);
      const float scale = grid.scales[k];
      const int64_t zp = grid.zero_points[k];
      const int64_t base = (o * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i)
        r[base + i] = static_cast<float>(static_cast<int64_t>(q[base + i]) - zp) * scale;  // r = s(q - Z)
    }
}

}  // namespace

Tensor dequantize(const Tensor& codes, const QuantGrid& grid) {
  int64_t outer = 1, channels = 1, inner = codes.numel();
  if (grid.channels() > 1) {
    const int64_t rank = static_cast<int64_t>(codes.rank());
    const int64_t axis = grid.axis < 0 ? grid.axis + rank : grid.axis;
    if (axis < 0 || axis >= rank || codes.shape[axis] != static_cast<int64_t>(grid.channels()))
      throw Error("cannot dequantize a " + shape_str(codes.shape) + " tensor with " + std::to_string(grid.channels()) +
                  " per-channel scales along axis " + std::to_string(grid.axis));
    outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= codes.shape[d];
    channels = codes.shape[axis];
    inner = 1;
    for (int64_t d = axis + 1; d < rank; ++d) inner *= codes.shape[d];
  }
  Tensor out(DType::f32, codes.shape);
  switch (codes.dtype) {
    case DType::u8:
      dequantize_all<uint8_t>(codes, grid, outer, channels, inner, out);
      break;
    case DType::i8:
      dequantize_all<int8_t>(codes, grid, outer, channels, inner, out);
      break;
    case DType::i32:
      dequantize_all<int32_t>(codes, grid, outer, channels, inner, out);
      break;
    default:
      throw Error(std::string("cannot dequantize ") + dtype_name(codes.dtype) + " values");
  }
  return out;
}

}  // namespace qplay
