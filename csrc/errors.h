#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace llamabind {

// The Python class an Error becomes (llamabind.errors); translated in bind_errors.cpp.
enum class ErrorKind {
    ModelLoad,
    Context,
    ContextOverflow,
    Decode,
    Grammar,
    HandleClosed,
    State,
    Template,  // a chat template failed to parse or render
    Text,  // text with lone surrogates, which has no UTF-8 form: InvalidTextError
    Value,  // a bad argument value: ValueError
};

// An error with the operation named in its message and structured facts for Python.
class Error : public std::runtime_error {
  public:
    Error(ErrorKind kind, const std::string & message) : std::runtime_error(message), kind(kind) {}

    Error & with(const std::string & key, int64_t value) {
        ints[key] = value;
        return *this;
    }

    Error & with(const std::string & key, const std::string & value) {
        strings[key] = value;
        return *this;
    }

    ErrorKind kind;
    std::map<std::string, int64_t> ints;
    std::map<std::string, std::string> strings;
};

[[noreturn]] inline void throw_closed(const char * what) {
    throw Error(ErrorKind::HandleClosed, std::string("[") + what + "] the handle is closed");
}

[[noreturn]] inline void throw_value(const std::string & message) {
    throw Error(ErrorKind::Value, message);
}

// A NUL byte would cut the path short at the C API, and another file would be opened.
inline void check_path(const std::string & path, const char * operation, const char * field) {
    if (path.find('\0') != std::string::npos) {
        throw_value(std::string("[") + operation + "] " + field + " contains a NUL byte");
    }
}

}  // namespace llamabind
