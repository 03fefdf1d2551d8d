#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "llama.h"

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
    bool decode_ahead = true;  // decode handed-out tokens on a worker thread (see Generator)
    // Log-probabilities of each generated token under the model's distribution (the raw
    // logits, before the sampler): -1 none, 0 the chosen token's, k also the k most likely.
    // Sampling then stays on the CPU, where the logits are.
    int32_t n_logprobs = -1;
};

struct TokenLogprobs {
    float logprob = 0.0f;  // of the chosen token
    std::vector<std::pair<int32_t, float>> top;  // the most likely tokens, most likely first
};

struct GeneratedToken {
    int32_t id;
    std::string piece;  // raw bytes; a UTF-8 character may span several tokens
};

// Fills `out` for `token` from output i's raw logits (n_logprobs >= 0).
void token_logprobs(llama_context * ctx, int32_t i, int32_t n_vocab, int32_t token, int32_t n_top,
                    TokenLogprobs & out);

// One token worked out: the previous token decoded and the next one sampled, in one hold of the
// context lock (so that another sequence's decode cannot replace the outputs in between).
struct Step {
    std::optional<int32_t> token;  // nullopt: finished without a token (see finish)
    std::string piece;
    const char * finish = nullptr;  // "eog" (with token), "context", "cancelled", "error"
    bool in_graph = false;
    std::optional<TokenLogprobs> logprobs;  // when asked for (GenerateOptions::n_logprobs)
    int64_t elapsed_us = 0;
    std::exception_ptr error;
};

}  // namespace llamabind
