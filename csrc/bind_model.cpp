#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "bind_common.h"
#include "model.h"

namespace llamabind {

// kv_overrides as given (typed Mapping[str, bool | int | float | str] in stubs): converted here so
// that an int out of range or a key with lone surrogates is named.
static std::map<std::string, KvOverrideValue> kv_overrides(const KvOverridesArg & arg) {
    if (!PyDict_Check(arg.object.ptr())) throw nb::type_error("[Model] kv_overrides must be a dict");
    std::map<std::string, KvOverrideValue> out;
    for (auto [key, value] : nb::borrow<nb::dict>(arg.object)) {
        if (!nb::isinstance<nb::str>(key)) throw nb::type_error("[Model] kv_overrides keys must be str");
        std::string k = utf8(key, "Model", "kv_overrides key");
        const std::string field = "kv_overrides['" + k + "']";
        if (nb::isinstance<nb::bool_>(value)) {
            out[k] = nb::cast<bool>(value);
        } else if (nb::isinstance<nb::int_>(value)) {
            int64_t v;
            if (!nb::try_cast(value, v)) raise_bad_argument(value, "Model", field.c_str());
            out[k] = v;
        } else if (nb::isinstance<nb::float_>(value)) {
            out[k] = nb::cast<double>(value);
        } else if (nb::isinstance<nb::str>(value)) {
            out[k] = utf8(value, "Model", field.c_str());
        } else {
            throw nb::type_error(("[Model] " + field + " must be bool, int, float or str").c_str());
        }
    }
    return out;
}

// A Model method of one token id, taking any Python int (ValueError outside int32).
template <auto method>
auto by_token_id(const char * operation) {
    return [operation](const Model & self, int64_t token) { return (self.*method)(token_id(token, operation)); };
}

void bind_model(nb::module_ & m) {
    nb::class_<Model>(m, "Model", R"(A GGUF model loaded by llama.cpp.

Loading releases the GIL. A model is read-only afterwards and may be shared by many threads
and contexts; contexts keep the weights alive, so ``close()`` frees them once no context uses
them. Using a closed model raises ``HandleClosedError``.)")
        .def("__init__",
             [](Model * self, nb::str path_text, std::optional<nb::typed<nb::callable, std::optional<bool>(float)>> progress,
                std::optional<nb::int_> n_gpu_layers, std::optional<nb::int_> split_mode, std::optional<nb::int_> main_gpu,
                std::optional<std::vector<float>> tensor_split, bool use_mmap, bool use_mlock, bool vocab_only,
                bool check_tensors, std::optional<KvOverridesArg> overrides) {
                 const std::string path = fs_path(path_text, "Model", "path");
                 ModelOptions options;
                 options.n_gpu_layers = int_arg<int32_t>(n_gpu_layers, "Model", "n_gpu_layers");
                 options.split_mode = int_arg<int32_t>(split_mode, "Model", "split_mode");
                 options.main_gpu = int_arg<int32_t>(main_gpu, "Model", "main_gpu");
                 options.tensor_split = tensor_split.value_or(std::vector<float>{});
                 options.use_mmap = use_mmap;
                 options.use_mlock = use_mlock;
                 options.vocab_only = vocab_only;
                 options.check_tensors = check_tensors;
                 if (overrides) options.kv_overrides = kv_overrides(*overrides);
                 std::shared_ptr<nb::object> error;  // a Python exception raised by `progress`
                 ProgressFn fn;
                 if (progress) {
                     nb::callable cb = *progress;
                     fn = [cb, &error](float value) {
                         nb::gil_scoped_acquire acquire;
                         try {
                             nb::object result = cb(value);
                             return result.is_none() || nb::cast<bool>(result);
                         } catch (nb::python_error & e) {
                             error = std::make_shared<nb::object>(nb::borrow(e.value()));
                             return false;
                         }
                     };
                 }
                 try {
                     without_gil([&] { new (self) Model(path, options, fn); });
                 } catch (...) {
                     if (error) {
                         PyErr_SetObject((PyObject *) Py_TYPE(error->ptr()), error->ptr());
                         throw nb::python_error();
                     }
                     throw;
                 }
             },
             nb::arg("path"), nb::arg("progress") = nb::none(), nb::kw_only(), nb::arg("n_gpu_layers").none() = nb::none(),
             nb::arg("split_mode").none() = nb::none(), nb::arg("main_gpu").none() = nb::none(),
             nb::arg("tensor_split").none() = nb::none(), nb::arg("use_mmap") = true, nb::arg("use_mlock") = false,
             nb::arg("vocab_only") = false, nb::arg("check_tensors") = false, nb::arg("kv_overrides").none() = nb::none(),
             R"(Loads a GGUF file.

Args:
    path: The .gguf file (the first part of a split model).
    progress: Called with the load progress in [0, 1]; returning False cancels the load
        (raising ModelLoadError with ``cancelled=1``); an exception it raises is re-raised.
    n_gpu_layers, split_mode, main_gpu, tensor_split, use_mmap, use_mlock, vocab_only,
        check_tensors, kv_overrides: keyword-only llama_model_params, None keeping llama.cpp's
        default: n_gpu_layers (-1: all, the default), split_mode (0 none, 1 layer, 2 row,
        3 tensor), tensor_split (proportions per device), kv_overrides (GGUF key -> value;
        checked against the limits llama.cpp asserts on, e.g. block_count <= 512).

Raises:
    ModelLoadError: missing file, a directory, an empty, non-GGUF, truncated or corrupt file,
        hyperparameters past llama.cpp's limits.
    ValueError: a NUL byte in the path, non-finite floats, ints out of range.
    InvalidTextError: lone surrogates in the path that are not the escapes of os.fsdecode.)")
        .def("close", &Model::close, R"(Drops this handle's reference to the weights now.)")
        .def_prop_ro("is_closed", &Model::is_closed)
        .def("__enter__", [](nb::object self) { return self; })
        .def("__exit__", [](Model & self, nb::args) { self.close(); }, nb::sig("def __exit__(self, *args: object) -> None"))
        .def_prop_ro("path", [](const Model & self) { return fs_text(self.path()); })
        .def_prop_ro("metadata", &Model::metadata, R"(All GGUF key/value metadata as strings (arrays are not expanded).)")
        .def_prop_ro("description", &Model::description)
        .def_prop_ro("architecture", &Model::architecture)
        .def_prop_ro("n_params", &Model::n_params)
        .def_prop_ro("size_bytes", &Model::size_bytes)
        .def_prop_ro("n_ctx_train", &Model::n_ctx_train)
        .def_prop_ro("n_embd", &Model::n_embd)
        .def_prop_ro("n_layer", &Model::n_layer)
        .def_prop_ro("n_head", &Model::n_head)
        .def_prop_ro("n_vocab", &Model::n_vocab)
        .def_prop_ro("vocab_type", &Model::vocab_type, R"(1 SPM, 2 BPE, 3 WPM, 4 UGM, 5 RWKV, 6 PLaMo-2.)")
        .def_prop_ro("is_vocab_only", &Model::is_vocab_only)
        .def_prop_ro("output_on_gpu", &Model::output_on_gpu,
                     R"(Whether the output layer (the logits) is computed on a GPU: every layer offloaded
and a GPU present. Context.generate then samples inside the compute graph by default.)")
        .def_prop_ro("has_encoder", &Model::has_encoder)
        .def_prop_ro("has_decoder", &Model::has_decoder)
        .def_prop_ro("is_recurrent", &Model::is_recurrent)
        .def_prop_ro("special_tokens", &Model::special_tokens, R"(bos, eos, eot, sep, nl, pad, mask, fim_*: token id, -1 when absent.)")
        .def_prop_ro("add_bos", &Model::add_bos)
        .def_prop_ro("add_eos", &Model::add_eos)
        .def("is_eog", by_token_id<&Model::is_eog>("Model.is_eog"), nb::arg("token"), R"(Whether the token ends generation (EOS, EOT, ...).)")
        .def("is_control", by_token_id<&Model::is_control>("Model.is_control"), nb::arg("token"))
        .def("token_attr", by_token_id<&Model::token_attr>("Model.token_attr"), nb::arg("token"), R"(llama_token_attr bit flags of the token.)")
        .def("token_text", by_token_id<&Model::token_text>("Model.token_text"), nb::arg("token"), R"(The token's vocabulary entry.)")
        .def("token_score", by_token_id<&Model::token_score>("Model.token_score"), nb::arg("token"))
        .def("chat_template", &Model::chat_template, nb::arg("name") = nb::none(),
             R"(The model's chat template (a named one when ``name`` is given), or None.)")
        .def_prop_ro("chat_templates", &Model::chat_templates, R"(All chat templates by name ("default" for the main one).)")
        .def("tokenize",
             [](const Model & self, nb::str text, bool add_special, bool parse_special) {
                 std::string bytes = utf8(text, "Model.tokenize", "text");
                 return without_gil([&] { return self.tokenize(bytes, add_special, parse_special); });
             },
             nb::arg("text"), nb::arg("add_special") = true, nb::arg("parse_special") = false,
             R"(Text -> token ids. ``add_special`` adds BOS/EOS as the model wants; ``parse_special`` turns special-token text into those tokens.)")
        .def("detokenize",
             [](const Model & self, TokenSequence tokens, bool remove_special, bool unparse_special) {
                 std::vector<int32_t> ids = tokens.ids("Model.detokenize");
                 std::string text = without_gil([&] { return self.detokenize(ids, remove_special, unparse_special); });
                 return nb::bytes(text.data(), text.size());
             },
             nb::arg("tokens"), nb::arg("remove_special") = false, nb::arg("unparse_special") = false,
             R"(Token ids -> UTF-8 bytes (decode with errors="replace" for partial characters).)")
        .def("token_to_piece",
             [](const Model & self, int64_t token, bool special) {
                 std::string piece = self.token_to_piece(token_id(token, "Model.token_to_piece"), special);
                 return nb::bytes(piece.data(), piece.size());
             },
             nb::arg("token"), nb::arg("special") = false, R"(One token's bytes.)")
        .def("__repr__", [](const Model & self) {
            if (self.is_closed()) return nb::str("Model(closed)");
            return nb::str("Model({!r}, {})").format(fs_text(self.path()), self.description());
        });
}

}  // namespace llamabind
