#include "matcher/unpack/mime.h"

#include "base/hex.h"
#include "matcher/model/text.h"
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

// --- Typing -------------------------------------------------------------------------------

/// libclamav's built-in file-type magic for CL_TYPE_MAIL at offset 0 (filetypes_int.h,
/// `strings libclamav.so.12 | grep CL_TYPE_MAIL` on Debian 1.4.6). Case-sensitive.
constexpr std::array<std::string_view, 27> mail_magic = {
    ">From ",        "Date: ",          "Delivered-To: ",         "Delivery-date: ",
    "Envelope-to: ", "For: ",           "From ",                  "From: ",
    "Hi. This is the qmail-send",       "Message-ID: ",           "Message-Id: ",
    "Received: ",    "Received-SPF: ",  "Return-Path: ",          "Return-path: ",
    "Subject: ",     "To: ",            "X-Apparently-To: ",      "X-EVS",
    "X-Envelope-From: ",                "X-Original-To: ",        "X-Real-To: ",
    "X-Sieve: ",     "X-Symantec-",     "X-UIDL: ",               "v:\nReceived: ",
    "v:\r\nReceived: "};

/// Magic of types ClamAV recognises before any text rule (executables, archives, images,
/// documents): such an object is never typed as mail from its content.
constexpr std::array<std::string_view, 20> binary_magic = {
    "MZ",           "\x7f" "ELF",    "%PDF-",        "PK\x03\x04",   "\xd0\xcf\x11\xe0",
    "\x1f\x8b",     "BZh",           "Rar!",         "7z\xbc\xaf",   "\xca\xfe\xba\xbe",
    "\xfe\xed\xfa", "\xcf\xfa\xed\xfe", "\xce\xfa\xed\xfe", "\x89PNG", "GIF8",
    "\xff\xd8\xff", "FWS",           "CWS",          "ZWS",          "MSCF"};

bool equal_fold(char a, char b) {
    const auto lower = [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    return lower(a) == lower(b);
}

/// Whether "\n" + `name` (case-insensitive) starts at text[at].
bool header_at(std::string_view text, std::size_t at, std::string_view name) {
    if (at >= text.size() || text[at] != '\n' || text.size() - at - 1 < name.size()) {
        return false;
    }
    const auto candidate = text.substr(at + 1, name.size());
    return std::equal(candidate.begin(), candidate.end(), name.begin(), name.end(), equal_fold);
}

/// ClamAV's "body format" mail rules: "\n" + header A, then "\n" + header B within `gap`
/// bytes after A (the rules fold only the first letters' case; whole-name folding is close).
bool two_headers(std::string_view text, std::string_view first, std::string_view second,
                 std::size_t gap) {
    for (std::size_t at = text.find('\n'); at != std::string_view::npos;
         at = text.find('\n', at + 1)) {
        if (!header_at(text, at, first)) {
            continue;
        }
        const std::size_t end = at + 1 + first.size();
        for (std::size_t b = end; b <= end + gap && b < text.size(); ++b) {
            if (header_at(text, b, second)) {
                return true;
            }
        }
    }
    return false;
}

bool body_format_mail(std::string_view text) {
    // CL_TYPE_MHTML (scanned as mail too): "MIME-Version: " at offset 0, then "\n"
    // "Content-Type: " within 1 KiB.
    static constexpr std::string_view mime_version = "MIME-Version: ";
    if (text.size() > mime_version.size() &&
        std::equal(mime_version.begin(), mime_version.end(), text.begin(), equal_fold)) {
        for (std::size_t b = mime_version.size(); b <= mime_version.size() + 1024; ++b) {
            if (header_at(text, b, "Content-Type: ")) {
                return true;
            }
        }
    }
    if (two_headers(text, "From: ", "MIME-Version: ", 1024) ||
        two_headers(text, "From: ", "Content-Type: ", 2048) ||
        two_headers(text, "MIME-Version: ", "Content-Type: ", 2048) ||
        two_headers(text, "Message-Id: ", "Content-Type: ", 1024) ||
        two_headers(text, "Received: ", "Content-Type: ", 2048)) {
        return true;
    }
    // "Delivered-To:" {-256} "Received:" within the first KiB, case-sensitive, no newline.
    const auto delivered = text.substr(0, 1024 + 13).find("Delivered-To:");
    if (delivered != std::string_view::npos) {
        const auto rest = text.substr(delivered + 13, 256 + 9);
        return rest.find("Received:") != std::string_view::npos;
    }
    return false;
}

// --- Lines and headers ----------------------------------------------------------------------

using lines_t = std::vector<std::string_view>;
using line_span = std::span<const std::string_view>;

lines_t split_lines(std::string_view text) {
    lines_t lines;
    std::size_t at = 0;
    while (at < text.size()) {
        auto end = text.find('\n', at);
        const bool last = end == std::string_view::npos;
        if (last) {
            end = text.size();
        }
        auto line = text.substr(at, end - at);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        lines.push_back(line);
        at = last ? text.size() : end + 1;
    }
    return lines;
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

/// "Name:" with a header-name token before the colon.
bool is_header_line(std::string_view line) {
    const auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
        return false;
    }
    return std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(colon),
                       [](char c) { return c > ' ' && c < 127; });
}

