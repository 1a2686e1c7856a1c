#include "matcher/engine.h"

#include "base/assert.h"
#include "matcher/internal/engine_impl.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace ringscan::matcher {
namespace detail {

name_pool::ref name_pool::add(std::string_view name) {
    if (text_.size() + name.size() > std::numeric_limits<std::uint32_t>::max()) {
        throw load_error("signature names exceed 4 GiB");
    }
    const ref r{static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(name.size())};
    text_.append(name);
    return r;
}

namespace {

bool key_less(const hash_table::entry& a, const hash_table::entry& b) {
    return std::tie(a.digest, a.size) < std::tie(b.digest, b.size);
}

bool same_key(const hash_table::entry& a, const hash_table::entry& b) {
    return a.digest == b.digest && a.size == b.size;
}

}  // namespace

void hash_table::build(std::vector<entry> entries) {
    std::stable_sort(entries.begin(), entries.end(), key_less);
    entries_.clear();
    entries_.reserve(entries.size());
    for (const entry& e : entries) {
        if (!entries_.empty() && same_key(entries_.back(), e)) {
            entries_.back() = e;  // later line wins
        } else {
            entries_.push_back(e);
        }
        if (e.size == any_size) {
            has_any_size_ = true;
        } else {
            max_size_ = std::max(max_size_, e.size);
        }
    }
}

const hash_table::entry* hash_table::find(std::span<const std::uint8_t> digest,
                                          std::uint64_t length) const {
    entry probe;
    std::copy_n(digest.begin(), std::min(digest.size(), probe.digest.size()), probe.digest.begin());
    for (const std::uint64_t size : {length, any_size}) {
        probe.size = size;
        const auto it = std::lower_bound(entries_.begin(), entries_.end(), probe, key_less);
        if (it != entries_.end() && same_key(*it, probe)) {
            return &*it;
        }
    }
    return nullptr;
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

std::atomic<std::uint64_t> next_engine_id{1};

// Hyperscan takes at most UINT_MAX bytes per call.
constexpr std::size_t max_scan_call = 1U << 30;

int on_hs_match(unsigned int id, unsigned long long /*from*/, unsigned long long to,
                unsigned int /*flags*/, void* context) {
    return static_cast<stream_scan::impl*>(context)->on_match(id, to);
}

void compile_bodies(const std::vector<body_signature>& bodies, engine::impl& state) {
    // An identical literal loaded later can never be reported (same start, same length,
    // later index), so only the first copy goes into the database.
    std::unordered_map<std::string_view, unsigned> first_copy;
    std::vector<const char*> expressions;
    std::vector<std::size_t> lengths;
    std::vector<unsigned> ids;
    state.body_names.reserve(bodies.size());
    state.body_lengths.reserve(bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        const body_signature& body = bodies[i];
        if (body.bytes.empty()) {
            throw load_error("signature " + body.name + " has an empty body pattern");
        }
        if (body.bytes.size() > std::numeric_limits<std::uint32_t>::max() ||
            i >= std::numeric_limits<unsigned>::max()) {
            throw load_error("signature " + body.name + " is too large");
        }
        state.body_names.push_back(state.names.add(body.name));
        const auto length = static_cast<std::uint32_t>(body.bytes.size());
        state.body_lengths.push_back(length);
        state.max_body_length = std::max(state.max_body_length, length);
        const auto id = static_cast<unsigned>(i);
        if (!first_copy.emplace(body.bytes, id).second) {
            continue;
        }
        expressions.push_back(body.bytes.data());
        lengths.push_back(body.bytes.size());
        ids.push_back(id);
    }
    if (expressions.empty()) {
        return;
    }
    const std::vector<unsigned> flags(expressions.size(), HS_FLAG_SINGLEMATCH);
    hs_database_t* database = nullptr;
    hs_compile_error_t* error = nullptr;
    const hs_error_t status = hs_compile_lit_multi(
        expressions.data(), flags.data(), ids.data(), lengths.data(),
        static_cast<unsigned>(expressions.size()), HS_MODE_STREAM, nullptr, &database, &error);
    if (status != HS_SUCCESS) {
        std::string message = "Hyperscan cannot compile the body signatures";
        if (error != nullptr) {
            if (error->expression >= 0 &&
                static_cast<std::size_t>(error->expression) < expressions.size()) {
                message +=
                    " (at " + bodies[ids[static_cast<std::size_t>(error->expression)]].name + ")";
            }
            message += ": ";
            message += error->message;
            hs_free_compile_error(error);
        }
        throw load_error(message);
    }
    state.database.reset(database);
}

void compile_hashes(const std::vector<hash_signature>& hashes, engine::impl& state) {
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
        if (entries[k].empty()) {
            continue;
        }
        state.hashes[k].build(std::move(entries[k]));
        state.digests[k].reset(EVP_MD_fetch(nullptr, digest_algorithm(kind), nullptr));
        if (!state.digests[k]) {
            throw load_error(std::string("OpenSSL does not provide ") + digest_algorithm(kind) +
                             ", needed by the hash signatures");
        }
    }
}

}  // namespace
}  // namespace detail

