#include "matcher/engine/pcre_literals.h"

#include "base/hex.h"
#include "matcher/model/text.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>

namespace ringscan::matcher::detail {
namespace {

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

/// Inline option groups anywhere in the pattern: `(?i)` / `(?i:` make every literal
/// caseless for the gate (a superset is still a gate); extended mode cannot be read here.
struct inline_options {
    bool caseless = false;
    bool extended = false;
};

inline_options scan_inline_options(std::string_view p) {
    inline_options out;
    for (std::size_t at = p.find("(?"); at != std::string_view::npos; at = p.find("(?", at + 2)) {
        std::size_t k = at + 2;
        std::string_view letters;
        while (k < p.size() && (std::isalpha(static_cast<unsigned char>(p[k])) != 0 ||
                                p[k] == '-' || p[k] == '^')) {
            ++k;
        }
        if (k == at + 2 || k >= p.size() || (p[k] != ')' && p[k] != ':')) {
            continue;
        }
        letters = p.substr(at + 2, k - at - 2);
        out.caseless = out.caseless || letters.find('i') != std::string_view::npos;
        out.extended = out.extended || letters.find('x') != std::string_view::npos;
    }
    return out;
}

/// A quantifier at `at`: its length and whether it allows zero repetitions; length 0
/// when there is none (a `{` that is not `{n}`, `{n,}` or `{n,m}` is a literal brace).
struct quantifier {
    std::size_t length = 0;
    bool optional = false;
};

quantifier quantifier_at(std::string_view p, std::size_t at) {
    quantifier q;
    if (at >= p.size()) {
        return q;
    }
    if (p[at] == '*' || p[at] == '?') {
        q = {1, true};
    } else if (p[at] == '+') {
        q = {1, false};
    } else if (p[at] == '{') {
        std::size_t k = at + 1;
        std::uint64_t least = 0;
        const std::size_t digits_from = k;
        while (k < p.size() && is_digit(p[k])) {
            least = least * 10 + static_cast<std::uint64_t>(p[k] - '0');
            least = std::min<std::uint64_t>(least, 1U << 20U);
            ++k;
        }
        if (k == digits_from) {
            return q;
        }
        if (k < p.size() && p[k] == ',') {
            ++k;
            while (k < p.size() && is_digit(p[k])) {
                ++k;
            }
        }
        if (k >= p.size() || p[k] != '}') {
            return q;
        }
        q = {k + 1 - at, least == 0};
    } else {
        return q;
    }
    // Lazy (`?`) and possessive (`+`) forms repeat the same amounts.
    if (at + q.length < p.size() && (p[at + q.length] == '?' || p[at + q.length] == '+')) {
        ++q.length;
    }
    return q;
}

// Groups inside groups are read up to this depth; a deeper one is just not a literal.
constexpr int deepest_group = 8;
// A set of literals larger than this gates too little to be worth a group's place.
constexpr std::size_t widest_literal_set = 32;

/// Literals one of which must occur: a single run of bytes, or what a group requires.
/// Scored by its shortest literal (the weakest way to satisfy it).
struct literal_set {
    std::vector<std::string> literals;

    [[nodiscard]] std::size_t score() const {
        std::size_t shortest = literals.empty() ? 0 : literals.front().size();
        for (const std::string& literal : literals) {
            shortest = std::min(shortest, literal.size());
        }
        return shortest;
    }
    [[nodiscard]] bool better_than(const literal_set& other) const {
        return score() > other.score() ||
               (score() == other.score() && literals.size() < other.literals.size());
    }
};

/// Where a group's alternatives begin, when the group consumes what it matches (plain,
/// non-capturing, named, atomic, branch-reset and option groups); npos for lookarounds,
/// conditionals, comments and verbs, whose content need not be in the match.
std::size_t consuming_group_body(std::string_view p, std::size_t open) {
    const std::string_view rest = p.substr(open + 1);
    if (rest.empty() || rest.front() == '*') {
        return std::string_view::npos;  // (*VERB)
    }
    if (rest.front() != '?') {
        return open + 1;
    }
    if (rest.starts_with("?:") || rest.starts_with("?>") || rest.starts_with("?|")) {
        return open + 3;
    }
    if (rest.starts_with("?P<") || rest.starts_with("?<") || rest.starts_with("?'")) {
        if (rest.starts_with("?<=") || rest.starts_with("?<!")) {
            return std::string_view::npos;
        }
        const char close = rest[1] == '\'' ? '\'' : '>';
        const std::size_t end = p.find(close, open + 3);
        return end == std::string_view::npos ? end : end + 1;
    }
    // (?i:...) and other option letters before ':'
    std::size_t k = open + 2;
    while (k < p.size() &&
           (std::isalpha(static_cast<unsigned char>(p[k])) != 0 || p[k] == '-' || p[k] == '^')) {
        ++k;
    }
    return k > open + 2 && k < p.size() && p[k] == ':' ? k + 1 : std::string_view::npos;
}

/// Reads one alternative after another, keeping per alternative the best literal set
/// every match must satisfy: the longest run of bytes it contains in order, or a group
/// whose every alternative has one.
class literal_finder {
public:
    explicit literal_finder(std::string_view pattern, int depth = 0) : p_(pattern), depth_(depth) {}

