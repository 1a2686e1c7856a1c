// ringscand: a clamd-compatible scanning daemon on an io_uring reactor.
//
// Startup order matters: everything that can fail with a message (config, signatures,
// sockets, io_uring) happens before we daemonize and before shard threads exist, so the
// operator sees the error and the exit code.

#include "matcher/engine.h"
#include "matcher/signatures.h"
#include "proto/clamd_reply.h"
#include "proto/config.h"
#include "ring/reactor.h"
#include "tools/ringscand/clamd_connection.h"
#include "tools/ringscand/daemon_config.h"
#include "tools/ringscand/logger.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <iostream>
#include <optional>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace {

using namespace ringscan;

constexpr std::string_view clamav_protocol_version = "1.4.6";
constexpr std::string_view default_config_path = "/etc/clamav/clamd.conf";

struct command_line {
    std::string config_path{default_config_path};
    bool foreground = false;
    bool print_version = false;
};

void print_usage() {
    std::cout << "Usage: ringscand [options]\n"
                 "  -c, --config-file=FILE  clamd.conf to read (default "
              << default_config_path
              << ")\n"
                 "  -F, --foreground        stay in the foreground (as Foreground yes)\n"
                 "  -V, --version           print the version and exit\n"
                 "  -h, --help              this help\n";
}

/// Parses clamd's options; returns nullopt after printing usage or an error.
std::optional<command_line> parse_command_line(int argc, char** argv, int& exit_code) {
    command_line cli;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-c" || arg == "--config-file") {
            if (i + 1 >= argc) {
                std::cerr << "ERROR: " << arg << " needs a file name\n";
                exit_code = 1;
                return std::nullopt;
            }
            cli.config_path = argv[++i];
        } else if (arg.starts_with("--config-file=")) {
            cli.config_path = std::string(arg.substr(std::strlen("--config-file=")));
        } else if (arg == "-F" || arg == "--foreground") {
            cli.foreground = true;
        } else if (arg == "-V" || arg == "--version") {
            cli.print_version = true;
        } else if (arg == "-h" || arg == "--help") {
            print_usage();
            exit_code = 0;
            return std::nullopt;
        } else {
            std::cerr << "ERROR: Unknown option " << arg << "\n";
            print_usage();
            exit_code = 1;
            return std::nullopt;
        }
    }
    return cli;
}

/// clamd's User: after binding the sockets and opening the log, become that user.
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

/// Every connection is a descriptor: lift the soft limit to the hard one, as a daemon
/// serving thousands of clients must (the default soft limit is often 1024).
void raise_descriptor_limit(daemon::logger& log) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            log.warning("could not raise the open-file limit: " +
                        std::string(std::strerror(errno)));
        }
    }
}

/// SelfCheck: remembers the database files' names and mtimes; changed() compares anew.
class database_watch {
public:
    explicit database_watch(std::optional<std::string> directory)
        : directory_(std::move(directory)), snapshot_(take()) {}

    bool changed() {
        std::string now = take();
        if (now == snapshot_) {
            return false;
        }
        snapshot_ = std::move(now);
        return true;
    }

private:
    std::string take() const {
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

    std::optional<std::string> directory_;
    std::string snapshot_;
};

/// Classic double-fork-free daemonization: done before any thread exists.
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

int run(const command_line& cli) {
    const proto::clamd_config config = proto::clamd_config::load(cli.config_path);
    daemon::daemon_settings settings = daemon::settings_from(config);
    settings.foreground = settings.foreground || cli.foreground;

    daemon::logger log;
    log.configure({settings.log_file, settings.foreground, settings.log_time, settings.log_verbose,
                   settings.log_syslog, settings.log_facility});
    for (const std::string& warning : config.warnings()) {
        log.warning(warning);
    }

    ring::probe_io_uring();
    raise_descriptor_limit(log);

    daemon::service svc(settings, log, std::string(clamav_protocol_version));
    svc.load_database();

    ring::reactor_options options;
    options.shard_count = settings.max_shards;
    options.tcp = settings.tcp;
    options.local = settings.local;
    options.backlog = settings.backlog;
    options.log = [&log](std::string_view line) { log.warning(line); };
    ring::reactor reactor(std::move(options), [&svc](ring::connection& conn) {
        return std::make_unique<daemon::clamd_connection>(svc, conn);
    });
    for (unsigned i = 0; i < reactor.shard_count(); ++i) {
        svc.shards.push_back(std::make_unique<daemon::shard_context>());
    }

    if (!settings.foreground) {
        daemonize();
    }
    if (settings.pid_file) {
        write_pid_file(*settings.pid_file);
    }
    if (settings.user) {
        drop_privileges(*settings.user);  // sockets, log and pid file are open by now
    }

    // Signals are taken synchronously by this thread; shards never see them.
    sigset_t signals;
    sigemptyset(&signals);
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR2}) {
        sigaddset(&signals, sig);
    }
    ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    reactor.start();
    for (const auto& endpoint : settings.tcp) {
        log.info("TCP: Bound to [" + (endpoint.address.empty() ? "*" : endpoint.address) +
                 "]:" + std::to_string(endpoint.port));
    }
    if (settings.local) {
        log.info("LOCAL: Unix socket file " + settings.local->path);
    }
    log.info("ringscand ready: " + std::to_string(reactor.shard_count()) +
             " io_uring shards, protocol " + *svc.version());

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
        break;
    }
    reactor.request_stop();
    reactor.wait();
    // A reload thread still compiling refers to `svc`: let it finish before we unwind.
    while (svc.reload_in_progress.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (settings.pid_file) {
        ::unlink(settings.pid_file->c_str());
    }
    log.info("Shutting down the main socket.");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<command_line> cli = parse_command_line(argc, argv, exit_code);
    if (!cli) {
        return exit_code;
    }
    if (cli->print_version) {
        std::cout << "ringscand " << RINGSCAN_VERSION << " (clamd protocol ClamAV "
                  << clamav_protocol_version << ")\n";
        return 0;
    }
    try {
        return run(*cli);
    } catch (const proto::config_error& error) {
        std::cerr << error.what() << "\n";
        std::cerr << "ERROR: Can't open/parse the config file " << cli->config_path << "\n";
    } catch (const matcher::load_error& error) {
        std::cerr << "ERROR: " << error.what() << "\n";
    } catch (const ring::setup_error& error) {
        std::cerr << "ERROR: " << error.what() << "\n";
    } catch (const std::exception& error) {
        std::cerr << "ERROR: " << error.what() << "\n";
    }
    return 1;
}
