#include "sampler.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <regex>

#include "common.h"
#include "errors.h"
#include "grammar.h"
#include "logging.h"
#include "trigger_pattern.h"

namespace llamabind {
namespace {

void check_finite(float value, const char * name) {
    if (!std::isfinite(value)) throw_value(std::string("[Sampler] ") + name + " must be a finite number, not " + std::to_string(value));
}

void check_params(const SamplerParams & p, int32_t n_vocab) {
    const std::pair<float, const char *> floats[] = {
        {p.temperature, "temperature"}, {p.dynatemp_range, "dynatemp_range"}, {p.dynatemp_exponent, "dynatemp_exponent"},
        {p.top_p, "top_p"}, {p.min_p, "min_p"}, {p.typical_p, "typical_p"}, {p.top_n_sigma, "top_n_sigma"},
        {p.xtc_probability, "xtc_probability"}, {p.xtc_threshold, "xtc_threshold"}, {p.repeat_penalty, "repeat_penalty"},
        {p.frequency_penalty, "frequency_penalty"}, {p.presence_penalty, "presence_penalty"},
        {p.dry_multiplier, "dry_multiplier"}, {p.dry_base, "dry_base"}, {p.mirostat_tau, "mirostat_tau"},
        {p.mirostat_eta, "mirostat_eta"}};
    for (const auto & [value, name] : floats) check_finite(value, name);
    if (p.top_k < 0) throw_value("[Sampler] top_k must be >= 0 (0 disables it)");
    if (p.top_p < 0 || p.top_p > 1) throw_value("[Sampler] top_p must be in [0, 1]");
    if (p.min_p < 0 || p.min_p > 1) throw_value("[Sampler] min_p must be in [0, 1]");
    if (p.typical_p < 0 || p.typical_p > 1) throw_value("[Sampler] typical_p must be in [0, 1]");
    if (p.xtc_probability < 0 || p.xtc_probability > 1) throw_value("[Sampler] xtc_probability must be in [0, 1]");
    if (p.repeat_penalty <= 0) throw_value("[Sampler] repeat_penalty must be > 0 (1 disables it)");
    if (p.penalty_last_n < -1) throw_value("[Sampler] penalty_last_n must be >= -1 (-1: the whole context)");
    if (p.dry_penalty_last_n < -1) throw_value("[Sampler] dry_penalty_last_n must be >= -1");
    if (p.mirostat < 0 || p.mirostat > 2) throw_value("[Sampler] mirostat must be 0 (off), 1 or 2");
    size_t n_banned = 0;
    for (const auto & [token, bias] : p.logit_bias) {
        if (token < 0 || token >= n_vocab) {
            throw_value("[Sampler] logit_bias token " + std::to_string(token) + " is outside the vocabulary (0.." +
                        std::to_string(n_vocab - 1) + ")");
        }
        if (std::isnan(bias)) throw_value("[Sampler] logit_bias of token " + std::to_string(token) + " is NaN");
        if (bias == -INFINITY) ++n_banned;
    }
    if (n_banned == static_cast<size_t>(n_vocab)) {
        throw_value("[Sampler] logit_bias bans every token of the vocabulary (-inf on all " + std::to_string(n_vocab) +
                    "): nothing could be sampled");
    }
    for (int32_t token : p.trigger_tokens) {
        if (token < 0 || token >= n_vocab) {
            throw_value("[Sampler] trigger token " + std::to_string(token) + " is outside the vocabulary");
        }
    }
    if (p.grammar_lazy && p.grammar.empty()) throw_value("[Sampler] grammar_lazy needs a grammar");
    if (p.grammar_lazy && p.trigger_words.empty() && p.trigger_patterns.empty() && p.trigger_patterns_full.empty() &&
        p.trigger_tokens.empty()) {
        throw_value("[Sampler] a lazy grammar needs trigger_words, trigger_patterns, trigger_patterns_full or trigger_tokens");
    }
    if (!p.grammar.empty()) check_grammar(p.grammar, "Sampler");
    // llama.cpp takes these as C strings: a NUL byte would cut them short.
    auto check_nul = [](const std::string & text, const char * field) {
        if (text.find('\0') != std::string::npos) {
            throw Error(ErrorKind::Grammar, std::string("[Sampler] ") + field + " contains a NUL byte");
        }
    };
    check_nul(p.grammar_root, "grammar_root");
    for (const std::string & word : p.trigger_words) check_nul(word, "a trigger word");
    for (const std::string & pattern : p.trigger_patterns) check_nul(pattern, "a trigger pattern");
    for (const std::string & pattern : p.trigger_patterns_full) check_nul(pattern, "a trigger pattern");
    for (const std::string & pattern : p.trigger_patterns) check_trigger_pattern(pattern);
    for (const std::string & pattern : p.trigger_patterns_full) check_trigger_pattern(pattern);
    if (!p.grammar_prefill.empty() && (p.grammar.empty() || p.grammar_lazy)) {
        throw_value("[Sampler] grammar_prefill applies to a grammar that is not lazy");
    }
}

// As llama.cpp's common sampler: a full pattern is anchored at both ends.
std::string anchor_pattern(const std::string & pattern) {
    if (pattern.empty()) return "^$";
    return (pattern.front() != '^' ? "^" : "") + pattern + (pattern.back() != '$' ? "$" : "");
}

// The tokens of the prefill text as llama.cpp's common sampler takes them: control tokens
// parsed, a leading space token the tokenizer adds before a special token dropped.
std::vector<int32_t> prefill_tokens(const llama_vocab * vocab, const std::string & text) {
    if (text.empty()) return {};
    std::vector<llama_token> tokens = tokenize_text(vocab, text, false, true, "Sampler");
    if (!tokens.empty()) {
        const std::string first = common_token_to_piece(vocab, tokens[0], true);
        if (!first.empty() && std::isspace(static_cast<unsigned char>(first[0])) &&
            !std::isspace(static_cast<unsigned char>(text[0]))) {
            tokens.erase(tokens.begin());
        }
    }
    return tokens;
}

std::string escape_regex(const std::string & word) {
    static const std::regex special("[.^$|()*+?\\[\\]{}\\\\]");
    return std::regex_replace(word, special, "\\$0");
}

llama_sampler * make_grammar(const llama_vocab * vocab, const SamplerParams & p) {
    LogCapture capture;
    llama_sampler * s = nullptr;
    if (!p.grammar_lazy) {
        s = llama_sampler_init_grammar(vocab, p.grammar.c_str(), p.grammar_root.c_str());
    } else {
        // As llama.cpp's common sampler does: a word triggers wherever it appears.
        std::vector<std::string> patterns = p.trigger_patterns;
        for (const std::string & pattern : p.trigger_patterns_full) patterns.push_back(anchor_pattern(pattern));
        for (const std::string & word : p.trigger_words) {
            patterns.push_back("[\\s\\S]*?(" + escape_regex(word) + ")[\\s\\S]*");
        }
        for (const std::string & pattern : patterns) {
            try {
                std::regex check(pattern);
            } catch (const std::regex_error & e) {
                throw Error(ErrorKind::Grammar, "[Sampler] invalid trigger pattern '" + pattern + "': " + e.what());
            }
        }
        std::vector<const char *> c_patterns;
        for (const std::string & pattern : patterns) c_patterns.push_back(pattern.c_str());
        try {
            s = llama_sampler_init_grammar_lazy_patterns(vocab, p.grammar.c_str(), p.grammar_root.c_str(),
                                                         c_patterns.data(), c_patterns.size(),
                                                         p.trigger_tokens.data(), p.trigger_tokens.size());
        } catch (const std::exception & e) {  // llama.cpp compiles the patterns with std::regex
            throw Error(ErrorKind::Grammar, std::string("[Sampler] invalid trigger pattern: ") + e.what());
        }
    }
    if (s == nullptr) {
        std::string why = capture.errors();
        throw Error(ErrorKind::Grammar, "[Sampler] invalid grammar" + (why.empty() ? std::string() : ": " + why));
    }
    return s;
}

llama_sampler * build_chain(const llama_model * model, SamplerParams p) {
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    check_params(p, n_vocab);
    // -1 means the whole context (as in llama.cpp's common/): a chain is made before any context,
    // so it covers the model's training context, the most a context usually holds.
    const int32_t n_ctx_train = std::max(llama_model_n_ctx_train(model), 1);
    if (p.penalty_last_n == -1) p.penalty_last_n = n_ctx_train;
    if (p.dry_penalty_last_n == -1) p.dry_penalty_last_n = n_ctx_train;

    llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = false;
    llama_sampler * chain = llama_sampler_chain_init(cp);
    try {
        if (!p.logit_bias.empty()) {
            std::vector<llama_logit_bias> bias;
            for (const auto & [token, value] : p.logit_bias) bias.push_back({token, value});
            llama_sampler_chain_add(chain, llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(bias.size()), bias.data()));
        }
        if (p.penalty_last_n != 0 &&
            (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f)) {
            llama_sampler_chain_add(chain, llama_sampler_init_penalties(n_vocab, p.penalty_last_n, p.repeat_penalty,
                                                                        p.frequency_penalty, p.presence_penalty));
        }
        if (p.dry_multiplier > 0.0f) {
            std::vector<const char *> breakers;
            for (const std::string & b : p.dry_sequence_breakers) breakers.push_back(b.c_str());
            llama_sampler_chain_add(chain, llama_sampler_init_dry(vocab, p.dry_multiplier, p.dry_base, p.dry_allowed_length,
                                                                  p.dry_penalty_last_n, breakers.data(), breakers.size()));
        }
        if (p.is_greedy()) {
            llama_sampler_chain_add(chain, llama_sampler_init_greedy());
        } else if (p.mirostat == 1) {
            llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
            llama_sampler_chain_add(chain, llama_sampler_init_mirostat(n_vocab, p.seed, p.mirostat_tau, p.mirostat_eta, 100));
        } else if (p.mirostat == 2) {
            llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
            llama_sampler_chain_add(chain, llama_sampler_init_mirostat_v2(p.seed, p.mirostat_tau, p.mirostat_eta));
        } else {
            if (p.top_n_sigma > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_n_sigma(p.top_n_sigma));
            if (p.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.top_k));
            if (p.typical_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_typical(p.typical_p, p.min_keep));
            if (p.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.top_p, p.min_keep));
            if (p.min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.min_p, p.min_keep));
            if (p.xtc_probability > 0.0f) {
                llama_sampler_chain_add(chain, llama_sampler_init_xtc(p.xtc_probability, p.xtc_threshold, p.min_keep, p.seed));
            }
            llama_sampler_chain_add(chain, llama_sampler_init_temp_ext(p.temperature, p.dynatemp_range, p.dynatemp_exponent));
            llama_sampler_chain_add(chain, llama_sampler_init_dist(p.seed));
        }
    } catch (...) {
        llama_sampler_free(chain);
        throw;
    }
    return chain;
}

}  // namespace

