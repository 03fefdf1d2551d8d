#include "model.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "backend.h"
#include "errors.h"
#include "logging.h"
#include "model_limits.h"
#include "utf8.h"

namespace llamabind {
namespace {

// Checks the file before llama.cpp sees it, so the common mistakes get plain words.
void check_model_file(const std::string & path) {
    namespace fs = std::filesystem;
    check_path(path, "Model", "path");
    std::error_code ec;
    fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
        throw Error(ErrorKind::ModelLoad, "[Model] no such file: '" + path +
                                              "'. Model takes a path to a .gguf file; to load a model by name "
                                              "or URI, turn it into a path with llamabind.resolve_model(name) "
                                              "or load it with LlamaEngine.load_model(name)")
            .with("path", path);
    }
    if (fs::is_directory(status)) {
        throw Error(ErrorKind::ModelLoad, "[Model] '" + path + "' is a directory, not a GGUF file")
            .with("path", path);
    }
    uintmax_t size = fs::file_size(path, ec);
    if (ec || size == 0) {
        throw Error(ErrorKind::ModelLoad, "[Model] '" + path + "' is empty").with("path", path);
    }
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {0, 0, 0, 0};
    if (!in.read(magic, 4) || std::memcmp(magic, "GGUF", 4) != 0) {
        throw Error(ErrorKind::ModelLoad,
                    "[Model] '" + path + "' is not a GGUF file (its first bytes are not 'GGUF')")
            .with("path", path);
    }
}

struct ProgressState {
    const ProgressFn * fn;
    bool cancelled = false;
};

bool progress_trampoline(float progress, void * user_data) {
    auto * state = static_cast<ProgressState *>(user_data);
    if (!(*state->fn)(progress)) {
        state->cancelled = true;
        return false;
    }
    return true;
}

std::string read_string(const std::function<int32_t(char *, size_t)> & get) {
    std::vector<char> buf(256);
    int32_t n = get(buf.data(), buf.size());
    if (n < 0) {
        return {};
    }
    if (static_cast<size_t>(n) >= buf.size()) {
        buf.resize(static_cast<size_t>(n) + 1);
        n = get(buf.data(), buf.size());
    }
    return std::string(buf.data(), static_cast<size_t>(n));
}

}  // namespace

