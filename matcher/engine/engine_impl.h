#pragma once

/// The state behind engine, scanner and stream_scan. Private to matcher/: the daemon only
/// sees the classes in matcher/engine.h.

#include "matcher/engine.h"
#include "matcher/engine/object_scratch.h"
#include "matcher/engine/prefilter.h"

#include <hs/hs.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

struct snapshot_codec;  // engine/engine_snapshot.cc

struct object_database;  // engine/object_match.h

// --- RAII owners of the C resources -----------------------------------------------------

struct hs_database_deleter {
    void operator()(hs_database_t* database) const noexcept { hs_free_database(database); }
};
using hs_database_ptr = std::unique_ptr<hs_database_t, hs_database_deleter>;

struct hs_scratch_deleter {
    void operator()(hs_scratch_t* scratch) const noexcept { hs_free_scratch(scratch); }
};
using hs_scratch_ptr = std::unique_ptr<hs_scratch_t, hs_scratch_deleter>;

/// Closing without a callback drops matches still pending at end of stream: used only for
/// streams that are abandoned (destroyed before finish()) or already decided.
struct hs_stream_deleter {
    void operator()(hs_stream_t* stream) const noexcept {
        hs_close_stream(stream, nullptr, nullptr, nullptr);
    }
};
using hs_stream_ptr = std::unique_ptr<hs_stream_t, hs_stream_deleter>;

struct evp_md_deleter {
    void operator()(EVP_MD* md) const noexcept { EVP_MD_free(md); }
};
using evp_md_ptr = std::unique_ptr<EVP_MD, evp_md_deleter>;

struct evp_md_ctx_deleter {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using evp_md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, evp_md_ctx_deleter>;

// --- Signature names ------------------------------------------------------------------

/// Read-only bytes of a file mapped into memory, unmapped when the last owner lets go.
/// Pages are read in when first touched, and count as resident memory only from then.
class mapped_bytes {
public:
    /// Maps `length` bytes of `fd` from `offset` (any offset); null when mmap fails.
    [[nodiscard]] static std::shared_ptr<const mapped_bytes> map(int fd, std::uint64_t offset,
                                                                 std::size_t length);
    ~mapped_bytes();
    mapped_bytes(const mapped_bytes&) = delete;
    mapped_bytes& operator=(const mapped_bytes&) = delete;

    [[nodiscard]] std::string_view bytes() const { return {data_, length_}; }

private:
    mapped_bytes(void* mapping, std::size_t mapping_length, const char* data, std::size_t length)
        : mapping_(mapping), mapping_length_(mapping_length), data_(data), length_(length) {}
    void* mapping_;
    std::size_t mapping_length_;
    const char* data_;
    std::size_t length_;
};

/// Every signature name in one buffer; verdicts are views into it. Names are only read
/// when a verdict is reported, so an engine read from a snapshot leaves them in the
/// snapshot file (mapped) instead of copying them into memory.
class name_pool {
public:
    struct ref {
        std::uint32_t offset = 0;
        std::uint32_t length = 0;
    };

    ref add(std::string_view name);
    [[nodiscard]] std::string_view get(ref r) const {
        const char* base = mapped_ ? mapped_->bytes().data() : text_.data();
        return {base + r.offset, r.length};
    }
    void shrink_to_fit();

private:
    friend struct snapshot_codec;  // engine_snapshot.cc reads and writes the fields
    std::string text_;
    std::shared_ptr<const mapped_bytes> mapped_;  ///< set instead of text_ by a snapshot
};

// --- Whole-file hashes ----------------------------------------------------------------

inline constexpr std::size_t hash_kind_count = 3;

[[nodiscard]] constexpr std::size_t index_of(hash_kind kind) {
    return static_cast<std::size_t>(kind);
}

inline constexpr std::array<hash_kind, hash_kind_count> all_hash_kinds = {
    hash_kind::md5, hash_kind::sha1, hash_kind::sha256};

/// The hash signatures of one kind, sorted by (digest, size) for binary search. Digests
/// are stored at their own length (16 bytes for MD5, most entries), apart from the sizes
/// and names, so that a table costs its digest plus 16 bytes per signature.
class hash_table {
public:
    static constexpr std::uint64_t any_size = std::numeric_limits<std::uint64_t>::max();

