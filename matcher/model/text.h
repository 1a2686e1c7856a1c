#pragma once

/// Small parsing helpers shared by the database loaders. Each mirrors the C routine ClamAV
/// uses for the same field, because the loaders must accept and reject what ClamAV does.

#include "base/hex.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>

namespace ringscan::matcher::detail {

[[nodiscard]] constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// ClamAV's cli_isnumber(): only decimal digits; the empty string counts as a number (0).
[[nodiscard]] constexpr bool all_digits(std::string_view text) {
    for (const char c : text) {
        if (!is_digit(c)) {
            return false;
        }
    }
    return true;
}

/// Value of a string of digits, saturating instead of overflowing. Precondition: all_digits.
[[nodiscard]] constexpr std::uint64_t digits_value(std::string_view digits) {
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t value = 0;
    for (const char c : digits) {
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (max - digit) / 10) {
            return max;
        }
        value = value * 10 + digit;
    }
    return value;
}

[[nodiscard]] constexpr bool is_c_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/// Where C's number conversions (atoi, strtol, sscanf %u) start reading digits: past the
/// leading blanks and one optional sign.
struct c_number_start {
    std::size_t pos = 0;
    bool negative = false;
};
[[nodiscard]] constexpr c_number_start skip_blanks_and_sign(std::string_view text,
                                                            std::size_t pos) {
    while (pos < text.size() && is_c_space(text[pos])) {
        ++pos;
    }
    bool negative = false;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        negative = text[pos] == '-';
        ++pos;
    }
    return {pos, negative};
}

/// atoi(): optional blanks and sign, then as many digits as there are; anything else is
/// ignored and no digits give 0. Saturates at the int64 range.
[[nodiscard]] constexpr std::int64_t c_atoi(std::string_view text) {
    const auto [i, negative] = skip_blanks_and_sign(text, 0);
    std::size_t end = i;
    while (end < text.size() && is_digit(text[end])) {
        ++end;
    }
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::uint64_t magnitude = digits_value(text.substr(i, end - i));
    if (magnitude > max) {
        magnitude = max;
    }
    const auto value = static_cast<std::int64_t>(magnitude);
    return negative ? -value : value;
}

/// strtol() that must consume the whole field: blanks, optional sign, at least one digit,
/// nothing after. nullopt when the field is not such a number.
[[nodiscard]] constexpr std::optional<std::int64_t> c_strtol_whole(std::string_view text) {
    const std::size_t i = skip_blanks_and_sign(text, 0).pos;
    if (i == text.size() || !all_digits(text.substr(i))) {
        return std::nullopt;
    }
    return c_atoi(text);
}

/// The `%u` conversion of sscanf(): blanks, optional sign, at least one digit; the value
/// wraps like strtoul() stored into an unsigned int. Returns the value and the end.
struct scanned_unsigned {
    std::uint32_t value = 0;
    std::size_t end = 0;
};
[[nodiscard]] constexpr std::optional<scanned_unsigned> scan_unsigned(std::string_view text,
                                                                      std::size_t pos) {
    const auto [start, negative] = skip_blanks_and_sign(text, pos);
    std::size_t end = start;
    while (end < text.size() && is_digit(text[end])) {
        ++end;
    }
    if (end == start) {
        return std::nullopt;
    }
    std::uint64_t value = digits_value(text.substr(start, end - start));  // saturates = ULONG_MAX
    if (negative) {
        value = ~value + 1;
    }
    return scanned_unsigned{static_cast<std::uint32_t>(value), end};
}

/// strtol()/strtoll() with `base` (0 = C prefixes), reporting where it stopped. No digits:
/// value 0 and end = pos (like C's endptr = nptr).
struct scanned_long {
    std::int64_t value = 0;
    std::size_t end = 0;
};
[[nodiscard]] constexpr scanned_long scan_long(std::string_view text, std::size_t pos, int base) {
    const std::size_t begin = pos;
    const c_number_start start = skip_blanks_and_sign(text, pos);
    pos = start.pos;
    const bool negative = start.negative;
    if (base == 0 || base == 16) {
        if (pos + 1 < text.size() && text[pos] == '0' &&
            (text[pos + 1] == 'x' || text[pos + 1] == 'X') &&
            pos + 2 < text.size() && hex::digit_value(text[pos + 2]) >= 0) {
            pos += 2;
            base = 16;
        } else if (base == 0) {
            base = (pos < text.size() && text[pos] == '0') ? 8 : 10;
        }
    }
    const auto digit_of = [base](char c) {
        const int v = hex::digit_value(c);
        return v >= 0 && v < base ? v : -1;
    };
    std::size_t end = pos;
    std::uint64_t magnitude = 0;
    bool overflow = false;
    constexpr std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() / 2;
    while (end < text.size() && digit_of(text[end]) >= 0) {
        const auto d = static_cast<std::uint64_t>(digit_of(text[end]));
        if (magnitude > (limit - d) / static_cast<std::uint64_t>(base)) {
            overflow = true;
        } else {
            magnitude = magnitude * static_cast<std::uint64_t>(base) + d;
        }
        ++end;
    }
    if (end == pos) {
        return {0, begin};
    }
    std::int64_t value = 0;
    if (overflow) {
        value = negative ? std::numeric_limits<std::int64_t>::min()
                         : std::numeric_limits<std::int64_t>::max();
    } else {
        value = negative ? -static_cast<std::int64_t>(magnitude)
                         : static_cast<std::int64_t>(magnitude);
    }
    return {value, end};
}

}  // namespace ringscan::matcher::detail
