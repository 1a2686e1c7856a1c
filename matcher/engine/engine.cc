#include "matcher/engine.h"

#include "base/assert.h"
#include "base/hex.h"
#include "matcher/engine/engine_impl.h"
#include "matcher/engine/hs_compile.h"
#include "matcher/engine/object_match.h"
#include "matcher/unpack/filetype.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <sys/mman.h>
#include <tuple>
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

const hash_table::value* hash_table::lookup(std::span<const std::uint8_t> digest,
                                            std::uint64_t size) const {
    if (digest.size() < digest_length_) {
        return nullptr;
    }
    // lower_bound over entry indexes, ordered by (digest, size)
    std::size_t low = 0;
    std::size_t high = values_.size();
    while (low < high) {
        const std::size_t middle = low + (high - low) / 2;
        const int order =
            std::memcmp(digests_.data() + middle * digest_length_, digest.data(), digest_length_);
        if (order < 0 || (order == 0 && values_[middle].size < size)) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    if (low == values_.size() || values_[low].size != size ||
        std::memcmp(digests_.data() + low * digest_length_, digest.data(), digest_length_) != 0) {
        return nullptr;
    }
    return &values_[low];
}

const name_pool::ref* hash_table::find(std::span<const std::uint8_t> digest,
                                       std::uint64_t length) const {
    for (const std::uint64_t size : {length, any_size}) {
        if (const value* found = lookup(digest, size)) {
            return &found->name;
        }
    }
    return nullptr;
}

std::array<const name_pool::ref*, 2> hash_table::find_each(std::span<const std::uint8_t> digest,
                                                           std::uint64_t length) const {
    std::array<const name_pool::ref*, 2> found{};
    const std::array<std::uint64_t, 2> sizes = {length, any_size};
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (const value* hit = lookup(digest, sizes[i])) {
            found[i] = &hit->name;
        }
    }
    return found;
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

constexpr std::array<hash_kind, hash_kind_count> all_hash_kinds = {hash_kind::md5, hash_kind::sha1,
                                                                   hash_kind::sha256};

// Hyperscan takes at most UINT_MAX bytes per call.
constexpr std::size_t max_scan_call = 1U << 30;

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

// --- scanner -----------------------------------------------------------------------------

bool scanner::impl::prepare(const engine::impl& compiled) noexcept {
    if (compiled.shards.empty() && compiled.objects->groups.empty()) {
        return true;
    }
    if (scratch && sized_for == compiled.id) {
        return true;
    }
    // Grows the scratch to fit every database of the engine; a scratch stays valid for every
    // database it was allocated for, so streams of an older engine keep working.
    const auto grow = [this](const hs_database_t* db) {
        if (db == nullptr) {
            return true;
        }
        hs_scratch_t* raw = scratch.release();
        const bool grown = hs_alloc_scratch(db, &raw) == HS_SUCCESS;
        scratch.reset(raw);
        return grown;
    };
    for (const detail::shard& target_shard : compiled.shards) {
        if (!grow(target_shard.direct.get()) || !grow(target_shard.prefilter.get())) {
            sized_for = 0;
            return false;
        }
    }
    for (const detail::object_group& group : compiled.objects->groups) {
        if (!grow(group.factors.get()) || !grow(group.direct.get())) {
            sized_for = 0;
            return false;
        }
    }
    if (!grow(compiled.objects->pcre_gates.get())) {
        sized_for = 0;
        return false;
    }
    sized_for = compiled.id;
    return true;
}

scanner::scanner() : impl_(std::make_unique<impl>()) {}
scanner::~scanner() = default;

// --- stream_scan -------------------------------------------------------------------------

namespace detail {
namespace {

int on_hs_match(unsigned int id, unsigned long long /*from*/, unsigned long long to,
                unsigned int /*flags*/, void* context) {
    auto* target = static_cast<stream_scan::impl::sink*>(context);
    return target->self->on_match(target->prefilter, id, to);
}

}  // namespace
}  // namespace detail

stream_scan::impl::impl(std::shared_ptr<const engine> compiled_engine, scanner::impl& scan_context,
                        const stream_options& options) noexcept
    : owner(std::move(compiled_engine)),
      compiled(owner->internals()),
      context(scan_context),
      mode(options.mode),
      forced_type(options.as_type) {
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        sinks[i] = sink{this, i % 2 == 1};
    }
    if (!compiled.shards.empty() && !context.prepare(compiled)) {
        error = true;
    }
    const int generic = compiled.shard_of[target::any];
    if (!error && generic >= 0) {
        static_cast<void>(open_streams(compiled.shards[static_cast<std::size_t>(generic)], 0));
    }
    if (!compiled.typed) {
        typed_open = true;  // nothing to wait for
    } else if (forced_type) {
        typed_open = true;  // typed by the caller: no need to wait for the first bytes
        const int slot = *forced_type == target::any ? -1 : compiled.shard_of[*forced_type];
        if (!error && slot >= 0) {
            static_cast<void>(open_streams(compiled.shards[static_cast<std::size_t>(slot)], 2));
        }
    }
    expected_length = options.length;
    for (const hash_kind kind : detail::all_hash_kinds) {
        const std::size_t k = detail::index_of(kind);
        if (!compiled.digests[k] || !options.hashes) {
            continue;
        }
        if (expected_length && !compiled.hashes[k].has_length(*expected_length) &&
            !compiled.allowed[k].has_length(*expected_length)) {
            continue;  // no signature of this kind has that size: skip the whole pass
        }
        hashing[k].reset(EVP_MD_CTX_new());
        if (!hashing[k] ||
            EVP_DigestInit_ex(hashing[k].get(), compiled.digests[k].get(), nullptr) != 1) {
            hashing[k].reset();
            error = true;
        }
    }
}

