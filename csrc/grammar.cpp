#include "grammar.h"

#include <utility>
#include <vector>

#include "errors.h"
#include "json-schema-to-grammar.h"
#include "json.h"

namespace llamabind {
namespace {

[[noreturn]] void grammar_error(const char * operation, const std::string & why) {
    throw Error(ErrorKind::Grammar, std::string("[") + operation + "] " + why);
}

// The deepest nesting of ( ... ) groups, outside string literals, character classes and comments.
int grammar_nesting(const std::string & gbnf) {
    int depth = 0, deepest = 0;
    for (size_t i = 0; i < gbnf.size(); ++i) {
        const char c = gbnf[i];
        if (c == '#') {
            while (i < gbnf.size() && gbnf[i] != '\n') ++i;
        } else if (c == '"' || c == '[') {
            const char end = c == '"' ? '"' : ']';
            for (++i; i < gbnf.size() && gbnf[i] != end; ++i) {
                if (gbnf[i] == '\\') ++i;
            }
        } else if (c == '(') {
            deepest = std::max(deepest, ++depth);
        } else if (c == ')') {
            --depth;
        }
    }
    return deepest;
}

// Walks the schema without recursion (it may be nested thousands of levels deep).
void check_schema(const common_json & schema, const char * op) {
    std::vector<std::pair<const common_json *, int>> pending = {{&schema, 1}};
    while (!pending.empty()) {
        auto [node, depth] = pending.back();
        pending.pop_back();
        if (depth > max_schema_nesting) {
            grammar_error(op, "the schema nests more than " + std::to_string(max_schema_nesting) + " levels deep");
        }
        if (node->is_object() && node->contains("properties")) {
            const common_json & properties = node->at("properties");
            if (properties.is_object() && properties.size() > max_schema_properties) {
                grammar_error(op, "an object of the schema has " + std::to_string(properties.size()) +
                                      " properties; the limit is " + std::to_string(max_schema_properties));
            }
        }
        if (node->is_object() || node->is_array()) {
            for (const common_json & child : *node) {
                if (child.is_object() || child.is_array()) pending.emplace_back(&child, depth + 1);
            }
        }
    }
}

}  // namespace

void check_grammar(const std::string & gbnf, const char * operation) {
    if (gbnf.find('\0') != std::string::npos) grammar_error(operation, "the grammar contains a NUL byte");
    if (gbnf.size() > max_grammar_bytes) {
        grammar_error(operation, "the grammar has " + std::to_string(gbnf.size()) + " bytes; the limit is " +
                                     std::to_string(max_grammar_bytes));
    }
    const int nesting = grammar_nesting(gbnf);
    if (nesting > max_grammar_nesting) {
        grammar_error(operation, "the grammar nests groups " + std::to_string(nesting) + " levels deep; the limit is " +
                                     std::to_string(max_grammar_nesting));
    }
}

void check_json_schema(const std::string & json_text, const char * operation) {
    common_json parsed;
    try {
        parsed = common_json::parse(json_text);
    } catch (const std::exception & e) {
        throw_value(std::string("[") + operation + "] not valid JSON: " + e.what());
    }
    check_schema(parsed, operation);
}

std::string json_schema_to_grammar(const std::string & schema_json) {
    common_json schema;
    try {
        schema = common_json::parse(schema_json);
    } catch (const std::exception & e) {
        throw Error(ErrorKind::Grammar, std::string("[json_schema_to_grammar] the schema is not valid JSON: ") + e.what());
    }
    check_schema(schema, "json_schema_to_grammar");
    std::string grammar;
    try {
        grammar = ::json_schema_to_grammar(schema);
    } catch (const std::exception & e) {
        throw Error(ErrorKind::Grammar, std::string("[json_schema_to_grammar] ") + e.what());
    }
    if (grammar.size() > max_grammar_bytes) {
        grammar_error("json_schema_to_grammar", "the schema becomes a grammar of " + std::to_string(grammar.size()) +
                                                    " bytes; the limit is " + std::to_string(max_grammar_bytes));
    }
    return grammar;
}

}  // namespace llamabind