    /// One signature, as build() takes it.
    struct entry {
        std::array<std::uint8_t, 32> digest{};  ///< unused tail bytes are zero
        std::uint64_t size = any_size;
        name_pool::ref name;
    };

    /// Takes the entries in load order, digests of `digest_length` bytes. Of several names
    /// for one (digest, size) the one ClamAV reports wins: libclamav quicksorts each size's
    /// bucket unstably and binary-searches it, so which one depends on the whole bucket
    /// (often, not always, the last loaded).
    void build(std::vector<entry> entries, std::size_t digest_length);

    /// The name matching a stream of `length` bytes: the entry with that exact size, else
    /// one with size `*` (ClamAV prefers the sized one); null when none.
    [[nodiscard]] const name_pool::ref* find(std::span<const std::uint8_t> digest,
                                             std::uint64_t length) const;
    /// Both matches, as --allmatch reports them: [0] the exact-size entry, [1] the `*` one.
    [[nodiscard]] std::array<const name_pool::ref*, 2> find_each(
        std::span<const std::uint8_t> digest, std::uint64_t length) const;

    [[nodiscard]] bool empty() const { return values_.empty(); }
    /// False when no stream longer than this can match (no `*` sizes): hashing can stop.
    [[nodiscard]] bool accepts_length(std::uint64_t length) const {
        return has_any_size_ || length <= max_size_;
    }
    /// Whether a stream of exactly `length` bytes can match an entry.
    [[nodiscard]] bool has_length(std::uint64_t length) const {
        return has_any_size_ || std::binary_search(sizes_.begin(), sizes_.end(), length);
    }

private:
    friend struct snapshot_codec;  // engine_snapshot.cc reads and writes the fields
    struct value {
        std::uint64_t size = any_size;
        name_pool::ref name;
    };
    /// The entry for exactly (digest, size), or null.
    [[nodiscard]] const value* lookup(std::span<const std::uint8_t> digest,
                                      std::uint64_t size) const;

    std::size_t digest_length_ = 0;
    std::vector<std::uint8_t> digests_;  ///< digest_length_ bytes per entry, in values_ order
    std::vector<value> values_;
    std::vector<std::uint64_t> sizes_;  ///< distinct sizes of the sized entries, sorted
    std::uint64_t max_size_ = 0;
    bool has_any_size_ = false;
};

// --- ClamAV's report order for literal body signatures ---------------------------------

/// Where ClamAV's Boyer-Moore matcher (matcher-bm.c) finds a literal: it files each pattern
/// under the hash of one 3-byte window of it (the first window whose bucket was still empty
/// when the pattern was loaded, else the first), keeps each bucket's list ordered by the
/// window's first byte with later patterns ahead of earlier equal ones, and reports matches
/// in order of buffer position of that window, then list position. Replaying the loads at
/// compile time gives every literal its window shift and list rank, so the report order of
/// any two matches is a comparison of (start + shift, rank).
struct bm_place {
    std::uint32_t shift = 0;
    std::uint32_t rank = 0;
};

/// The key ClamAV reports matches in: smaller first. Within one read window ClamAV runs
/// the typed (target) matcher before the generic one, and in each the Boyer-Moore literals
/// before the Aho-Corasick patterns. BM: window = report window, rank = bucket-list position;
/// AC (approximated): window = match end, rank = load order.
struct report_key {
    std::uint8_t root = 0;     ///< 0 typed, 1 generic
    std::uint8_t matcher = 0;  ///< 0 Boyer-Moore, 1 Aho-Corasick
    std::uint64_t window = 0;
    std::uint32_t rank = 0;

