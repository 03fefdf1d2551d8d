#include "bind_common.h"

namespace llamabind {

void bind_errors(nb::module_ & m) { (void) m; }

}  // namespace llamabind
