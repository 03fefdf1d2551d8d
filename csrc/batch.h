#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "context.h"
#include "llama.h"
#include "sampler.h"
#include "step.h"

namespace llamabind {

class BatchLoop;

// One generation served by a BatchLoop. The loop produces its steps (one token each, or the end);
// the Generator that owns it consumes them. At most `depth` steps wait unconsumed: a slow
// consumer only pauses its own sequence, never the others. The depth absorbs a consumer's
// jitter (a Python thread waiting for the GIL, an event loop busy elsewhere): with 2, a
// sequence whose consumer lagged two tokens dropped out of the batch, and the loop ran
// half-empty steps that cost nearly as much as full ones (1.6-2.9 generating sequences per
// step with 4 busy streams; with 8, 3.6-3.9).
class BatchSequence {
  public:
    static constexpr size_t depth = 8;

    BatchSequence(std::shared_ptr<BatchLoop> loop, std::shared_ptr<Sampler> sampler, std::vector<int32_t> prompt,
                  GenerateOptions options, bool in_graph);
    ~BatchSequence();
    BatchSequence(const BatchSequence &) = delete;
    BatchSequence & operator=(const BatchSequence &) = delete;

    // The next step, waiting for it; between waits, interrupt() may throw (Ctrl-C).
    Step take(const InterruptCheck & interrupt);
    // Stops this generation only; the loop drops it before its next decode.
    void cancel();
    bool is_cancelled() const { return cancelled_.load(); }
    bool samples_in_graph() const { return in_graph_; }
    int32_t n_reused() const { return n_reused_.load(); }
    int64_t t_prompt_us() const { return t_prompt_us_.load(); }

  private:
    friend class BatchLoop;

    void push(Step step, bool last);
    bool wants_step();  // room in the queue and not finished (loop side)

    std::shared_ptr<BatchLoop> loop_;
    std::shared_ptr<Sampler> sampler_;
    const std::vector<int32_t> prompt_;
    const GenerateOptions options_;
    const bool in_graph_;
    std::atomic<bool> cancelled_{false};
    std::atomic<int32_t> n_reused_{0};
    std::atomic<int64_t> t_prompt_us_{0};

    // Consumer and loop share these under mutex_.
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Step> steps_;
    bool done_ = false;  // no step comes after those queued

    // Only the loop thread touches these.
    bool started_ = false;
    size_t n_evaluated_ = 0;  // prompt tokens in the KV cache
    std::optional<int32_t> pending_;  // sampled, handed to the queue, not yet decoded
    int32_t n_produced_ = 0;
    int64_t t_start_us_ = 0;
    llama_sampler * graph_chain_ = nullptr;  // ours; attached to the context while we run
};

// The decode loop of a context with several sequences: each step is ONE llama_decode holding the
// next token of every generating sequence plus, within n_batch, chunks of the prompts being
// evaluated (chunked prefill), then each sequence samples from its own output with its own
// chain. Runs on a thread of its own with the context lock held per step; Python only waits on
// its own sequence's queue.
class BatchLoop : public std::enable_shared_from_this<BatchLoop> {
  public:
    BatchLoop(Context * context, int32_t n_batch);
    ~BatchLoop();
    BatchLoop(const BatchLoop &) = delete;
    BatchLoop & operator=(const BatchLoop &) = delete;

    // Adds a generation on options.seq_id (from any thread, without the context lock); an older one on the
    // same sequence is superseded (finishes "cancelled").
    std::shared_ptr<BatchSequence> start(std::shared_ptr<Sampler> sampler, std::vector<int32_t> prompt,
                                         GenerateOptions options, bool in_graph);
    // A sequence was consumed from or cancelled: the loop may have work again.
    void wake();
    // Ends the loop (every sequence still running finishes "cancelled") and joins its thread.
    void stop() noexcept;

    // What the loop did so far: decode steps, tokens decoded, and outputs sampled by
    // generating sequences (their mean per step is how full the batches were).
    struct Stats {
        int64_t n_steps = 0;
        int64_t n_tokens = 0;
        int64_t n_sampled = 0;
    };
    Stats stats() const { return {n_steps_.load(), n_tokens_.load(), n_sampled_.load()}; }

  private:
    struct Output {
        BatchSequence * sequence;
        int32_t index;  // in the batch
        bool first;     // the prompt's last token: the first sampled token follows
    };

    void run() noexcept;
    bool has_work_locked();
    void step();
    void begin_sequence(llama_context * ctx, BatchSequence & sequence);
    size_t reuse_prefix(llama_context * ctx, BatchSequence & sequence);
    void end_sequence(BatchSequence & sequence, Step last);
    int32_t sample(llama_context * ctx, BatchSequence & sequence, int32_t index, bool & in_graph);

    Context * context_;  // owns this loop and stops it before it is freed
    std::mutex mutex_;
    std::condition_variable work_;
    std::vector<std::shared_ptr<BatchSequence>> sequences_;  // guarded by mutex_
    std::vector<BatchSequence *> in_flight_;                // guarded by mutex_
    uint64_t in_flight_owner_ = 0;                           // guarded by mutex_
    bool stopping_ = false;
    std::thread thread_;
    llama_batch batch_{};
    std::vector<llama_token_data> candidates_;
    std::atomic<int64_t> n_steps_{0};
    std::atomic<int64_t> n_tokens_{0};
    std::atomic<int64_t> n_sampled_{0};
};

// The token a graph-attached chain picked for output i; where the device ran only a prefix of
// the chain, the rest runs here on what the graph left (as llama.cpp's common sampler does).
int32_t sample_from_graph(llama_context * ctx, llama_sampler * chain, int32_t i, int32_t n_vocab,
                          std::vector<llama_token_data> & candidates);

}  // namespace llamabind
