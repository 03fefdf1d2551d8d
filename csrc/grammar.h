#pragma once

#include <string>

namespace llamabind {

// JSON schema (as JSON text) -> GBNF grammar, by llama.cpp's common/ converter.
std::string json_schema_to_grammar(const std::string & schema_json);

}  // namespace llamabind
