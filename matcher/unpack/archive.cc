#include "matcher/unpack/archive.h"

#define ZLIB_CONST
#include <algorithm>
#include <array>
#include <bzlib.h>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>
#include <zlib.h>

/*
 * Layouts and ClamAV behaviour followed here (libclamav as specification, 1.4):
 *  - tar (untar.c): 512-byte headers; a header whose first byte is NUL ends the archive; a
 *    header with a bad checksum is skipped block by block; POSIX tar stops at a header
 *    without "ustar"; sizes are octal; the name is the 100-byte field only; metadata
 *    entries (K L N A E I g x X) are skipped with their data; links, directories, devices
 *    and volume labels have no data to skip. A member over a size limit is written in
 *    512-byte blocks while it stays within the limit, and that prefix is scanned.
 *  - zip (unzip.c): central directory entries sorted by local header offset; exact
 *    duplicates skipped, more than 5 overlapping entries abort; no central directory ->
 *    walk local headers. Members over a limit are skipped; encrypted ones too (no
 *    password list here).
 *  - cpio (cpio.c): newc/crc hex fields padded to 4, odc octal unpadded, old binary 16-bit
 *    words padded to 2 (only regular files scanned there); empty entries skipped; the
 *    walk ends at a zero header after "TRAILER!!!"; a member over a limit is skipped.
 *  - gzip / bzip2 (scanners.c): one stream inflated; output over a limit is not scanned at
 *    all (checked with clamscan 1.4.6); on a stream error what was inflated so far is.
 * Not implemented: zip methods other than stored/deflate/bzip2 (ClamAV also does deflate64
 * and implode), zip64, ZIP password list, tar with GNU base-256 sizes (ClamAV skips them).
 */

