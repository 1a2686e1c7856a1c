#pragma once

/// Small parsing helpers shared by the database loaders. Each mirrors the C routine ClamAV
/// uses for the same field, because the loaders must accept and reject what ClamAV does.

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>

namespace ringscan::matcher::detail {

[[nodiscard]] constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

[[nodiscard]] constexpr int hex_digit_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

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

/// atoi(): optional blanks and sign, then as many digits as there are; anything else is
/// ignored and no digits give 0. Saturates at the int64 range.
[[nodiscard]] constexpr std::int64_t c_atoi(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && is_c_space(text[i])) {
        ++i;
    }
    bool negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
        negative = text[i] == '-';
        ++i;
    }
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
    std::size_t i = 0;
    while (i < text.size() && is_c_space(text[i])) {
        ++i;
    }
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
        ++i;
    }
    if (i == text.size() || !all_digits(text.substr(i))) {
        return std::nullopt;
    }
    return c_atoi(text);
}

/// Decodes an even-length string of hex digits into `out` (text.size() / 2 bytes).
/// Returns false, leaving `out` partly written, on a non-hex character or odd length.
[[nodiscard]] constexpr bool decode_hex(std::string_view text, std::span<std::uint8_t> out) {
    if (text.size() % 2 != 0 || out.size() < text.size() / 2) {
        return false;
    }
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const int high = hex_digit_value(text[i]);
        const int low = hex_digit_value(text[i + 1]);
        if (high < 0 || low < 0) {
            return false;
        }
        out[i / 2] = static_cast<std::uint8_t>(high * 16 + low);
    }
    return true;
}

}  // namespace ringscan::matcher::detail
