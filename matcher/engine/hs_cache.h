#pragma once

/// An on-disk cache of compiled Hyperscan databases, so that a restart (or reload) with
/// unchanged signatures skips Hyperscan compilation.
///
/// An entry is keyed by the SHA-256 of a canonical encoding of everything that shapes the
/// compiled database: compile kind and mode, every expression or literal (length-prefixed),
/// flags, ids, the used hs_expr_ext_t fields, hs_version() and the target platform. The file
/// `<hex key>.hsdb` holds a header (magic, format version, key, payload kind and length,
/// SHA-256 of the payload) and the hs_serialize_database() bytes. Anything that does not
/// verify (short, corrupt, other key, refused by hs_deserialize_database) is a miss: the
/// request is compiled again and the entry replaced. Entries are written to a temp file in
/// the same directory and renamed into place, so concurrent processes never see half files.
///
/// Compile refusals that name an expression (HS_COMPILER_ERROR with an index) are cached
/// too: they are as deterministic as databases, and the engine's drop-and-retry loop then
/// replays its refusals from the cache instead of recompiling each attempt.
///
/// The directory is created (0700) if missing and used only when it is owned by this user
/// and not writable by group or others: a database is native code-like input to the scanner
/// (hs_deserialize_database only checks a CRC), so a directory others can write to is not
/// trusted and caching is off for it. Size: after each store the directory is trimmed to
/// `max_bytes`, oldest (least recently used) entries first; hits refresh the file time.
///
/// Thread safety: compile_with_cache() is reentrant; concurrent callers (threads or
/// processes) may share one directory. `hs_cache_stats` is the caller's to synchronise.

#include <hs/hs.h>
#include <tl/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ringscan::matcher::detail {

/// Where compiled databases are kept; empty directory = caching off.
struct hs_cache_config {
    std::filesystem::path directory;
    /// Trim the directory to this many bytes of entries after a store (0 = unbounded). One
    /// signature set compiles to tens of MB (38,853 literals: 5.8 MB), so 1 GiB keeps the
    /// entries of several signature versions (a reload back to one still hits) yet is bounded.
    std::uint64_t max_bytes = std::uint64_t{1} << 30U;
};

/// The exact inputs of one Hyperscan compile: the arguments of hs_compile_ext_multi (when
/// `literal` is false) or hs_compile_lit_multi (when true). Views only: the arrays must
/// outlive the call. Empty `flags`/`ids`/`extensions` stand for the NULL array (all zero /
/// no extension), as in Hyperscan; otherwise each has one entry per pattern.
struct hs_compile_request {
    bool literal = false;
    unsigned mode = HS_MODE_STREAM;
    std::span<const char* const> patterns;  ///< NUL-terminated expressions, or literal bytes
    std::span<const std::size_t> lengths;   ///< literal lengths (literal requests only)
    std::span<const unsigned> flags;
    std::span<const unsigned> ids;
    std::span<const hs_expr_ext_t* const> extensions;  ///< expressions only; entries may be null
    const hs_platform_info_t* platform = nullptr;      ///< null: the current host
};

/// Why a compile failed: Hyperscan's message, and the index (into `patterns`) of the
/// pattern it refused when it names one.
struct compile_failure {
    std::string message;
    std::optional<std::size_t> failing_index;
};

/// What the cache did, for the engine to report. Summable across calls.
struct hs_cache_stats {
    std::uint64_t hits = 0;           ///< answered from the cache (databases and refusals)
    std::uint64_t misses = 0;         ///< compiled (every request when caching is off)
    std::uint64_t invalid = 0;        ///< entries found but not trusted (counted in misses)
    std::uint64_t store_failures = 0; ///< entries that could not be written
    std::uint64_t evicted = 0;        ///< entries removed to stay under max_bytes
    std::uint64_t bytes_read = 0;
    std::uint64_t bytes_written = 0;

    hs_cache_stats& operator+=(const hs_cache_stats& other);
};

/// Returns a database for `request` that the caller owns (hs_free_database): deserialized
/// from the cache when an intact entry for the exact same request, Hyperscan version and
/// platform exists, else compiled and then stored (best effort: a cache that cannot be read
/// or written never fails the compile). Errors: the compile failure, with the index of the
/// refused pattern when Hyperscan names one (the caller may drop it and retry).
[[nodiscard]] tl::expected<hs_database_t*, compile_failure> compile_with_cache(
    const hs_compile_request& request, const hs_cache_config& config, hs_cache_stats& stats);

/// The cache file name of `request` ("<64 hex digits>.hsdb"), or empty when the request
/// is malformed (array sizes disagree). Exposed for tests and tooling.
[[nodiscard]] std::string hs_cache_file_name(const hs_compile_request& request);

/// Creates `directory` (0700) when missing and says whether it may be trusted: owned by
/// this user and writable by nobody else, so every file in it was written by this user.
[[nodiscard]] bool prepare_cache_directory(const std::filesystem::path& directory);

/// Writes `parts` one after another as `directory/name`, atomically: a temporary file in
/// the same directory (mode 0600; abandoned ones are removed by later trims), flushed,
/// then renamed over `name`. False when any step fails (nothing is left behind).
bool write_cache_file(const std::filesystem::path& directory, const std::string& name,
                      std::span<const std::string_view> parts);

/// $RINGSCAN_CACHE_DIR if set and non-empty, else $XDG_CACHE_HOME/ringscan (absolute
/// only, per the XDG spec), else $HOME/.cache/ringscan; empty when none is known.
[[nodiscard]] std::filesystem::path default_cache_directory();

}  // namespace ringscan::matcher::detail
