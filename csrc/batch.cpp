#include "batch.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "backend.h"
#include "errors.h"
#include "model.h"

namespace llamabind {
namespace {

// Borrowing another sequence's prefix copies its cache; below this many tokens re-evaluating
// is as cheap.
constexpr size_t min_borrowed_tokens = 8;

Step finished(const char * reason) {
    Step step;
    step.finish = reason;
    return step;
}

}  // namespace

void token_logprobs(llama_context * ctx, int32_t i, int32_t n_vocab, int32_t token, int32_t n_top,
                    TokenLogprobs & out) {
    const float * logits = llama_get_logits_ith(ctx, i);
    if (logits == nullptr) throw Error(ErrorKind::Decode, "[Generator] no logits for the log-probabilities");
    float max = -INFINITY;
    for (int32_t t = 0; t < n_vocab; ++t) max = std::max(max, logits[t]);
    double sum = 0.0;
    for (int32_t t = 0; t < n_vocab; ++t) sum += std::exp(static_cast<double>(logits[t] - max));
    const float log_z = max + static_cast<float>(std::log(sum));
    out.logprob = logits[token] - log_z;
    out.top.clear();
    const int32_t k = std::min(n_top, n_vocab);
    if (k <= 0) return;
    std::vector<int32_t> ids(n_vocab);
    for (int32_t t = 0; t < n_vocab; ++t) ids[t] = t;
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    out.top.reserve(k);
    for (int32_t j = 0; j < k; ++j) out.top.emplace_back(ids[j], logits[ids[j]] - log_z);
}

int32_t sample_from_graph(llama_context * ctx, llama_sampler * chain, int32_t i, int32_t n_vocab,
                          std::vector<llama_token_data> & candidates) {
    int32_t token = llama_get_sampled_token_ith(ctx, i);
    if (token == LLAMA_TOKEN_NULL) {
        const float * probs = llama_get_sampled_probs_ith(ctx, i);
        const float * logits = llama_get_sampled_logits_ith(ctx, i);
        const llama_token * ids = llama_get_sampled_candidates_ith(ctx, i);
        if (logits != nullptr && ids != nullptr) {
            const uint32_t n = llama_get_sampled_logits_count_ith(ctx, i);
            candidates.resize(n);
            for (uint32_t k = 0; k < n; ++k) candidates[k] = {ids[k], logits[k], probs != nullptr ? probs[k] : 0.0f};
        } else {
            const float * raw = llama_get_logits_ith(ctx, i);
            if (raw == nullptr) throw Error(ErrorKind::Decode, "[Generator] the graph returned neither a token nor logits");
            candidates.resize(n_vocab);
            for (int32_t t = 0; t < n_vocab; ++t) candidates[t] = {t, raw[t], 0.0f};
        }
        llama_token_data_array cur{candidates.data(), candidates.size(), -1, false};
        llama_sampler_apply(chain, &cur);  // skips the part that ran in the graph
        if (cur.selected < 0) throw Error(ErrorKind::Decode, "[Generator] the sampler chain selected no token");
        token = cur.data[cur.selected].id;
    }
    llama_sampler_accept(chain, token);
    return token;
}

// --- BatchSequence ------------------------------------------------------------------------------

BatchSequence::BatchSequence(std::shared_ptr<BatchLoop> loop, std::shared_ptr<Sampler> sampler,
                             std::vector<int32_t> prompt, GenerateOptions options, bool in_graph)
    : loop_(std::move(loop)),
      sampler_(std::move(sampler)),
      prompt_(std::move(prompt)),
      options_(std::move(options)),
      in_graph_(in_graph) {
    if (in_graph_) graph_chain_ = sampler_->clone_chain();
}

BatchSequence::~BatchSequence() {
    if (graph_chain_ != nullptr) llama_sampler_free(graph_chain_);  // detached when the sequence ended
}

Step BatchSequence::take(const InterruptCheck & interrupt) {
    std::unique_lock<std::mutex> lk(mutex_);
    while (steps_.empty()) {
        if (done_) return finished("cancelled");
        if (ready_.wait_for(lk, std::chrono::milliseconds(100)) == std::cv_status::timeout && interrupt) {
            lk.unlock();
            interrupt();  // may throw (Ctrl-C): the Generator cancels us
            lk.lock();
        }
    }
    Step step = std::move(steps_.front());
    steps_.pop_front();
    lk.unlock();
    loop_->wake();  // room in our queue again
    return step;
}

void BatchSequence::cancel() {
    cancelled_.store(true);
    loop_->wake();
}

void BatchSequence::push(Step step, bool last) {
    {
        std::lock_guard<std::mutex> lk(mutex_);
        if (done_) return;
        steps_.push_back(std::move(step));
        done_ = last;
    }
    ready_.notify_all();
}

bool BatchSequence::wants_step() {
    std::lock_guard<std::mutex> lk(mutex_);
    return !done_ && steps_.size() < depth;
}

// --- BatchLoop ----------------------------------------------------------------------------------

BatchLoop::BatchLoop(Context * context, int32_t n_batch) : context_(context) {
    batch_ = llama_batch_init(n_batch, 0, 1);
}

BatchLoop::~BatchLoop() {
    stop();
    llama_batch_free(batch_);
}

std::shared_ptr<BatchSequence> BatchLoop::start(std::shared_ptr<Sampler> sampler, std::vector<int32_t> prompt,
                                                GenerateOptions options, bool in_graph) {
    auto sequence =
        std::make_shared<BatchSequence>(shared_from_this(), std::move(sampler), std::move(prompt), std::move(options), in_graph);
    {
        std::lock_guard<std::mutex> lk(mutex_);
        if (stopping_) throw_closed("Context.generate");
        for (auto & other : sequences_) {
            if (other->options_.seq_id == sequence->options_.seq_id) other->cancelled_.store(true);  // superseded
        }
        if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
        sequences_.push_back(sequence);
    }
    work_.notify_all();
    return sequence;
}

void BatchLoop::wake() {
    {
        std::lock_guard<std::mutex> lk(mutex_);
        // A decode whose every sequence was cancelled is not worth finishing: abort it.
        if (!in_flight_.empty() &&
            std::all_of(in_flight_.begin(), in_flight_.end(), [](BatchSequence * s) { return s->is_cancelled(); })) {
            context_->request_abort(in_flight_owner_);
        }
    }
    work_.notify_all();
}

void BatchLoop::stop() noexcept {
    std::vector<std::shared_ptr<BatchSequence>> rest;
    {
        std::lock_guard<std::mutex> lk(mutex_);
        stopping_ = true;
        if (in_flight_owner_ != 0) context_->request_abort(in_flight_owner_);
        rest.swap(sequences_);
    }
    work_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    try {
        auto guard = context_->lock("Generator");
        for (auto & sequence : rest) end_sequence(*sequence, finished("cancelled"));
    } catch (...) {
        for (auto & sequence : rest) sequence->push(finished("cancelled"), true);
    }
}

bool BatchLoop::has_work_locked() {
    for (auto & sequence : sequences_) {
        if (sequence->is_cancelled() || !sequence->started_ || sequence->n_evaluated_ < sequence->prompt_.size() ||
            sequence->wants_step()) {
            return true;
        }
    }
    return false;
}

void BatchLoop::run() noexcept {
    for (;;) {
        bool gather = false;
        {
            std::unique_lock<std::mutex> lk(mutex_);
            if (!stopping_ && !has_work_locked()) {
                if (!work_.wait_for(lk, std::chrono::milliseconds(5), [&] { return stopping_ || has_work_locked(); })) {
                    lk.unlock();
                    release_compute_threads();  // idle for a while: free this thread's OpenMP team
                    lk.lock();
                    work_.wait(lk, [&] { return stopping_ || has_work_locked(); });
                }
                // Woken by new requests only: those made right after the first (a caller starting
                // several, or several callers at once) would otherwise miss its prompt step and
                // each take a step of their own.
                gather = std::none_of(sequences_.begin(), sequences_.end(),
                                      [](const std::shared_ptr<BatchSequence> & s) { return s->started_; });
            }
            if (stopping_) return;
        }
        if (gather) std::this_thread::sleep_for(std::chrono::microseconds(500));
        step();
    }
}

// Where a sequence starts: the longest prefix of its prompt that it holds, or that another
// sequence holds (copied over), is kept; the rest is evaluated.
size_t BatchLoop::reuse_prefix(llama_context * ctx, BatchSequence & sequence) {
    const int32_t seq = sequence.options_.seq_id;
    const std::vector<int32_t> & prompt = sequence.prompt_;
    llama_memory_t mem = llama_get_memory(ctx);
    const llama_model * model = context_->model().get();
    auto & tracked = context_->tracked_tokens();
    context_->sync_tracked_locked(seq);
    std::vector<int32_t> & own = tracked[seq];
    size_t n_keep = common_prefix(own, prompt);
    // Sliding-window and recurrent caches cannot hand a prefix over (the window or state moved on).
    const bool can_borrow = llama_model_n_swa(model) == 0 && !llama_model_is_recurrent(model) &&
                            !llama_model_is_hybrid(model);
    int32_t donor = -1;
    size_t n_donor = n_keep;
    if (can_borrow) {
        for (auto & [other, held] : tracked) {
            if (other == seq || other < 0 || static_cast<uint32_t>(other) >= llama_n_seq_max(ctx)) continue;
            context_->sync_tracked_locked(other);
            const size_t n = common_prefix(held, prompt);
            if (n > n_donor) {
                n_donor = n;
                donor = other;
            }
        }
    }
    // Earlier prompts kept in host memory (can_borrow: a restored state must be the whole cache).
    PromptCache & cache = context_->prompt_cache_locked();
    const size_t n_cached = can_borrow && cache.enabled() ? cache.longest_prefix(prompt) : 0;
    const bool from_donor = donor >= 0 && n_donor >= n_keep + min_borrowed_tokens;
    const bool from_cache = n_cached >= std::max(n_keep, from_donor ? n_donor : 0) + min_borrowed_tokens;
    // What this sequence holds past the part it keeps is about to go: keep it in host memory.
    if (can_borrow && own.size() >= (from_donor || from_cache ? 0 : n_keep) + PromptCache::min_tokens) {
        cache.save(ctx, seq, own);
    }
    if (from_cache) {
        own = cache.restore(ctx, seq, prompt);
        n_keep = common_prefix(own, prompt);
    } else if (from_donor) {
        llama_memory_seq_rm(mem, seq, -1, -1);
        bool ok = true;
        if (context_->kv_unified()) {
            llama_memory_seq_cp(mem, donor, seq, 0, static_cast<llama_pos>(n_donor));
        } else {  // one buffer per sequence: whole copies only, then cut
            try {
                context_->copy_sequence_locked(donor, seq);
                ok = llama_memory_seq_rm(mem, seq, static_cast<llama_pos>(n_donor), -1);
            } catch (const Error &) {
                ok = false;
            }
        }
        if (ok) {
            own.assign(tracked[donor].begin(), tracked[donor].begin() + static_cast<std::ptrdiff_t>(n_donor));
            n_keep = n_donor;
        } else {
            llama_memory_seq_rm(mem, seq, -1, -1);
            own.clear();
            n_keep = 0;
        }
    }
    if (n_keep == prompt.size()) --n_keep;  // the last prompt token is evaluated again for its logits
    if (n_keep > 0 && llama_model_n_swa(model) > 0) {
        // A sliding window drops old positions: keep the prefix only while the window before it is held.
        const llama_pos pos_min = llama_memory_seq_pos_min(mem, seq);
        if (pos_min > std::max<llama_pos>(0, static_cast<llama_pos>(n_keep) - std::max(1, llama_model_n_swa(model)))) {
            n_keep = 0;
        }
    }
    if (!llama_memory_seq_rm(mem, seq, static_cast<llama_pos>(n_keep), -1)) {
        llama_memory_seq_rm(mem, seq, -1, -1);  // recurrent state: start over
        n_keep = 0;
    }
    own.resize(std::min(own.size(), n_keep));
    context_->sync_tracked_locked(seq);
    return std::min(n_keep, own.size());
}

void BatchLoop::begin_sequence(llama_context * ctx, BatchSequence & sequence) {
    sequence.started_ = true;
    sequence.t_start_us_ = llama_time_us();
    const size_t n_keep = reuse_prefix(ctx, sequence);
    sequence.n_evaluated_ = n_keep;
    sequence.n_reused_.store(static_cast<int32_t>(n_keep));
    const int32_t seq = sequence.options_.seq_id;
    if (sequence.graph_chain_ != nullptr) {
        if (!context_->attach_graph_sampler_locked(seq, sequence.graph_chain_)) {
            llama_sampler_free(sequence.graph_chain_);
            sequence.graph_chain_ = nullptr;
        }
    } else {
        context_->detach_any_graph_sampler_locked(seq);  // an abandoned generation's chain
    }
}

// Called with the context lock held.
void BatchLoop::end_sequence(BatchSequence & sequence, Step last) {
    if (sequence.graph_chain_ != nullptr) context_->detach_graph_sampler_locked(sequence.options_.seq_id, sequence.graph_chain_);
    sequence.push(std::move(last), true);
}

int32_t BatchLoop::sample(llama_context * ctx, BatchSequence & sequence, int32_t index, bool & in_graph) {
    llama_sampler * chain = sequence.graph_chain_;
    if (chain != nullptr && context_->has_graph_sampler_locked(sequence.options_.seq_id, chain)) {
        const int32_t token = sample_from_graph(ctx, chain, index, context_->n_vocab(), candidates_);
        sequence.sampler_->accept(token);
        in_graph = true;
        return token;
    }
    in_graph = false;
    return sequence.sampler_->sample(ctx, index);
}

void BatchLoop::step() {
    std::vector<BatchSequence *> ended;
    // Whoever waits for the context (a generation starting, a cache query) goes first, for up
    // to ~5 ms: otherwise this loop takes the lock back at once, step after step.
    for (int i = 0; i < 200 && context_->lock_waiters() > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(25));
    }
    std::unique_lock<std::mutex> guard;
    llama_context * ctx = nullptr;
    try {
        guard = context_->lock("Generator");
        ctx = context_->raw("Generator");
    } catch (...) {  // closed: stop() finishes everything
        return;
    }
    // The sequences as they are now, with the lock held: a generation that started while this
    // loop waited for the lock joins this step, not the next one.
    std::vector<std::shared_ptr<BatchSequence>> current;
    {
        std::lock_guard<std::mutex> lk(mutex_);
        if (stopping_) return;
        current = sequences_;
    }
    const size_t n_batch = llama_n_batch(ctx);
    const int64_t n_ctx_seq = context_->n_ctx_seq();
    llama_memory_t mem = llama_get_memory(ctx);
    std::vector<Output> outputs;
    std::vector<std::pair<BatchSequence *, size_t>> chunks;  // prompt tokens added per sequence
    batch_.n_tokens = 0;
    auto add = [&](int32_t token, llama_pos pos, int32_t seq, bool logits) {
        const int32_t i = batch_.n_tokens++;
        batch_.token[i] = token;
        batch_.pos[i] = pos;
        batch_.n_seq_id[i] = 1;
        batch_.seq_id[i][0] = seq;
        batch_.logits[i] = logits;
        return i;
    };
    auto end = [&](BatchSequence & sequence, Step last) {
        end_sequence(sequence, std::move(last));
        ended.push_back(&sequence);
    };

