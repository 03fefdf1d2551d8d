#include "context.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <thread>

#include "batch.h"
#include "errors.h"
#include "logging.h"
#include "shutdown.h"

namespace llamabind {
namespace {

constexpr int64_t max_n_ctx = int64_t{1} << 24;

uint32_t checked_u32(const std::optional<int64_t> & value, const char * name, int64_t lo, int64_t hi,
                     uint32_t fallback) {
    if (!value) return fallback;
    if (*value < lo || *value > hi) {
        throw_value(std::string("[Context] ") + name + " = " + std::to_string(*value) + " is out of range [" +
                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return static_cast<uint32_t>(*value);
}

// More threads than this only adds contention: a few per core (ggml itself stops at 512).
int32_t max_threads() {
    const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    return static_cast<int32_t>(std::min<int64_t>(GGML_MAX_N_THREADS, 4 * cores));
}

void check_threads(int32_t n, const char * operation, const char * name) {
    if (n <= 0 || n > max_threads()) {
        throw_value(std::string("[") + operation + "] " + name + " = " + std::to_string(n) + " is outside 1.." +
                    std::to_string(max_threads()) + " (4 per CPU core)");
    }
}

// The KV cache types llama.cpp's own tools offer (common/arg.cpp): ggml cannot store or read a
// KV cache of the others (removed types, and quantisations without the kernels it needs).
bool is_kv_cache_type(int32_t type) {
    static const ggml_type types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                                      GGML_TYPE_Q4_1, GGML_TYPE_IQ4_NL, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1};
    return std::find(std::begin(types), std::end(types), static_cast<ggml_type>(type)) != std::end(types);
}

ggml_type kv_cache_type(int32_t type, const char * name) {
    if (!is_kv_cache_type(type)) {
        throw_value(std::string("[Context] ") + name + " = " + std::to_string(type) +
                    " is not a KV cache type: use f32 (0), f16 (1), bf16 (30), q8_0 (8), q4_0 (2), q4_1 (3), "
                    "iq4_nl (20), q5_0 (6) or q5_1 (7)");
    }
    return static_cast<ggml_type>(type);
}

float finite(float value, const char * name) {
    if (!std::isfinite(value)) throw_value(std::string("[Context] ") + name + " must be a finite number");
    return value;
}

bool abort_callback(void * data) { return static_cast<const Context *>(data)->should_abort(); }

}  // namespace

Context::Context(const Model & model, const ContextOptions & o)
    : model_(model.handle("Context")), output_on_gpu_(model.output_on_gpu()) {
    if (model.is_vocab_only()) {
        throw Error(ErrorKind::Context,
                    "[Context] the model was loaded with vocab_only=True and has no weights to evaluate; "
                    "load it without vocab_only to create a context");
    }
    llama_context_params p = llama_context_default_params();
    p.n_ctx = checked_u32(o.n_ctx, "n_ctx", 0, max_n_ctx, p.n_ctx);
    uint32_t n_ctx_effective = p.n_ctx == 0 ? static_cast<uint32_t>(llama_model_n_ctx_train(model_.get())) : p.n_ctx;
    p.n_batch = checked_u32(o.n_batch, "n_batch", 1, max_n_ctx, std::min(p.n_batch, n_ctx_effective));
    if (p.n_batch > n_ctx_effective) {
        throw_value("[Context] n_batch = " + std::to_string(p.n_batch) + " is larger than n_ctx = " +
                    std::to_string(n_ctx_effective));
    }
    p.n_ubatch = checked_u32(o.n_ubatch, "n_ubatch", 1, p.n_batch, std::min(p.n_ubatch, p.n_batch));
    p.n_seq_max = checked_u32(o.n_seq_max, "n_seq_max", 1, static_cast<int64_t>(llama_max_parallel_sequences()),
                              p.n_seq_max);
    if (o.n_threads) {
        check_threads(*o.n_threads, "Context", "n_threads");
        p.n_threads = *o.n_threads;
        p.n_threads_batch = *o.n_threads;
    }
    if (o.n_threads_batch) {
        check_threads(*o.n_threads_batch, "Context", "n_threads_batch");
        p.n_threads_batch = *o.n_threads_batch;
    }
    if (o.flash_attn) {
        if (*o.flash_attn < -1 || *o.flash_attn > 1) throw_value("[Context] flash_attn must be -1 (auto), 0 or 1");
        p.flash_attn_type = static_cast<llama_flash_attn_type>(*o.flash_attn);
    }
    if (o.type_k) p.type_k = kv_cache_type(*o.type_k, "type_k");
    if (o.type_v) p.type_v = kv_cache_type(*o.type_v, "type_v");
    if (o.offload_kqv) p.offload_kqv = *o.offload_kqv;
    if (o.op_offload) p.op_offload = *o.op_offload;
    if (o.swa_full) p.swa_full = *o.swa_full;
    if (o.kv_unified) p.kv_unified = *o.kv_unified;
    p.embeddings = o.embeddings;
    p.no_perf = o.no_perf;
    if (o.pooling_type) {
        if (*o.pooling_type < -1 || *o.pooling_type > LLAMA_POOLING_TYPE_RANK) throw_value("[Context] unknown pooling_type");
        p.pooling_type = static_cast<enum llama_pooling_type>(*o.pooling_type);
    }
    if (o.attention_type) {
        if (*o.attention_type < -1 || *o.attention_type > 1) throw_value("[Context] unknown attention_type");
        p.attention_type = static_cast<llama_attention_type>(*o.attention_type);
    }
    if (o.rope_scaling_type) {
        if (*o.rope_scaling_type < -1 || *o.rope_scaling_type > LLAMA_ROPE_SCALING_TYPE_MAX_VALUE)
            throw_value("[Context] unknown rope_scaling_type");
        p.rope_scaling_type = static_cast<llama_rope_scaling_type>(*o.rope_scaling_type);
    }
    if (o.rope_freq_base) p.rope_freq_base = finite(*o.rope_freq_base, "rope_freq_base");
    if (o.rope_freq_scale) p.rope_freq_scale = finite(*o.rope_freq_scale, "rope_freq_scale");
    if (o.yarn_ext_factor) p.yarn_ext_factor = finite(*o.yarn_ext_factor, "yarn_ext_factor");
    if (o.yarn_attn_factor) p.yarn_attn_factor = finite(*o.yarn_attn_factor, "yarn_attn_factor");
    if (o.yarn_beta_fast) p.yarn_beta_fast = finite(*o.yarn_beta_fast, "yarn_beta_fast");
    if (o.yarn_beta_slow) p.yarn_beta_slow = finite(*o.yarn_beta_slow, "yarn_beta_slow");
    p.yarn_orig_ctx = checked_u32(o.yarn_orig_ctx, "yarn_orig_ctx", 0, max_n_ctx, p.yarn_orig_ctx);
    p.abort_callback = abort_callback;
    p.abort_callback_data = this;
    kv_unified_ = p.kv_unified;
    prompt_cache_.set_limit(static_cast<size_t>(o.prompt_cache_bytes));

    LogCapture capture;
    ctx_ = llama_init_from_model(model_.get(), p);
    if (ctx_ == nullptr) {
        std::string why = capture.errors();
        throw Error(ErrorKind::Context, "[Context] llama.cpp could not create the context" +
                                            (why.empty() ? std::string(" (out of memory?)") : ": " + why));
    }
    batch_ = llama_batch_init(static_cast<int32_t>(llama_n_batch(ctx_)), 0, 1);
    register_context(this);
    n_vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_.get()));
    n_seq_max_ = llama_n_seq_max(ctx_);
    n_ctx_seq_ = kv_unified_ && n_seq_max_ > 1 ? llama_n_ctx(ctx_) / n_seq_max_ : llama_n_ctx_seq(ctx_);
    n_embd_ = llama_model_n_embd_out(model_.get());
}

