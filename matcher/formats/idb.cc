#include "matcher/formats/idb.h"

#include "base/hex.h"

#include <array>
#include <cstddef>
#include <cstdint>

namespace ringscan::matcher::detail {
namespace {

using u32 = std::uint32_t;
using triple = icon_metrics::triple;

constexpr std::size_t hash_digits = 124;

/// Reads the hash digits left to right, as cli_loadidb() walks its nibble array.
class nibble_reader {
public:
    explicit nibble_reader(const std::array<u32, hash_digits>& nibbles) : nibbles_(nibbles) {}
    u32 take(std::size_t digits) {
        u32 value = 0;
        for (std::size_t i = 0; i < digits; ++i) {
            value = (value << 4U) | nibbles_[pos_++];
        }
        return value;
    }

private:
    const std::array<u32, hash_digits>& nibbles_;
    std::size_t pos_ = 0;
};

}  // namespace

std::string format_icon_hash(const icon_metrics& m) {
    std::string out;
    out.reserve(hash_digits);
    const auto put = [&out](u32 value, int digits) {
        hex::append_number(out, value, static_cast<unsigned>(digits));
    };
    put(m.side, 2);
    const auto put_triples = [&put](const triple& avg, const triple& xs, const triple& ys,
                                    int avg_digits) {
        for (std::size_t i = 0; i < 3; ++i) {
            put(avg[i], avg_digits);
            put(xs[i], 2);
            put(ys[i], 2);
        }
    };
    put_triples(m.color_avg, m.color_x, m.color_y, 3);
    put_triples(m.gray_avg, m.gray_x, m.gray_y, 3);
    put_triples(m.bright_avg, m.bright_x, m.bright_y, 2);
    put_triples(m.dark_avg, m.dark_x, m.dark_y, 2);
    put_triples(m.edge_avg, m.edge_x, m.edge_y, 2);
    put_triples(m.noedge_avg, m.noedge_x, m.noedge_y, 2);
    put(m.rsum, 2);
    put(m.gsum, 2);
    put(m.bsum, 2);
    put(m.ccount, 2);
    return out;
}

tl::expected<idb_entry, std::string> parse_idb_line(std::string_view line) {
    // cli_strtokenize(line, ':', 5): more than three colons gives a fifth token.
    std::array<std::string_view, 4> fields;
    std::size_t count = 0;
    std::string_view rest = line;
    while (true) {
        const auto colon = rest.find(':');
        if (count == fields.size()) {
            return tl::unexpected(std::string("malformed .idb line (wrong token count)"));
        }
        fields[count++] = rest.substr(0, colon);
        if (colon == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(colon + 1);
    }
    if (count != fields.size()) {
        return tl::unexpected(std::string("malformed .idb line (wrong token count)"));
    }
    const std::string_view hash = fields[3];
    if (hash.size() != hash_digits) {
        return tl::unexpected(std::string("malformed .idb hash (wrong length)"));
    }
    std::array<u32, hash_digits> nibbles{};
    for (std::size_t i = 0; i < hash_digits; ++i) {
        const int value = hex::digit_value(hash[i]);
        if (value < 0) {
            return tl::unexpected(std::string("malformed .idb hash (bad chars)"));
        }
        nibbles[i] = static_cast<u32>(value);
    }
    nibble_reader in(nibbles);
    idb_entry entry;
    entry.name = fields[0];
    entry.group1 = fields[1];
    entry.group2 = fields[2];
    icon_metrics& m = entry.metrics;
    m.side = in.take(2);
    if (m.side != 16 && m.side != 24 && m.side != 32) {
        return tl::unexpected(std::string("malformed .idb hash (bad size)"));
    }
    const u32 max_position = m.side - m.side / 8;
    const auto read_windows = [&](triple& avg, triple& xs, triple& ys, std::size_t avg_digits,
                                  bool check_avg) {
        for (std::size_t i = 0; i < 3; ++i) {
            avg[i] = in.take(avg_digits);
            if (check_avg && avg[i] > 4072) {
                return false;
            }
            xs[i] = in.take(2);
            if (xs[i] > max_position) {
                return false;
            }
            ys[i] = in.take(2);
            if (ys[i] > max_position) {
                return false;
            }
        }
        return true;
    };
    // The six window groups in hash order: average digits, whether the average is range
    // checked, and the name ClamAV's message gives them.
    struct window_group {
        triple icon_metrics::*avg;
        triple icon_metrics::*xs;
        triple icon_metrics::*ys;
        std::size_t avg_digits;
        bool check_avg;
        std::string_view name;
    };
    using im = icon_metrics;
    static constexpr std::array<window_group, 6> groups{{
        {&im::color_avg, &im::color_x, &im::color_y, 3, true, "color"},
        {&im::gray_avg, &im::gray_x, &im::gray_y, 3, true, "gray"},
        {&im::bright_avg, &im::bright_x, &im::bright_y, 2, false, "bright"},
        {&im::dark_avg, &im::dark_x, &im::dark_y, 2, false, "dark"},
        {&im::edge_avg, &im::edge_x, &im::edge_y, 2, false, "edge"},
        {&im::noedge_avg, &im::noedge_x, &im::noedge_y, 2, false, "noedge"},
    }};
    for (const window_group& g : groups) {
        if (!read_windows(m.*g.avg, m.*g.xs, m.*g.ys, g.avg_digits, g.check_avg)) {
            return tl::unexpected("malformed .idb hash (bad " + std::string(g.name) + " data)");
        }
    }
    m.rsum = in.take(2);
    m.gsum = in.take(2);
    m.bsum = in.take(2);
    m.ccount = in.take(2);
    if (m.rsum + m.gsum + m.bsum > 103 || m.ccount > 100) {
        return tl::unexpected(std::string("malformed .idb hash (bad spread data)"));
    }
    return entry;
}

}  // namespace ringscan::matcher::detail