    // What goes into this step: the next token of every generating sequence first, then prompt
    // chunks in arrival order, within n_batch.
    struct Entry {
        BatchSequence * sequence;
        size_t n_prompt;  // 0: the pending token of a generating sequence
    };
    std::vector<Entry> plan;
    size_t n_planned = 0;
    for (auto & s : current) {
        if (s->is_cancelled()) {
            end(*s, finished("cancelled"));
        } else if (n_planned < n_batch && s->started_ && s->n_evaluated_ >= s->prompt_.size() && s->pending_ && s->wants_step()) {
            if (llama_memory_seq_pos_max(mem, s->options_.seq_id) + 2 > n_ctx_seq) {
                end(*s, finished("context"));
                continue;
            }
            plan.push_back({s.get(), 0});
            ++n_planned;
        }
    }
    for (auto & s : current) {
        if (s->is_cancelled() || (s->started_ && s->n_evaluated_ >= s->prompt_.size())) continue;
        if (n_planned >= n_batch) break;
        if (!s->started_) begin_sequence(ctx, *s);
        const size_t n = std::min(s->prompt_.size() - s->n_evaluated_, n_batch - n_planned);
        plan.push_back({s.get(), n});
        n_planned += n;
    }
    // Into the batch in increasing sequence ids: where each sequence has a cache stream of its
    // own (kv_unified off), llama.cpp splits a batch into micro-batches of consecutive sequence
    // ids, so sequences in arrival order (2, 0, 3, 1) would cost two graph runs instead of one.
    std::stable_sort(plan.begin(), plan.end(), [](const Entry & a, const Entry & b) {
        return a.sequence->options_.seq_id < b.sequence->options_.seq_id;
    });
    for (const Entry & e : plan) {
        BatchSequence & s = *e.sequence;
        const int32_t seq = s.options_.seq_id;
        if (e.n_prompt == 0) {
            const llama_pos pos = llama_memory_seq_pos_max(mem, seq) + 1;
            outputs.push_back({&s, add(*s.pending_, pos, seq, true), false});
            continue;
        }
        const bool completes = s.n_evaluated_ + e.n_prompt == s.prompt_.size();
        int32_t last = -1;
        for (size_t k = 0; k < e.n_prompt; ++k) {
            const size_t i = s.n_evaluated_ + k;
            last = add(s.prompt_[i], static_cast<llama_pos>(i), seq, completes && k + 1 == e.n_prompt);
        }
        chunks.emplace_back(&s, e.n_prompt);
        if (completes) outputs.push_back({&s, last, true});
    }

