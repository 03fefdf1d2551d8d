#pragma once

namespace llamabind {

class Context;

// Interpreter exit while native work runs (a daemon thread generating). Python's atexit hook
// calls begin_shutdown() (GIL released): every live context stops its decodes and its batch
// loop, so no native thread computes while the process tears down. A thread coming back from a
// native call after that never takes the GIL again (park_if_exiting): at finalization CPython
// would end it with pthread_exit, whose forced unwind through our frames calls std::terminate.
void begin_shutdown() noexcept;
bool is_exiting() noexcept;
[[noreturn]] void park_forever() noexcept;
inline void park_if_exiting() noexcept {
    if (is_exiting()) park_forever();
}

// Contexts alive now (for begin_shutdown).
void register_context(Context * context);
void unregister_context(Context * context);
bool has_live_contexts();

}  // namespace llamabind