bool stream_scan::impl::open_streams(const detail::shard& target_shard,
                                     std::size_t first) noexcept {
    const std::array<const hs_database_t*, 2> databases = {target_shard.direct.get(),
                                                           target_shard.prefilter.get()};
    for (std::size_t i = 0; i < databases.size(); ++i) {
        if (databases[i] == nullptr) {
            continue;
        }
        hs_stream_t* raw = nullptr;
        if (hs_open_stream(databases[i], 0, &raw) != HS_SUCCESS) {
            error = true;
            return false;
        }
        streams[first + i].reset(raw);
    }
    return true;
}

bool stream_scan::impl::scanning() const noexcept {
    return std::any_of(streams.begin(), streams.end(),
                       [](const detail::hs_stream_ptr& s) { return s != nullptr; });
}

void stream_scan::impl::open_typed() noexcept {
    typed_open = true;
    if (error) {
        return;
    }
    const std::uint8_t type =
        detail::target_of(std::span<const unsigned char>(head.data(), head_length));
    const int slot = type == target::any ? -1 : compiled.shard_of[type];
    if (slot < 0 || !open_streams(compiled.shards[static_cast<std::size_t>(slot)], 2)) {
        return;
    }
    // The typed streams start late: give them the bytes so far (all of them in `head`).
    const std::span<const unsigned char> earlier(
        head.data(), std::min(head_length, static_cast<std::size_t>(length)));
    scan_streams(2, earlier);
    resolve_pending({}, length, false);
}

void stream_scan::impl::record(std::uint32_t id, std::uint64_t end) noexcept {
    const detail::body_info& body = compiled.bodies[id];
    if (mode == scan_mode::first_match && compiled.literals_only) {
        // The stream stops once no match can start at or before the best window (feed()).
        const detail::report_key key{1, 0, end - body.length + body.place.shift, body.place.rank};
        if (!matched || key < match_key) {
            matched = true;
            match_key = key;
            match_id = id;
        }
        return;
    }
    try {
        if (body.program != detail::no_program) {
            // Found through the prefilter, maybe more than once: keep the earliest end, as
            // Hyperscan's SINGLEMATCH reports it.
            if (verified.empty()) {
                verified.resize(compiled.bodies.size(), false);
            }
            if (verified[id]) {
                for (auto& hit : hits) {
                    if (hit.first == id) {
                        hit.second = std::min(hit.second, end);
                    }
                }
                return;
            }
            verified[id] = true;
        }
        hits.emplace_back(id, end);
    } catch (...) {
        error = true;
    }
}

