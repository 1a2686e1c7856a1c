#pragma once

/// What ringbench sends: a fixed list of items (files, synthetic payloads or generated
/// mail), visited in a seeded order. Request number `seq` always maps to the same item,
/// so with --requests the expected verdict counts are known before the run.
///
/// Items are loaded into memory once and shared read-only by every worker thread
/// (INSTREAM and milter bodies are sent straight from here). SCAN and FILDES need files:
/// materialize() writes in-memory items to a spool directory.

#include "bench/ringbench/mail_gen.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ringscan::bench {

enum class expectation : std::uint8_t {
    clean,     ///< generated without a test signature: a FOUND here is a false positive
    infected,  ///< carries a planted test signature: anything but FOUND is a miss
    unknown,   ///< a file from --dir with no EICAR in it: no expectation
};

struct item {
    std::string name;  ///< file path relative to --dir, or "mail-000042", "fixed-0007"
    std::string data;  ///< the whole content
    std::string path;  ///< absolute path on disk (dir items, or after materialize())
    expectation expect = expectation::unknown;
    // The milter view of the item: headers, where the body starts, the envelope.
    std::vector<std::pair<std::string, std::string>> headers;
    std::size_t body_offset = 0;
    std::string sender = "<ringbench@example.org>";
    std::string recipient = "<postmaster@example.net>";
};

struct workload {
    std::vector<item> items;
    std::vector<std::uint32_t> order;  ///< seeded permutation of item indices
    std::string description;           ///< one line for the report
    std::uint64_t total_bytes = 0;

    [[nodiscard]] const item& for_seq(std::uint64_t seq) const {
        return items[order[static_cast<std::size_t>(seq % order.size())]];
    }
    /// Planted items among requests [first, first + n).
    [[nodiscard]] std::uint64_t expected_infected(std::uint64_t first, std::uint64_t n) const;
};

/// All regular files under `dir` (recursively, symlinks not followed), sorted by path,
/// at most `max_bytes` in total. Items containing the EICAR string expect FOUND, the
/// others have no expectation. Fails with a message in `error`.
[[nodiscard]] bool load_directory(const std::string& dir, std::uint64_t seed,
                                  std::uint64_t max_bytes, workload& out, std::string& error);

/// `count` distinct payloads of exactly `size` bytes (mail-like text or random bytes);
/// round(count * infected_share) of them carry EICAR at a seeded offset.
enum class payload_kind : std::uint8_t { text, random };
[[nodiscard]] bool make_fixed(std::size_t size, std::size_t count, payload_kind kind,
                              double infected_share, std::uint64_t seed, workload& out,
                              std::string& error);

/// The generated mail mix (see mail_gen.h).
[[nodiscard]] workload make_mail_workload(const mail_mix_options& options);

/// Writes items without a path into `dir` (created if needed) and sets their path.
[[nodiscard]] bool materialize(workload& w, const std::string& dir, std::string& error);

/// Fills an item's milter view from its data (headers split off, envelope from From/To).
void derive_milter_view(item& it);

}  // namespace ringscan::bench
