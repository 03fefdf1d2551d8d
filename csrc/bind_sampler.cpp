#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bind_common.h"
#include "context.h"
#include "grammar.h"
#include "sampler.h"

namespace llamabind {

static SamplerParams sampler_params(nb::kwargs & kw) {
    SamplerParams p;
    auto set = [&](const char * name, auto & field) {
        using T = std::decay_t<decltype(field)>;
        if (auto v = take_kwarg<T>(kw, name, "Sampler")) field = *v;
    };
    set("seed", p.seed);
    set("temperature", p.temperature);
    set("dynatemp_range", p.dynatemp_range);
    set("dynatemp_exponent", p.dynatemp_exponent);
    set("top_k", p.top_k);
    set("top_p", p.top_p);
    set("min_p", p.min_p);
    set("typical_p", p.typical_p);
    set("top_n_sigma", p.top_n_sigma);
    set("xtc_probability", p.xtc_probability);
    set("xtc_threshold", p.xtc_threshold);
    set("penalty_last_n", p.penalty_last_n);
    set("repeat_penalty", p.repeat_penalty);
    set("frequency_penalty", p.frequency_penalty);
    set("presence_penalty", p.presence_penalty);
    set("dry_multiplier", p.dry_multiplier);
    set("dry_base", p.dry_base);
    set("dry_allowed_length", p.dry_allowed_length);
    set("dry_penalty_last_n", p.dry_penalty_last_n);
    set("dry_sequence_breakers", p.dry_sequence_breakers);
    set("mirostat", p.mirostat);
    set("mirostat_tau", p.mirostat_tau);
    set("mirostat_eta", p.mirostat_eta);
    set("greedy", p.greedy);
    if (auto bias = take_kwarg<nb::dict>(kw, "logit_bias", "Sampler")) {
        for (auto [token, value] : *bias) {
            const int32_t id = token_ids(nb::make_tuple(token), "Sampler", "logit_bias key")[0];
            try {
                p.logit_bias[id] = nb::cast<float>(value);
            } catch (const nb::cast_error &) {
                raise_bad_argument(value, "Sampler", "logit_bias value");
            }
        }
    }
    set("grammar", p.grammar);
    set("grammar_root", p.grammar_root);
    set("grammar_lazy", p.grammar_lazy);
    set("trigger_words", p.trigger_words);
    set("trigger_patterns", p.trigger_patterns);
    set("trigger_patterns_full", p.trigger_patterns_full);
    set("grammar_prefill", p.grammar_prefill);
    if (auto tokens = take_kwarg<nb::object>(kw, "trigger_tokens", "Sampler")) {
        p.trigger_tokens = token_ids(*tokens, "Sampler", "trigger_tokens");
    }
    set("min_keep", p.min_keep);
    reject_unknown_kwargs(kw, "Sampler");
    return p;
}

void bind_sampler(nb::module_ & m) {
    nb::class_<Sampler>(m, "Sampler", R"(A llama.cpp sampler chain, optionally constrained by a GBNF grammar.)")
        .def(nb::new_([](const Model & model, nb::kwargs kw) {
                 SamplerParams params = sampler_params(kw);
                 return without_gil([&] { return std::make_shared<Sampler>(model, params); });
             }),
             nb::arg("model"), nb::arg("kwargs"),
             R"(Builds the chain: logit bias, grammar, penalties, DRY, top-n-sigma, top-k, typical-p,
top-p, min-p, XTC, temperature, dist; greedy when temperature <= 0 or greedy=True; mirostat
1/2 after temperature.

Keyword args (llama.cpp defaults): seed (random), temperature (0.8), dynatemp_range (0),
dynatemp_exponent (1), top_k (40), top_p (0.95), min_p (0.05), typical_p (1), top_n_sigma (-1),
xtc_probability (0), xtc_threshold (0.1), penalty_last_n (64), repeat_penalty (1),
frequency_penalty (0), presence_penalty (0), dry_multiplier (0: off), dry_base (1.75),
dry_allowed_length (2), dry_penalty_last_n (-1), dry_sequence_breakers, mirostat (0),
mirostat_tau (5), mirostat_eta (0.1), greedy (False), logit_bias ({token: bias}), grammar
(GBNF text), grammar_root ("root"), grammar_lazy (False), trigger_words, trigger_patterns
(regexes found anywhere in the generated text), trigger_patterns_full (regexes that must match
the whole text generated so far), trigger_tokens, grammar_prefill (text a non-lazy grammar
accepts before the first token: a chat format's generation prompt, see
ChatParams.sampler_kwargs), min_keep (0).

A lazy grammar constrains nothing until a trigger appears, then applies from the trigger on.

Raises:
    GrammarError: the grammar does not parse (llama.cpp's message) or a trigger pattern is invalid.
    ValueError: out-of-range parameters.)")
        .def("sample",
             [](Sampler & self, Context & context, int32_t i) {
                 return without_gil([&] {
                     auto guard = context.lock("Sampler.sample");
                     return self.sample(context.raw("Sampler.sample"), i);
                 });
             },
             nb::arg("context"), nb::arg("i") = -1,
             R"(Samples a token from output i of the context's last decode, and accepts it.)")
        .def("accept",
             [](Sampler & self, int64_t token) {
                 const int32_t id = token_id(token, "Sampler.accept");
                 without_gil([&] { self.accept(id); });
             },
             nb::arg("token"),
             R"(Feeds a token to the chain's state (penalties, grammar) without sampling.)")
        .def("reset", &Sampler::reset, nb::call_guard<native_call>())
        .def("clone", &Sampler::clone, nb::call_guard<native_call>(), R"(An independent copy, state included.)")
        .def("close", &Sampler::close)
        .def_prop_ro("is_closed", &Sampler::is_closed)
        .def_prop_ro("names", &Sampler::names, R"(The names of the samplers in the chain, in order.)")
        .def_prop_ro("is_greedy", [](const Sampler & s) { return s.params().is_greedy(); })
        .def_prop_ro("can_run_in_graph", &Sampler::can_run_in_graph,
                     R"(Whether the whole chain can run inside the compute graph (backend sampling): true
when it holds no grammar and only logit bias, top-k, top-p, min-p, temperature (also
dynamic), greedy and dist.)")
        .def_prop_ro("has_grammar", [](const Sampler & s) { return !s.params().grammar.empty(); })
        .def("__enter__", [](nb::object self) { return self; })
        .def("__exit__", [](Sampler & self, nb::args) { self.close(); });

    m.def("json_schema_to_grammar",
          [](nb::str schema_json) {
              std::string text = utf8(schema_json, "json_schema_to_grammar", "schema_json");
              return without_gil([&] { return json_schema_to_grammar(text); });
          },
          nb::arg("schema_json"),
          R"(Converts a JSON schema (JSON text) to a GBNF grammar with llama.cpp's converter.

Raises:
    GrammarError: the text is not JSON or the schema cannot be converted.)");
}

}  // namespace llamabind
