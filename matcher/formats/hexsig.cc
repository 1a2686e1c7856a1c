#include "matcher/formats/hexsig.h"

#include "base/hex.h"
#include "matcher/model/text.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

// Hyperscan rejects bounded repeats above this ("Pattern too large").
constexpr std::uint64_t max_hs_repeat = 32767;

struct fragment {
    std::vector<hex_token> tokens;
    std::string expression;
    std::uint64_t min = 0;
    std::optional<std::uint64_t> max = 0;
    bool literal = true;
    bool wide_gap = false;  // a gap beyond max_hs_repeat: `expression` is unusable
    std::string bytes;      // literal only
    std::string run;        // fixed bytes at the end of the fragment so far
    std::string longest;
};

using result = tl::expected<fragment, hex_problem>;

hex_token set_token(const std::array<bool, 256>& in_class) {
    hex_token t;
    t.what = hex_token::kind::byte_set;
    for (unsigned b = 0; b < 256; ++b) {
        if (in_class[b]) {
            t.bytes[b >> 6U] |= std::uint64_t{1} << (b & 63U);
        }
    }
    return t;
}

hex_token gap_token(std::uint64_t low, std::optional<std::uint64_t> high) {
    hex_token t;
    t.what = hex_token::kind::gap;
    t.low = static_cast<std::uint32_t>(low);
    t.high = static_cast<std::uint32_t>(high.value_or(low));
    t.unbounded = !high.has_value();
    return t;
}

hex_problem malformed(std::string reason) { return {true, std::move(reason)}; }
hex_problem unsupported(std::string reason) { return {false, std::move(reason)}; }

void append_byte(std::string& out, unsigned value) {
    hex::append_escaped_byte(out, static_cast<std::uint8_t>(value));
}

std::string byte_class(const std::array<bool, 256>& in_class) {
    std::string out = "[";
    for (unsigned b = 0; b < 256; ++b) {
        if (in_class[b]) {
            append_byte(out, b);
        }
    }
    out += ']';
    return out;
}

void add_fixed(fragment& f, std::string expression, std::uint64_t length, bool literal) {
    f.expression += expression;
    f.min += length;
    if (f.max) {
        *f.max += length;
    }
    if (!literal) {
        f.literal = false;
    }
}

void end_run(fragment& f) {
    if (f.run.size() > f.longest.size()) {
        f.longest = f.run;
    }
    f.run.clear();
}

std::optional<std::uint64_t> number(std::string_view digits) {
    if (digits.empty() || !all_digits(digits) || digits.size() > 9) {
        return std::nullopt;
    }
    return digits_value(digits);
}

std::string repeat_expression(std::uint64_t low, std::optional<std::uint64_t> high) {
    std::string out = ".{" + std::to_string(low);
    if (!high) {
        out += ",}";
    } else if (*high != low) {
        out += "," + std::to_string(*high) + "}";
    } else {
        out += "}";
    }
    return out;
}

class translator {
public:
    explicit translator(std::string_view text, bool in_alternative)
        : text_(text), in_alternative_(in_alternative) {}

    result run() {
        fragment f;
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (hex::digit_value(c) >= 0 || c == '?') {
                if (auto problem = byte_element(f)) {
                    return tl::unexpected(*problem);
                }
            } else if (c == '*') {
                ++pos_;
                end_run(f);
                add_fixed(f, ".*", 0, false);
                f.tokens.push_back(gap_token(0, std::nullopt));
                f.max.reset();
            } else if (c == '{' || c == '[') {
                if (auto problem = range_element(f, c == '{' ? '}' : ']')) {
                    return tl::unexpected(*problem);
                }
            } else if (c == '(' || c == '!') {
                if (in_alternative_) {
                    return tl::unexpected(malformed("nested alternatives"));
                }
                if (auto problem = group_element(f)) {
                    return tl::unexpected(*problem);
                }
            } else {
                return tl::unexpected(malformed(std::string("unexpected '") + c + "'"));
            }
        }
        end_run(f);
        return f;
    }

