#pragma once

/// One file's contents scanned through the ring: opened (or handed over, for FILDES),
/// checked against MaxFileSize, read with io_uring in fixed-size slices that are fed to a
/// matcher::content_scan as they arrive -- so a large file never holds up the shard for
/// longer than one slice -- and finished into clamd's terms: FOUND names, an ERROR status,
/// or clean. The one place this is done, for a path scan's own files and for MULTISCAN
/// files scanned on another shard.
///
/// Owned by its listener (a path_scan, or a MULTISCAN file task) and used on the shard that
/// created it; it scans one file at a time and may be reused for the next. It stays alive
/// while a read is in flight: a path scan's reads go through its connection, which outlives
/// them (ring::connection::read_file); a task's reads go through this_shard::read_file and
/// the task deletes itself only from the final completion.

#include "matcher/content_scan.h"
#include "ring/reactor.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::daemon {

struct service;
struct shard_context;

/// How one file ended, in the terms clamd replies with.
struct file_outcome {
    std::vector<std::string> found;  ///< FOUND names in reply order; empty when none
    std::string_view error;          ///< a status ending in "ERROR" (a literal), or empty
    bool abandoned = false;          ///< the connection closed mid-file: nothing to report
};

class file_scan final : public ring::file_reader {
public:
    /// Hears about files whose reads were in flight.
    class listener {
    public:
        /// The file is done; scan.outcome() says how. Called as the reader's last act: the
        /// listener may start the next file on `scan`, or destroy it.
        virtual void on_file_scanned(file_scan& scan) noexcept = 0;

    protected:
        ~listener() = default;
    };

    /// `conn`: the connection whose handler owns this scan (reads go through it, and the
    /// scan is abandoned once it closes), or null for a task on the calling shard.
    file_scan(service& svc, listener& owner, ring::connection* conn);
    ~file_scan();
    file_scan(const file_scan&) = delete;
    file_scan& operator=(const file_scan&) = delete;

    /// Opens `path` and scans it with `shard`'s scanner. True when a read is in flight (the
    /// outcome comes through the listener); false when the file was settled at once
    /// (unopenable, over MaxFileSize, empty): outcome() holds it and the listener is not told.
    bool start(shard_context& shard, const std::string& path, matcher::scan_mode mode);
    /// The same for `fd`, an open regular file of `size` bytes (FILDES); takes ownership.
    bool start(shard_context& shard, int fd, std::uint64_t size, matcher::scan_mode mode);

    [[nodiscard]] const file_outcome& outcome() const { return outcome_; }
    [[nodiscard]] bool reading() const { return reading_; }

    void on_file_read(int result) noexcept override;

private:
    /// The part after the file is open: MaxFileSize, the matcher, the first read.
    bool begin(shard_context& shard, matcher::scan_mode mode);
    void issue_read();
    /// Turns the matcher's verdict into the outcome.
    void settle();
    void close_file();

    service& service_;
    listener& listener_;
    ring::connection* conn_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
    std::uint64_t offset_ = 0;
    matcher::scan_mode mode_ = matcher::scan_mode::first_match;
    std::optional<matcher::content_scan> stream_;
    bool reading_ = false;
    std::unique_ptr<std::byte[]> buffer_;  ///< one slice; the kernel writes it during a read
    file_outcome outcome_;
};

}  // namespace ringscan::daemon
