#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "llama.h"
#include "model.h"

namespace llamabind {

// The parameters of one sampler chain, with llama.cpp's (common/) defaults. The chain is, in
// order: logit bias, grammar, penalties, DRY, top-n-sigma, top-k, typical-p, top-p, min-p,
// XTC, temperature (dynamic when dynatemp_range > 0), then dist; or greedy when
// temperature <= 0 or greedy is set; or mirostat v1/v2 after temperature.
struct SamplerParams {
    uint32_t seed = LLAMA_DEFAULT_SEED;
    float temperature = 0.8f;
    float dynatemp_range = 0.0f;
    float dynatemp_exponent = 1.0f;
    int32_t top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float typical_p = 1.0f;
    float top_n_sigma = -1.0f;
    float xtc_probability = 0.0f;
    float xtc_threshold = 0.1f;
    int32_t penalty_last_n = 64;
    float repeat_penalty = 1.0f;
    float frequency_penalty = 0.0f;
    float presence_penalty = 0.0f;
    float dry_multiplier = 0.0f;
    float dry_base = 1.75f;
    int32_t dry_allowed_length = 2;
    int32_t dry_penalty_last_n = -1;
    std::vector<std::string> dry_sequence_breakers = {"\n", ":", "\"", "*"};
    int32_t mirostat = 0;
    float mirostat_tau = 5.0f;
    float mirostat_eta = 0.1f;
    bool greedy = false;
    std::map<int32_t, float> logit_bias;
    std::string grammar;
    std::string grammar_root = "root";
    bool grammar_lazy = false;
    std::vector<std::string> trigger_words;
    std::vector<std::string> trigger_patterns;       // regexes searched anywhere in the text
    std::vector<std::string> trigger_patterns_full;  // regexes that must match the whole text
    std::vector<int32_t> trigger_tokens;
    std::string grammar_prefill;  // text the (non-lazy) grammar accepts before the first token
    size_t min_keep = 0;

    bool is_greedy() const { return greedy || (temperature <= 0.0f && mirostat == 0); }
};

// The samplers of the vendored llama.cpp that run inside the compute graph with our contexts.
// penalties also has a graph path, but only for contexts limited to one output per sequence
// (n_outputs_max_per_seq = 1), which ours are not; typical, XTC, top-n-sigma, mirostat, DRY and
// grammars have none.
const std::vector<std::string> & graph_sampler_names();

// A llama.cpp sampler chain. Holds the model (its vocabulary backs grammar and DRY).
// The grammar is kept apart from the chain and checked as llama.cpp's common sampler does:
// the chain picks a token, the grammar checks only that one, and only when it rejects it is the
// whole vocabulary filtered by the grammar and the chain run again (grammars with long
// alternatives cost hundreds of ms per token when applied to every candidate).
class Sampler {
  public:
    Sampler(const Model & model, const SamplerParams & params);
    ~Sampler();
    Sampler(const Sampler &) = delete;
    Sampler & operator=(const Sampler &) = delete;

    std::shared_ptr<Sampler> clone() const;
    void close();
    bool is_closed() const;

    // Raises ValueError unless the sampler was made for `model` (its vocabulary sizes the chain:
    // another model's logits would be read past their end).
    void check_model(const llama_model * model, const char * operation) const;
    // Samples from output i of the context's last decode and accepts the token.
    int32_t sample(llama_context * ctx, int32_t i);
    void accept(int32_t token);
    void reset();

    const SamplerParams & params() const { return params_; }
    std::vector<std::string> names() const;

    // Whether the whole chain can run inside the compute graph (llama.cpp backend sampling):
    // no grammar, and only samplers listed in graph_sampler_names().
    bool can_run_in_graph() const;
    // A fresh copy of the chain (state included) for llama_set_sampler; the caller frees it.
    llama_sampler * clone_chain() const;

  private:
    Sampler(std::shared_ptr<llama_model> model, SamplerParams params, llama_sampler * chain, llama_sampler * grammar);
    llama_sampler * chain(const char * operation) const;
    void prefill_grammar();
    int32_t sample_with_grammar(llama_context * ctx, int32_t i);
    // Feeds a token to the grammar, refusing one it does not allow (llama.cpp aborts the process
    // on an end-of-generation token the grammar does not allow, and on a grammar whose stacks an
    // earlier rejected token emptied).
    void accept_grammar(int32_t token, bool allowed_already, const char * operation);

    std::shared_ptr<llama_model> model_;
    SamplerParams params_;
    mutable std::mutex mutex_;
    llama_sampler * chain_ = nullptr;    // everything but the grammar
    llama_sampler * grammar_ = nullptr;  // null without a grammar
    bool grammar_failed_ = false;        // until reset(): the grammar's state is unusable
    std::vector<int32_t> prefill_tokens_;
    std::vector<llama_token_data> candidates_;
    std::vector<bool> allowed_;  // by token id: what the grammar allowed in the last full pass
};

}  // namespace llamabind
