// MS-TNEF (winmail.dat), unpacked under ScanMail as libclamav 1.4.6's cli_tnef does.

#include "matcher/unpack/container_io.h"

namespace ringscan::matcher::detail {
namespace {

/// MS-TNEF as libclamav 1.4's cli_tnef reads it: after the signature and a 2-byte key, a
/// list of attributes (level byte, 16-bit tag and type, 32-bit length, data, 16-bit
/// checksum). Attachment data (attAttachData) goes to the current file; a message-level
/// attribute closes it and opens the next, so the attachments between two message
/// attributes come out as one file. A file closed that way is kept only if an attachment
/// title (attAttachTitle) named it ("fileblobDestroy: file not saved" otherwise); the last
/// one is kept in any case. A negative length, an unknown level or an attribute running
/// past the end makes ClamAV skip every file (their scan never starts); a header cut short
/// ends the list and keeps them.
void read_tnef(byte_view data, member_emitter& em) {
    constexpr std::uint8_t message_level = 1;
    constexpr std::uint8_t attachment_level = 2;
    constexpr std::uint16_t attach_data = 0x800f;
    constexpr std::uint16_t attach_title = 0x8010;
    unpack_result& r = em.result();
    if (data.size() < 6) {
        return;  // "cli_tnef: file too small, ignoring"
    }
    std::vector<std::vector<unsigned char>> files;
    std::vector<unsigned char> current;
    bool named = false;
    std::uint64_t at = 6;
    while (at < data.size()) {
        const std::uint8_t level = data[at++];
        if (level == 0) {
            break;
        }
        if (!has(data, at, 8)) {
            break;  // a trailing newline, or "file truncated, returning CLEAN"
        }
        const std::uint16_t tag = le16(data, at);
        const auto length = static_cast<std::int32_t>(le32(data, at + 4));
        at += 8;
        if (length == 0) {
            continue;  // ClamAV reads the next level byte right here, checksum or not
        }
        if (length < 0 || (level != message_level && level != attachment_level) ||
            !has(data, at, static_cast<std::uint64_t>(length))) {
            r.corrupt = true;
            return;
        }
        if (level == message_level) {
            if (named && !current.empty()) {
                files.push_back(std::move(current));
            }
            current.clear();
            named = false;
        } else if (tag == attach_title) {
            named = true;
        } else if (tag == attach_data) {
            current.insert(current.end(), data.begin() + static_cast<std::ptrdiff_t>(at),
                           data.begin() + static_cast<std::ptrdiff_t>(at) + length);
        }
        at += static_cast<std::uint64_t>(length) + 2;
    }
    if (!current.empty()) {
        files.push_back(std::move(current));
    }
    for (const auto& file : files) {
        if (!em.may_start()) {
            return;
        }
        if (file.size() > em.room()) {
            em.skip_too_large();
            continue;
        }
        if (!em.emit("", byte_view(file.data(), file.size()), false)) {
            return;
        }
    }
}

}  // namespace

unpack_result unpack_tnef(byte_view data, const archive_limits& limits, const member_sink& sink) {
    return emit_members(limits, sink, [&](member_emitter& em) { read_tnef(data, em); });
}

}  // namespace ringscan::matcher::detail