int stream_scan::impl::on_match(bool prefilter, unsigned int id, unsigned long long to) noexcept {
    if (!prefilter) {
        record(id, to);
        return error ? 1 : 0;
    }
    try {
        pending.emplace_back(id, to);
    } catch (...) {
        error = true;
        return 1;
    }
    return 0;
}

void stream_scan::impl::resolve_pending(std::span<const unsigned char> chunk,
                                        std::uint64_t chunk_begin, bool stream_ended) noexcept {
    if (pending.empty()) {
        return;
    }
    detail::byte_window window;
    window.head = std::span<const unsigned char>(head.data(), head_length);
    window.tail = tail;
    window.tail_begin = tail_begin;
    window.chunk = chunk;
    window.chunk_begin = chunk_begin;
    window.end = chunk_begin + chunk.size();
    window.stream_ended = stream_ended;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < pending.size(); ++i) {
        const auto [factor_id, factor_end] = pending[i];
        const detail::factor_info& factor = compiled.factors[factor_id];
        if (!stream_ended && factor_end + factor.suffix_max > window.end) {
            pending[kept++] = pending[i];  // its suffix has not arrived yet
            continue;
        }
        for (std::uint32_t k = factor.first; k < factor.first + factor.count; ++k) {
            const std::uint32_t id = compiled.factor_bodies[k];
            const detail::body_info& body = compiled.bodies[id];
            if (!verified.empty() && verified[id]) {
                continue;  // its first match ends before this factor
            }
            const detail::verify_program& program = compiled.programs[body.program];
            if (const auto end = detail::verify(program, window, factor_end)) {
                record(id, *end);
            }
        }
    }
    pending.resize(kept);
}

void stream_scan::impl::keep_tail(std::span<const unsigned char> chunk,
                                  std::uint64_t chunk_begin) noexcept {
    const std::size_t keep = compiled.history;
    if (keep == 0) {
        return;
    }
    try {
        if (chunk.size() >= keep) {
            tail.assign(chunk.end() - static_cast<std::ptrdiff_t>(keep), chunk.end());
        } else {
            tail.insert(tail.end(), chunk.begin(), chunk.end());
            if (tail.size() > keep) {
                tail.erase(tail.begin(),
                           tail.begin() + static_cast<std::ptrdiff_t>(tail.size() - keep));
            }
        }
        tail_begin = chunk_begin + chunk.size() - tail.size();
    } catch (...) {
        error = true;
        stop_bodies();
    }
}

void stream_scan::impl::prune_end_of_file() noexcept {
    // An EOF-n,m match of length L must end in [size-n+L, size-n+m+L]; size >= length, so
    // ends before length-n+L can never qualify. This bounds the kept ends per signature by n.
    std::erase_if(hits, [&](const std::pair<std::uint32_t, std::uint64_t>& hit) {
        const detail::body_info& body = compiled.bodies[hit.first];
        return body.end_of_file && hit.second + body.eof_value < length + body.length;
    });
}

void stream_scan::impl::stop_bodies() noexcept {
    for (auto& s : streams) {
        s.reset();
    }
    pending.clear();
}

void stream_scan::impl::scan_streams(std::size_t first,
                                     std::span<const unsigned char> bytes) noexcept {
    for (std::size_t i = first; i < streams.size(); ++i) {
        std::span<const unsigned char> rest = bytes;
        while (streams[i] && !rest.empty()) {
            const std::size_t n = std::min(rest.size(), detail::max_scan_call);
            const hs_error_t status =
                hs_scan_stream(streams[i].get(), reinterpret_cast<const char*>(rest.data()),
                               static_cast<unsigned int>(n), 0, context.scratch.get(),
                               detail::on_hs_match, &sinks[i]);
            rest = rest.subspan(n);
            if (status != HS_SUCCESS) {
                error = true;
                stop_bodies();
                return;
            }
        }
    }
}

void stream_scan::impl::scan_bodies(std::span<const std::byte> bytes) noexcept {
    const std::span<const unsigned char> chunk(reinterpret_cast<const unsigned char*>(bytes.data()),
                                               bytes.size());
    if (!typed_open && head_length == head.size()) {
        open_typed();
    }
    if (!scanning()) {
        return;
    }
    scan_streams(0, chunk);
    resolve_pending(chunk, length, false);
    keep_tail(chunk, length);
}

