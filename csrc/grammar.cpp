#include "grammar.h"

#include "errors.h"
#include "json-schema-to-grammar.h"
#include "json.h"

namespace llamabind {

std::string json_schema_to_grammar(const std::string & schema_json) {
    common_json schema;
    try {
        schema = common_json::parse(schema_json);
    } catch (const std::exception & e) {
        throw Error(ErrorKind::Grammar, std::string("[json_schema_to_grammar] the schema is not valid JSON: ") + e.what());
    }
    try {
        return ::json_schema_to_grammar(schema);
    } catch (const std::exception & e) {
        throw Error(ErrorKind::Grammar, std::string("[json_schema_to_grammar] ") + e.what());
    }
}

}  // namespace llamabind
