#include <nanobind/stl/string.h>

#include <cstring>

#include "bind_common.h"
#include "errors.h"

namespace llamabind {

static const char * python_class_name(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::ModelLoad: return "ModelLoadError";
        case ErrorKind::Context: return "ContextError";
        case ErrorKind::ContextOverflow: return "ContextOverflowError";
        case ErrorKind::Decode: return "DecodeError";
        case ErrorKind::Grammar: return "GrammarError";
        case ErrorKind::HandleClosed: return "HandleClosedError";
        case ErrorKind::State: return "StateError";
        case ErrorKind::Template: return "TemplateError";
        case ErrorKind::Text: return "InvalidTextError";
        case ErrorKind::Value: return nullptr;
    }
    return nullptr;
}

// Messages may quote untrusted text cut at any byte (a template excerpt): never fail on them.
static nb::str message_text(const char * what) {
    return nb::steal<nb::str>(PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "replace"));
}

static void translate(const std::exception_ptr & p, void *) {
    try {
        std::rethrow_exception(p);
    } catch (const Error & e) {
        const char * name = python_class_name(e.kind);
        if (name == nullptr) {
            PyErr_SetObject(PyExc_ValueError, message_text(e.what()).ptr());
            return;
        }
        nb::object errors = nb::module_::import_("llamabind.errors");
        nb::dict details;
        for (const auto & [key, value] : e.ints) {
            details[key.c_str()] = value;
        }
        for (const auto & [key, value] : e.strings) {
            details[key.c_str()] = value;
        }
        nb::object cls = errors.attr(name);
        nb::object instance = cls(message_text(e.what()), **details);
        PyErr_SetObject(cls.ptr(), instance.ptr());
    }
}

void bind_errors(nb::module_ & m) {
    (void) m;
    nb::register_exception_translator(translate);
}

}  // namespace llamabind