const std::vector<std::string> & graph_sampler_names() {
    static const std::vector<std::string> names = {"logit-bias", "top-k", "top-p", "min-p",
                                                   "temp",       "temp-ext", "greedy", "dist"};
    return names;
}

Sampler::Sampler(const Model & model, const SamplerParams & params)
    : model_(model.handle("Sampler")), params_(params) {
    chain_ = build_chain(model_.get(), params_);
    try {
        const llama_vocab * vocab = llama_model_get_vocab(model_.get());
        if (!params_.grammar.empty()) grammar_ = make_grammar(vocab, params_);
        prefill_tokens_ = prefill_tokens(vocab, params_.grammar_prefill);
        prefill_grammar();
    } catch (...) {
        close();
        throw;
    }
}

void Sampler::prefill_grammar() {
    for (int32_t token : prefill_tokens_) {
        try {
            accept_grammar(token, false, "Sampler");
        } catch (const std::exception & e) {
            throw Error(ErrorKind::Grammar, std::string("[Sampler] the grammar does not accept grammar_prefill: ") + e.what());
        }
    }
}

void Sampler::accept_grammar(int32_t token, bool allowed_already, const char * operation) {
    if (grammar_failed_) {
        throw Error(ErrorKind::Grammar, std::string("[") + operation +
                                            "] the grammar failed on an earlier token; call reset() to start over");
    }
    if (!allowed_already) {
        llama_token_data single = {token, 1.0f, 0.0f};
        llama_token_data_array check = {&single, 1, -1, false};
        llama_sampler_apply(grammar_, &check);
        if (single.logit == -INFINITY) {
            throw Error(ErrorKind::Grammar, std::string("[") + operation + "] token " + std::to_string(token) +
                                                " is not allowed by the grammar here");
        }
    }
    try {
        llama_sampler_accept(grammar_, token);
    } catch (const std::exception & e) {
        grammar_failed_ = true;
        throw Error(ErrorKind::Grammar, std::string("[") + operation + "] " + e.what());
    }
}

