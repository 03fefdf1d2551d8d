#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "llama.h"
#include "lora.h"
#include "model.h"
#include "prompt_cache.h"

namespace llamabind {

// llama_context_params a user sets; std::nullopt keeps llama.cpp's default.
struct ContextOptions {
    std::optional<int64_t> n_ctx, n_batch, n_ubatch, n_seq_max;
    std::optional<int32_t> n_threads, n_threads_batch;
    std::optional<int32_t> flash_attn;  // -1 auto, 0 off, 1 on
    std::optional<int32_t> type_k, type_v;  // ggml_type
    std::optional<bool> offload_kqv, op_offload, swa_full, kv_unified;
    bool embeddings = false;
    bool no_perf = false;
    std::optional<int32_t> pooling_type, attention_type, rope_scaling_type;
    std::optional<float> rope_freq_base, rope_freq_scale;
    std::optional<float> yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    std::optional<int64_t> yarn_orig_ctx;
    int64_t prompt_cache_bytes = 0;  // host memory for the batch loop's prompt cache (0: none)
};

enum class LogitsMode { None, Last, All };

struct PerfData {
    double t_load_ms, t_prompt_eval_ms, t_eval_ms;
    int32_t n_prompt_eval, n_eval, n_graph_reused;
};

class BatchLoop;

// Called between n_batch pieces of a long evaluation (without the context lock); may throw
// to stop (e.g. on Ctrl-C).
using InterruptCheck = std::function<void()>;

// One llama_context. Keeps its model alive. One thread uses it at a time: every operation
// takes the context's mutex (the binding releases the GIL first).
class Context {
  public:
    Context(const Model & model, const ContextOptions & options);
    ~Context();

    void close();
    bool is_closed() const;
    // At interpreter exit: aborts any decode and stops the batch loop; frees nothing.
    void stop_for_exit() noexcept;

    uint32_t n_ctx() const;
    uint32_t n_batch() const;
    uint32_t n_ubatch() const;
    uint32_t n_seq_max() const;
    int32_t n_threads() const;
    int32_t n_vocab() const { return n_vocab_; }
    // Tokens one sequence may hold: n_ctx / n_seq_max. With kv_unified the sequences share one
    // cache that llama.cpp would let any of them fill; each still gets only its share here, so
    // that one long generation can never take the room its neighbours were promised.
    int64_t n_ctx_seq() const { return n_ctx_seq_; }
    // n_seq_max as made (no lock: it never changes).
    uint32_t n_seq_max_fixed() const { return n_seq_max_; }
    int32_t n_embd() const { return n_embd_; }
    int32_t pooling_type() const;
    void set_n_threads(int32_t n_threads, int32_t n_threads_batch);

    // Evaluates tokens for a sequence, appended after what it holds, in n_batch pieces.
    void decode(const std::vector<int32_t> & tokens, int32_t seq_id, LogitsMode logits,
                const InterruptCheck & interrupt);
    std::vector<float> logits(int32_t i) const;
    std::vector<float> embeddings(int32_t i) const;
    std::vector<float> sequence_embeddings(int32_t seq_id) const;

    // Memory (KV cache) operations.
    void memory_clear();
    bool memory_remove(int32_t seq_id, int32_t p0, int32_t p1);
    void memory_copy(int32_t src, int32_t dst, int32_t p0, int32_t p1);
    void memory_keep(int32_t seq_id);
    void memory_shift(int32_t seq_id, int32_t p0, int32_t p1, int32_t delta);
    int32_t memory_pos_max(int32_t seq_id) const;
    int32_t memory_pos_min(int32_t seq_id) const;
    bool memory_can_shift() const;
    // The tokens this context knows sequence seq_id holds (used to reuse prompt prefixes).
    std::vector<int32_t> cached_tokens(int32_t seq_id) const;
    // For each sequence id (0..n_seq_max-1): how many of `tokens` its cache holds as a prefix,
    // in one hold of the lock (a slot choice waits for one decode step, not one per sequence).
    std::vector<int32_t> prefix_lengths(const std::vector<int32_t> & tokens) const;

    // State.
    std::vector<uint8_t> state_bytes(std::optional<int32_t> seq_id);
    void load_state_bytes(const std::vector<uint8_t> & data, std::optional<int32_t> seq_id);
    void save_state_file(const std::string & path, std::optional<int32_t> seq_id);
    void load_state_file(const std::string & path, std::optional<int32_t> seq_id);

    PerfData perf() const;
    void perf_reset();

    void set_lora(const std::vector<std::pair<std::shared_ptr<LoraAdapter>, float>> & adapters);
    void set_control_vector(const std::vector<float> & data, int32_t n_embd, int32_t il_start, int32_t il_end);

