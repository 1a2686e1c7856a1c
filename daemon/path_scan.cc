#include "daemon/path_scan.h"

#include "daemon/service.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace ringscan::daemon {

namespace {

std::string strip_trailing_slashes(std::string path) {
    while (path.size() > 1 && path.back() == '/') {
        path.pop_back();
    }
    return path;
}

std::string join(const std::string& directory, const char* name) {
    return directory == "/" ? "/" + std::string(name) : directory + "/" + name;
}

}  // namespace

/// Ties a MULTISCAN job to the scans it farmed out. Touched only on the job's shard: the
/// remote side carries it along untouched and hands it back with the result.
struct multiscan_link {
    bool origin_alive = true;
    path_scan* job = nullptr;
    unsigned origin_shard = 0;
};

namespace {

/// One MULTISCAN file scanned on the shard it was posted to, with that shard's scanner
/// and io_uring (its own file_scan); deletes itself after posting its result back to the
/// job's shard.
class remote_file final : private file_scan::listener {
public:
    remote_file(service& svc, std::shared_ptr<multiscan_link> link, std::string path)
        : service_(svc),
          link_(std::move(link)),
          path_(std::move(path)),
          scan_(svc, *this, nullptr) {}

    /// Runs on the target shard.
    void start() {
        shard_ = service_.shards[ring::this_shard::index()].get();
        ++shard_->busy_jobs;
        shard_->set_activity("MULTISCAN", path_);
        if (!scan_.start(*shard_, path_, matcher::scan_mode::first_match)) {
            report();
        }
    }

private:
    ~remote_file() = default;

    void on_file_scanned(file_scan& /*scan*/) noexcept override { report(); }

    void report() {
        const file_outcome& outcome = scan_.outcome();
        path_scan::remote_result result{
            std::move(path_), outcome.found.empty() ? std::string() : outcome.found.front(),
            std::string(outcome.error)};
        if (--shard_->busy_jobs == 0) {
            shard_->set_idle();
        }
        const unsigned origin = link_->origin_shard;
        ring::this_shard::post(origin, [link = std::move(link_), result = std::move(result)] {
            if (link->origin_alive) {
                link->job->on_remote_result(result);
            }
        });
        delete this;  // the last act of the completion that called us
    }

    service& service_;
    std::shared_ptr<multiscan_link> link_;
    std::string path_;
    shard_context* shard_ = nullptr;
    file_scan scan_;
};

/// Files of one MULTISCAN in flight per shard: enough to keep every core busy, few enough
/// that a huge tree never queues unbounded work.
constexpr unsigned remote_files_per_shard = 2;

}  // namespace

path_scan::path_scan(service& svc, shard_context& shard, ring::connection& conn, scan_mode mode,
                     std::string argument, proto::reply_context reply)
    : service_(svc),
      settings_(svc.settings),
      shard_(shard),
      conn_(conn),
      mode_(mode),
      argument_(std::move(argument)),
      reply_(reply),
      file_(svc, *this, &conn) {}

path_scan::path_scan(service& svc, shard_context& shard, ring::connection& conn, int fd,
                     proto::reply_context reply)
    : path_scan(svc, shard, conn, scan_mode::fildes, "fd[" + std::to_string(fd) + "]", reply) {
    fildes_ = fd;
}

path_scan::~path_scan() {
    if (link_) {
        link_->origin_alive = false;  // results still out on other shards are dropped
    }
    if (fildes_ >= 0) {
        ::close(fildes_);
    }
}

void path_scan::cancel() {
    finished_ = true;
    remote_outstanding_ = 0;
}

unsigned path_scan::shard_count() const { return static_cast<unsigned>(service_.shards.size()); }

void path_scan::reply_found(const std::string& path, std::string_view name) {
    out_.clear();
    proto::append_found(out_, reply_, path, name);
    conn_.send(out_);
}

void path_scan::reply_status(const std::string& path, std::string_view status) {
    out_.clear();
    proto::append_path_status(out_, reply_, path, status);
    conn_.send(out_);
}

void path_scan::advance() {
    if (!started_) {
        started_ = true;
        start();
    }
    const unsigned remote_limit = remote_files_per_shard * shard_count();
    while (!finished_ && !file_.reading() && remote_outstanding_ < remote_limit) {
        if (stop_walk_ || !next_file()) {
            if (remote_outstanding_ == 0) {
                finish();
            }
            break;
        }
    }
}

void path_scan::notify_progress() {
    if (on_progress) {
        // The owner may destroy this job (and with it on_progress) inside the call.
        const std::function<void(path_scan&)> notify = on_progress;
        notify(*this);
    }
}

void path_scan::dispatch(const std::string& path) {
    if (!link_) {
        link_ = std::make_shared<multiscan_link>(multiscan_link{true, this, conn_.shard_index()});
    }
    const unsigned target = next_target_++ % shard_count();
    ++remote_outstanding_;
    auto* task = new remote_file(service_, link_, path);
    ring::this_shard::post(target, [task] { task->start(); });
}

void path_scan::on_remote_result(const remote_result& result) {
    --remote_outstanding_;
    if (!result.found.empty()) {
        reply_found(result.path, result.found);
        ++infected_;
    } else if (!result.error.empty()) {
        reply_status(result.path, result.error);
        ++errors_;
    }
    advance();
    notify_progress();
}

