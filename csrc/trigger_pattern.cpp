#include "trigger_pattern.h"

#include <bitset>
#include <cctype>
#include <cstdlib>
#include <vector>

#include "errors.h"

namespace llamabind {
namespace {

using Bytes = std::bitset<256>;

constexpr size_t max_pattern_bytes = 1024;
constexpr double max_paths = 1024;  // ways an ambiguous pattern may split one text, outside repeats

// What a part of a pattern can match, as far as backtracking is concerned.
struct Piece {
    Bytes first;                // bytes a match can start with
    Bytes tail;                 // bytes an optional continuation at the end of a match can start with
    std::string literal;        // bytes every match starts with (to tell alternatives apart)
    bool literal_whole = true;  // every match is exactly `literal`
    bool nullable = false;      // can match the empty string
    bool repeats = false;       // holds an item repeated more than once
    bool ambiguous = false;     // holds a part that can match one text in more than one way
};

Bytes range(int lo, int hi) {
    Bytes b;
    for (int c = lo; c <= hi; ++c) b.set(static_cast<size_t>(c));
    return b;
}

Bytes byte(char c) {
    Bytes b;
    b.set(static_cast<unsigned char>(c));
    return b;
}

Bytes all_bytes() {
    return Bytes().set();
}

// The bytes an escape's class matches (\d, \w, \s and their negations, \n, \t, punctuation);
// all bytes where it is not a plain class (\x, \u, \c: the byte is not worked out).
Bytes escape_bytes(char e) {
    const Bytes digit = range('0', '9');
    const Bytes word = range('a', 'z') | range('A', 'Z') | digit | byte('_');
    const Bytes space = byte(' ') | byte('\t') | byte('\n') | byte('\r') | byte('\f') | byte('\v');
    switch (e) {
        case 'd': return digit;
        case 'D': return ~digit;
        case 'w': return word;
        case 'W': return ~word;
        case 's': return space;
        case 'S': return ~space;
        case 'n': return byte('\n');
        case 't': return byte('\t');
        case 'r': return byte('\r');
        case 'f': return byte('\f');
        case 'v': return byte('\v');
        case '0': return byte('\0');
        default: return std::isalnum(static_cast<unsigned char>(e)) ? all_bytes() : byte(e);
    }
}

bool literals_differ(const std::string & a, const std::string & b) {
    for (size_t k = 0; k < a.size() && k < b.size(); ++k) {
        if (a[k] != b[k]) return true;
    }
    return false;
}

// Whether two alternatives can match the same text: both the empty one, or texts that start
// alike (judged by their first byte, and by their literal prefixes where both have one).
bool overlap(const Piece & a, const Piece & b) {
    if (a.nullable && b.nullable) return true;
    return (a.first & b.first).any() && !literals_differ(a.literal, b.literal);
}

class Scanner {
  public:
    explicit Scanner(const std::string & pattern) : p_(pattern) {}

    void check() {
        while (i_ < p_.size()) {
            alternation();
            if (i_ < p_.size()) ++i_;  // an unmatched ')': std::regex reports it
        }
        if (paths_ > max_paths) {
            fail("has alternatives or optional parts that can match the same text one after another, like "
                 "(a|a)(a|a)(a|a) or a?a?a?aaa, whose ways to split a text multiply");
        }
    }

  private:
    [[noreturn]] void fail(const std::string & why) const {
        throw Error(ErrorKind::Grammar, "[Sampler] trigger pattern '" + p_ + "' " + why +
                                            ", which can take exponential time on every token; rewrite it");
    }

    bool at(char c) const { return i_ < p_.size() && p_[i_] == c; }

    Piece alternation() {
        std::vector<Piece> alternatives = {sequence()};
        while (at('|')) {
            ++i_;
            alternatives.push_back(sequence());
        }
        if (alternatives.size() == 1) return alternatives[0];
        Piece out;
        out.literal_whole = false;
        size_t n_overlapping = 0;
        for (size_t a = 0; a < alternatives.size(); ++a) {
            const Piece & alt = alternatives[a];
            out.first |= alt.first;
            out.tail |= alt.tail;
            out.nullable = out.nullable || alt.nullable;
            out.repeats = out.repeats || alt.repeats;
            out.ambiguous = out.ambiguous || alt.ambiguous;
            for (size_t b = a + 1; b < alternatives.size(); ++b) {
                if (overlap(alt, alternatives[b])) {
                    out.ambiguous = true;
                    ++n_overlapping;
                }
            }
        }
        if (n_overlapping > 0) paths_ *= static_cast<double>(n_overlapping + 1);
        return out;
    }

    Piece sequence() {
        std::vector<Piece> items;
        while (i_ < p_.size() && !at('|') && !at(')')) items.push_back(quantified());
        Piece out;
        out.nullable = true;
        Bytes rest;  // what the items after the current one can start with
        bool rest_nullable = true;
        for (size_t k = items.size(); k-- > 0;) {
            const Piece & item = items[k];
            if ((item.tail & rest).any()) {
                out.ambiguous = true;  // where item ends and the rest begins can be chosen
                if (!item.repeats) paths_ *= 2;
            }
            rest = item.nullable ? (item.first | rest) : item.first;
            if (rest_nullable) out.tail |= item.tail;
            rest_nullable = rest_nullable && item.nullable;
            out.repeats = out.repeats || item.repeats;
            out.ambiguous = out.ambiguous || item.ambiguous;
        }
        out.first = rest;
        out.nullable = rest_nullable;
        for (const Piece & item : items) {
            out.literal += item.literal;
            if (!item.literal_whole) {
                out.literal_whole = false;
                break;
            }
        }
        return out;
    }

