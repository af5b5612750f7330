#include "runtime/kernels/fast/machine_peak.h"

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "runtime/cpu_features.h"

namespace qplay::fast {
namespace {

constexpr int kAccumulators = 12;  // more than FMA latency x ports, so the loop is throughput-bound
constexpr int64_t kInnerSteps = 4096;

// One block of kInnerSteps x 12 FMAs; returns a value depending on every accumulator, so none is dead code.
__attribute__((target("avx2,fma"), noinline)) float fma_block(float seed) {
  __m256 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_set1_ps(seed * static_cast<float>(i + 1));
  // Multiplier ~1 and addend ~0 keep the values finite over millions of steps.
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t s = 0; s < kInnerSteps; ++s) {
#pragma GCC unroll 12
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm256_add_ps(sum, acc[i]);
  return _mm256_cvtss_f32(sum);
}

// One block of kInnerSteps x 12 (vpmaddwd + vpaddd), as the integer tiles accumulate. Written in assembly: with
// intrinsics the compiler sees that equal operands give equal products and computes each product once.
__attribute__((target("avx2"), noinline)) int32_t madd_block(int32_t seed) {
  alignas(32) int32_t out[8];
  const int16_t x = static_cast<int16_t>(seed), w = 3;
  int64_t steps = kInnerSteps;
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovdqa %%ymm0, %%ymm1\n\t vmovdqa %%ymm0, %%ymm2\n\t vmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\t vmovdqa %%ymm0, %%ymm5\n\t vmovdqa %%ymm0, %%ymm6\n\t"
      "vmovdqa %%ymm0, %%ymm7\n\t vmovdqa %%ymm0, %%ymm8\n\t vmovdqa %%ymm0, %%ymm9\n\t"
      "vmovdqa %%ymm0, %%ymm10\n\t vmovdqa %%ymm0, %%ymm11\n\t"
      "vmovd %k[x], %%xmm12\n\t vpbroadcastw %%xmm12, %%ymm12\n\t"
      "vmovd %k[w], %%xmm13\n\t vpbroadcastw %%xmm13, %%ymm13\n\t"
      "1:\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm14\n\t vpaddd %%ymm14, %%ymm0, %%ymm0\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm15\n\t vpaddd %%ymm15, %%ymm1, %%ymm1\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm14\n\t vpaddd %%ymm14, %%ymm2, %%ymm2\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm15\n\t vpaddd %%ymm15, %%ymm3, %%ymm3\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm14\n\t vpaddd %%ymm14, %%ymm4, %%ymm4\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm15\n\t vpaddd %%ymm15, %%ymm5, %%ymm5\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm14\n\t vpaddd %%ymm14, %%ymm6, %%ymm6\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm15\n\t vpaddd %%ymm15, %%ymm7, %%ymm7\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm14\n\t vpaddd %%ymm14, %%ymm8, %%ymm8\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm15\n\t vpaddd %%ymm15, %%ymm9, %%ymm9\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm14\n\t vpaddd %%ymm14, %%ymm10, %%ymm10\n\t"
      "vpmaddwd %%ymm12, %%ymm13, %%ymm15\n\t vpaddd %%ymm15, %%ymm11, %%ymm11\n\t"
      "dec %[steps]\n\t jnz 1b\n\t"
      "vpaddd %%ymm1, %%ymm0, %%ymm0\n\t vpaddd %%ymm3, %%ymm2, %%ymm2\n\t vpaddd %%ymm5, %%ymm4, %%ymm4\n\t"
      "vpaddd %%ymm7, %%ymm6, %%ymm6\n\t vpaddd %%ymm9, %%ymm8, %%ymm8\n\t vpaddd %%ymm11, %%ymm10, %%ymm10\n\t"
      "vpaddd %%ymm2, %%ymm0, %%ymm0\n\t vpaddd %%ymm6, %%ymm4, %%ymm4\n\t vpaddd %%ymm10, %%ymm8, %%ymm8\n\t"
      "vpaddd %%ymm4, %%ymm0, %%ymm0\n\t vpaddd %%ymm8, %%ymm0, %%ymm0\n\t"
      "vmovdqa %%ymm0, %[out]\n\t vzeroupper"
      : [steps] "+r"(steps), [out] "=m"(out)
      : [x] "r"(static_cast<int32_t>(x)), [w] "r"(static_cast<int32_t>(w))
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "xmm14", "xmm15", "cc");
  return out[0];
}

// The AVX-512 forms: 16-lane FMAs, and vpdpwssd (32 int16 products into 16 lanes per instruction).
__attribute__((target("avx512f"), noinline)) float fma512_block(float seed) {
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(seed * static_cast<float>(i + 1));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t s = 0; s < kInnerSteps; ++s) {
#pragma GCC unroll 12
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_cvtss_f32(sum);
}

__attribute__((target("avx512f,avx512vnni"), noinline)) int32_t dpwssd512_block(int32_t seed) {
  __m512i acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_setzero_si512();
  __m512i x = _mm512_set1_epi16(static_cast<int16_t>(seed)), w = _mm512_set1_epi16(3);
  for (int64_t s = 0; s < kInnerSteps; ++s) {
    // Opaque operands: otherwise the compiler may fold the identical products.
    __asm__ volatile("" : "+v"(x), "+v"(w));
#pragma GCC unroll 12
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_dpwssd_epi32(acc[i], x, w);
  }
  __m512i sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_epi32(sum, acc[i]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  return lanes[0] + lanes[15];
}

// Multiply-adds per second of `block` (macs_per_block each) run on every thread for `seconds`.
template <class Block>
double rate(int threads, double seconds, double macs_per_block, Block block) {
  using Clock = std::chrono::steady_clock;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> blocks{0};
  std::atomic<int> sink{0};
  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      int64_t n = 0;
      int local = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        local += static_cast<int>(block(t + 1));
        ++n;
      }
      blocks += n;
      sink += local;
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(blocks.load()) * macs_per_block / elapsed;
}

}  // namespace

MachinePeak measure_machine_peak(int threads, double seconds) {
  MachinePeak p;
  p.threads = threads;
  p.seconds = seconds;
  if (!has_avx2_fma()) {
    p.isa = "none";
    return p;
  }
  const double macs = static_cast<double>(kInnerSteps) * kAccumulators;
  if (has_avx512f()) {
    p.isa = "avx512f";
    p.fp32_instruction = "vfmadd231ps zmm (16 lanes)";
    p.fp32_mac_per_s = rate(threads, seconds, macs * 16, [](int s) { return fma512_block(static_cast<float>(s)); });
  } else {
    p.isa = "avx2+fma";
    p.fp32_instruction = "vfmadd231ps ymm (8 lanes)";
    p.fp32_mac_per_s = rate(threads, seconds, macs * 8, [](int s) { return fma_block(static_cast<float>(s)); });
  }
  if (has_avx512_vnni()) {
    p.isa += "+vnni";
    p.int16_instruction = "vpdpwssd zmm (32 products)";
    p.int16_mac_per_s = rate(threads, seconds, macs * 32, [](int s) { return dpwssd512_block(s); });
  } else {
    p.int16_instruction = "vpmaddwd + vpaddd ymm (16 products)";
    p.int16_mac_per_s = rate(threads, seconds, macs * 16, [](int s) { return madd_block(s); });
  }
  return p;
}

}  // namespace qplay::fast