// --- engine ------------------------------------------------------------------------------

std::shared_ptr<const engine> engine::compile(const signature_set& signatures) {
    auto state = std::make_unique<impl>();
    state->id = detail::next_engine_id.fetch_add(1, std::memory_order_relaxed);
    state->signature_count = signatures.size();
    detail::compile_bodies(signatures.bodies, *state);
    detail::compile_hashes(signatures.hashes, *state);
    return std::shared_ptr<const engine>(new engine(std::move(state)));
}

engine::engine(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
engine::~engine() = default;

std::size_t engine::signature_count() const { return impl_->signature_count; }

// --- scanner -----------------------------------------------------------------------------

bool scanner::impl::prepare(const engine::impl& compiled) noexcept {
    if (!compiled.database) {
        return true;
    }
    if (scratch && sized_for == compiled.id) {
        return true;
    }
    // Grows the scratch when this database needs more; a scratch stays valid for every
    // database it was allocated for, so streams of an older engine keep working.
    hs_scratch_t* raw = scratch.release();
    if (hs_alloc_scratch(compiled.database.get(), &raw) != HS_SUCCESS) {
        scratch.reset(raw);
        sized_for = 0;
        return false;
    }
    scratch.reset(raw);
    sized_for = compiled.id;
    return true;
}

scanner::scanner() : impl_(std::make_unique<impl>()) {}
scanner::~scanner() = default;

// --- stream_scan -------------------------------------------------------------------------

stream_scan::impl::impl(std::shared_ptr<const engine> compiled_engine,
                        scanner::impl& scan_context) noexcept
    : owner(std::move(compiled_engine)), compiled(owner->internals()), context(scan_context) {
    if (compiled.database) {
        hs_stream_t* raw = nullptr;
        if (!context.prepare(compiled) ||
            hs_open_stream(compiled.database.get(), 0, &raw) != HS_SUCCESS) {
            error = true;
        }
        stream.reset(raw);
    }
    for (const hash_kind kind : detail::all_hash_kinds) {
        const std::size_t k = detail::index_of(kind);
        if (!compiled.digests[k]) {
            continue;
        }
        hashing[k].reset(EVP_MD_CTX_new());
        if (!hashing[k] ||
            EVP_DigestInit_ex(hashing[k].get(), compiled.digests[k].get(), nullptr) != 1) {
            hashing[k].reset();
            error = true;
        }
    }
}

int stream_scan::impl::on_match(unsigned int id, unsigned long long to) noexcept {
    // Matches arrive in order of end offset. Once a match cannot start before the best one
    // (its start is at least to - max_body_length), no later one can either: stop.
    if (matched && to > match_start + compiled.max_body_length) {
        return 1;
    }
    const std::uint32_t len = compiled.body_lengths[id];
    const std::uint64_t start = to - len;
    if (!matched || std::tie(start, len, id) < std::tie(match_start, match_length, match_id)) {
        matched = true;
        match_start = start;
        match_length = len;
        match_id = id;
    }
    return 0;
}

void stream_scan::impl::stop_bodies() noexcept { stream.reset(); }

void stream_scan::impl::scan_bodies(std::span<const std::byte> bytes) noexcept {
    while (stream && !bytes.empty()) {
        const std::size_t n = std::min(bytes.size(), detail::max_scan_call);
        const hs_error_t status = hs_scan_stream(
            stream.get(), reinterpret_cast<const char*>(bytes.data()), static_cast<unsigned int>(n),
            0, context.scratch.get(), detail::on_hs_match, this);
        bytes = bytes.subspan(n);
        if (status == HS_SCAN_TERMINATED) {
            stop_bodies();
        } else if (status != HS_SUCCESS) {
            error = true;
            stop_bodies();
        }
    }
}

void stream_scan::impl::update_hashes(std::span<const std::byte> bytes) noexcept {
    for (std::size_t k = 0; k < hashing.size(); ++k) {
        auto& ctx = hashing[k];
        if (!ctx) {
            continue;
        }
        if (!compiled.hashes[k].accepts_length(length + bytes.size())) {
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
    scan_bodies(bytes);
    if (matched) {
        // A body match beats any hash match (ClamAV reports the body signature), so the
        // hashes are no longer needed; body matching goes on only while a match starting
        // earlier is still possible.
        for (auto& ctx : hashing) {
            ctx.reset();
        }
        if (length + bytes.size() >= match_start + compiled.max_body_length) {
            stop_bodies();
        }
    } else {
        update_hashes(bytes);
    }
    length += bytes.size();
}

verdict stream_scan::impl::finish() noexcept {
    if (finished) {
        return result;
    }
    finished = true;
    if (stream) {
        // Flushes matches that Hyperscan can only report at end of stream.
        hs_scratch_t* scratch = context.scratch.get();
        const hs_error_t status = hs_close_stream(stream.release(), scratch,
                                                  scratch ? detail::on_hs_match : nullptr, this);
        if (status != HS_SUCCESS && status != HS_SCAN_TERMINATED) {
            error = true;
        }
    }
    if (matched) {
        result = verdict{true, compiled.names.get(compiled.body_names[match_id])};
    } else {
        for (std::size_t k = 0; k < hashing.size() && !result.infected; ++k) {
            if (!hashing[k]) {
                continue;
            }
            std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
            unsigned int digest_size = 0;
            if (EVP_DigestFinal_ex(hashing[k].get(), digest.data(), &digest_size) != 1) {
                error = true;
                continue;
            }
            const auto* hit = compiled.hashes[k].find(
                std::span<const std::uint8_t>(digest.data(), digest_size), length);
            if (hit != nullptr) {
                result = verdict{true, compiled.names.get(hit->name)};
            }
        }
    }
    for (auto& ctx : hashing) {
        ctx.reset();
    }
    return result;
}

stream_scan::stream_scan(std::shared_ptr<const engine> compiled, scanner& context) {
    RINGSCAN_ASSERT(compiled != nullptr);
    impl_ = std::make_unique<impl>(std::move(compiled), context.internals());
}

stream_scan::~stream_scan() = default;

void stream_scan::feed(std::span<const std::byte> bytes) { impl_->feed(bytes); }

verdict stream_scan::finish() { return impl_->finish(); }

bool stream_scan::scan_error() const { return impl_->error; }

verdict scan_buffer(const std::shared_ptr<const engine>& compiled, scanner& context,
                    std::span<const std::byte> bytes) {
    stream_scan scan(compiled, context);
    scan.feed(bytes);
    return scan.finish();
}

}  // namespace ringscan::matcher