struct headers {
    std::string type;     ///< lower-case main type; empty: no Content-Type
    std::string subtype;  ///< lower-case
    std::string boundary;
    std::string encoding;  ///< lower-case Content-Transfer-Encoding
};

/// The value of parameter `name` in a Content-Type value ("a/b; name="v"; x=y").
std::string parameter(std::string_view value, std::string_view name) {
    std::size_t at = value.find(';');
    while (at != std::string_view::npos && at < value.size()) {
        ++at;
        while (at < value.size() && (value[at] == ' ' || value[at] == '\t' || value[at] == ';')) {
            ++at;
        }
        const auto equals = value.find('=', at);
        if (equals == std::string_view::npos) {
            return {};
        }
        const auto key = lower(trim(value.substr(at, equals - at)));
        std::size_t pos = equals + 1;
        while (pos < value.size() && (value[pos] == ' ' || value[pos] == '\t')) {
            ++pos;
        }
        std::string result;
        if (pos < value.size() && value[pos] == '"') {
            ++pos;
            while (pos < value.size() && value[pos] != '"') {
                if (value[pos] == '\\' && pos + 1 < value.size()) {
                    ++pos;
                }
                result += value[pos++];
            }
            if (pos < value.size()) {
                ++pos;
            }
        } else {
            while (pos < value.size() && value[pos] != ';' && value[pos] != ' ' &&
                   value[pos] != '\t') {
                result += value[pos++];
            }
        }
        if (key == name) {
            return result;
        }
        at = value.find(';', pos);
    }
    return {};
}

void apply_header(std::string_view name, std::string_view value, headers& out) {
    const auto key = lower(trim(name));
    value = trim(value);
    if (key == "content-type") {
        const auto slash = value.find('/');
        const auto end = value.find_first_of("; \t");
        if (slash != std::string_view::npos && (end == std::string_view::npos || slash < end)) {
            out.type = lower(trim(value.substr(0, slash)));
            out.subtype = lower(trim(value.substr(slash + 1, end == std::string_view::npos
                                                                 ? std::string_view::npos
                                                                 : end - slash - 1)));
        } else {
            out.type = lower(trim(value.substr(0, end)));
            out.subtype.clear();
        }
        out.boundary = parameter(value, "boundary");
    } else if (key == "content-transfer-encoding") {
        out.encoding = lower(value);
    }
}

