#include "bench/ringbench/mail_gen.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace ringscan::bench {

namespace {

constexpr double small_sigma = 0.9;  // spread of the log-normal body of the mix
constexpr std::size_t small_min = 1500;
constexpr std::size_t medium_lo = 100 * 1000;
constexpr std::size_t medium_hi = 1000 * 1000;
constexpr std::size_t large_lo = 1000 * 1000 + 1;

constexpr std::array<std::string_view, 64> words = {
    "the",      "report",   "quarter",  "meeting",  "attached", "please",  "review",
    "budget",   "figures",  "team",     "project",  "update",   "schedule", "customer",
    "invoice",  "payment",  "delivery", "status",   "regards",  "thanks",  "for",
    "and",      "with",     "from",     "about",    "next",     "week",    "monday",
    "friday",   "office",   "server",   "network",  "backup",   "release", "version",
    "draft",    "final",    "contract", "signed",   "summary",  "notes",   "minutes",
    "agenda",   "travel",   "expense",  "approval", "request",  "support", "ticket",
    "issue",    "resolved", "pending",  "we",       "will",     "have",    "our",
    "your",     "this",     "that",     "it",       "is",       "to",      "of",
    "in"};
constexpr std::array<std::string_view, 6> utf8_words = {"café", "Grüße", "naïve",
                                                        "Zürich", "résumé", "Ærø"};

/// Inverse of the standard normal CDF by bisection (only used once per mix).
double normal_quantile(double q) {
    double lo = -10.0;
    double hi = 10.0;
    for (int i = 0; i < 200; ++i) {
        const double mid = (lo + hi) / 2.0;
        const double cdf = 0.5 * std::erfc(-mid / std::sqrt(2.0));
        (cdf < q ? lo : hi) = mid;
    }
    return (lo + hi) / 2.0;
}

std::string hex(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

/// A line of words, at most `width` encoded characters.
std::string text_line(rng& r, std::size_t width, bool qp) {
    std::string line;
    std::size_t encoded = 0;
    while (true) {
        const bool fancy = qp && r.chance(0.05);
        const std::string_view w =
            fancy ? utf8_words[r.below(utf8_words.size())] : words[r.below(words.size())];
        const std::size_t wlen = qp ? quoted_printable_line(w).size() : w.size();
        if (encoded + wlen + 1 > width) {
            break;
        }
        if (!line.empty()) {
            line.push_back(' ');
            ++encoded;
        }
        line.append(w);
        encoded += wlen;
    }
    if (!line.empty()) {
        line.push_back('.');
    }
    return line;
}

/// About `size` bytes of encoded text, CRLF lines, paragraphs.
std::string text_body(rng& r, std::size_t size, bool qp) {
    std::string out;
    while (out.size() < size) {
        const std::string line = text_line(r, 60 + r.below(14), qp);
        out += qp ? quoted_printable_line(line) : line;
        out += "\r\n";
        if (r.chance(0.15)) {
            out += "\r\n";
        }
    }
    return out;
}

std::string random_bytes(rng& r, std::size_t n) {
    std::string out(n, '\0');
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t v = r.next();
        for (int k = 0; k < 8; ++k) {
            out[i + static_cast<std::size_t>(k)] = static_cast<char>(v & 0xff);
            v >>= 8;
        }
    }
    std::uint64_t v = r.next();
    for (; i < n; ++i) {
        out[i] = static_cast<char>(v & 0xff);
        v >>= 8;
    }
    return out;
}

std::string csv_text(rng& r, std::size_t n) {
    std::string out = "date,account,amount,status\r\n";
    while (out.size() < n) {
        char line[96];
        std::snprintf(line, sizeof line, "2026-%02u-%02u,%06u,%u.%02u,%s\r\n",
                      static_cast<unsigned>(1 + r.below(12)), static_cast<unsigned>(1 + r.below(28)),
                      static_cast<unsigned>(r.below(1000000)), static_cast<unsigned>(r.below(100000)),
                      static_cast<unsigned>(r.below(100)), r.chance(0.8) ? "paid" : "open");
        out += line;
    }
    out.resize(n);
    return out;
}

/// Attachment payload of `n` raw bytes and its MIME type and file name.
struct attachment {
    std::string type;
    std::string name;
    std::string data;
};

attachment make_attachment(rng& r, std::size_t index, std::size_t part, std::size_t n) {
    attachment a;
    const std::uint64_t kind = r.below(3);
    const std::string stem = std::to_string(index) + "-" + std::to_string(part);
    if (kind == 0) {
        a.type = "application/octet-stream";
        a.name = "data-" + stem + ".bin";
        a.data = random_bytes(r, n);
    } else if (kind == 1) {
        a.type = "image/png";
        a.name = "image-" + stem + ".png";
        a.data = random_bytes(r, n);
        static constexpr char png_magic[] = "\x89PNG\r\n\x1a\n";
        a.data.replace(0, std::min<std::size_t>(8, n), png_magic, std::min<std::size_t>(8, n));
    } else {
        a.type = "text/csv";
        a.name = "ledger-" + stem + ".csv";
        a.data = csv_text(r, n);
    }
    return a;
}

std::string date_header(std::uint64_t seed, std::size_t index) {
    // A fixed base date plus a seeded, increasing offset: reproducible, plausible.
    static constexpr std::array<std::string_view, 7> days = {"Thu", "Fri", "Sat", "Sun",
                                                             "Mon", "Tue", "Wed"};
    const std::uint64_t minutes = (seed % 1000) * 7 + index;  // 2026-01-01 is a Thursday
    const std::uint64_t day = (minutes / (24 * 60)) % 28;
    const std::uint64_t hh = (minutes / 60) % 24;
    const std::uint64_t mm = minutes % 60;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02llu Jan 2026 %02llu:%02llu:00 +0000",
                  days[day % 7].data(), static_cast<unsigned long long>(day + 1),
                  static_cast<unsigned long long>(hh), static_cast<unsigned long long>(mm));
    return buf;
}

}  // namespace