    // For the Generator (and the backend-sampling path): the lock and the raw context.
    std::unique_lock<std::mutex> lock(const char * operation) const;
    // Threads blocked in lock() now. The batch loop lets them in between its steps: a mutex is
    // not fair, and a loop that takes the lock back at once starves them (a new generation
    // could not start until the running ones ended).
    int lock_waiters() const { return lock_waiters_.load(); }
    llama_context * raw(const char * operation) const;
    // Cancellation of one decode: a decode runs under an owner id (a generator's or a batch
    // step's, from next_owner_id()); request_abort(owner) stops it only while that owner's
    // decode is in flight, never another's. close() stops any.
    static uint64_t next_owner_id();
    void set_decode_owner_locked(uint64_t owner) { decode_owner_.store(owner); }
    void request_abort(uint64_t owner) { abort_owner_.store(owner); }
    bool should_abort() const {
        const uint64_t owner = decode_owner_.load();
        return abort_.load() || (owner != 0 && abort_owner_.load() == owner);
    }
    // The loop that batches the generations of a context with n_seq_max > 1 (made on first use;
    // call with the lock held).
    std::shared_ptr<BatchLoop> batch_loop();
    // The batch loop's counters {steps, tokens, sampled} (zeros before it ran), then the prompt
    // cache's {entries, bytes, saved, restored}.
    std::array<int64_t, 7> batch_stats();
    // Caches of sequences' earlier prompts (the batch loop's; use with the lock held).
    PromptCache & prompt_cache_locked() { return prompt_cache_; }
    bool kv_unified() const { return kv_unified_; }
    const std::shared_ptr<llama_model> & model() const { return model_; }
    bool output_on_gpu() const { return output_on_gpu_; }
    std::map<int32_t, std::vector<int32_t>> & tracked_tokens() { return tokens_; }

    // Evaluates one piece (<= n_batch tokens) with the lock held. Returns llama_decode's code.
    int32_t decode_piece_locked(const int32_t * tokens, size_t n, int32_t seq_id, LogitsMode logits);
    void check_fits_locked(size_t n_new, int32_t seq_id, const char * operation) const;
    // Raises ValueError unless 0 <= seq_id < n_seq_max (or seq_id == -1 where `all_allowed`);
    // needs no lock.
    void check_seq(int32_t seq_id, const char * operation, bool all_allowed = false) const;
    void sync_tracked_locked(int32_t seq_id);
    // Copies all of src's cells into dst. Where each sequence has a buffer of its own, at once,
    // through host memory (a State error when llama.cpp refuses it): llama.cpp's own copy
    // between buffers waits for the next decode and takes whatever the source holds then (a
    // prompt restored or a state loaded into it meanwhile went to dst under the old positions:
    // one request answered another's question), and it copies the whole buffer, used or not.
    // llama.cpp's copy otherwise, and while a shift waits for the next decode.
    void copy_sequence_locked(int32_t src, int32_t dst);
    // A State error while a shift waits for the next decode (a saved state would be wrong).
    void check_no_pending_shift_locked(const char * operation) const;
    // A decode ran: llama.cpp has applied any pending shift.
    void decoded_locked() { shift_pending_ = false; }
    // Backend sampling: runs `chain` inside the graph for seq_id's outputs (false: the context
    // cannot). Detaching a chain that is no longer the one attached does nothing.
    bool attach_graph_sampler_locked(int32_t seq_id, llama_sampler * chain);
    void detach_graph_sampler_locked(int32_t seq_id, llama_sampler * chain);
    void detach_any_graph_sampler_locked(int32_t seq_id);
    bool has_graph_sampler_locked(int32_t seq_id, llama_sampler * chain) const;
    // A new generator on seq_id takes the sequence over: the ticket it gets is the current one
    // until the next claim, and older generators drop their decode-ahead work.
    uint64_t claim_sequence_locked(int32_t seq_id) { return ++claims_[seq_id]; }
    bool holds_sequence_locked(int32_t seq_id, uint64_t ticket) const {
        auto it = claims_.find(seq_id);
        return it != claims_.end() && it->second == ticket;
    }

  private:
    std::shared_ptr<llama_model> model_;
    llama_context * ctx_ = nullptr;
    mutable std::mutex mutex_;
    mutable std::atomic<int> lock_waiters_{0};
    std::atomic<bool> abort_{false};
    std::atomic<uint64_t> decode_owner_{0};
    std::atomic<uint64_t> abort_owner_{0};
    std::mutex loop_mutex_;
    std::shared_ptr<BatchLoop> loop_;
    bool loop_stopped_ = false;
    bool kv_unified_ = false;
    bool shift_pending_ = false;  // memory_shift moved positions; the keys turn at the next decode
    llama_batch batch_{};
    int32_t n_vocab_ = 0;
    int64_t n_ctx_seq_ = 0;
    uint32_t n_seq_max_ = 1;
    int32_t n_embd_ = 0;
    std::map<int32_t, std::vector<int32_t>> tokens_;
    std::map<int32_t, llama_sampler *> graph_samplers_;  // not owned: the generators hold them
    std::map<int32_t, uint64_t> claims_;
    bool output_on_gpu_ = false;
    std::vector<std::shared_ptr<LoraAdapter>> adapters_;
    PromptCache prompt_cache_;
};

}  // namespace llamabind
