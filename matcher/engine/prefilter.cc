#include "matcher/engine/prefilter.h"

#include <algorithm>
#include <array>
#include <bit>
#include <limits>
#include <utility>

namespace ringscan::matcher::detail {
namespace {

// -4 * log2(p(byte)), p = 1:1 mix of the byte frequencies of 48 MiB of /usr/lib + /usr/bin
// and 24 MiB of /usr/share/doc, /usr/share/perl, /usr/lib/python3 text (measured on the
// project machine, Debian 12). 0x00: 2.75 bits, 'e': 4.75 bits, 0x9f: 12.25 bits.
constexpr std::array<std::uint8_t, 256> byte_cost = {
    11, 28, 32, 34, 33, 35, 37, 37, 30, 37, 25, 39, 39, 37, 32, 25,  //
    32, 40, 37, 45, 41, 41, 44, 46, 35, 46, 47, 46, 43, 47, 46, 34,  //
    16, 43, 30, 39, 29, 39, 44, 40, 33, 35, 39, 42, 33, 31, 28, 25,  //
    31, 31, 34, 38, 38, 38, 41, 42, 36, 35, 35, 38, 28, 32, 29, 47,  //
    35, 27, 34, 32, 29, 30, 35, 36, 23, 29, 42, 42, 28, 35, 33, 34,  //
    33, 45, 33, 31, 31, 35, 40, 39, 37, 40, 43, 40, 39, 38, 44, 28,  //
    38, 21, 28, 24, 25, 19, 25, 29, 26, 21, 38, 35, 23, 27, 22, 21,  //
    24, 41, 22, 21, 20, 26, 32, 33, 32, 31, 42, 42, 40, 41, 44, 43,  //
    37, 43, 46, 32, 33, 32, 42, 44, 41, 27, 48, 29, 43, 32, 45, 45,  //
    39, 48, 48, 47, 44, 47, 49, 49, 44, 49, 49, 49, 47, 49, 50, 49,  //
    42, 48, 49, 46, 47, 49, 50, 50, 44, 49, 48, 49, 47, 49, 50, 47,  //
    42, 47, 47, 46, 44, 46, 40, 45, 41, 45, 43, 46, 45, 46, 42, 44,  //
    33, 38, 41, 38, 39, 40, 41, 38, 41, 42, 45, 47, 46, 47, 46, 47,  //
    38, 43, 41, 44, 46, 46, 45, 47, 41, 44, 45, 44, 47, 47, 45, 40,  //
    39, 45, 42, 46, 45, 46, 44, 44, 31, 35, 43, 40, 42, 43, 43, 40,  //
    40, 45, 40, 40, 45, 43, 40, 41, 39, 42, 40, 41, 38, 38, 35, 23,  //
};

// Words that are everywhere in mail, web pages and scripts: inside a factor they are
// worth two bits as a whole, so the factor is taken elsewhere when the pattern allows.
constexpr std::array<std::string_view, 30> common_words = {
    "http://", "https://", "http",     "www.",    ".com",   ".php",    ".html",  ".htm",
    "function", "return",  "script",   "document", "window", "eval(",  "this.",  "var ",
    "<a href", "href=",    "<div",     "<html",   "<body",  "\r\n",    "    ",  "the ",
    "and ",     "text/",   "Content-", "charset", "src=",   "class=",
};

constexpr unsigned repeated_byte_cost = 2;  // half a bit
constexpr unsigned common_word_byte_cost = 1;  // a quarter bit

std::optional<std::uint32_t> max_width(std::span<const hex_token> tokens) {
    std::uint64_t total = 0;
    for (const hex_token& t : tokens) {
        switch (t.what) {
            case hex_token::kind::byte_set:
            case hex_token::kind::start_boundary:
            case hex_token::kind::end_boundary:
                total += 1;
                break;
            case hex_token::kind::gap:
                if (t.unbounded) {
                    return std::nullopt;
                }
                total += t.high;
                break;
            case hex_token::kind::alternatives: {
                std::uint32_t widest = 0;
                for (const auto& choice : t.choices) {
                    const auto w = max_width(choice);
                    if (!w) {
                        return std::nullopt;
                    }
                    widest = std::max(widest, *w);
                }
                total += widest;
                break;
            }
        }
        if (total > std::numeric_limits<std::uint32_t>::max()) {
            return std::nullopt;
        }
    }
    return static_cast<std::uint32_t>(total);
}

// Sets of stream positions as sorted, disjoint, closed intervals.
using interval = std::pair<std::uint64_t, std::uint64_t>;
using position_set = std::vector<interval>;

void add_position(position_set& set, std::uint64_t low, std::uint64_t high) {
    if (!set.empty() && low <= set.back().second + 1 && low >= set.back().first) {
        set.back().second = std::max(set.back().second, high);
        return;
    }
    set.emplace_back(low, high);
}

void normalize(position_set& set) {
    std::sort(set.begin(), set.end());
    position_set out;
    out.reserve(set.size());
    for (const auto& [low, high] : set) {
        if (!out.empty() && low <= out.back().second + 1) {
            out.back().second = std::max(out.back().second, high);
        } else {
            out.emplace_back(low, high);
        }
    }
    set = std::move(out);
}

// Applies `tokens` forward: from each position in `set` to where the tokens can end.
position_set forward(std::span<const hex_token> tokens, position_set set,
                     const byte_window& window) {
    for (const hex_token& t : tokens) {
        if (set.empty()) {
            return set;
        }
        position_set next;
        switch (t.what) {
            case hex_token::kind::byte_set:
            case hex_token::kind::start_boundary:  // never after the first token
            case hex_token::kind::end_boundary:
                for (const auto& [low, high] : set) {
                    for (std::uint64_t p = low; p <= high && p < window.end; ++p) {
                        const int b = window.at(p);
                        if (b >= 0 && t.allows(static_cast<unsigned char>(b))) {
                            add_position(next, p + 1, p + 1);
                        }
                    }
                    if (t.what == hex_token::kind::end_boundary && window.stream_ended &&
                        low <= window.end && window.end <= high) {
                        next.emplace_back(window.end, window.end);
                    }
                }
                break;
            case hex_token::kind::gap:
                for (const auto& [low, high] : set) {
                    const std::uint64_t a = low + t.low;
                    const std::uint64_t b = t.unbounded ? window.end : high + t.high;
                    if (a <= window.end) {
                        next.emplace_back(a, std::min(b, window.end));
                    }
                }
                break;
            case hex_token::kind::alternatives:
                for (const auto& choice : t.choices) {
                    const position_set reached = forward(choice, set, window);
                    next.insert(next.end(), reached.begin(), reached.end());
                }
                break;
        }
        normalize(next);
        set = std::move(next);
    }
    return set;
}

// Applies `tokens` backward: from each position in `set` (where the tokens end) to where
// they can start.
position_set backward(std::span<const hex_token> tokens, position_set set,
                      const byte_window& window, std::uint64_t floor) {
    for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
        const hex_token& t = *it;
        if (set.empty()) {
            return set;
        }
        position_set next;
        switch (t.what) {
            case hex_token::kind::byte_set:
            case hex_token::kind::end_boundary:  // never before the last token
            case hex_token::kind::start_boundary:
                for (const auto& [low, high] : set) {
                    for (std::uint64_t p = std::max(low, floor + 1); p <= high; ++p) {
                        const int b = window.at(p - 1);
                        if (b >= 0 && t.allows(static_cast<unsigned char>(b))) {
                            add_position(next, p - 1, p - 1);
                        }
                    }
                    if (t.what == hex_token::kind::start_boundary && low == 0) {
                        next.emplace_back(0, 0);
                    }
                }
                break;
            case hex_token::kind::gap:
                for (const auto& [low, high] : set) {
                    if (high < floor + t.low) {
                        continue;
                    }
                    const std::uint64_t b = high - t.low;
                    const std::uint64_t a =
                        t.unbounded || low < floor + t.high ? floor : low - t.high;
                    next.emplace_back(a, b);
                }
                break;
            case hex_token::kind::alternatives:
                for (const auto& choice : t.choices) {
                    const position_set reached = backward(choice, set, window, floor);
                    next.insert(next.end(), reached.begin(), reached.end());
                }
                break;
        }
        normalize(next);
        set = std::move(next);
    }
    return set;
}

}  // namespace

