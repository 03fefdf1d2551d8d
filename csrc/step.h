#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

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
};

struct GeneratedToken {
    int32_t id;
    std::string piece;  // raw bytes; a UTF-8 character may span several tokens
};

// One token worked out: the previous token decoded and the next one sampled, in one hold of the
// context lock (so that another sequence's decode cannot replace the outputs in between).
struct Step {
    std::optional<int32_t> token;  // nullopt: finished without a token (see finish)
    std::string piece;
    const char * finish = nullptr;  // "eog" (with token), "context", "cancelled", "error"
    bool in_graph = false;
    int64_t elapsed_us = 0;
    std::exception_ptr error;
};

}  // namespace llamabind
