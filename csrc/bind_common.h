#pragma once

#include <nanobind/nanobind.h>

namespace llamabind {

namespace nb = nanobind;

// Hands queued llama.cpp log records to Python's `logging` (logger "llamabind.native").
// Must be called with the GIL held; never raises.
void flush_logs();

// Call guard for slow native calls: releases the GIL for the call, then (GIL held again)
// flushes the log records the call produced. Members are destroyed in reverse order.
struct native_call {
    struct flush_on_exit {
        ~flush_on_exit() { flush_logs(); }
    } flush;
    nb::gil_scoped_release release;
};

void bind_errors(nb::module_ & m);
void bind_backend(nb::module_ & m);

}  // namespace llamabind
