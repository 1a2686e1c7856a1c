#include "daemon/file_scan.h"

#include "daemon/service.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ringscan::daemon {

namespace {

/// Bytes per io_uring read: large enough to amortise the syscall, small enough that one
/// slice of scanning (~50 us) never holds up the other connections of the shard.
constexpr std::size_t read_slice = 128 * 1024;

}  // namespace

file_scan::file_scan(service& svc, listener& owner, ring::connection* conn)
    : service_(svc), listener_(owner), conn_(conn) {}

file_scan::~file_scan() { close_file(); }

void file_scan::close_file() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

bool file_scan::start(shard_context& shard, const std::string& path, matcher::scan_mode mode) {
    outcome_ = file_outcome{};
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st {};
    if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
        outcome_.error =
            errno == EACCES ? "Access denied. ERROR" : "Can't open file or directory ERROR";
        close_file();
        return false;
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
    return begin(shard, mode);
}

bool file_scan::start(shard_context& shard, int fd, std::uint64_t size, matcher::scan_mode mode) {
    outcome_ = file_outcome{};
    fd_ = fd;
    size_ = size;
    return begin(shard, mode);
}

bool file_scan::begin(shard_context& shard, matcher::scan_mode mode) {
    const daemon_settings& settings = service_.settings;
    if (size_ > settings.max_file_size) {
        // Over MaxFileSize clamd does not scan: clean, unless AlertExceedsMax says otherwise.
        if (settings.alert_exceeds_max) {
            outcome_.found.emplace_back("Heuristics.Limits.Exceeded.MaxFileSize");
        }
        close_file();
        return false;
    }
    mode_ = mode;
    stream_.emplace(service_.engine_for(shard), shard.scanner, mode, settings.content_limits);
    offset_ = 0;
    if (!buffer_) {
        buffer_ = std::make_unique<std::byte[]>(read_slice);
    }
    if (size_ == 0) {
        settle();
        return false;
    }
    issue_read();
    return true;
}

void file_scan::issue_read() {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(read_slice, size_ - offset_));
    const std::span<std::byte> into(buffer_.get(), want);
    reading_ = true;
    if (conn_ != nullptr) {
        conn_->read_file(*this, fd_, into, offset_);
    } else {
        ring::this_shard::read_file(*this, fd_, into, offset_);
    }
}

void file_scan::on_file_read(int result) noexcept {
    reading_ = false;
    if (conn_ != nullptr && conn_->closing()) {
        // Nobody will read the reply: stop here instead of reading the rest of the file.
        stream_.reset();
        close_file();
        outcome_ = file_outcome{};
        outcome_.abandoned = true;
        listener_.on_file_scanned(*this);
        return;
    }
    if (result < 0) {
        outcome_.error = "Can't read file ERROR";
        stream_.reset();
        close_file();
        listener_.on_file_scanned(*this);
        return;
    }
    if (result > 0) {
        stream_->feed(std::span<const std::byte>(buffer_.get(), static_cast<std::size_t>(result)));
        offset_ += static_cast<std::uint64_t>(result);
    }
    if (result == 0 || offset_ >= size_) {
        settle();
        listener_.on_file_scanned(*this);
        return;
    }
    issue_read();
}

void file_scan::settle() {
    const matcher::verdict result = stream_->finish();
    if (result.infected) {
        if (mode_ == matcher::scan_mode::all_matches) {
            for (const std::string_view name : stream_->matches()) {  // one line per signature
                outcome_.found.emplace_back(name);
            }
        } else {
            outcome_.found.emplace_back(result.name);
        }
    } else if (stream_->scan_error()) {
        outcome_.error = "Unspecified error ERROR";
    }
    stream_.reset();
    close_file();
}

}  // namespace ringscan::daemon
