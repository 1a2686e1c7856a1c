// SZDD (MS compress.exe), expanded as libclamav 1.4.6's cli_msexpand does.

#include "matcher/unpack/container_io.h"

#include <array>

namespace ringscan::matcher::detail {
namespace {

/// MS compress.exe ("SZDD") as libclamav's cli_msexpand expands it: the header must read
/// "SZDD" 88 f0 27 33 'A' 00 (a file with its missing-name character set is refused), then
/// LZSS -- a flag byte per eight items, set bits literal bytes, clear bits a 12-bit window
/// position and a 4-bit length + 3 -- in a 4096-byte window of zeros starting at 4080.
/// Output goes out in 2048-byte blocks and stops after the block that reaches the size in
/// the header, so it can run up to 2047 bytes past it, as in ClamAV; a header size over
/// the limits skips the file.
void read_szdd(byte_view data, member_emitter& em) {
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

unpack_result unpack_szdd(byte_view data, const archive_limits& limits, const member_sink& sink) {
    return emit_members(limits, sink, [&](member_emitter& em) { read_szdd(data, em); });
}

}  // namespace ringscan::matcher::detail
