#pragma once

/// One SCAN / CONTSCAN / MULTISCAN / ALLMATCHSCAN of a path on the daemon's filesystem, or
/// one FILDES scan of a passed descriptor, run asynchronously on the connection's shard.
///
/// Directories are walked with readdir (metadata is cheap); file contents are read with
/// io_uring in fixed-size slices and fed to the matcher as they arrive, so a large file
/// never stalls the shard for longer than one slice. Replies follow clamd's rules
/// (clamd/scanner.c scan_callback and the final-OK rule): see the spec, §1.5.
///
/// Owned by a clamd_connection; lives until finished and until no read is in flight.

#include "matcher/content_scan.h"
#include "matcher/engine.h"
#include "proto/clamd_reply.h"
#include "ring/reactor.h"
#include "tools/ringscand/daemon_config.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ringscan::daemon {

struct shard_context;
struct service;
struct multiscan_link;

enum class scan_mode : std::uint8_t {
    scan,       ///< stop at the first infected file
    contscan,   ///< report every infected file
    multiscan,  ///< like contscan (files of a directory are independent jobs in clamd)
    allmatch,   ///< like scan, but every matching signature of that file
    fildes,     ///< a descriptor passed over the unix socket
};

class path_scan {
public:
    /// Reply lines are prefixed with the argument (or "fd[N]" for FILDES).
    path_scan(service& svc, shard_context& shard, scan_mode mode, std::string argument,
              proto::reply_context reply, std::uint64_t token);
    /// For FILDES: takes ownership of `fd`.
    path_scan(service& svc, shard_context& shard, int fd, proto::reply_context reply,
              std::uint64_t token);
    ~path_scan();
    path_scan(const path_scan&) = delete;
    path_scan& operator=(const path_scan&) = delete;

    /// Runs until a read is in flight or the job is finished; reply lines go to `conn`.
    void advance(ring::connection& conn);
    /// A read this job started completed.
    void on_read(ring::connection& conn, int result);
    /// MULTISCAN: a file scanned on another shard came back (on this job's shard).
    struct remote_result {
        std::string path;
        std::string found;  ///< signature name, or empty
        std::string error;  ///< status text ending in "ERROR", or empty
    };
    void on_remote_result(ring::connection& conn, const remote_result& result);
    /// Called after a remote result was applied, so the owner can reap a finished job.
    std::function<void(path_scan&)> on_progress;

    [[nodiscard]] bool finished() const { return finished_ && !read_in_flight_; }
    [[nodiscard]] bool read_in_flight() const { return read_in_flight_; }
    /// What STATS shows for this job: the file being scanned.
    [[nodiscard]] const std::string& current_path() const { return file_path_; }
    [[nodiscard]] std::uint64_t token() const { return token_; }
    /// Abandons the walk (connection closing); a read in flight still completes.
    void cancel();

private:
    /// A directory being walked: its entries, sorted by name as clamd's cli_ftw does.
    struct directory_frame {
        std::string path;
        unsigned depth;
        std::vector<std::string> names;
        std::size_t next = 0;
    };
    /// Reads and sorts a directory's entries; false if it cannot be opened.
    bool push_directory(ring::connection& conn, const std::string& path, unsigned depth);

    void start(ring::connection& conn);
    /// Finds the next regular file to scan; false when the walk is over.
    bool next_file(ring::connection& conn);
    void open_and_scan(ring::connection& conn, const std::string& path);
    void issue_read(ring::connection& conn);
    void finish_file(ring::connection& conn);
    void finish(ring::connection& conn);
    /// MULTISCAN of a directory: hands the file to the next shard in turn.
    void dispatch(ring::connection& conn, const std::string& path);
    [[nodiscard]] bool stops_at_first_infected() const {
        return mode_ == scan_mode::scan || mode_ == scan_mode::allmatch;
    }

    void reply_found(ring::connection& conn, const std::string& path, std::string_view name);
    void reply_status(ring::connection& conn, const std::string& path, std::string_view status);

    service& service_;
    const daemon_settings& settings_;
    shard_context& shard_;
    scan_mode mode_;
    std::string argument_;
    proto::reply_context reply_;
    std::uint64_t token_;

    std::vector<directory_frame> frames_;
    dev_t top_device_ = 0;
    bool started_ = false;
    bool finished_ = false;
    bool cancelled_ = false;
    bool stop_walk_ = false;
    bool skip_final_ok_ = false;
    // MULTISCAN fan-out: files out on other shards, and the link they report back through.
    std::shared_ptr<multiscan_link> link_;
    unsigned remote_outstanding_ = 0;
    unsigned next_target_ = 0;
    unsigned total_ = 0;
    unsigned errors_ = 0;
    unsigned infected_ = 0;

    // The file being scanned.
    int file_fd_ = -1;
    std::string file_path_;
    std::uint64_t file_size_ = 0;
    std::uint64_t file_offset_ = 0;
    std::optional<matcher::content_scan> stream_;
    bool read_in_flight_ = false;
    std::unique_ptr<std::byte[]> buffer_;
    std::string out_;
};

}  // namespace ringscan::daemon
