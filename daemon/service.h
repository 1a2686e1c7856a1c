#pragma once

/// What the daemon's connections share: the process-wide service (settings, log, the
/// current engine and its reload machinery) and one shard_context per reactor shard.

#include "daemon/daemon_config.h"
#include "daemon/logger.h"
#include "matcher/engine.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <regex.h>
#include <string>
#include <vector>

namespace ringscan::daemon {

/// What one shard is doing, for STATS. Written by its shard at command start/end (never
/// per byte), read by whichever shard answers STATS; the mutex is uncontended.
struct shard_activity {
    std::mutex mutex;
    std::string command;  ///< empty: idle
    std::string path;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
};

/// One per shard, touched only by that shard's thread (except `activity`).
struct shard_context {
    matcher::scanner scanner;
    std::shared_ptr<const matcher::engine> engine;
    std::uint64_t engine_generation = 0;
    shard_activity activity;
    unsigned busy_jobs = 0;

    void set_activity(std::string_view command, std::string_view path);
    void set_idle();
};

/// Process-wide; fields are read-only once the reactor runs, except the engine slot
/// (swapped by reload) and the counters, which are atomics.
struct service {
    /// Throws std::runtime_error naming an ExcludePath pattern that does not compile.
    /// `protocol_version` is the clamd release we answer as ("1.4.6").
    service(const daemon_settings& daemon_settings, logger& daemon_log,
            std::string protocol_version);
    ~service();
    service(const service&) = delete;
    service& operator=(const service&) = delete;

    const daemon_settings& settings;
    logger& log;
    std::string protocol_version;
    std::vector<std::unique_ptr<shard_context>> shards;

    /// ExcludePath patterns, compiled once (POSIX extended, as clamd); true if `path` matches.
    [[nodiscard]] bool excluded(const std::string& path) const;

    /// The engine new scans use. A reload stores a new one and bumps the generation;
    /// shards notice the generation at their next scan and drop their old reference.
    std::atomic<std::shared_ptr<const matcher::engine>> engine;
    std::atomic<std::uint64_t> engine_generation{0};
    std::atomic<bool> reload_in_progress{false};

private:
    std::vector<regex_t> exclude_patterns_;
    std::atomic<std::shared_ptr<const std::string>> version_;

public:
    /// Loads and compiles DatabaseDirectory (or the embedded set), logging what was skipped,
    /// and makes it the engine new scans use. Throws matcher::load_error.
    void load_database();
    /// Makes `fresh` the engine new scans use and VERSION report (`daily`: the daily
    /// database's version, if one was loaded). What load_database() ends with; tests give
    /// the service an engine this way.
    void install(std::shared_ptr<const matcher::engine> fresh,
                 const std::optional<matcher::database_version>& daily);
    /// VERSION reply: "ClamAV 1.4.6", or "ClamAV 1.4.6/<daily>/<build time>" with a daily DB.
    [[nodiscard]] std::shared_ptr<const std::string> version() const {
        return version_.load(std::memory_order_acquire);
    }

    /// The shard's engine for a scan starting now (picks up a finished reload).
    const std::shared_ptr<const matcher::engine>& engine_for(shard_context& shard) const;

    /// Starts a background reload unless one is running; returns at once.
    void request_reload();
    /// Waits until a reload thread still compiling (it refers to this object) has finished.
    void wait_for_reload() const;
    /// Asks the daemon to drain and exit (what SHUTDOWN and SIGTERM do).
    static void request_shutdown();
};

}  // namespace ringscan::daemon