Context::~Context() {
    unregister_context(this);
    close();
}

void Context::stop_for_exit() noexcept {
    abort_.store(true);
    std::shared_ptr<BatchLoop> loop;
    {
        std::lock_guard<std::mutex> guard(loop_mutex_);
        loop_stopped_ = true;
        loop = loop_;
    }
    if (loop) loop->stop();
}

uint64_t Context::next_owner_id() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1);
}

std::shared_ptr<BatchLoop> Context::batch_loop() {
    std::lock_guard<std::mutex> guard(loop_mutex_);
    if (loop_stopped_) throw_closed("Context.generate");
    if (!loop_) loop_ = std::make_shared<BatchLoop>(this, static_cast<int32_t>(llama_n_batch(raw("Context.generate"))));
    return loop_;
}

std::array<int64_t, 7> Context::batch_stats() {
    const PromptCache::Stats c = prompt_cache_.stats();
    std::lock_guard<std::mutex> guard(loop_mutex_);
    const BatchLoop::Stats s = loop_ ? loop_->stats() : BatchLoop::Stats{};
    return {s.n_steps, s.n_tokens, s.n_sampled, c.n_entries, c.n_bytes, c.n_saved, c.n_restored};
}

void Context::close() {
    stop_for_exit();  // aborts a decode in flight and stops the batch loop, whose thread uses us
    {
        std::lock_guard<std::mutex> guard(loop_mutex_);
        loop_.reset();
    }
    std::lock_guard<std::mutex> guard(mutex_);
    if (ctx_ != nullptr) {
        llama_free(ctx_);
        llama_batch_free(batch_);
        ctx_ = nullptr;
        batch_ = {};
        tokens_.clear();
        adapters_.clear();
        graph_samplers_.clear();
        prompt_cache_.clear();  // its host memory goes now, not when Python drops the handle
    }
}