// Per-byte surprise of `bytes`, quarter bits: a repeated byte half a bit, each byte of a
// common word a quarter bit -- so that no part of such a word looks rare either.
std::vector<unsigned> byte_costs(std::string_view bytes) {
    std::vector<unsigned> costs(bytes.size());
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        costs[i] = i > 0 && bytes[i - 1] == bytes[i] ? repeated_byte_cost : byte_cost[b];
    }
    for (const std::string_view word : common_words) {
        for (std::size_t at = bytes.find(word); at != std::string_view::npos;
             at = bytes.find(word, at + 1)) {
            for (std::size_t i = at; i < at + word.size(); ++i) {
                costs[i] = std::min(costs[i], common_word_byte_cost);
            }
        }
    }
    return costs;
}

unsigned rarity(std::string_view bytes) {
    unsigned score = 0;
    for (const unsigned cost : byte_costs(bytes)) {
        score += cost;
    }
    return score;
}

namespace {

bool is_letter(int b) { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z'); }

/// The lower-case letter a byte set allows in exactly both cases (a `::i` subsignature's
/// letter), else -1.
int case_pair(const hex_token& t) {
    // Both cases of an ASCII letter sit in the second 64-byte word, 32 apart; anything
    // else makes it no pair (checked without counting bits: this runs for every token).
    if (t.what != hex_token::kind::byte_set || t.bytes[0] != 0 || t.bytes[2] != 0 ||
        t.bytes[3] != 0) {
        return -1;
    }
    const std::uint64_t word = t.bytes[1];
    const std::uint64_t upper_bit = word & (~word + 1);
    const std::uint64_t rest = word ^ upper_bit;
    if (upper_bit == 0 || rest == 0 || (rest & (rest - 1)) != 0) {
        return -1;
    }
    const int upper = 64 + std::countr_zero(upper_bit);
    const int lower = 64 + std::countr_zero(rest);
    return upper >= 'A' && upper <= 'Z' && lower == upper + 32 ? lower : -1;
}

/// The byte a token contributes to a factor, or -1 when it cannot be part of one. A
/// caseless factor (Hyperscan's HS_FLAG_CASELESS literal) takes case pairs and non-letters;
/// a letter of fixed case would be matched too loosely there, so it ends the run.
int factor_byte(const hex_token& t, bool caseless) {
    const int b = t.single_byte();
    if (!caseless) {
        return b;
    }
    if (b >= 0) {
        return is_letter(b) ? -1 : b;
    }
    return case_pair(t);
}

}  // namespace

namespace {

/// Bytes of a context with their masks: a position matches when (byte & mask) == value.
struct masked_bytes {
    std::string values;
    std::string masks;
};

// Fixed gaps up to this width are spelled out as don't-care bytes.
constexpr std::uint32_t widest_masked_gap = 256;

/// The mask and value with {b : (b & mask) == value} equal to the token's byte set, if
/// there are any: the bits that vary across the set are the don't-care ones, and the set
/// must hold every combination of them.
std::optional<std::pair<unsigned char, unsigned char>> mask_of(const hex_token& t) {
    int first = -1;
    unsigned varying = 0;
    unsigned members = 0;
    for (unsigned word = 0; word < t.bytes.size(); ++word) {
        for (std::uint64_t bits = t.bytes[word]; bits != 0; bits &= bits - 1) {
            const unsigned b = word * 64 + static_cast<unsigned>(std::countr_zero(bits));
            if (first < 0) {
                first = static_cast<int>(b);
            }
            varying |= b ^ static_cast<unsigned>(first);
            ++members;
        }
    }
    if (first < 0 || members != 1U << static_cast<unsigned>(std::popcount(varying))) {
        return std::nullopt;
    }
    const auto mask = static_cast<unsigned char>(~varying & 0xffU);
    return std::pair{mask, static_cast<unsigned char>(static_cast<unsigned>(first) & mask)};
}

/// `tokens` as masked bytes, when each is such a byte set or a fixed gap.
std::optional<masked_bytes> masked_context(std::span<const hex_token> tokens) {
    masked_bytes out;
    bool all_exact = true;
    for (const hex_token& t : tokens) {
        if (t.what == hex_token::kind::gap) {
            if (t.unbounded || t.low != t.high || t.low > widest_masked_gap) {
                return std::nullopt;
            }
            out.values.append(t.low, '\0');
            out.masks.append(t.low, '\0');
            all_exact = all_exact && t.low == 0;
            continue;
        }
        if (t.what != hex_token::kind::byte_set) {
            return std::nullopt;
        }
        const auto masked = mask_of(t);
        if (!masked) {
            return std::nullopt;
        }
        out.values += static_cast<char>(masked->second);
        out.masks += static_cast<char>(masked->first);
        all_exact = all_exact && masked->first == 0xff;
    }
    if (all_exact) {
        out.masks.clear();  // every bit counts: no mask needed
    }
    return out;
}

/// Whether the masked `values` occur in the window at `position` (false when it does not
/// hold them).
bool bytes_at(const byte_window& window, std::uint64_t position, std::string_view values,
              std::string_view masks) {
    for (std::size_t i = 0; i < values.size(); ++i) {
        const int c = window.at(position + i);
        const auto mask = masks.empty() ? 0xffU : static_cast<unsigned char>(masks[i]);
        if (c < 0 || (static_cast<unsigned>(c) & mask) != static_cast<unsigned char>(values[i])) {
            return false;
        }
    }
    return true;
}

/// The fixed-width context of a program around a factor at [factor_start, factor_end).
bool fixed_context_matches(const verify_program& program, const byte_window& window,
                           std::uint64_t factor_start, std::uint64_t factor_end) {
    const std::string_view prefix = program.prefix_bytes();
    return factor_start >= prefix.size() &&
           bytes_at(window, factor_start - prefix.size(), prefix, program.prefix_mask()) &&
           bytes_at(window, factor_end, program.suffix_bytes(), program.suffix_mask());
}

}  // namespace

std::optional<verify_program> plan_prefilter(const std::vector<hex_token>& tokens,
                                            std::uint32_t widest) {
    const auto width = max_width(tokens);
    if (!width || *width > widest || tokens.empty()) {
        return std::nullopt;
    }
    const bool caseless =
        std::any_of(tokens.begin(), tokens.end(), [](const hex_token& t) { return case_pair(t) >= 0; });
    bool plain = true;
    std::string bytes(tokens.size(), '\0');
    std::vector<bool> fixed(tokens.size(), false);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const int b = factor_byte(tokens[i], caseless);
        // Boundaries cost one byte check each, so a literal between boundaries (`::f`,
        // (B)) is as cheap to verify as the bare literal.
        const bool boundary = tokens[i].what == hex_token::kind::start_boundary ||
                              tokens[i].what == hex_token::kind::end_boundary;
        plain = plain && (b >= 0 || boundary);
        fixed[i] = b >= 0;
        bytes[i] = static_cast<char>(b >= 0 ? b : 0);
    }
    // The best window of at most max_factor_length fixed bytes, scored within its whole run
    // of fixed bytes (a common word cut by the window edge stays common).
    std::vector<unsigned> costs(tokens.size(), 0);
    for (std::size_t start = 0; start < tokens.size();) {
        std::size_t end = start;
        while (end < tokens.size() && fixed[end]) {
            ++end;
        }
        const auto run = byte_costs(std::string_view(bytes).substr(start, end - start));
        std::copy(run.begin(), run.end(), costs.begin() + static_cast<std::ptrdiff_t>(start));
        start = end + 1;
    }
    unsigned best_score = 0;
    std::size_t best_at = 0;
    std::size_t best_length = 0;
    for (std::size_t start = 0; start < tokens.size(); ++start) {
        if (!fixed[start]) {
            continue;
        }
        std::size_t length = 0;
        unsigned score = 0;
        while (start + length < tokens.size() && length < max_factor_length &&
               fixed[start + length]) {
            score += costs[start + length];
            ++length;
        }
        if (score > best_score || (score == best_score && length > best_length)) {
            best_score = score;
            best_at = start;
            best_length = length;
        }
    }
    if (best_length == 0 || (!plain && (best_score < weak_factor_score || best_length < 3))) {
        return std::nullopt;
    }
    verify_program program;
    program.factor_length_ = static_cast<std::uint8_t>(best_length);
    const std::string_view factor = std::string_view(bytes).substr(best_at, best_length);
    program.caseless_ =
        caseless && std::any_of(factor.begin(), factor.end(), [](char c) { return is_letter(c); });
    program.score_ = best_score;
    // Views first: most contexts become bytes, and copying their tokens would be wasted.
    const std::span<const hex_token> all(tokens);
    const auto prefix = all.first(best_at);
    const auto suffix = all.subspan(best_at + best_length);
    program.prefix_max_ = max_width(prefix).value_or(0);
    program.suffix_max_ = max_width(suffix).value_or(0);
    std::string program_bytes(factor);
    if (auto before = masked_context(prefix), after = masked_context(suffix); before && after) {
        program.prefix_length_ = static_cast<std::uint32_t>(before->values.size());
        program.suffix_length_ = static_cast<std::uint32_t>(after->values.size());
        program_bytes += before->values;
        program_bytes += after->values;
        if (!before->masks.empty() || !after->masks.empty()) {
            program.masked_ = true;
            program_bytes += before->masks.empty()
                                 ? std::string(before->values.size(), '\xff')
                                 : before->masks;
            program_bytes += after->masks.empty() ? std::string(after->values.size(), '\xff')
                                                  : after->masks;
        }
    } else {
        program.tokens_ = std::make_unique<const verify_program::token_context>(
            verify_program::token_context{{prefix.begin(), prefix.end()},
                                          {suffix.begin(), suffix.end()}});
    }
    program.set_bytes(program_bytes);
    return program;
}

