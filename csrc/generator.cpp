#include "generator.h"

#include <algorithm>
#include <system_error>

#include "backend.h"
#include "batch.h"
#include "errors.h"

namespace llamabind {

Generator::Generator(std::shared_ptr<Context> context, std::shared_ptr<Sampler> sampler,
                     std::vector<int32_t> prompt, GenerateOptions options)
    : context_(std::move(context)), sampler_(std::move(sampler)), prompt_(std::move(prompt)), options_(std::move(options)) {
    if (prompt_.empty()) throw_value("[Context.generate] the prompt has no tokens");
    sampler_->check_model(context_->model().get(), "Context.generate");  // before any evaluation
    if (options_.max_tokens < -1) throw_value("[Context.generate] max_tokens must be >= 0, or -1 for no limit");
    if (options_.n_logprobs < -1 || options_.n_logprobs > 100) {
        throw_value("[Context.generate] n_logprobs must be -1 (none), 0 (the chosen token's) or up to 100");
    }
    if (options_.n_logprobs >= 0 && options_.backend_sampling.value_or(false)) {
        throw_value("[Context.generate] log-probabilities need the logits on the CPU: pass backend_sampling=None or False");
    }
    std::sort(options_.render_special_tokens.begin(), options_.render_special_tokens.end());
    const int32_t n_vocab = context_->n_vocab();
    for (int32_t t : prompt_) {
        if (t < 0 || t >= n_vocab) {
            throw_value("[Context.generate] prompt token " + std::to_string(t) + " is outside the vocabulary (0.." +
                        std::to_string(n_vocab - 1) + ")");
        }
    }
    if (static_cast<int64_t>(prompt_.size()) > context_->n_ctx_seq()) {
        const int64_t n_ctx = context_->n_ctx_seq();
        throw Error(ErrorKind::ContextOverflow, "[Context.generate] the prompt has " + std::to_string(prompt_.size()) +
                                                    " tokens, the context holds " + std::to_string(n_ctx))
            .with("n_tokens", static_cast<int64_t>(prompt_.size()))
            .with("n_ctx", n_ctx);
    }
    if (context_->n_seq_max_fixed() > 1) {
        // Several sequences: the context's batch loop serves this generation beside the others.
        // Handing it over needs no context lock (the loop sets the sequence up in its next
        // step), so a new request never waits for the step in flight; nor does a batch of
        // requests made one after another, which all start in the same step.
        context_->check_seq(options_.seq_id, "Context.generate");
        batched_ = context_->batch_loop()->start(sampler_, prompt_, options_, wants_graph_sampling());
        return;
    }
    auto guard = context_->lock("Context.generate");
    context_->check_fits_locked(0, options_.seq_id, "Context.generate");
    ticket_ = context_->claim_sequence_locked(options_.seq_id);
    attach_graph_sampler();
}

Generator::~Generator() {
    if (batched_) batched_->cancel();
    stop_worker();
    release_graph_sampler();
}

// Backend sampling runs a copy of the chain inside the graph (a chain is initialised for one
// graph only once); the caller's Sampler still accepts every token, so its state follows along.
// Called with the context lock held.
bool Generator::wants_graph_sampling() const {
    const bool can_run = sampler_->can_run_in_graph();
    if (options_.backend_sampling.value_or(false) && !can_run) {
        std::string names;
        for (const std::string & name : sampler_->names()) names += (names.empty() ? "" : ", ") + name;
        throw_value("[Context.generate] backend_sampling=True, but the sampler chain (" + names +
                    ") cannot run in the compute graph: grammars, penalties, DRY, typical, XTC, top-n-sigma and "
                    "mirostat sample on the CPU; pass backend_sampling=None to choose automatically");
    }
    // Automatic: in the graph when the logits are on a GPU (reading them back is what costs
    // there). With the output on the CPU, sampling in the graph is no faster and for a 262k
    // vocabulary slower (Gemma 3: 46.8 against 48.0 tokens/s, benchmarks/RESULTS.md).
    if (options_.n_logprobs >= 0) return false;  // they are computed from the logits
    return options_.backend_sampling.value_or(can_run && context_->output_on_gpu());
}

void Generator::attach_graph_sampler() {
    const int32_t seq = options_.seq_id;
    if (!wants_graph_sampling()) {
        context_->detach_any_graph_sampler_locked(seq);  // an abandoned generator's chain
        return;
    }
    graph_chain_ = sampler_->clone_chain();
    if (!context_->attach_graph_sampler_locked(seq, graph_chain_)) {
        llama_sampler_free(graph_chain_);
        graph_chain_ = nullptr;
    }
}

void Generator::release_graph_sampler() noexcept {
    if (graph_chain_ == nullptr) return;
    try {
        auto guard = context_->lock("Generator");
        context_->detach_graph_sampler_locked(options_.seq_id, graph_chain_);
        llama_sampler_free(graph_chain_);
        graph_chain_ = nullptr;
    } catch (...) {
        // the context is closed: llama.cpp dropped the attachment with it
        llama_sampler_free(graph_chain_);
        graph_chain_ = nullptr;
    }
}

std::string Generator::sampling_backend() const {
    if (const char * path = last_path_.load()) return path;  // also once the context is closed
    if (batched_) return batched_->samples_in_graph() ? "backend" : "cpu";
    auto guard = context_->lock("Generator.sampling_backend");
    return graph_chain_ != nullptr && context_->has_graph_sampler_locked(options_.seq_id, graph_chain_) ? "backend"
                                                                                                        : "cpu";
}

// The token the graph picked; where the device ran only a prefix of the chain, the rest runs
// here on what the graph left (as llama.cpp's common sampler does).
int32_t Generator::sample_in_graph_locked(llama_context * ctx) {
    return sample_from_graph(ctx, graph_chain_, -1, context_->n_vocab(), candidates_);
}

void Generator::finish(const char * reason) {
    if (finish_reason_.empty()) finish_reason_ = reason;
}

void Generator::cancel() {
    cancelled_.store(true);
    if (batched_) {
        batched_->cancel();
    } else {
        context_->request_abort(id_);  // aborts our decode in flight, never another generator's
    }
}

void Generator::close() {
    cancel();
    stop_worker();  // the decode in flight is aborted; wait for it
    finish("cancelled");
    release_graph_sampler();
}

// Reuses the longest prefix of the prompt that the sequence already holds, then evaluates the
// rest in n_batch pieces but the last, whose start it returns (advance decodes it together with
// the first sampling); at least the last prompt token is left for that.
size_t Generator::evaluate_prompt(const InterruptCheck & interrupt) {
    const int32_t seq = options_.seq_id;
    size_t n_batch = 0;
    size_t n_keep = 0;
    {
        auto guard = context_->lock("Generator");
        if (!context_->holds_sequence_locked(seq, ticket_)) {
            cancelled_.store(true);  // a newer generator took the sequence before we began
            return prompt_.size();
        }
        llama_context * ctx = context_->raw("Generator");
        auto & tracked = context_->tracked_tokens()[seq];
        context_->sync_tracked_locked(seq);
        while (n_keep < tracked.size() && n_keep < prompt_.size() && tracked[n_keep] == prompt_[n_keep]) ++n_keep;
        if (n_keep == prompt_.size()) --n_keep;
        llama_memory_t mem = llama_get_memory(ctx);
        if (!llama_memory_seq_rm(mem, seq, static_cast<llama_pos>(n_keep), -1)) {
            llama_memory_seq_rm(mem, seq, -1, -1);  // recurrent state: start over
            n_keep = 0;
        }
        tracked.resize(std::min(tracked.size(), n_keep));
        context_->sync_tracked_locked(seq);
        n_keep = std::min(n_keep, tracked.size());
        n_batch = llama_n_batch(ctx);
    }
    n_reused_ = static_cast<int32_t>(n_keep);
    // Every piece but the last; the last is decoded with the first token's sampling (advance).
    size_t start = n_keep;
    for (; prompt_.size() - start > n_batch; start += n_batch) {
        {
            auto guard = context_->lock("Generator");
            if (cancelled_.load()) break;
            context_->set_decode_owner_locked(id_);
            if (cancelled_.load()) break;
            const int32_t rc = context_->decode_piece_locked(prompt_.data() + start, n_batch, options_.seq_id,
                                                             LogitsMode::None);
            if (rc == 2) break;  // aborted by cancel()
            if (rc != 0) {
                finish("error");
                throw Error(rc == 1 ? ErrorKind::ContextOverflow : ErrorKind::Decode,
                            "[Generator] evaluating the prompt failed: llama_decode returned " + std::to_string(rc))
                    .with("code", static_cast<int64_t>(rc));
            }
        }
        if (interrupt) interrupt();
    }
    return start;
}

// Decodes the token handed out last (or the prompt's last piece) and samples the next, in one
// hold of the context lock, so that no other decode replaces the outputs in between. Runs on the
// caller's thread or on the decode-ahead worker; errors travel back in the Step.
Step Generator::advance(const int32_t * tokens, size_t n, bool prompt) noexcept {
    Step step;
    const int64_t t0 = llama_time_us();
    try {
        auto guard = context_->lock("Generator");
        advance_locked(context_->raw("Generator"), tokens, n, prompt, step);
    } catch (...) {
        step.error = std::current_exception();
    }
    step.elapsed_us = llama_time_us() - t0;
    return step;
}

void Generator::advance_locked(llama_context * ctx, const int32_t * tokens, size_t n, bool prompt, Step & step) {
    const int32_t seq = options_.seq_id;
    if (!context_->holds_sequence_locked(seq, ticket_)) {  // a newer generator took the sequence
        step.finish = "cancelled";
        return;
    }
    const int64_t n_past = llama_memory_seq_pos_max(llama_get_memory(ctx), seq) + 1;
    if (!prompt && n_past + static_cast<int64_t>(n) > context_->n_ctx_seq()) {
        step.finish = "context";
        return;
    }
    context_->set_decode_owner_locked(id_);
    if (cancelled_.load()) {
        step.finish = "cancelled";
        return;
    }
    const int32_t rc = context_->decode_piece_locked(tokens, n, seq, LogitsMode::Last);
    if (rc == 2) {
        step.finish = "cancelled";
        return;
    }
    if (rc == 1 && !prompt) {
        step.finish = "context";
        return;
    }
    if (rc != 0) {
        step.finish = "error";
        throw Error(rc == 1 ? ErrorKind::ContextOverflow : ErrorKind::Decode,
                    std::string(prompt ? "[Generator] evaluating the prompt failed" : "[Generator] decoding failed") +
                        ": llama_decode returned " + std::to_string(rc))
            .with("code", static_cast<int64_t>(rc));
    }
    if (cancelled_.load()) {  // closed after the decode: no fresh outputs to trust
        step.finish = "cancelled";
        return;
    }
    int32_t token;
    if (graph_chain_ != nullptr && context_->has_graph_sampler_locked(seq, graph_chain_)) {
        token = sample_in_graph_locked(ctx);
        sampler_->accept(token);
        step.in_graph = true;
    } else {
        token = sampler_->sample(ctx, -1);  // also when another generator took the chain over
    }
    step.token = token;
    if (options_.n_logprobs >= 0) {
        step.logprobs.emplace();
        token_logprobs(ctx, -1, context_->n_vocab(), token, options_.n_logprobs, *step.logprobs);
    }
    const llama_vocab * vocab = llama_model_get_vocab(context_->model().get());
    if (!options_.ignore_eog && llama_vocab_is_eog(vocab, token)) {
        step.finish = "eog";
        return;
    }
    const bool special = options_.render_special ||
                         std::binary_search(options_.render_special_tokens.begin(),
                                            options_.render_special_tokens.end(), token);
    step.piece = token_piece(vocab, token, special);
}

// Takes a worked-out step into the generator's visible state (on the caller's thread).
std::optional<GeneratedToken> Generator::commit(Step step) {
    t_generation_us_ += step.elapsed_us;
    if (step.token) {
        last_path_.store(step.in_graph ? "backend" : "cpu");
        if (step.in_graph) ++n_graph_sampled_;
    }
    if (step.error) {
        if (step.finish != nullptr) finish(step.finish);
        std::rethrow_exception(step.error);
    }
    if (step.finish != nullptr || !step.token) {
        finish(step.finish != nullptr ? step.finish : "error");
        return std::nullopt;
    }
    ++n_generated_;
    generated_.push_back(*step.token);
    last_logprobs_ = std::move(step.logprobs);
    pending_ = step.token;
    return GeneratedToken{*step.token, std::move(step.piece)};
}

bool Generator::wants_more() const {
    return !is_finished() && !cancelled_.load() && (options_.max_tokens < 0 || n_generated_ < options_.max_tokens);
}

void Generator::launch_ahead(int32_t token) {
    std::lock_guard<std::mutex> lk(ahead_mutex_);
    if (stop_worker_) return;
    if (!worker_.joinable()) {
        release_compute_threads();  // the prompt's OpenMP team idles from now on: free it
        try {
            worker_ = std::thread([this] { worker_loop(); });
        } catch (const std::system_error &) {
            return;  // no thread to be had: the next step runs on the caller's thread
        }
    }
    ahead_job_ = token;
    ahead_cv_.notify_all();
}

// The step the worker worked out (waiting for it), or nullopt when none was started.
std::optional<Step> Generator::take_ahead() {
    std::unique_lock<std::mutex> lk(ahead_mutex_);
    ahead_cv_.wait(lk, [&] { return ahead_result_.has_value() || !ahead_job_.has_value(); });
    std::optional<Step> out = std::move(ahead_result_);
    ahead_result_.reset();
    return out;
}

void Generator::stop_worker() noexcept {
    {
        std::lock_guard<std::mutex> lk(ahead_mutex_);
        stop_worker_ = true;
    }
    ahead_cv_.notify_all();
    if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void Generator::worker_loop() {
    std::unique_lock<std::mutex> lk(ahead_mutex_);
    for (;;) {
        ahead_cv_.wait(lk, [&] { return ahead_job_.has_value() || stop_worker_; });
        if (!ahead_job_) return;  // stopping, nothing left to do
        const int32_t token = *ahead_job_;
        lk.unlock();
        Step step = advance(&token, 1, false);
        lk.lock();
        ahead_result_ = std::move(step);
        ahead_job_.reset();
        ahead_cv_.notify_all();
    }
}

std::optional<GeneratedToken> Generator::next(const InterruptCheck & interrupt) {
    std::lock_guard<std::mutex> one_at_a_time(next_mutex_);
    if (batched_) return step_batched(interrupt);
    std::optional<GeneratedToken> token = step(interrupt);
    if (!token) release_graph_sampler();  // the sequence's outputs are plain logits again
    return token;
}

std::optional<GeneratedToken> Generator::step_batched(const InterruptCheck & interrupt) {
    if (is_finished()) return std::nullopt;
    if (cancelled_.load()) {
        finish("cancelled");
        return std::nullopt;
    }
    if (options_.max_tokens >= 0 && n_generated_ >= options_.max_tokens) {
        finish("length");
        batched_->cancel();
        return std::nullopt;
    }
    Step step;
    try {
        step = batched_->take(interrupt);
    } catch (...) {
        cancel();
        finish("cancelled");
        throw;
    }
    if (!started_) {
        started_ = true;
        t_prompt_us_ = batched_->t_prompt_us();
        n_reused_ = batched_->n_reused();
        step.elapsed_us = 0;  // the first token counts as prompt time
    }
    if (cancelled_.load() && !step.token) step.finish = "cancelled";
    return commit(std::move(step));
}

std::optional<GeneratedToken> Generator::step(const InterruptCheck & interrupt) {
    if (is_finished()) return std::nullopt;
    std::optional<Step> ready = take_ahead();
    if (ready) {
        auto guard = context_->lock("Generator");  // closed meanwhile: HandleClosedError, as without decode-ahead
        if (!context_->holds_sequence_locked(options_.seq_id, ticket_)) {
            finish("cancelled");  // superseded by a newer generator after the worker's step
            return std::nullopt;
        }
    }
    if (cancelled_.load()) {
        finish("cancelled");
        return std::nullopt;
    }
    if (!ready) {
        if (options_.max_tokens >= 0 && n_generated_ >= options_.max_tokens) {
            finish("length");
            return std::nullopt;
        }
        if (!started_) {
            started_ = true;
            const int64_t t0 = llama_time_us();
            const size_t last_piece = evaluate_prompt(interrupt);
            if (cancelled_.load()) {
                finish("cancelled");
                return std::nullopt;
            }
            ready = advance(prompt_.data() + last_piece, prompt_.size() - last_piece, true);
            t_prompt_us_ += llama_time_us() - t0;
            ready->elapsed_us = 0;  // the first token counts as prompt time
        } else {
            const int32_t token = *pending_;
            ready = advance(&token, 1, false);
        }
    }
    std::optional<GeneratedToken> result = commit(std::move(*ready));
    if (result && options_.decode_ahead && wants_more()) launch_ahead(*pending_);
    return result;
}

}  // namespace llamabind
