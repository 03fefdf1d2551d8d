#pragma once

#include <string>

namespace llamabind {

// `bytes` with every byte that does not start a valid UTF-8 sequence (overlong forms and
// surrogates included) replaced by U+FFFD: text from a model file is untrusted and Python's
// str takes only valid UTF-8.
std::string valid_utf8(const std::string & bytes);

}  // namespace llamabind
