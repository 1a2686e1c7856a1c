#include "matcher/unpack/filetype.h"

#include "matcher/model/signature_set.h"
#include "matcher/unpack/mime.h"
#include "matcher/unpack/normalize.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

bool starts_with(std::span<const unsigned char> head, std::string_view magic) {
    return head.size() >= magic.size() &&
           std::equal(magic.begin(), magic.end(), head.begin(),
                      [](char m, unsigned char h) { return static_cast<unsigned char>(m) == h; });
}

bool contains(std::span<const unsigned char> bytes, std::string_view needle) {
    return std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end(),
                       [](unsigned char h, char m) {
                           return h == static_cast<unsigned char>(m);
                       }) != bytes.end();
}

struct magic {
    std::size_t offset;
    std::string_view bytes;
    bool graphics;
};

using namespace std::string_view_literals;

// The offset-anchored ("0:") entries of ClamAV's built-in file-type table (filetypes_int.h):
// when one matches, the object has that type and is neither text nor HTML.
constexpr magic anchored_magic[] = {
    {0, "\0\0\0\x0cjP  \r\n\x87\n"sv, true},  // JPEG 2000
    {0, "\0\0\x01\xb3"sv, false},
    {0, "\0\0\x01\xba"sv, false},
    {0, "\x1f\x8b"sv, false},
    {0, "#@~^"sv, false},
    {0, "%!PS-Adobe-"sv, false},
    {0, "(This file must be converted with BinHex 4.0)"sv, false},
    {0, ".RMF"sv, false},
    {0, ">From "sv, false},
    {0, "BM"sv, true},
    {0, "BZh"sv, false},
    {0, "Date: "sv, false},
    {0, "Delivered-To: "sv, false},
    {0, "Delivery-date: "sv, false},
    {0, "Envelope-to: "sv, false},
    {0, "For: "sv, false},
    {0, "From "sv, false},
    {0, "From: "sv, false},
    {0, "GIF"sv, true},
    {0, "Hi. This is the qmail-send"sv, false},
    {0, "ID3"sv, false},
    {0, "ITSF"sv, false},
    {0, "MZ"sv, false},
    {0, "Message-ID: "sv, false},
    {0, "Message-Id: "sv, false},
    {0, "OggS"sv, false},
    {0, "PK\x03\x04"sv, false},
    {0, "PK00PK\x03\x04"sv, false},
    {0, "RIFF"sv, false},
    {0, "RIFX"sv, false},
    {0, "Rar!"sv, false},
    {0, "Received: "sv, false},
    {0, "Return-Path: "sv, false},
    {0, "Return-path: "sv, false},
    {0, "SZDD"sv, false},
    {0, "Subject: "sv, false},
    {0, "To: "sv, false},
    {0, "X-Apparently-To: "sv, false},
    {0, "X-EVS"sv, false},
    {0, "X-Envelope-From: "sv, false},
    {0, "X-Original-To: "sv, false},
    {0, "X-Real-To: "sv, false},
    {0, "X-Sieve: "sv, false},
    {0, "X-Symantec-"sv, false},
    {0, "X-UIDL: "sv, false},
    {0, "\x60\xea"sv, false},
    {0, "begin "sv, false},
    {0, "v:\nReceived: "sv, false},
    {0, "v:\r\nReceived: "sv, false},
    {0, "\x78\x9f\x3e\x22"sv, false},
    {0, "\177ELF"sv, false},
    {0, "\x89PNG"sv, true},
    {0, "\xb6\xb9\xac\xae\xfe\xff\xff\xff"sv, false},
    {0, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"sv, false},
    {0, "\xff\xd8\xff"sv, true},
    {0, "\xff\xfb\x90"sv, false},
    {0, "SIP-HIT (SIP/H"sv, false},
    {0, "{\\rt"sv, false},
    {257, "ustar"sv, false},
    {0, "[aliases]"sv, false},
    {0, "\xce\xfa\xed\xfe"sv, false},
    {0, "\xcf\xfa\xed\xfe"sv, false},
    {0, "\xfe\xed\xfa\xce"sv, false},
    {0, "\xfe\xed\xfa\xcf"sv, false},
    {0, "\xca\xfe\xba\xbe"sv, false},
    {0, "7z\xbc\xaf\x27\x1c"sv, false},
    {0, "Received-SPF: "sv, false},
    {0, "070701"sv, false},
    {0, "070702"sv, false},
    {0, "070707"sv, false},
    {0, "\x71\xc7"sv, false},
    {0, "\xc7\x71"sv, false},
    {0, "%PDF-"sv, false},
    {0, "SYMC\x01\0"sv, false},
    {0, "\x37\x7f\x06\x82\0\x2d\xe2\x18"sv, false},
    {0, "\x37\x7f\x06\x83\0\x2d\xe2\x18"sv, false},
    {0, "SQLite format 3\0"sv, false},
    {0, "\xd9\xd5\x05\xf9\x20\xa1\x63\xd7"sv, false},
    {0, "ZWS"sv, false},
    {0, "CWS"sv, false},
    {0, "FWS"sv, false},
    {0, "MSCF\0\0\0\0"sv, false},
    {0, "xar!"sv, false},
    {0, "\3757zXZ\0"sv, false},
    {512, "EFI PART"sv, false},
    {0, "{ \"Magic\": \"CLAMJSONv0\""sv, false},
    {0, "II*\0"sv, true},
    {0, "MM"sv, true},
    {4, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"sv, false},
    {0, "HWP Document File V3.00 \x1a\x01\x02\x03\x04\x05"sv, false},
    {0, "L\0\0\0\x01\x14\x02\0\0\0\0\0\xc0\0\0\0\0\0\0\x46"sv, false},
    {0, "EGGA"sv, false},
};

// Self-extractor markers ("1:*:" entries of a type above CL_TYPE_SFX): found in the typing
// window they keep an HTML signature from typing the object (clamscan 1.4.6 keeps it text).
constexpr std::string_view sfx_markers[] = {
    "PK\x03\x04"sv,
    "Rar!\x1a\x07\0"sv,
    "7z\xbc\xaf\x27\x1c"sv,
    "MSCF\0\0\0\0"sv,
    "\xef\xbe\xad\xdeNullsoftInst"sv,
};

/// `MZ{60-300}PE\0\0` (the "1:" PE entry): CL_TYPE_MSEXE wins over any other window type.
bool has_embedded_pe(std::span<const unsigned char> window) {
    for (std::size_t i = 0; i + 2 + 60 + 4 <= window.size(); ++i) {
        if (window[i] != 'M' || window[i + 1] != 'Z') {
            continue;
        }
        for (std::size_t gap = 60; gap <= 300 && i + 2 + gap + 4 <= window.size(); ++gap) {
            if (starts_with(window.subspan(i + 2 + gap), "PE\0\0"sv)) {
                return true;
            }
        }
    }
    return false;
}

/// The "1:" entries of types below CL_TYPE_HTML that make an object without an HTML
/// signature something other than text: PDF (`%PDF-??.`), XDP, Word/Excel 2003 XML, MHTML.
bool has_lesser_window_type(std::span<const unsigned char> window) {
    for (const auto pdf : {"%PDF-"sv, "%pdf-"sv}) {
        for (auto at = window.begin();;) {
            at = std::search(at, window.end(), pdf.begin(), pdf.end(), [](unsigned char h, char m) {
                return h == static_cast<unsigned char>(m);
            });
            if (at == window.end()) {
                break;
            }
            if (window.end() - at >= 7 && at[6] == '.') {  // %PDF-?.
                return true;
            }
            ++at;
        }
    }
    if (contains(window, "<xdp:xdp"sv)) {
        return true;
    }
    if (starts_with(window, "<?xml version=\"1.0\""sv) &&
        (contains(window, "wordDocument"sv) || contains(window, "Workbook"sv) ||
         contains(window, "progid=\"Word.Document\"?>"sv))) {
        return true;
    }
    // MHTML: [Mm][Ii][Mm][Ee]-[Vv]ersion: then "\n[Cc]ontent-[Tt]ype: " within 1 KiB.
    const auto lower = [](unsigned char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c + 32) : c;
    };
    const auto folded_at = [&](std::size_t at, std::string_view word) {
        if (at + word.size() > window.size()) {
            return false;
        }
        for (std::size_t i = 0; i < word.size(); ++i) {
            const unsigned char c = window[at + i];
            const bool fold = i == 0 || (word == "mime-version: "sv && (i < 4 || i == 5)) ||
                              (word == "content-type: "sv && i == 8);
            if ((fold ? lower(c) : c) != static_cast<unsigned char>(word[i])) {
                return false;
            }
        }
        return true;
    };
    for (std::size_t i = 0; i < window.size(); ++i) {
        if ((i == 0 || window[i - 1] == '\n') && folded_at(i, "mime-version: "sv)) {
            for (std::size_t j = i + 14; j < window.size() && j <= i + 14 + 1024; ++j) {
                if (window[j] == '\n' && folded_at(j + 1, "content-type: "sv)) {
                    return true;
                }
            }
        }
    }
    return false;
}

}  // namespace

