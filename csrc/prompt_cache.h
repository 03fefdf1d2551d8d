#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <vector>

#include "llama.h"

namespace llamabind {

// How many leading tokens two token runs share.
size_t common_prefix(const std::vector<int32_t> & a, const std::vector<int32_t> & b);

// Sequences' KV caches kept in host memory after their sequence moved on to another prompt
// (llama-server's prompt cache): a later request whose prompt shares a longer prefix with a
// kept entry than with any sequence restores it and evaluates only the rest. A conversation
// whose sequence was taken by other users meanwhile comes back without evaluating its history
// again. Entries are least-recently-used first out beyond `limit_bytes`. Used with the context
// lock held (by the batch loop); never holds a pointer into llama.cpp.
class PromptCache {
  public:
    // Shorter token runs are cheaper to evaluate again than to keep.
    static constexpr size_t min_tokens = 16;

    struct Stats {
        int64_t n_entries = 0, n_bytes = 0, n_saved = 0, n_restored = 0;
    };

    explicit PromptCache(size_t limit_bytes = 0) : limit_(limit_bytes) {}
    void set_limit(size_t limit_bytes) { limit_ = limit_bytes; }

    bool enabled() const { return limit_ > 0; }
    // Keeps seq's cache, which holds `tokens`; an entry they extend is replaced, and nothing is
    // kept when an entry holds them already (or they are too short or too large).
    void save(llama_context * ctx, int32_t seq, const std::vector<int32_t> & tokens);
    // How many leading tokens of `prompt` the best entry holds (0: none).
    size_t longest_prefix(const std::vector<int32_t> & prompt) const;
    // Replaces what seq holds with the best entry for `prompt`; its tokens, or empty when
    // llama.cpp refused the state (seq is then empty).
    std::vector<int32_t> restore(llama_context * ctx, int32_t seq, const std::vector<int32_t> & prompt);
    // Drops every entry (the adapters changed: the kept caches were computed with others).
    void clear();
    Stats stats() const;

  private:
    struct Entry {
        std::vector<int32_t> tokens;
        std::vector<uint8_t> state;
    };
    void counted();  // publishes the entry count and size to stats()
    std::list<Entry>::const_iterator best(const std::vector<int32_t> & prompt, size_t & n_common) const;

    size_t limit_;
    size_t bytes_ = 0;
    // Read without the context lock (stats()).
    std::atomic<int64_t> n_entries_{0}, n_bytes_{0}, n_saved_{0}, n_restored_{0};
    std::list<Entry> entries_;  // most recently used first
};

}  // namespace llamabind