void stream_scan::impl::update_hashes(std::span<const std::byte> bytes) noexcept {
    for (std::size_t k = 0; k < hashing.size(); ++k) {
        auto& ctx = hashing[k];
        if (!ctx) {
            continue;
        }
        if (!compiled.hashes[k].accepts_length(length + bytes.size()) &&
            !compiled.allowed[k].accepts_length(length + bytes.size())) {
            ctx.reset();  // no signature of this kind is that long: stop paying for it
        } else if (EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size()) != 1) {
            ctx.reset();
            error = true;
        }
    }
}

void stream_scan::impl::feed(std::span<const std::byte> bytes) noexcept {
    if (finished || bytes.empty()) {
        return;
    }
    if ((compiled.typed || compiled.has_end_of_file) && head_length < head.size()) {
        const std::size_t n = std::min(head.size() - head_length, bytes.size());
        std::memcpy(head.data() + head_length, bytes.data(), n);
        head_length += n;
    }
    scan_bodies(bytes);
    if (compiled.has_end_of_file && hits.size() > 1024) {
        prune_end_of_file();
    }
    if (matched) {
        // First-match mode: a body match beats any hash match (ClamAV reports the body
        // signature), so the hashes are no longer needed unless an allow list may still
        // clear the stream; body matching goes on only while a match reported earlier is
        // still possible.
        if (compiled.has_allowed) {
            update_hashes(bytes);
        } else {
            for (auto& ctx : hashing) {
                ctx.reset();
            }
        }
        if (length + bytes.size() >= match_key.window + compiled.max_body_length) {
            stop_bodies();
        }
    } else {
        update_hashes(bytes);
    }
    length += bytes.size();
}

void stream_scan::impl::finish_hashes(bool detect) noexcept {
    std::array<std::array<std::uint8_t, EVP_MAX_MD_SIZE>, detail::hash_kind_count> digests{};
    std::array<unsigned int, detail::hash_kind_count> sizes{};
    for (std::size_t k = 0; k < hashing.size(); ++k) {
        if (hashing[k] && EVP_DigestFinal_ex(hashing[k].get(), digests[k].data(), &sizes[k]) != 1) {
            error = true;
            sizes[k] = 0;
        }
    }
    // ClamAV's false-positive check: an allow-listed object is clean whatever matched.
    for (std::size_t k = 0; k < hashing.size() && compiled.has_allowed; ++k) {
        const std::span<const std::uint8_t> value(digests[k].data(), sizes[k]);
        if (sizes[k] != 0 && compiled.allowed[k].find(value, length) != nullptr) {
            names.clear();
            return;
        }
    }
    if (!detect) {
        return;
    }
    for (std::size_t k = 0; k < hashing.size(); ++k) {
        if (sizes[k] == 0) {
            continue;
        }
        const std::span<const std::uint8_t> value(digests[k].data(), sizes[k]);
        if (mode == scan_mode::first_match) {
            if (const auto* hit = compiled.hashes[k].find(value, length); hit != nullptr) {
                names.push_back(compiled.names.get(*hit));
                break;
            }
            continue;
        }
        for (const auto* hit : compiled.hashes[k].find_each(value, length)) {
            if (hit != nullptr) {
                names.push_back(compiled.names.get(*hit));
            }
        }
    }
}

void stream_scan::impl::finish_bodies() {
    if (matched) {  // decided while streaming (first match, generic literals only)
        names.push_back(compiled.names.get(compiled.bodies[match_id].name));
        return;
    }
    if (hits.empty()) {
        return;
    }
    const std::span<const unsigned char> first(head.data(), head_length);
    const std::uint8_t type = forced_type ? *forced_type
                              : compiled.typed || compiled.has_end_of_file
                                  ? detail::target_of(first)
                                  : target::any;
    const bool relative_offsets = detail::executable_header_ok(type, first);
    std::vector<std::pair<detail::report_key, std::uint32_t>> reports;
    reports.reserve(hits.size());
    for (const auto& [id, end] : hits) {
        const detail::body_info& body = compiled.bodies[id];
        if (body.target != target::any && body.target != type) {
            continue;
        }
        if (body.end_of_file) {
            if (!relative_offsets) {
                continue;
            }
            // start = end - L must lie in [size - n, size - n + m].
            const std::uint64_t start = end - body.length;
            if (start + body.eof_value < length ||
                start + body.eof_value > length + body.eof_shift) {
                continue;
            }
        }
        detail::report_key key;
        key.root = body.target == target::any ? 1 : 0;
        if (body.boyer_moore) {
            key.window = end - body.length + body.place.shift;
            key.rank = body.place.rank;
        } else {
            key.matcher = 1;
            key.window = end;
            key.rank = id;
        }
        reports.emplace_back(key, id);
    }
    std::sort(reports.begin(), reports.end(), [](const auto& a, const auto& b) {
        return a.first < b.first || (!(b.first < a.first) && a.second < b.second);
    });
    names.reserve(reports.size());
    for (const auto& [key, id] : reports) {
        names.push_back(compiled.names.get(compiled.bodies[id].name));
    }
}

