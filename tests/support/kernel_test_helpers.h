// Builders for kernel unit tests: small tensors from literal values and node attributes.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"

namespace qplay::testing {

// A tensor of `shape` holding `values` (row-major); the count must match the shape.
template <typename T>
Tensor make_tensor(DType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t(dtype, std::move(shape));
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}
inline Tensor u8(Shape s, const std::vector<uint8_t>& v) { return make_tensor(DType::u8, std::move(s), v); }
inline Tensor i8(Shape s, const std::vector<int8_t>& v) { return make_tensor(DType::i8, std::move(s), v); }
inline Tensor i32(Shape s, const std::vector<int32_t>& v) { return make_tensor(DType::i32, std::move(s), v); }
inline Tensor f32(Shape s, const std::vector<float>& v) { return make_f32(std::move(s), v); }

inline Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::Int;
  a.i = v;
  return a;
}
inline Attribute float_attr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::Float;
  a.f = v;
  return a;
}
inline Attribute ints_attr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::Ints;
  a.ints = std::move(v);
  return a;
}
inline Attribute string_attr(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::String;
  a.s = std::move(v);
  return a;
}

}  // namespace qplay::testing
