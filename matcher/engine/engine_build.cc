/// The build side of the engine: what engine::compile and a snapshot load run once per
/// database -- body signatures into shards and Hyperscan databases, hash tables (with
/// ClamAV's duplicate-hash replay), the Boyer-Moore placement replay, the name pool. Nothing
/// here runs per scanned byte; the runtime is stream_scan.cc.

#include "matcher/engine.h"

#include "base/assert.h"
#include "base/hex.h"
#include "matcher/engine/engine_impl.h"
#include "matcher/engine/hs_compile.h"
#include "matcher/engine/object_match.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <utility>

namespace ringscan::matcher {
namespace detail {

std::atomic<std::uint64_t> next_engine_id{1};

name_pool::ref name_pool::add(std::string_view name) {
    if (text_.size() + name.size() > std::numeric_limits<std::uint32_t>::max()) {
        throw load_error("signature names exceed 4 GiB");
    }
    const ref r{static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(name.size())};
    text_.append(name);
    return r;
}

void name_pool::shrink_to_fit() { text_.shrink_to_fit(); }

std::shared_ptr<const mapped_bytes> mapped_bytes::map(int fd, std::uint64_t offset,
                                                      std::size_t length) {
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t start = offset - offset % page;
    const std::size_t mapping_length = length + static_cast<std::size_t>(offset - start);
    void* mapping = ::mmap(nullptr, mapping_length == 0 ? 1 : mapping_length, PROT_READ,
                           MAP_PRIVATE, fd, static_cast<off_t>(start));
    if (mapping == MAP_FAILED) {
        return nullptr;
    }
    const char* data = static_cast<const char*>(mapping) + (offset - start);
    return std::shared_ptr<const mapped_bytes>(
        new mapped_bytes(mapping, mapping_length == 0 ? 1 : mapping_length, data, length));
}

mapped_bytes::~mapped_bytes() { ::munmap(mapping_, mapping_length_); }

namespace {

bool key_less(const hash_table::entry& a, const hash_table::entry& b) {
    return std::tie(a.digest, a.size) < std::tie(b.digest, b.size);
}

bool same_key(const hash_table::entry& a, const hash_table::entry& b) {
    return a.digest == b.digest && a.size == b.size;
}

// libclamav's hm_cmp on a little-endian host: the first four bytes as a number, in
// descending order (its `(i < r) * 2 - 1`), then the rest ascending.
int clamav_hash_order(const hash_table::entry& a, const hash_table::entry& b,
                      std::size_t digest_length) {
    std::uint32_t first_a = 0;
    std::uint32_t first_b = 0;
    std::memcpy(&first_a, a.digest.data(), sizeof first_a);
    std::memcpy(&first_b, b.digest.data(), sizeof first_b);
    if (first_a != first_b) {
        return first_a < first_b ? 1 : -1;
    }
    return std::memcmp(a.digest.data() + 4, b.digest.data() + 4, digest_length - 4);
}

// libclamav's hm_sort: a quicksort of [left, right) around the first element (not stable,
// which decides which of several names for one hash a lookup finds).
void clamav_hash_sort(std::vector<hash_table::entry>& items, std::size_t left, std::size_t right,
                      std::size_t digest_length) {
    while (left + 1 < right) {
        const hash_table::entry pivot = items[left];
        std::size_t low = left + 1;
        std::size_t high = right;
        while (low < high) {
            if (clamav_hash_order(items[low], pivot, digest_length) > 0) {
                --high;
                if (low == high) {
                    break;
                }
                std::swap(items[low], items[high]);
            } else {
                ++low;
            }
        }
        --low;
        if (low != left) {
            std::swap(items[low], items[left]);
        }
        clamav_hash_sort(items, left, low, digest_length);
        left = high;  // the second recursive call, as a loop
    }
}

// libclamav's hm_scan: the binary search over a sorted bucket; the index it lands on.
std::size_t clamav_hash_search(const std::vector<hash_table::entry>& items,
                               const hash_table::entry& wanted, std::size_t digest_length) {
    std::size_t low = 0;
    std::size_t high = items.size() - 1;
    while (low <= high) {
        const std::size_t middle = (low + high) / 2;
        const int order = clamav_hash_order(wanted, items[middle], digest_length);
        if (order < 0) {
            if (middle == 0) {
                break;
            }
            high = middle - 1;
        } else if (order > 0) {
            low = middle + 1;
        } else {
            return middle;
        }
    }
    return items.size();  // not reached for a hash the bucket holds
}

// Of several lines with one hash and size, the name ClamAV reports: each size (and `*`)
// is one bucket in load order, quicksorted, then binary-searched. Only the buckets of
// `repeated_sizes` are replayed; `entries` is in load order.
using duplicate_winners =
    std::map<std::pair<std::array<std::uint8_t, 32>, std::uint64_t>, name_pool::ref>;

duplicate_winners clamav_duplicate_winners(const std::vector<hash_table::entry>& entries,
                                           const std::set<std::uint64_t>& repeated_sizes,
                                           std::size_t digest_length) {
    std::map<std::uint64_t, std::vector<hash_table::entry>> buckets;
    for (const hash_table::entry& e : entries) {
        if (repeated_sizes.contains(e.size)) {
            buckets[e.size].push_back(e);
        }
    }
    duplicate_winners winners;
    for (auto& [size, items] : buckets) {
        std::vector<std::array<std::uint8_t, 32>> digests;
        digests.reserve(items.size());
        for (const auto& e : items) {
            digests.push_back(e.digest);
        }
        std::sort(digests.begin(), digests.end());
        clamav_hash_sort(items, 0, items.size(), digest_length);
        for (auto d = std::adjacent_find(digests.begin(), digests.end()); d != digests.end();
             d = std::adjacent_find(d + 1, digests.end())) {
            hash_table::entry wanted;
            wanted.digest = *d;
            const std::size_t at = clamav_hash_search(items, wanted, digest_length);
            if (at < items.size()) {
                winners[{*d, size}] = items[at].name;
            }
        }
    }
    return winners;
}

}  // namespace

void hash_table::build(std::vector<entry> entries, std::size_t digest_length) {
    // By key, equal keys in load order; `entries` itself stays in load order, which decides
    // the name of a repeated key (clamav_duplicate_winners).
    std::vector<std::uint32_t> order(entries.size());
    std::iota(order.begin(), order.end(), 0U);
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
        return key_less(entries[a], entries[b]);
    });
    std::set<std::uint64_t> repeated_sizes;
    for (std::size_t k = 1; k < order.size(); ++k) {
        if (same_key(entries[order[k - 1]], entries[order[k]])) {
            repeated_sizes.insert(entries[order[k]].size);
        }
    }
    const duplicate_winners winners =
        repeated_sizes.empty() ? duplicate_winners{}
                               : clamav_duplicate_winners(entries, repeated_sizes, digest_length);
    std::vector<entry> kept;
    kept.reserve(entries.size());
    for (const std::uint32_t index : order) {
        const entry& e = entries[index];
        if (!kept.empty() && same_key(kept.back(), e)) {
            kept.back().name = winners.at({e.digest, e.size});
        } else {
            kept.push_back(e);
        }
        if (e.size == any_size) {
            has_any_size_ = true;
        } else {
            max_size_ = std::max(max_size_, e.size);
            sizes_.push_back(e.size);
        }
    }
    digest_length_ = digest_length;
    digests_.clear();
    digests_.reserve(kept.size() * digest_length);
    values_.clear();
    values_.reserve(kept.size());
    for (const entry& e : kept) {
        digests_.insert(digests_.end(), e.digest.begin(),
                        e.digest.begin() + static_cast<std::ptrdiff_t>(digest_length));
        values_.push_back({e.size, e.name});
    }
    std::sort(sizes_.begin(), sizes_.end());
    sizes_.erase(std::unique(sizes_.begin(), sizes_.end()), sizes_.end());
    sizes_.shrink_to_fit();
}

