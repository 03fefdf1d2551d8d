#pragma once

#include <cstddef>
#include <string>

namespace llamabind {

// Limits that keep llama.cpp's recursive grammar parser and its JSON schema converter from
// overflowing the stack or running for minutes on hostile input.
constexpr size_t max_grammar_bytes = size_t{4} << 20;
constexpr int max_grammar_nesting = 256;       // ( ... ) groups inside one another
constexpr int max_schema_nesting = 128;        // JSON levels of a schema
constexpr size_t max_schema_properties = 512;  // properties of one object (conversion is cubic in them)

// Raises GrammarError unless the GBNF text is within the limits above (and holds no NUL byte,
// which would cut it short at the C API).
void check_grammar(const std::string & gbnf, const char * operation);

// Raises GrammarError unless the JSON text (a schema, or tools holding schemas) is within the
// nesting and property limits above; ValueError when it is not JSON.
void check_json_schema(const std::string & json_text, const char * operation);

// JSON schema (as JSON text) -> GBNF grammar, by llama.cpp's common/ converter, within the
// limits above.
std::string json_schema_to_grammar(const std::string & schema_json);

}  // namespace llamabind
