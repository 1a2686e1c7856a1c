// tar (libclamav untar.c, 1.4): 512-byte headers; a header whose first byte is NUL ends the
// archive; a header with a bad checksum is skipped block by block; POSIX tar stops at a header
// without "ustar"; sizes are octal; the name is the 100-byte field only; metadata entries
// (K L N A E I g x X) are skipped with their data; links, directories, devices and volume
// labels have no data to skip. A member over a size limit is written in 512-byte blocks while
// it stays within the limit, and that prefix is scanned. Not implemented: GNU base-256 sizes
// (ClamAV skips them).

#include "matcher/unpack/container_io.h"

namespace ringscan::matcher::detail {
namespace {

void read_tar(byte_view data, member_emitter& em, bool posix) {
    unpack_result& r = em.result();
    // ClamAV reads sizes into an int: larger ones count as invalid.
    constexpr std::uint64_t max_size = std::numeric_limits<std::int32_t>::max();
    std::uint64_t at = 0;
    while (at < data.size()) {
        if (data[at] == 0) {
            return;  // end-of-archive block
        }
        if (!has(data, at, tar_block)) {
            r.corrupt = true;
            return;
        }
        const std::uint64_t header = at;
        at += tar_block;
        if (!tar_checksum_ok(data, header)) {
            r.corrupt = true;  // ClamAV tries the next block as a header
            continue;
        }
        if (posix && !starts_with(data, header + 257, "ustar")) {
            r.corrupt = true;
            return;
        }
        bool skip = false;
        switch (data[header + 156]) {
            case '1':
            case '2':
            case '3':
            case '4':
            case '5':
            case '6':
            case 'V':
                continue;  // no data blocks follow (ClamAV does not skip any)
            case 'K':
            case 'L':
            case 'N':
            case 'A':
            case 'E':
            case 'I':
            case 'g':
            case 'x':
            case 'X':
                skip = true;
                break;
            default:
                break;  // regular file, contiguous file, continuation, unknown
        }
        const std::optional<std::uint64_t> parsed = parse_number(data, header + 124, 12, 8);
        std::uint64_t size = 0;
        if (!parsed || *parsed > max_size) {
            skip = true;
        } else {
            size = *parsed;
        }
        // Data is padded to whole blocks; ClamAV skips one block for a skipped empty entry.
        const std::uint64_t padded =
            (size % tar_block != 0 || size == 0) ? size + tar_block - size % tar_block : size;
        if (skip) {
            at += padded;
            continue;
        }
        if (size != 0) {
            if (!em.may_start()) {
                return;
            }
            const std::uint64_t room = em.room();
            std::uint64_t take = size;
            bool cut = false;
            if (size > room) {
                take = room / tar_block * tar_block;  // whole blocks within the limit
                cut = true;
                r.size_limit_hit = true;
            }
            const std::uint64_t available = std::min(take, data.size() - at);
            const bool short_input = available < take;
            r.corrupt = r.corrupt || short_input;
            const std::string_view name = c_field(data, header, 100);
            if (!em.emit(
                    name,
                    data.subspan(static_cast<std::size_t>(at), static_cast<std::size_t>(available)),
                    cut || short_input)) {
                return;
            }
            if (!has(data, at, size)) {
                r.corrupt = true;
                return;
            }
        } else {
            continue;  // empty file: header only
        }
        at += padded;
    }
}

}  // namespace

bool tar_checksum_ok(byte_view header, std::uint64_t at) {
    const std::optional<std::uint64_t> stored = parse_number(header, at + 148, 8, 8);
    if (!stored) {
        return false;
    }
    std::int64_t unsigned_sum = 0;
    std::int64_t signed_sum = 0;
    for (std::uint64_t i = 0; i < tar_block; ++i) {
        const unsigned char c = (i >= 148 && i < 156) ? ' ' : header[at + i];
        unsigned_sum += c;
        signed_sum += static_cast<signed char>(c);
    }
    const auto want = static_cast<std::int64_t>(*stored);
    return want == unsigned_sum || want == signed_sum;
}

unpack_result unpack_tar_posix(byte_view data, const archive_limits& limits,
                               const member_sink& sink) {
    return emit_members(limits, sink, [&](member_emitter& em) { read_tar(data, em, true); });
}

unpack_result unpack_tar_old(byte_view data, const archive_limits& limits,
                             const member_sink& sink) {
    return emit_members(limits, sink, [&](member_emitter& em) { read_tar(data, em, false); });
}

}  // namespace ringscan::matcher::detail
