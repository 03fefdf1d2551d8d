#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "context.h"
#include "sampler.h"

namespace llamabind {

struct GenerateOptions {
    int32_t max_tokens = -1;  // -1: until end of generation or the context is full
    int32_t seq_id = 0;
    bool ignore_eog = false;
    bool render_special = false;  // control tokens appear in the pieces
    std::vector<int32_t> render_special_tokens;  // sorted: these render as text even so
    // Sample inside the compute graph: nullopt picks it when the chain can run there; true
    // insists (ValueError when it cannot); false samples on the CPU from the logits.
    std::optional<bool> backend_sampling;
};

struct GeneratedToken {
    int32_t id;
    std::string piece;  // raw bytes; a UTF-8 character may span several tokens
};

// The generate loop: evaluates the prompt (reusing the prefix the context already holds) on the
// first step, then decodes and samples one token per step. Keeps its context and sampler alive.
class Generator {
  public:
    Generator(std::shared_ptr<Context> context, std::shared_ptr<Sampler> sampler,
              std::vector<int32_t> prompt, GenerateOptions options);
    ~Generator();
    Generator(const Generator &) = delete;
    Generator & operator=(const Generator &) = delete;

    // The next token, or nullopt once finished (finish_reason says why).
    std::optional<GeneratedToken> next(const InterruptCheck & interrupt);
    void cancel();
    void close();

    const std::string & finish_reason() const { return finish_reason_; }
    bool is_finished() const { return !finish_reason_.empty(); }
    int32_t n_prompt_tokens() const { return static_cast<int32_t>(prompt_.size()); }
    int32_t n_reused_tokens() const { return n_reused_; }
    int32_t n_generated_tokens() const { return n_generated_; }
    double t_prompt_eval_ms() const { return t_prompt_us_ / 1000.0; }
    double t_generation_ms() const { return t_generation_us_ / 1000.0; }
    const std::vector<int32_t> & token_ids() const { return generated_; }
    // Where the latest token was picked: "backend" (inside the compute graph) or "cpu"; before
    // the first token, where it will be. Stays after the end, so a finished run can tell.
    std::string sampling_backend() const;
    // How many of the generated tokens were picked inside the compute graph.
    int32_t n_graph_sampled_tokens() const { return n_graph_sampled_; }

  private:
    std::optional<GeneratedToken> step(const InterruptCheck & interrupt);
    void evaluate_prompt(const InterruptCheck & interrupt);
    bool decode_one(int32_t token);
    std::optional<GeneratedToken> sample_next();
    void finish(const char * reason);
    void attach_graph_sampler();
    void release_graph_sampler() noexcept;
    int32_t sample_in_graph_locked(llama_context * ctx);

    std::shared_ptr<Context> context_;
    std::shared_ptr<Sampler> sampler_;
    std::vector<int32_t> prompt_;
    GenerateOptions options_;
    std::atomic<bool> cancelled_{false};
    bool started_ = false;
    llama_sampler * graph_chain_ = nullptr;  // our copy of the chain, attached to the context
    std::vector<llama_token_data> candidates_;
    std::optional<int32_t> pending_;  // sampled and returned, not yet decoded
    std::string finish_reason_;
    int32_t n_reused_ = 0;
    int32_t n_generated_ = 0;
    int32_t n_graph_sampled_ = 0;
    std::atomic<const char *> last_path_{nullptr};  // where the latest token was sampled
    int64_t t_prompt_us_ = 0;
    int64_t t_generation_us_ = 0;
    std::vector<int32_t> generated_;
};

}  // namespace llamabind
