#pragma once

/// Hex digits both ways: lowercase encoding (digests, cache file names, Hyperscan `\xNN`
/// escapes, ClamAV's icon hashes) and decoding of either case. ClamAV prints and compares
/// digests in lowercase, so encoding is lowercase only.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ringscan::hex {

inline constexpr std::string_view lower_digits = "0123456789abcdef";

/// The digit of the low four bits of `nibble`.
[[nodiscard]] constexpr char digit(unsigned nibble) { return lower_digits[nibble & 0xFU]; }

/// The value of one hex digit (either case), or -1.
[[nodiscard]] constexpr int digit_value(char c) {
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

/// Appends the two digits of `byte`.
inline void append_byte(std::string& out, std::uint8_t byte) {
    out += digit(byte >> 4U);
    out += digit(byte);
}

/// Appends `\xNN` (a regex or C escape of `byte`).
inline void append_escaped_byte(std::string& out, std::uint8_t byte) {
    out += "\\x";
    append_byte(out, byte);
}

/// Appends `value` in at least `width` digits, zero-padded on the left (printf's `%0*x`).
inline void append_number(std::string& out, std::uint64_t value, unsigned width) {
    unsigned digits = 1;
    while (digits < 16 && (value >> (4U * digits)) != 0) {
        ++digits;
    }
    for (unsigned i = digits > width ? digits : width; i-- > 0;) {
        out += i < 16 ? digit(static_cast<unsigned>(value >> (4U * i))) : '0';
    }
}

/// Two digits per byte.
[[nodiscard]] inline std::string encode(std::span<const std::uint8_t> bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const std::uint8_t b : bytes) {
        append_byte(out, b);
    }
    return out;
}
[[nodiscard]] inline std::string encode(std::string_view bytes) {
    return encode(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

/// Decodes an even-length string of hex digits into `out` (text.size() / 2 bytes).
/// Returns false, leaving `out` partly written, on a non-hex character or odd length.
[[nodiscard]] constexpr bool decode(std::string_view text, std::span<std::uint8_t> out) {
    if (text.size() % 2 != 0 || out.size() < text.size() / 2) {
        return false;
    }
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const int high = digit_value(text[i]);
        const int low = digit_value(text[i + 1]);
        if (high < 0 || low < 0) {
            return false;
        }
        out[i / 2] = static_cast<std::uint8_t>(high * 16 + low);
    }
    return true;
}

}  // namespace ringscan::hex
