#pragma once

/// The compiled matcher (Hyperscan streaming database + hash tables) and its per-shard
/// and per-stream state, split the way Hyperscan wants it (hsbench's Engine /
/// EngineContext / EngineStream):
///
///   engine       immutable after compile; shared by every shard via shared_ptr<const>.
///   scanner      one per shard; owns the hs_scratch_t. Never shared between threads.
///   stream_scan  one per INSTREAM; owns the hs_stream_t and incremental hash state.
///                Bytes are scanned as they arrive: no reassembly.

#include "matcher/signatures.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher {

/// What a stream reports. first_match: one name, the one clamscan/clamd report by default
/// (SCAN, INSTREAM). all_matches: every matching signature, as `clamscan --allmatch` and
/// clamd's ALLMATCHSCAN report them; the scan never stops early.
enum class scan_mode : std::uint8_t { first_match, all_matches };

struct verdict {
    bool infected = false;
    std::string_view name;  ///< points into the engine; valid while the engine lives
};

/// How engine::compile builds its Hyperscan databases.
struct compile_options {
    /// Where compiled databases are cached, keyed by their exact inputs (signature content,
    /// Hyperscan version, CPU features), so a restart or reload with unchanged signatures
    /// skips compilation. Created (0700) if missing; used only when owned by this user and
    /// not writable by others. Empty: no cache.
    std::filesystem::path cache_directory;
    /// load_database(): read an engine snapshot from cache_directory when one matches. False
    /// compiles anyway (and replaces the snapshot), to compare the two.
    bool read_snapshot = true;
};

/// What the compiled-database cache did during one compile.
struct compile_report {
    std::uint64_t cache_hits = 0;    ///< databases read from the cache
    std::uint64_t cache_misses = 0;  ///< databases compiled (all of them without a cache)
    std::uint64_t cache_bytes_read = 0;
    std::uint64_t cache_bytes_written = 0;
    /// The whole engine was read from a snapshot (load_database): nothing was parsed or
    /// compiled, and cache_bytes_read is the snapshot's size.
    bool from_snapshot = false;
};

/// $RINGSCAN_CACHE_DIR if set, else $XDG_CACHE_HOME/ringscan, else ~/.cache/ringscan
/// (empty when none is known): the cache the daemon and tools use unless told otherwise.
[[nodiscard]] std::filesystem::path default_cache_directory();

class engine;

/// A database as ringscand and ringscan load it: the compiled engine and what loading its
/// files reported.
struct loaded_database {
    std::shared_ptr<const engine> compiled;
    /// signature_set::skipped of the load: lines ClamAV accepts that this engine cannot
    /// match yet, each naming file:line.
    std::vector<std::string> skipped;
    std::optional<database_version> daily_version;  ///< signature_set::daily_version
};

/// load_signatures() of every path, merged in order, then engine::compile() -- unless
/// options.cache_directory holds a snapshot (engine/engine_snapshot.h) of the engine this
/// same build compiled from files of the same names and contents: that engine is read back
/// without parsing or compiling anything (compile_stats().from_snapshot). A fresh compile
/// stores its snapshot there (best effort). Throws load_error as those two do.
[[nodiscard]] loaded_database load_database(std::span<const std::filesystem::path> paths,
                                            const compile_options& options = {});

class engine {
public:
    /// Compiles a signature set. Throws load_error on a Hyperscan compile failure (naming
    /// the signature). An empty set is valid and matches nothing.
    [[nodiscard]] static std::shared_ptr<const engine> compile(const signature_set& signatures,
                                                               const compile_options& options = {});

    /// What the compile of this engine took from and gave to the cache.
    [[nodiscard]] const compile_report& compile_stats() const;

    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    [[nodiscard]] std::size_t signature_count() const;
    /// True when some signatures are evaluated over whole objects (.ldb, YARA, EP/section
    /// offsets, PE section and import hashes): content_scan then keeps each object in memory.
    [[nodiscard]] bool keeps_objects() const;
    /// Signatures the loader accepted but Hyperscan refused ("file:line: reason"); they
    /// never match. Add them to signature_set::skipped when reporting what was skipped.
    [[nodiscard]] const std::vector<std::string>& skipped() const;

