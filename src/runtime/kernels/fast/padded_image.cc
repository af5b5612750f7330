#include "runtime/kernels/fast/padded_image.h"

#include <immintrin.h>

#include <vector>

namespace qplay::fast {

float* padded_buffer(const PaddedGeometry& g) {
  struct Buffer {
    PaddedGeometry geometry;  // the whole geometry: another one's interior may be this one's border
    std::vector<float> data;
  };
  thread_local std::vector<Buffer> buffers;
  for (auto& b : buffers)
    if (b.geometry == g) return b.data.data();
  if (buffers.size() >= 32) buffers.erase(buffers.begin());  // a model with many shapes: the oldest goes
  buffers.push_back({g, std::vector<float>(static_cast<size_t>(g.c * g.hp * g.wp + kPaddedSlack), 0.0f)});
  return buffers.back().data.data();
}

__attribute__((target("avx2"))) void pad_image(const float* x, const PaddedGeometry& g, float* xp) {
  const int64_t rows = g.c * g.h;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t ci = row / g.h, y = row - ci * g.h;
    const float* src = x + row * g.w;
    float* dst = xp + (ci * g.hp + g.pad_top + y) * g.wp + g.pad_left;
    int64_t i = 0;
    for (; i + 8 <= g.w; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    for (; i < g.w; ++i) dst[i] = src[i];
  }
}

}  // namespace qplay::fast