bool Context::is_closed() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return ctx_ == nullptr;
}

std::unique_lock<std::mutex> Context::lock(const char * operation) const {
    std::unique_lock<std::mutex> guard(mutex_, std::try_to_lock);
    if (!guard.owns_lock()) {
        lock_waiters_.fetch_add(1);
        try {
            guard.lock();
        } catch (...) {
            lock_waiters_.fetch_sub(1);
            throw;
        }
        lock_waiters_.fetch_sub(1);
    }
    if (ctx_ == nullptr) {
        throw_closed(operation);
    }
    return guard;
}

llama_context * Context::raw(const char * operation) const {
    if (ctx_ == nullptr) {
        throw_closed(operation);
    }
    return ctx_;
}

uint32_t Context::n_ctx() const { auto g = lock("Context.n_ctx"); return llama_n_ctx(ctx_); }
uint32_t Context::n_batch() const { auto g = lock("Context.n_batch"); return llama_n_batch(ctx_); }
uint32_t Context::n_ubatch() const { auto g = lock("Context.n_ubatch"); return llama_n_ubatch(ctx_); }
uint32_t Context::n_seq_max() const { auto g = lock("Context.n_seq_max"); return llama_n_seq_max(ctx_); }
int32_t Context::n_threads() const { auto g = lock("Context.n_threads"); return llama_n_threads(ctx_); }
int32_t Context::pooling_type() const { auto g = lock("Context.pooling_type"); return llama_pooling_type(ctx_); }

void Context::set_n_threads(int32_t n_threads, int32_t n_threads_batch) {
    check_threads(n_threads, "Context.set_n_threads", "n_threads");
    check_threads(n_threads_batch, "Context.set_n_threads", "n_threads_batch");
    auto g = lock("Context.set_n_threads");
    llama_set_n_threads(ctx_, n_threads, n_threads_batch);
}

