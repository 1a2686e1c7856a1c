// bzip2 (libclamav scanners.c cli_scanbzip, 1.4): one stream decompressed; output over a
// limit is not scanned at all (checked with clamscan 1.4.6); on a stream error what was
// decompressed so far is. The member has no name.

#include "matcher/unpack/container_io.h"

namespace ringscan::matcher::detail {
namespace {

void read_bzip2(byte_view data, member_emitter& em) {
    if (!em.may_start()) {
        return;
    }
    std::vector<unsigned char> out;
    const inflate_outcome outcome = bunzip_stream(data, em.room(), out);
    emit_decoded(em, {}, out, outcome.end, true);
}

}  // namespace

unpack_result unpack_bzip2(byte_view data, const archive_limits& limits, const member_sink& sink) {
    return emit_members(limits, sink, [&](member_emitter& em) { read_bzip2(data, em); });
}

}  // namespace ringscan::matcher::detail
