#pragma once

/// One SCAN / CONTSCAN / MULTISCAN / ALLMATCHSCAN of a path on the daemon's filesystem, or
/// one FILDES scan of a passed descriptor, run asynchronously on the connection's shard.
///
/// Directories are walked with readdir (metadata is cheap); each file is scanned by a
/// file_scan (io_uring reads in slices, fed to the matcher as they arrive), whose
/// completions come straight back here. MULTISCAN hands the files of a directory to the
/// other shards in turn, each scanned there by a file_scan of its own. Replies follow
/// clamd's rules (clamd/scanner.c scan_callback and the final-OK rule): see the spec, §1.5.
///
/// Owned by a clamd_connection, on the connection's shard; lives until finished and until
/// no read is in flight (the connection, and so its handler, outlives every read).

#include "daemon/daemon_config.h"
#include "daemon/file_scan.h"
#include "matcher/content_scan.h"
#include "matcher/engine.h"
#include "proto/clamd_reply.h"
#include "ring/reactor.h"

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

class path_scan final : private file_scan::listener {
public:
    /// Reply lines, prefixed with the argument (or "fd[N]" for FILDES), go to `conn`.
    path_scan(service& svc, shard_context& shard, ring::connection& conn, scan_mode mode,
              std::string argument, proto::reply_context reply);
    /// For FILDES: takes ownership of `fd`.
    path_scan(service& svc, shard_context& shard, ring::connection& conn, int fd,
              proto::reply_context reply);
    ~path_scan();
    path_scan(const path_scan&) = delete;
    path_scan& operator=(const path_scan&) = delete;

    /// Runs until a read is in flight or the job is finished.
    void advance();
    /// MULTISCAN: a file scanned on another shard came back (on this job's shard).
    struct remote_result {
        std::string path;
        std::string found;  ///< signature name, or empty
        std::string error;  ///< status text ending in "ERROR", or empty
    };
    void on_remote_result(const remote_result& result);
    /// Called after a read or a remote result moved the job on, so the owner can reap a
    /// finished job (it may destroy the job inside the call).
    std::function<void(path_scan&)> on_progress;

    [[nodiscard]] bool finished() const { return finished_ && !file_.reading(); }
    [[nodiscard]] bool read_in_flight() const { return file_.reading(); }
    /// The file being scanned.
    [[nodiscard]] const std::string& current_path() const { return file_path_; }
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
    bool push_directory(const std::string& path, unsigned depth);

    void start();
    /// Finds the next regular file to scan; false when the walk is over.
    bool next_file();
    /// Scans one file of this job here, on the connection's shard.
    void scan_file(const std::string& path);
    /// A file_scan whose reads were in flight finished.
    void on_file_scanned(file_scan& scan) noexcept override;
    /// Replies and counts one file's outcome.
    void apply(const file_outcome& outcome);
    void finish();
    void notify_progress();
    /// MULTISCAN of a directory: hands the file to the next shard in turn.
    void dispatch(const std::string& path);
    [[nodiscard]] bool stops_at_first_infected() const {
        return mode_ == scan_mode::scan || mode_ == scan_mode::allmatch;
    }
    [[nodiscard]] unsigned shard_count() const;

    void reply_found(const std::string& path, std::string_view name);
    void reply_status(const std::string& path, std::string_view status);

    service& service_;
    const daemon_settings& settings_;
    shard_context& shard_;
    ring::connection& conn_;
    scan_mode mode_;
    std::string argument_;
    proto::reply_context reply_;

    std::vector<directory_frame> frames_;
    dev_t top_device_ = 0;
    bool started_ = false;
    bool finished_ = false;
    bool stop_walk_ = false;
    bool skip_final_ok_ = false;
    // MULTISCAN fan-out: files out on other shards, and the link they report back through.
    std::shared_ptr<multiscan_link> link_;
    unsigned remote_outstanding_ = 0;
    unsigned next_target_ = 0;
    unsigned total_ = 0;
    unsigned errors_ = 0;
    unsigned infected_ = 0;

    int fildes_ = -1;        ///< FILDES: the passed descriptor until its file_scan takes it
    std::string file_path_;  ///< the file being scanned
    file_scan file_;
    std::string out_;
};

}  // namespace ringscan::daemon