// llama.cpp asserts on a sequence id outside [0, n_seq_max): every call that takes one checks it here first.
void Context::check_seq(int32_t seq_id, const char * operation, bool all_allowed) const {
    const uint32_t n_seq_max = n_seq_max_;
    if ((seq_id >= 0 && static_cast<uint32_t>(seq_id) < n_seq_max) || (all_allowed && seq_id == -1)) return;
    throw Error(ErrorKind::Value, std::string("[") + operation + "] seq_id " + std::to_string(seq_id) +
                                      " is outside 0.." + std::to_string(n_seq_max - 1) +
                                      (all_allowed ? " (or -1 for every sequence)" : "") +
                                      ": the context was created with n_seq_max=" + std::to_string(n_seq_max))
        .with("seq_id", static_cast<int64_t>(seq_id))
        .with("n_seq_max", static_cast<int64_t>(n_seq_max));
}

void Context::check_fits_locked(size_t n_new, int32_t seq_id, const char * operation) const {
    check_seq(seq_id, operation);
    const int64_t n_ctx = n_ctx_seq_;
    const int64_t n_past = llama_memory_seq_pos_max(llama_get_memory(ctx_), seq_id) + 1;
    if (n_past + static_cast<int64_t>(n_new) > n_ctx) {
        throw Error(ErrorKind::ContextOverflow,
                    std::string("[") + operation + "] needs " + std::to_string(n_past + n_new) +
                        " positions (" + std::to_string(n_past) + " held + " + std::to_string(n_new) +
                        " new), the context holds " + std::to_string(n_ctx) + " per sequence")
            .with("n_tokens", static_cast<int64_t>(n_past + n_new))
            .with("n_ctx", n_ctx);
    }
}

void Context::sync_tracked_locked(int32_t seq_id) {
    auto & tracked = tokens_[seq_id];
    const int32_t n_held = llama_memory_seq_pos_max(llama_get_memory(ctx_), seq_id) + 1;
    if (static_cast<int32_t>(tracked.size()) > n_held) {
        tracked.resize(static_cast<size_t>(std::max(n_held, 0)));
    }
}

bool Context::attach_graph_sampler_locked(int32_t seq_id, llama_sampler * chain) {
    if (!llama_set_sampler(ctx_, seq_id, chain)) {
        graph_samplers_.erase(seq_id);
        return false;
    }
    graph_samplers_[seq_id] = chain;
    return true;
}

void Context::detach_graph_sampler_locked(int32_t seq_id, llama_sampler * chain) {
    auto it = graph_samplers_.find(seq_id);
    if (ctx_ == nullptr || it == graph_samplers_.end() || it->second != chain) return;
    llama_set_sampler(ctx_, seq_id, nullptr);
    graph_samplers_.erase(it);
}

void Context::detach_any_graph_sampler_locked(int32_t seq_id) {
    auto it = graph_samplers_.find(seq_id);
    if (it != graph_samplers_.end()) detach_graph_sampler_locked(seq_id, it->second);
}

bool Context::has_graph_sampler_locked(int32_t seq_id, llama_sampler * chain) const {
    auto it = graph_samplers_.find(seq_id);
    return it != graph_samplers_.end() && it->second == chain;
}

int32_t Context::decode_piece_locked(const int32_t * tokens, size_t n, int32_t seq_id, LogitsMode logits) {
    const llama_pos pos0 = llama_memory_seq_pos_max(llama_get_memory(ctx_), seq_id) + 1;
    batch_.n_tokens = static_cast<int32_t>(n);
    for (size_t i = 0; i < n; ++i) {
        batch_.token[i] = tokens[i];
        batch_.pos[i] = pos0 + static_cast<llama_pos>(i);
        batch_.n_seq_id[i] = 1;
        batch_.seq_id[i][0] = seq_id;
        batch_.logits[i] = logits == LogitsMode::All || (logits == LogitsMode::Last && i + 1 == n);
    }
    auto & tracked = tokens_[seq_id];
    if (static_cast<llama_pos>(tracked.size()) != pos0) {
        tracked.resize(static_cast<size_t>(std::max(pos0, 0)), -1);  // -1: a position we cannot name
    }
    const int32_t rc = llama_decode(ctx_, batch_);
    if (rc == 0) {
        decoded_locked();
        tracked.insert(tracked.end(), tokens, tokens + n);
    } else {
        sync_tracked_locked(seq_id);
    }
    return rc;
}

