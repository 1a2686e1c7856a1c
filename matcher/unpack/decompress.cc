// The zlib and bzip2 stream decoders the gzip, bzip2 and zip unpackers share.

#include "matcher/unpack/container_io.h"

#include <bzlib.h>

namespace ringscan::matcher::detail {
namespace {

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

}  // namespace

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

void emit_decoded(member_emitter& em, std::string_view name,
                  const std::vector<unsigned char>& out, stream_end end, bool skip_when_cut) {
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

}  // namespace ringscan::matcher::detail
