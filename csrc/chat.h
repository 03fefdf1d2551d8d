#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "llama.h"
#include "model.h"

struct common_chat_templates;  // llama.cpp common/chat.h

namespace llamabind {

// llama.cpp's chat machinery (common/chat*): templates rendered by its own Jinja engine, the
// format detected from the template, the grammar that constrains tool calls or structured
// output, and the PEG parser that splits generated text into content, reasoning and tool calls.

// A trigger that switches a lazy grammar on: type "word", "pattern" (a regex matched anywhere
// in the generated text), "pattern_full" (a regex that must match the whole text so far) or
// "token" (token holds the id).
struct GrammarTrigger {
    std::string type;
    std::string value;
    int32_t token = -1;
};

// What ChatTemplates::apply takes, in llama-server's vocabulary; JSON as text.
struct ChatApplyOptions {
    std::string messages_json;
    std::optional<std::string> tools_json;
    std::string tool_choice = "auto";  // "auto", "none" or "required"
    bool parallel_tool_calls = false;
    bool add_generation_prompt = true;
    bool enable_thinking = true;
    std::string reasoning_format = "auto";  // "none", "auto", "deepseek", "deepseek-legacy"
    std::optional<std::string> json_schema;
    std::optional<std::string> grammar;
    std::optional<std::string> chat_template_kwargs_json;
};

// The rendered prompt and everything generation and parsing need for it.
struct ChatParams {
    std::string prompt;
    std::string format;  // common_chat_format_name: "Content-only", "peg-native", ...
    int32_t format_id = 0;
    std::string grammar;
    bool grammar_lazy = false;
    bool grammar_needs_prefill = false;  // the grammar starts with generation_prompt
    std::vector<GrammarTrigger> grammar_triggers;
    std::vector<std::string> preserved_tokens;
    std::vector<std::string> additional_stops;
    std::string generation_prompt;  // what add_generation_prompt appended, e.g. "<|im_start|>assistant\n"
    bool supports_thinking = false;
    std::string thinking_start_tag;
    std::vector<std::string> thinking_end_tags;
    std::string reasoning_format;
    std::string parser;  // the serialized PEG parser (common_peg_arena::save)
};

// ChatParams' grammar in the terms of SamplerParams (single-token trigger words become token
// triggers, as llama-server does).
struct ChatSamplerGrammar {
    std::string grammar;
    bool grammar_lazy = false;
    std::vector<std::string> trigger_words;
    std::vector<std::string> trigger_patterns;
    std::vector<std::string> trigger_patterns_full;
    std::vector<int32_t> trigger_tokens;
    std::string grammar_prefill;
};

ChatSamplerGrammar chat_sampler_grammar(const ChatParams & params, const llama_vocab * vocab);

// The ids of preserved_tokens that are single tokens of the vocabulary, sorted.
std::vector<int32_t> chat_preserved_token_ids(const ChatParams & params, const llama_vocab * vocab);

// Drops the log lines of llama.cpp's common/ code (chat warnings), which would otherwise go
// straight to stderr; failures reach Python as exceptions with their reason.
void silence_common_log();

// A model's chat template(s), or a given template text, parsed by llama.cpp's Jinja engine.
// Immutable after construction; apply() may run on many threads at once.
class ChatTemplates {
  public:
    // Uses model's own template unless template_text is given (then model only supplies the
    // BOS/EOS tokens); neither: a ValueError. No template in the model: ChatML.
    ChatTemplates(const Model * model, const std::optional<std::string> & template_text,
                  const std::optional<std::string> & bos_token, const std::optional<std::string> & eos_token);

    const std::string & source() const { return source_; }
    const std::optional<std::string> & tool_use_source() const { return tool_use_source_; }
    bool has_explicit_template() const { return has_explicit_template_; }
    bool supports_enable_thinking() const;
    std::map<std::string, bool> caps() const;

    ChatParams apply(const ChatApplyOptions & options) const;

  private:
    std::string source_;
    std::optional<std::string> tool_use_source_;
    bool has_explicit_template_ = false;
    std::shared_ptr<common_chat_templates> default_;   // renders without tools
    std::shared_ptr<common_chat_templates> tool_use_;  // renders with tools (default_ when no variant)
};

struct ChatToolCall {
    std::string name;
    std::string arguments;  // JSON text (a prefix of it while streaming)
    std::string id;
};

struct ChatMessage {
    std::string role;
    std::string content;
    std::string reasoning_content;
    std::vector<ChatToolCall> tool_calls;
};

// One streaming step, OpenAI-shaped: what to append to content / reasoning, or to tool call
// tool_call_index (its id and name appear when it is new).
struct ChatDelta {
    std::string content_delta;
    std::string reasoning_content_delta;
    std::optional<int64_t> tool_call_index;
    std::string tool_call_id;
    std::string tool_call_name;
    std::string tool_call_arguments_delta;
};

// Parses generated text with the parser ChatTemplates::apply built, whole or streamed.
// Streaming follows llama-server: each feed() re-parses the text so far as partial and returns
// the differences from the last good parse; a partial parse that fails yields no deltas.
// Tool calls the model gave no id get 9 random alphanumerics, stable for the stream.
class ChatParser {
  public:
    explicit ChatParser(const ChatParams & params);
    ~ChatParser();

    // Stateless (missing tool call ids are fresh on each call); throws ValueError when text
    // does not match the format.
    ChatMessage parse(const std::string & text, bool is_partial) const;

    // piece: UTF-8 bytes, possibly ending inside a character (that part waits for the rest).
    std::vector<ChatDelta> feed(const std::string & piece);
    // The final (non-partial) parse. If it fails, the message becomes the raw text as content
    // (llama-server's fallback) and parse_error() says why.
    std::vector<ChatDelta> finish();

    ChatMessage message() const;
    std::string text() const;
    std::optional<std::string> parse_error() const;
    bool is_finished() const;

  private:
    struct State;
    mutable std::mutex mutex_;
    std::unique_ptr<State> state_;
};

}  // namespace llamabind
