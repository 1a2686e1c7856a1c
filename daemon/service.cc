#include "daemon/service.h"

#include "base/memory.h"
#include "proto/clamd_reply.h"

#include <filesystem>
#include <signal.h>
#include <span>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace ringscan::daemon {

void shard_context::set_activity(std::string_view command, std::string_view path) {
    const std::lock_guard lock(activity.mutex);
    activity.command.assign(command);
    activity.path.assign(path);
    activity.since = std::chrono::steady_clock::now();
}

void shard_context::set_idle() {
    const std::lock_guard lock(activity.mutex);
    activity.command.clear();
    activity.path.clear();
    activity.since = std::chrono::steady_clock::now();
}

service::service(const daemon_settings& daemon_settings, logger& daemon_log,
                 std::string clamd_version)
    : settings(daemon_settings), log(daemon_log), protocol_version(std::move(clamd_version)) {
    for (const std::string& pattern : settings.exclude_paths) {
        regex_t compiled;
        if (::regcomp(&compiled, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) {
            throw std::runtime_error("Can't compile regular expression " + pattern +
                                     " (ExcludePath)");
        }
        exclude_patterns_.push_back(compiled);
    }
}

service::~service() {
    for (regex_t& compiled : exclude_patterns_) {
        ::regfree(&compiled);
    }
}

bool service::excluded(const std::string& path) const {
    for (const regex_t& compiled : exclude_patterns_) {
        if (::regexec(&compiled, path.c_str(), 0, nullptr, 0) == 0) {
            return true;
        }
    }
    return false;
}

const std::shared_ptr<const matcher::engine>& service::engine_for(shard_context& shard) const {
    const std::uint64_t generation = engine_generation.load(std::memory_order_acquire);
    if (shard.engine == nullptr || shard.engine_generation != generation) {
        shard.engine = engine.load(std::memory_order_acquire);
        shard.engine_generation = generation;
    }
    return shard.engine;
}

void service::load_database() {
    const auto started = std::chrono::steady_clock::now();
    matcher::compile_options compile;
    compile.cache_directory = matcher::default_cache_directory();
    matcher::loaded_database loaded;
    if (settings.database_directory) {
        const std::filesystem::path directory(*settings.database_directory);
        loaded = matcher::load_database(std::span(&directory, 1), compile);
    } else {
        loaded.compiled = matcher::engine::compile(matcher::embedded_default_signatures(), compile);
    }
    for (const std::string& skipped : loaded.skipped) {
        log.verbose("Skipping signature: " + skipped);
    }
    if (!loaded.skipped.empty()) {
        log.warning(std::to_string(loaded.skipped.size()) +
                    " signatures use features this build cannot match yet and were skipped");
    }
    std::shared_ptr<const matcher::engine> fresh = std::move(loaded.compiled);
    const matcher::compile_report& report = fresh->compile_stats();
    const std::string cache =
        compile.cache_directory.empty() ? std::string("off") : compile.cache_directory.string();
    if (report.from_snapshot) {
        log.verbose("Read the compiled engine from its snapshot in " + cache + " (" +
                    std::to_string(report.cache_bytes_read) + " bytes)");
    } else {
        log.verbose("Compiled databases: " + std::to_string(report.cache_hits) +
                    " from the cache, " + std::to_string(report.cache_misses) +
                    " compiled (cache " + cache + ")");
    }
    const std::size_t count = fresh->signature_count();
    install(std::move(fresh), loaded.daily_version);
    give_back_free_memory();
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    log.info("Loaded " + std::to_string(count) + " signatures from " +
             (settings.database_directory ? *settings.database_directory
                                          : std::string("the embedded default database")) +
             " in " + std::to_string(elapsed.count()) + " ms");
}

void service::install(std::shared_ptr<const matcher::engine> fresh,
                      const std::optional<matcher::database_version>& daily) {
    version_.store(std::make_shared<const std::string>(proto::version_string(
                       protocol_version, daily ? std::optional(daily->version) : std::nullopt,
                       daily ? daily->build_time : std::string())),
                   std::memory_order_release);
    engine.store(std::move(fresh), std::memory_order_release);
    engine_generation.fetch_add(1, std::memory_order_acq_rel);
}

void service::request_reload() {
    if (reload_in_progress.exchange(true)) {
        return;  // one reload at a time; this request is covered by the running one
    }
    // Compile off the shards: scans keep using the old engine until the swap, and
    // streams that started on it finish on it (they hold a reference).
    std::thread([this] {
        try {
            load_database();
            log.info("Database correctly reloaded.");
        } catch (const std::exception& error) {
            // As clamd: a failed reload keeps the old engine serving.
            log.error(std::string("reload failed, keeping the current database: ") + error.what());
        }
        reload_in_progress.store(false);
    }).detach();
}

void service::wait_for_reload() const {
    while (reload_in_progress.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void service::request_shutdown() {
    // The main thread waits for signals; SIGTERM takes the same drain path as `kill`.
    ::kill(::getpid(), SIGTERM);
}

}  // namespace ringscan::daemon
