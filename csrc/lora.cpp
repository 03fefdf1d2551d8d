#include "lora.h"

#include <filesystem>
#include <vector>

#include "errors.h"
#include "utf8.h"
#include "logging.h"

namespace llamabind {

LoraAdapter::LoraAdapter(const Model & model, const std::string & path)
    : model_(model.handle("LoraAdapter")), path_(path) {
    check_path(path, "LoraAdapter", "path");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        throw Error(ErrorKind::ModelLoad, "[LoraAdapter] no such file: '" + path + "'").with("path", path);
    }
    LogCapture capture;
    adapter_ = llama_adapter_lora_init(model_.get(), path.c_str());
    if (adapter_ == nullptr) {
        std::string why = capture.errors();
        throw Error(ErrorKind::ModelLoad, "[LoraAdapter] failed to load '" + path + "'" +
                                              (why.empty() ? std::string() : ": " + why))
            .with("path", path);
    }
}

// Contexts that use the adapter hold it through shared_ptr, so the weights are freed only
// when the last user is gone; close() makes this handle unusable at once.
LoraAdapter::~LoraAdapter() {
    if (adapter_ != nullptr) {
        llama_adapter_lora_free(adapter_);
    }
}

void LoraAdapter::close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
}

bool LoraAdapter::is_closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
}

llama_adapter_lora * LoraAdapter::raw(const char * operation) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
        throw_closed(operation);
    }
    return adapter_;
}

std::map<std::string, std::string> LoraAdapter::metadata() const {
    llama_adapter_lora * a = raw("LoraAdapter.metadata");
    std::map<std::string, std::string> result;
    int32_t n = llama_adapter_meta_count(a);
    for (int32_t i = 0; i < n; ++i) {
        std::vector<char> key(256), val(4096);
        if (llama_adapter_meta_key_by_index(a, i, key.data(), key.size()) < 0) continue;
        int32_t len = llama_adapter_meta_val_str_by_index(a, i, val.data(), val.size());
        if (len >= static_cast<int32_t>(val.size())) {
            val.resize(static_cast<size_t>(len) + 1);
            llama_adapter_meta_val_str_by_index(a, i, val.data(), val.size());
        }
        result[valid_utf8(key.data())] = valid_utf8(val.data());
    }
    return result;
}

}  // namespace llamabind
