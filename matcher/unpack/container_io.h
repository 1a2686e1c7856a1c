#pragma once

/// Private to the container unpackers (unpack/archive.cc and the format files it lists):
/// bounds-checked byte reads, the limits accounting every unpacker shares (member_emitter),
/// the zlib/bzip2 stream decoders (decompress.cc) and each format's unpack_function. Helpers
/// are inline because the walks call them per header field and per byte.

#include "matcher/unpack/unpacker.h"

#ifndef ZLIB_CONST
#define ZLIB_CONST
#endif
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

using byte_view = std::span<const unsigned char>;
inline constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();

/// True when [at, at + len) lies inside `d`; never overflows.
inline bool has(byte_view d, std::uint64_t at, std::uint64_t len) {
    return at <= d.size() && len <= d.size() - at;
}

inline std::uint16_t le16(byte_view d, std::uint64_t at) {
    return static_cast<std::uint16_t>(d[at] | (d[at + 1] << 8));
}

inline std::uint32_t le32(byte_view d, std::uint64_t at) {
    return static_cast<std::uint32_t>(le16(d, at)) |
           (static_cast<std::uint32_t>(le16(d, at + 2)) << 16);
}

inline bool starts_with(byte_view d, std::uint64_t at, std::string_view magic) {
    return has(d, at, magic.size()) && std::memcmp(d.data() + at, magic.data(), magic.size()) == 0;
}

/// The C string in a fixed-size field: up to the first NUL.
inline std::string_view c_field(byte_view d, std::uint64_t at, std::uint64_t len) {
    const auto* first = reinterpret_cast<const char*>(d.data() + at);
    const auto* nul = static_cast<const char*>(std::memchr(first, 0, len));
    return {first, nul ? static_cast<std::size_t>(nul - first) : static_cast<std::size_t>(len)};
}

/// sscanf("%o") / sscanf("%x") on a fixed field: leading blanks, then digits of the base.
/// Empty -> invalid. Stops growing past 2^40 (every caller rejects such sizes anyway).
inline std::optional<std::uint64_t> parse_number(byte_view d, std::uint64_t at,
                                                 std::uint64_t len, unsigned base) {
    std::uint64_t i = 0;
    while (i < len && (d[at + i] == ' ' || (d[at + i] >= '\t' && d[at + i] <= '\r'))) {
        ++i;
    }
    std::uint64_t value = 0;
    bool any = false;
    for (; i < len; ++i) {
        const unsigned char c = d[at + i];
        unsigned digit = 0;
        if (c >= '0' && c <= '9') {
            digit = static_cast<unsigned>(c - '0');
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            digit = static_cast<unsigned>(c - 'a' + 10);
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            digit = static_cast<unsigned>(c - 'A' + 10);
        } else {
            break;
        }
        if (digit >= base) {
            break;
        }
        any = true;
        value = std::min<std::uint64_t>(value * base + digit, std::uint64_t{1} << 40);
    }
    if (!any) {
        return std::nullopt;
    }
    return value;
}

/// Applies the limits and hands members to the sink. Lives for one unpack call on the caller's
/// thread; owns the result being built, borrows the limits and the sink.
class member_emitter {
public:
    member_emitter(const archive_limits& limits, const member_sink& sink)
        : limits_(limits), sink_(sink) {}

    unpack_result& result() { return result_; }

    /// Bytes the next member may have before a size limit applies.
    [[nodiscard]] std::uint64_t room() const {
        std::uint64_t r = limits_.max_file_size ? limits_.max_file_size : unlimited;
        if (limits_.max_scan_size) {
            const std::uint64_t left =
                limits_.max_scan_size > result_.bytes ? limits_.max_scan_size - result_.bytes : 0;
            r = std::min(r, left);
        }
        return r;
    }

    /// False once MaxFiles members were delivered (ClamAV: scanned files >= MaxFiles).
    [[nodiscard]] bool may_start() {
        if (limits_.max_files && result_.members >= limits_.max_files) {
            result_.files_limit_hit = true;
            return false;
        }
        return true;
    }

    /// Skips a member whose declared size is over the room (zip, cpio behaviour).
    void skip_too_large() {
        ++result_.skipped_too_large;
        result_.size_limit_hit = true;
    }

    /// Delivers a member; false when the sink asked to stop.
    [[nodiscard]] bool emit(std::string_view name, byte_view bytes, bool truncated) {
        if (bytes.empty()) {
            return true;
        }
        ++result_.members;
        result_.bytes += bytes.size();
        if (sink_(archive_member{name, bytes, truncated}) == sink_action::stop) {
            result_.stopped = true;
            return false;
        }
        return true;
    }

private:
    const archive_limits& limits_;
    const member_sink& sink_;
    unpack_result result_;
};

/// The body of every unpack_function: one member_emitter for the call, filled by `walk(em)`.
template <class Walk>
unpack_result emit_members(const archive_limits& limits, const member_sink& sink,
                           const Walk& walk) {
    member_emitter em(limits, sink);
    walk(em);
    return em.result();
}

// ---------------------------------------------------------------- decompress.cc

enum class stream_end : std::uint8_t { done, cap, truncated, error };

struct inflate_outcome {
    stream_end end = stream_end::error;
    std::uint64_t consumed = 0;  ///< input bytes read up to the end of the stream
};

/// Inflates one zlib stream (raw deflate or gzip by `window_bits`) into `out`, at most `cap`
/// bytes. `header` (gzip only) receives the FNAME field.
inflate_outcome inflate_stream(byte_view in, int window_bits, std::uint64_t cap,
                               std::vector<unsigned char>& out, gz_header* header);

/// Decompresses one bzip2 stream into `out`, at most `cap` bytes.
inflate_outcome bunzip_stream(byte_view in, std::uint64_t cap, std::vector<unsigned char>& out);

/// Delivers a decompressed member according to how its stream ended. Output over a limit is
/// delivered cut (zip: "trimming output size to maxfilesize") or not at all (gzip, bzip2:
/// clamscan 1.4.6 refuses the whole temporary file, "GZip: filesize exceeded").
void emit_decoded(member_emitter& em, std::string_view name,
                  const std::vector<unsigned char>& out, stream_end end, bool skip_when_cut);

// ---------------------------------------------------------------- tar.cc

inline constexpr std::uint64_t tar_block = 512;

/// Header checksum as POSIX (unsigned bytes) or old tars (signed bytes) compute it; also how
/// detect_archive recognizes an old tar.
[[nodiscard]] bool tar_checksum_ok(byte_view header, std::uint64_t at);

// ---------------------------------------------------------------- the formats (one file each)

/// Every unpacker has the unpack_function signature (unpacker.h); declared through one
/// function type so the list stays one name per format.
using unpack_signature = unpack_result(byte_view data, const archive_limits& limits,
                                       const member_sink& sink);
unpack_signature unpack_gzip, unpack_bzip2, unpack_zip, unpack_tar_posix, unpack_tar_old,
    unpack_cpio_newc, unpack_cpio_crc, unpack_cpio_odc, unpack_cpio_old_le, unpack_cpio_old_be,
    unpack_tnef, unpack_szdd;

}  // namespace ringscan::matcher::detail