private:
    std::optional<hex_problem> byte_element(fragment& f) {
        if (pos_ + 1 >= text_.size()) {
            return malformed("odd number of hex digits");
        }
        const char high = text_[pos_];
        const char low = text_[pos_ + 1];
        pos_ += 2;
        const int hv = hex::digit_value(high);
        const int lv = hex::digit_value(low);
        if ((high != '?' && hv < 0) || (low != '?' && lv < 0)) {
            return malformed("invalid hex digit");
        }
        if (hv >= 0 && lv >= 0) {
            // The common case (most of a signature body): no temporaries.
            const auto value = static_cast<unsigned>(hv * 16 + lv);
            append_byte(f.expression, value);
            ++f.min;
            if (f.max) {
                ++*f.max;
            }
            hex_token& token = f.tokens.emplace_back();
            token.bytes[value >> 6U] |= std::uint64_t{1} << (value & 63U);
            f.bytes += static_cast<char>(value);
            f.run += static_cast<char>(value);
            return std::nullopt;
        }
        end_run(f);
        if (hv < 0 && lv < 0) {
            add_fixed(f, ".", 1, false);
            f.tokens.push_back(gap_token(1, 1));
            return std::nullopt;
        }
        std::array<bool, 256> in_class{};
        for (unsigned b = 0; b < 256; ++b) {
            in_class[b] = hv >= 0 ? (b >> 4U) == static_cast<unsigned>(hv)
                                  : (b & 0xFU) == static_cast<unsigned>(lv);
        }
        add_fixed(f, byte_class(in_class), 1, false);
        f.tokens.push_back(set_token(in_class));
        return std::nullopt;
    }

    std::optional<hex_problem> range_element(fragment& f, char close) {
        const auto end = text_.find(close, pos_);
        if (end == std::string_view::npos) {
            return malformed(std::string("missing '") + close + "'");
        }
        const std::string_view inside = text_.substr(pos_ + 1, end - pos_ - 1);
        pos_ = end + 1;
        std::uint64_t low = 0;
        std::optional<std::uint64_t> high;
        const auto dash = inside.find('-');
        if (dash == std::string_view::npos) {
            const auto n = number(inside);
            if (!n || close == ']') {
                return malformed("invalid range '" + std::string(inside) + "'");
            }
            low = *n;
            high = *n;
        } else {
            const std::string_view a = inside.substr(0, dash);
            const std::string_view b = inside.substr(dash + 1);
            if (!a.empty()) {
                const auto n = number(a);
                if (!n) {
                    return malformed("invalid range '" + std::string(inside) + "'");
                }
                low = *n;
            }
            if (!b.empty()) {
                const auto n = number(b);
                if (!n) {
                    return malformed("invalid range '" + std::string(inside) + "'");
                }
                high = *n;
            }
            if (a.empty() && b.empty()) {
                return malformed("empty range");
            }
            if (high && *high < low) {
                return malformed("range '" + std::string(inside) + "' is reversed");
            }
        }
        const bool wide = low > max_hs_repeat || (high && *high > max_hs_repeat);
        if (in_alternative_ && close == ']') {
            return malformed("[n-m] anchor inside an alternative");
        }
        if (low > std::numeric_limits<std::uint32_t>::max() ||
            (high && *high > std::numeric_limits<std::uint32_t>::max())) {
            return unsupported("bounded gap above 4 GiB");
        }
        end_run(f);
        if (wide) {
            // Beyond a Hyperscan repeat: only the tokens describe it (the whole-object
            // matcher splits the pattern there, as ClamAV splits it into parts).
            f.wide_gap = true;
        } else {
            f.expression += repeat_expression(low, high);
        }
        f.tokens.push_back(gap_token(low, high));
        f.literal = false;
        f.min += low;
        if (!high) {
            f.max.reset();
        } else if (f.max) {
            *f.max += *high;
        }
        return std::nullopt;
    }

    std::optional<hex_problem> group_element(fragment& f) {
        const bool negated = text_[pos_] == '!';
        if (negated) {
            ++pos_;
            if (pos_ >= text_.size() || text_[pos_] != '(') {
                return malformed("'!' must be followed by '('");
            }
        }
        const auto end = text_.find(')', pos_);
        if (end == std::string_view::npos) {
            return malformed("missing ')'");
        }
        const std::string_view inside = text_.substr(pos_ + 1, end - pos_ - 1);
        const bool at_start = pos_ == 0 || (negated && pos_ == 1);
        pos_ = end + 1;
        const bool at_end = pos_ == text_.size();
        end_run(f);
        f.literal = false;
        if (inside == "B" || inside == "L" || inside == "W") {
            if (negated) {
                return unsupported("negated boundary");
            }
            boundary(f, inside[0], at_start, at_end);
            return std::nullopt;
        }
        std::vector<std::string_view> alternatives;
        std::size_t start = 0;
        while (true) {
            const auto bar = inside.find('|', start);
            alternatives.push_back(inside.substr(
                start, bar == std::string_view::npos ? std::string_view::npos : bar - start));
            if (bar == std::string_view::npos) {
                break;
            }
            start = bar + 1;
        }
        if (alternatives.size() < 2 && !negated) {
            return malformed("alternative with a single choice");
        }
        std::vector<fragment> parts;
        for (const auto alternative : alternatives) {
            if (alternative.empty()) {
                return malformed("empty alternative");
            }
            auto part = translator(alternative, true).run();
            if (!part) {
                return part.error();
            }
            parts.push_back(std::move(*part));
        }
        if (negated) {
            // ClamAV negates only plain byte strings of one length (clamscan 1.4.6 refuses
            // the database otherwise, with this message).
            for (const auto& part : parts) {
                if (!part.literal || part.bytes.size() != parts.front().bytes.size()) {
                    return malformed(
                        "ac_special_altstr: Can't apply negation operation to generic alternate "
                        "strings");
                }
            }
            if (parts.front().bytes.size() > 1) {
                std::vector<std::string_view> excluded_strings;
                for (const auto& part : parts) {
                    excluded_strings.push_back(part.bytes);
                }
                negated_strings(f, excluded_strings);
                return std::nullopt;
            }
            std::array<bool, 256> excluded{};
            for (const auto& part : parts) {
                excluded[static_cast<unsigned char>(part.bytes[0])] = true;
            }
            std::array<bool, 256> in_class{};
            for (std::size_t b = 0; b < in_class.size(); ++b) {
                in_class[b] = !excluded[b];
            }
            add_fixed(f, byte_class(in_class), 1, false);
            f.tokens.push_back(set_token(in_class));
            return std::nullopt;
        }
        hex_token choice;
        choice.what = hex_token::kind::alternatives;
        for (auto& part : parts) {
            choice.choices.push_back(std::move(part.tokens));
        }
        f.tokens.push_back(std::move(choice));
        std::string e = "(?:";
        std::uint64_t low = std::numeric_limits<std::uint64_t>::max();
        std::uint64_t high = 0;
        bool bounded = true;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (i != 0) {
                e += '|';
            }
            e += parts[i].expression;
            low = std::min(low, parts[i].min);
            if (parts[i].max.has_value()) {
                high = std::max(high, parts[i].max.value_or(0));
            } else {
                bounded = false;
            }
        }
        e += ')';
        f.expression += e;
        f.min += low;
        if (!bounded) {
            f.max.reset();
        } else if (f.max) {
            *f.max += high;
        }
        return std::nullopt;
    }

    /// `!(s1|s2|...)` with strings of one length L > 1: any L bytes but those. Written as
    /// ordinary alternatives, from a trie of the strings: a first byte no string starts
    /// with, then any L-1 bytes; or a first byte some do, then (recursively) anything but
    /// their rests. `!(00000000)` becomes [^00]... | 00[^00].. | 0000[^00]. | 000000[^00].
    static void negated_strings(fragment& f, const std::vector<std::string_view>& excluded) {
        const std::size_t length = excluded.front().size();
        hex_token choice;
        choice.what = hex_token::kind::alternatives;
        choice.choices = complement_of(excluded, length);
        std::string e = "(?:";
        for (std::size_t i = 0; i < choice.choices.size(); ++i) {
            e += (i == 0 ? "" : "|") + expression_of(choice.choices[i]);
        }
        e += ')';
        f.tokens.push_back(std::move(choice));
        f.expression += e;
        f.min += length;
        if (f.max) {
            *f.max += length;
        }
    }

    /// Token sequences matching exactly the `length`-byte strings not in `excluded` (all of
    /// that length; empty: nothing is excluded).
    static std::vector<std::vector<hex_token>> complement_of(
        const std::vector<std::string_view>& excluded, std::size_t length) {
        std::vector<std::vector<hex_token>> out;
        if (length == 0) {
            if (excluded.empty()) {
                out.emplace_back();  // the empty string is not excluded
            }
            return out;
        }
        const auto any_bytes = [](std::size_t count) {
            std::vector<hex_token> tail;
            if (count > 0) {
                hex_token gap;
                gap.what = hex_token::kind::gap;
                gap.low = static_cast<std::uint32_t>(count);
                gap.high = gap.low;
                tail.push_back(gap);
            }
            return tail;
        };
        std::array<bool, 256> starts{};
        for (const std::string_view s : excluded) {
            starts[static_cast<unsigned char>(s.front())] = true;
        }
        std::array<bool, 256> others{};
        bool any_other = false;
        for (std::size_t b = 0; b < others.size(); ++b) {
            others[b] = !starts[b];
            any_other = any_other || others[b];
        }
        if (any_other) {
            std::vector<hex_token> sequence{set_token(others)};
            for (hex_token& t : any_bytes(length - 1)) {
                sequence.push_back(std::move(t));
            }
            out.push_back(std::move(sequence));
        }
        for (std::size_t b = 0; b < starts.size(); ++b) {
            if (!starts[b]) {
                continue;
            }
            std::vector<std::string_view> rests;
            for (const std::string_view s : excluded) {
                if (static_cast<unsigned char>(s.front()) == b) {
                    rests.push_back(s.substr(1));
                }
            }
            std::array<bool, 256> only{};
            only[b] = true;
            for (auto& rest : complement_of(rests, length - 1)) {
                std::vector<hex_token> sequence{set_token(only)};
                for (hex_token& t : rest) {
                    sequence.push_back(std::move(t));
                }
                out.push_back(std::move(sequence));
            }
        }
        return out;
    }

    static void boundary(fragment& f, char kind, bool at_start, bool at_end) {
        // matcher-ac.c's boundary table: bytes that delimit words around a (B) marker.
        std::string chars;
        std::array<bool, 256> in_class{};
        switch (kind) {
            case 'B':
                chars = "[\\x0a\\x0d\\x20\\x22\\x27\\x2d\\x2e\\x2f\\x3c\\x3d\\x3e\\x40\\x5f]";
                for (const unsigned b : {0x0aU, 0x0dU, 0x20U, 0x22U, 0x27U, 0x2dU, 0x2eU, 0x2fU,
                                         0x3cU, 0x3dU, 0x3eU, 0x40U, 0x5fU}) {
                    in_class[b] = true;
                }
                break;
            case 'L':
                chars = "[\\x0a\\x0d]";
                in_class[0x0a] = true;
                in_class[0x0d] = true;
                break;
            default:
                chars = "[^0-9A-Za-z]";
                for (unsigned b = 0; b < 256; ++b) {
                    in_class[b] = !((b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') ||
                                    (b >= 'a' && b <= 'z'));
                }
                break;
        }
        hex_token token = set_token(in_class);
        if (at_start) {
            token.what = hex_token::kind::start_boundary;
        } else if (at_end) {
            token.what = hex_token::kind::end_boundary;
        }
        f.tokens.push_back(token);
        std::string e;
        if (at_start) {
            e = "(?:^|" + chars + ")";
        } else if (at_end) {
            e = "(?:" + chars + "|\\z)";
        } else {
            e = chars;
        }
        f.expression += e;
        if (at_start || at_end) {
            if (f.max) {
                *f.max += 1;
            }
        } else {
            f.min += 1;
            if (f.max) {
                *f.max += 1;
            }
        }
    }

    std::string_view text_;
    bool in_alternative_ = false;
    std::size_t pos_ = 0;
};

