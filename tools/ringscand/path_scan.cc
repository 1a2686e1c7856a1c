#include "tools/ringscand/path_scan.h"

#include "tools/ringscand/service.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ringscan::daemon {

namespace {

/// Bytes per io_uring read: large enough to amortise the syscall, small enough that one
/// slice of scanning (~50 us) never holds up the other connections of the shard.
constexpr std::size_t read_slice = 128 * 1024;

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
    ring::connection* conn = nullptr;
    unsigned origin_shard = 0;
};

namespace {

/// One MULTISCAN file scanned on the shard it was posted to, with that shard's scanner
/// and io_uring; deletes itself after posting its result back to the job's shard.
class remote_file_scan final : public ring::file_reader {
public:
    remote_file_scan(service& svc, std::shared_ptr<multiscan_link> link, std::string path)
        : service_(svc), link_(std::move(link)), result_{std::move(path), {}, {}} {}

    /// Runs on the target shard.
    void start() {
        shard_ = service_.shards[ring::this_shard::index()].get();
        ++shard_->busy_jobs;
        shard_->set_activity("MULTISCAN", result_.path);
        fd_ = ::open(result_.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st {};
        if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
            result_.error =
                errno == EACCES ? "Access denied. ERROR" : "Can't open file or directory ERROR";
            report();
            return;
        }
        size_ = static_cast<std::uint64_t>(st.st_size);
        if (size_ > service_.settings.max_file_size) {
            if (service_.settings.alert_exceeds_max) {
                result_.found = "Heuristics.Limits.Exceeded.MaxFileSize";
            }
            report();
            return;
        }
        stream_.emplace(service_.engine_for(*shard_), shard_->scanner,
                        matcher::scan_mode::first_match, service_.settings.content_limits);
        buffer_ = std::make_unique<std::byte[]>(read_slice);
        next_read();
    }

    void on_file_read(std::uint64_t /*token*/, int result) noexcept override {
        if (result < 0) {
            result_.error = "Can't read file ERROR";
            report();
            return;
        }
        if (result > 0) {
            stream_->feed(
                std::span<const std::byte>(buffer_.get(), static_cast<std::size_t>(result)));
            offset_ += static_cast<std::uint64_t>(result);
        }
        next_read();
    }

private:
    void next_read() {
        if (offset_ >= size_) {
            const matcher::verdict verdict = stream_->finish();
            if (verdict.infected) {
                result_.found = std::string(verdict.name);
            } else if (stream_->scan_error()) {
                result_.error = "Unspecified error ERROR";
            }
            report();
            return;
        }
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(read_slice, size_ - offset_));
        ring::this_shard::read_file(*this, fd_, std::span<std::byte>(buffer_.get(), want), offset_,
                                    0);
    }

    void report() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        if (--shard_->busy_jobs == 0) {
            shard_->set_idle();
        }
        const unsigned origin = link_->origin_shard;
        ring::this_shard::post(origin, [link = std::move(link_), result = std::move(result_)] {
            if (link->origin_alive) {
                link->job->on_remote_result(*link->conn, result);
            }
        });
        delete this;
    }

    service& service_;
    std::shared_ptr<multiscan_link> link_;
    path_scan::remote_result result_;
    shard_context* shard_ = nullptr;
    int fd_ = -1;
    std::uint64_t size_ = 0;
    std::uint64_t offset_ = 0;
    std::optional<matcher::content_scan> stream_;
    std::unique_ptr<std::byte[]> buffer_;
};

/// Files of one MULTISCAN in flight per shard: enough to keep every core busy, few enough
/// that a huge tree never queues unbounded work.
constexpr unsigned remote_files_per_shard = 2;

}  // namespace

path_scan::path_scan(service& svc, shard_context& shard, scan_mode mode, std::string argument,
                     proto::reply_context reply, std::uint64_t token)
    : service_(svc),
      settings_(svc.settings),
      shard_(shard),
      mode_(mode),
      argument_(std::move(argument)),
      reply_(reply),
      token_(token) {}

path_scan::path_scan(service& svc, shard_context& shard, int fd, proto::reply_context reply,
                     std::uint64_t token)
    : path_scan(svc, shard, scan_mode::fildes, "fd[" + std::to_string(fd) + "]", reply, token) {
    file_fd_ = fd;
}