std::vector<bm_place> place_like_clamav_bm(const std::vector<std::string_view>& patterns) {
    // matcher-bm.c: BM_MIN_LENGTH = BM_BLOCK_SIZE = 3, HASH(a,b,c) = 211a + 37b + c (so
    // distinct windows can share a bucket), one singly linked list per bucket.
    constexpr std::size_t bucket_count = 211 * 255 + 37 * 255 + 255 + 1;
    constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
    const auto bucket_of = [](std::string_view p, std::size_t at) {
        const auto byte = [&](std::size_t i) {
            return static_cast<std::size_t>(static_cast<unsigned char>(p[at + i]));
        };
        return 211 * byte(0) + 37 * byte(1) + byte(2);
    };
    std::vector<std::uint32_t> head(bucket_count, none);
    std::vector<std::uint32_t> next(patterns.size(), none);
    std::vector<unsigned char> first(patterns.size(), 0);
    std::vector<std::size_t> bucket(patterns.size(), 0);
    std::vector<bm_place> places(patterns.size());
    for (std::size_t id = 0; id < patterns.size(); ++id) {
        const std::string_view p = patterns[id];
        RINGSCAN_ASSERT(p.size() >= 3);
        std::size_t shift = 0;
        for (std::size_t at = 0; at + 3 <= p.size(); ++at) {
            if (head[bucket_of(p, at)] == none) {
                shift = at;
                break;
            }
        }
        const std::size_t b = bucket_of(p, shift);
        const auto p0 = static_cast<unsigned char>(p[shift]);
        const auto self = static_cast<std::uint32_t>(id);
        // Insert before the first entry whose first byte is <= ours.
        std::uint32_t prev = none;
        std::uint32_t cur = head[b];
        while (cur != none && p0 < first[cur]) {
            prev = cur;
            cur = next[cur];
        }
        next[self] = cur;
        if (prev == none) {
            head[b] = self;
        } else {
            next[prev] = self;
        }
        first[self] = p0;
        bucket[self] = b;
        places[id].shift = static_cast<std::uint32_t>(shift);
    }
    for (const std::uint32_t start : head) {
        std::uint32_t rank = 0;
        for (std::uint32_t cur = start; cur != none; cur = next[cur]) {
            places[cur].rank = rank++;
        }
    }
    return places;
}