Model::Model(const std::string & path, const ModelOptions & options, const ProgressFn & progress)
    : path_(path), options_(options) {
    ensure_backend();
    check_model_file(path);

    llama_model_params params = llama_model_default_params();
    if (options.n_gpu_layers) params.n_gpu_layers = *options.n_gpu_layers;
    if (options.split_mode) {
        if (*options.split_mode < 0 || *options.split_mode > LLAMA_SPLIT_MODE_TENSOR) {
            throw_value("[Model] split_mode must be 0 (none), 1 (layer), 2 (row) or 3 (tensor)");
        }
        params.split_mode = static_cast<llama_split_mode>(*options.split_mode);
    }
    if (options.main_gpu) params.main_gpu = *options.main_gpu;
    for (float share : options.tensor_split) {
        if (!std::isfinite(share) || share < 0) throw_value("[Model] tensor_split entries must be finite and >= 0");
    }
    std::vector<float> tensor_split(llama_max_devices(), 0.0f);
    if (!options.tensor_split.empty()) {
        if (options.tensor_split.size() > tensor_split.size()) {
            throw_value("[Model] tensor_split has " + std::to_string(options.tensor_split.size()) +
                        " entries, this build supports at most " +
                        std::to_string(tensor_split.size()) + " devices");
        }
        std::copy(options.tensor_split.begin(), options.tensor_split.end(), tensor_split.begin());
        params.tensor_split = tensor_split.data();
    }
    if (options.use_mmap) {
        params.load_mode = options.use_mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP;
    } else {
        params.load_mode = options.use_mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE;
    }
    params.vocab_only = options.vocab_only;
    params.check_tensors = options.check_tensors;

    std::vector<llama_model_kv_override> overrides;
    for (const auto & [key, value] : options.kv_overrides) {
        llama_model_kv_override o{};
        if (key.size() >= sizeof(o.key)) {
            throw_value("[Model] kv_overrides key '" + key + "' is longer than 127 bytes");
        }
        std::strncpy(o.key, key.c_str(), sizeof(o.key) - 1);
        if (std::holds_alternative<bool>(value)) {
            o.tag = LLAMA_KV_OVERRIDE_TYPE_BOOL;
            o.val_bool = std::get<bool>(value);
        } else if (std::holds_alternative<int64_t>(value)) {
            o.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
            o.val_i64 = std::get<int64_t>(value);
        } else if (std::holds_alternative<double>(value)) {
            if (!std::isfinite(std::get<double>(value))) {
                throw_value("[Model] kv_overrides value for '" + key + "' is not a finite number");
            }
            o.tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT;
            o.val_f64 = std::get<double>(value);
        } else {
            const std::string & s = std::get<std::string>(value);
            if (s.size() >= sizeof(o.val_str)) {
                throw_value("[Model] kv_overrides value for '" + key + "' is longer than 127 bytes");
            }
            o.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
            std::strncpy(o.val_str, s.c_str(), sizeof(o.val_str) - 1);
        }
        overrides.push_back(o);
    }
    if (!overrides.empty()) {
        overrides.push_back(llama_model_kv_override{});  // terminated by an empty key
        params.kv_overrides = overrides.data();
    }

    check_model_limits(path, options.kv_overrides, options.vocab_only);

    ProgressState state{&progress};
    if (progress) {
        params.progress_callback = progress_trampoline;
        params.progress_callback_user_data = &state;
    }

    LogCapture capture;
    llama_model * raw = llama_model_load_from_file(path.c_str(), params);
    if (raw == nullptr) {
        if (state.cancelled) {
            throw Error(ErrorKind::ModelLoad, "[Model] loading '" + path + "' was cancelled by the progress callback")
                .with("path", path)
                .with("cancelled", int64_t{1});
        }
        std::string why = capture.errors();
        throw Error(ErrorKind::ModelLoad, "[Model] failed to load '" + path + "'" +
                                              (why.empty() ? std::string() : ": " + why))
            .with("path", path);
    }
    model_ = std::shared_ptr<llama_model>(raw, llama_model_free);

    // llama.cpp puts the output layer on the GPU when every layer is offloaded (n_gpu_layers
    // above the layer count, or -1) and there is a GPU to put it on.
    output_on_gpu_ = !options.vocab_only && has_gpu_device() &&
                     (params.n_gpu_layers < 0 || params.n_gpu_layers > llama_model_n_layer(raw));
}

void Model::close() {
    std::lock_guard<std::mutex> lock(mutex_);
    model_.reset();
}

bool Model::is_closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return model_ == nullptr;
}

std::shared_ptr<llama_model> Model::handle(const char * operation) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!model_) {
        throw_closed(operation);
    }
    return model_;
}

// The vocabulary lives inside the model; callers hold the model through `handle` when they
// need it beyond one call.
const llama_vocab * Model::vocab(const char * operation) const {
    return llama_model_get_vocab(handle(operation).get());
}

std::map<std::string, std::string> Model::metadata() const {
    auto m = handle("Model.metadata");
    std::map<std::string, std::string> result;
    int32_t n = llama_model_meta_count(m.get());
    for (int32_t i = 0; i < n; ++i) {
        std::string key = read_string([&](char * b, size_t s) { return llama_model_meta_key_by_index(m.get(), i, b, s); });
        std::string value = read_string([&](char * b, size_t s) { return llama_model_meta_val_str_by_index(m.get(), i, b, s); });
        result[valid_utf8(key)] = valid_utf8(value);
    }
    return result;
}

std::string Model::description() const {
    auto m = handle("Model.description");
    return read_string([&](char * b, size_t s) { return llama_model_desc(m.get(), b, s); });
}

