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
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace ringscan::matcher {

struct verdict {
    bool infected = false;
    std::string_view name;  ///< points into the engine; valid while the engine lives
};

class engine {
public:
    /// Compiles a signature set. Throws load_error on a Hyperscan compile failure (naming
    /// the signature). An empty set is valid and matches nothing.
    [[nodiscard]] static std::shared_ptr<const engine> compile(const signature_set& signatures);

    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    [[nodiscard]] std::size_t signature_count() const;

    struct impl;
    [[nodiscard]] const impl& internals() const { return *impl_; }

private:
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

/// One stream being scanned. Keeps the engine alive (a reload may swap engines while a
/// stream is in flight; the stream finishes on the engine it started with).
class stream_scan {
public:
    stream_scan(std::shared_ptr<const engine> compiled, scanner& context);
    ~stream_scan();
    stream_scan(const stream_scan&) = delete;
    stream_scan& operator=(const stream_scan&) = delete;

    /// Scans the next bytes of the stream. Cheap to call with any chunking; once a body
    /// signature matched, later bytes only feed the hashes.
    void feed(std::span<const std::byte> bytes);
    /// Ends the stream: flushes Hyperscan, checks whole-stream hashes, returns the verdict.
    [[nodiscard]] verdict finish();
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

}  // namespace ringscan::matcher