path_scan::~path_scan() {
    if (link_) {
        link_->origin_alive = false;  // results still out on other shards are dropped
    }
    if (file_fd_ >= 0) {
        ::close(file_fd_);
    }
}

void path_scan::cancel() {
    cancelled_ = true;
    finished_ = true;
    remote_outstanding_ = 0;
}

void path_scan::reply_found(ring::connection& conn, const std::string& path,
                            std::string_view name) {
    out_.clear();
    proto::append_found(out_, reply_, path, name);
    conn.send(out_);
}

void path_scan::reply_status(ring::connection& conn, const std::string& path,
                             std::string_view status) {
    out_.clear();
    proto::append_path_status(out_, reply_, path, status);
    conn.send(out_);
}

void path_scan::advance(ring::connection& conn) {
    if (!started_) {
        started_ = true;
        start(conn);
    }
    const unsigned remote_limit = remote_files_per_shard * ring::this_shard::count();
    while (!finished_ && !read_in_flight_ && remote_outstanding_ < remote_limit) {
        if (stop_walk_ || !next_file(conn)) {
            if (remote_outstanding_ == 0) {
                finish(conn);
            }
            break;
        }
    }
}

void path_scan::dispatch(ring::connection& conn, const std::string& path) {
    if (!link_) {
        link_ = std::make_shared<multiscan_link>(
            multiscan_link{true, this, &conn, ring::this_shard::index()});
    }
    const unsigned target = next_target_++ % ring::this_shard::count();
    ++remote_outstanding_;
    auto* task = new remote_file_scan(service_, link_, path);
    ring::this_shard::post(target, [task] { task->start(); });
}

void path_scan::on_remote_result(ring::connection& conn, const remote_result& result) {
    --remote_outstanding_;
    if (!result.found.empty()) {
        reply_found(conn, result.path, result.found);
        ++infected_;
    } else if (!result.error.empty()) {
        reply_status(conn, result.path, result.error);
        ++errors_;
    }
    advance(conn);
    if (on_progress) {
        // The owner may destroy this job (and with it on_progress) inside the call.
        const std::function<void(path_scan&)> notify = on_progress;
        notify(*this);
    }
}

void path_scan::start(ring::connection& conn) {
    if (mode_ == scan_mode::fildes) {
        struct stat st {};
        if (::fstat(file_fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
            reply_status(conn, argument_, "Not a regular file ERROR");
            skip_final_ok_ = true;
            finished_ = true;
            return;
        }
        total_ = 1;
        file_path_ = argument_;
        file_size_ = static_cast<std::uint64_t>(st.st_size);
        open_and_scan(conn, argument_);
        return;
    }
    // clamd needs a full path; anything else is looked up from "/" and fails like this.
    argument_ = strip_trailing_slashes(argument_);
    total_ = 1;
    struct stat st {};
    if (argument_.empty() || argument_.front() != '/' || ::lstat(argument_.c_str(), &st) != 0) {
        const int err = argument_.empty() || argument_.front() != '/' ? ENOENT : errno;
        reply_status(conn, argument_,
                     std::string("File path check failure: ") + std::strerror(err) + ". ERROR");
        skip_final_ok_ = true;
        stop_walk_ = true;
        return;
    }
    top_device_ = st.st_dev;
    if (service_.excluded(argument_)) {
        if (mode_ != scan_mode::multiscan) {
            reply_status(conn, argument_, "Excluded");
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
        if (!push_directory(conn, argument_, 0)) {
            reply_status(conn, argument_, "Access denied. ERROR");
            ++errors_;
        }
        return;
    }
    if (S_ISREG(st.st_mode)) {
        open_and_scan(conn, argument_);
        return;
    }
    // Sockets, FIFOs, devices: clamd reports the type error and still ends with OK.
    reply_status(conn, argument_, "Not supported file type ERROR");
}

bool path_scan::push_directory(ring::connection& conn, const std::string& path, unsigned depth) {
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
            reply_status(conn, child, "Excluded");
        }
        return true;
    });
    frames_.push_back(std::move(frame));
    return true;
}

