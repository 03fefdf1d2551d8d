#include "prompt_cache.h"

#include <algorithm>

namespace llamabind {

size_t common_prefix(const std::vector<int32_t> & a, const std::vector<int32_t> & b) {
    const size_t n = std::min(a.size(), b.size());
    return static_cast<size_t>(std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin()).first -
                               a.begin());
}

namespace {

bool is_prefix(const std::vector<int32_t> & a, const std::vector<int32_t> & of) {
    return a.size() <= of.size() && std::equal(a.begin(), a.end(), of.begin());
}

}  // namespace

void PromptCache::save(llama_context * ctx, int32_t seq, const std::vector<int32_t> & tokens) {
    if (!enabled() || tokens.size() < min_tokens || std::find(tokens.begin(), tokens.end(), -1) != tokens.end()) return;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (is_prefix(tokens, it->tokens)) {  // held already, maybe with more
            entries_.splice(entries_.begin(), entries_, it);
            return;
        }
        if (is_prefix(it->tokens, tokens)) {  // the new one extends it
            bytes_ -= it->state.size();
            it = entries_.erase(it);
            counted();
        } else {
            ++it;
        }
    }
    const size_t size = llama_state_seq_get_size_ext(ctx, seq, LLAMA_STATE_SEQ_FLAGS_NONE);
    if (size == 0 || size > limit_) return;
    Entry entry{tokens, std::vector<uint8_t>(size)};
    entry.state.resize(llama_state_seq_get_data_ext(ctx, entry.state.data(), size, seq, LLAMA_STATE_SEQ_FLAGS_NONE));
    if (entry.state.empty()) return;
    bytes_ += entry.state.size();
    entries_.push_front(std::move(entry));
    ++n_saved_;
    while (bytes_ > limit_ && !entries_.empty()) {
        bytes_ -= entries_.back().state.size();
        entries_.pop_back();
    }
    counted();
}

void PromptCache::counted() {
    n_entries_.store(static_cast<int64_t>(entries_.size()));
    n_bytes_.store(static_cast<int64_t>(bytes_));
}

std::list<PromptCache::Entry>::const_iterator PromptCache::best(const std::vector<int32_t> & prompt,
                                                               size_t & n_common) const {
    auto found = entries_.end();
    n_common = 0;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        const size_t n = common_prefix(it->tokens, prompt);
        if (n > n_common) {
            n_common = n;
            found = it;
        }
    }
    return found;
}

size_t PromptCache::longest_prefix(const std::vector<int32_t> & prompt) const {
    size_t n_common = 0;
    best(prompt, n_common);
    return n_common;
}

std::vector<int32_t> PromptCache::restore(llama_context * ctx, int32_t seq, const std::vector<int32_t> & prompt) {
    size_t n_common = 0;
    auto it = best(prompt, n_common);
    llama_memory_seq_rm(llama_get_memory(ctx), seq, -1, -1);
    if (it == entries_.end()) return {};
    entries_.splice(entries_.begin(), entries_, it);
    const Entry & entry = entries_.front();
    if (llama_state_seq_set_data_ext(ctx, entry.state.data(), entry.state.size(), seq, LLAMA_STATE_SEQ_FLAGS_NONE) == 0) {
        llama_memory_seq_rm(llama_get_memory(ctx), seq, -1, -1);
        return {};
    }
    ++n_restored_;
    return entry.tokens;
}

void PromptCache::clear() {
    entries_.clear();
    bytes_ = 0;
    counted();
}

PromptCache::Stats PromptCache::stats() const {
    return {n_entries_.load(), n_bytes_.load(), n_saved_.load(), n_restored_.load()};
}

}  // namespace llamabind
