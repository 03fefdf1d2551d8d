#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "batch.h"
#include "context.h"
#include "sampler.h"
#include "step.h"

namespace llamabind {

// The generate loop: evaluates the prompt (reusing the prefix the context already holds) on the
// first step, then decodes and samples one token per step. Keeps its context and sampler alive.
//
// Decode-ahead: once a token is handed out, a worker thread of this generator decodes it and
// samples the next while the caller (Python) handles the token, so the caller's time per token
// (and its wait for the GIL) overlaps the decode. The sampler therefore has accepted one token
// more than was handed out; the KV cache holds every token handed out, and may hold the last
// one's successor's input too. A newer generator on the same sequence supersedes this one's
// pending work (it is dropped, not decoded).
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
    // The latest token's log-probabilities (GenerateOptions::n_logprobs >= 0), else nullopt.
    const std::optional<TokenLogprobs> & last_logprobs() const { return last_logprobs_; }

  private:
    std::optional<GeneratedToken> step(const InterruptCheck & interrupt);
    size_t evaluate_prompt(const InterruptCheck & interrupt);
    Step advance(const int32_t * tokens, size_t n, bool prompt) noexcept;
    void advance_locked(llama_context * ctx, const int32_t * tokens, size_t n, bool prompt, Step & step);
    std::optional<GeneratedToken> commit(Step step);
    bool wants_more() const;
    void launch_ahead(int32_t token);
    std::optional<Step> take_ahead();
    void stop_worker() noexcept;
    void worker_loop();
    void finish(const char * reason);
    void attach_graph_sampler();
    void release_graph_sampler() noexcept;
    int32_t sample_in_graph_locked(llama_context * ctx);
    bool wants_graph_sampling() const;
    std::optional<GeneratedToken> step_batched(const InterruptCheck & interrupt);

    std::shared_ptr<Context> context_;
    std::shared_ptr<Sampler> sampler_;
    std::vector<int32_t> prompt_;
    GenerateOptions options_;
    std::atomic<bool> cancelled_{false};
    const uint64_t id_ = Context::next_owner_id();  // owner of our decodes (cancel aborts only ours)
    std::shared_ptr<BatchSequence> batched_;  // set when the context batches its sequences (n_seq_max > 1)
    std::mutex next_mutex_;  // one next() at a time, whichever threads call it
    bool started_ = false;
    llama_sampler * graph_chain_ = nullptr;  // our copy of the chain, attached to the context
    std::vector<llama_token_data> candidates_;
    std::optional<int32_t> pending_;  // sampled and returned, not yet decoded
    uint64_t ticket_ = 0;  // this generator's claim on its sequence (Context::claim_sequence_locked)
    // Decode-ahead worker: one job (the token to decode) at a time.
    std::thread worker_;
    std::mutex ahead_mutex_;
    std::condition_variable ahead_cv_;
    std::optional<int32_t> ahead_job_;
    std::optional<Step> ahead_result_;
    bool stop_worker_ = false;
    std::string finish_reason_;
    int32_t n_reused_ = 0;
    int32_t n_generated_ = 0;
    int32_t n_graph_sampled_ = 0;
    std::optional<TokenLogprobs> last_logprobs_;
    std::atomic<const char *> last_path_{nullptr};  // where the latest token was sampled
    int64_t t_prompt_us_ = 0;
    int64_t t_generation_us_ = 0;
    std::vector<int32_t> generated_;
};

}  // namespace llamabind