// Whether `{...}` at `open` is one ClamAV expands to `??`s before anything else: `{n}`
// with 0 < n < 128 (cli_add_content_match_pattern's sscanf "%c%zu%c").
bool expanded_gap(std::string_view hex, std::size_t open) {
    const auto close = hex.find('}', open);
    if (close == std::string_view::npos || close == open + 1) {
        return false;
    }
    std::uint64_t n = 0;
    for (std::size_t k = open + 1; k < close; ++k) {
        if (hex[k] < '0' || hex[k] > '9' || n >= 128) {
            return false;
        }
        n = n * 10 + static_cast<std::uint64_t>(hex[k] - '0');
    }
    return n > 0 && n < 128;
}

// Where ClamAV's pattern parts begin being cut: the first `{` it does not expand into `??`s.
std::size_t first_cut_gap(std::string_view hex) {
    std::size_t at = hex.find('{');
    while (at != std::string_view::npos && expanded_gap(hex, at)) {
        at = hex.find('{', at + 1);
    }
    return at;
}

// ClamAV refuses gaps inside alternatives the way it splits patterns into parts: it expands
// the first `{n}` (n < 128) again and again; once the first `{` left is any other gap, the
// pattern is cut at every `{..}` and `*` and none may sit inside `(..)`; with no such `{`
// left, only the `*`s cut it.
std::optional<hex_problem> gap_inside_alternative(std::string_view hex) {
    const std::size_t first_cut = first_cut_gap(hex);
    int nest = 0;
    for (std::size_t k = 0; k < hex.size(); ++k) {
        const char c = hex[k];
        if (c == '(') {
            ++nest;
        } else if (c == ')') {
            --nest;
        } else if (nest != 0 && c == '{' && first_cut != std::string_view::npos && k >= first_cut) {
            return malformed("alternative match contains unsupported ranged wildcard");
        } else if (nest != 0 && c == '*') {
            return malformed("alternative match cannot contain unbounded wildcards");
        }
    }
    return std::nullopt;
}

