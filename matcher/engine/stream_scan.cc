/// The engine's per-byte runtime: a shard's scanner, stream_scan (Hyperscan streams,
/// prefilter verification, hashing, the report order at finish()) and the hash lookups
/// finish() does. Everything the runtime calls per byte is here or inline in a header, so
/// no call crosses into the build side (engine_build.cc).

#include "matcher/engine.h"

#include "base/assert.h"
#include "matcher/engine/engine_impl.h"
#include "matcher/engine/object_match.h"
#include "matcher/unpack/filetype.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>

namespace ringscan::matcher {
namespace detail {

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

}  // namespace detail

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

// Hyperscan takes at most UINT_MAX bytes per call.
constexpr std::size_t max_scan_call = 1U << 30;

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
