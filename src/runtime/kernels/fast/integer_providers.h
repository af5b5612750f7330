// Fast kernels for the integer ops of domain "qplay" (runtime/integer/params.h), bound per node
// by providers like the float ones in providers.h. Each is bit-exact with its reference in
// runtime/integer/reference.h (tests/runtime/integer_kernels_test.cc) and returns nullptr for
// nodes it does not handle (which then run the reference).
#pragma once

#include <vector>

#include "runtime/executor.h"

namespace qplay::fast {

// qplay.QConv (group 1) and qplay.QGemm: weights packed to int16 (w - w_zp) once, int16
// multiply-adds with exact int32 sums (AVX2 _mm256_madd_epi16, or portable C++).
PreparedKernel prepare_qconv(const Node& node, const Graph& graph);
PreparedKernel prepare_qgemm(const Node& node, const Graph& graph);
// qplay.QAdd with inputs of the same shape.
PreparedKernel prepare_qadd(const Node& node, const Graph& graph);
// qplay.QAveragePool / QGlobalAveragePool (windows covering the whole plane; others: reference).
PreparedKernel prepare_qpool(const Node& node, const Graph& graph);

// QConv whose output only `add` (a QAdd) reads, as one kernel writing the Add's output: the
// executor fuses them in runs without a hook. Inputs: the conv's kQConvAddInputs (omitted bias =
// null), then the Add's 8, where the conv's output is null. Bit-exact with the two nodes.
constexpr size_t kQConvAddInputs = 9;
PreparedKernel prepare_qconv_add(const Node& conv, const Node& add, const Graph& graph);

// All of the above, in the order the executor should try them.
std::vector<KernelProvider> integer_providers();

}  // namespace qplay::fast