Sampler::Sampler(std::shared_ptr<llama_model> model, SamplerParams params, llama_sampler * chain,
                 llama_sampler * grammar)
    : model_(std::move(model)), params_(std::move(params)), chain_(chain), grammar_(grammar) {}

Sampler::~Sampler() { close(); }

void Sampler::close() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (chain_ != nullptr) {
        llama_sampler_free(chain_);
        chain_ = nullptr;
    }
    if (grammar_ != nullptr) {
        llama_sampler_free(grammar_);
        grammar_ = nullptr;
    }
}

bool Sampler::is_closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return chain_ == nullptr;
}

llama_sampler * Sampler::chain(const char * operation) const {
    if (chain_ == nullptr) throw_closed(operation);
    return chain_;
}

std::shared_ptr<Sampler> Sampler::clone() const {
    std::lock_guard<std::mutex> lock(mutex_);
    llama_sampler * copy = llama_sampler_clone(chain("Sampler.clone"));
    llama_sampler * grammar = grammar_ != nullptr ? llama_sampler_clone(grammar_) : nullptr;
    auto clone = std::shared_ptr<Sampler>(new Sampler(model_, params_, copy, grammar));
    clone->prefill_tokens_ = prefill_tokens_;
    clone->grammar_failed_ = grammar_failed_;
    return clone;
}