std::string Model::architecture() const {
    auto m = handle("Model.architecture");
    return read_string([&](char * b, size_t s) { return llama_model_meta_val_str(m.get(), "general.architecture", b, s); });
}

uint64_t Model::n_params() const { return llama_model_n_params(handle("Model.n_params").get()); }
uint64_t Model::size_bytes() const { return llama_model_size(handle("Model.size_bytes").get()); }
int32_t Model::n_ctx_train() const { return llama_model_n_ctx_train(handle("Model.n_ctx_train").get()); }
int32_t Model::n_embd() const { return llama_model_n_embd(handle("Model.n_embd").get()); }
int32_t Model::n_layer() const { return llama_model_n_layer(handle("Model.n_layer").get()); }
int32_t Model::n_head() const { return llama_model_n_head(handle("Model.n_head").get()); }
int32_t Model::n_vocab() const { return llama_vocab_n_tokens(vocab("Model.n_vocab")); }
int32_t Model::vocab_type() const { return llama_vocab_type(vocab("Model.vocab_type")); }
bool Model::has_encoder() const { return llama_model_has_encoder(handle("Model.has_encoder").get()); }
bool Model::has_decoder() const { return llama_model_has_decoder(handle("Model.has_decoder").get()); }
bool Model::is_recurrent() const { return llama_model_is_recurrent(handle("Model.is_recurrent").get()); }

std::map<std::string, int32_t> Model::special_tokens() const {
    auto m = handle("Model.special_tokens");
    const llama_vocab * v = llama_model_get_vocab(m.get());
    return {
        {"bos", llama_vocab_bos(v)},         {"eos", llama_vocab_eos(v)},
        {"eot", llama_vocab_eot(v)},         {"sep", llama_vocab_sep(v)},
        {"nl", llama_vocab_nl(v)},           {"pad", llama_vocab_pad(v)},
        {"mask", llama_vocab_mask(v)},       {"fim_pre", llama_vocab_fim_pre(v)},
        {"fim_suf", llama_vocab_fim_suf(v)}, {"fim_mid", llama_vocab_fim_mid(v)},
        {"fim_pad", llama_vocab_fim_pad(v)}, {"fim_rep", llama_vocab_fim_rep(v)},
        {"fim_sep", llama_vocab_fim_sep(v)},
    };
}

bool Model::add_bos() const { return llama_vocab_get_add_bos(vocab("Model.add_bos")); }
bool Model::add_eos() const { return llama_vocab_get_add_eos(vocab("Model.add_eos")); }

void Model::check_token(int32_t token, const char * operation) const {
    int32_t n_vocab = llama_vocab_n_tokens(vocab(operation));
    if (token < 0 || token >= n_vocab) {
        throw Error(ErrorKind::Value, std::string("[") + operation + "] token " + std::to_string(token) +
                                          " is outside the vocabulary (0.." + std::to_string(n_vocab - 1) + ")");
    }
}

bool Model::is_eog(int32_t token) const {
    check_token(token, "Model.is_eog");
    return llama_vocab_is_eog(vocab("Model.is_eog"), token);
}

bool Model::is_control(int32_t token) const {
    check_token(token, "Model.is_control");
    return llama_vocab_is_control(vocab("Model.is_control"), token);
}

int32_t Model::token_attr(int32_t token) const {
    check_token(token, "Model.token_attr");
    return llama_vocab_get_attr(vocab("Model.token_attr"), token);
}

std::string Model::token_text(int32_t token) const {
    check_token(token, "Model.token_text");
    const char * text = llama_vocab_get_text(vocab("Model.token_text"), token);
    return text ? valid_utf8(text) : "";
}

float Model::token_score(int32_t token) const {
    check_token(token, "Model.token_score");
    return llama_vocab_get_score(vocab("Model.token_score"), token);
}