    friend bool operator<(const report_key& a, const report_key& b) {
        if (a.root != b.root) {
            return a.root < b.root;
        }
        if (a.matcher != b.matcher) {
            return a.matcher < b.matcher;
        }
        return a.window != b.window ? a.window < b.window : a.rank < b.rank;
    }
};

/// What the engine knows about one body signature (index = Hyperscan pattern id).
struct body_info {
    name_pool::ref name;
    std::uint32_t length = 0;  ///< literal length; for expressions the minimum length
    bool literal = false;
    bool boyer_moore = false;  ///< a literal of the generic root: ClamAV's BM order applies
    std::uint8_t target = 0;
    bool end_of_file = false;  ///< EOF-n[,m]: verified at finish() (fixed length only)
    std::uint64_t eof_value = 0;
    std::uint64_t eof_shift = 0;
    bm_place place;
    /// Index into engine::impl::programs when found through the prefilter, else none.
    std::uint32_t program = std::numeric_limits<std::uint32_t>::max();
};

inline constexpr std::uint32_t no_program = std::numeric_limits<std::uint32_t>::max();

/// The databases of one ClamAV target type (performance.md §6.3: one database per type, so a
/// file is only scanned with the signatures of its own type plus the generic ones).
struct shard {
    std::uint8_t target = 0;
    hs_database_ptr direct;     ///< full expressions; pattern id = body index
    hs_database_ptr prefilter;  ///< rarest-literal factors; pattern id = factor index
    std::size_t direct_count = 0;
    std::size_t factor_count = 0;
    std::size_t database_bytes = 0;
};

/// One prefilter literal and the bodies verified when it is found.
struct factor_info {
    std::uint32_t first = 0;  ///< into engine::impl::factor_bodies
    std::uint32_t count = 0;
    std::uint32_t suffix_max = 0;  ///< longest suffix of its bodies: bytes needed after a hit
};

/// Engine ids, never reused (engine::impl::id).
extern std::atomic<std::uint64_t> next_engine_id;

/// Fetches the OpenSSL digest of every hash kind the engine's tables use
/// (engine::impl::digests). Returns the algorithm OpenSSL lacks, or null.
[[nodiscard]] const char* fetch_digests(engine::impl& state);

/// Replays cli_bm_addpatt for `patterns` (in load order, each >= 3 bytes).
[[nodiscard]] std::vector<bm_place> place_like_clamav_bm(
    const std::vector<std::string_view>& patterns);

}  // namespace ringscan::matcher::detail

namespace ringscan::matcher {

/// Immutable after compile(); read concurrently by every shard.
struct engine::impl {
    impl() = default;
    ~impl();
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    /// Drops the spare capacity the compile left in the tables (growth by doubling).
    void shrink_to_fit();

    /// Distinguishes engines for scratch sizing; never reused (addresses can be).
    std::uint64_t id = 0;
    std::size_t signature_count = 0;
    detail::name_pool names;

    // Body signatures, by target type: shards[shard_of[t]] (-1: none).
    std::vector<detail::shard> shards;
    std::array<int, 256> shard_of{};
    std::vector<detail::body_info> bodies;
    std::vector<detail::verify_program> programs;
    std::vector<detail::factor_info> factors;
    std::vector<std::uint32_t> factor_bodies;
    /// Bytes of history a stream keeps to verify prefilter hits (0: none needed).
    std::uint32_t history = 0;
    std::uint32_t max_body_length = 0;
    /// Only generic `*` literals: the first match can be decided while streaming.
    bool literals_only = true;
    bool typed = false;         ///< some signature needs the file type
    bool has_end_of_file = false;
    std::vector<std::string> skipped;  ///< signatures Hyperscan refused (file:line: reason)
    compile_report report;

    // Hashes, indexed by hash_kind; digests[k] is null when tables k are both empty.
    std::array<detail::hash_table, detail::hash_kind_count> hashes;
    /// Allow list (.fp/.sfp): a stream with one of these hashes is clean.
    std::array<detail::hash_table, detail::hash_kind_count> allowed;
    bool has_allowed = false;
    std::array<detail::evp_md_ptr, detail::hash_kind_count> digests;

