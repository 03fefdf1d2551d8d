#include "bind_common.h"

#include <limits>

#include "errors.h"

namespace llamabind {

void raise_bad_argument(nb::handle value, const char * where, const char * name) {
    const std::string field = std::string("[") + where + "] " + name;
    if (PyLong_Check(value.ptr()) && !PyBool_Check(value.ptr())) {
        throw nb::value_error((field + " = " + nb::repr(value).c_str() + " is out of range").c_str());
    }
    if (PyUnicode_Check(value.ptr())) utf8(value, where, name);  // raises for lone surrogates
    throw nb::type_error((field + " has the wrong type (" + nb::inst_name(value).c_str() + ")").c_str());
}

std::vector<int32_t> token_ids(nb::handle sequence, const char * where, const char * name) {
    const std::string field = std::string("[") + where + "] " + name;
    PyObject * seq = sequence.ptr();
    if (PyBytes_Check(seq) || PyByteArray_Check(seq) || PyMemoryView_Check(seq) || PyUnicode_Check(seq)) {
        throw nb::type_error((field + " must be token ids (a sequence of int), not " + nb::inst_name(sequence).c_str() +
                              "; turn text into token ids with Model.tokenize")
                                 .c_str());
    }
    nb::object fast = nb::steal(PySequence_Fast(seq, ""));
    if (!fast.is_valid()) {
        PyErr_Clear();
        throw nb::type_error((field + " must be a sequence of int, not " + nb::inst_name(sequence).c_str()).c_str());
    }
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.ptr());
    PyObject ** items = PySequence_Fast_ITEMS(fast.ptr());
    std::vector<int32_t> out(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
        const std::string item = field + "[" + std::to_string(i) + "]";
        nb::object index = PyFloat_Check(items[i]) ? nb::object() : nb::steal(PyNumber_Index(items[i]));
        if (!index.is_valid()) {
            PyErr_Clear();
            throw nb::type_error((item + " is " + nb::inst_name(nb::handle(items[i])).c_str() + ", not int").c_str());
        }
        int overflow = 0;
        const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
        if (overflow != 0 || value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) {
            throw nb::value_error((item + " = " + nb::repr(index).c_str() + " is out of range for a token id").c_str());
        }
        out[static_cast<size_t>(i)] = static_cast<int32_t>(value);
    }
    return out;
}

std::map<int32_t, float> logit_bias(const LogitBiasArg & arg, const char * where) {
    if (!PyDict_Check(arg.object.ptr())) {
        throw nb::type_error((std::string("[") + where + "] logit_bias must be a dict of token id -> bias, not " +
                              nb::inst_name(arg.object).c_str())
                                 .c_str());
    }
    std::map<int32_t, float> out;
    for (auto [token, value] : nb::borrow<nb::dict>(arg.object)) {
        const int32_t id = token_ids(nb::make_tuple(token), where, "logit_bias key")[0];
        float bias;
        if (!nb::try_cast(value, bias)) raise_bad_argument(value, where, "logit_bias value");
        out[id] = bias;
    }
    return out;
}

int32_t token_id(int64_t value, const char * where) {
    if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) {
        throw nb::value_error(
            (std::string("[") + where + "] token " + std::to_string(value) + " is out of range for a token id").c_str());
    }
    return static_cast<int32_t>(value);
}

static std::string text_error(const char * where, const char * name, const char * what) {
    nb::python_error error;  // the UnicodeEncodeError, e.g. "surrogates not allowed"
    return std::string("[") + where + "] " + name + " is not valid Unicode text (" + error.what() + "); " + what;
}

std::string utf8(nb::handle text, const char * where, const char * name) {
    Py_ssize_t size = 0;
    const char * data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
    if (data == nullptr) {
        throw Error(ErrorKind::Text, text_error(where, name, "remove or replace the lone surrogates")).with("field", name);
    }
    return std::string(data, static_cast<size_t>(size));
}

std::vector<std::string> utf8_list(const std::optional<std::vector<nb::str>> & texts, const char * where, const char * name) {
    std::vector<std::string> out;
    if (texts) {
        for (const nb::str & text : *texts) out.push_back(utf8(text, where, name));
    }
    return out;
}

std::string fs_path(nb::handle path, const char * where, const char * name) {
    // As os.fsencode: a name decoded with surrogateescape (bytes that are not UTF-8) is its bytes again.
    nb::object encoded = nb::steal(PyUnicode_EncodeFSDefault(path.ptr()));
    if (!encoded.is_valid()) {
        throw Error(ErrorKind::Text, text_error(where, name, "a file name cannot hold lone surrogates")).with("field", name);
    }
    std::string out(PyBytes_AS_STRING(encoded.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(encoded.ptr())));
    return out;
}

nb::str fs_text(const std::string & path) {
    return nb::steal<nb::str>(PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size())));
}

}  // namespace llamabind