bool path_scan::next_file(ring::connection& conn) {
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
                reply_status(conn, path, "Excluded (another filesystem)");
            }
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 <= settings_.max_directory_recursion) {
                push_directory(conn, path, depth + 1);  // unreadable ones are skipped
            }
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            continue;  // special files inside a tree are skipped silently
        }
        ++total_;
        if (mode_ == scan_mode::multiscan && ring::this_shard::count() > 1) {
            dispatch(conn, path);  // clamd: each file of the tree is its own job
        } else {
            open_and_scan(conn, path);
        }
        return true;
    }
    return false;
}

void path_scan::open_and_scan(ring::connection& conn, const std::string& path) {
    file_path_ = path;
    if (mode_ != scan_mode::fildes) {
        file_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st {};
        if (file_fd_ < 0 || ::fstat(file_fd_, &st) != 0) {
            reply_status(
                conn, path,
                errno == EACCES ? "Access denied. ERROR" : "Can't open file or directory ERROR");
            ++errors_;
            if (file_fd_ >= 0) {
                ::close(file_fd_);
                file_fd_ = -1;
            }
            return;
        }
        file_size_ = static_cast<std::uint64_t>(st.st_size);
    }
    if (file_size_ > settings_.max_file_size) {
        // Over MaxFileSize clamd does not scan: clean, unless AlertExceedsMax says otherwise.
        if (settings_.alert_exceeds_max) {
            reply_found(conn, path, "Heuristics.Limits.Exceeded.MaxFileSize");
            ++infected_;
            stop_walk_ = stops_at_first_infected();
        }
        ::close(file_fd_);
        file_fd_ = -1;
        return;
    }
    stream_.emplace(service_.engine_for(shard_), shard_.scanner,
                    mode_ == scan_mode::allmatch ? matcher::scan_mode::all_matches
                                                 : matcher::scan_mode::first_match,
                    settings_.content_limits);
    file_offset_ = 0;
    if (!buffer_) {
        buffer_ = std::make_unique<std::byte[]>(read_slice);
    }
    if (file_size_ == 0) {
        finish_file(conn);
        return;
    }
    issue_read(conn);
}

void path_scan::issue_read(ring::connection& conn) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(read_slice, file_size_ - file_offset_));
    read_in_flight_ = true;
    conn.read_file(file_fd_, std::span<std::byte>(buffer_.get(), want), file_offset_, token_);
}

void path_scan::on_read(ring::connection& conn, int result) {
    read_in_flight_ = false;
    if (cancelled_) {
        stream_.reset();
        return;
    }
    if (result < 0) {
        reply_status(conn, file_path_, "Can't read file ERROR");
        ++errors_;
        stream_.reset();
        ::close(file_fd_);
        file_fd_ = -1;
        advance(conn);
        return;
    }
    if (result > 0) {
        stream_->feed(std::span<const std::byte>(buffer_.get(), static_cast<std::size_t>(result)));
        file_offset_ += static_cast<std::uint64_t>(result);
    }
    if (result == 0 || file_offset_ >= file_size_) {
        finish_file(conn);
        advance(conn);
        return;
    }
    issue_read(conn);
}

void path_scan::finish_file(ring::connection& conn) {
    const matcher::verdict result = stream_->finish();
    if (result.infected) {
        if (mode_ == scan_mode::allmatch) {
            for (const std::string_view name : stream_->matches()) {  // one line per signature
                reply_found(conn, file_path_, name);
            }
        } else {
            reply_found(conn, file_path_, result.name);
        }
        ++infected_;
        stop_walk_ = stops_at_first_infected();
    } else if (stream_->scan_error()) {
        reply_status(conn, file_path_, "Unspecified error ERROR");
        ++errors_;
    }
    stream_.reset();
    ::close(file_fd_);
    file_fd_ = -1;
    if (mode_ == scan_mode::fildes) {
        stop_walk_ = true;
    }
}

void path_scan::finish(ring::connection& conn) {
    finished_ = true;
    frames_.clear();
    // clamd's final line: OK when nothing was infected and not everything failed.
    if (!skip_final_ok_ && infected_ == 0 && errors_ != total_) {
        reply_status(conn, argument_, "OK");
    }
}

}  // namespace ringscan::daemon