    std::optional<std::vector<std::string>> run() {
        while (at_ < p_.size()) {
            if (!step()) {
                return std::nullopt;
            }
        }
        if (!end_alternative()) {
            return std::nullopt;
        }
        return std::move(literals_);
    }

private:
    bool step() {
        const char c = p_[at_];
        switch (c) {
            case '|':
                ++at_;
                return end_alternative();
            case '(':
                return group();
            case '[':
                return skip_atom(class_end(at_));
            case '.':
                return skip_atom(at_ + 1);
            case '^':
            case '$':
                ++at_;
                end_run();
                return true;
            case ')':
            case '*':
            case '+':
            case '?':
                return false;  // unbalanced or a quantifier of nothing: not understood
            case '\\':
                return escape();
            default:
                return literal_byte(c, at_ + 1);
        }
    }

    /// An escape: a literal byte, or anything else ended by the right length.
    bool escape() {
        if (at_ + 1 >= p_.size()) {
            return false;
        }
        const char e = p_[at_ + 1];
        const std::size_t after = at_ + 2;
        if (!is_word_char(e)) {
            return literal_byte(e, after);  // \| \. \\ \" ...
        }
        switch (e) {
            case 'n':
                return literal_byte('\n', after);
            case 't':
                return literal_byte('\t', after);
            case 'r':
                return literal_byte('\r', after);
            case 'f':
                return literal_byte('\f', after);
            case 'e':
                return literal_byte('\x1b', after);
            case 'a':
                return literal_byte('\x07', after);
            case 'x': {
                if (after < p_.size() && p_[after] == '{') {
                    return false;  // \x{...}: code points are not read here
                }
                std::size_t k = after;
                unsigned value = 0;
                while (k < after + 2 && k < p_.size() && hex::digit_value(p_[k]) >= 0) {
                    value = value * 16 + static_cast<unsigned>(hex::digit_value(p_[k]));
                    ++k;
                }
                return literal_byte(static_cast<char>(value), k);
            }
            case '0': {
                std::size_t k = after;
                while (k < after + 2 && k < p_.size() && p_[k] >= '0' && p_[k] <= '7') {
                    ++k;
                }
                return skip_atom(k);
            }
            case 'd':
            case 'D':
            case 'w':
            case 'W':
            case 's':
            case 'S':
            case 'h':
            case 'H':
            case 'v':
            case 'V':
            case 'R':
            case 'X':
            case 'C':
                return skip_atom(after);
            case 'b':
            case 'B':
            case 'A':
            case 'z':
            case 'Z':
            case 'G':
            case 'K':
                at_ = after;  // zero-width: ends the run
                end_run();
                return true;
            default:
                if (is_digit(e)) {  // back reference or octal
                    std::size_t k = after;
                    while (k < p_.size() && is_digit(p_[k])) {
                        ++k;
                    }
                    return skip_atom(k);
                }
                return false;  // \p \g \k \Q \N \o \c ...: not read here
        }
    }