std::string base64_lines(std::string_view data) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4 + (data.size() / 57 + 1) * 2);
    std::size_t col = 0;
    std::size_t i = 0;
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(data[k]); };
    while (i < data.size()) {
        const std::size_t left = data.size() - i;
        const std::uint32_t b0 = byte(i);
        const std::uint32_t b1 = left > 1 ? byte(i + 1) : 0;
        const std::uint32_t b2 = left > 2 ? byte(i + 2) : 0;
        const std::uint32_t v = (b0 << 16) | (b1 << 8) | b2;
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(left > 1 ? alphabet[(v >> 6) & 63] : '=');
        out.push_back(left > 2 ? alphabet[v & 63] : '=');
        i += 3;
        col += 4;
        if (col == 76) {
            out += "\r\n";
            col = 0;
        }
    }
    if (col != 0) {
        out += "\r\n";
    }
    return out;
}

std::string quoted_printable_line(std::string_view line) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const auto c = static_cast<unsigned char>(line[i]);
        const bool last = i + 1 == line.size();
        const bool trailing_space = last && (c == ' ' || c == '\t');
        if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !trailing_space)) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('=');
            out.push_back(digits[c >> 4]);
            out.push_back(digits[c & 15]);
        }
    }
    return out;
}

std::size_t draw_mail_size(rng& r, const mail_mix_options& options) {
    const double u = r.uniform();
    if (u < options.large_share) {
        const double hi = std::max<double>(static_cast<double>(options.large_max),
                                           static_cast<double>(large_lo) + 1.0);
        return static_cast<std::size_t>(r.log_uniform(static_cast<double>(large_lo), hi));
    }
    if (u < options.large_share + options.medium_share) {
        return static_cast<std::size_t>(
            r.log_uniform(static_cast<double>(medium_lo), static_cast<double>(medium_hi)));
    }
    // The rest is log-normal. Its own median is placed so that the median of the whole
    // mix is `median_size`: the mix median is the (0.5 / small_share) quantile of this part.
    const double small_share = 1.0 - options.large_share - options.medium_share;
    double scale = 1.0;
    if (small_share > 0.5) {
        scale = std::exp(small_sigma * normal_quantile(0.5 / small_share));
    }
    const double median = static_cast<double>(options.median_size) / scale;
    const double v = median * std::exp(small_sigma * r.normal());
    return static_cast<std::size_t>(
        std::clamp(v, static_cast<double>(small_min), static_cast<double>(medium_lo - 1)));
}

