// Placeholder until the fast integer kernels land.
#include "runtime/kernels/fast/integer_providers.h"

namespace qplay::fast {

PreparedKernel prepare_qconv(const Node&, const Graph&) { return nullptr; }
PreparedKernel prepare_qgemm(const Node&, const Graph&) { return nullptr; }
PreparedKernel prepare_qadd(const Node&, const Graph&) { return nullptr; }
PreparedKernel prepare_quantize_f32(const Node&, const Graph&) { return nullptr; }

std::vector<KernelProvider> integer_providers() { return {prepare_qconv, prepare_qgemm, prepare_qadd, prepare_quantize_f32}; }

}  // namespace qplay::fast
