#pragma once

/// Client-side wire pieces, sans-I/O: a send queue of byte segments (owned copies or
/// references into workload memory, gathered into iovecs by the event loop), the clamd
/// request encoders, and the clamd reply parser/classifier.

#include "milter/client_codec.h"

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::bench {

/// Bytes waiting to be sent on one connection. copy() takes small framing bytes, ref()
/// references memory the caller keeps alive until sent (workload data). Also a milter
/// sink, so the milter session encodes straight into it.
class send_queue final : public milter::sink {
public:
    void copy(std::string_view bytes) override;
    void ref(std::string_view bytes) override;

    /// Fills up to `max` iovecs from the head of the queue; returns how many.
    [[nodiscard]] int fill_iov(iovec* iov, int max) const;
    /// Drops `n` sent bytes from the head.
    void consume(std::size_t n);
    [[nodiscard]] bool empty() const noexcept { return segs_.empty(); }
    [[nodiscard]] std::size_t pending() const noexcept { return pending_; }
    void clear() noexcept;

private:
    struct segment {
        const char* ext;  ///< referenced memory, or nullptr for owned bytes
        std::size_t off;  ///< owned: offset into owned_ (relative to owned_base_)
        std::size_t len;
    };
    std::string owned_;
    std::size_t owned_base_ = 0;  ///< logical offset of owned_[0]
    std::deque<segment> segs_;
    std::size_t head_done_ = 0;  ///< bytes of segs_.front() already sent
    std::size_t pending_ = 0;
};

/// clamd requests (always z-framed, like clamdscan).
void encode_instream(send_queue& q, std::string_view data, std::size_t chunk_size);
void encode_scan(send_queue& q, std::string_view path);
inline constexpr std::string_view fildes_command{"zFILDES\0\0", 9};  ///< + 1 byte for the fd
inline constexpr std::string_view idsession_command{"zIDSESSION\0", 11};
inline constexpr std::string_view end_command{"zEND\0", 5};
inline constexpr std::string_view ping_command{"zPING\0", 6};

/// Splits a clamd reply stream into lines (terminated by '\0' or '\n'; clamd ends
/// z-replies with '\0' but some errors, e.g. COMMAND READ TIMED OUT, with '\n').
class line_splitter {
public:
    /// Appends complete lines (without terminator) to `out`.
    void feed(std::string_view bytes, std::vector<std::string>& out);
    [[nodiscard]] std::size_t buffered() const noexcept { return partial_.size(); }
    [[nodiscard]] const std::string& partial() const noexcept { return partial_; }
    void clear() noexcept { partial_.clear(); }

private:
    std::string partial_;
};

enum class verdict : std::uint8_t {
    ok,              ///< "...: OK"
    found,           ///< "...: <name> FOUND"
    error_reply,     ///< "... ERROR" from the server
    protocol_error,  ///< anything else: not a scan result at all
};

struct classified {
    verdict kind = verdict::protocol_error;
    std::string signature;  ///< for found
    std::string text;       ///< the line without session id (for errors)
    long session_id = -1;   ///< "N: " prefix inside IDSESSION, -1 if none
};

/// Classifies one reply line; with `in_session` a leading "N: " id is parsed off.
[[nodiscard]] classified classify_reply(std::string_view line, bool in_session);

/// Worst of several lines of one request (SCAN may send more than one):
/// found > error_reply > protocol_error > ok.
[[nodiscard]] verdict combine(verdict a, verdict b) noexcept;

}  // namespace ringscan::bench