static void raise_decode_error(int32_t rc, const char * operation) {
    std::string why;
    switch (rc) {
        case 1: why = "no room in the KV cache for the batch (the context is full)"; break;
        case 2: why = "aborted"; break;
        case -1: why = "invalid batch"; break;
        case -2: why = "could not allocate the compute buffers (out of memory?)"; break;
        default: why = "computation failed"; break;
    }
    Error e(rc == 1 ? ErrorKind::ContextOverflow : ErrorKind::Decode,
            std::string("[") + operation + "] llama_decode returned " + std::to_string(rc) + ": " + why);
    e.with("code", static_cast<int64_t>(rc));
    throw e;
}

void Context::decode(const std::vector<int32_t> & tokens, int32_t seq_id, LogitsMode logits,
                     const InterruptCheck & interrupt) {
    if (tokens.empty()) {
        throw_value("[Context.decode] no tokens to evaluate");
    }
    for (int32_t t : tokens) {
        if (t < 0 || t >= n_vocab_) {
            throw_value("[Context.decode] token " + std::to_string(t) + " is outside the vocabulary (0.." +
                        std::to_string(n_vocab_ - 1) + ")");
        }
    }
    size_t n_batch;
    {
        auto g = lock("Context.decode");
        check_fits_locked(tokens.size(), seq_id, "Context.decode");
        n_batch = llama_n_batch(ctx_);
    }
    for (size_t start = 0; start < tokens.size(); start += n_batch) {
        const size_t n = std::min(n_batch, tokens.size() - start);
        const bool last_piece = start + n == tokens.size();
        LogitsMode mode = logits == LogitsMode::All ? LogitsMode::All
                          : (last_piece ? logits : LogitsMode::None);
        {
            auto g = lock("Context.decode");
            set_decode_owner_locked(0);  // only close() aborts a plain decode
            const int32_t rc = decode_piece_locked(tokens.data() + start, n, seq_id, mode);
            if (rc != 0) raise_decode_error(rc, "Context.decode");
        }
        if (!last_piece && interrupt) interrupt();
    }
}

std::vector<float> Context::logits(int32_t i) const {
    auto g = lock("Context.logits");
    const float * data = llama_get_logits_ith(ctx_, i);
    if (data == nullptr) {
        throw_value("[Context.logits] no logits for output " + std::to_string(i) +
                    " (decode with logits for that position first)");
    }
    return std::vector<float>(data, data + n_vocab_);
}

std::vector<float> Context::embeddings(int32_t i) const {
    auto g = lock("Context.embeddings");
    const float * data = llama_get_embeddings_ith(ctx_, i);
    if (data == nullptr) {
        throw_value("[Context.embeddings] no embeddings for output " + std::to_string(i) +
                    " (create the context with embeddings=True and decode first)");
    }
    return std::vector<float>(data, data + n_embd_);
}

std::vector<float> Context::sequence_embeddings(int32_t seq_id) const {
    auto g = lock("Context.sequence_embeddings");
    check_seq(seq_id, "Context.sequence_embeddings");
    const float * data = llama_get_embeddings_seq(ctx_, seq_id);
    if (data == nullptr) {
        throw_value("[Context.sequence_embeddings] no pooled embeddings for sequence " + std::to_string(seq_id) +
                    " (needs embeddings=True and a pooling type other than none)");
    }
    size_t n = llama_pooling_type(ctx_) == LLAMA_POOLING_TYPE_RANK ? llama_model_n_cls_out(model_.get()) : n_embd_;
    return std::vector<float>(data, data + n);
}

void Context::memory_clear() {
    auto g = lock("Context.memory_clear");
    llama_memory_clear(llama_get_memory(ctx_), true);
    shift_pending_ = false;
    tokens_.clear();
}

