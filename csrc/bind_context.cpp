#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
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

using Int = std::optional<nb::int_>;
using Float = std::optional<float>;
using Bool = std::optional<bool>;

static LogitsMode logits_mode(const std::string & name) {
    if (name == "last") return LogitsMode::Last;
    if (name == "all") return LogitsMode::All;
    if (name == "none") return LogitsMode::None;
    throw_value("[Context.decode] logits must be 'last', 'all' or 'none', not '" + name + "'");
}

void bind_context(nb::module_ & m) {
    nb::class_<LoraAdapter>(m, "LoraAdapter", R"(A LoRA adapter (GGUF) for a model, applied to contexts with Context.set_lora.)")
        .def("__init__",
             [](LoraAdapter * self, const Model & model, nb::str path_text) {
                 const std::string path = fs_path(path_text, "LoraAdapter", "path");
                 without_gil([&] { new (self) LoraAdapter(model, path); });
             },
             nb::arg("model"), nb::arg("path"))
        .def_prop_ro("path", [](const LoraAdapter & self) { return fs_text(self.path()); })
        .def_prop_ro("metadata", &LoraAdapter::metadata)
        .def("close", &LoraAdapter::close,
             R"(Makes this handle unusable; the weights are freed once no context uses them.)")
        .def_prop_ro("is_closed", &LoraAdapter::is_closed)
        .def("__enter__", [](nb::object self) { return self; })
        .def("__exit__", [](LoraAdapter & self, nb::args) { self.close(); }, nb::sig("def __exit__(self, *args: object) -> None"));

    nb::class_<Context>(m, "Context", R"(A llama.cpp context (KV cache, compute buffers) over a Model.

One thread uses a context at a time (an internal lock, waited on without the GIL). It keeps its
model's weights alive. ``close()`` frees it at once; later use raises HandleClosedError.)")
        .def("__init__",
             [](Context * self, const Model & model, Int n_ctx, Int n_batch, Int n_ubatch, Int n_seq_max, Int n_threads,
                Int n_threads_batch, std::optional<std::variant<bool, nb::int_>> flash_attn, Int type_k, Int type_v,
                Bool offload_kqv, Bool op_offload, Bool swa_full, Bool kv_unified, bool embeddings, bool no_perf,
                Int pooling_type, Int attention_type, Int rope_scaling_type, Float rope_freq_base, Float rope_freq_scale,
                Float yarn_ext_factor, Float yarn_attn_factor, Float yarn_beta_fast, Float yarn_beta_slow,
                Int yarn_orig_ctx, Int prompt_cache_mib) {
                 const char * op = "Context";
                 ContextOptions o;
                 o.n_ctx = int_arg<int64_t>(n_ctx, op, "n_ctx");
                 o.n_batch = int_arg<int64_t>(n_batch, op, "n_batch");
                 o.n_ubatch = int_arg<int64_t>(n_ubatch, op, "n_ubatch");
                 o.n_seq_max = int_arg<int64_t>(n_seq_max, op, "n_seq_max");
                 o.n_threads = int_arg<int32_t>(n_threads, op, "n_threads");
                 o.n_threads_batch = int_arg<int32_t>(n_threads_batch, op, "n_threads_batch");
                 if (flash_attn) {
                     if (auto * on = std::get_if<bool>(&*flash_attn)) o.flash_attn = *on ? 1 : 0;
                     else o.flash_attn = int_arg<int32_t>(std::get<nb::int_>(*flash_attn), op, "flash_attn");
                 }
                 o.type_k = int_arg<int32_t>(type_k, op, "type_k");
                 o.type_v = int_arg<int32_t>(type_v, op, "type_v");
                 o.offload_kqv = offload_kqv;
                 o.op_offload = op_offload;
                 o.swa_full = swa_full;
                 o.kv_unified = kv_unified;
                 o.embeddings = embeddings;
                 o.no_perf = no_perf;
                 o.pooling_type = int_arg<int32_t>(pooling_type, op, "pooling_type");
                 o.attention_type = int_arg<int32_t>(attention_type, op, "attention_type");
                 o.rope_scaling_type = int_arg<int32_t>(rope_scaling_type, op, "rope_scaling_type");
                 o.rope_freq_base = rope_freq_base;
                 o.rope_freq_scale = rope_freq_scale;
                 o.yarn_ext_factor = yarn_ext_factor;
                 o.yarn_attn_factor = yarn_attn_factor;
                 o.yarn_beta_fast = yarn_beta_fast;
                 o.yarn_beta_slow = yarn_beta_slow;
                 o.yarn_orig_ctx = int_arg<int64_t>(yarn_orig_ctx, op, "yarn_orig_ctx");
                 if (auto mib = int_arg<int64_t>(prompt_cache_mib, op, "prompt_cache_mib")) {
                     if (*mib < 0 || *mib > (int64_t{1} << 30)) {
                         throw_value("[Context] prompt_cache_mib must be in 0..2**30, got " + std::to_string(*mib));
                     }
                     o.prompt_cache_bytes = *mib * 1024 * 1024;
                 }
                 without_gil([&] { new (self) Context(model, o); });
             },
             nb::arg("model"), nb::kw_only(), nb::arg("n_ctx").none() = nb::none(), nb::arg("n_batch").none() = nb::none(),
             nb::arg("n_ubatch").none() = nb::none(), nb::arg("n_seq_max").none() = nb::none(),
             nb::arg("n_threads").none() = nb::none(), nb::arg("n_threads_batch").none() = nb::none(),
             nb::arg("flash_attn").none() = nb::none(), nb::arg("type_k").none() = nb::none(),
             nb::arg("type_v").none() = nb::none(), nb::arg("offload_kqv").none() = nb::none(),
             nb::arg("op_offload").none() = nb::none(), nb::arg("swa_full").none() = nb::none(),
             nb::arg("kv_unified").none() = nb::none(), nb::arg("embeddings") = false, nb::arg("no_perf") = false,
             nb::arg("pooling_type").none() = nb::none(), nb::arg("attention_type").none() = nb::none(),
             nb::arg("rope_scaling_type").none() = nb::none(), nb::arg("rope_freq_base").none() = nb::none(),
             nb::arg("rope_freq_scale").none() = nb::none(), nb::arg("yarn_ext_factor").none() = nb::none(),
             nb::arg("yarn_attn_factor").none() = nb::none(), nb::arg("yarn_beta_fast").none() = nb::none(),
             nb::arg("yarn_beta_slow").none() = nb::none(), nb::arg("yarn_orig_ctx").none() = nb::none(),
             nb::arg("prompt_cache_mib").none() = nb::none(),
             R"(Creates a context.

Args:
    model: The model; vocab-only models cannot have a context (ContextError).
    n_ctx ... yarn_orig_ctx: keyword-only llama_context_params, None keeping llama.cpp's
        default: n_ctx (0: the model's training context), n_batch, n_ubatch, n_seq_max,
        n_threads, n_threads_batch (at most 4 per CPU core), flash_attn (-1 auto, 0/False off,
        1/True on), type_k, type_v (KV cache ggml types: f32 0, f16 1, bf16 30, q8_0 8, q4_0 2,
        q4_1 3, iq4_nl 20, q5_0 6, q5_1 7), offload_kqv, op_offload, swa_full, kv_unified,
        embeddings, no_perf, pooling_type (-1 model's, 0 none, 1 mean, 2 cls, 3 last, 4 rank),
        attention_type (-1, 0 causal, 1 non-causal), rope_scaling_type, rope_freq_base,
        rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow
        (finite), yarn_orig_ctx.
    prompt_cache_mib: Host memory (MiB) for the batch loop's prompt cache (n_seq_max > 1):
        a sequence's cache that a new prompt would overwrite is kept there, and a later prompt
        that shares more with it than with any sequence restores it. None or 0: no cache.

Raises:
    ValueError: n_ctx < 0 or absurd, n_batch > n_ctx, n_ubatch > n_batch, bad enums, thread
        counts past the cap, KV cache types ggml cannot use, non-finite floats, ints out of range.
    ContextError: llama.cpp could not create it (e.g. out of memory).)")
        .def("close", &Context::close, nb::call_guard<native_call>(), R"(Frees the context now (waits for a call in flight).)")
        .def_prop_ro("is_closed", &Context::is_closed)
        .def("__enter__", [](nb::object self) { return self; })
        .def("__exit__", [](Context & self, nb::args) { without_gil([&] { self.close(); }); }, nb::sig("def __exit__(self, *args: object) -> None"))
        .def_prop_ro("n_ctx", &Context::n_ctx, nb::call_guard<native_call>())
        .def_prop_ro("n_batch", &Context::n_batch, nb::call_guard<native_call>())
        .def_prop_ro("n_ubatch", &Context::n_ubatch, nb::call_guard<native_call>())
        .def_prop_ro("n_seq_max", &Context::n_seq_max, nb::call_guard<native_call>())
        .def_prop_ro("n_threads", &Context::n_threads, nb::call_guard<native_call>())
        .def_prop_ro("n_vocab", &Context::n_vocab)
        .def_prop_ro("n_ctx_seq", &Context::n_ctx_seq,
                     "Tokens one sequence may hold: n_ctx / n_seq_max (with kv_unified too: each sequence gets its share).")
        .def_prop_ro("n_embd", &Context::n_embd)
        .def_prop_ro("pooling_type", &Context::pooling_type, nb::call_guard<native_call>())
        .def("set_n_threads", &Context::set_n_threads, nb::arg("n_threads"), nb::arg("n_threads_batch"),
             nb::call_guard<native_call>())
        .def("decode",
             [](Context & self, TokenSequence tokens, int32_t seq_id, nb::str logits) {
                 LogitsMode mode = logits_mode(utf8(logits, "Context.decode", "logits"));
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
        .def("prefix_lengths",
             [](const Context & self, TokenSequence tokens) {
                 std::vector<int32_t> ids = tokens.ids("Context.prefix_lengths");
                 return without_gil([&] { return self.prefix_lengths(ids); });
             },
             nb::arg("tokens"),
             R"(For each sequence id: how many of ``tokens`` its cache holds as a prefix (one hold of
the lock, where cached_tokens takes one per sequence).)")
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
        .def("save_state_file",
             [](Context & self, nb::str path, std::optional<int32_t> seq_id) {
                 const std::string bytes = fs_path(path, "Context.save_state_file", "path");
                 native_call guard;
                 self.save_state_file(bytes, seq_id);
             },
             nb::arg("path"), nb::arg("seq_id") = nb::none(), R"(Writes the state (and the known tokens) to a file.)")
        .def("load_state_file",
             [](Context & self, nb::str path, std::optional<int32_t> seq_id) {
                 const std::string bytes = fs_path(path, "Context.load_state_file", "path");
                 native_call guard;
                 self.load_state_file(bytes, seq_id);
             },
             nb::arg("path"), nb::arg("seq_id") = nb::none())
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
             nb::sig("def perf(self) -> dict[str, float | int]"),
             R"(llama.cpp's performance counters of this context.)")
        .def("batch_stats",
             [](Context & self) {
                 const std::array<int64_t, 7> s = without_gil([&] { return self.batch_stats(); });
                 nb::dict out;
                 const char * names[] = {"n_steps", "n_tokens", "n_sampled", "prompt_cache_entries",
                                         "prompt_cache_bytes", "prompt_cache_saved", "prompt_cache_restored"};
                 for (size_t i = 0; i < s.size(); ++i) out[names[i]] = s[i];
                 return out;
             },
             nb::sig("def batch_stats(self) -> dict[str, int]"),
             R"(The batch loop's counters (contexts with n_seq_max > 1): decode steps, tokens decoded,
and tokens sampled by generating sequences (n_sampled / n_steps is the mean batch of
generations per step); then its prompt cache: entries and bytes held, states saved and
restored.)")
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
