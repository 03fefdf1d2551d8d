#pragma once

#include <string>

namespace llamabind {

// Refuses a lazy-grammar trigger pattern that std::regex (a backtracking engine, run on the
// text generated so far at every token) could take exponential time on: a repeated item that
// itself repeats, as in (a+)+; or one whose body can match the same text in more than one way,
// as in (a|a)*, (a|ab)*c, (a?a)* or (ab?|b)*. Also refuses patterns past 1024 bytes and chains
// of ambiguous alternatives, as in (a|a)(a|a)(a|a)..., whose paths multiply. GrammarError.
void check_trigger_pattern(const std::string & pattern);

}  // namespace llamabind