// ClamAV's Aho-Corasick matcher (cli_ac_addsig) takes each part of a pattern -- a piece
// between `*` or cut `{..}` gaps -- as elements: a fixed byte, or a "wildcard" (`??`, a
// nibble, an alternative, a boundary inside the part); a boundary at either end of a part
// is a flag, and `[x-y]` with the byte it anchors is kept apart. It refuses a part of fewer
// than 2 elements ("too short"), and, when a wildcard or only zero bytes open the part,
// one without a run of 2 fixed bytes to enter the trie by ("Can't find a static
// subpattern").
struct part_element {
    enum class kind : std::uint8_t { fixed, variable, boundary };
    kind what = kind::fixed;
    unsigned value = 0;  ///< the byte, for fixed elements
};

std::optional<hex_problem> refused_part(std::vector<part_element> part) {
    using kind = part_element::kind;
    while (!part.empty() && part.front().what == kind::boundary) {
        part.erase(part.begin());
    }
    while (!part.empty() && part.back().what == kind::boundary) {
        part.pop_back();
    }
    constexpr std::size_t min_depth = 2;
    constexpr std::size_t max_depth = 3;
    if (part.size() < min_depth) {
        return malformed("subpattern shorter than 2 bytes (ClamAV's matcher needs 2)");
    }
    const auto wild = [&](std::size_t k) { return part[k].what != kind::fixed; };
    // A raw element value as libclamav compares it: wildcards carry flags, never 0.
    const auto nonzero = [&](std::size_t k) { return wild(k) || part[k].value != 0; };
    bool wild_prefix = false;
    bool zero_prefix = true;
    for (std::size_t k = 0; k < max_depth && k < part.size(); ++k) {
        if (wild(k)) {
            wild_prefix = true;
            break;
        }
        zero_prefix = zero_prefix && !nonzero(k);
    }
    if (!wild_prefix && !zero_prefix) {
        return std::nullopt;
    }
    // cli_ac_addsig's choice of where the trie entry starts.
    std::size_t best = 0;
    std::size_t at = 0;
    std::size_t nonzero_best = 0;
    std::size_t nonzero_at = 0;
    const std::size_t end = part.size() - min_depth + 1;
    for (std::size_t i = 0; i < end; ++i) {
        for (std::size_t j = i; j < i + max_depth && j < part.size(); ++j) {
            if (wild(j)) {
                break;
            }
            if (j - i + 1 >= best) {
                best = j - i + 1;
                at = i;
            }
            if (nonzero(at) || nonzero(at + 1)) {
                if (best >= max_depth) {
                    break;
                }
                if (best >= min_depth && best > nonzero_best) {
                    nonzero_best = best;
                    nonzero_at = at;
                }
            }
        }
        if (best >= max_depth && (nonzero(at) || nonzero(at + 1))) {
            break;
        }
    }
    if (!nonzero(at) && !nonzero(at + 1) && nonzero_best != 0) {
        best = nonzero_best;
        at = nonzero_at;
    }
    if (best < min_depth) {
        return malformed("no 2 consecutive fixed bytes in a subpattern (ClamAV needs them)");
    }
    // Not reproduced: ClamAV also refuses some parts with a boundary before `at` (41(B)4243,
    // ??(B)4243) and accepts others (??!(41|42)(B)4243); such lines load here.
    return std::nullopt;
}