content_kind classify_content(std::span<const unsigned char> head) {
    const auto window = head.first(std::min(head.size(), file_type_window));
    for (const magic& m : anchored_magic) {
        if (m.offset <= window.size() && starts_with(window.subspan(m.offset), m.bytes)) {
            return m.graphics ? content_kind::graphics : content_kind::other;
        }
    }
    if (has_embedded_pe(window)) {
        return content_kind::other;
    }
    const bool sfx = std::any_of(std::begin(sfx_markers), std::end(sfx_markers),
                                 [&](std::string_view marker) { return contains(window, marker); });
    if (!sfx && has_html_signature(window)) {
        return content_kind::html;
    }
    if (has_lesser_window_type(window)) {
        return content_kind::other;
    }
    if (has_html_signature(fold_utf16_to_ascii(window))) {
        return content_kind::html_utf16;
    }
    if (window.size() >= 2 && window[0] == 0xfe && window[1] == 0xff) {
        // A big-endian byte-order mark: ClamAV decodes the head exactly and looks again.
        std::vector<unsigned char> decoded;
        for (std::size_t i = 2; i + 1 < window.size(); i += 2) {
            if (window[i] == 0) {
                decoded.push_back(window[i + 1]);
            }
        }
        if (has_html_signature(decoded)) {
            return content_kind::html;
        }
    }
    switch (classify_text(window)) {
        case text_kind::ascii:
        case text_kind::utf8:
            return content_kind::text;
        case text_kind::utf16le:
        case text_kind::utf16be:
            return content_kind::text_utf16;
        case text_kind::binary:
            break;
    }
    return content_kind::binary;
}

