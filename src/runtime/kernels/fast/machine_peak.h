// The machine's own multiply-add ceiling, measured: register-resident loops of the instructions the fast
// kernels are built from, on every thread at once. `make bench` divides the model's multiply-adds by it
// to say how close qplay and ONNX Runtime come to the hardware, and which targets it rules out.
#pragma once

#include <string>

namespace qplay::fast {

// Each rate comes from the widest form the CPU has, the one qplay's kernels then use, on 12 independent accumulators
// per thread.
struct MachinePeak {
  int threads = 0;
  double seconds = 0;  // wall time of each measurement
  // fp32 multiply-adds per second: FMAs on 16 lanes (AVX-512) or 8 (AVX2).
  double fp32_mac_per_s = 0;
  std::string fp32_instruction;
  // int16 x int16 multiply-adds per second, as the exact integer kernels multiply: vpdpwssd (AVX-512 VNNI) or
  // vpmaddwd + vpaddd (AVX2).
  double int16_mac_per_s = 0;
  std::string int16_instruction;
  std::string isa;  // "avx512f+vnni", "avx512f", "avx2+fma", or "none" (no AVX2+FMA: both figures 0)
};

// Runs each loop on `threads` threads for about `seconds` of wall time.
MachinePeak measure_machine_peak(int threads, double seconds);

}  // namespace qplay::fast