namespace {

constexpr std::size_t digest_length(hash_kind kind) {
    switch (kind) {
        case hash_kind::md5:
            return 16;
        case hash_kind::sha1:
            return 20;
        case hash_kind::sha256:
            return 32;
    }
    return 0;
}

constexpr const char* digest_algorithm(hash_kind kind) {
    switch (kind) {
        case hash_kind::md5:
            return "MD5";
        case hash_kind::sha1:
            return "SHA1";
        case hash_kind::sha256:
            return "SHA256";
    }
    return "";
}

std::string escaped_literal(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 4);
    for (const char c : bytes) {
        hex::append_escaped_byte(out, static_cast<std::uint8_t>(c));
    }
    return out;
}

// One Hyperscan expression per body signature, with its flags and offset limits.
void add_expression(const body_signature& body, unsigned id, expression_batch& input) {
    const bool literal = body.expression.empty();
    const std::uint64_t min_length = literal ? body.bytes.size() : body.min_length;
    // Unbounded patterns never have a fixed length: max(uint64) stands for "no maximum".
    const std::uint64_t max_length =
        literal ? body.bytes.size()
                : (body.max_length.has_value() ? std::uint64_t{body.max_length.value_or(0)}
                                               : std::numeric_limits<std::uint64_t>::max());
    std::string expression = literal ? escaped_literal(body.bytes) : body.expression;
    hs_expr_ext_t ext{};
    unsigned flags = HS_FLAG_DOTALL;
    switch (body.offset.from) {
        case match_offset::anchor::any:
            flags |= HS_FLAG_SINGLEMATCH;
            break;
        case match_offset::anchor::absolute:
            flags |= HS_FLAG_SINGLEMATCH;
            if (max_length == min_length) {
                // Fixed length: the start range is an end range.
                ext.flags = HS_EXT_FLAG_MIN_OFFSET | HS_EXT_FLAG_MAX_OFFSET;
                ext.min_offset = body.offset.value + min_length;
                ext.max_offset = body.offset.value + body.offset.max_shift + min_length;
            } else {
                const std::uint64_t low = body.offset.value;
                const std::uint64_t high = low + body.offset.max_shift;
                // Hyperscan refuses an empty repeat (`.{0}`): offset 0 is a plain anchor.
                const std::string skip =
                    high == 0
                        ? std::string()
                        : ".{" + std::to_string(low) +
                              (high != low ? "," + std::to_string(high) : std::string()) + "}";
                expression = "^" + skip + "(?:" + expression + ")";
            }
            break;
        case match_offset::anchor::end_of_file:
            break;  // every end is kept, checked against the size at finish()
    }
    input.expressions.push_back(std::move(expression));
    input.flags.push_back(flags);
    input.ids.push_back(id);
    input.extensions.push_back(ext);
}

void set_refused(const body_signature& body, const std::string& message, engine::impl& state) {
    state.skipped.push_back((body.origin.empty() ? body.name : body.origin) +
                            ": Hyperscan refuses the pattern (" + message + ")");
}

std::vector<hex_token> literal_tokens(std::string_view bytes) {
    std::vector<hex_token> tokens(bytes.size());
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        tokens[i].bytes[b >> 6U] |= std::uint64_t{1} << (b & 63U);
    }
    return tokens;
}

