#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

// Runs f with the GIL released, then flushes the log records it produced.
template <class F>
auto without_gil(F && f) {
    native_call guard;
    return f();
}

// Between pieces of a long evaluation: lets Ctrl-C (and other signals) stop it.
void check_signals();

// Why `value` did not convert to the C++ type of argument `name` of `where`: ValueError for an
// int out of range or a str that is not valid Unicode (a lone surrogate), else TypeError.
[[noreturn]] void raise_bad_argument(nb::handle value, const char * where, const char * name);

// Reads an optional keyword argument, removing it from kwargs; nullopt when absent or None.
template <class T>
std::optional<T> take_kwarg(nb::kwargs & kwargs, const char * name, const char * where) {
    if (!kwargs.contains(name)) return std::nullopt;
    nb::object value = kwargs[name];
    PyDict_DelItemString(kwargs.ptr(), name);
    if (value.is_none()) return std::nullopt;
    try {
        return nb::cast<T>(value);
    } catch (const nb::cast_error &) {
        raise_bad_argument(value, where, name);
    }
}

// Token ids from a sequence of ints. Refuses bytes-like objects and str (their items are not
// token ids) with TypeError, and ids outside int32 with ValueError.
std::vector<int32_t> token_ids(nb::handle sequence, const char * where, const char * name = "tokens");

// A token-id argument as the caller passed it, converted by token_ids() so that bytes are refused
// and an id out of range is named (nanobind's own list caster would take bytearray's items as
// ids and report an overflow as "incompatible function arguments"). Typed Sequence[int] in stubs.
struct TokenSequence {
    nb::handle object;
    std::vector<int32_t> ids(const char * where) const { return token_ids(object, where); }
};

// One token id from a Python int: ValueError outside int32 (the vocabulary check follows in C++).
int32_t token_id(int64_t value, const char * where);

// The UTF-8 bytes of a str; ValueError naming the field for a str with lone surrogates.
std::string utf8(nb::handle text, const char * where, const char * name);

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

namespace nanobind::detail {

template <>
struct type_caster<llamabind::TokenSequence> {
    NB_TYPE_CASTER(llamabind::TokenSequence, const_name("collections.abc.Sequence[int]"))

    bool from_python(handle src, uint8_t, cleanup_list *) noexcept {
        value.object = src;
        return true;
    }
};

}  // namespace nanobind::detail