std::optional<hex_problem> unanchored_part(std::string_view hex) {
    using kind = part_element::kind;
    std::vector<part_element> part;
    const std::size_t first_cut = first_cut_gap(hex);
    const auto cuts_at = [&](std::size_t at) {
        return at == hex.size() || hex[at] == '*' || (hex[at] == '{' && at >= first_cut);
    };
    std::size_t part_start = 0;
    std::size_t k = 0;
    while (k < hex.size()) {
        const char c = hex[k];
        if (c == '*' || (c == '{' && k >= first_cut)) {
            if (auto problem = refused_part(std::move(part))) {
                return problem;
            }
            part.clear();
            k = c == '*' ? k + 1 : hex.find('}', k) + 1;
            part_start = k;
        } else if (c == '{') {  // a small `{n}` ClamAV expands to n `??`
            const std::size_t close = hex.find('}', k);
            const auto n = digits_value(hex.substr(k + 1, close - k - 1));
            part.insert(part.end(), static_cast<std::size_t>(n), part_element{kind::variable, 0});
            k = close + 1;
        } else if (c == '[') {
            // `aa[x-y]HEXSIG` anchors a part's first byte, `HEXSIG[x-y]aa` its last.
            const std::size_t close = hex.find(']', k);
            const bool before =
                k == part_start + 2 && part.size() == 1 && part.front().what == kind::fixed;
            const bool after = close + 3 <= hex.size() && hex::digit_value(hex[close + 1]) >= 0 &&
                               hex::digit_value(hex[close + 2]) >= 0 && cuts_at(close + 3);
            if (!before && !after) {
                return malformed("[n-m] must anchor the first or the last byte of a subpattern");
            }
            if (before) {
                part.clear();
                k = close + 1;
            } else {
                k = close + 3;
            }
        } else if (c == '(' && k + 2 < hex.size() && hex[k + 2] == ')' &&
                   (hex[k + 1] == 'B' || hex[k + 1] == 'L' || hex[k + 1] == 'W')) {
            part.push_back(part_element{kind::boundary, 0});
            k += 3;
        } else if (c == '(' || c == '!') {
            part.push_back(part_element{kind::variable, 0});
            k = hex.find(')', k) + 1;
        } else {
            const int high = hex::digit_value(hex[k]);
            const int low = hex::digit_value(hex[k + 1]);
            if (high >= 0 && low >= 0) {
                part.push_back(part_element{kind::fixed, static_cast<unsigned>(high * 16 + low)});
            } else {
                part.push_back(part_element{kind::variable, 0});
            }
            k += 2;
        }
    }
    return refused_part(std::move(part));
}

}  // namespace