mail make_mail(rng& r, std::uint64_t seed, std::size_t index, std::size_t target_size,
               bool infected, plant_encoding encoding) {
    mail m;
    m.target_size = target_size;
    m.infected = infected;
    const auto user = r.between(1, 999);
    const auto dest = r.between(1, 999);
    m.sender = "<user" + std::to_string(user) + "@example.org>";
    m.recipient = "<dest" + std::to_string(dest) + "@example.net>";
    const std::string boundary = "=_rb_mixed_" + hex(r.next());
    const bool alternative = r.chance(0.3);
    const bool qp = r.chance(0.4);

    std::string& out = m.raw;
    out.reserve(target_size + 4096);
    out += "From: \"User " + std::to_string(user) + "\" <user" + std::to_string(user) +
           "@example.org>\r\n";
    out += "To: <dest" + std::to_string(dest) + "@example.net>\r\n";
    out += "Subject: Report " + std::to_string(r.below(1000000)) + " (ringbench mail " +
           std::to_string(index) + ")\r\n";
    out += "Date: " + date_header(seed, index) + "\r\n";
    out += "Message-ID: <" + std::to_string(seed) + "." + std::to_string(index) +
           "@ringbench.example>\r\n";
    out += "MIME-Version: 1.0\r\n";
    out += "Content-Type: multipart/mixed;\r\n\tboundary=\"" + boundary + "\"\r\n";
    out += "X-Ringbench: seed=" + std::to_string(seed) + " index=" + std::to_string(index) +
           " infected=" + (infected ? "yes" : "no") + "\r\n";
    out += "\r\n";
    m.body_offset = out.size();
    out += "This is a multi-part message in MIME format.\r\n";

    // Budget: small messages are mostly text; larger ones carry attachments.
    // MIME structure around the text: part headers and boundaries (measured sizes), the
    // HTML wrapper, the planted attachment. What is left is text and attachments.
    const std::size_t structure = 150 + (alternative ? 300U : 0U) + (infected ? 300U : 0U);
    const std::size_t overhead = out.size() + structure;
    const std::size_t room = target_size > overhead + 200 ? target_size - overhead : 200;
    std::size_t text_size = room;
    std::size_t attach_encoded = 0;
    if (room > 6000) {
        text_size = std::min<std::size_t>(room, 1500 + r.below(std::min<std::size_t>(room / 3, 9000)));
        attach_encoded = room - text_size;
    }
    if (alternative) {
        text_size = std::max<std::size_t>(text_size / 2, 100);
    }
    const std::string text = text_body(r, text_size, qp);
    const char* cte = qp ? "quoted-printable" : "7bit";

    out += "--" + boundary + "\r\n";
    if (alternative) {
        const std::string alt = "=_rb_alt_" + hex(r.next());
        out += "Content-Type: multipart/alternative;\r\n\tboundary=\"" + alt + "\"\r\n\r\n";
        out += "--" + alt + "\r\n";
        out += "Content-Type: text/plain; charset=\"utf-8\"\r\n";
        out += std::string("Content-Transfer-Encoding: ") + cte + "\r\n\r\n";
        out += text;
        out += "--" + alt + "\r\n";
        out += "Content-Type: text/html; charset=\"utf-8\"\r\n";
        out += std::string("Content-Transfer-Encoding: ") + cte + "\r\n\r\n";
        out += "<html><body>\r\n";
        out += text;  // the encoded lines carry no markup characters
        out += "</body></html>\r\n";
        out += "--" + alt + "--\r\n";
    } else {
        out += "Content-Type: text/plain; charset=\"utf-8\"\r\n";
        out += std::string("Content-Transfer-Encoding: ") + cte + "\r\n\r\n";
        out += text;
    }

    if (attach_encoded > 0) {
        const std::size_t parts = attach_encoded > 200000 && r.chance(0.3) ? 2 : 1;
        for (std::size_t p = 0; p < parts; ++p) {
            const std::size_t encoded = attach_encoded / parts > 400 ? attach_encoded / parts - 200 : 200;
            const std::size_t raw = std::max<std::size_t>(encoded / 78 * 57, 16);
            const attachment a = make_attachment(r, index, p, raw);
            out += "--" + boundary + "\r\n";
            out += "Content-Type: " + a.type + "; name=\"" + a.name + "\"\r\n";
            out += "Content-Disposition: attachment; filename=\"" + a.name + "\"\r\n";
            out += "Content-Transfer-Encoding: base64\r\n\r\n";
            out += base64_lines(a.data);
        }
    }
    if (infected) {
        out += "--" + boundary + "\r\n";
        out += "Content-Type: application/octet-stream; name=\"eicar.com\"\r\n";
        out += "Content-Disposition: attachment; filename=\"eicar.com\"\r\n";
        if (encoding == plant_encoding::plain) {
            out += "Content-Transfer-Encoding: 7bit\r\n\r\n";
            out += eicar_string;
            out += "\r\n";
        } else {
            out += "Content-Transfer-Encoding: base64\r\n\r\n";
            out += base64_lines(eicar_string);
        }
    }
    out += "--" + boundary + "--\r\n";
    return m;
}