namespace {

// A chain of llama.cpp's greedy sampler alone picks the first highest logit; we read it straight
// from the logits instead of copying all n_vocab of them into a candidate array first (60-250 us
// a token at 49k-262k vocabularies on a CPU).
bool is_plain_greedy(llama_sampler * chain) {
    return llama_sampler_chain_n(chain) == 1 &&
           std::strcmp(llama_sampler_name(llama_sampler_chain_get(chain, 0)), "greedy") == 0;
}

// The first index of the highest logit, in one pass over independent lanes, each keeping its
// maximum and where it first saw it (the compiler vectorises this; the plain compare-and-
// remember loop does not: 74 against 700 us at a 262k vocabulary).
int32_t argmax(const float * logits, int32_t n) {
    constexpr int32_t lanes = 16;
    float lane_max[lanes];
    int32_t lane_at[lanes];
    for (int32_t k = 0; k < lanes; ++k) {
        lane_max[k] = -INFINITY;
        lane_at[k] = k;
    }
    int32_t t = 0;
    for (; t + lanes <= n; t += lanes) {
        for (int32_t k = 0; k < lanes; ++k) {
            const float v = logits[t + k];
            const bool higher = v > lane_max[k];
            lane_max[k] = higher ? v : lane_max[k];
            lane_at[k] = higher ? t + k : lane_at[k];
        }
    }
    float best = -INFINITY;
    int32_t at = -1;
    for (int32_t k = 0; k < lanes; ++k) {
        if (lane_max[k] > best || (lane_max[k] == best && lane_at[k] < at)) {
            best = lane_max[k];
            at = lane_at[k];
        }
    }
    for (; t < n; ++t) {
        if (logits[t] > best) {
            best = logits[t];
            at = t;
        }
    }
    return at < 0 ? 0 : at;  // every logit -inf or NaN: the first token
}

}  // namespace

void Sampler::check_model(const llama_model * model, const char * operation) const {
    if (model != model_.get()) {
        throw_value(std::string("[") + operation +
                    "] the sampler was made for another model than the context's; make a Sampler for the "
                    "context's model");
    }
}

int32_t Sampler::sample(llama_context * ctx, int32_t i) {
    std::lock_guard<std::mutex> lock(mutex_);
    llama_sampler * c = chain("Sampler.sample");
    check_model(llama_get_model(ctx), "Sampler.sample");
    if (llama_get_logits_ith(ctx, i) == nullptr) {
        throw_value("[Sampler.sample] output " + std::to_string(i) + " has no logits in the last decode");
    }
    try {
        if (grammar_ != nullptr) {
            if (grammar_failed_) {
                throw Error(ErrorKind::Grammar, "[Sampler.sample] the grammar failed on an earlier token; call reset() to start over");
            }
            return sample_with_grammar(ctx, i);
        }
        if (is_plain_greedy(c)) {
            const int32_t token =
                argmax(llama_get_logits_ith(ctx, i), llama_vocab_n_tokens(llama_model_get_vocab(model_.get())));
            llama_sampler_accept(c, token);
            return token;
        }
        return llama_sampler_sample(c, ctx, i);
    } catch (const Error &) {
        throw;
    } catch (const std::exception & e) {
        throw Error(params_.grammar.empty() ? ErrorKind::Decode : ErrorKind::Grammar,
                    std::string("[Sampler.sample] ") + e.what());
    }
}