verdict stream_scan::impl::finish() noexcept {
    if (finished) {
        return result;
    }
    finished = true;
    if (!typed_open) {
        // A stream shorter than the typing window (also when no generic stream runs: an
        // engine of typed signatures only).
        open_typed();
    }
    for (std::size_t i = 0; i < streams.size(); ++i) {
        if (!streams[i]) {
            continue;
        }
        // Flushes matches that Hyperscan can only report at end of stream.
        hs_scratch_t* scratch = context.scratch.get();
        const hs_error_t status = hs_close_stream(
            streams[i].release(), scratch, scratch ? detail::on_hs_match : nullptr, &sinks[i]);
        if (status != HS_SUCCESS && status != HS_SCAN_TERMINATED) {
            error = true;
        }
    }
    resolve_pending({}, length, true);
    if (expected_length && *expected_length != length) {
        error = true;  // hashes may have been skipped for a length the stream did not have
    }
    try {
        finish_bodies();
        const bool detect = mode == scan_mode::all_matches || names.empty();
        if (detect || compiled.has_allowed) {
            finish_hashes(detect);
        }
        // Each name once, where clamscan first prints it.
        std::vector<std::string_view> seen;
        seen.reserve(names.size());
        std::vector<std::string_view> unique;
        unique.reserve(names.size());
        for (const std::string_view name : names) {
            const auto at = std::lower_bound(seen.begin(), seen.end(), name);
            if (at == seen.end() || *at != name) {
                seen.insert(at, name);
                unique.push_back(name);
            }
        }
        names = std::move(unique);
        if (mode == scan_mode::first_match && names.size() > 1) {
            names.resize(1);
        }
        if (!names.empty()) {
            result = verdict{true, names.front()};
        }
    } catch (...) {
        error = true;  // out of memory while listing matches
    }
    for (auto& ctx : hashing) {
        ctx.reset();
    }
    hits = {};
    return result;
}

namespace {

stream_options options_with(scan_mode mode) {
    stream_options options;
    options.mode = mode;
    return options;
}

}  // namespace

stream_scan::stream_scan(std::shared_ptr<const engine> compiled, scanner& context, scan_mode mode)
    : stream_scan(std::move(compiled), context, options_with(mode)) {}

stream_scan::stream_scan(std::shared_ptr<const engine> compiled, scanner& context,
                         const stream_options& options) {
    RINGSCAN_ASSERT(compiled != nullptr);
    impl_ = std::make_unique<impl>(std::move(compiled), context.internals(), options);
}

stream_scan::~stream_scan() = default;

void stream_scan::feed(std::span<const std::byte> bytes) { impl_->feed(bytes); }

verdict stream_scan::finish() { return impl_->finish(); }

bool stream_scan::scan_error() const { return impl_->error; }

const std::vector<std::string_view>& stream_scan::matches() const { return impl_->names; }

verdict scan_buffer(const std::shared_ptr<const engine>& compiled, scanner& context,
                    std::span<const std::byte> bytes) {
    stream_scan scan(compiled, context);
    scan.feed(bytes);
    return scan.finish();
}

std::vector<std::string_view> scan_buffer_all(const std::shared_ptr<const engine>& compiled,
                                              scanner& context, std::span<const std::byte> bytes) {
    stream_scan scan(compiled, context, scan_mode::all_matches);
    scan.feed(bytes);
    static_cast<void>(scan.finish());
    return scan.matches();
}

}  // namespace ringscan::matcher
