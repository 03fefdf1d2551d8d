#include "generator.h"

#include <algorithm>

#include "errors.h"

namespace llamabind {

Generator::Generator(std::shared_ptr<Context> context, std::shared_ptr<Sampler> sampler,
                     std::vector<int32_t> prompt, GenerateOptions options)
    : context_(std::move(context)), sampler_(std::move(sampler)), prompt_(std::move(prompt)), options_(std::move(options)) {
    if (prompt_.empty()) throw_value("[Context.generate] the prompt has no tokens");
    if (options_.max_tokens < -1) throw_value("[Context.generate] max_tokens must be >= 0, or -1 for no limit");
    std::sort(options_.render_special_tokens.begin(), options_.render_special_tokens.end());
    const int32_t n_vocab = context_->n_vocab();
    for (int32_t t : prompt_) {
        if (t < 0 || t >= n_vocab) {
            throw_value("[Context.generate] prompt token " + std::to_string(t) + " is outside the vocabulary (0.." +
                        std::to_string(n_vocab - 1) + ")");
        }
    }
    auto guard = context_->lock("Context.generate");
    context_->check_fits_locked(0, options_.seq_id, "Context.generate");
    if (static_cast<int64_t>(prompt_.size()) > llama_n_ctx_seq(context_->raw("Context.generate"))) {
        const int64_t n_ctx = llama_n_ctx_seq(context_->raw("Context.generate"));
        throw Error(ErrorKind::ContextOverflow, "[Context.generate] the prompt has " + std::to_string(prompt_.size()) +
                                                    " tokens, the context holds " + std::to_string(n_ctx))
            .with("n_tokens", static_cast<int64_t>(prompt_.size()))
            .with("n_ctx", n_ctx);
    }
}

void Generator::finish(const char * reason) {
    if (finish_reason_.empty()) finish_reason_ = reason;
}

void Generator::cancel() {
    cancelled_.store(true);
    context_->abort_flag().store(true);
}

void Generator::close() {
    cancel();
    finish("cancelled");
}

// Reuses the longest prefix of the prompt that the sequence already holds, then evaluates the
// rest in n_batch pieces; at least the last prompt token is evaluated to get its logits.
void Generator::evaluate_prompt(const InterruptCheck & interrupt) {
    const int32_t seq = options_.seq_id;
    size_t n_batch = 0;
    size_t n_keep = 0;
    {
        auto guard = context_->lock("Generator");
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
    for (size_t start = n_keep; start < prompt_.size(); start += n_batch) {
        const size_t n = std::min(n_batch, prompt_.size() - start);
        const bool last = start + n == prompt_.size();
        {
            auto guard = context_->lock("Generator");
            if (cancelled_.load()) break;
            context_->abort_flag().store(false);
            if (cancelled_.load()) break;
            const int32_t rc = context_->decode_piece_locked(prompt_.data() + start, n, options_.seq_id,
                                                             last ? LogitsMode::Last : LogitsMode::None);
            if (rc == 2) break;  // aborted by cancel()
            if (rc != 0) {
                finish("error");
                throw Error(rc == 1 ? ErrorKind::ContextOverflow : ErrorKind::Decode,
                            "[Generator] evaluating the prompt failed: llama_decode returned " + std::to_string(rc))
                    .with("code", static_cast<int64_t>(rc));
            }
        }
        if (!last && interrupt) interrupt();
    }
}

bool Generator::decode_one(int32_t token) {
    auto guard = context_->lock("Generator");
    llama_context * ctx = context_->raw("Generator");
    const int64_t n_past = llama_memory_seq_pos_max(llama_get_memory(ctx), options_.seq_id) + 1;
    if (n_past + 1 > static_cast<int64_t>(llama_n_ctx_seq(ctx))) {
        finish("context");
        return false;
    }
    context_->abort_flag().store(false);
    if (cancelled_.load()) {
        finish("cancelled");
        return false;
    }
    const int32_t rc = context_->decode_piece_locked(&token, 1, options_.seq_id, LogitsMode::Last);
    if (rc == 2) {
        finish("cancelled");
        return false;
    }
    if (rc != 0) {
        finish(rc == 1 ? "context" : "error");
        if (rc == 1) return false;
        throw Error(ErrorKind::Decode, "[Generator] llama_decode returned " + std::to_string(rc))
            .with("code", static_cast<int64_t>(rc));
    }
    return true;
}

std::optional<GeneratedToken> Generator::sample_next() {
    int32_t token;
    {
        auto guard = context_->lock("Generator");
        token = sampler_->sample(context_->raw("Generator"), -1);
    }
    const llama_vocab * vocab = llama_model_get_vocab(context_->model().get());
    if (!options_.ignore_eog && llama_vocab_is_eog(vocab, token)) {
        finish("eog");
        return std::nullopt;
    }
    ++n_generated_;
    generated_.push_back(token);
    pending_ = token;
    const bool special = options_.render_special ||
                         std::binary_search(options_.render_special_tokens.begin(),
                                            options_.render_special_tokens.end(), token);
    return GeneratedToken{token, token_piece(vocab, token, special)};
}

std::optional<GeneratedToken> Generator::next(const InterruptCheck & interrupt) {
    if (is_finished()) return std::nullopt;
    if (cancelled_.load()) {
        finish("cancelled");
        return std::nullopt;
    }
    if (options_.max_tokens >= 0 && n_generated_ >= options_.max_tokens) {
        finish("length");
        return std::nullopt;
    }
    const int64_t t0 = llama_time_us();
    if (!started_) {
        started_ = true;
        evaluate_prompt(interrupt);
        if (cancelled_.load()) {
            finish("cancelled");
            return std::nullopt;
        }
        auto result = sample_next();
        t_prompt_us_ += llama_time_us() - t0;
        return result;
    }
    if (pending_ && !decode_one(*pending_)) {
        pending_.reset();
        t_generation_us_ += llama_time_us() - t0;
        return std::nullopt;
    }
    pending_.reset();
    auto result = sample_next();
    t_generation_us_ += llama_time_us() - t0;
    return result;
}

}  // namespace llamabind