bool has_leading_magic(std::span<const unsigned char> head) {
    return std::any_of(std::begin(anchored_magic), std::end(anchored_magic),
                       [&](const magic& m) { return m.offset == 0 && starts_with(head, m.bytes); });
}

bool retypes_as_html(std::span<const unsigned char> bytes) {
    return has_html_signature(bytes) &&
           std::none_of(std::begin(sfx_markers), std::end(sfx_markers),
                        [&](std::string_view marker) { return contains(bytes, marker); });
}

std::uint8_t target_of(std::span<const unsigned char> head) {
    using namespace std::string_view_literals;
    if (starts_with(head, "MZ"sv)) {
        return target::pe;
    }
    if (starts_with(head, "\177ELF"sv)) {
        return target::elf;
    }
    for (const auto magic : {"\xfe\xed\xfa\xce"sv, "\xfe\xed\xfa\xcf"sv, "\xce\xfa\xed\xfe"sv,
                             "\xcf\xfa\xed\xfe"sv}) {
        if (starts_with(head, magic)) {
            return target::macho;
        }
    }
    // 0xcafebabe is both a fat Mach-O and a Java class; ClamAV's table ("1:0:cafebabe0000000?"
    // .. "0000003?") tells them apart by the next word: an architecture count below 0x20, or
    // a class file major version 0x20..0x3f.
    if (starts_with(head, "\xca\xfe\xba\xbe\0\0\0"sv) && head.size() >= 8 && head[7] < 0x40) {
        return head[7] < 0x20 ? target::macho : target::java;
    }
    if (starts_with(head, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"sv)) {
        return target::ole2;
    }
    for (const auto magic :
         {"GIF8"sv, "\x89PNG\r\n\x1a\n"sv, "\xff\xd8\xff"sv, "II*\0"sv, "MM\0*"sv}) {
        if (starts_with(head, magic)) {
            return target::graphics;
        }
    }
    for (const auto magic : {"FWS"sv, "CWS"sv, "ZWS"sv}) {
        if (starts_with(head, magic)) {
            return target::flash;
        }
    }
    const auto window = head.first(std::min(head.size(), file_type_window));
    constexpr std::string_view pdf = "%PDF-";
    if (std::search(window.begin(), window.end(), pdf.begin(), pdf.end(),
                    [](unsigned char h, char m) { return h == static_cast<unsigned char>(m); }) !=
        window.end()) {
        return target::pdf;
    }
    // Mail last: ClamAV's magic table puts binary formats first, and a mail's header
    // lines are only recognised as such when nothing else claimed the bytes.
    if (type_mail(std::string_view(reinterpret_cast<const char*>(head.data()),
                                   std::min(head.size(), mail_typing_window)),
                  true) == mail_typing::mail) {
        return target::mail;
    }
    return target::any;
}

std::uint8_t target_of_type_name(std::string_view type_name) {
    struct named_target {
        std::string_view type_name;
        std::uint8_t target;
    };
    static constexpr named_target targets[] = {
        {"CL_TYPE_MSEXE", target::pe},        {"CL_TYPE_MSOLE2", target::ole2},
        {"CL_TYPE_HTML", target::html},       {"CL_TYPE_MAIL", target::mail},
        {"CL_TYPE_GRAPHICS", target::graphics}, {"CL_TYPE_GIF", target::graphics},
        {"CL_TYPE_PNG", target::graphics},    {"CL_TYPE_JPEG", target::graphics},
        {"CL_TYPE_TIFF", target::graphics},   {"CL_TYPE_ELF", target::elf},
        {"CL_TYPE_TEXT_ASCII", target::text}, {"CL_TYPE_MACHO", target::macho},
        {"CL_TYPE_MACHO_UNIBIN", target::macho}, {"CL_TYPE_PDF", target::pdf},
        {"CL_TYPE_SWF", target::flash},       {"CL_TYPE_JAVA", target::java},
        {"CL_TYPE_INTERNAL", target::internal},
    };
    for (const auto& entry : targets) {
        if (entry.type_name == type_name) {
            return entry.target;
        }
    }
    return target::any;
}

std::string_view type_name_of(std::span<const unsigned char> head, content_kind kind) {
    using namespace std::string_view_literals;
    switch (kind) {
        case content_kind::html:
        case content_kind::html_utf16:
            return "CL_TYPE_HTML";
        case content_kind::text:
            return std::all_of(head.begin(), head.end(), [](unsigned char c) { return c < 0x80; })
                       ? "CL_TYPE_TEXT_ASCII"
                       : "CL_TYPE_TEXT_UTF8";
        case content_kind::text_utf16:
            // Without a byte-order mark ClamAV calls it binary data (and still normalizes it).
            if (starts_with(head, "\xff\xfe"sv)) {
                return "CL_TYPE_TEXT_UTF16LE";
            }
            return starts_with(head, "\xfe\xff"sv) ? "CL_TYPE_TEXT_UTF16BE" : "CL_TYPE_BINARY_DATA";
        case content_kind::binary:
            return "CL_TYPE_BINARY_DATA";
        case content_kind::graphics:
        case content_kind::other:
            break;
    }
    if (starts_with(head, "GIF"sv)) {
        return "CL_TYPE_GIF";
    }
    if (starts_with(head, "\x89PNG"sv)) {
        return "CL_TYPE_PNG";
    }
    if (starts_with(head, "\xff\xd8\xff"sv)) {
        return "CL_TYPE_JPEG";
    }
    if (starts_with(head, "II*\0"sv) || starts_with(head, "MM\0*"sv)) {
        return "CL_TYPE_TIFF";
    }
    if (kind == content_kind::graphics) {
        return "CL_TYPE_GRAPHICS";
    }
    switch (target_of(head)) {
        case target::pe: return "CL_TYPE_MSEXE";
        case target::elf: return "CL_TYPE_ELF";
        case target::macho:
            return starts_with(head, "\xca\xfe\xba\xbe"sv) ? "CL_TYPE_MACHO_UNIBIN" : "CL_TYPE_MACHO";
        case target::java: return "CL_TYPE_JAVA";
        case target::ole2: return "CL_TYPE_MSOLE2";
        case target::flash: return "CL_TYPE_SWF";
        case target::pdf: return "CL_TYPE_PDF";
        default: return {};
    }
}

bool executable_header_ok(std::uint8_t type, std::span<const unsigned char> head) {
    switch (type) {
        case target::pe: {
            // e_lfanew (at 0x3c) points at "PE\0\0".
            constexpr std::size_t lfanew_at = 0x3c;
            if (head.size() < lfanew_at + 4) {
                return false;
            }
            std::uint32_t lfanew = 0;
            for (std::size_t i = 0; i < 4; ++i) {
                lfanew |= static_cast<std::uint32_t>(head[lfanew_at + i]) << (8 * i);
            }
            return lfanew <= head.size() - 4 && head[lfanew] == 'P' && head[lfanew + 1] == 'E' &&
                   head[lfanew + 2] == 0 && head[lfanew + 3] == 0;
        }
        case target::elf:
            // ELF32 header is 52 bytes, ELF64 64; EI_CLASS must be 1 or 2.
            return head.size() >= 5 &&
                   ((head[4] == 1 && head.size() >= 52) || (head[4] == 2 && head.size() >= 64));
        case target::macho:
            return head.size() >= 28;
        default:
            return true;
    }
}

}  // namespace ringscan::matcher::detail