tl::expected<hex_translation, hex_problem> translate_hex(std::string_view hex) {
    if (hex.empty()) {
        return tl::unexpected(malformed("empty hex signature"));
    }
    if (auto problem = gap_inside_alternative(hex)) {
        return tl::unexpected(*problem);
    }
    auto f = translator(hex, false).run();
    if (!f) {
        return tl::unexpected(f.error());
    }
    if (auto problem = unanchored_part(hex)) {  // on well-formed text only
        return tl::unexpected(*problem);
    }
    constexpr auto limit = std::numeric_limits<std::uint32_t>::max();
    if (f->min > limit || (f->max && *f->max > limit)) {
        return tl::unexpected(unsupported("pattern longer than 4 GiB"));
    }
    hex_translation out;
    out.wide_gap = f->wide_gap;
    if (!out.wide_gap) {
        out.expression = std::move(f->expression);
    }
    out.literal = f->literal;
    if (out.literal) {
        out.bytes = std::move(f->bytes);
    }
    out.min_length = static_cast<std::uint32_t>(f->min);
    if (f->max) {
        out.max_length = static_cast<std::uint32_t>(*f->max);
    }
    out.longest_literal = std::move(f->longest);
    out.tokens = std::move(f->tokens);
    return out;
}

int hex_token::single_byte() const {
    if (what != kind::byte_set) {
        return -1;
    }
    int found = -1;
    for (unsigned w = 0; w < bytes.size(); ++w) {
        std::uint64_t word = bytes[w];
        if (word == 0) {
            continue;
        }
        if ((word & (word - 1)) != 0 || found >= 0) {
            return -1;
        }
        found = static_cast<int>(w * 64U + static_cast<unsigned>(__builtin_ctzll(word)));
    }
    return found;
}

}  // namespace ringscan::matcher::detail

