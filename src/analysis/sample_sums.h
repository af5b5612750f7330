// Error sums of one sample of FP32 values x against quantized codes q, dequantized per tensor as
// DequantizeLinear does (y = float(q - zero_point) * scale): the inner loop of the cached
// comparison (layer_cache.h), which streams over a whole test set's activations.
//
// The portable version dequantizes and sums in double like add_sample(). The AVX2 version
// computes the same y (bit-identical) but sums in float lanes over blocks of 256 elements,
// flushed into double: the sums agree to about 1e-6 relative (tested), far below what the
// metrics report. Both count the x outside `clip` (SampleSums::clipping) exactly as add_clipped()
// does, in the same pass.
#pragma once

#include <cstdint>

#include "analysis/metrics.h"

namespace qplay {

// `codes` holds n uint8 (is_signed false) or int8 (is_signed true) values; `clip` the clip bounds
// of the grid (clip_bounds(scale, zero_point, qmin, qmax)).
SampleSums sample_sums_codes(const float* x, const void* codes, bool is_signed, int64_t n, float scale, int32_t zero_point,
                             const ClipBounds& clip);
SampleSums sample_sums_codes_portable(const float* x, const void* codes, bool is_signed, int64_t n, float scale,
                                      int32_t zero_point, const ClipBounds& clip);

}  // namespace qplay
