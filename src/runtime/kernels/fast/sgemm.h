// Single-precision GEMM for the fast convolution and Gemm kernels.
//
// The accumulation order is part of the contract: every C element is a chain of fused
// multiply-adds over k, restarted at zero for each k-block, and the blocks are added in
// order: C = (sum_block0 + sum_block1) + ... This is the order ONNX Runtime's MLAS uses, so
// quantize-dequantize models that round conv outputs land on the same codes (a different
// order flips codes that sit within one float ulp of a rounding boundary).
#pragma once

#include <cstdint>

namespace qplay::fast {

// K-block length MLAS would choose for a (M x K) * (K x N) product with A not transposed.
int64_t mlas_k_block(int64_t n, int64_t k);

// C[M,N] = A[M,K] * B[K,N] (row-major, leading dimensions lda/ldb/ldc), overwriting C.
void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
           int64_t ldc);

// The portable version of the same arithmetic (scalar std::fma), for tests and CPUs without FMA.
void sgemm_portable(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float* c, int64_t ldc);

// Instruction set sgemm dispatches to ("avx2+fma" or "portable").
const char* sgemm_isa();

}  // namespace qplay::fast