/// Parses the header block starting at lines[0]; returns the index of the first body line.
/// `top`: the message's own headers (stray non-header lines such as an mbox "From " line
/// are skipped); else a MIME part, whose headers end at the first line that is none.
std::size_t parse_headers(line_span lines, bool top, headers& out) {
    std::string name;
    std::string value;
    const auto flush = [&] {
        if (!name.empty()) {
            apply_header(name, value, out);
        }
        name.clear();
        value.clear();
    };
    std::size_t i = 0;
    for (; i < lines.size(); ++i) {
        const auto line = lines[i];
        if (line.empty()) {
            flush();
            return i + 1;
        }
        if ((line.front() == ' ' || line.front() == '\t') && !name.empty()) {
            value += ' ';
            value += trim(line);
            continue;
        }
        if (is_header_line(line)) {
            flush();
            const auto colon = line.find(':');
            name = line.substr(0, colon);
            value = line.substr(colon + 1);
            continue;
        }
        if (top || i > 0) {
            continue;  // junk inside a header block: ignored
        }
        return 0;  // a part without headers: its body starts here
    }
    flush();
    return i;
}

// --- Decoders --------------------------------------------------------------------------------

void copy_lines(line_span lines, std::string& out) {
    for (const auto line : lines) {
        out += line;
        out += '\n';
    }
}

bool is_uuencode_begin(std::string_view line) {
    // "begin 644 name": three octal digits (ClamAV's isuuencodebegin).
    return line.size() > 10 && line.substr(0, 6) == "begin " && line[6] >= '0' &&
           line[6] <= '7' && line[7] >= '0' && line[7] <= '7' && line[8] >= '0' &&
           line[8] <= '7' && line[9] == ' ';
}

/// Decodes the uuencoded lines after a "begin" line up to "end"; returns lines consumed.
std::size_t decode_uuencode(line_span lines, std::string& out) {
    std::size_t i = 0;
    for (; i < lines.size(); ++i) {
        const auto line = lines[i];
        if (line == "end" || line.substr(0, 3) == "end") {
            return i + 1;
        }
        if (line.empty()) {
            continue;
        }
        const auto count = static_cast<std::size_t>((line[0] - ' ') & 0x3F);
        std::size_t produced = 0;
        for (std::size_t at = 1; produced < count && at < line.size(); at += 4) {
            std::array<unsigned, 4> v{};
            for (std::size_t k = 0; k < 4; ++k) {
                const char c = at + k < line.size() ? line[at + k] : '`';
                v[k] = static_cast<unsigned>((c - ' ') & 0x3F);
            }
            const std::array<unsigned, 3> bytes = {(v[0] << 2U) | (v[1] >> 4U),
                                                   ((v[1] & 0xFU) << 4U) | (v[2] >> 2U),
                                                   ((v[2] & 0x3U) << 6U) | v[3]};
            for (std::size_t k = 0; k < 3 && produced < count; ++k, ++produced) {
                out += static_cast<char>(bytes[k] & 0xFFU);
            }
        }
    }
    return i;
}

// --- Structure -------------------------------------------------------------------------------

class unpacker {
public:
    unpacker(const mime_limits& limits, std::vector<mime_object>& out)
        : limits_(limits), out_(out) {}

    /// A message: its headers, then its body.
    void message(line_span lines, unsigned depth) {
        headers h;
        const auto body = parse_headers(lines, true, h);
        entity(lines.subspan(body), h, depth);
    }

    [[nodiscard]] bool complete() const { return complete_; }

private:
    void entity(line_span body, const headers& h, unsigned depth) {
        if (depth > limits_.max_nesting) {
            complete_ = false;
            return;
        }
        if (h.type == "multipart" && !h.boundary.empty() && multipart(body, h, depth)) {
            return;
        }
        mime_object object;
        if (h.encoding == "base64") {
            decode_base64(body, object.bytes);
        } else if (h.encoding == "quoted-printable") {
            decode_quoted_printable(body, object.bytes);
        } else if (h.type == "message") {
            copy_lines(body, object.bytes);
        } else {
            copy_text(body, object.bytes);
        }
        if (!object.bytes.empty()) {
            out_.push_back(std::move(object));
        }
    }

