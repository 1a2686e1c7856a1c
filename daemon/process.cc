#include "daemon/process.h"

#include "daemon/service.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ringscan::daemon {

void raise_descriptor_limit(logger& log) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            log.warning("could not raise the open-file limit: " +
                        std::string(std::strerror(errno)));
        }
    }
}

void daemonize() {
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("ERROR: fork() failed: ") + std::strerror(errno));
    }
    if (pid > 0) {
        std::_Exit(0);
    }
    ::setsid();
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
        ::dup2(null_fd, STDIN_FILENO);
        ::dup2(null_fd, STDOUT_FILENO);
        ::dup2(null_fd, STDERR_FILENO);
        ::close(null_fd);
    }
}

void write_pid_file(const std::string& path) {
    const mode_t old_mask = ::umask(022);
    std::ofstream out(path, std::ios::trunc);
    ::umask(old_mask);
    if (!out) {
        throw std::runtime_error("ERROR: Can't save PID in file " + path);
    }
    out << ::getpid() << "\n";
}

void drop_privileges(const std::string& user) {
    const passwd* entry = ::getpwnam(user.c_str());
    if (entry == nullptr) {
        throw std::runtime_error("Can't get information about user " + user + ".");
    }
    if (::getuid() == entry->pw_uid) {
        return;
    }
    if (::initgroups(entry->pw_name, entry->pw_gid) != 0 || ::setgid(entry->pw_gid) != 0 ||
        ::setuid(entry->pw_uid) != 0) {
        throw std::runtime_error("Can't change to user " + user + ": " +
                                 std::string(std::strerror(errno)));
    }
}

database_watch::database_watch(std::optional<std::string> directory)
    : directory_(std::move(directory)), snapshot_(take()) {}

bool database_watch::changed() {
    std::string now = take();
    if (now == snapshot_) {
        return false;
    }
    snapshot_ = std::move(now);
    return true;
}

std::string database_watch::take() const {
    std::string state;
    if (!directory_) {
        return state;
    }
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(*directory_, error)) {
        const auto stamp = entry.last_write_time(error);
        state += entry.path().filename().string() + ":" +
                 std::to_string(stamp.time_since_epoch().count()) + "\n";
    }
    return state;
}

sigset_t block_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR2}) {
        sigaddset(&signals, sig);
    }
    ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    return signals;
}

void serve_signals(const sigset_t& signals, service& svc, logger& log,
                   const daemon_settings& settings) {
    database_watch watch(settings.database_directory);
    auto next_self_check = std::chrono::steady_clock::now() + settings.self_check;
    for (;;) {
        // Wake for signals, and for the SelfCheck interval when one is configured.
        timespec wait{1, 0};
        const int sig = ::sigtimedwait(&signals, nullptr, &wait);
        if (sig < 0) {
            if (settings.self_check.count() > 0 &&
                std::chrono::steady_clock::now() >= next_self_check) {
                next_self_check = std::chrono::steady_clock::now() + settings.self_check;
                if (watch.changed()) {
                    log.info("SelfCheck: Database modification detected. Forcing reload.");
                    svc.request_reload();
                } else {
                    log.verbose("SelfCheck: Database status OK.");
                }
            }
            continue;
        }
        if (sig == SIGHUP) {
            log.reopen();
            log.info("SIGHUP caught: re-opening log file.");
            continue;
        }
        if (sig == SIGUSR2) {
            log.info("SIGUSR2 caught: scheduling database reload");
            svc.request_reload();
            continue;
        }
        log.info(std::string("Received signal ") + std::to_string(sig) + ", shutting down");
        return;
    }
}

}  // namespace ringscan::daemon