    struct impl;
    [[nodiscard]] const impl& internals() const { return *impl_; }

private:
    friend loaded_database load_database(std::span<const std::filesystem::path> paths,
                                         const compile_options& options);
    explicit engine(std::unique_ptr<impl> state);
    std::unique_ptr<impl> impl_;
};

/// Per-shard scan context: owns Hyperscan scratch sized for the engines it has seen.
class scanner {
public:
    scanner();
    ~scanner();
    scanner(const scanner&) = delete;
    scanner& operator=(const scanner&) = delete;

    struct impl;
    [[nodiscard]] impl& internals() { return *impl_; }

private:
    std::unique_ptr<impl> impl_;
};

/// How one stream_scan matches its bytes.
struct stream_options {
    scan_mode mode = scan_mode::first_match;
    /// Match the stream as this ClamAV target type (matcher/signatures.h `target::`) plus
    /// the generic signatures, instead of typing it from its first bytes. ClamAV does so for
    /// the buffers it derives from an object: normalized HTML is target::html, normalized
    /// text target::text (content_scan routes them).
    std::optional<std::uint8_t> as_type;
    /// Match hash signatures (and the allow list) against the whole stream. ClamAV does for
    /// the normalized HTML files, not for normalized text.
    bool hashes = true;
    /// The stream's total length, when the caller knows it (a buffer, a file): a hash kind
    /// no signature of that size can match is then not computed at all, as ClamAV checks
    /// sizes before hashing. A stream that ends at another length reports scan_error().
    std::optional<std::uint64_t> length;
};

/// One stream being scanned. Keeps the engine alive (a reload may swap engines while a
/// stream is in flight; the stream finishes on the engine it started with).
class stream_scan {
public:
    stream_scan(std::shared_ptr<const engine> compiled, scanner& context,
                scan_mode mode = scan_mode::first_match);
    stream_scan(std::shared_ptr<const engine> compiled, scanner& context,
                const stream_options& options);
    ~stream_scan();
    stream_scan(const stream_scan&) = delete;
    stream_scan& operator=(const stream_scan&) = delete;

    /// Scans the next bytes of the stream. Cheap to call with any chunking; once a body
    /// signature matched, later bytes only feed the hashes.
    void feed(std::span<const std::byte> bytes);
    /// Ends the stream: flushes Hyperscan, checks whole-stream hashes, returns the verdict.
    [[nodiscard]] verdict finish();
    /// After finish(): every matching signature name, each once, in the order in which
    /// `clamscan --allmatch` first prints it (body signatures in ClamAV's matcher order,
    /// then MD5, SHA1, SHA256 hashes, each kind's exact-size entry before its `*` entry).
    /// ClamAV may print a name several times (once per occurrence and per 128 KiB read
    /// window); the list holds it once. In first_match mode: the verdict's name, or empty.
    /// Views point into the engine, valid while it lives. Empty before finish().
    [[nodiscard]] const std::vector<std::string_view>& matches() const;
    /// True when Hyperscan or OpenSSL failed during this stream (out of memory, broken
    /// scratch): matching stopped early, so a clean verdict is not trustworthy. Never throws.
    [[nodiscard]] bool scan_error() const;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

/// Convenience: scans one complete buffer.
[[nodiscard]] verdict scan_buffer(const std::shared_ptr<const engine>& compiled, scanner& context,
                                  std::span<const std::byte> bytes);

/// Convenience: every match in one complete buffer (all_matches mode), in --allmatch order.
[[nodiscard]] std::vector<std::string_view> scan_buffer_all(
    const std::shared_ptr<const engine>& compiled, scanner& context,
    std::span<const std::byte> bytes);

}  // namespace ringscan::matcher