    // An atom and its quantifiers: std::regex reads a** as (a*)*.
    Piece quantified() {
        Piece piece = atom();
        for (;;) {
            long min = 1, max = 1;  // max < 0: unbounded
            if (at('*') || at('+') || at('?')) {
                min = at('+') ? 1 : 0;
                max = at('?') ? 1 : -1;
                ++i_;
            } else if (!at('{') || !brace(min, max)) {
                return piece;
            }
            if (min == 1 && max == 1) continue;
            if (at('?')) ++i_;  // lazy: the same paths, tried in another order
            piece = repeat(piece, min, max);
        }
    }

    Piece repeat(const Piece & item, long min, long max) {
        const bool many = max < 0 || max > 1;
        // A repeat inside a repeat is only exponential where the iterations can split one text in
        // more than one way (the next check) or match the empty text: (a*)*, not (\d+,)*.
        if (many && item.repeats && item.nullable) fail("repeats a group that itself repeats and can match nothing (like (a*)* or a**)");
        if (many && (item.ambiguous || (item.tail & item.first).any())) {
            fail("repeats a part that can match the same text in more than one way (like (a|a)*, (a|ab)* or (a?a)*)");
        }
        Piece out = item;
        if (max != min) out.tail |= item.first;
        out.nullable = item.nullable || min == 0;
        out.repeats = item.repeats || many;
        out.literal_whole = false;
        if (min == 0) out.literal.clear();
        return out;
    }

    // {n}, {n,} or {n,m} at i_: the bounds, or false (and i_ unchanged) for a literal '{'.
    bool brace(long & min, long & max) {
        const size_t close = p_.find('}', i_);
        if (close == std::string::npos) return false;
        const std::string body = p_.substr(i_ + 1, close - i_ - 1);
        const size_t comma = body.find(',');
        const std::string low = body.substr(0, comma);
        const std::string high = comma == std::string::npos ? low : body.substr(comma + 1);
        auto digits = [](const std::string & s) {
            for (char c : s) {
                if (!std::isdigit(static_cast<unsigned char>(c))) return false;
            }
            return s.size() <= 6;
        };
        if (low.empty() || !digits(low) || !digits(high)) return false;
        min = std::atol(low.c_str());
        max = high.empty() ? -1 : std::atol(high.c_str());
        i_ = close + 1;
        return true;
    }

    Piece atom() {
        Piece out;
        const char c = p_[i_++];
        if (c == '(') return group();
        if (c == '^' || c == '$') {
            out.nullable = true;  // zero-width: the next item decides what comes first
            return out;
        }
        if (c == '[') {
            out.first = char_class();
        } else if (c == '.') {
            out.first = all_bytes();
        } else if (c == '\\' && i_ < p_.size()) {
            const char e = p_[i_++];
            if (e == 'b' || e == 'B') {
                out.nullable = true;
                return out;
            }
            if (e >= '1' && e <= '9') {  // a back-reference: any text, maybe empty
                out.first = all_bytes();
                out.nullable = true;
                out.literal_whole = false;
                return out;
            }
            out.first = escape_bytes(e);
            if (out.first.count() == 1 && !std::isalnum(static_cast<unsigned char>(e))) {
                out.literal = std::string(1, e);
                return out;
            }
        } else {
            out.first = byte(c);
            out.literal = std::string(1, c);
            return out;
        }
        out.literal_whole = false;
        return out;
    }

    Piece group() {
        bool lookaround = false;
        if (at('?') && i_ + 1 < p_.size()) {
            lookaround = p_[i_ + 1] == '=' || p_[i_ + 1] == '!';
            i_ += 2;  // (?: (?= (?!
        }
        Piece inner = alternation();
        if (at(')')) ++i_;
        if (lookaround) {  // zero-width: checked inside, consumes nothing
            Piece out;
            out.nullable = true;
            out.repeats = inner.repeats;
            out.ambiguous = inner.ambiguous;
            return out;
        }
        return inner;
    }

    // [...] at i_ (after the '['): the bytes it matches.
    Bytes char_class() {
        Bytes out;
        const bool negate = at('^');
        if (negate) ++i_;
        int previous = -1;  // the last single byte, for a range
        bool first_item = true;
        while (i_ < p_.size() && (p_[i_] != ']' || first_item)) {
            first_item = false;
            const char c = p_[i_++];
            if (c == '[' && i_ < p_.size() && (p_[i_] == ':' || p_[i_] == '.' || p_[i_] == '=')) {
                const size_t close = p_.find(std::string(1, p_[i_]) + "]", i_ + 1);
                i_ = close == std::string::npos ? p_.size() : close + 2;
                out = all_bytes();  // a POSIX class: not worked out
                previous = -1;
            } else if (c == '\\' && i_ < p_.size()) {
                out |= escape_bytes(p_[i_++]);
                previous = -1;
            } else if (c == '-' && previous >= 0 && i_ < p_.size() && p_[i_] != ']') {
                const auto hi = static_cast<unsigned char>(p_[i_++]);
                out |= range(previous, hi);
                previous = -1;
            } else {
                previous = static_cast<unsigned char>(c);
                out.set(static_cast<unsigned char>(c));
            }
        }
        if (i_ < p_.size()) ++i_;  // ']'
        return negate ? ~out : out;
    }

    const std::string & p_;
    size_t i_ = 0;
    double paths_ = 1;
};

}  // namespace

void check_trigger_pattern(const std::string & pattern) {
    if (pattern.size() > max_pattern_bytes) {
        throw Error(ErrorKind::Grammar, "[Sampler] a trigger pattern has " + std::to_string(pattern.size()) +
                                            " bytes; the limit is " + std::to_string(max_pattern_bytes));
    }
    Scanner(pattern).check();
}

}  // namespace llamabind
