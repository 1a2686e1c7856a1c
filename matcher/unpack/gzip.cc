// gzip (libclamav scanners.c cli_scangzip, 1.4): one stream inflated; output over a limit is
// not scanned at all (checked with clamscan 1.4.6); on a stream error what was inflated so far
// is. The member's name is the header's FNAME field.

#include "matcher/unpack/container_io.h"

#include <array>

namespace ringscan::matcher::detail {
namespace {

void read_gzip(byte_view data, member_emitter& em) {
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

}  // namespace

unpack_result unpack_gzip(byte_view data, const archive_limits& limits, const member_sink& sink) {
    return emit_members(limits, sink, [&](member_emitter& em) { read_gzip(data, em); });
}

}  // namespace ringscan::matcher::detail