bool Context::memory_remove(int32_t seq_id, int32_t p0, int32_t p1) {
    auto g = lock("Context.memory_remove");
    check_seq(seq_id, "Context.memory_remove", true);
    const bool ok = llama_memory_seq_rm(llama_get_memory(ctx_), seq_id, p0, p1);
    if (ok) {
        for (auto & [seq, tracked] : tokens_) {
            if (seq_id >= 0 && seq != seq_id) continue;
            // Removing [p0, p1) leaves a hole unless p1 is the end: keep only [0, p0).
            tracked.resize(std::min(tracked.size(), static_cast<size_t>(std::max(p0, 0))));
        }
    }
    return ok;
}

void Context::memory_copy(int32_t src, int32_t dst, int32_t p0, int32_t p1) {
    auto g = lock("Context.memory_copy");
    check_seq(src, "Context.memory_copy");
    check_seq(dst, "Context.memory_copy");
    // Without a unified KV cache each sequence has its own buffer, and llama.cpp copies between
    // buffers only whole (it asserts otherwise).
    if (!kv_unified_ && n_seq_max_ > 1 && src != dst && (p0 > 0 || p1 >= 0)) {
        throw_value("[Context.memory_copy] copying part of a sequence (p0=" + std::to_string(p0) + ", p1=" +
                    std::to_string(p1) + ") into another needs kv_unified=True; without it only whole "
                    "sequences are copied (p0=-1, p1=-1)");
    }
    if (p0 <= 0 && p1 < 0) {
        copy_sequence_locked(src, dst);
        tokens_[dst] = tokens_[src];
    } else {
        llama_memory_seq_cp(llama_get_memory(ctx_), src, dst, p0, p1);
        tokens_.erase(dst);
    }
    sync_tracked_locked(dst);
}

void Context::copy_sequence_locked(int32_t src, int32_t dst) {
    llama_memory_t memory = llama_get_memory(ctx_);
    // Only llama.cpp's own copy carries a pending shift along (the keys turn at the next decode);
    // a recurrent state is copied by reference anyway.
    if (kv_unified_ || n_seq_max_ == 1 || src == dst || shift_pending_ || llama_model_is_recurrent(model_.get())) {
        llama_memory_seq_cp(memory, src, dst, -1, -1);
        return;
    }
    std::vector<uint8_t> state(llama_state_seq_get_size_ext(ctx_, src, LLAMA_STATE_SEQ_FLAGS_NONE));
    state.resize(llama_state_seq_get_data_ext(ctx_, state.data(), state.size(), src, LLAMA_STATE_SEQ_FLAGS_NONE));
    llama_memory_seq_rm(memory, dst, -1, -1);
    LogCapture capture;
    if (state.empty() || llama_state_seq_set_data_ext(ctx_, state.data(), state.size(), dst, LLAMA_STATE_SEQ_FLAGS_NONE) == 0) {
        llama_memory_seq_rm(memory, dst, -1, -1);
        tokens_.erase(dst);
        throw Error(ErrorKind::State, "[Context.memory_copy] could not copy sequence " + std::to_string(src) + " into " +
                                          std::to_string(dst) + ": " + capture.errors());
    }
}

void Context::memory_keep(int32_t seq_id) {
    auto g = lock("Context.memory_keep");
    check_seq(seq_id, "Context.memory_keep");
    llama_memory_t memory = llama_get_memory(ctx_);
    llama_memory_seq_keep(memory, seq_id);
    if (!kv_unified_) {  // each sequence has its own buffer, and seq_keep clears only seq_id's
        for (int32_t other = 0; other < static_cast<int32_t>(llama_n_seq_max(ctx_)); ++other) {
            if (other != seq_id) llama_memory_seq_rm(memory, other, -1, -1);
        }
    }
    for (auto it = tokens_.begin(); it != tokens_.end();) {
        it = it->first == seq_id ? std::next(it) : tokens_.erase(it);
    }
}

void Context::memory_shift(int32_t seq_id, int32_t p0, int32_t p1, int32_t delta) {
    auto g = lock("Context.memory_shift");
    check_seq(seq_id, "Context.memory_shift");
    if (!llama_memory_can_shift(llama_get_memory(ctx_))) {
        throw Error(ErrorKind::State, "[Context.memory_shift] this model's memory cannot be shifted");
    }
    llama_memory_seq_add(llama_get_memory(ctx_), seq_id, p0, p1, delta);
    shift_pending_ = shift_pending_ || delta != 0;
    tokens_.erase(seq_id);  // positions moved: the token list no longer matches
}

