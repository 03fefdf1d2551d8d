#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bind_common.h"
#include "generator.h"

namespace llamabind {

void bind_generator(nb::module_ & m) {
    nb::class_<Generator>(m, "Generator", R"(The generate loop as a Python iterator of (token_id, piece_bytes).

Each ``next()`` releases the GIL and returns one token. The first step evaluates the prompt,
reusing the prefix the context already holds. Decode-ahead: once a token is handed out, a
thread of the generator decodes it and samples the next while Python handles it, so Python's
time per token overlaps the decode (the sampler has accepted one token more than was handed
out). A newer generator on the same sequence supersedes this one: it finishes "cancelled".
It stops at an end-of-generation token ("eog"), at max_tokens ("length"), when the context is
full ("context") or after cancel() ("cancelled"): see ``finish_reason``.)")
        .def("__iter__", [](nb::object self) { return self; }, nb::sig("def __iter__(self) -> Generator"))
        .def("__next__",
             [](Generator & self) {
                 std::optional<GeneratedToken> token = without_gil([&] { return self.next(check_signals); });
                 if (!token) throw nb::stop_iteration();
                 return nb::make_tuple(token->id, nb::bytes(token->piece.data(), token->piece.size()));
             },
             nb::sig("def __next__(self) -> tuple[int, bytes]"))
        .def("cancel", &Generator::cancel,
             R"(Stops the generation from any thread; a decode in flight is aborted. The context stays usable.)")
        .def("close", [](Generator & self) { without_gil([&] { self.close(); }); },
             R"(Cancels and finishes the generation (waits for a decode in flight to stop).)")
        .def("__enter__", [](nb::object self) { return self; })
        .def("__exit__", [](Generator & self, nb::args) { without_gil([&] { self.close(); }); }, nb::sig("def __exit__(self, *args: object) -> None"))
        .def_prop_ro("finish_reason",
                     [](const Generator & self) -> nb::object {
                         if (!self.is_finished()) return nb::none();
                         return nb::str(self.finish_reason().c_str());
                     },
                     R"(None while running; then "eog", "length", "context", "cancelled" or "error".)")
        .def_prop_ro("n_prompt_tokens", &Generator::n_prompt_tokens)
        .def_prop_ro("n_reused_tokens", &Generator::n_reused_tokens,
                     R"(Prompt tokens found already in the context and not evaluated again.)")
        .def_prop_ro("n_generated_tokens", &Generator::n_generated_tokens)
        .def_prop_ro("t_prompt_eval_ms", &Generator::t_prompt_eval_ms,
                     R"(Milliseconds to evaluate the prompt and sample the first token.)")
        .def_prop_ro("t_generation_ms", &Generator::t_generation_ms,
                     R"(Milliseconds spent on the tokens after the first.)")
        .def_prop_ro("token_ids", &Generator::token_ids, R"(The ids generated so far.)")
        .def_prop_ro("sampling_backend", &Generator::sampling_backend, nb::call_guard<nb::gil_scoped_release>(),
                     R"(Where the latest token was picked: "backend" inside the compute graph
(llama.cpp's backend sampling: only the picked token is read back), "cpu" from the logits on
the CPU. Before the first token it says where the first will be picked; after the end it
keeps the path of the last one.)")
        .def_prop_ro("last_logprobs",
                     [](const Generator & self) -> nb::object {
                         const std::optional<TokenLogprobs> & lp = self.last_logprobs();
                         if (!lp) return nb::none();
                         nb::list top;
                         for (const auto & [token, logprob] : lp->top) top.append(nb::make_tuple(token, logprob));
                         return nb::make_tuple(lp->logprob, top);
                     },
                     nb::sig("def last_logprobs(self) -> tuple[float, list[tuple[int, float]]] | None"),
                     R"(The latest token's log-probability under the model (from the raw logits, before
the sampler) and the n_logprobs most likely tokens with theirs, most likely first; None unless
generate() was given n_logprobs >= 0.)")
        .def_prop_ro("n_graph_sampled_tokens", &Generator::n_graph_sampled_tokens,
                     R"(How many of the tokens (the end-of-generation token included) were picked inside
the compute graph; the rest were sampled on the CPU.)");

    nb::class_<Context> context = nb::borrow<nb::class_<Context>>(m.attr("Context"));
    context.def(
        "generate",
        [](std::shared_ptr<Context> self, TokenSequence prompt_tokens, std::shared_ptr<Sampler> sampler,
           int32_t max_tokens, int32_t seq_id, bool ignore_eog, bool render_special,
           std::vector<int32_t> render_special_tokens, std::optional<bool> backend_sampling, bool decode_ahead,
           int32_t n_logprobs) {
            GenerateOptions options{max_tokens,   seq_id, ignore_eog, render_special, std::move(render_special_tokens),
                                    backend_sampling, decode_ahead, n_logprobs};
            std::vector<int32_t> prompt = prompt_tokens.ids("Context.generate");  // bytes refused, ranges named
            return without_gil([&] {
                return std::make_shared<Generator>(self, sampler, std::move(prompt), options);
            });
        },
        nb::arg("prompt_tokens"), nb::arg("sampler"), nb::arg("max_tokens") = -1, nb::arg("seq_id") = 0,
        nb::arg("ignore_eog") = false, nb::arg("render_special") = false,
        nb::arg("render_special_tokens").sig("()") = std::vector<int32_t>(),
        nb::arg("backend_sampling") = nb::none(), nb::arg("decode_ahead") = true, nb::arg("n_logprobs") = -1,
        R"(Starts a generation; see Generator.

Args:
    prompt_tokens: The whole prompt; a prefix the context already holds is reused.
    sampler: The sampler chain (its state advances with each token).
    max_tokens: The most tokens to generate; -1 for no limit but the context.
    seq_id: The sequence to generate in.
    ignore_eog: Keep going past end-of-generation tokens.
    render_special: Render control tokens into the pieces.
    render_special_tokens: Ids of control tokens rendered into the pieces even when
        render_special is False: a chat format's preserved tokens (e.g. ``<tool_call>``,
        see ChatParams.preserved_token_ids) that its parser must see.
    backend_sampling: Where the chain runs. None (default): inside the compute graph when
        it can and the logits are on a GPU (Model.output_on_gpu; llama.cpp backend sampling:
        only the token is read back, not the logits), else on the CPU. True: in the graph,
        or ValueError. False: always on the CPU.
        Chains that can run in the graph hold only logit bias, top-k, top-p, min-p,
        temperature (also dynamic), greedy and dist; grammars, penalties, DRY, typical,
        XTC, top-n-sigma and mirostat sample on the CPU. See Generator.sampling_backend.
    decode_ahead: Decode each token handed out (and sample the next) on the generator's
        thread while Python handles it (default). False: every step runs inside next(), so
        the sampler has accepted exactly the tokens handed out.
    n_logprobs: -1 (default): none; 0: each token's log-probability (see
        Generator.last_logprobs); k <= 100: also the k most likely tokens'. Sampling stays on
        the CPU then.

Raises:
    ContextOverflowError: the prompt is longer than the context.
    ValueError: backend_sampling is True and the chain cannot run in the graph.)");
}

}  // namespace llamabind
