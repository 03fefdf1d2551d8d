#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "llama.h"
#include "model.h"

namespace llamabind {

// A LoRA adapter loaded for a model; set on contexts with a scale.
class LoraAdapter {
  public:
    LoraAdapter(const Model & model, const std::string & path);
    ~LoraAdapter();
    void close();
    bool is_closed() const;
    llama_adapter_lora * raw(const char * operation) const;
    const std::string & path() const { return path_; }
    // The model the adapter was loaded for: a context of another model must refuse it.
    const llama_model * model() const { return model_.get(); }
    std::map<std::string, std::string> metadata() const;

  private:
    std::shared_ptr<llama_model> model_;
    std::string path_;
    mutable std::mutex mutex_;
    llama_adapter_lora * adapter_ = nullptr;
    bool closed_ = false;
};

}  // namespace llamabind
