#include "tools/ringscand/path_scan.h"

#include "tools/ringscand/service.h"

#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

path_scan::path_scan(const daemon_settings& settings, shard_context& shard, scan_mode mode,
                     std::string argument, proto::reply_context reply, std::uint64_t token)
    : settings_(settings),
      shard_(shard),
      mode_(mode),
      argument_(std::move(argument)),
      reply_(reply),
      token_(token) {}

path_scan::path_scan(const daemon_settings& settings, shard_context& shard, int fd,
                     proto::reply_context reply, std::uint64_t token)
    : path_scan(settings, shard, scan_mode::fildes, "fd[" + std::to_string(fd) + "]", reply,
                token) {
    file_fd_ = fd;
}

path_scan::~path_scan() {
    if (file_fd_ >= 0) {
        ::close(file_fd_);
    }
}

void path_scan::cancel() {
    cancelled_ = true;
    finished_ = true;
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

bool path_scan::excluded(const std::string& path) const {
    for (const std::string& pattern : settings_.exclude_paths) {
        regex_t compiled;
        if (::regcomp(&compiled, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) {
            continue;
        }
        const bool match = ::regexec(&compiled, path.c_str(), 0, nullptr, 0) == 0;
        ::regfree(&compiled);
        if (match) {
            return true;
        }
    }
    return false;
}

void path_scan::advance(ring::connection& conn) {
    if (!started_) {
        started_ = true;
        start(conn);
    }
    while (!finished_ && !read_in_flight_) {
        if (stop_walk_ || !next_file(conn)) {
            finish(conn);
        }
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
        if (excluded(path)) {
            if (mode_ != scan_mode::multiscan) {
                reply_status(conn, path, "Excluded");
            }
            continue;
        }
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) {
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            struct stat target {};
            const bool follow =
                ::stat(path.c_str(), &target) == 0 &&
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
                push_directory(path, depth + 1);  // unreadable subdirectories are skipped
            }
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            continue;  // special files inside a tree are skipped silently
        }
        ++total_;
        open_and_scan(conn, path);
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
            reply_status(conn, path,
                         errno == EACCES ? "Access denied. ERROR"
                                         : "Can't open file or directory ERROR");
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
    stream_.emplace(shard_.engine, shard_.scanner,
                    mode_ == scan_mode::allmatch ? matcher::scan_mode::all_matches
                                                 : matcher::scan_mode::first_match);
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
    const auto want = static_cast<std::size_t>(
        std::min<std::uint64_t>(read_slice, file_size_ - file_offset_));
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