// As llama.cpp's common_sampler_sample: the chain picks, the grammar checks that one token, and
// only a rejected token costs a pass of the grammar over the whole vocabulary.
int32_t Sampler::sample_with_grammar(llama_context * ctx, int32_t i) {
    const float * logits = llama_get_logits_ith(ctx, i);
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model_.get()));
    auto fill = [&] {
        candidates_.resize(n_vocab);
        for (int32_t t = 0; t < n_vocab; ++t) candidates_[t] = llama_token_data{t, logits[t], 0.0f};
        return llama_token_data_array{candidates_.data(), candidates_.size(), -1, false};
    };
    llama_token_data_array cur;
    int32_t token;
    if (is_plain_greedy(chain_)) {
        token = argmax(logits, n_vocab);
    } else {
        cur = fill();
        llama_sampler_apply(chain_, &cur);
        token = cur.data[cur.selected].id;
    }

    llama_token_data single = {token, 1.0f, 0.0f};
    llama_token_data_array check = {&single, 1, -1, false};
    llama_sampler_apply(grammar_, &check);
    if (check.data[0].logit == -INFINITY) {
        cur = fill();
        llama_sampler_apply(grammar_, &cur);
        allowed_.assign(static_cast<size_t>(n_vocab), false);
        bool any = false;
        for (size_t k = 0; k < cur.size; ++k) {
            if (cur.data[k].logit != -INFINITY) allowed_[static_cast<size_t>(cur.data[k].id)] = any = true;
        }
        if (!any) throw Error(ErrorKind::Grammar, "[Sampler.sample] no token can continue the grammar");
        llama_sampler_apply(chain_, &cur);
        token = cur.selected < 0 ? -1 : cur.data[cur.selected].id;
        if (token < 0 || !allowed_[static_cast<size_t>(token)]) {
            throw Error(ErrorKind::Grammar,
                        "[Sampler.sample] no token the grammar allows is left after the sampler chain: logit_bias "
                        "or another sampler removed every one");
        }
    }
    accept_grammar(token, true, "Sampler.sample");
    llama_sampler_accept(chain_, token);
    return token;
}

void Sampler::accept(int32_t token) {
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model_.get()));
    if (token < 0 || token >= n_vocab) {
        throw_value("[Sampler.accept] token " + std::to_string(token) + " is outside the vocabulary");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    try {
        llama_sampler * c = chain("Sampler.accept");
        if (grammar_ != nullptr) accept_grammar(token, false, "Sampler.accept");
        llama_sampler_accept(c, token);
    } catch (const Error &) {
        throw;
    } catch (const std::exception & e) {
        throw Error(ErrorKind::Grammar, std::string("[Sampler.accept] ") + e.what());
    }
}

void Sampler::reset() {
    std::lock_guard<std::mutex> lock(mutex_);
    llama_sampler_reset(chain("Sampler.reset"));
    if (grammar_ != nullptr) {
        llama_sampler_reset(grammar_);
        grammar_failed_ = false;
        prefill_grammar();
    }
}

std::vector<std::string> Sampler::names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    llama_sampler * c = chain("Sampler.names");
    std::vector<std::string> out;
    for (int32_t i = 0; i < llama_sampler_chain_n(c); ++i) {
        out.emplace_back(llama_sampler_name(llama_sampler_chain_get(c, i)));
    }
    if (grammar_ != nullptr) {  // it acts right after the logit bias
        const bool biased = !out.empty() && out.front() == "logit-bias";
        out.insert(out.begin() + (biased ? 1 : 0), llama_sampler_name(grammar_));
    }
    return out;
}

bool Sampler::can_run_in_graph() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (grammar_ != nullptr) return false;
    llama_sampler * c = chain("Sampler.can_run_in_graph");
    const auto & allowed = graph_sampler_names();
    for (int32_t i = 0; i < llama_sampler_chain_n(c); ++i) {
        const std::string name = llama_sampler_name(llama_sampler_chain_get(c, i));
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return false;
    }
    return llama_sampler_chain_n(c) > 0;
}

llama_sampler * Sampler::clone_chain() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return llama_sampler_clone(chain("Sampler.clone"));
}

}  // namespace llamabind