int32_t Context::memory_pos_max(int32_t seq_id) const {
    auto g = lock("Context.memory_pos_max");
    check_seq(seq_id, "Context.memory_pos_max");
    return llama_memory_seq_pos_max(llama_get_memory(ctx_), seq_id);
}

int32_t Context::memory_pos_min(int32_t seq_id) const {
    auto g = lock("Context.memory_pos_min");
    check_seq(seq_id, "Context.memory_pos_min");
    return llama_memory_seq_pos_min(llama_get_memory(ctx_), seq_id);
}

bool Context::memory_can_shift() const {
    auto g = lock("Context.memory_can_shift");
    return llama_memory_can_shift(llama_get_memory(ctx_));
}

std::vector<int32_t> Context::cached_tokens(int32_t seq_id) const {
    auto g = lock("Context.cached_tokens");
    check_seq(seq_id, "Context.cached_tokens");
    auto it = tokens_.find(seq_id);
    return it == tokens_.end() ? std::vector<int32_t>{} : it->second;
}

std::vector<int32_t> Context::prefix_lengths(const std::vector<int32_t> & tokens) const {
    auto g = lock("Context.prefix_lengths");
    std::vector<int32_t> out(llama_n_seq_max(ctx_), 0);
    for (const auto & [seq, held] : tokens_) {
        if (seq >= 0 && static_cast<size_t>(seq) < out.size()) out[seq] = static_cast<int32_t>(common_prefix(held, tokens));
    }
    return out;
}

void Context::check_no_pending_shift_locked(const char * operation) const {
    if (shift_pending_) {
        throw Error(ErrorKind::State, std::string("[") + operation +
                                          "] a memory_shift is pending: llama.cpp turns the keys at the next decode, "
                                          "and a state saved before it would hold them unturned; decode first");
    }
}

std::vector<uint8_t> Context::state_bytes(std::optional<int32_t> seq_id) {
    auto g = lock("Context.state_bytes");
    if (seq_id) check_seq(*seq_id, "Context.state_bytes");
    check_no_pending_shift_locked("Context.state_bytes");
    std::vector<uint8_t> out;
    if (seq_id) {
        out.resize(llama_state_seq_get_size(ctx_, *seq_id));
        out.resize(llama_state_seq_get_data(ctx_, out.data(), out.size(), *seq_id));
    } else {
        out.resize(llama_state_get_size(ctx_));
        out.resize(llama_state_get_data(ctx_, out.data(), out.size()));
    }
    return out;
}

void Context::load_state_bytes(const std::vector<uint8_t> & data, std::optional<int32_t> seq_id) {
    auto g = lock("Context.load_state_bytes");
    if (seq_id) check_seq(*seq_id, "Context.load_state_bytes");
    LogCapture capture;
    const size_t n = seq_id ? llama_state_seq_set_data(ctx_, data.data(), data.size(), *seq_id)
                            : llama_state_set_data(ctx_, data.data(), data.size());
    if (seq_id) tokens_.erase(*seq_id); else tokens_.clear();
    if (n == 0) {
        throw Error(ErrorKind::State, "[Context.load_state_bytes] the state does not fit this context: " + capture.errors());
    }
}

void Context::save_state_file(const std::string & path, std::optional<int32_t> seq_id) {
    auto g = lock("Context.save_state_file");
    if (seq_id) check_seq(*seq_id, "Context.save_state_file");
    check_path(path, "Context.save_state_file", "path");
    check_no_pending_shift_locked("Context.save_state_file");
    const int32_t seq = seq_id.value_or(0);
    std::vector<int32_t> tracked = tokens_.count(seq) ? tokens_[seq] : std::vector<int32_t>{};
    if (std::find(tracked.begin(), tracked.end(), -1) != tracked.end()) tracked.clear();
    const bool ok = seq_id ? llama_state_seq_save_file(ctx_, path.c_str(), seq, tracked.data(), tracked.size()) > 0
                           : llama_state_save_file(ctx_, path.c_str(), tracked.data(), tracked.size());
    if (!ok) {
        throw Error(ErrorKind::State, "[Context.save_state_file] could not write '" + path + "'").with("path", path);
    }
}

