#pragma once

// Helpers for the milter tests: split encoded MTA packets, build milter reply bytes.

#include "milter/client_codec.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ringscan::milter::test {

struct packet {
    char cmd;
    std::string data;
};

inline std::vector<packet> split_packets(const std::string& wire) {
    std::vector<packet> out;
    std::size_t at = 0;
    while (at + 5 <= wire.size()) {
        const auto* p = reinterpret_cast<const unsigned char*>(wire.data() + at);
        const std::size_t len = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                (std::size_t{p[2]} << 8) | p[3];
        out.push_back({wire[at + 4], wire.substr(at + 5, len - 1)});
        at += 4 + len;
    }
    return out;
}

inline std::string commands(const std::vector<packet>& ps) {
    std::string s;
    for (const auto& p : ps) {
        s.push_back(p.cmd);
    }
    return s;
}

inline std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff),
            static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

/// One milter reply packet on the wire.
inline std::string wire_reply(char code, const std::string& data = {}) {
    return be32(static_cast<std::uint32_t>(data.size() + 1)) + code + data;
}

inline reply decoded(char code, const std::string& data = {}) {
    auto r = parse_reply(code, data);
    return r ? *r : reply{};
}

}  // namespace ringscan::milter::test
