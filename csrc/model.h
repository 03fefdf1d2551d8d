#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "llama.h"

namespace llamabind {

using KvOverrideValue = std::variant<bool, int64_t, double, std::string>;

// llama_model_params a user sets; std::nullopt keeps llama.cpp's default.
struct ModelOptions {
    std::optional<int32_t> n_gpu_layers;
    std::optional<int32_t> split_mode;  // llama_split_mode
    std::optional<int32_t> main_gpu;
    std::vector<float> tensor_split;
    bool use_mmap = true;
    bool use_mlock = false;
    bool vocab_only = false;
    bool check_tensors = false;
    std::map<std::string, KvOverrideValue> kv_overrides;
};

// Called with the load progress in [0, 1]; returning false cancels the load.
using ProgressFn = std::function<bool(float)>;

// One token's bytes as llama.cpp renders them (control tokens only when `special`).
std::string token_piece(const llama_vocab * vocab, int32_t token, bool special);

// A loaded GGUF model. Read-only after loading and safe to share between threads; contexts,
// samplers and adapters keep the underlying llama_model alive through shared_ptr, so close()
// drops only this handle's reference.
class Model {
  public:
    Model(const std::string & path, const ModelOptions & options, const ProgressFn & progress);

    void close();
    bool is_closed() const;
    std::shared_ptr<llama_model> handle(const char * operation) const;
    const llama_vocab * vocab(const char * operation) const;

    const std::string & path() const { return path_; }
    std::map<std::string, std::string> metadata() const;
    std::string description() const;
    std::string architecture() const;
    uint64_t n_params() const;
    uint64_t size_bytes() const;
    int32_t n_ctx_train() const;
    int32_t n_embd() const;
    int32_t n_layer() const;
    int32_t n_head() const;
    int32_t n_vocab() const;
    int32_t vocab_type() const;
    bool is_vocab_only() const { return options_.vocab_only; }
    // Whether the output layer (the logits) is computed on a GPU.
    bool output_on_gpu() const { return output_on_gpu_; }
    bool has_encoder() const;
    bool has_decoder() const;
    bool is_recurrent() const;
    std::map<std::string, int32_t> special_tokens() const;
    bool add_bos() const;
    bool add_eos() const;
    bool is_eog(int32_t token) const;
    bool is_control(int32_t token) const;
    int32_t token_attr(int32_t token) const;
    std::string token_text(int32_t token) const;
    float token_score(int32_t token) const;
    std::optional<std::string> chat_template(const std::optional<std::string> & name) const;
    std::map<std::string, std::string> chat_templates() const;

    std::vector<int32_t> tokenize(const std::string & text, bool add_special, bool parse_special) const;
    std::string detokenize(const std::vector<int32_t> & tokens, bool remove_special,
                           bool unparse_special) const;
    std::string token_to_piece(int32_t token, bool special) const;

    // Raises ValueError naming `operation` unless 0 <= token < n_vocab.
    void check_token(int32_t token, const char * operation) const;

  private:
    std::string path_;
    ModelOptions options_;
    mutable std::mutex mutex_;
    std::shared_ptr<llama_model> model_;
    bool output_on_gpu_ = false;
};

// llama_tokenize with its failures as llamabind errors (ModelLoadError for a vocabulary that
// lacks the byte tokens its tokenizer falls back to).
std::vector<int32_t> tokenize_text(const llama_vocab * vocab, const std::string & text, bool add_special,
                                   bool parse_special, const char * operation);

}  // namespace llamabind
