#include "matcher/internal/filetype.h"

#include "matcher/internal/mime.h"
#include "matcher/signatures.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace ringscan::matcher::detail {
namespace {

bool starts_with(std::span<const unsigned char> head, std::string_view magic) {
    return head.size() >= magic.size() &&
           std::equal(magic.begin(), magic.end(), head.begin(),
                      [](char m, unsigned char h) { return static_cast<unsigned char>(m) == h; });
}

}  // namespace

std::uint8_t target_of(std::span<const unsigned char> head) {
    using namespace std::string_view_literals;
    if (starts_with(head, "MZ"sv)) {
        return target::pe;
    }
    if (starts_with(head, "\x7f" "ELF"sv)) {
        return target::elf;
    }
    for (const auto magic : {"\xfe\xed\xfa\xce"sv, "\xfe\xed\xfa\xcf"sv, "\xce\xfa\xed\xfe"sv,
                             "\xcf\xfa\xed\xfe"sv, "\xca\xfe\xba\xbe"sv}) {
        if (starts_with(head, magic)) {
            return target::macho;
        }
    }
    if (starts_with(head, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"sv)) {
        return target::ole2;
    }
    for (const auto magic : {"GIF8"sv, "\x89PNG\r\n\x1a\n"sv, "\xff\xd8\xff"sv, "II*\0"sv,
                             "MM\0*"sv}) {
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
