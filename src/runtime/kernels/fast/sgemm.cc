#include "runtime/kernels/fast/sgemm.h"
#include "runtime/cpu_features.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

namespace qplay::fast {

int64_t mlas_k_block(int64_t n, int64_t k) {
  // MLAS starts from 128 x 128 panels and trades the N stride for the K stride when one of
  // the two dimensions is small.
  int64_t stride_n = 128, stride_k = 128;
  if (n >= k) {
    while (stride_k / 2 >= k) {
      stride_n *= 2;
      stride_k /= 2;
    }
  } else {
    while (stride_n > 16 && stride_n / 2 >= n) {
      stride_k *= 2;
      stride_n /= 2;
    }
  }
  return stride_k;
}

void sgemm_portable(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float* c, int64_t ldc) {
  const int64_t kb = mlas_k_block(n, k);
  for (int64_t k0 = 0; k0 < k; k0 += kb) {
    const int64_t k1 = std::min(k, k0 + kb);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        float acc = 0.0f;
        for (int64_t p = k0; p < k1; ++p) acc = std::fma(a[i * lda + p], b[p * ldb + j], acc);
        c[i * ldc + j] = k0 == 0 ? acc : c[i * ldc + j] + acc;
      }
  }
}

namespace {

// Register tile: 4 rows x 16 columns (two 8-float vectors), accumulating one k-block.
// `first` selects overwrite (first block) or add-to-C (later blocks).
__attribute__((target("avx2,fma"))) void tile_4x16(int64_t rows, int64_t k0, int64_t k1, const float* a,
                                                    int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                                                    bool first) {
  __m256 acc[4][2];
  for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t p = k0; p < k1; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b + p * ldb);
    const __m256 b1 = _mm256_loadu_ps(b + p * ldb + 8);
    for (int r = 0; r < 4; ++r) {
      if (r >= rows) break;
      const __m256 av = _mm256_broadcast_ss(a + r * lda + p);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < rows; ++r) {
    float* cr = c + r * ldc;
    if (first) {
      _mm256_storeu_ps(cr, acc[r][0]);
      _mm256_storeu_ps(cr + 8, acc[r][1]);
    } else {
      _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]));
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]));
    }
  }
}

// Same for an 8-column strip with 8 rows (keeps more rows in flight for narrow N).
__attribute__((target("avx2,fma"))) void tile_8x8(int64_t rows, int64_t k0, int64_t k1, const float* a, int64_t lda,
                                                   const float* b, int64_t ldb, float* c, int64_t ldc, bool first) {
  __m256 acc[8];
  for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t p = k0; p < k1; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b + p * ldb);
    for (int r = 0; r < 8; ++r) {
      if (r >= rows) break;
      acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r * lda + p), b0, acc[r]);
    }
  }
  for (int r = 0; r < rows; ++r) {
    float* cr = c + r * ldc;
    _mm256_storeu_ps(cr, first ? acc[r] : _mm256_add_ps(_mm256_loadu_ps(cr), acc[r]));
  }
}

__attribute__((target("avx2,fma"))) void sgemm_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                                                     const float* b, int64_t ldb, float* c, int64_t ldc) {
  const int64_t kb = mlas_k_block(n, k);
  for (int64_t k0 = 0; k0 < k; k0 += kb) {
    const int64_t k1 = std::min(k, k0 + kb);
    const bool first = k0 == 0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
      for (int64_t i = 0; i < m; i += 4)
        tile_4x16(std::min<int64_t>(4, m - i), k0, k1, a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, first);
    for (; j + 8 <= n; j += 8)
      for (int64_t i = 0; i < m; i += 8)
        tile_8x8(std::min<int64_t>(8, m - i), k0, k1, a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, first);
    // Column tail: scalar FMA chain, same order.
    for (; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        float acc = 0.0f;
        for (int64_t p = k0; p < k1; ++p) acc = std::fma(a[i * lda + p], b[p * ldb + j], acc);
        c[i * ldc + j] = first ? acc : c[i * ldc + j] + acc;
      }
  }
}

}  // namespace

void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
           int64_t ldc) {
  if (has_avx2_fma()) sgemm_avx2(m, n, k, a, lda, b, ldb, c, ldc);
  else sgemm_portable(m, n, k, a, lda, b, ldb, c, ldc);
}

const char* sgemm_isa() { return has_avx2_fma() ? "avx2+fma" : "portable"; }

}  // namespace qplay::fast
