#include "runtime/kernels/reference/common.h"

namespace qplay {

void register_elementwise_ops(std::vector<OpSpec>& table) { (void)table; }

}  // namespace qplay
