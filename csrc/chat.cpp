#include "chat.h"

#include <algorithm>
#include <random>
#include <stdexcept>

// llama.cpp's common/chat.h (angle brackets: this file's own directory holds csrc/chat.h).
#include <chat.h>

#include "common.h"
#include "errors.h"
#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "grammar.h"
#include "utf8.h"
#include "json-schema-to-grammar.h"
#include "json.h"
#include "log.h"

namespace llamabind {
namespace {

using json = common_json;

// llama.cpp's Jinja engine recurses without limit (macros, nested blocks, nested data), so an
// untrusted template or input could overflow the stack. These bounds keep every recursion
// far below the stack of a Python thread; real templates and conversations stay well under.
constexpr int kMaxMacroDepth = 128;
constexpr int kMaxTemplateNesting = 64;
constexpr int kMaxJsonDepth = 64;
// The PEG parser recurses on each [ or { of generated JSON (a few KB of stack per level).
constexpr int kMaxOutputNesting = 128;

// Deepest nesting of arrays/objects in JSON text (strings skipped); the parser itself does
// not recurse, the code that walks the result does.
int json_depth(const std::string & text) {
    int depth = 0, max_depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            max_depth = std::max(max_depth, ++depth);
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return max_depth;
}

// Deepest [ / { nesting counting every bracket, in strings too: generated text is not JSON
// throughout, so quotes cannot be trusted to delimit strings.
int bracket_depth(const std::string & text) {
    int depth = 0, max_depth = 0;
    for (char c : text) {
        if (c == '[' || c == '{') {
            max_depth = std::max(max_depth, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}

json parse_json(const std::string & text, const char * what, const char * operation) {
    const int depth = json_depth(text);
    if (depth > kMaxJsonDepth) {
        throw Error(ErrorKind::Value, std::string("[") + operation + "] " + what + " nests " + std::to_string(depth) +
                                          " levels deep; the limit is " + std::to_string(kMaxJsonDepth));
    }
    try {
        return json::parse(text);
    } catch (const std::exception & e) {
        throw Error(ErrorKind::Value, std::string("[") + operation + "] " + what + " is not valid JSON: " + e.what());
    }
}

[[noreturn]] void throw_template(const char * operation, const std::string & why) {
    throw Error(ErrorKind::Template, std::string("[") + operation + "] " + why);
}

// Rejects templates nested deeper than kMaxTemplateNesting (blocks, elif chains, brackets,
// operator chains: the parser and the renderer recurse on each).
void check_template_nesting(const std::vector<jinja::token> & tokens) {
    using T = jinja::token;
    std::vector<int> blocks;  // per open block: the levels it adds (an if grows with each elif)
    int n_blocks = 0, n_brackets = 0, n_chain = 0;
    auto fail = [](const char * what) {
        throw_template("ChatTemplates", std::string("the template nests ") + what + " more than " +
                                            std::to_string(kMaxTemplateNesting) + " deep");
    };
    for (size_t i = 0; i < tokens.size(); ++i) {
        const T & t = tokens[i];
        if (t.t == T::open_paren || t.t == T::open_square_bracket || t.t == T::open_curly_bracket) {
            if (++n_brackets > kMaxTemplateNesting) fail("brackets");
        } else if (t.t == T::close_paren || t.t == T::close_square_bracket || t.t == T::close_curly_bracket) {
            --n_brackets;
        }
        const bool chains = t.t == T::unary_operator || (t.t == T::identifier && (t.value == "not" || t.value == "if"));
        if (chains && ++n_chain > kMaxTemplateNesting) fail("operators");
        if (t.t == T::close_statement || t.t == T::close_expression) n_chain = 0;
        if (t.t != T::open_statement || i + 1 >= tokens.size() || tokens[i + 1].t != T::identifier) continue;
        const std::string & name = tokens[i + 1].value;
        bool opens = name == "if" || name == "for" || name == "macro" || name == "call" || name == "filter";
        if (name == "set") {  // a block set has no '=' in its tag
            opens = true;
            for (size_t j = i + 2; j < tokens.size() && tokens[j].t != T::close_statement; ++j) {
                if (tokens[j].t == T::equals) opens = false;
            }
        }
        if (opens) {
            blocks.push_back(1);
            ++n_blocks;
        } else if (name == "elif" && !blocks.empty()) {
            ++blocks.back();
            ++n_blocks;
        } else if (name.rfind("end", 0) == 0 && name != "endgeneration" && !blocks.empty()) {
            n_blocks -= blocks.back();
            blocks.pop_back();
        }
        if (n_blocks > kMaxTemplateNesting) fail("blocks");
    }
}

// Adds a depth counter to every macro so that runaway recursion raises instead of overflowing
// the stack. The inserted tags output nothing and copy the whitespace control of the tags
// they sit next to, so the rendering is unchanged; they use no global name a template could
// shadow (a macro parameter called `namespace` exists). Templates without macros are
// returned as is.
std::string guard_template(const std::string & source) {
    if (source.empty() || source == "chatml") return source;
    jinja::lexer_result lexed;
    try {
        lexed = jinja::lexer().tokenize(source);
    } catch (const std::exception & e) {
        throw_template("ChatTemplates", std::string("the template does not parse: ") + e.what());
    }
    check_template_nesting(lexed.tokens);
    try {
        // Parsed here for the message: common_chat_templates_init rethrows a sliced copy.
        jinja::parse_from_tokens(lexed);
    } catch (const std::exception & e) {
        throw_template("ChatTemplates", std::string("the template does not parse: ") + e.what());
    }

    using T = jinja::token;
    const std::string limit = std::to_string(kMaxMacroDepth);
    std::vector<std::pair<size_t, std::string>> inserts;
    const auto & tokens = lexed.tokens;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
        if (tokens[i].t != T::open_statement || tokens[i + 1].t != T::identifier) continue;
        if (tokens[i + 1].value == "macro") {
            size_t j = i + 2;
            while (j < tokens.size() && tokens[j].t != T::close_statement) ++j;
            if (j == tokens.size()) break;  // the parser reports it
            inserts.emplace_back(tokens[j].pos + tokens[j].value.size(),
                                 "{% if __llamabind_macros is not defined %}"
                                 "{% set __llamabind_macros = {'depth': 0} %}{% endif %}"
                                 "{% set __llamabind_macros.depth = __llamabind_macros.depth + 1 %}"
                                 "{% if __llamabind_macros.depth > " + limit + " %}"
                                 "{{ raise_exception('macros nest more than " + limit + " deep (runaway recursion?)') }}"
                                 "{% endif " + tokens[j].value);
        } else if (tokens[i + 1].value == "endmacro") {
            inserts.emplace_back(tokens[i].pos,
                                 tokens[i].value + " set __llamabind_macros.depth = __llamabind_macros.depth - 1 %}");
        }
    }
    if (inserts.empty()) return source;

    const std::string & text = lexed.source;  // \r\n normalized, one trailing \n dropped
    std::string out;
    size_t at = 0;
    for (const auto & [pos, insert] : inserts) {
        out.append(text, at, pos - at);
        out += insert;
        at = pos;
    }
    out.append(text, at, std::string::npos);
    // The lexer drops one trailing newline; give it one to drop so the text stays the same.
    if (source.back() == '\n' || (!text.empty() && text.back() == '\n')) out += '\n';
    return out;
}

std::shared_ptr<common_chat_templates> init_templates(const llama_model * model, const std::string & source,
                                                      const std::string & bos, const std::string & eos) {
    try {
        common_chat_templates_ptr ptr = common_chat_templates_init(model, guard_template(source), bos, eos);
        return std::shared_ptr<common_chat_templates>(ptr.release(), common_chat_templates_free);
    } catch (const Error &) {
        throw;
    } catch (const std::exception & e) {
        throw_template("ChatTemplates", std::string("the template does not parse: ") + e.what());
    }
}

common_chat_tool_choice parse_tool_choice(const std::string & tool_choice) {
    if (tool_choice == "auto") return COMMON_CHAT_TOOL_CHOICE_AUTO;
    if (tool_choice == "none") return COMMON_CHAT_TOOL_CHOICE_NONE;
    if (tool_choice == "required") return COMMON_CHAT_TOOL_CHOICE_REQUIRED;
    throw_value("[ChatTemplates.apply] tool_choice must be \"auto\", \"none\" or \"required\" (a named function: "
                "\"required\" with only that tool), got \"" + tool_choice + "\"");
}

common_reasoning_format parse_reasoning_format(const std::string & name, const char * operation) {
    try {
        return common_reasoning_format_from_name(name);
    } catch (const std::exception &) {
        throw_value(std::string("[") + operation +
                    "] reasoning_format must be \"none\", \"auto\", \"deepseek\" or \"deepseek-legacy\", got \"" +
                    name + "\"");
    }
}

std::vector<common_chat_tool> parse_tools(const std::string & tools_json) {
    json tools = parse_json(tools_json, "tools_json", "ChatTemplates.apply");
    if (!tools.is_array()) throw_value("[ChatTemplates.apply] tools_json must be a JSON array of tools");
    for (const auto & tool : tools) {
        const json * fn = tool.is_object() && tool.contains("function") ? &tool.at("function") : nullptr;
        if (fn != nullptr && fn->is_object() && fn->contains("parameters") && !fn->at("parameters").is_null() &&
            !fn->at("parameters").is_object()) {
            throw_value("[ChatTemplates.apply] the parameters of a tool must be a JSON schema object: " + tool.dump());
        }
    }
    try {
        return common_chat_tools_parse_oaicompat(tools);
    } catch (const std::exception & e) {
        throw_value(std::string("[ChatTemplates.apply] ") + e.what());
    }
}

// chat_template_kwargs as llama-server takes them: each value kept as JSON text; a boolean
// enable_thinking among them overrides the argument.
void apply_template_kwargs(const std::string & kwargs_json, common_chat_templates_inputs & inputs) {
    json kwargs = parse_json(kwargs_json, "chat_template_kwargs_json", "ChatTemplates.apply");
    if (!kwargs.is_object()) throw_value("[ChatTemplates.apply] chat_template_kwargs_json must be a JSON object");
    for (const auto & [key, value] : kwargs.items()) inputs.chat_template_kwargs[key] = value.dump();
    if (kwargs.contains("enable_thinking")) {
        const json & value = kwargs.at("enable_thinking");
        if (!value.is_boolean()) throw_value("[ChatTemplates.apply] chat_template_kwargs enable_thinking must be a boolean");
        inputs.enable_thinking = value.get<bool>();
    }
}

const char * trigger_type_name(common_grammar_trigger_type type) {
    switch (type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: return "token";
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: return "word";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: return "pattern";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: return "pattern_full";
    }
    return "word";
}

ChatParams to_chat_params(const common_chat_params & r, const ChatApplyOptions & o) {
    ChatParams p;
    // Text made from a model's template and tokens (untrusted bytes) goes to Python as str.
    p.prompt = valid_utf8(r.prompt);
    p.format = common_chat_format_name(r.format);
    p.format_id = static_cast<int32_t>(r.format);
    p.grammar = valid_utf8(r.grammar);
    p.grammar_lazy = r.grammar_lazy;
    p.grammar_needs_prefill = !r.grammar.empty() && !r.grammar_lazy;
    if (r.grammar.empty()) {
        // As llama-server: a grammar or schema the chat format did not take applies as given.
        if (o.grammar && !o.grammar->empty()) {
            p.grammar = *o.grammar;
        } else if (o.json_schema) {
            p.grammar = ::json_schema_to_grammar(json::parse(*o.json_schema));
        }
    }
    for (const auto & t : r.grammar_triggers) {
        p.grammar_triggers.push_back({trigger_type_name(t.type), valid_utf8(t.value), t.token});
    }
    for (const std::string & token : r.preserved_tokens) p.preserved_tokens.push_back(valid_utf8(token));
    for (const std::string & stop : r.additional_stops) p.additional_stops.push_back(valid_utf8(stop));
    p.generation_prompt = valid_utf8(r.generation_prompt);
    p.supports_thinking = r.supports_thinking;
    p.thinking_start_tag = valid_utf8(r.thinking_start_tag);
    for (const std::string & tag : r.thinking_end_tags) p.thinking_end_tags.push_back(valid_utf8(tag));
    p.reasoning_format = o.reasoning_format;
    p.parser = r.parser;
    return p;
}

std::optional<std::string> model_template(const llama_model * model, const char * name) {
    const char * text = llama_model_chat_template(model, name);
    if (text == nullptr) return std::nullopt;
    return valid_utf8(text);
}

}  // namespace

void silence_common_log() {
    // common/'s LOG_* macros print from a worker thread of their own, with no callback to route
    // them through; below every level they are not even formatted.
    common_log_set_verbosity_thold(-1);
}

ChatTemplates::ChatTemplates(const Model * model, const std::optional<std::string> & template_text,
                             const std::optional<std::string> & bos_token, const std::optional<std::string> & eos_token) {
    std::shared_ptr<llama_model> handle = model != nullptr ? model->handle("ChatTemplates") : nullptr;
    if (!handle && !template_text) throw_value("[ChatTemplates] give a model, a template, or both");
    if (template_text && template_text->empty()) throw_value("[ChatTemplates] the template text is empty");
    if (template_text) {
        source_ = *template_text;
        has_explicit_template_ = true;
    } else {
        std::optional<std::string> own = model_template(handle.get(), nullptr);
        tool_use_source_ = model_template(handle.get(), "tool_use");
        has_explicit_template_ = own.has_value() || tool_use_source_.has_value();
        // As common_chat_templates_init: no default template -> the tool_use one, else ChatML.
        source_ = own && !own->empty() ? *own : (tool_use_source_ ? *tool_use_source_ : std::string("chatml"));
    }
    const std::string bos = bos_token.value_or(""), eos = eos_token.value_or("");
    default_ = init_templates(handle.get(), source_, bos, eos);
    tool_use_ = default_;
    if (tool_use_source_ && *tool_use_source_ != source_) {
        try {
            tool_use_ = init_templates(handle.get(), *tool_use_source_, bos, eos);
        } catch (const Error &) {
            tool_use_ = default_;  // as llama.cpp: a tool_use variant that does not parse is ignored
        }
    }
}

bool ChatTemplates::supports_enable_thinking() const {
    try {
        return common_chat_templates_support_enable_thinking(default_.get());
    } catch (const std::exception & e) {
        throw_template("ChatTemplates.supports_enable_thinking", e.what());
    }
}

std::map<std::string, bool> ChatTemplates::caps() const {
    return common_chat_templates_get_caps(tool_use_.get());
}

ChatParams ChatTemplates::apply(const ChatApplyOptions & o) const {
    const char * op = "ChatTemplates.apply";
    common_chat_templates_inputs inputs;
    json messages = parse_json(o.messages_json, "messages_json", op);
    try {
        inputs.messages = common_chat_msgs_parse_oaicompat(messages);
    } catch (const std::exception & e) {
        throw_value(std::string("[ChatTemplates.apply] ") + e.what());
    }
    if (o.tools_json) {
        check_json_schema(*o.tools_json, op);  // the chat format turns their schemas into grammars
        inputs.tools = parse_tools(*o.tools_json);
    }
    inputs.tool_choice = parse_tool_choice(o.tool_choice);
    inputs.parallel_tool_calls = o.parallel_tool_calls;
    inputs.add_generation_prompt = o.add_generation_prompt;
    inputs.enable_thinking = o.enable_thinking;
    inputs.reasoning_format = parse_reasoning_format(o.reasoning_format, op);
    if (o.json_schema && o.grammar) throw_value("[ChatTemplates.apply] give json_schema or grammar, not both");
    if (o.json_schema) {
        json schema = parse_json(*o.json_schema, "json_schema", op);
        if (!schema.is_object()) throw_value("[ChatTemplates.apply] json_schema must be a JSON object");
        try {
            llamabind::json_schema_to_grammar(schema.dump());  // the converter's own message, before rendering
        } catch (const std::exception & e) {
            throw Error(ErrorKind::Grammar, std::string("[ChatTemplates.apply] json_schema: ") + e.what());
        }
        inputs.json_schema = schema.dump();
    }
    if (o.grammar) inputs.grammar = *o.grammar;
    if (!inputs.tools.empty() && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE && !inputs.grammar.empty()) {
        throw_value("[ChatTemplates.apply] a grammar cannot be combined with tools (tool_choice \"none\" allows it)");
    }
    if (o.chat_template_kwargs_json) apply_template_kwargs(*o.chat_template_kwargs_json, inputs);

    const common_chat_templates * tmpls = inputs.tools.empty() ? default_.get() : tool_use_.get();
    try {
        return to_chat_params(common_chat_templates_apply(tmpls, inputs), o);
    } catch (const Error &) {
        throw;
    } catch (const std::exception & e) {
        throw_template(op, e.what());
    }
}

ChatSamplerGrammar chat_sampler_grammar(const ChatParams & p, const llama_vocab * vocab) {
    ChatSamplerGrammar g;
    if (p.grammar.empty()) return g;
    g.grammar = p.grammar;
    g.grammar_lazy = p.grammar_lazy;
    for (const auto & t : p.grammar_triggers) {
        if (t.type == "word") {
            std::vector<llama_token> ids = tokenize_text(vocab, t.value, false, true, "ChatParams.sampler_kwargs");
            if (ids.size() == 1) {
                g.trigger_tokens.push_back(ids[0]);
            } else {
                g.trigger_words.push_back(t.value);
            }
        } else if (t.type == "pattern") {
            g.trigger_patterns.push_back(t.value);
        } else if (t.type == "pattern_full") {
            g.trigger_patterns_full.push_back(t.value);
        } else if (t.token >= 0) {
            g.trigger_tokens.push_back(t.token);
        }
    }
    if (p.grammar_needs_prefill) g.grammar_prefill = p.generation_prompt;
    return g;
}

std::vector<int32_t> chat_preserved_token_ids(const ChatParams & p, const llama_vocab * vocab) {
    std::vector<int32_t> out;
    for (const auto & text : p.preserved_tokens) {
        std::vector<llama_token> ids = tokenize_text(vocab, text, false, true, "ChatParams.preserved_token_ids");
        if (ids.size() == 1) out.push_back(ids[0]);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

// ---- ChatParser ----

namespace {

// 9 random alphanumerics: llama-server uses 32, but Mistral's templates reject any tool call id
// that is not exactly 9 alphanumerics when the conversation is rendered again.
std::string random_tool_call_id(std::mt19937 & rng) {
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string id(9, ' ');
    for (char & c : id) c = alphabet[rng() % (sizeof(alphabet) - 1)];
    return id;
}

}  // namespace

struct ChatParser::State {
    common_chat_parser_params params;
    std::string text;
    common_chat_msg msg;
    std::vector<std::string> tool_call_ids;
    std::optional<std::string> parse_error;
    bool finished = false;
    std::mt19937 rng{std::random_device{}()};

    std::string random_id() { return random_tool_call_id(rng); }

    // Adopts new_msg when it extends the current message; returns the differences.
    std::vector<common_chat_msg_diff> advance(common_chat_msg new_msg) {
        new_msg.set_tool_call_ids(tool_call_ids, [this] { return random_id(); });
        std::vector<common_chat_msg_diff> diffs = common_chat_msg_diff::compute_diffs(msg, new_msg);
        msg = std::move(new_msg);
        return diffs;
    }
};

namespace {

// The length of text without a UTF-8 sequence cut off at its end (generated text arrives in
// token pieces, and a character may span several tokens).
size_t utf8_complete_length(const std::string & text) {
    const size_t n = text.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        const unsigned char c = static_cast<unsigned char>(text[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
        const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        return back < len ? n - back : n;
    }
    return n;
}

common_chat_msg parse_output(const std::string & text, bool is_partial, const common_chat_parser_params & params) {
    const int depth = bracket_depth(text);
    if (depth > kMaxOutputNesting) {
        throw std::runtime_error("the text nests brackets " + std::to_string(depth) + " deep; the parser allows " +
                                 std::to_string(kMaxOutputNesting));
    }
    return common_chat_parse(text, is_partial, params);
}

ChatMessage to_message(const common_chat_msg & m) {
    ChatMessage out;
    out.role = m.role.empty() ? "assistant" : m.role;
    out.content = m.content;
    out.reasoning_content = m.reasoning_content;
    for (const auto & tc : m.tool_calls) out.tool_calls.push_back({tc.name, tc.arguments, tc.id});
    return out;
}

std::vector<ChatDelta> to_deltas(const std::vector<common_chat_msg_diff> & diffs) {
    std::vector<ChatDelta> out;
    for (const auto & d : diffs) {
        ChatDelta delta;
        delta.content_delta = d.content_delta;
        delta.reasoning_content_delta = d.reasoning_content_delta;
        if (d.tool_call_index != std::string::npos) {
            delta.tool_call_index = static_cast<int64_t>(d.tool_call_index);
            delta.tool_call_id = d.tool_call_delta.id;
            delta.tool_call_name = d.tool_call_delta.name;
            delta.tool_call_arguments_delta = d.tool_call_delta.arguments;
        }
        out.push_back(std::move(delta));
    }
    return out;
}

}  // namespace

ChatParser::ChatParser(const ChatParams & p) : state_(std::make_unique<State>()) {
    common_chat_parser_params & params = state_->params;
    params.format = static_cast<common_chat_format>(p.format_id);
    params.generation_prompt = p.generation_prompt;
    params.reasoning_format = parse_reasoning_format(p.reasoning_format, "ChatParser");
    if (!p.parser.empty()) {
        try {
            params.parser.load(p.parser);
        } catch (const std::exception & e) {
            throw_value(std::string("[ChatParser] the parser in these ChatParams does not load: ") + e.what());
        }
    }
    state_->msg.role = "assistant";
}

ChatParser::~ChatParser() = default;

ChatMessage ChatParser::parse(const std::string & text, bool is_partial) const {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
        common_chat_msg msg = parse_output(text, is_partial, state_->params);
        std::vector<std::string> ids;
        std::mt19937 rng{std::random_device{}()};
        msg.set_tool_call_ids(ids, [&rng] { return random_tool_call_id(rng); });
        return to_message(msg);
    } catch (const std::exception & e) {
        throw_value(std::string("[ChatParser.parse] ") + e.what());
    }
}

std::vector<ChatDelta> ChatParser::feed(const std::string & piece) {
    std::lock_guard<std::mutex> lock(mutex_);
    State & s = *state_;
    if (s.finished) throw Error(ErrorKind::State, "[ChatParser.feed] the parser is finished");
    s.text += piece;
    // llama-server semantics: a partial parse that fails, or that does not extend what was
    // already streamed, changes nothing; the next piece tries again.
    try {
        common_chat_msg new_msg = parse_output(s.text.substr(0, utf8_complete_length(s.text)), true, s.params);
        if (new_msg.empty()) return {};
        return to_deltas(s.advance(std::move(new_msg)));
    } catch (const std::exception &) {
        return {};
    }
}

std::vector<ChatDelta> ChatParser::finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    State & s = *state_;
    if (s.finished) throw Error(ErrorKind::State, "[ChatParser.finish] the parser is finished");
    s.finished = true;
    common_chat_msg final_msg;
    try {
        final_msg = parse_output(s.text, false, s.params);
    } catch (const std::exception & e) {
        s.parse_error = e.what();
        final_msg = common_chat_msg();
        final_msg.role = "assistant";
        final_msg.content = s.text;
    }
    try {
        return to_deltas(s.advance(final_msg));
    } catch (const std::exception & e) {
        // What was streamed cannot be extended to the final message: keep the final message.
        if (!s.parse_error) s.parse_error = std::string("the final parse does not extend the streamed one: ") + e.what();
        final_msg.set_tool_call_ids(s.tool_call_ids, [&s] { return s.random_id(); });
        s.msg = final_msg;
        return {};
    }
}

ChatMessage ChatParser::message() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return to_message(state_->msg);
}

std::string ChatParser::text() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_->text;
}

std::optional<std::string> ChatParser::parse_error() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_->parse_error;
}

bool ChatParser::is_finished() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_->finished;
}

}  // namespace llamabind
