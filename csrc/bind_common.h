#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

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

// Why `value` did not convert to the C++ type of argument `name` of `where`: ValueError for an
// int out of range or a str that is not valid Unicode (a lone surrogate), else TypeError.
[[noreturn]] void raise_bad_argument(nb::handle value, const char * where, const char * name);

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

// An int argument (typed `int | None` in stubs) as a T; ValueError naming the field when it does
// not fit, where nanobind's own int casters would report "incompatible function arguments".
template <class T>
std::optional<T> int_arg(const std::optional<nb::int_> & value, const char * where, const char * name) {
    if (!value) return std::nullopt;
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(value->ptr(), &overflow);
    constexpr long long lo = std::is_signed_v<T> ? static_cast<long long>(std::numeric_limits<T>::min()) : 0;
    constexpr unsigned long long hi = std::numeric_limits<T>::max();
    if (overflow != 0 || v < lo || (v > 0 && static_cast<unsigned long long>(v) > hi)) {
        raise_bad_argument(*value, where, name);
    }
    return static_cast<T>(v);
}

// A {token id: bias} argument as the caller passed it (typed Mapping[int, float] in stubs),
// converted by logit_bias() so that ids out of range and NaN biases are named.
struct LogitBiasArg {
    nb::handle object;
};
std::map<int32_t, float> logit_bias(const LogitBiasArg & arg, const char * where);

// Model's kv_overrides as the caller passed them (typed Mapping[str, bool | int | float | str]).
struct KvOverridesArg {
    nb::handle object;
};

// One token id from a Python int: ValueError outside int32 (the vocabulary check follows in C++).
int32_t token_id(int64_t value, const char * where);

// The UTF-8 bytes of a str; InvalidTextError naming the field for a str with lone surrogates.
std::string utf8(nb::handle text, const char * where, const char * name);
std::vector<std::string> utf8_list(const std::optional<std::vector<nb::str>> & texts, const char * where, const char * name);

// A file name as os.fsencode gives it (undecodable bytes kept); InvalidTextError for lone surrogates.
std::string fs_path(nb::handle path, const char * where, const char * name);
// A file name back as os.fsdecode gives it.
nb::str fs_text(const std::string & path);

void bind_errors(nb::module_ & m);
void bind_backend(nb::module_ & m);
void bind_model(nb::module_ & m);
void bind_context(nb::module_ & m);
void bind_sampler(nb::module_ & m);
void bind_generator(nb::module_ & m);
void bind_chat(nb::module_ & m);

}  // namespace llamabind

namespace nanobind::detail {

// Arguments taken as the Python object they are (the binding converts and checks them, with
// messages naming the argument), shown in the signature as the type they should be.
#define LLAMABIND_PASSTHROUGH_CASTER(Type, signature)                          \
    template <>                                                               \
    struct type_caster<Type> {                                                \
        NB_TYPE_CASTER(Type, const_name(signature))                           \
        bool from_python(handle src, uint8_t, cleanup_list *) noexcept {      \
            value.object = src;                                               \
            return true;                                                      \
        }                                                                     \
    };

LLAMABIND_PASSTHROUGH_CASTER(llamabind::TokenSequence, "collections.abc.Sequence[int]")
LLAMABIND_PASSTHROUGH_CASTER(llamabind::LogitBiasArg, "collections.abc.Mapping[int, float]")
LLAMABIND_PASSTHROUGH_CASTER(llamabind::KvOverridesArg, "collections.abc.Mapping[str, bool | int | float | str]")

#undef LLAMABIND_PASSTHROUGH_CASTER

}  // namespace nanobind::detail
