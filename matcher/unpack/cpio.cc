// cpio (libclamav cpio.c, 1.4): newc/crc hex fields padded to 4, odc octal unpadded, old
// binary 16-bit words padded to 2 (only regular files scanned there); empty entries skipped;
// the walk ends at a zero header after "TRAILER!!!"; a member over a limit is skipped.

#include "matcher/unpack/container_io.h"

namespace ringscan::matcher::detail {
namespace {

/// The name stored after a cpio header: ClamAV keeps at most 512 chars and drops the
/// terminating byte.
std::string_view cpio_name(byte_view data, std::uint64_t at, std::uint64_t name_size) {
    const std::uint64_t kept = std::min<std::uint64_t>(name_size, 513);
    return c_field(data, at, kept - 1);
}

/// Delivers a cpio member of `size` bytes at `at`; false when unpacking must end.
bool cpio_member(byte_view data, member_emitter& em, std::string_view name, std::uint64_t at,
                 std::uint64_t size) {
    unpack_result& r = em.result();
    if (!em.may_start()) {
        return false;
    }
    if (size > em.room()) {
        em.skip_too_large();
        return true;
    }
    const std::uint64_t available = at <= data.size() ? std::min(size, data.size() - at) : 0;
    if (available < size) {
        r.corrupt = true;
    }
    if (available == 0) {
        return false;  // the input ended at the member's data
    }
    return em.emit(name,
                   data.subspan(static_cast<std::size_t>(at), static_cast<std::size_t>(available)),
                   available < size);
}

/// newc and crc (`newc`: hex fields, 4-byte padding) or odc (octal, unpadded), by `magic`.
void read_cpio_ascii(byte_view data, member_emitter& em, std::string_view magic, bool newc) {
    unpack_result& r = em.result();
    const std::uint64_t header_size = newc ? 110 : 76;
    const unsigned base = newc ? 16 : 8;
    bool trailer = false;
    std::uint64_t at = 0;
    while (has(data, at, header_size)) {
        const std::uint64_t header = at;
        at += header_size;
        if (data[header] == 0 && trailer) {
            return;
        }
        if (!starts_with(data, header, magic)) {
            r.corrupt = true;
            return;
        }
        const auto name_size = newc ? parse_number(data, header + 94, 8, base)
                                    : parse_number(data, header + 59, 6, base);
        if (!name_size) {
            r.corrupt = true;
            return;
        }
        std::string_view name;
        if (*name_size != 0) {
            if (!has(data, at, std::min<std::uint64_t>(*name_size, 513))) {
                r.corrupt = true;
                return;
            }
            name = cpio_name(data, at, *name_size);
            trailer = trailer || name == "TRAILER!!!";
            at += *name_size;
            if (newc) {
                at += (4 - (header_size + *name_size) % 4) % 4;
            }
        }
        const auto size = newc ? parse_number(data, header + 54, 8, base)
                               : parse_number(data, header + 65, 11, base);
        if (!size) {
            r.corrupt = true;
            return;
        }
        if (*size == 0) {
            continue;
        }
        if (!cpio_member(data, em, name, at, *size)) {
            return;
        }
        at += newc ? (*size + 3) / 4 * 4 : *size;
    }
    if (at < data.size() && !trailer) {
        r.corrupt = true;  // a partial header
    }
}

void read_cpio_binary(byte_view data, member_emitter& em, bool big_endian) {
    unpack_result& r = em.result();
    constexpr std::uint64_t header_size = 26;
    const auto word = [&](std::uint64_t at) -> std::uint32_t {
        return big_endian ? static_cast<std::uint32_t>((data[at] << 8) | data[at + 1])
                          : static_cast<std::uint32_t>(data[at] | (data[at + 1] << 8));
    };
    bool trailer = false;
    std::uint64_t at = 0;
    while (has(data, at, header_size)) {
        const std::uint64_t header = at;
        at += header_size;
        const std::uint32_t magic = word(header);
        if (magic == 0 && trailer) {
            return;
        }
        if (magic != 070707) {
            r.corrupt = true;
            return;
        }
        const std::uint64_t name_size = word(header + 20);
        std::string_view name;
        if (name_size != 0) {
            if (!has(data, at, std::min<std::uint64_t>(name_size, 513))) {
                r.corrupt = true;
                return;
            }
            name = cpio_name(data, at, name_size);
            trailer = trailer || name == "TRAILER!!!";
            at += name_size + name_size % 2;
        }
        const std::uint64_t size = (std::uint64_t{word(header + 22)} << 16) | word(header + 24);
        if (size == 0) {
            continue;
        }
        const bool regular = (word(header + 6) & 0170000U) == 0100000U;
        if (regular && !cpio_member(data, em, name, at, size)) {
            return;
        }
        at += size + size % 2;
    }
    if (at < data.size() && !trailer) {
        r.corrupt = true;
    }
}

}  // namespace

unpack_result unpack_cpio_newc(byte_view data, const archive_limits& limits,
                               const member_sink& sink) {
    return emit_members(limits, sink,
                        [&](member_emitter& em) { read_cpio_ascii(data, em, "070701", true); });
}

unpack_result unpack_cpio_crc(byte_view data, const archive_limits& limits,
                              const member_sink& sink) {
    return emit_members(limits, sink,
                        [&](member_emitter& em) { read_cpio_ascii(data, em, "070702", true); });
}

unpack_result unpack_cpio_odc(byte_view data, const archive_limits& limits,
                              const member_sink& sink) {
    return emit_members(limits, sink,
                        [&](member_emitter& em) { read_cpio_ascii(data, em, "070707", false); });
}

unpack_result unpack_cpio_old_le(byte_view data, const archive_limits& limits,
                                 const member_sink& sink) {
    return emit_members(limits, sink,
                        [&](member_emitter& em) { read_cpio_binary(data, em, false); });
}

unpack_result unpack_cpio_old_be(byte_view data, const archive_limits& limits,
                                 const member_sink& sink) {
    return emit_members(limits, sink,
                        [&](member_emitter& em) { read_cpio_binary(data, em, true); });
}

}  // namespace ringscan::matcher::detail