std::optional<std::uint64_t> verify(const verify_program& program, const byte_window& window,
                                    std::uint64_t factor_end) {
    const std::uint64_t factor_start = factor_end - program.factor().size();
    const auto prefix = program.prefix_tokens();
    const auto suffix = program.suffix_tokens();
    if (prefix.empty() && suffix.empty()) {
        if (!fixed_context_matches(program, window, factor_start, factor_end)) {
            return std::nullopt;
        }
        return factor_end + program.suffix_bytes().size();
    }
    if (!prefix.empty()) {
        const std::uint64_t floor =
            factor_start > program.prefix_max() ? factor_start - program.prefix_max() : 0;
        if (backward(prefix, {{factor_start, factor_start}}, window, floor).empty()) {
            return std::nullopt;
        }
    }
    if (suffix.empty()) {
        return factor_end;
    }
    const position_set ends = forward(suffix, {{factor_end, factor_end}}, window);
    if (ends.empty()) {
        return std::nullopt;
    }
    return ends.front().first;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> verify_starts(const verify_program& program,
                                                                 const byte_window& window,
                                                                 std::uint64_t factor_end) {
    const std::uint64_t factor_start = factor_end - program.factor().size();
    const auto prefix = program.prefix_tokens();
    const auto suffix = program.suffix_tokens();
    if (prefix.empty() && suffix.empty()) {
        if (!fixed_context_matches(program, window, factor_start, factor_end)) {
            return {};
        }
        const std::uint64_t start = factor_start - program.prefix_bytes().size();
        return {{start, start}};
    }
    if (!suffix.empty() && forward(suffix, {{factor_end, factor_end}}, window).empty()) {
        return {};
    }
    if (prefix.empty()) {
        return {{factor_start, factor_start}};
    }
    const std::uint64_t floor =
        factor_start > program.prefix_max() ? factor_start - program.prefix_max() : 0;
    return backward(prefix, {{factor_start, factor_start}}, window, floor);
}

}  // namespace ringscan::matcher::detail