std::optional<std::string> Model::chat_template(const std::optional<std::string> & name) const {
    auto m = handle("Model.chat_template");
    const char * tmpl = llama_model_chat_template(m.get(), name ? name->c_str() : nullptr);
    if (tmpl == nullptr) {
        return std::nullopt;
    }
    return valid_utf8(tmpl);
}

std::map<std::string, std::string> Model::chat_templates() const {
    const std::string prefix = "tokenizer.chat_template";
    std::map<std::string, std::string> result;
    for (const auto & [key, value] : metadata()) {
        if (key == prefix) {
            result["default"] = value;
        } else if (key.rfind(prefix + ".", 0) == 0) {
            result[key.substr(prefix.size() + 1)] = value;
        }
    }
    return result;
}

std::vector<int32_t> tokenize_text(const llama_vocab * vocab, const std::string & text, bool add_special,
                                   bool parse_special, const char * operation) {
    if (text.size() > static_cast<size_t>(INT32_MAX)) {
        throw_value(std::string("[") + operation + "] text of " + std::to_string(text.size()) + " bytes is too long");
    }
    const auto text_len = static_cast<int32_t>(text.size());
    std::vector<int32_t> tokens(text.size() + 2);
    try {
        int32_t n = llama_tokenize(vocab, text.data(), text_len, tokens.data(), static_cast<int32_t>(tokens.size()),
                                   add_special, parse_special);
        if (n < 0) {
            if (n == INT32_MIN) {
                throw_value(std::string("[") + operation + "] the text yields more than 2^31 tokens");
            }
            tokens.resize(static_cast<size_t>(-n));
            n = llama_tokenize(vocab, text.data(), text_len, tokens.data(), static_cast<int32_t>(tokens.size()),
                               add_special, parse_special);
        }
        tokens.resize(static_cast<size_t>(std::max(n, 0)));
    } catch (const std::out_of_range & e) {
        // llama.cpp looks byte tokens up with unordered_map::at: a vocabulary without them throws.
        throw Error(ErrorKind::ModelLoad, std::string("[") + operation +
                                              "] the model's vocabulary has no token for a byte of this text (" +
                                              e.what() + "): its tokenizer data is incomplete");
    }
    return tokens;
}

std::vector<int32_t> Model::tokenize(const std::string & text, bool add_special, bool parse_special) const {
    auto m = handle("Model.tokenize");
    return tokenize_text(llama_model_get_vocab(m.get()), text, add_special, parse_special, "Model.tokenize");
}

std::string Model::detokenize(const std::vector<int32_t> & tokens, bool remove_special, bool unparse_special) const {
    auto m = handle("Model.detokenize");
    for (int32_t t : tokens) {
        check_token(t, "Model.detokenize");
    }
    const llama_vocab * v = llama_model_get_vocab(m.get());
    std::string text(tokens.size() * 8 + 16, '\0');
    auto n_tokens = static_cast<int32_t>(tokens.size());
    int32_t n = llama_detokenize(v, tokens.data(), n_tokens, text.data(), static_cast<int32_t>(text.size()),
                                 remove_special, unparse_special);
    if (n < 0) {
        text.resize(static_cast<size_t>(-n));
        n = llama_detokenize(v, tokens.data(), n_tokens, text.data(), static_cast<int32_t>(text.size()),
                             remove_special, unparse_special);
    }
    text.resize(static_cast<size_t>(std::max(n, 0)));
    return text;
}

std::string token_piece(const llama_vocab * vocab, int32_t token, bool special) {
    char buf[128];
    int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, special);
    if (n >= 0) {
        return std::string(buf, static_cast<size_t>(n));
    }
    std::string piece(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab, token, piece.data(), static_cast<int32_t>(piece.size()), 0, special);
    piece.resize(static_cast<size_t>(std::max(n, 0)));
    return piece;
}

std::string Model::token_to_piece(int32_t token, bool special) const {
    check_token(token, "Model.token_to_piece");
    return token_piece(vocab("Model.token_to_piece"), token, special);
}

}  // namespace llamabind
