#pragma once

/// Engine snapshots: a compiled engine written whole to the cache directory -- names,
/// tables, verification programs, Hyperscan databases -- and read back at the next start
/// or reload instead of parsing and compiling the signatures again.
///
/// Key: XXH3-128 of the format version, the GNU build id of the running binary (the
/// payload is this build's structures byte for byte, so no other build may read it),
/// Hyperscan's version and the host's CPU features, and then, per database path in load
/// order, the path and the name, size and content of every database file in it (all of
/// them, whether the loader would use them or not: any change gives another key).
///
/// File `<32 hex digits>.engine`: a header (magic, format version, key, payload length,
/// payload XXH3-128) and the payload. A file that does not verify is a miss (the caller
/// compiles and stores a fresh one). Stores go to a temporary file renamed into place;
/// afterwards the oldest snapshots are removed beyond `snapshot_budget` bytes. The
/// directory must pass the same ownership check as the Hyperscan cache (hs_cache.h).
///
/// An engine read back keeps its signature names in a read-only mapping of the file. That
/// is safe because snapshots are only ever replaced by rename or removed, never rewritten
/// in place: the mapped inode keeps its bytes for as long as the engine lives.

#include "matcher/engine/engine_impl.h"
#include "matcher/signatures.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {

/// Bytes of snapshots kept per cache directory (all of ../shared/sigs makes ~100 MB), so
/// that several signature versions and builds keep theirs. The newest always stays.
inline constexpr std::uint64_t snapshot_budget = std::uint64_t{1} << 30U;

using snapshot_key = std::array<std::uint8_t, 16>;

/// What a load reports besides the engine, stored with it.
struct snapshot_extras {
    std::vector<std::string> skipped;  ///< signature_set::skipped
    std::optional<database_version> daily_version;
};

/// The key of loading `paths` as load_signatures() takes them; nullopt when a path or
/// file cannot be read (the normal load then reports it) or the binary has no build id.
[[nodiscard]] std::optional<snapshot_key> snapshot_key_of(
    std::span<const std::filesystem::path> paths);

/// The payload of a snapshot of `compiled`.
[[nodiscard]] std::string serialize_engine(const engine::impl& compiled,
                                           const snapshot_extras& extras);

/// Maps `length` bytes at `offset` of the payload from the snapshot file, so the engine
/// can use them in place for as long as it lives; null: copy them instead.
using region_mapper =
    std::function<std::shared_ptr<const mapped_bytes>(std::size_t offset, std::size_t length)>;

/// The engine in `payload` (its id is fresh, its compile_report says from_snapshot), or
/// null when the payload is malformed or a Hyperscan database in it is refused. With a
/// `map_region`, the signature names stay in the snapshot file (see name_pool).
[[nodiscard]] std::unique_ptr<engine::impl> deserialize_engine(
    std::span<const std::byte> payload, snapshot_extras& extras,
    const region_mapper& map_region = {});

/// Writes the snapshot of `compiled` under `key` into `directory`. Best effort: false
/// when it could not be written (the directory is untrusted, full, read-only...).
bool store_snapshot(const std::filesystem::path& directory, const snapshot_key& key,
                    const engine::impl& compiled, const snapshot_extras& extras);

/// The engine stored under `key` in `directory`, or null when there is none that verifies.
[[nodiscard]] std::unique_ptr<engine::impl> load_snapshot(const std::filesystem::path& directory,
                                                          const snapshot_key& key,
                                                          snapshot_extras& extras);

/// `<32 hex digits>.engine`.
[[nodiscard]] std::string snapshot_file_name(const snapshot_key& key);

}  // namespace ringscan::matcher::detail
