#pragma once

#include <nanobind/nanobind.h>

#include <optional>
#include <string>

#include "shutdown.h"

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
    struct stay_out_at_exit {  // destroyed first: before the GIL is taken back (see shutdown.h)
        ~stay_out_at_exit() { park_if_exiting(); }
    } stay_out;
};

// Runs f with the GIL released, then flushes the log records it produced.
template <class F>
auto without_gil(F && f) {
    native_call guard;
    return f();
}

// Between pieces of a long evaluation: lets Ctrl-C (and other signals) stop it.
void check_signals();

// Reads an optional keyword argument, removing it from kwargs; nullopt when absent or None.
template <class T>
std::optional<T> take_kwarg(nb::kwargs & kwargs, const char * name) {
    if (!kwargs.contains(name)) return std::nullopt;
    nb::object value = kwargs[name];
    PyDict_DelItemString(kwargs.ptr(), name);
    if (value.is_none()) return std::nullopt;
    try {
        return nb::cast<T>(value);
    } catch (const nb::cast_error &) {
        throw nb::type_error((std::string("argument '") + name + "' has the wrong type (" +
                              nb::inst_name(value).c_str() + ")").c_str());
    }
}

// Raises TypeError naming the first keyword left in kwargs.
void reject_unknown_kwargs(const nb::kwargs & kwargs, const char * where);

void bind_errors(nb::module_ & m);
void bind_backend(nb::module_ & m);
void bind_model(nb::module_ & m);
void bind_context(nb::module_ & m);
void bind_sampler(nb::module_ & m);
void bind_generator(nb::module_ & m);
void bind_chat(nb::module_ & m);

}  // namespace llamabind
