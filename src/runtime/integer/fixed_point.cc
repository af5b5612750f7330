#include "runtime/integer/fixed_point.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace qplay::integer {

FixedPointMultiplier quantize_multiplier(double real) {
  assert(std::isfinite(real) && real > 0.0);
  if (real >= 0x1p20) return {1 << 30, 10};  // saturates any nonzero accumulator (see header)
  int exponent = 0;
  const double fraction = std::frexp(real, &exponent);  // real = fraction * 2^exponent, fraction in [0.5, 1)
  int64_t m0 = std::llround(fraction * 0x1p31);         // in [2^30, 2^31]
  if (m0 == (int64_t{1} << 31)) {                       // fraction rounded up to 1.0
    m0 /= 2;
    ++exponent;
  }
  const int shift = 31 - exponent;
  if (shift > 62) return {0, 31};  // real < 2^-32: rounds to 0 for every int32 input
  return {static_cast<int32_t>(m0), shift};
}

double multiplier_value(FixedPointMultiplier m) { return std::ldexp(static_cast<double>(m.m0), -m.shift); }

bool add_input_multiplier(FixedPointMultiplier m, AddInputMultiplier* out) {
  if (m.shift < 31 || m.shift > 62 || m.m0 < 0) return false;
  const int32_t p = m.shift - 20, t = std::min(16, p - 1);
  out->high = m.m0 >> t;
  out->low = m.m0 & ((1 << t) - 1);
  out->low_shift = t;
  out->rounding = 1 << (p - 1 - t);
  out->shift = p - t;
  return true;
}

}  // namespace qplay::integer
