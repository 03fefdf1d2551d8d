#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bind_common.h"
#include "context.h"
#include "errors.h"
#include "lora.h"

namespace llamabind {

using FloatArray = nb::ndarray<nb::numpy, float, nb::ndim<1>>;

// Hands a vector to NumPy without a second copy: the array owns it.
static FloatArray to_numpy(std::vector<float> && values) {
    auto * owned = new std::vector<float>(std::move(values));
    nb::capsule owner(owned, [](void * p) noexcept { delete static_cast<std::vector<float> *>(p); });
    return FloatArray(owned->data(), {owned->size()}, owner);
}

static ContextOptions context_options(nb::kwargs & kw) {
    ContextOptions o;
    o.n_ctx = take_kwarg<int64_t>(kw, "n_ctx", "Context");
    o.n_batch = take_kwarg<int64_t>(kw, "n_batch", "Context");
    o.n_ubatch = take_kwarg<int64_t>(kw, "n_ubatch", "Context");
    o.n_seq_max = take_kwarg<int64_t>(kw, "n_seq_max", "Context");
    o.n_threads = take_kwarg<int32_t>(kw, "n_threads", "Context");
    o.n_threads_batch = take_kwarg<int32_t>(kw, "n_threads_batch", "Context");
    if (auto fa = take_kwarg<nb::object>(kw, "flash_attn", "Context")) {
        o.flash_attn = nb::isinstance<nb::bool_>(*fa) ? (nb::cast<bool>(*fa) ? 1 : 0) : nb::cast<int32_t>(*fa);
    }
    o.type_k = take_kwarg<int32_t>(kw, "type_k", "Context");
    o.type_v = take_kwarg<int32_t>(kw, "type_v", "Context");
    o.offload_kqv = take_kwarg<bool>(kw, "offload_kqv", "Context");
    o.op_offload = take_kwarg<bool>(kw, "op_offload", "Context");
    o.swa_full = take_kwarg<bool>(kw, "swa_full", "Context");
    o.kv_unified = take_kwarg<bool>(kw, "kv_unified", "Context");
    o.embeddings = take_kwarg<bool>(kw, "embeddings", "Context").value_or(false);
    o.no_perf = take_kwarg<bool>(kw, "no_perf", "Context").value_or(false);
    o.pooling_type = take_kwarg<int32_t>(kw, "pooling_type", "Context");
    o.attention_type = take_kwarg<int32_t>(kw, "attention_type", "Context");
    o.rope_scaling_type = take_kwarg<int32_t>(kw, "rope_scaling_type", "Context");
    o.rope_freq_base = take_kwarg<float>(kw, "rope_freq_base", "Context");
    o.rope_freq_scale = take_kwarg<float>(kw, "rope_freq_scale", "Context");
    o.yarn_ext_factor = take_kwarg<float>(kw, "yarn_ext_factor", "Context");
    o.yarn_attn_factor = take_kwarg<float>(kw, "yarn_attn_factor", "Context");
    o.yarn_beta_fast = take_kwarg<float>(kw, "yarn_beta_fast", "Context");
    o.yarn_beta_slow = take_kwarg<float>(kw, "yarn_beta_slow", "Context");
    o.yarn_orig_ctx = take_kwarg<int64_t>(kw, "yarn_orig_ctx", "Context");
    reject_unknown_kwargs(kw, "Context");
    return o;
}

static LogitsMode logits_mode(const std::string & name) {
    if (name == "last") return LogitsMode::Last;
    if (name == "all") return LogitsMode::All;
    if (name == "none") return LogitsMode::None;
    throw_value("[Context.decode] logits must be 'last', 'all' or 'none', not '" + name + "'");
}

void bind_context(nb::module_ & m) {
    nb::class_<LoraAdapter>(m, "LoraAdapter", R"(A LoRA adapter (GGUF) for a model, applied to contexts with Context.set_lora.)")
        .def("__init__",
             [](LoraAdapter * self, const Model & model, const std::string & path) {
                 without_gil([&] { new (self) LoraAdapter(model, path); });
             },
             nb::arg("model"), nb::arg("path"))
        .def_prop_ro("path", &LoraAdapter::path)
        .def_prop_ro("metadata", &LoraAdapter::metadata)
        .def("close", &LoraAdapter::close,
             R"(Makes this handle unusable; the weights are freed once no context uses them.)")
        .def_prop_ro("is_closed", &LoraAdapter::is_closed)
        .def("__enter__", [](nb::object self) { return self; })
        .def("__exit__", [](LoraAdapter & self, nb::args) { self.close(); });

    nb::class_<Context>(m, "Context", R"(A llama.cpp context (KV cache, compute buffers) over a Model.

One thread uses a context at a time (an internal lock, waited on without the GIL). It keeps its
model's weights alive. ``close()`` frees it at once; later use raises HandleClosedError.)")
        .def("__init__",
             [](Context * self, const Model & model, nb::kwargs kw) {
                 ContextOptions options = context_options(kw);
                 without_gil([&] { new (self) Context(model, options); });
             },
             nb::arg("model"), nb::arg("kwargs"),
             R"(Creates a context.

Args:
    model: The model; vocab-only models cannot have a context (ContextError).
    **kwargs: llama_context_params: n_ctx (0: the model's training context), n_batch, n_ubatch,
        n_seq_max, n_threads, n_threads_batch, flash_attn (-1 auto, 0/False off, 1/True on),
        type_k, type_v (ggml types), offload_kqv, op_offload, swa_full, kv_unified, embeddings,
        no_perf, pooling_type (-1 model's, 0 none, 1 mean, 2 cls, 3 last, 4 rank),
        attention_type (-1, 0 causal, 1 non-causal), rope_scaling_type, rope_freq_base,
        rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow,
        yarn_orig_ctx. None keeps llama.cpp's default.

Raises:
    ValueError: n_ctx < 0 or absurd, n_batch > n_ctx, n_ubatch > n_batch, bad enums.
    ContextError: llama.cpp could not create it (e.g. out of memory).)")
        .def("close", &Context::close, nb::call_guard<native_call>(), R"(Frees the context now (waits for a call in flight).)")
        .def_prop_ro("is_closed", &Context::is_closed)
        .def("__enter__", [](nb::object self) { return self; })
        .def("__exit__", [](Context & self, nb::args) { without_gil([&] { self.close(); }); })
        .def_prop_ro("n_ctx", &Context::n_ctx, nb::call_guard<native_call>())
        .def_prop_ro("n_batch", &Context::n_batch, nb::call_guard<native_call>())
        .def_prop_ro("n_ubatch", &Context::n_ubatch, nb::call_guard<native_call>())
        .def_prop_ro("n_seq_max", &Context::n_seq_max, nb::call_guard<native_call>())
        .def_prop_ro("n_threads", &Context::n_threads, nb::call_guard<native_call>())
        .def_prop_ro("n_vocab", &Context::n_vocab)
        .def_prop_ro("n_embd", &Context::n_embd)
        .def_prop_ro("pooling_type", &Context::pooling_type, nb::call_guard<native_call>())
        .def("set_n_threads", &Context::set_n_threads, nb::arg("n_threads"), nb::arg("n_threads_batch"),
             nb::call_guard<native_call>())
        .def("decode",
             [](Context & self, TokenSequence tokens, int32_t seq_id, const std::string & logits) {
                 LogitsMode mode = logits_mode(logits);
                 std::vector<int32_t> ids = tokens.ids("Context.decode");
                 without_gil([&] { self.decode(ids, seq_id, mode, check_signals); });
             },
             nb::arg("tokens"), nb::arg("seq_id") = 0, nb::arg("logits") = "last",
             R"(Evaluates tokens after what sequence ``seq_id`` holds, in n_batch pieces, without the GIL.

Args:
    tokens: Token ids.
    seq_id: The sequence (< n_seq_max).
    logits: Which outputs to keep: "last" (default), "all" or "none". Output i of
        ``logits(i)``/``embeddings(i)`` counts the kept outputs of the last piece; -1 is the last.

Raises:
    ContextOverflowError: the sequence would outgrow the context.
    ValueError: tokens outside the vocabulary or an empty list.
    KeyboardInterrupt: Ctrl-C between pieces (what was evaluated stays in the cache).)")
        .def("logits", [](const Context & self, int32_t i) { return to_numpy(self.logits(i)); }, nb::arg("i") = -1,
             R"(A copy of the logits of output i of the last decode (float32, n_vocab).)")
        .def("embeddings", [](const Context & self, int32_t i) { return to_numpy(self.embeddings(i)); },
             nb::arg("i") = -1, R"(A copy of the embedding of output i (float32, n_embd); needs embeddings=True.)")
        .def("sequence_embeddings",
             [](const Context & self, int32_t seq_id) { return to_numpy(self.sequence_embeddings(seq_id)); },
             nb::arg("seq_id") = 0, R"(A copy of the pooled embedding of a sequence; needs embeddings=True and pooling.)")
        .def("memory_clear", &Context::memory_clear, nb::call_guard<native_call>(), R"(Empties the KV cache.)")
        .def("memory_remove", &Context::memory_remove, nb::arg("seq_id"), nb::arg("p0") = -1, nb::arg("p1") = -1,
             nb::call_guard<native_call>(),
             R"(Removes positions [p0, p1) of a sequence (-1: open end; seq_id -1: all). False if a partial removal is impossible.)")
        .def("memory_copy", &Context::memory_copy, nb::arg("src"), nb::arg("dst"), nb::arg("p0") = -1, nb::arg("p1") = -1,
             nb::call_guard<native_call>())
        .def("memory_keep", &Context::memory_keep, nb::arg("seq_id"), nb::call_guard<native_call>(),
             R"(Removes every sequence but this one.)")
        .def("memory_shift", &Context::memory_shift, nb::arg("seq_id"), nb::arg("p0"), nb::arg("p1"), nb::arg("delta"),
             nb::call_guard<native_call>(), R"(Adds delta to the positions [p0, p1) of a sequence.)")
        .def("memory_pos_max", &Context::memory_pos_max, nb::arg("seq_id") = 0, nb::call_guard<native_call>(),
             R"(The largest position the sequence holds, -1 when empty.)")
        .def("memory_pos_min", &Context::memory_pos_min, nb::arg("seq_id") = 0, nb::call_guard<native_call>())
        .def_prop_ro("memory_can_shift", &Context::memory_can_shift, nb::call_guard<native_call>())
        .def("cached_tokens", &Context::cached_tokens, nb::arg("seq_id") = 0, nb::call_guard<native_call>(),
             R"(The token ids this context knows the sequence holds (-1 where unknown); used for prompt reuse.)")
        .def("state_bytes",
             [](Context & self, std::optional<int32_t> seq_id) {
                 std::vector<uint8_t> data = without_gil([&] { return self.state_bytes(seq_id); });
                 return nb::bytes(reinterpret_cast<const char *>(data.data()), data.size());
             },
             nb::arg("seq_id") = nb::none(), R"(The whole state (or one sequence's) as bytes.)")
        .def("load_state_bytes",
             [](Context & self, nb::bytes data, std::optional<int32_t> seq_id) {
                 std::vector<uint8_t> buf(static_cast<const uint8_t *>(data.data()),
                                          static_cast<const uint8_t *>(data.data()) + data.size());
                 without_gil([&] { self.load_state_bytes(buf, seq_id); });
             },
             nb::arg("data"), nb::arg("seq_id") = nb::none())
        .def("save_state_file", &Context::save_state_file, nb::arg("path"), nb::arg("seq_id") = nb::none(),
             nb::call_guard<native_call>(), R"(Writes the state (and the known tokens) to a file.)")
        .def("load_state_file", &Context::load_state_file, nb::arg("path"), nb::arg("seq_id") = nb::none(),
             nb::call_guard<native_call>())
        .def("perf",
             [](const Context & self) {
                 PerfData d = without_gil([&] { return self.perf(); });
                 nb::dict out;
                 out["t_load_ms"] = d.t_load_ms;
                 out["t_prompt_eval_ms"] = d.t_prompt_eval_ms;
                 out["t_eval_ms"] = d.t_eval_ms;
                 out["n_prompt_eval"] = d.n_prompt_eval;
                 out["n_eval"] = d.n_eval;
                 out["n_graph_reused"] = d.n_graph_reused;
                 return out;
             },
             R"(llama.cpp's performance counters of this context.)")
        .def("perf_reset", &Context::perf_reset, nb::call_guard<native_call>())
        .def("set_lora", &Context::set_lora, nb::arg("adapters"), nb::call_guard<native_call>(),
             R"(Sets the LoRA adapters as (adapter, scale) pairs; an empty list removes them all.)")
        .def("set_control_vector",
             [](Context & self, std::optional<std::vector<float>> data, int32_t il_start, int32_t il_end) {
                 std::vector<float> values = data.value_or(std::vector<float>{});
                 without_gil([&] { self.set_control_vector(values, self.n_embd(), il_start, il_end); });
             },
             nb::arg("data"), nb::arg("il_start") = 1, nb::arg("il_end") = -1,
             R"(Applies a control vector (n_embd x n_layer floats from layer 1), or clears it with None.)");
}

}  // namespace llamabind
