// The machine's own multiply-add ceiling, measured: register-resident loops of the instructions the fast
// kernels are built from, on every thread at once. `make bench` divides the model's multiply-adds by it
// to say how close qplay and ONNX Runtime come to the hardware, and which targets it rules out.
#pragma once

#include <string>

namespace qplay::fast {

struct MachinePeak {
  int threads = 0;
  double seconds = 0;  // wall time of each measurement
  // fp32 multiply-adds per second: 8-lane FMAs (vfmadd231ps) on 12 independent accumulators per thread.
  double fp32_mac_per_s = 0;
  // int16 x int16 multiply-adds per second: vpmaddwd + vpaddd on 12 independent accumulators per thread,
  // the pair the exact integer kernels use (each vpmaddwd does 16 products).
  double int16_mac_per_s = 0;
  std::string isa;  // "avx2+fma", or "none" when the CPU has neither (both figures are then 0)
};

// Runs each loop on `threads` threads for about `seconds` of wall time.
MachinePeak measure_machine_peak(int threads, double seconds);

}  // namespace qplay::fast