// The prefilter plan of a body, when it can be found through one: `*` offset, bounded.
std::optional<verify_program> plan_of(const body_signature& body) {
    if (body.offset.from != match_offset::anchor::any) {
        return std::nullopt;
    }
    if (body.expression.empty()) {
        return plan_prefilter(literal_tokens(body.bytes));
    }
    if (body.hex.empty()) {
        return std::nullopt;
    }
    auto translated = translate_hex(body.hex);
    if (!translated) {
        return std::nullopt;
    }
    return plan_prefilter(translated->tokens);
}

void compile_bodies(const std::vector<body_signature>& bodies, compile_context& context,
                    engine::impl& state) {
    // Identical literals are all compiled: in all-match mode each name is reported, and the
    // report order decides which one a first-match scan gives.
    struct shard_input {
        expression_batch direct;
        factor_batch factors;
    };
    std::vector<shard_input> inputs;
    state.shard_of.fill(-1);
    std::vector<std::vector<std::uint32_t>> factor_members;
    std::vector<std::string_view> bm_patterns;
    std::vector<std::size_t> bm_ids;
    state.bodies.reserve(bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        const body_signature& body = bodies[i];
        const bool literal = body.expression.empty();
        if (literal && body.bytes.empty()) {
            throw load_error("signature " + body.name + " has an empty body pattern");
        }
        if (body.bytes.size() > std::numeric_limits<std::uint32_t>::max() ||
            i >= std::numeric_limits<unsigned>::max()) {
            throw load_error("signature " + body.name + " is too large");
        }
        body_info info;
        info.name = state.names.add(body.name);
        info.literal = literal;
        info.length = literal ? static_cast<std::uint32_t>(body.bytes.size()) : body.min_length;
        info.target = body.target;
        info.boyer_moore = literal && body.target == target::any && body.bytes.size() >= 3;
        if (body.offset.from == match_offset::anchor::end_of_file) {
            info.end_of_file = true;
            info.eof_value = body.offset.value;
            info.eof_shift = body.offset.max_shift;
            state.has_end_of_file = true;
        }
        if (body.target != target::any) {
            state.typed = true;
        }
        if (!info.boyer_moore || body.offset.from != match_offset::anchor::any) {
            state.literals_only = false;
        }
        if (info.boyer_moore) {
            bm_patterns.emplace_back(body.bytes);
            bm_ids.push_back(i);
        }
        const std::uint32_t longest = literal ? info.length : body.max_length.value_or(0);
        state.max_body_length = std::max(state.max_body_length, longest);

        int& slot = state.shard_of[body.target];
        if (slot < 0) {
            slot = static_cast<int>(state.shards.size());
            state.shards.emplace_back().target = body.target;
            inputs.emplace_back();
        }
        shard_input& input = inputs[static_cast<std::size_t>(slot)];
        if (auto plan = plan_of(body)) {
            info.program = static_cast<std::uint32_t>(state.programs.size());
            const auto placed =
                input.factors.add(*plan, static_cast<std::uint32_t>(state.factors.size()));
            if (placed.added) {
                state.factors.emplace_back();
                factor_members.emplace_back();
            }
            factor_info& factor = state.factors[placed.id];
            factor.suffix_max = std::max(factor.suffix_max, plan->suffix_max());
            factor_members[placed.id].push_back(static_cast<std::uint32_t>(i));
            if (!plan->trivial()) {
                state.history =
                    std::max(state.history, plan->prefix_max() +
                                                static_cast<std::uint32_t>(plan->factor().size()) +
                                                plan->suffix_max());
            }
            state.programs.push_back(std::move(*plan));
        } else {
            add_expression(body, static_cast<unsigned>(i), input.direct);
        }
        state.bodies.push_back(info);
    }
    for (std::size_t f = 0; f < state.factors.size(); ++f) {
        state.factors[f].first = static_cast<std::uint32_t>(state.factor_bodies.size());
        state.factors[f].count = static_cast<std::uint32_t>(factor_members[f].size());
        state.factor_bodies.insert(state.factor_bodies.end(), factor_members[f].begin(),
                                   factor_members[f].end());
    }
    const auto places = place_like_clamav_bm(bm_patterns);
    for (std::size_t k = 0; k < bm_ids.size(); ++k) {
        state.bodies[bm_ids[k]].place = places[k];
    }
    for (std::size_t s = 0; s < state.shards.size(); ++s) {
        shard& target_shard = state.shards[s];
        shard_input& input = inputs[s];
        const auto refused = [&](std::size_t at, const std::string& reason) {
            set_refused(bodies[input.direct.ids[at]], reason, state);
        };
        target_shard.direct.reset(
            compile_expressions(input.direct, HS_MODE_STREAM, context, refused, "body signatures"));
        target_shard.direct_count = input.direct.expressions.size();
        target_shard.prefilter.reset(
            input.factors.compile(HS_MODE_STREAM, context, "prefilter literals"));
        target_shard.factor_count = input.factors.size();
        for (const hs_database_t* db : {target_shard.direct.get(), target_shard.prefilter.get()}) {
            std::size_t size = 0;
            if (db != nullptr && hs_database_size(db, &size) == HS_SUCCESS) {
                target_shard.database_bytes += size;
            }
        }
    }
}