void Context::load_state_file(const std::string & path, std::optional<int32_t> seq_id) {
    auto g = lock("Context.load_state_file");
    if (seq_id) check_seq(*seq_id, "Context.load_state_file");
    check_path(path, "Context.load_state_file", "path");
    if (!std::ifstream(path).good()) {
        throw Error(ErrorKind::State, "[Context.load_state_file] cannot read '" + path + "'").with("path", path);
    }
    LogCapture capture;
    std::vector<int32_t> tokens(llama_n_ctx(ctx_));
    size_t n_tokens = 0;
    const int32_t seq = seq_id.value_or(0);
    const bool ok = seq_id ? llama_state_seq_load_file(ctx_, path.c_str(), seq, tokens.data(), tokens.size(), &n_tokens) > 0
                           : llama_state_load_file(ctx_, path.c_str(), tokens.data(), tokens.size(), &n_tokens);
    if (seq_id) tokens_.erase(seq); else tokens_.clear();
    if (!ok) {
        throw Error(ErrorKind::State, "[Context.load_state_file] could not load '" + path + "': " + capture.errors())
            .with("path", path);
    }
    tokens.resize(n_tokens);
    tokens_[seq] = tokens;
    sync_tracked_locked(seq);
}

PerfData Context::perf() const {
    auto g = lock("Context.perf");
    llama_perf_context_data d = llama_perf_context(ctx_);
    return {d.t_load_ms, d.t_p_eval_ms, d.t_eval_ms, d.n_p_eval, d.n_eval, d.n_reused};
}

void Context::perf_reset() {
    auto g = lock("Context.perf_reset");
    llama_perf_context_reset(ctx_);
}

void Context::set_lora(const std::vector<std::pair<std::shared_ptr<LoraAdapter>, float>> & adapters) {
    std::vector<llama_adapter_lora *> raw_adapters;
    std::vector<float> scales;
    std::vector<std::shared_ptr<LoraAdapter>> keep;
    for (const auto & [adapter, scale] : adapters) {
        const std::string which = "adapter " + std::to_string(keep.size());
        if (!adapter) throw_value("[Context.set_lora] " + which + " is None; pass (LoraAdapter, scale) pairs");
        if (adapter->model() != model_.get()) {
            throw_value("[Context.set_lora] " + which + " ('" + adapter->path() +
                        "') was loaded for another model; load it with LoraAdapter(model, path) for this "
                        "context's model");
        }
        if (!std::isfinite(scale)) throw_value("[Context.set_lora] " + which + " has a scale that is not finite");
        raw_adapters.push_back(adapter->raw("Context.set_lora"));
        scales.push_back(scale);
        keep.push_back(adapter);
    }
    auto g = lock("Context.set_lora");
    LogCapture capture;
    if (llama_set_adapters_lora(ctx_, raw_adapters.data(), raw_adapters.size(), scales.data()) != 0) {
        throw Error(ErrorKind::State, "[Context.set_lora] llama.cpp rejected the adapters: " + capture.errors());
    }
    adapters_ = std::move(keep);
    prompt_cache_.clear();  // computed with the adapters before
}

void Context::set_control_vector(const std::vector<float> & data, int32_t n_embd, int32_t il_start, int32_t il_end) {
    auto g = lock("Context.set_control_vector");
    LogCapture capture;
    if (llama_set_adapter_cvec(ctx_, data.empty() ? nullptr : data.data(), data.size(), n_embd, il_start, il_end) != 0) {
        throw_value("[Context.set_control_vector] llama.cpp rejected the control vector: " + capture.errors());
    }
    prompt_cache_.clear();  // computed without this vector
}

}  // namespace llamabind
