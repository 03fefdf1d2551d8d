#pragma once

#include <map>
#include <string>

#include "model.h"

namespace llamabind {

// Checks the GGUF hyperparameters that llama.cpp asserts on while loading (a GGML_ASSERT aborts
// the process) in the file's metadata with `overrides` applied, before llama.cpp sees the file.
// Raises ModelLoadError naming the key, the value and the limit.
void check_model_limits(const std::string & path, const std::map<std::string, KvOverrideValue> & overrides,
                        bool vocab_only);

}  // namespace llamabind