void path_scan::start() {
    if (mode_ == scan_mode::fildes) {
        struct stat st {};
        if (::fstat(fildes_, &st) != 0 || !S_ISREG(st.st_mode)) {
            reply_status(argument_, "Not a regular file ERROR");
            skip_final_ok_ = true;
            finished_ = true;
            return;
        }
        total_ = 1;
        file_path_ = argument_;
        const int fd = std::exchange(fildes_, -1);
        if (!file_.start(shard_, fd, static_cast<std::uint64_t>(st.st_size),
                         matcher::scan_mode::first_match)) {
            apply(file_.outcome());
        }
        return;
    }
    // clamd needs a full path; anything else is looked up from "/" and fails like this.
    argument_ = strip_trailing_slashes(argument_);
    total_ = 1;
    struct stat st {};
    if (argument_.empty() || argument_.front() != '/' || ::lstat(argument_.c_str(), &st) != 0) {
        const int err = argument_.empty() || argument_.front() != '/' ? ENOENT : errno;
        reply_status(argument_,
                     std::string("File path check failure: ") + std::strerror(err) + ". ERROR");
        skip_final_ok_ = true;
        stop_walk_ = true;
        return;
    }
    top_device_ = st.st_dev;
    if (service_.excluded(argument_)) {
        if (mode_ != scan_mode::multiscan) {
            reply_status(argument_, "Excluded");
        }
        skip_final_ok_ = true;
        stop_walk_ = true;
        return;
    }
    if (S_ISLNK(st.st_mode)) {
        struct stat target {};
        if (::stat(argument_.c_str(), &target) != 0) {
            return;  // dangling link: nothing to scan, reported OK as clamd does
        }
        if (S_ISDIR(target.st_mode) && settings_.follow_directory_symlinks) {
            st = target;
        } else if (S_ISREG(target.st_mode) && settings_.follow_file_symlinks) {
            st = target;
        } else {
            return;  // not followed: counts as a clean entry
        }
    }
    if (S_ISDIR(st.st_mode)) {
        if (!push_directory(argument_, 0)) {
            reply_status(argument_, "Access denied. ERROR");
            ++errors_;
        }
        return;
    }
    if (S_ISREG(st.st_mode)) {
        scan_file(argument_);
        return;
    }
    // Sockets, FIFOs, devices: clamd reports the type error and still ends with OK.
    reply_status(argument_, "Not supported file type ERROR");
}

bool path_scan::push_directory(const std::string& path, unsigned depth) {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) {
        return false;
    }
    directory_frame frame{path, depth, {}};
    while (const dirent* entry = ::readdir(dir)) {
        if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) {
            frame.names.emplace_back(entry->d_name);
        }
    }
    ::closedir(dir);
    std::sort(frame.names.begin(), frame.names.end());
    // clamd applies ExcludePath while it reads a directory, so its "Excluded" lines come
    // before any result from that directory's files.
    std::erase_if(frame.names, [&](const std::string& name) {
        const std::string child = join(path, name.c_str());
        if (!service_.excluded(child)) {
            return false;
        }
        if (mode_ != scan_mode::multiscan) {
            reply_status(child, "Excluded");
        }
        return true;
    });
    frames_.push_back(std::move(frame));
    return true;
}

bool path_scan::next_file() {
    while (!frames_.empty()) {
        directory_frame& frame = frames_.back();
        if (frame.next == frame.names.size()) {
            frames_.pop_back();
            continue;
        }
        const std::string path = join(frame.path, frame.names[frame.next++].c_str());
        const unsigned depth = frame.depth;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) {
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            struct stat target {};
            const bool follow = ::stat(path.c_str(), &target) == 0 &&
                                ((S_ISDIR(target.st_mode) && settings_.follow_directory_symlinks) ||
                                 (S_ISREG(target.st_mode) && settings_.follow_file_symlinks));
            if (!follow) {
                continue;
            }
            st = target;
        }
        if (!settings_.cross_filesystems && st.st_dev != top_device_) {
            if (mode_ != scan_mode::multiscan) {
                reply_status(path, "Excluded (another filesystem)");
            }
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 <= settings_.max_directory_recursion) {
                push_directory(path, depth + 1);  // unreadable ones are skipped
            }
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            continue;  // special files inside a tree are skipped silently
        }
        ++total_;
        if (mode_ == scan_mode::multiscan && shard_count() > 1) {
            dispatch(path);  // clamd: each file of the tree is its own job
        } else {
            scan_file(path);
        }
        return true;
    }
    return false;
}

void path_scan::scan_file(const std::string& path) {
    file_path_ = path;
    if (!file_.start(shard_, path,
                     mode_ == scan_mode::allmatch ? matcher::scan_mode::all_matches
                                                  : matcher::scan_mode::first_match)) {
        apply(file_.outcome());
    }
}

void path_scan::on_file_scanned(file_scan& scan) noexcept {
    if (scan.outcome().abandoned) {
        cancel();
    } else {
        apply(scan.outcome());
        advance();
    }
    notify_progress();
}

void path_scan::apply(const file_outcome& outcome) {
    if (!outcome.found.empty()) {
        for (const std::string& name : outcome.found) {
            reply_found(file_path_, name);
        }
        ++infected_;
        stop_walk_ = stops_at_first_infected();
    } else if (!outcome.error.empty()) {
        reply_status(file_path_, outcome.error);
        ++errors_;
    }
}

void path_scan::finish() {
    finished_ = true;
    frames_.clear();
    // clamd's final line: OK when nothing was infected and not everything failed.
    if (!skip_final_ok_ && infected_ == 0 && errors_ != total_) {
        reply_status(argument_, "OK");
    }
}

}  // namespace ringscan::daemon
