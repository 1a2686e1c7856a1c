// zip (libclamav unzip.c, 1.4): central directory entries sorted by local header offset;
// exact duplicates skipped, more than 5 overlapping entries abort; no central directory ->
// walk local headers. Members over a limit are skipped; encrypted ones too (no password list
// here). Not implemented: methods other than stored/deflate/bzip2 (ClamAV also does deflate64
// and implode), zip64, the ZIP password list.

#include "matcher/unpack/container_io.h"

namespace ringscan::matcher::detail {
namespace {

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

/// The fields local and central headers share, in the same layout: flags, method, CRC,
/// sizes, name length. `fields` is where they start (local header + 6, central + 8).
zip_entry common_fields(byte_view data, std::uint64_t fields) {
    zip_entry e;
    e.flags = le16(data, fields);
    e.method = le16(data, fields + 2);
    e.csize = le32(data, fields + 12);
    e.usize = le32(data, fields + 16);
    return e;
}

/// Size of the local header at `at` with its name and extra field, or 0 if there is none.
std::uint64_t zip_local_header_size(byte_view data, std::uint64_t at) {
    if (!has(data, at, zip_local_size) || !starts_with(data, at, zip_local_sig)) {
        return 0;
    }
    return zip_local_size + le16(data, at + 26) + le16(data, at + 28);
}

/// Extracts one entry whose data starts at `data_offset`. `csize` is how much input the
/// entry may use. False when unpacking must end (sink stop or MaxFiles).
bool zip_extract(byte_view data, member_emitter& em, const zip_entry& e, std::uint64_t data_offset,
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
        zip_entry e = common_fields(data, at + 8);
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

void unzip_central(byte_view data, member_emitter& em, std::vector<zip_entry>& entries) {
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
void unzip_local(byte_view data, member_emitter& em) {
    unpack_result& r = em.result();
    std::vector<unsigned char> out;
    std::uint64_t at = starts_with(data, 0, "PK00") ? 4 : 0;
    while (has(data, at, zip_local_size) && starts_with(data, at, zip_local_sig)) {
        zip_entry e = common_fields(data, at + 6);
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

void read_zip(byte_view data, member_emitter& em) {
    std::vector<zip_entry> entries = zip_central_directory(data);
    if (entries.empty()) {
        unzip_local(data, em);
    } else {
        unzip_central(data, em, entries);
    }
}

}  // namespace

unpack_result unpack_zip(byte_view data, const archive_limits& limits, const member_sink& sink) {
    return emit_members(limits, sink, [&](member_emitter& em) { read_zip(data, em); });
}

}  // namespace ringscan::matcher::detail
