#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bind_common.h"
#include "chat.h"

namespace llamabind {

// Generated text may hold bytes that are not UTF-8: they become U+FFFD rather than an error.
static nb::str text(const std::string & s) {
    return nb::steal<nb::str>(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

static nb::dict message_dict(const ChatMessage & m) {
    nb::dict d;
    d["role"] = text(m.role);
    d["content"] = text(m.content);
    d["reasoning_content"] = text(m.reasoning_content);
    nb::list calls;
    for (const auto & tc : m.tool_calls) {
        nb::dict call;
        call["name"] = text(tc.name);
        call["arguments"] = text(tc.arguments);
        call["id"] = text(tc.id);
        calls.append(call);
    }
    d["tool_calls"] = calls;
    return d;
}

static nb::list delta_list(const std::vector<ChatDelta> & deltas) {
    nb::list out;
    for (const auto & delta : deltas) {
        nb::dict d;
        if (!delta.content_delta.empty()) d["content_delta"] = text(delta.content_delta);
        if (!delta.reasoning_content_delta.empty()) d["reasoning_content_delta"] = text(delta.reasoning_content_delta);
        if (delta.tool_call_index) {
            d["tool_call_index"] = *delta.tool_call_index;
            if (!delta.tool_call_id.empty()) d["tool_call_id"] = text(delta.tool_call_id);
            if (!delta.tool_call_name.empty()) d["tool_call_name"] = text(delta.tool_call_name);
            if (!delta.tool_call_arguments_delta.empty()) {
                d["tool_call_arguments_delta"] = text(delta.tool_call_arguments_delta);
            }
        }
        if (d.size() > 0) out.append(d);
    }
    return out;
}

using OptText = std::optional<nb::str>;

static std::optional<std::string> opt_utf8(const OptText & text, const char * where, const char * name) {
    if (!text) return std::nullopt;
    return utf8(*text, where, name);
}

static const llama_vocab * model_vocab(const Model & model, const char * operation) {
    return model.vocab(operation);
}

void bind_chat(nb::module_ & m) {
    silence_common_log();
    nb::class_<ChatParams>(m, "ChatParams", R"(A rendered chat prompt and what generating and parsing its reply need.

Made by ChatTemplates.apply(). The format's grammar (tool calls, structured output) goes to a
Sampler through ``sampler_kwargs(model)``, its preserved tokens to ``Context.generate`` through
``preserved_token_ids(model)``, ``additional_stops`` to the stop strings, and the whole object to
ChatParser, which holds the format's parser.)")
        .def_ro("prompt", &ChatParams::prompt,
                R"(The rendered prompt text. Tokenize it with parse_special=True and add_special=True: when
the model adds a BOS token itself, llama.cpp leaves it out of the text.)")
        .def_ro("format", &ChatParams::format,
                R"(llama.cpp's name of the parser kind: "Content-only", "peg-simple", "peg-native", "peg-gemma4", ...)")
        .def_ro("grammar", &ChatParams::grammar,
                R"(GBNF constraining the reply (tool calls, json_schema, or the grammar given to apply); "" if none.)")
        .def_ro("grammar_lazy", &ChatParams::grammar_lazy,
                R"(True when the grammar applies only once a trigger appears (tool_choice "auto").)")
        .def_prop_ro(
            "grammar_triggers",
            [](const ChatParams & p) {
                nb::list out;
                for (const auto & t : p.grammar_triggers) out.append(nb::make_tuple(t.type, t.value, t.token));
                return out;
            },
            nb::sig("def grammar_triggers(self) -> list[tuple[str, str, int]]"),
            R"((type, value, token) triples: type "word", "pattern" (regex found anywhere),
"pattern_full" (regex matching the whole text so far) or "token" (token is the id, else -1).)")
        .def_ro("preserved_tokens", &ChatParams::preserved_tokens,
                R"(Control tokens of the format that must reach the parser as text (e.g. "<tool_call>").)")
        .def_ro("additional_stops", &ChatParams::additional_stops, R"(Stop strings the format adds.)")
        .def_ro("generation_prompt", &ChatParams::generation_prompt,
                R"(What add_generation_prompt appended to the prompt (e.g. "<|im_start|>assistant\n");
the parser reads the reply as if it followed this text.)")
        .def_ro("supports_thinking", &ChatParams::supports_thinking,
                R"(Whether the format has a reasoning block (thinking_start_tag .. thinking_end_tags).)")
        .def_ro("thinking_start_tag", &ChatParams::thinking_start_tag,
                R"(The tag that opens a reasoning block (e.g. "<think>"); "" when none.)")
        .def_ro("thinking_end_tags", &ChatParams::thinking_end_tags, R"(The tags that close a reasoning block.)")
        .def_ro("reasoning_format", &ChatParams::reasoning_format,
                R"(The reasoning_format given to apply ("none": reasoning stays in content).)")
        .def(
            "sampler_kwargs",
            [](const ChatParams & p, const Model & model) {
                ChatSamplerGrammar g = chat_sampler_grammar(p, model_vocab(model, "ChatParams.sampler_kwargs"));
                nb::dict d;
                if (g.grammar.empty()) return d;
                d["grammar"] = g.grammar;
                d["grammar_lazy"] = g.grammar_lazy;
                d["trigger_words"] = nb::cast(g.trigger_words);
                d["trigger_patterns"] = nb::cast(g.trigger_patterns);
                d["trigger_patterns_full"] = nb::cast(g.trigger_patterns_full);
                d["trigger_tokens"] = nb::cast(g.trigger_tokens);
                if (!g.grammar_prefill.empty()) d["grammar_prefill"] = g.grammar_prefill;
                return d;
            },
            nb::arg("model"), nb::sig("def sampler_kwargs(self, model: Model) -> dict[str, object]"),
            R"(The grammar as keyword arguments for Sampler (empty when there is no grammar).

As llama-server: a trigger word that is one token of the model becomes a trigger token, and a
grammar that is not lazy gets the generation prompt as ``grammar_prefill``.

Args:
    model: The model that will generate (its vocabulary).

Returns:
    ``grammar``, ``grammar_lazy``, ``trigger_words``, ``trigger_patterns``,
    ``trigger_patterns_full``, ``trigger_tokens`` and, when needed, ``grammar_prefill``.)")
        .def(
            "preserved_token_ids",
            [](const ChatParams & p, const Model & model) {
                return chat_preserved_token_ids(p, model_vocab(model, "ChatParams.preserved_token_ids"));
            },
            nb::arg("model"),
            R"(The ids of preserved_tokens that are single tokens of model, sorted: pass them to
``Context.generate(render_special_tokens=...)``.)")
        .def("__repr__", [](const ChatParams & p) {
            return "<ChatParams format=" + p.format + " prompt_chars=" + std::to_string(p.prompt.size()) +
                   " grammar=" + (p.grammar.empty() ? "none" : p.grammar_lazy ? "lazy" : "strict") + ">";
        });

    nb::class_<ChatTemplates>(m, "ChatTemplates", R"(A chat template rendered by llama.cpp's own Jinja engine (common/chat).

It detects the template's format (tool-call syntax, reasoning tags), renders prompts, and builds
the format's grammar and parser. Templates in model files are untrusted: llama.cpp's engine runs
no Python, and llamabind bounds what could exhaust the stack (macro recursion, nesting depth).)")
        .def(
            "__init__",
            [](ChatTemplates * self, const Model * model, OptText template_text, OptText bos_token, OptText eos_token) {
                const char * op = "ChatTemplates";
                std::optional<std::string> source = opt_utf8(template_text, op, "template");
                std::optional<std::string> bos = opt_utf8(bos_token, op, "bos_token");
                std::optional<std::string> eos = opt_utf8(eos_token, op, "eos_token");
                native_call guard;
                new (self) ChatTemplates(model, source, bos, eos);
            },
            nb::arg("model").none() = nb::none(), nb::kw_only(), nb::arg("template").none() = nb::none(),
            nb::arg("bos_token").none() = nb::none(), nb::arg("eos_token").none() = nb::none(),
            R"(Parses the model's chat template, or the given one.

Args:
    model: Supplies the template (``tokenizer.chat_template`` and its ``tool_use`` variant)
        unless ``template`` is given, and the BOS/EOS token texts. A model without a template
        gets ChatML (see has_explicit_template).
    template: Jinja template text overriding the model's ("chatml" names the built-in one).
    bos_token: The ``bos_token`` text the template sees (with a model: ignored, the model's).
    eos_token: The ``eos_token`` text the template sees (with a model: ignored, the model's).

Raises:
    TemplateError: The template does not parse or nests too deeply.
    ValueError: Neither model nor template.
    HandleClosedError: The model is closed.)")
        .def_prop_ro("source", &ChatTemplates::source, R"(The template text ("chatml" for the built-in ChatML).)")
        .def_prop_ro("tool_use_source", &ChatTemplates::tool_use_source,
                     R"(The model's ``tool_use`` template variant, used when tools are given; None if none.)")
        .def_prop_ro(
            "has_tool_use_variant", [](const ChatTemplates & t) { return t.tool_use_source().has_value(); },
            R"(Whether the model has a separate ``tool_use`` template.)")
        .def_prop_ro("has_explicit_template", &ChatTemplates::has_explicit_template,
                     R"(False when the model has no template and ChatML stands in.)")
        .def_prop_ro("supports_enable_thinking", &ChatTemplates::supports_enable_thinking, nb::call_guard<native_call>(),
                     R"(Whether the template has a reasoning mode that ``enable_thinking`` switches.)")
        .def_prop_ro("caps", &ChatTemplates::caps,
                     R"(What the template supports, as llama.cpp detects it (supports_tools, supports_tool_calls,
supports_system_role, supports_parallel_tool_calls, ...).)")
        .def(
            "apply",
            [](const ChatTemplates & self, nb::str messages_json, OptText tools_json, nb::str tool_choice,
               bool parallel_tool_calls, bool add_generation_prompt, bool enable_thinking, nb::str reasoning_format,
               OptText json_schema, OptText grammar, OptText chat_template_kwargs_json) {
                const char * op = "ChatTemplates.apply";
                ChatApplyOptions o;
                o.messages_json = utf8(messages_json, op, "messages_json");
                o.tools_json = opt_utf8(tools_json, op, "tools_json");
                o.tool_choice = utf8(tool_choice, op, "tool_choice");
                o.parallel_tool_calls = parallel_tool_calls;
                o.add_generation_prompt = add_generation_prompt;
                o.enable_thinking = enable_thinking;
                o.reasoning_format = utf8(reasoning_format, op, "reasoning_format");
                o.json_schema = opt_utf8(json_schema, op, "json_schema");
                o.grammar = opt_utf8(grammar, op, "grammar");
                o.chat_template_kwargs_json = opt_utf8(chat_template_kwargs_json, op, "chat_template_kwargs_json");
                return without_gil([&] { return self.apply(o); });
            },
            nb::arg("messages_json"), nb::kw_only(), nb::arg("tools_json").none() = nb::none(),
            nb::arg("tool_choice") = "auto", nb::arg("parallel_tool_calls") = false,
            nb::arg("add_generation_prompt") = true, nb::arg("enable_thinking") = true,
            nb::arg("reasoning_format") = "auto", nb::arg("json_schema").none() = nb::none(),
            nb::arg("grammar").none() = nb::none(), nb::arg("chat_template_kwargs_json").none() = nb::none(),
            R"(Renders messages and builds the format's grammar and parser (common_chat_templates_apply).

Args:
    messages_json: OpenAI-style messages as a JSON array (role, content as text or text parts,
        tool_calls, tool_call_id, name, reasoning_content).
    tools_json: OpenAI-style tools as a JSON array ({"type": "function", "function": {...}}).
    tool_choice: "auto", "none" or "required". For a named function, pass "required" and only
        that tool (llama-server itself reads an object tool_choice as "auto").
    parallel_tool_calls: Allow several tool calls in one reply.
    add_generation_prompt: End the prompt where the assistant's reply begins.
    enable_thinking: Let a reasoning model think (templates with a thinking switch).
    reasoning_format: "none" keeps reasoning in content; "auto" (= "deepseek") splits it out.
        The parser is built here, so this decides what ChatParser returns.
    json_schema: A JSON schema (JSON text) the reply must follow.
    grammar: A GBNF grammar the reply must follow (not with tools, unless tool_choice "none").
    chat_template_kwargs_json: A JSON object of extra template variables (as llama-server's
        chat_template_kwargs; a boolean enable_thinking there overrides the argument; a
        ``date_string`` replaces the date llama.cpp provides).

Returns:
    ChatParams.

Raises:
    ValueError: Invalid JSON (or nested over 64 deep), malformed messages or tools, bad
        tool_choice / reasoning_format, grammar combined with tools or json_schema.
    GrammarError: json_schema cannot be converted to a grammar.
    TemplateError: The template failed to render (raise_exception, runaway recursion, a shape
        it cannot render) or llama.cpp could not build a parser for it.
    InvalidTextError: A text argument holds lone surrogates.)");

    nb::class_<ChatParser>(m, "ChatParser", R"(Splits generated text into content, reasoning and tool calls: llama.cpp's parser for the format.

Streaming (llama-server's semantics): ``feed(piece)`` re-parses all text so far as partial and
returns the differences from the last good parse as OpenAI-shaped deltas; a partial parse that
fails returns no deltas (the next piece tries again). ``finish()`` parses the whole text as
final and returns the remaining deltas; if that final parse fails, ``message`` falls back to the
raw text as content (as llama-server did before its PEG parsers) and ``parse_error`` says why.
Tool calls the model gave no id get 9 random alphanumerics (llama-server uses 32, which Mistral's
templates reject when the conversation is rendered again), stable for the stream; an id the
model writes after the call's first delta (Mistral writes it after the arguments) is not used.
Delta dicts hold only their non-empty keys: content_delta, reasoning_content_delta,
tool_call_index, tool_call_id, tool_call_name, tool_call_arguments_delta.)")
        .def(nb::init<const ChatParams &>(), nb::arg("params"),
             R"(A parser for replies to the prompt in params (its format, parser and generation prompt).)")
        .def(
            "parse",
            [](const ChatParser & self, nb::str text, bool is_partial) {
                const std::string bytes = utf8(text, "ChatParser.parse", "text");
                ChatMessage m = without_gil([&] { return self.parse(bytes, is_partial); });
                return message_dict(m);
            },
            nb::arg("text"), nb::arg("is_partial") = false,
            nb::sig("def parse(self, text: str, is_partial: bool = False) -> dict[str, typing.Any]"),
            R"(Parses a whole reply (stateless: missing tool call ids are fresh on each call).

Args:
    text: The generated text (control tokens of preserved_tokens rendered).
    is_partial: The text may stop mid-way (streaming); unfinished parts are kept.

Returns:
    {"role", "content", "reasoning_content", "tool_calls": [{"name", "arguments", "id"}]},
    arguments as JSON text.

Raises:
    ValueError: The text does not match the format.
    InvalidTextError: The text holds lone surrogates.)")
        .def(
            "feed",
            [](ChatParser & self, nb::handle piece) {
                std::string bytes;
                if (nb::isinstance<nb::bytes>(piece)) {
                    nb::bytes b = nb::borrow<nb::bytes>(piece);
                    bytes.assign(b.c_str(), b.size());
                } else if (nb::isinstance<nb::str>(piece)) {
                    bytes = utf8(piece, "ChatParser.feed", "piece");
                } else {
                    throw nb::type_error("ChatParser.feed takes str or bytes");
                }
                std::vector<ChatDelta> deltas = without_gil([&] { return self.feed(bytes); });
                return delta_list(deltas);
            },
            nb::arg("piece"), nb::sig("def feed(self, piece: str | bytes) -> list[dict[str, typing.Any]]"),
            R"(Appends generated text and returns the new deltas (possibly none).

Args:
    piece: Text, or the raw bytes of a token piece: a UTF-8 character split between pieces
        waits for its last byte.

Raises:
    StateError: After finish().)")
        .def(
            "finish",
            [](ChatParser & self) {
                std::vector<ChatDelta> deltas = without_gil([&] { return self.finish(); });
                return delta_list(deltas);
            },
            nb::sig("def finish(self) -> list[dict[str, typing.Any]]"),
            R"(Parses the text as complete and returns the remaining deltas.

Raises:
    StateError: Called twice.)")
        .def_prop_ro(
            "message", [](const ChatParser & self) { return message_dict(self.message()); },
            nb::sig("def message(self) -> dict[str, typing.Any]"),
            R"(The message parsed so far (final after finish()), with the stream's tool call ids.)")
        .def_prop_ro(
            "text", [](const ChatParser & self) { return text(self.text()); }, nb::sig("def text(self) -> str"),
            R"(All text fed so far (bytes that are not UTF-8 shown as U+FFFD).)")
        .def_prop_ro("parse_error", &ChatParser::parse_error,
                     R"(Why the final parse fell back to raw content; None if it did not.)")
        .def_prop_ro("is_finished", &ChatParser::is_finished, R"(Whether finish() was called.)");
}

}  // namespace llamabind