    /// Lines ending "\n", without uuencoded blocks (decoded up front by uuencoded()):
    /// ClamAV drops the "begin" line through the last data line and keeps "end".
    static void copy_text(line_span body, std::string& out) {
        for (std::size_t i = 0; i < body.size(); ++i) {
            if (is_uuencode_begin(body[i])) {
                while (i + 1 < body.size() && body[i + 1].substr(0, 3) != "end") {
                    ++i;
                }
                continue;
            }
            out += body[i];
            out += '\n';
        }
    }

    /// The parts of a multipart body; false when no boundary line was found.
    bool multipart(line_span body, const headers& h, unsigned depth) {
        const std::string delimiter = "--" + h.boundary;
        const auto boundary_kind = [&](std::string_view line) {
            // 0: none, 1: part delimiter, 2: close delimiter
            if (line.substr(0, delimiter.size()) != delimiter) {
                return 0;
            }
            auto rest = line.substr(delimiter.size());
            if (rest.substr(0, 2) == "--") {
                return trim(rest.substr(2)).empty() ? 2 : 0;
            }
            return trim(rest).empty() ? 1 : 0;
        };
        std::size_t start = 0;
        bool open = false;
        bool found = false;
        for (std::size_t i = 0; i <= body.size(); ++i) {
            const int kind = i < body.size() ? boundary_kind(body[i]) : 2;
            if (kind == 0) {
                continue;
            }
            if (open) {
                part(body.subspan(start, i - start), depth);
            }
            if (i < body.size()) {
                found = true;
            }
            if (kind == 2) {
                break;
            }
            open = true;
            start = i + 1;
        }
        return found;
    }

    void part(line_span lines, unsigned depth) {
        headers h;
        const auto body = parse_headers(lines, false, h);
        entity(lines.subspan(body), h, depth + 1);
    }

public:
    /// Every uuencoded block of a message, decoded before its MIME structure is parsed
    /// (ClamAV decodes them first: "uudecode <name>" precedes the part parsing).
    void uuencoded(line_span body) {
        for (std::size_t i = 0; i < body.size(); ++i) {
            if (is_uuencode_begin(body[i])) {
                mime_object object;
                i += decode_uuencode(body.subspan(i + 1), object.bytes);
                if (!object.bytes.empty()) {
                    out_.push_back(std::move(object));
                }
            }
        }
    }

private:
    const mime_limits& limits_;
    std::vector<mime_object>& out_;
    bool complete_ = true;
};

}  // namespace

mail_typing type_mail(std::string_view head, bool complete) {
    bool prefix_of_magic = false;
    for (const auto magic : mail_magic) {
        if (head.substr(0, magic.size()) == magic) {
            return mail_typing::mail;
        }
        if (head.size() < magic.size() && magic.substr(0, head.size()) == head) {
            prefix_of_magic = true;
        }
    }
    for (const auto magic : binary_magic) {
        if (head.substr(0, magic.size()) == magic) {
            return mail_typing::not_mail;
        }
        if (head.size() < magic.size() && magic.substr(0, head.size()) == head) {
            prefix_of_magic = true;
        }
    }
    if (!complete && (prefix_of_magic || head.size() < mail_typing_window)) {
        return mail_typing::undecided;
    }
    return body_format_mail(head.substr(0, mail_typing_window)) ? mail_typing::mail
                                                                : mail_typing::not_mail;
}