    /// A group: not a run of bytes, but what it requires may serve as the alternative's
    /// literal set when it must match at least once.
    bool group() {
        const std::size_t end = group_end(at_);
        if (end == std::string_view::npos) {
            return false;
        }
        const std::size_t body = consuming_group_body(p_, at_);
        const quantifier q = quantifier_at(p_, end);
        if (body != std::string_view::npos && body < end && !q.optional && depth_ < deepest_group) {
            auto inner = literal_finder(p_.substr(body, end - 1 - body), depth_ + 1).run();
            if (inner && inner->size() <= widest_literal_set) {
                end_run();
                consider(literal_set{std::move(*inner)});
            }
        }
        return skip_atom(end);
    }

    /// A literal byte ending at `next`; its quantifier decides whether it is required.
    bool literal_byte(char byte, std::size_t next) {
        const quantifier q = quantifier_at(p_, next);
        at_ = next + q.length;
        if (q.length == 0) {
            run_ += byte;
            return true;
        }
        if (!q.optional) {
            run_ += byte;  // repeated, so only this first copy is known to be adjacent
        }
        end_run();
        return true;
    }

    /// Something that is not a literal, ending before `next` (npos: malformed).
    bool skip_atom(std::size_t next) {
        if (next == std::string_view::npos || next > p_.size()) {
            return false;
        }
        end_run();
        at_ = next + quantifier_at(p_, next).length;
        return true;
    }

    void end_run() {
        if (!run_.empty()) {
            consider(literal_set{{run_}});
        }
        run_.clear();
    }

    void consider(literal_set candidate) {
        if (candidate.score() >= min_required_literal && candidate.better_than(best_)) {
            best_ = std::move(candidate);
        }
    }

    bool end_alternative() {
        end_run();
        if (best_.literals.empty()) {
            return false;
        }
        for (std::string& literal : best_.literals) {
            if (std::find(literals_.begin(), literals_.end(), literal) == literals_.end()) {
                literals_.push_back(std::move(literal));
            }
        }
        best_ = {};
        return true;
    }

    /// One past the `]` closing the class at `open`, or npos.
    std::size_t class_end(std::size_t open) const {
        std::size_t k = open + 1;
        if (k < p_.size() && p_[k] == '^') {
            ++k;
        }
        if (k < p_.size() && p_[k] == ']') {
            ++k;  // a leading ] is a member
        }
        while (k < p_.size()) {
            if (p_[k] == '\\') {
                k += 2;
            } else if (p_[k] == '[' && k + 1 < p_.size() && p_[k + 1] == ':') {
                const std::size_t close = p_.find(":]", k + 2);
                if (close == std::string_view::npos) {
                    return std::string_view::npos;
                }
                k = close + 2;
            } else if (p_[k] == ']') {
                return k + 1;
            } else {
                ++k;
            }
        }
        return std::string_view::npos;
    }

    /// One past the `)` closing the group at `open`, or npos.
    std::size_t group_end(std::size_t open) const {
        if (p_.substr(open, 3) == "(?#") {
            const std::size_t close = p_.find(')', open);
            return close == std::string_view::npos ? close : close + 1;
        }
        std::size_t depth = 0;
        std::size_t k = open;
        while (k < p_.size()) {
            const char c = p_[k];
            if (c == '\\') {
                k += 2;
                continue;
            }
            if (c == '[') {
                k = class_end(k);
                if (k == std::string_view::npos) {
                    return k;
                }
                continue;
            }
            if (c == '(') {
                ++depth;
            } else if (c == ')' && --depth == 0) {
                return k + 1;
            }
            ++k;
        }
        return std::string_view::npos;
    }

    std::string_view p_;
    int depth_ = 0;
    std::size_t at_ = 0;
    std::string run_;
    literal_set best_;  ///< of the current alternative
    std::vector<std::string> literals_;
};

}  // namespace

std::optional<required_literals> find_required_literals(std::string_view pattern,
                                                        const pcre_flags& flags) {
    const inline_options options = scan_inline_options(pattern);
    if (flags.extended || options.extended || pattern.find("\\Q") != std::string_view::npos) {
        return std::nullopt;
    }
    auto literals = literal_finder(pattern).run();
    if (!literals) {
        return std::nullopt;
    }
    return required_literals{std::move(*literals), flags.caseless || options.caseless};
}

}  // namespace ringscan::matcher::detail
