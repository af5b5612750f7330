// IEEE 754 binary16 ("half") storage for cached FP32 activations: half the bytes of float32 with
// an 11-bit significand, i.e. a relative rounding error of at most 2^-11 (about -66 dB), far
// below the quantization error (20-45 dB SQNR) that the caches are used to measure.
//
// Conversion rounds to nearest, ties to even, like the F16C instructions; values beyond the half
// range (|x| >= 65520) become infinities, NaN stays NaN. The bulk functions use F16C when the CPU
// has it (chosen at run time) and a portable loop otherwise; both give the same bits.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qplay {

uint16_t float_to_half(float value);
float half_to_float(uint16_t half);

void floats_to_halves(const float* in, uint16_t* out, size_t n);
void halves_to_floats(const uint16_t* in, float* out, size_t n);

// The portable loops, exposed so tests can compare them with the F16C path.
void floats_to_halves_portable(const float* in, uint16_t* out, size_t n);
void halves_to_floats_portable(const uint16_t* in, float* out, size_t n);

}  // namespace qplay
