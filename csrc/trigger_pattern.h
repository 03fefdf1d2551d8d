#pragma once

#include <string>

namespace llamabind {

// Refuses a lazy-grammar trigger pattern that std::regex (a backtracking engine, run on the
// text generated so far at every token) could take exponential time on: a repeated item whose
// iterations can split one text in more than one way, as in (a+)+, (a|a)*, (a|ab)*c, (a?a)* or
// (ab?|b)*, or that repeats and can match nothing, as in (a*)*. A repeat whose iterations are
// delimited, as in (\d+,)* or (x*y)*, is accepted. Also refuses patterns past 1024 bytes and chains
// of ambiguous alternatives, as in (a|a)(a|a)(a|a)..., whose paths multiply. GrammarError.
void check_trigger_pattern(const std::string & pattern);

}  // namespace llamabind