namespace {

/// Base64 alphabet value of each byte, -1 for everything else (skipped, as ClamAV's
/// sanitiseBase64 does), -2 for the '=' padding.
constexpr std::array<std::int8_t, 256> base64_values = [] {
    std::array<std::int8_t, 256> table{};
    table.fill(-1);
    for (int i = 0; i < 26; ++i) {
        table[static_cast<std::size_t>('A' + i)] = static_cast<std::int8_t>(i);
        table[static_cast<std::size_t>('a' + i)] = static_cast<std::int8_t>(26 + i);
    }
    for (int i = 0; i < 10; ++i) {
        table[static_cast<std::size_t>('0' + i)] = static_cast<std::int8_t>(52 + i);
    }
    table['+'] = 62;
    table['/'] = 63;
    table['='] = -2;
    return table;
}();

}  // namespace

void decode_base64(std::span<const std::string_view> lines, std::string& out) {
    // Attachments are most of a mail's bytes: decode with a table into presized storage
    // rather than appending byte by byte.
    std::size_t input = 0;
    for (const auto line : lines) {
        input += line.size();
    }
    const std::size_t start = out.size();
    out.resize(start + input / 4 * 3 + 3);
    char* write = out.data() + start;
    unsigned quantum = 0;
    unsigned count = 0;
    const auto flush = [&] {
        // 2 characters give one byte, 3 give two (ClamAV's trailing-bytes export).
        if (count == 2) {
            *write++ = static_cast<char>((quantum >> 4U) & 0xFFU);
        } else if (count == 3) {
            *write++ = static_cast<char>((quantum >> 10U) & 0xFFU);
            *write++ = static_cast<char>((quantum >> 2U) & 0xFFU);
        }
        quantum = 0;
        count = 0;
    };
    for (const auto line : lines) {
        for (const char c : line) {
            const std::int8_t v = base64_values[static_cast<unsigned char>(c)];
            if (v < 0) {
                if (v == -2) {
                    flush();
                }
                continue;  // whitespace and garbage are skipped
            }
            quantum = (quantum << 6U) | static_cast<unsigned>(v);
            if (++count == 4) {
                write[0] = static_cast<char>((quantum >> 16U) & 0xFFU);
                write[1] = static_cast<char>((quantum >> 8U) & 0xFFU);
                write[2] = static_cast<char>(quantum & 0xFFU);
                write += 3;
                quantum = 0;
                count = 0;
            }
        }
    }
    flush();
    out.resize(static_cast<std::size_t>(write - out.data()));
}

void decode_quoted_printable(std::span<const std::string_view> lines, std::string& out) {
    for (const auto line : lines) {
        bool soft = false;
        for (std::size_t i = 0; i < line.size(); ++i) {
            if (line[i] != '=') {
                out += line[i];
                continue;
            }
            if (trim(line.substr(i + 1)).empty()) {
                soft = true;
                break;
            }
            const int high = i + 2 < line.size() ? hex::digit_value(line[i + 1]) : -1;
            const int low = i + 2 < line.size() ? hex::digit_value(line[i + 2]) : -1;
            if (high >= 0 && low >= 0) {
                out += static_cast<char>(high * 16 + low);
                i += 2;
            } else {
                out += '=';
            }
        }
        if (!soft) {
            out += '\n';
        }
    }
}

bool unpack_mail(std::string_view mail, const mime_limits& limits,
                 std::vector<mime_object>& out) {
    const lines_t lines = split_lines(mail);
    const line_span all(lines);
    unpacker worker(limits, out);
    if (mail.substr(0, 5) != "From ") {
        worker.uuencoded(all);
        worker.message(all, 0);
        return worker.complete();
    }
    // mbox: a "From " line after an empty line starts the next message.
    std::size_t start = 0;
    for (std::size_t i = 1; i <= lines.size(); ++i) {
        if (i == lines.size() ||
            (lines[i].substr(0, 5) == "From " && lines[i - 1].empty())) {
            worker.uuencoded(all.subspan(start, i - start));
            worker.message(all.subspan(start, i - start), 0);
            start = i;
        }
    }
    return worker.complete();
}

}  // namespace ringscan::matcher::detail
