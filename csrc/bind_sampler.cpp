#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <charconv>
#include <cstdlib>

#include "bind_common.h"
#include "context.h"
#include "grammar.h"
#include "sampler.h"

namespace llamabind {

using Int = std::optional<nb::int_>;
using Float = std::optional<float>;
using Text = std::optional<nb::str>;
using Texts = std::optional<std::vector<nb::str>>;

template <class T, class Arg>
void set(T & field, const Arg & value) {
    if (value) field = *value;
}

// A float default as it is written (0.8, not 0.800000011920929) for the signature in the stubs.
double as_written(float value) {
    char text[32];
    auto end = std::to_chars(text, text + sizeof(text), value).ptr;
    return std::strtod(std::string(text, end).c_str(), nullptr);
}

void bind_sampler(nb::module_ & m) {
    const SamplerParams defaults;  // llama.cpp's, defined once in sampler.h
    nb::class_<Sampler>(m, "Sampler", R"(A llama.cpp sampler chain, optionally constrained by a GBNF grammar.)")
        .def(nb::new_([](const Model & model, Int seed, Float temperature, Float dynatemp_range, Float dynatemp_exponent,
                         Int top_k, Float top_p, Float min_p, Float typical_p, Float top_n_sigma, Float xtc_probability,
                         Float xtc_threshold, Int penalty_last_n, Float repeat_penalty, Float frequency_penalty,
                         Float presence_penalty, Float dry_multiplier, Float dry_base, Int dry_allowed_length,
                         Int dry_penalty_last_n, Texts dry_sequence_breakers, Int mirostat, Float mirostat_tau,
                         Float mirostat_eta, std::optional<bool> greedy, std::optional<LogitBiasArg> bias, Text grammar,
                         Text grammar_root, std::optional<bool> grammar_lazy, Texts trigger_words, Texts trigger_patterns,
                         Texts trigger_patterns_full, std::optional<TokenSequence> trigger_tokens, Text grammar_prefill,
                         Int min_keep) {
                 const char * op = "Sampler";
                 SamplerParams p;
                 set(p.seed, int_arg<uint32_t>(seed, op, "seed"));
                 set(p.temperature, temperature);
                 set(p.dynatemp_range, dynatemp_range);
                 set(p.dynatemp_exponent, dynatemp_exponent);
                 set(p.top_k, int_arg<int32_t>(top_k, op, "top_k"));
                 set(p.top_p, top_p);
                 set(p.min_p, min_p);
                 set(p.typical_p, typical_p);
                 set(p.top_n_sigma, top_n_sigma);
                 set(p.xtc_probability, xtc_probability);
                 set(p.xtc_threshold, xtc_threshold);
                 set(p.penalty_last_n, int_arg<int32_t>(penalty_last_n, op, "penalty_last_n"));
                 set(p.repeat_penalty, repeat_penalty);
                 set(p.frequency_penalty, frequency_penalty);
                 set(p.presence_penalty, presence_penalty);
                 set(p.dry_multiplier, dry_multiplier);
                 set(p.dry_base, dry_base);
                 set(p.dry_allowed_length, int_arg<int32_t>(dry_allowed_length, op, "dry_allowed_length"));
                 set(p.dry_penalty_last_n, int_arg<int32_t>(dry_penalty_last_n, op, "dry_penalty_last_n"));
                 if (dry_sequence_breakers) p.dry_sequence_breakers = utf8_list(dry_sequence_breakers, op, "dry_sequence_breakers");
                 set(p.mirostat, int_arg<int32_t>(mirostat, op, "mirostat"));
                 set(p.mirostat_tau, mirostat_tau);
                 set(p.mirostat_eta, mirostat_eta);
                 set(p.greedy, greedy);
                 if (bias) p.logit_bias = logit_bias(*bias, op);
                 if (grammar) p.grammar = utf8(*grammar, op, "grammar");
                 if (grammar_root) p.grammar_root = utf8(*grammar_root, op, "grammar_root");
                 set(p.grammar_lazy, grammar_lazy);
                 if (trigger_words) p.trigger_words = utf8_list(trigger_words, op, "trigger_words");
                 if (trigger_patterns) p.trigger_patterns = utf8_list(trigger_patterns, op, "trigger_patterns");
                 if (trigger_patterns_full) p.trigger_patterns_full = utf8_list(trigger_patterns_full, op, "trigger_patterns_full");
                 if (trigger_tokens) p.trigger_tokens = token_ids(trigger_tokens->object, op, "trigger_tokens");
                 if (grammar_prefill) p.grammar_prefill = utf8(*grammar_prefill, op, "grammar_prefill");
                 set(p.min_keep, int_arg<size_t>(min_keep, op, "min_keep"));
                 return without_gil([&] { return std::make_shared<Sampler>(model, p); });
             }),
             nb::arg("model"), nb::kw_only(), nb::arg("seed").none() = nb::none(),
             nb::arg("temperature").none() = as_written(defaults.temperature),
             nb::arg("dynatemp_range").none() = as_written(defaults.dynatemp_range),
             nb::arg("dynatemp_exponent").none() = as_written(defaults.dynatemp_exponent),
             nb::arg("top_k").none() = defaults.top_k, nb::arg("top_p").none() = as_written(defaults.top_p),
             nb::arg("min_p").none() = as_written(defaults.min_p), nb::arg("typical_p").none() = as_written(defaults.typical_p),
             nb::arg("top_n_sigma").none() = as_written(defaults.top_n_sigma),
             nb::arg("xtc_probability").none() = as_written(defaults.xtc_probability),
             nb::arg("xtc_threshold").none() = as_written(defaults.xtc_threshold),
             nb::arg("penalty_last_n").none() = defaults.penalty_last_n,
             nb::arg("repeat_penalty").none() = as_written(defaults.repeat_penalty),
             nb::arg("frequency_penalty").none() = as_written(defaults.frequency_penalty),
             nb::arg("presence_penalty").none() = as_written(defaults.presence_penalty),
             nb::arg("dry_multiplier").none() = as_written(defaults.dry_multiplier), nb::arg("dry_base").none() = as_written(defaults.dry_base),
             nb::arg("dry_allowed_length").none() = defaults.dry_allowed_length,
             nb::arg("dry_penalty_last_n").none() = defaults.dry_penalty_last_n,
             nb::arg("dry_sequence_breakers").none() = defaults.dry_sequence_breakers,
             nb::arg("mirostat").none() = defaults.mirostat, nb::arg("mirostat_tau").none() = as_written(defaults.mirostat_tau),
             nb::arg("mirostat_eta").none() = as_written(defaults.mirostat_eta), nb::arg("greedy").none() = defaults.greedy,
             nb::arg("logit_bias").none() = nb::none(), nb::arg("grammar").none() = nb::none(),
             nb::arg("grammar_root").none() = defaults.grammar_root, nb::arg("grammar_lazy").none() = defaults.grammar_lazy,
             nb::arg("trigger_words").none() = nb::none(), nb::arg("trigger_patterns").none() = nb::none(),
             nb::arg("trigger_patterns_full").none() = nb::none(), nb::arg("trigger_tokens").none() = nb::none(),
             nb::arg("grammar_prefill").none() = nb::none(), nb::arg("min_keep").none() = defaults.min_keep,
             R"(Builds the chain: logit bias, grammar, penalties, DRY, top-n-sigma, top-k, typical-p,
top-p, min-p, XTC, temperature, dist; greedy when temperature <= 0 or greedy=True; mirostat
1/2 after temperature.

Keyword-only args (llama.cpp defaults, as in the signature; None keeps the default): seed
(None: random), temperature, dynatemp_range, dynatemp_exponent, top_k, top_p, min_p,
typical_p, top_n_sigma, xtc_probability, xtc_threshold, penalty_last_n (-1: the whole
context, i.e. the model's training context), repeat_penalty, frequency_penalty,
presence_penalty, dry_multiplier (0: off), dry_base, dry_allowed_length, dry_penalty_last_n
(-1: the whole context), dry_sequence_breakers, mirostat, mirostat_tau, mirostat_eta, greedy,
logit_bias ({token: bias}; -inf bans a token, NaN is refused), grammar (GBNF text, groups
nested at most 256 deep, at most 4 MiB), grammar_root, grammar_lazy, trigger_words,
trigger_patterns (regexes found anywhere in the generated text), trigger_patterns_full
(regexes that must match the whole text generated so far), trigger_tokens, grammar_prefill
(text a non-lazy grammar accepts before the first token: a chat format's generation prompt,
see ChatParams.sampler_kwargs), min_keep. Floats must be finite. Trigger patterns (at most
1024 bytes, no NUL) may not repeat a group that itself repeats, like (a+)+, nor repeat a part that
can match one text in several ways, like (a|a)* or (a|ab)*: std::regex backtracks.

A lazy grammar constrains nothing until a trigger appears, then applies from the trigger on.

Raises:
    GrammarError: the grammar does not parse (llama.cpp's message), is past the limits, or a
        trigger pattern is invalid or may backtrack exponentially.
    ValueError: out-of-range or non-finite parameters.
    InvalidTextError: a text argument holds lone surrogates.)")
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
        .def("__exit__", [](Sampler & self, nb::args) { self.close(); }, nb::sig("def __exit__(self, *args: object) -> None"));

    m.def("json_schema_to_grammar",
          [](nb::str schema_json) {
              std::string text = utf8(schema_json, "json_schema_to_grammar", "schema_json");
              return without_gil([&] { return json_schema_to_grammar(text); });
          },
          nb::arg("schema_json"),
          R"(Converts a JSON schema (JSON text) to a GBNF grammar with llama.cpp's converter.

Limits keep the converter from exhausting the stack or running for minutes: at most 128 JSON
levels, 512 properties per object, and a grammar of at most 4 MiB.

Raises:
    GrammarError: the text is not JSON, the schema is past the limits or cannot be converted.
    InvalidTextError: the text holds lone surrogates.)");
}

}  // namespace llamabind
