// What the CPU offers, asked once per process: fast kernels pick their code path at run time
// (compiled with target attributes), so one binary runs everywhere with a portable fallback.
#pragma once

namespace qplay {

#if defined(__x86_64__) || defined(__i386__)
inline bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
inline bool has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
inline bool has_f16c() {
  static const bool yes = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return yes;
}
inline bool has_avx512f() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}
// AVX-512 with byte and word operations (e.g. vpaddw on 32 int16 lanes).
inline bool has_avx512bw() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return yes;
}
// AVX-512 with VNNI (vpdpwssd, vpdpbusd), VL and DQ.
inline bool has_avx512_vnni() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  return yes;
}
#else
inline bool has_avx2() { return false; }
inline bool has_avx512f() { return false; }
inline bool has_avx512bw() { return false; }
inline bool has_avx512_vnni() { return false; }
inline bool has_avx2_fma() { return false; }
inline bool has_f16c() { return false; }
#endif

}  // namespace qplay