    /// Signatures evaluated over whole objects (engine/object_match.h); never null.
    std::unique_ptr<detail::object_database> objects;
};

/// Owned by one shard: Hyperscan scratch grown to fit every engine it has been used with.
struct scanner::impl {
    detail::hs_scratch_ptr scratch;
    std::uint64_t sized_for = 0;  ///< engine id the scratch was last (re)allocated for
    detail::object_scratch objects;  ///< hit lists of whole-object matching

    /// Makes the scratch valid for `compiled`. False when Hyperscan cannot allocate it.
    [[nodiscard]] bool prepare(const engine::impl& compiled) noexcept;
};

/// One stream: its Hyperscan stream state, its hash contexts, and the match so far.
struct stream_scan::impl {
    impl(std::shared_ptr<const engine> compiled, scanner::impl& context,
         const stream_options& options) noexcept;

    void feed(std::span<const std::byte> bytes) noexcept;
    verdict finish() noexcept;
    /// Hyperscan match callback body.
    int on_match(bool prefilter, unsigned int id, unsigned long long to) noexcept;

    /// What a Hyperscan callback needs: the stream, and which database reported.
    struct sink {
        impl* self = nullptr;
        bool prefilter = false;
    };

    std::shared_ptr<const engine> owner;  ///< keeps `compiled` alive
    const engine::impl& compiled;
    scanner::impl& context;
    scan_mode mode = scan_mode::first_match;

    /// Open Hyperscan streams: [0] generic direct, [1] generic prefilter, [2] typed direct,
    /// [3] typed prefilter. Null when absent or once body matching is over.
    std::array<detail::hs_stream_ptr, 4> streams;
    std::array<sink, 4> sinks;
    bool typed_open = false;  ///< the file type is known and its shard's streams opened
    std::optional<std::uint8_t> forced_type;  ///< stream_options::as_type
    // Prefilter hits still to verify (factor, end of the factor), and the bytes kept for it.
    std::vector<std::pair<std::uint32_t, std::uint64_t>> pending;
    std::vector<unsigned char> tail;
    std::uint64_t tail_begin = 0;
    std::vector<bool> verified;  ///< bodies already matched through the prefilter
    std::array<detail::evp_md_ctx_ptr, detail::hash_kind_count> hashing;  ///< null: not needed
    std::uint64_t length = 0;                                             ///< bytes fed so far
    std::optional<std::uint64_t> expected_length;  ///< stream_options::length

    // Best body match so far, in ClamAV's report order (see detail::bm_place).
    bool matched = false;
    detail::report_key match_key;
    std::uint32_t match_id = 0;
    // Every body that matched, with the end of its first match. Hyperscan reports each
    // pattern once (SINGLEMATCH), so this holds at most one entry per signature -- except
    // EOF-anchored ones, whose ends are kept while they can still be within reach of the
    // end (see prune_end_of_file).
    std::vector<std::pair<std::uint32_t, std::uint64_t>> hits;
    std::array<unsigned char, 4096> head{};  ///< first bytes, for file typing
    std::size_t head_length = 0;
    std::vector<std::string_view> names;  ///< matches(), filled by finish()

    bool error = false;  ///< Hyperscan or OpenSSL failed; matching stopped early
    bool finished = false;
    verdict result;

private:
    void record(std::uint32_t id, std::uint64_t end) noexcept;
    bool open_streams(const detail::shard& target_shard, std::size_t first) noexcept;
    void open_typed() noexcept;
    void scan_streams(std::size_t first, std::span<const unsigned char> bytes) noexcept;
    void resolve_pending(std::span<const unsigned char> chunk, std::uint64_t chunk_begin,
                         bool stream_ended) noexcept;
    void keep_tail(std::span<const unsigned char> chunk, std::uint64_t chunk_begin) noexcept;
    [[nodiscard]] bool scanning() const noexcept;
    void scan_bodies(std::span<const std::byte> bytes) noexcept;
    void update_hashes(std::span<const std::byte> bytes) noexcept;
    void stop_bodies() noexcept;
    void finish_hashes(bool detect) noexcept;
    void prune_end_of_file() noexcept;
    void finish_bodies();
};

}  // namespace ringscan::matcher