void build_tables(const std::vector<hash_signature>& hashes, engine::impl& state,
                  std::array<hash_table, hash_kind_count>& tables) {
    std::array<std::vector<hash_table::entry>, hash_kind_count> entries;
    for (const hash_signature& sig : hashes) {
        hash_table::entry e;
        const std::size_t used = digest_length(sig.kind);
        std::copy_n(sig.digest.begin(), used, e.digest.begin());
        e.size = sig.size.value_or(hash_table::any_size);
        e.name = state.names.add(sig.name);
        entries[index_of(sig.kind)].push_back(e);
    }
    for (const hash_kind kind : all_hash_kinds) {
        const std::size_t k = index_of(kind);
        if (!entries[k].empty()) {
            tables[k].build(std::move(entries[k]), digest_length(kind));
        }
    }
}

void compile_hashes(const signature_set& signatures, engine::impl& state) {
    build_tables(signatures.hashes, state, state.hashes);
    build_tables(signatures.allow_hashes, state, state.allowed);
    state.has_allowed = !signatures.allow_hashes.empty();
    if (const char* missing = fetch_digests(state)) {
        throw load_error(std::string("OpenSSL does not provide ") + missing +
                         ", needed by the hash signatures");
    }
}

}  // namespace

const char* fetch_digests(engine::impl& state) {
    for (const hash_kind kind : all_hash_kinds) {
        const std::size_t k = index_of(kind);
        if (state.hashes[k].empty() && state.allowed[k].empty()) {
            continue;
        }
        state.digests[k].reset(EVP_MD_fetch(nullptr, digest_algorithm(kind), nullptr));
        if (!state.digests[k]) {
            return digest_algorithm(kind);
        }
    }
    return nullptr;
}
}  // namespace detail

// --- engine ------------------------------------------------------------------------------

std::filesystem::path default_cache_directory() { return detail::default_cache_directory(); }

std::shared_ptr<const engine> engine::compile(const signature_set& signatures,
                                              const compile_options& options) {
    auto state = std::make_unique<impl>();
    state->id = detail::next_engine_id.fetch_add(1, std::memory_order_relaxed);
    state->signature_count = signatures.size();
    detail::compile_context context;
    context.cache.directory = options.cache_directory;
    detail::compile_bodies(signatures.bodies, context, *state);
    detail::compile_hashes(signatures, *state);
    detail::compile_objects(signatures, context, *state);
    state->report.cache_hits = context.stats.hits;
    state->report.cache_misses = context.stats.misses;
    state->report.cache_bytes_read = context.stats.bytes_read;
    state->report.cache_bytes_written = context.stats.bytes_written;
    auto& pe_hashes = state->objects->pe_hashes;
    detail::build_tables(signatures.section_hashes, *state, pe_hashes.sections);
    detail::build_tables(signatures.import_hashes, *state, pe_hashes.imports);
    pe_hashes.any = !signatures.section_hashes.empty() || !signatures.import_hashes.empty();
    state->shrink_to_fit();
    return std::shared_ptr<const engine>(new engine(std::move(state)));
}

engine::impl::~impl() = default;

void engine::impl::shrink_to_fit() {
    names.shrink_to_fit();
    bodies.shrink_to_fit();
    programs.shrink_to_fit();
    factors.shrink_to_fit();
    factor_bodies.shrink_to_fit();
    objects->shrink_to_fit();
}

engine::engine(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
engine::~engine() = default;

std::size_t engine::signature_count() const { return impl_->signature_count; }

const compile_report& engine::compile_stats() const { return impl_->report; }

bool engine::keeps_objects() const { return !impl_->objects->empty(); }

const std::vector<std::string>& engine::skipped() const { return impl_->skipped; }

}  // namespace ringscan::matcher
