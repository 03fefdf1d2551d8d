#include "model_limits.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "errors.h"
#include "gguf.h"

namespace llamabind {
namespace {

// From the vendored src/llama-hparams.h (an internal header): the sizes of llama.cpp's per-layer
// and per-expert arrays, which load_hparams asserts on.
constexpr int64_t max_layers = 512;
constexpr int64_t max_experts = 1024;

// The smallest and largest value of an integer key (an array counts per element).
struct Range {
    int64_t min, max;
};

// The size of an integer GGUF type, 0 for the others.
size_t integer_size(gguf_type type) {
    switch (type) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: return 1;
        case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: return 4;
        case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: return 8;
        default: return 0;
    }
}

int64_t read_integer(const void * data, gguf_type type) {
    switch (type) {
        case GGUF_TYPE_UINT8: return *static_cast<const uint8_t *>(data);
        case GGUF_TYPE_INT8: return *static_cast<const int8_t *>(data);
        case GGUF_TYPE_UINT16: return *static_cast<const uint16_t *>(data);
        case GGUF_TYPE_INT16: return *static_cast<const int16_t *>(data);
        case GGUF_TYPE_UINT32: return *static_cast<const uint32_t *>(data);
        case GGUF_TYPE_INT32: return *static_cast<const int32_t *>(data);
        // values past INT64_MAX read as negative, which every check below refuses as well
        case GGUF_TYPE_UINT64: return static_cast<int64_t>(*static_cast<const uint64_t *>(data));
        case GGUF_TYPE_INT64: return *static_cast<const int64_t *>(data);
        default: return 0;
    }
}

class Metadata {
  public:
    Metadata(gguf_context * gguf, const std::map<std::string, KvOverrideValue> & overrides)
        : gguf_(gguf), overrides_(overrides) {}

    // An integer key (an override wins), or nullopt when it is absent or not an integer.
    std::optional<Range> range(const std::string & key) const {
        auto o = overrides_.find(key);
        if (o != overrides_.end()) {
            if (!std::holds_alternative<int64_t>(o->second)) return std::nullopt;
            const int64_t v = std::get<int64_t>(o->second);
            return Range{v, v};
        }
        const int64_t id = gguf_find_key(gguf_, key.c_str());
        if (id < 0) return std::nullopt;
        const gguf_type type = gguf_get_kv_type(gguf_, id);
        if (integer_size(type) > 0) {
            const int64_t v = read_integer(gguf_get_val_data(gguf_, id), type);
            return Range{v, v};
        }
        if (type != GGUF_TYPE_ARRAY) return std::nullopt;
        const gguf_type element = gguf_get_arr_type(gguf_, id);
        const size_t size = integer_size(element), n = gguf_get_arr_n(gguf_, id);
        if (size == 0 || n == 0) return std::nullopt;
        const auto * data = static_cast<const char *>(gguf_get_arr_data(gguf_, id));
        Range r{INT64_MAX, INT64_MIN};
        for (size_t i = 0; i < n; ++i) {
            const int64_t v = read_integer(data + i * size, element);
            r.min = std::min(r.min, v);
            r.max = std::max(r.max, v);
        }
        return r;
    }

    std::optional<std::string> text(const std::string & key) const {
        auto o = overrides_.find(key);
        if (o != overrides_.end()) {
            if (!std::holds_alternative<std::string>(o->second)) return std::nullopt;
            return std::get<std::string>(o->second);
        }
        const int64_t id = gguf_find_key(gguf_, key.c_str());
        if (id < 0 || gguf_get_kv_type(gguf_, id) != GGUF_TYPE_STRING) return std::nullopt;
        return std::string(gguf_get_val_str(gguf_, id));
    }

  private:
    gguf_context * gguf_;
    const std::map<std::string, KvOverrideValue> & overrides_;
};

}  // namespace

void check_model_limits(const std::string & path, const std::map<std::string, KvOverrideValue> & overrides,
                        bool vocab_only) {
    if (vocab_only) return;  // llama.cpp reads no hyperparameters for a vocabulary-only load
    gguf_init_params params{true, nullptr};
    gguf_context * gguf = gguf_init_from_file(path.c_str(), params);
    if (gguf == nullptr) return;  // unreadable metadata: llama.cpp's own load reports it
    struct Free {
        gguf_context * g;
        ~Free() { gguf_free(g); }
    } free_on_exit{gguf};

    const Metadata meta(gguf, overrides);
    const std::string arch = meta.text("general.architecture").value_or("");
    if (arch.empty()) return;
    auto fail = [&](const std::string & key, const std::string & why) {
        throw Error(ErrorKind::ModelLoad, "[Model] '" + path + "': " + key + " " + why +
                                              " (llama.cpp would abort loading it; a corrupt file or a bad "
                                              "kv_overrides value)")
            .with("path", path)
            .with("key", key);
    };
    auto value = [](const Range & r) {
        return r.min == r.max ? std::to_string(r.max) : std::to_string(r.min) + ".." + std::to_string(r.max);
    };

    const std::string k_layers = arch + ".block_count";
    const auto layers = meta.range(k_layers);
    if (layers && (layers->min < 1 || layers->max > max_layers)) {
        fail(k_layers, "= " + value(*layers) + " is outside 1.." + std::to_string(max_layers));
    }
    const std::string k_nextn = arch + ".nextn_predict_layers";
    if (auto nextn = meta.range(k_nextn); nextn && layers && (nextn->min < 0 || nextn->max > layers->max)) {
        fail(k_nextn, "= " + value(*nextn) + " is outside 0.." + std::to_string(layers->max) + " (the block count)");
    }

    const std::string k_experts = arch + ".expert_count";
    const int64_t n_experts = meta.range(k_experts).value_or(Range{0, 0}).max;
    if (n_experts < 0 || n_experts > max_experts) {
        fail(k_experts, "= " + std::to_string(n_experts) + " is outside 0.." + std::to_string(max_experts));
    }
    const std::string k_used = arch + ".expert_used_count";
    if (auto used = meta.range(k_used)) {
        if (used->min < 0 || used->max > n_experts || (n_experts > 0 && used->max == 0)) {
            fail(k_used, "= " + value(*used) + " is outside " + (n_experts > 0 ? "1.." : "0..") +
                             std::to_string(n_experts) + " (the expert count)");
        }
    }
    const std::string k_groups = arch + ".expert_group_count";
    const int64_t n_groups = meta.range(k_groups).value_or(Range{0, 0}).max;
    if (n_groups < 0 || (n_experts == 0 && n_groups != 0) || (n_experts > 0 && n_groups >= n_experts) ||
        (n_groups > 1 && n_experts % n_groups != 0)) {
        fail(k_groups, "= " + std::to_string(n_groups) + " does not divide the " + std::to_string(n_experts) +
                           " experts into fewer groups than experts");
    }
    const std::string k_groups_used = arch + ".expert_group_used_count";
    const int64_t n_groups_used = meta.range(k_groups_used).value_or(Range{0, 0}).max;
    if (n_groups > 1 && (n_groups_used <= 0 || n_groups_used >= n_groups)) {
        fail(k_groups_used, "= " + std::to_string(n_groups_used) + " is outside 1.." + std::to_string(n_groups - 1));
    }

    const std::string k_rope = arch + ".rope.scaling.type";
    if (auto rope = meta.text(k_rope)) {
        static const std::vector<std::string> known = {"none", "linear", "yarn", "longrope"};
        if (std::find(known.begin(), known.end(), *rope) == known.end()) {
            fail(k_rope, "= '" + *rope + "' is not one of none, linear, yarn, longrope");
        }
    }
}

}  // namespace llamabind