namespace ringscan::matcher::detail {
namespace {

using byte_view = std::span<const unsigned char>;
constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();

/// True when [at, at + len) lies inside `d`; never overflows.
bool has(byte_view d, std::uint64_t at, std::uint64_t len) {
    return at <= d.size() && len <= d.size() - at;
}

std::uint16_t le16(byte_view d, std::uint64_t at) {
    return static_cast<std::uint16_t>(d[at] | (d[at + 1] << 8));
}

std::uint32_t le32(byte_view d, std::uint64_t at) {
    return static_cast<std::uint32_t>(le16(d, at)) |
           (static_cast<std::uint32_t>(le16(d, at + 2)) << 16);
}

bool starts_with(byte_view d, std::uint64_t at, std::string_view magic) {
    return has(d, at, magic.size()) && std::memcmp(d.data() + at, magic.data(), magic.size()) == 0;
}

/// The C string in a fixed-size field: up to the first NUL.
std::string_view c_field(byte_view d, std::uint64_t at, std::uint64_t len) {
    const auto* first = reinterpret_cast<const char*>(d.data() + at);
    const auto* nul = static_cast<const char*>(std::memchr(first, 0, len));
    return {first, nul ? static_cast<std::size_t>(nul - first) : static_cast<std::size_t>(len)};
}

/// sscanf("%o") / sscanf("%x") on a fixed field: leading blanks, then digits of the base.
/// Empty -> invalid. Stops growing past 2^40 (every caller rejects such sizes anyway).
std::optional<std::uint64_t> parse_number(byte_view d, std::uint64_t at, std::uint64_t len,
                                          unsigned base) {
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

/// Applies the limits and hands members to the sink; owns the result being built.
class emitter {
public:
    emitter(const archive_limits& limits, const member_sink& sink) : limits_(limits), sink_(sink) {}

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

enum class stream_end : std::uint8_t { done, cap, truncated, error };

struct inflate_outcome {
    stream_end end = stream_end::error;
    std::uint64_t consumed = 0;  ///< input bytes read up to the end of the stream
};

/// Grows `out` towards `cap` for the next decompression step; false when it is at the cap.
bool grow(std::vector<unsigned char>& out, std::uint64_t used, std::uint64_t cap) {
    if (used >= cap) {
        return false;
    }
    constexpr std::uint64_t first_step = 64 * 1024;
    constexpr std::uint64_t max_step = 16ULL << 20;
    const std::uint64_t step = std::clamp<std::uint64_t>(used, first_step, max_step);
    const std::uint64_t want = cap - used < step ? cap : used + step;
    out.resize(static_cast<std::size_t>(want));
    return true;
}

constexpr std::uint64_t max_chunk = 1U << 30;  // zlib and bzlib count in 32-bit unsigned

/// Inflates one zlib stream (raw deflate or gzip by `window_bits`) into `out`, at most `cap`
/// bytes. `header` (gzip only) receives the FNAME field.
inflate_outcome inflate_stream(byte_view in, int window_bits, std::uint64_t cap,
                               std::vector<unsigned char>& out, gz_header* header) {
    out.clear();
    z_stream z{};
    if (inflateInit2(&z, window_bits) != Z_OK) {
        return {};
    }
    if (header != nullptr) {
        inflateGetHeader(&z, header);
    }
    std::uint64_t fed = 0;
    std::uint64_t used = 0;
    inflate_outcome outcome;
    for (;;) {
        if (z.avail_in == 0 && fed < in.size()) {
            const std::uint64_t n = std::min<std::uint64_t>(in.size() - fed, max_chunk);
            z.next_in = in.data() + fed;
            z.avail_in = static_cast<uInt>(n);
            fed += n;
        }
        if (z.avail_out == 0) {
            if (!grow(out, used, cap)) {
                // At the cap: the stream may still end here without more output.
                unsigned char probe = 0;
                z.next_out = &probe;
                z.avail_out = 1;
                const int ret = inflate(&z, Z_NO_FLUSH);
                outcome.end =
                    ret == Z_STREAM_END && z.avail_out == 1 ? stream_end::done : stream_end::cap;
                break;
            }
            const std::uint64_t n = std::min<std::uint64_t>(out.size() - used, max_chunk);
            z.next_out = out.data() + used;
            z.avail_out = static_cast<uInt>(n);
        }
        const uInt before = z.avail_out;
        const int ret = inflate(&z, Z_NO_FLUSH);
        used += before - z.avail_out;
        if (ret == Z_STREAM_END) {
            outcome.end = stream_end::done;
            break;
        }
        if (ret == Z_BUF_ERROR || (ret == Z_OK && z.avail_in == 0 && z.avail_out != 0)) {
            if (z.avail_in == 0 && fed >= in.size()) {
                outcome.end = stream_end::truncated;
                break;
            }
            if (ret == Z_BUF_ERROR && z.avail_out != 0 && z.avail_in != 0) {
                outcome.end = stream_end::error;
                break;
            }
            continue;
        }
        if (ret != Z_OK) {
            outcome.end = stream_end::error;
            break;
        }
    }
    outcome.consumed = fed - z.avail_in;
    out.resize(static_cast<std::size_t>(used));
    inflateEnd(&z);
    return outcome;
}

/// Decompresses one bzip2 stream into `out`, at most `cap` bytes.
inflate_outcome bunzip_stream(byte_view in, std::uint64_t cap, std::vector<unsigned char>& out) {
    out.clear();
    bz_stream bz{};
    if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK) {
        return {};
    }
    std::uint64_t fed = 0;
    std::uint64_t used = 0;
    inflate_outcome outcome;
    for (;;) {
        if (bz.avail_in == 0 && fed < in.size()) {
            const std::uint64_t n = std::min<std::uint64_t>(in.size() - fed, max_chunk);
            // bzlib never writes through next_in; its API just lacks the const.
            bz.next_in = const_cast<char*>(reinterpret_cast<const char*>(in.data() + fed));
            bz.avail_in = static_cast<unsigned>(n);
            fed += n;
        }
        if (bz.avail_out == 0) {
            if (!grow(out, used, cap)) {
                char probe = 0;
                bz.next_out = &probe;
                bz.avail_out = 1;
                const int ret = BZ2_bzDecompress(&bz);
                outcome.end =
                    ret == BZ_STREAM_END && bz.avail_out == 1 ? stream_end::done : stream_end::cap;
                break;
            }
            const std::uint64_t n = std::min<std::uint64_t>(out.size() - used, max_chunk);
            bz.next_out = reinterpret_cast<char*>(out.data() + used);
            bz.avail_out = static_cast<unsigned>(n);
        }
        const unsigned before = bz.avail_out;
        const int ret = BZ2_bzDecompress(&bz);
        used += before - bz.avail_out;
        if (ret == BZ_STREAM_END) {
            outcome.end = stream_end::done;
            break;
        }
        if (ret != BZ_OK) {
            outcome.end = stream_end::error;
            break;
        }
        if (bz.avail_in == 0 && fed >= in.size() && bz.avail_out != 0) {
            outcome.end = stream_end::truncated;
            break;
        }
    }
    outcome.consumed = fed - bz.avail_in;
    out.resize(static_cast<std::size_t>(used));
    BZ2_bzDecompressEnd(&bz);
    return outcome;
}

/// Delivers a decompressed member according to how its stream ended. Output over a limit is
/// delivered cut (zip: "trimming output size to maxfilesize") or not at all (gzip, bzip2:
/// clamscan 1.4.6 refuses the whole temporary file, "GZip: filesize exceeded").
void emit_decoded(emitter& em, std::string_view name, const std::vector<unsigned char>& out,
                  stream_end end, bool skip_when_cut) {
    unpack_result& r = em.result();
    if (end == stream_end::cap) {
        if (skip_when_cut) {
            em.skip_too_large();
            return;
        }
        r.size_limit_hit = true;
    } else if (end != stream_end::done) {
        r.corrupt = true;
    }
    static_cast<void>(em.emit(name, out, end != stream_end::done));
}

// ---------------------------------------------------------------- gzip, bzip2

void unpack_gzip(byte_view data, emitter& em) {
    if (!em.may_start()) {
        return;
    }
    std::array<unsigned char, 256> name_buf{};
    gz_header header{};
    header.name = name_buf.data();
    header.name_max = static_cast<uInt>(name_buf.size() - 1);
    std::vector<unsigned char> out;
    const inflate_outcome outcome = inflate_stream(data, 16 + MAX_WBITS, em.room(), out, &header);
    const std::string_view name = c_field(name_buf, 0, name_buf.size() - 1);
    emit_decoded(em, name, out, outcome.end, true);
}

void unpack_bzip2(byte_view data, emitter& em) {
    if (!em.may_start()) {
        return;
    }
    std::vector<unsigned char> out;
    const inflate_outcome outcome = bunzip_stream(data, em.room(), out);
    emit_decoded(em, {}, out, outcome.end, true);
}

// ---------------------------------------------------------------- zip

constexpr std::string_view zip_local_sig = "PK\x03\x04";
constexpr std::string_view zip_central_sig = "PK\x01\x02";
constexpr std::string_view zip_end_sig = "PK\x05\x06";
constexpr std::uint64_t zip_local_size = 30;
constexpr std::uint64_t zip_central_size = 46;
constexpr std::uint64_t zip_end_size = 22;
constexpr unsigned zip_max_overlapping = 5;  // ZIP_MAX_NUM_OVERLAPPING_FILES

struct zip_entry {
    std::string_view name;
    std::uint16_t flags = 0;
    std::uint16_t method = 0;
    std::uint64_t csize = 0;
    std::uint64_t usize = 0;
    std::uint64_t local_offset = 0;
    std::uint64_t local_header_size = 0;  ///< 0 when no valid local header is there
};

/// Size of the local header at `at` with its name and extra field, or 0 if there is none.
std::uint64_t zip_local_header_size(byte_view data, std::uint64_t at) {
    if (!has(data, at, zip_local_size) || !starts_with(data, at, zip_local_sig)) {
        return 0;
    }
    return zip_local_size + le16(data, at + 26) + le16(data, at + 28);
}

/// Extracts one entry whose data starts at `data_offset`. `csize` is how much input the
/// entry may use. False when unpacking must end (sink stop or MaxFiles).
bool zip_extract(byte_view data, emitter& em, const zip_entry& e, std::uint64_t data_offset,
                 std::vector<unsigned char>& out) {
    unpack_result& r = em.result();
    if (e.csize == 0 && e.usize == 0) {
        return true;  // directory or empty file
    }
    if ((e.flags & 1U) != 0) {
        ++r.skipped_encrypted;
        return true;
    }
    if (e.method != 0 && e.method != 8 && e.method != 12) {
        ++r.skipped_unsupported;
        return true;
    }
    if (!em.may_start()) {
        return false;
    }
    const std::uint64_t room = em.room();
    if (e.usize > room || e.csize > room) {
        em.skip_too_large();
        return true;
    }
    if (data_offset > data.size()) {
        r.corrupt = true;
        return true;
    }
    const std::uint64_t available = std::min(e.csize, data.size() - data_offset);
    const byte_view in =
        data.subspan(static_cast<std::size_t>(data_offset), static_cast<std::size_t>(available));
    if (e.method == 0) {
        const bool short_input = available < e.csize;
        r.corrupt = r.corrupt || short_input;
        return em.emit(e.name, in, short_input);
    }
    const inflate_outcome outcome = e.method == 8
                                        ? inflate_stream(in, -MAX_WBITS, room, out, nullptr)
                                        : bunzip_stream(in, room, out);
    emit_decoded(em, e.name, out, outcome.end, false);
    return !r.stopped;
}

/// The central directory, or nothing when there is no usable one.
std::vector<zip_entry> zip_central_directory(byte_view data) {
    std::vector<zip_entry> entries;
    if (data.size() < zip_end_size) {
        return entries;
    }
    // The end record sits in the last 22 bytes plus at most a 64 KiB comment.
    const std::uint64_t last = data.size() - zip_end_size;
    const std::uint64_t first = last > 0xFFFF ? last - 0xFFFF : 0;
    std::uint64_t end = last + 1;
    for (std::uint64_t at = last + 1; at-- > first;) {
        if (starts_with(data, at, zip_end_sig)) {
            end = at;
            break;
        }
    }
    if (end > last) {
        return entries;
    }
    std::uint64_t at = le32(data, end + 16);
    while (has(data, at, zip_central_size) && starts_with(data, at, zip_central_sig)) {
        zip_entry e;
        e.flags = le16(data, at + 8);
        e.method = le16(data, at + 10);
        e.csize = le32(data, at + 20);
        e.usize = le32(data, at + 24);
        const std::uint64_t name_len = le16(data, at + 28);
        const std::uint64_t extra_len = le16(data, at + 30);
        const std::uint64_t comment_len = le16(data, at + 32);
        e.local_offset = le32(data, at + 42);
        if (!has(data, at + zip_central_size, name_len)) {
            break;
        }
        e.name = c_field(data, at + zip_central_size, name_len);
        e.local_header_size = zip_local_header_size(data, e.local_offset);
        entries.push_back(e);
        at += zip_central_size + name_len + extra_len + comment_len;
    }
    return entries;
}

void unzip_central(byte_view data, emitter& em, std::vector<zip_entry>& entries) {
    unpack_result& r = em.result();
    std::stable_sort(entries.begin(), entries.end(), [](const zip_entry& a, const zip_entry& b) {
        return a.local_offset < b.local_offset;
    });
    // Overlap check over the whole catalogue first, as ClamAV does before extracting.
    std::vector<bool> duplicate(entries.size(), false);
    unsigned overlapping = 0;
    for (std::size_t i = 1; i < entries.size(); ++i) {
        const zip_entry& prev = entries[i - 1];
        const zip_entry& cur = entries[i];
        const std::uint64_t prev_end = prev.local_offset + prev.local_header_size + prev.csize;
        if (cur.local_offset >= prev_end) {
            continue;
        }
        ++overlapping;
        if (cur.local_offset == prev.local_offset &&
            cur.local_header_size == prev.local_header_size && cur.csize == prev.csize) {
            duplicate[i] = true;
        } else if (overlapping > zip_max_overlapping) {
            r.zip_overlapping_files = true;
            r.corrupt = true;
            return;
        }
    }
    std::vector<unsigned char> out;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const zip_entry& e = entries[i];
        if (duplicate[i]) {
            continue;
        }
        if (e.local_header_size == 0) {
            r.corrupt = true;  // central entry pointing at no local header
            continue;
        }
        if (!zip_extract(data, em, e, e.local_offset + e.local_header_size, out)) {
            return;
        }
    }
}

/// No central directory (e.g. a truncated download): walk the local headers in order.
void unzip_local(byte_view data, emitter& em) {
    unpack_result& r = em.result();
    std::vector<unsigned char> out;
    std::uint64_t at = starts_with(data, 0, "PK00") ? 4 : 0;
    while (has(data, at, zip_local_size) && starts_with(data, at, zip_local_sig)) {
        zip_entry e;
        e.flags = le16(data, at + 6);
        e.method = le16(data, at + 8);
        e.csize = le32(data, at + 18);
        e.usize = le32(data, at + 22);
        const std::uint64_t name_len = le16(data, at + 26);
        e.local_header_size = zip_local_header_size(data, at);
        if (!has(data, at + zip_local_size, name_len)) {
            r.corrupt = true;
            return;
        }
        e.name = c_field(data, at + zip_local_size, name_len);
        const std::uint64_t data_offset = at + e.local_header_size;
        const bool deferred_sizes = (e.flags & 8U) != 0 && e.csize == 0;
        if (deferred_sizes) {
            // Sizes follow the data; only deflate tells where its data ends.
            if (e.method != 8 || data_offset > data.size()) {
                r.corrupt = true;
                return;
            }
            const inflate_outcome probe =
                inflate_stream(data.subspan(static_cast<std::size_t>(data_offset)), -MAX_WBITS,
                               em.room(), out, nullptr);
            e.csize = probe.consumed;
            e.usize = out.size();
        }
        if (!zip_extract(data, em, e, data_offset, out)) {
            return;
        }
        at = data_offset + e.csize;
        if (deferred_sizes) {
            at += starts_with(data, at, "PK\x07\x08") ? 16U : 12U;
        }
    }
    if (at < data.size() && !starts_with(data, at, zip_central_sig)) {
        r.corrupt = true;
    }
}

void unpack_zip(byte_view data, emitter& em) {
    std::vector<zip_entry> entries = zip_central_directory(data);
    if (entries.empty()) {
        unzip_local(data, em);
    } else {
        unzip_central(data, em, entries);
    }
}

// ---------------------------------------------------------------- tar

constexpr std::uint64_t tar_block = 512;

/// Header checksum as POSIX (unsigned bytes) or old tars (signed bytes) compute it.
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

void unpack_tar(byte_view data, emitter& em, bool posix) {
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

// ---------------------------------------------------------------- cpio

/// The name stored after a cpio header: ClamAV keeps at most 512 chars and drops the
/// terminating byte.
std::string_view cpio_name(byte_view data, std::uint64_t at, std::uint64_t name_size) {
    const std::uint64_t kept = std::min<std::uint64_t>(name_size, 513);
    return c_field(data, at, kept - 1);
}

/// Delivers a cpio member of `size` bytes at `at`; false when unpacking must end.
bool cpio_member(byte_view data, emitter& em, std::string_view name, std::uint64_t at,
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

void unpack_cpio_ascii(byte_view data, emitter& em, archive_kind kind) {
    unpack_result& r = em.result();
    const bool newc = kind != archive_kind::cpio_odc;
    const std::string_view magic = kind == archive_kind::cpio_newc  ? "070701"
                                   : kind == archive_kind::cpio_crc ? "070702"
                                                                    : "070707";
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

void unpack_cpio_binary(byte_view data, emitter& em, bool big_endian) {
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

// ---------------------------------------------------------------- tnef

/// MS-TNEF as libclamav 1.4's cli_tnef reads it: after the signature and a 2-byte key, a
/// list of attributes (level byte, 16-bit tag and type, 32-bit length, data, 16-bit
/// checksum). Attachment data (attAttachData) goes to the current file; a message-level
/// attribute closes it and opens the next, so the attachments between two message
/// attributes come out as one file. A file closed that way is kept only if an attachment
/// title (attAttachTitle) named it ("fileblobDestroy: file not saved" otherwise); the last
/// one is kept in any case. A negative length, an unknown level or an attribute running
/// past the end makes ClamAV skip every file (their scan never starts); a header cut short
/// ends the list and keeps them.
void unpack_tnef(byte_view data, emitter& em) {
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

// ---------------------------------------------------------------- szdd

/// MS compress.exe ("SZDD") as libclamav's cli_msexpand expands it: the header must read
/// "SZDD" 88 f0 27 33 'A' 00 (a file with its missing-name character set is refused), then
/// LZSS -- a flag byte per eight items, set bits literal bytes, clear bits a 12-bit window
/// position and a 4-bit length + 3 -- in a 4096-byte window of zeros starting at 4080.
/// Output goes out in 2048-byte blocks and stops after the block that reaches the size in
/// the header, so it can run up to 2047 bytes past it, as in ClamAV; a header size over
/// the limits skips the file.
void unpack_szdd(byte_view data, emitter& em) {
    constexpr std::size_t header_size = 14;
    constexpr std::size_t window_size = 4096;
    constexpr std::size_t block = 2048;
    if (!has(data, 0, header_size) || !starts_with(data, 0, "SZDD\x88\xf0\x27\x33") ||
        le16(data, 8) != 0x0041) {
        em.result().corrupt = true;
        return;
    }
    const std::uint64_t declared = le32(data, 10);
    if (!em.may_start()) {
        return;
    }
    if (declared > em.room()) {
        em.skip_too_large();
        return;
    }
    std::array<unsigned char, window_size> window{};
    std::size_t position = window_size - 16;
    std::vector<unsigned char> out;
    std::size_t at = header_size;
    // Whole blocks are checked against the declared size, as ClamAV writes them.
    const auto put = [&](unsigned char byte) {
        out.push_back(byte);
        window[position] = byte;
        position = (position + 1) % window_size;
        return out.size() % block != 0 || out.size() < declared;
    };
    bool more = true;
    while (more && at < data.size()) {
        const unsigned char flags = data[at++];
        for (unsigned bit = 0; bit < 8 && more; ++bit) {
            if ((flags >> bit) & 1U) {
                if (at >= data.size()) {
                    more = false;
                    break;
                }
                more = put(data[at++]);
            } else {
                if (at + 1 >= data.size()) {
                    more = false;  // a pair cut short by the end of the input
                    break;
                }
                std::size_t from = data[at] | ((data[at + 1] & 0xF0U) << 4U);
                std::size_t length = (data[at + 1] & 0x0FU) + 3U;
                at += 2;
                while (length-- > 0 && more) {
                    more = put(window[from]);
                    from = (from + 1) % window_size;
                }
            }
        }
    }
    static_cast<void>(em.emit("", byte_view(out.data(), out.size()), false));
}

}  // namespace

archive_kind detect_archive(std::span<const unsigned char> head) {
    if (starts_with(head, 0, "SZDD\x88\xf0\x27\x33")) {
        return archive_kind::szdd;
    }
    if (starts_with(head, 0, "\x78\x9f\x3e\x22")) {
        return archive_kind::tnef;
    }
    if (starts_with(head, 0, "\x1f\x8b")) {
        return archive_kind::gzip;
    }
    if (starts_with(head, 0, "BZh")) {
        return archive_kind::bzip2;
    }
    if (starts_with(head, 0, "PK\x03\x04") || starts_with(head, 0, "PK00PK\x03\x04")) {
        return archive_kind::zip;
    }
    if (starts_with(head, 0, "070701")) {
        return archive_kind::cpio_newc;
    }
    if (starts_with(head, 0, "070702")) {
        return archive_kind::cpio_crc;
    }
    if (starts_with(head, 0, "070707")) {
        return archive_kind::cpio_odc;
    }
    if (starts_with(head, 0, "\x71\xc7")) {
        return archive_kind::cpio_old_be;
    }
    if (starts_with(head, 0, "\xc7\x71")) {
        return archive_kind::cpio_old_le;
    }
    if (starts_with(head, 257, "ustar")) {
        return archive_kind::tar_posix;
    }
    if (has(head, 0, tar_block) && tar_checksum_ok(head, 0)) {
        return archive_kind::tar_old;
    }
    return archive_kind::none;
}

unpack_result unpack_archive(archive_kind kind, std::span<const unsigned char> data,
                             const archive_limits& limits, const member_sink& sink) {
    emitter em(limits, sink);
    switch (kind) {
        case archive_kind::none:
            break;
        case archive_kind::gzip:
            unpack_gzip(data, em);
            break;
        case archive_kind::bzip2:
            unpack_bzip2(data, em);
            break;
        case archive_kind::zip:
            unpack_zip(data, em);
            break;
        case archive_kind::tar_posix:
        case archive_kind::tar_old:
            unpack_tar(data, em, kind == archive_kind::tar_posix);
            break;
        case archive_kind::cpio_newc:
        case archive_kind::cpio_crc:
        case archive_kind::cpio_odc:
            unpack_cpio_ascii(data, em, kind);
            break;
        case archive_kind::cpio_old_le:
        case archive_kind::cpio_old_be:
            unpack_cpio_binary(data, em, kind == archive_kind::cpio_old_be);
            break;
        case archive_kind::tnef:
            unpack_tnef(data, em);
            break;
        case archive_kind::szdd:
            unpack_szdd(data, em);
            break;
    }
    return em.result();
}

}  // namespace ringscan::matcher::detail