    if (batch_.n_tokens > 0) {
        const uint64_t owner = Context::next_owner_id();
        {
            std::lock_guard<std::mutex> lk(mutex_);
            in_flight_.clear();
            for (const Output & o : outputs) in_flight_.push_back(o.sequence);
            for (auto & [s, n] : chunks) in_flight_.push_back(s);
            in_flight_owner_ = owner;
        }
        context_->set_decode_owner_locked(owner);
        const int64_t t0 = llama_time_us();
        const int32_t rc = llama_decode(ctx, batch_);
        const int64_t elapsed_us = llama_time_us() - t0;
        context_->set_decode_owner_locked(0);
        {
            std::lock_guard<std::mutex> lk(mutex_);
            in_flight_.clear();
            in_flight_owner_ = 0;
        }
        auto & tracked = context_->tracked_tokens();
        if (rc != 0) {
            std::exception_ptr error;
            if (rc != 2) {
                try {
                    throw Error(rc == 1 ? ErrorKind::ContextOverflow : ErrorKind::Decode,
                                "[Generator] llama_decode returned " + std::to_string(rc) +
                                    (rc == 1 ? ": no room in the KV cache for the batch" : ""))
                        .with("code", static_cast<int64_t>(rc));
                } catch (...) {
                    error = std::current_exception();
                }
            }
            std::vector<BatchSequence *> failed;
            for (const Output & o : outputs) failed.push_back(o.sequence);
            for (auto & [s, n] : chunks) failed.push_back(s);
            for (BatchSequence * s : failed) {
                if (std::find(ended.begin(), ended.end(), s) != ended.end()) continue;
                context_->sync_tracked_locked(s->options_.seq_id);
                Step last = finished(error ? "error" : "cancelled");
                last.error = error;
                end(*s, std::move(last));
            }
        } else {
            context_->decoded_locked();
            n_steps_.fetch_add(1);
            n_tokens_.fetch_add(batch_.n_tokens);
            n_sampled_.fetch_add(static_cast<int64_t>(std::count_if(outputs.begin(), outputs.end(), [](const Output & o) { return !o.first; })));
            for (int32_t i = 0; i < batch_.n_tokens; ++i) {
                auto & held = tracked[batch_.seq_id[i][0]];
                if (static_cast<llama_pos>(held.size()) != batch_.pos[i]) held.resize(std::max(batch_.pos[i], 0), -1);
                held.push_back(batch_.token[i]);
            }
            for (auto & [s, n] : chunks) s->n_evaluated_ += n;
            const llama_vocab * vocab = llama_model_get_vocab(context_->model().get());
            for (const Output & o : outputs) {
                BatchSequence & s = *o.sequence;
                if (s.is_cancelled()) {  // no sampling (the sampler accepts what it samples)
                    end(s, finished("cancelled"));
                    continue;
                }
                Step st;
                bool last = false;
                try {
                    bool in_graph = false;
                    const int32_t token = sample(ctx, s, o.index, in_graph);
                    st.token = token;
                    st.in_graph = in_graph;
                    if (s.options_.n_logprobs >= 0) {
                        st.logprobs.emplace();
                        token_logprobs(ctx, o.index, context_->n_vocab(), token, s.options_.n_logprobs, *st.logprobs);
                    }
                    if (!s.options_.ignore_eog && llama_vocab_is_eog(vocab, token)) {
                        st.finish = "eog";
                        last = true;
                    } else {
                        const bool special = s.options_.render_special ||
                                             std::binary_search(s.options_.render_special_tokens.begin(),
                                                                s.options_.render_special_tokens.end(), token);
                        st.piece = token_piece(vocab, token, special);
                    }
                    s.pending_ = token;
                    ++s.n_produced_;
                    if (s.options_.max_tokens >= 0 && s.n_produced_ >= s.options_.max_tokens) last = true;
                } catch (...) {
                    st.error = std::current_exception();
                    st.finish = "error";
                    last = true;
                }
                st.elapsed_us = elapsed_us;
                if (o.first) s.t_prompt_us_.store(llama_time_us() - s.t_start_us_);
                if (last) {
                    end(s, std::move(st));
                } else {
                    s.push(std::move(st), false);
                }
            }
        }
    }
    guard.unlock();
    if (!ended.empty()) {
        std::lock_guard<std::mutex> lk(mutex_);
        sequences_.erase(std::remove_if(sequences_.begin(), sequences_.end(),
                                        [&](const std::shared_ptr<BatchSequence> & s) {
                                            return std::find(ended.begin(), ended.end(), s.get()) != ended.end();
                                        }),
                         sequences_.end());
    }
}

}  // namespace llamabind
