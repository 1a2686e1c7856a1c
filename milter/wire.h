#pragma once

/// Byte-level pieces both milter codecs use (client_codec for the MTA side, filter_codec for
/// the filter side): big-endian lengths, NUL-terminated strings, one packet assembled then
/// handed to the sink in one copy. Private to milter/.

#include "base/assert.h"
#include "milter/client_codec.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::milter::wire {

[[nodiscard]] inline std::uint32_t read_u32(const char* at) {
    const auto* p = reinterpret_cast<const unsigned char*>(at);
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

inline void put_u32(std::string& out, std::uint32_t v) {
    out.push_back(static_cast<char>((v >> 24) & 0xff));
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
}

inline void append_cstr(std::string& s, std::string_view v) {
    s.append(v);
    s.push_back('\0');
}

/// One packet (u32be length including the code, the code, the data), copied into the sink
/// in one call.
inline void emit(sink& out, char code, std::string_view data) {
    RINGSCAN_ASSERT(data.size() < 0xffffffffu);
    std::string packet;
    packet.reserve(5 + data.size());
    put_u32(packet, static_cast<std::uint32_t>(data.size() + 1));
    packet.push_back(code);
    packet.append(data);
    out.copy(packet);
}

/// A packet whose data is one NUL-terminated string.
inline void emit_string(sink& out, char code, std::string_view text) {
    std::string data;
    append_cstr(data, text);
    emit(out, code, data);
}

/// A packet whose data is argv as consecutive NUL-terminated strings (MAIL/RCPT arguments,
/// CHGFROM, ADDRCPT_PAR); argv is never empty.
inline void emit_strings(sink& out, char code, std::span<const std::string> argv) {
    RINGSCAN_ASSERT(!argv.empty());
    std::string data;
    for (const auto& a : argv) {
        append_cstr(data, a);
    }
    emit(out, code, data);
}

/// Splits consecutive NUL-terminated strings (data must end in NUL) into `out`, as views or
/// copies.
template <class String>
[[nodiscard]] bool split_strings(std::string_view data, std::vector<String>& out) {
    if (data.empty() || data.back() != '\0') {
        return false;
    }
    std::size_t start = 0;
    while (start < data.size()) {
        const std::size_t nul = data.find('\0', start);
        out.emplace_back(data.substr(start, nul - start));
        start = nul + 1;
    }
    return true;
}

}  // namespace ringscan::milter::wire