std::vector<mail> make_mail_mix(const mail_mix_options& options) {
    rng r(options.seed);
    // Exactly round(count * share) infected messages, at seeded positions.
    const auto infected_count = static_cast<std::size_t>(
        std::llround(static_cast<double>(options.count) * std::clamp(options.infected_share, 0.0, 1.0)));
    std::vector<bool> infected(options.count, false);
    std::vector<std::size_t> positions(options.count);
    for (std::size_t i = 0; i < options.count; ++i) {
        positions[i] = i;
    }
    for (std::size_t i = 0; i < infected_count; ++i) {  // partial Fisher-Yates
        const std::size_t j = i + static_cast<std::size_t>(r.below(options.count - i));
        std::swap(positions[i], positions[j]);
        infected[positions[i]] = true;
    }
    std::vector<mail> out;
    out.reserve(options.count);
    for (std::size_t i = 0; i < options.count; ++i) {
        const std::size_t size = draw_mail_size(r, options);
        out.push_back(make_mail(r, options.seed, i, size, infected[i], options.encoding));
    }
    return out;
}

header_split split_headers(std::string_view raw) {
    header_split out;
    std::size_t at = 0;
    while (at < raw.size()) {
        std::size_t eol = raw.find('\n', at);
        const bool last = eol == std::string_view::npos;
        if (last) {
            eol = raw.size();
        }
        std::string_view line = raw.substr(at, eol - at);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        const std::size_t next = last ? raw.size() : eol + 1;
        if (line.empty()) {  // the blank line
            out.body_offset = next;
            return out;
        }
        if (line.front() == ' ' || line.front() == '\t') {
            if (out.headers.empty()) {
                return header_split{};  // not a header block
            }
            out.headers.back().second += "\n";
            out.headers.back().second += line;
        } else {
            const std::size_t colon = line.find(':');
            if (colon == std::string_view::npos || colon == 0 ||
                line.substr(0, colon).find_first_of(" \t") != std::string_view::npos) {
                if (out.headers.empty()) {
                    return header_split{};  // no header block: the whole file is body
                }
                out.body_offset = at;  // malformed line: treat the rest as body
                return out;
            }
            std::string_view value = line.substr(colon + 1);
            if (!value.empty() && value.front() == ' ') {
                value.remove_prefix(1);
            }
            out.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
        }
        at = next;
    }
    out.body_offset = raw.size();
    return out;
}

}  // namespace ringscan::bench
