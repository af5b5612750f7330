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
#else
inline bool has_avx2() { return false; }
inline bool has_avx2_fma() { return false; }
inline bool has_f16c() { return false; }
inline bool has_avx512f() { return false; }
#endif

}  // namespace qplay
