#pragma once

/// What the daemon process does around its service, in clamd's order and wording: raise
/// the descriptor limit, detach, write the pid file, drop privileges, and serve signals on
/// the main thread (SIGHUP reopens the log, SIGUSR2 and SelfCheck reload, SIGTERM/SIGINT
/// end the wait). Called from main() before and after the reactor runs; none of it runs on
/// a shard. Startup steps throw std::runtime_error with clamd's message.

#include "daemon/daemon_config.h"
#include "daemon/logger.h"

#include <optional>
#include <signal.h>
#include <string>

namespace ringscan::daemon {

struct service;

/// Every connection is a descriptor: lifts the soft limit to the hard one, as a daemon
/// serving thousands of clients must (the default soft limit is often 1024).
void raise_descriptor_limit(logger& log);

/// Classic double-fork-free daemonization; must run before any thread exists.
void daemonize();

/// clamd's PidFile (mode 0644).
void write_pid_file(const std::string& path);

/// clamd's User: after binding the sockets and opening the log, become that user.
void drop_privileges(const std::string& user);

/// SelfCheck: remembers the database files' names and mtimes; changed() compares anew.
class database_watch {
public:
    explicit database_watch(std::optional<std::string> directory);
    /// True (once) when a file was added, removed or modified since the last call.
    bool changed();

private:
    [[nodiscard]] std::string take() const;

    std::optional<std::string> directory_;
    std::string snapshot_;
};

/// Blocks the signals serve_signals() takes, in the calling thread and so in every thread
/// it starts afterwards (shards never see them), and ignores SIGPIPE. Call before the
/// reactor starts its shards.
[[nodiscard]] sigset_t block_signals();

/// Waits on the main thread for the signals in `signals`, runs SelfCheck every
/// settings.self_check, and returns when SIGTERM or SIGINT arrives (also what SHUTDOWN
/// sends).
void serve_signals(const sigset_t& signals, service& svc, logger& log,
                   const daemon_settings& settings);

}  // namespace ringscan::daemon