namespace ringscan::matcher::detail {
namespace {

std::string class_of(const hex_token& t) {
    unsigned allowed = 0;
    for (unsigned b = 0; b < 256; ++b) {
        allowed += t.allows(static_cast<unsigned char>(b)) ? 1U : 0U;
    }
    if (allowed == 256) {
        return ".";
    }
    if (allowed == 1) {
        std::string out;
        append_byte(out, static_cast<unsigned>(t.single_byte()));
        return out;
    }
    std::array<bool, 256> in_class{};
    for (unsigned b = 0; b < 256; ++b) {
        in_class[b] = t.allows(static_cast<unsigned char>(b));
    }
    return byte_class(in_class);
}

}  // namespace

std::string expression_of(const std::vector<hex_token>& tokens) {
    std::string out;
    for (std::size_t k = 0; k < tokens.size(); ++k) {
        const hex_token& t = tokens[k];
        switch (t.what) {
            case hex_token::kind::byte_set: {
                // A run of one class as a repeat: Hyperscan refuses patterns of hundreds of
                // classes written out (`!(00)` x 502 in main.ldb's Ppt.Exploit signatures).
                std::size_t run = 1;
                while (k + run < tokens.size() &&
                       tokens[k + run].what == hex_token::kind::byte_set &&
                       tokens[k + run].bytes == t.bytes) {
                    ++run;
                }
                out += class_of(t);
                if (run > 2) {
                    out += "{" + std::to_string(run) + "}";
                    k += run - 1;
                }
                break;
            }
            case hex_token::kind::gap:
                out += repeat_expression(
                    t.low, t.unbounded ? std::nullopt : std::optional<std::uint64_t>(t.high));
                break;
            case hex_token::kind::alternatives: {
                out += "(?:";
                for (std::size_t i = 0; i < t.choices.size(); ++i) {
                    out += (i == 0 ? "" : "|") + expression_of(t.choices[i]);
                }
                out += ")";
                break;
            }
            case hex_token::kind::start_boundary:
                out += "(?:^|" + class_of(t) + ")";
                break;
            case hex_token::kind::end_boundary:
                out += "(?:" + class_of(t) + "|$)";
                break;
        }
    }
    return out;
}

std::pair<std::uint32_t, std::optional<std::uint32_t>> width_of(
    const std::vector<hex_token>& tokens) {
    // (low, high) with high = unbounded_width when there is no maximum.
    constexpr std::uint64_t unbounded_width = std::numeric_limits<std::uint64_t>::max();
    struct width {
        std::uint64_t low = 0;
        std::uint64_t high = 0;
    };
    const auto add = [](std::uint64_t a, std::uint64_t b) {
        return a == unbounded_width || b == unbounded_width ? unbounded_width : a + b;
    };
    width total;
    for (const hex_token& t : tokens) {
        switch (t.what) {
            case hex_token::kind::byte_set:
                total.low += 1;
                total.high = add(total.high, 1);
                break;
            case hex_token::kind::start_boundary:
            case hex_token::kind::end_boundary:
                total.high = add(total.high, 1);  // zero bytes at the data edge
                break;
            case hex_token::kind::gap:
                total.low += t.low;
                total.high = add(total.high, t.unbounded ? unbounded_width : t.high);
                break;
            case hex_token::kind::alternatives: {
                width choice{t.choices.empty() ? 0 : unbounded_width, 0};
                for (const auto& alternative : t.choices) {
                    const auto [l, h] = width_of(alternative);
                    choice.low = std::min<std::uint64_t>(choice.low, l);
                    choice.high = std::max<std::uint64_t>(choice.high, h ? *h : unbounded_width);
                }
                total.low += choice.low;
                total.high = add(total.high, choice.high);
                break;
            }
        }
    }
    constexpr std::uint64_t cap = std::numeric_limits<std::uint32_t>::max();
    const auto low = static_cast<std::uint32_t>(std::min(total.low, cap));
    if (total.high > cap) {
        return {low, std::nullopt};
    }
    return {low, static_cast<std::uint32_t>(total.high)};
}

}  // namespace ringscan::matcher::detail
