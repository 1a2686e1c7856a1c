#include "matcher/engine/hs_cache.h"

#include "base/hex.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

hs_cache_stats& hs_cache_stats::operator+=(const hs_cache_stats& other) {
    hits += other.hits;
    misses += other.misses;
    invalid += other.invalid;
    store_failures += other.store_failures;
    evicted += other.evicted;
    bytes_read += other.bytes_read;
    bytes_written += other.bytes_written;
    return *this;
}

namespace {

namespace fs = std::filesystem;

using digest = std::array<unsigned char, 32>;

// --- Entry file layout (all integers little-endian) ---------------------------------------
//   0  magic "RSCANHS\n"      8  u32 format version   12  u32 payload kind
//  16  key (32 bytes)        48  u64 payload length  56  SHA-256 of the payload (32 bytes)
//  88  payload: hs_serialize_database() bytes, or a refusal (u64 index, message bytes)
constexpr std::string_view file_magic = "RSCANHS\n";
constexpr std::uint32_t format_version = 1;
constexpr std::size_t header_size = 88;
constexpr std::string_view entry_suffix = ".hsdb";
constexpr std::string_view temp_prefix = ".tmp-";
// A temp file this old belongs to a writer that died before its rename.
constexpr auto stale_temp_age = std::chrono::hours(1);

enum class payload_kind : std::uint32_t { database = 1, refusal = 2 };

// Bumped whenever the canonical request encoding changes, so old keys can never collide
// with new meanings.
constexpr std::string_view key_domain = "ringscan hs_cache request v1";

void put_u32(std::string& out, std::uint32_t value) {
    for (unsigned shift = 0; shift < 32; shift += 8) {
        out.push_back(static_cast<char>((value >> shift) & 0xFFU));
    }
}

void put_u64(std::string& out, std::uint64_t value) {
    for (unsigned shift = 0; shift < 64; shift += 8) {
        out.push_back(static_cast<char>((value >> shift) & 0xFFU));
    }
}

std::uint32_t get_u32(const unsigned char* in) {
    std::uint32_t value = 0;
    for (unsigned i = 0; i < 4; ++i) {
        value |= std::uint32_t{in[i]} << (8U * i);
    }
    return value;
}

std::uint64_t get_u64(const unsigned char* in) {
    std::uint64_t value = 0;
    for (unsigned i = 0; i < 8; ++i) {
        value |= std::uint64_t{in[i]} << (8U * i);
    }
    return value;
}

struct md_ctx_deleter {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

/// Streams a canonical byte encoding into SHA-256. Numbers are fixed-width little-endian and
/// byte strings length-prefixed, so distinct inputs can never encode to the same bytes.
class canonical_hasher {
public:
    canonical_hasher() : ctx_(EVP_MD_CTX_new()) {
        ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
    }

    void u8(std::uint8_t value) { raw(&value, 1); }
    void u32(std::uint32_t value) {
        scratch_.clear();
        put_u32(scratch_, value);
        raw(scratch_.data(), scratch_.size());
    }
    void u64(std::uint64_t value) {
        scratch_.clear();
        put_u64(scratch_, value);
        raw(scratch_.data(), scratch_.size());
    }
    void bytes(const void* data, std::size_t length) {
        u64(length);
        raw(data, length);
    }

    [[nodiscard]] std::optional<digest> finish() {
        digest out{};
        unsigned length = 0;
        if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), out.data(), &length) != 1 ||
            length != out.size()) {
            return std::nullopt;
        }
        return out;
    }

private:
    void raw(const void* data, std::size_t length) {
        if (ok_ && length > 0) {
            ok_ = EVP_DigestUpdate(ctx_.get(), data, length) == 1;
        }
    }

    std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx_;
    std::string scratch_;
    bool ok_ = false;
};

std::optional<digest> sha256(const void* data, std::size_t length) {
    // No length prefix: this is the plain digest of the payload, checkable with sha256sum.
    digest out{};
    unsigned out_length = 0;
    if (EVP_Digest(data, length, out.data(), &out_length, EVP_sha256(), nullptr) != 1 ||
        out_length != out.size()) {
        return std::nullopt;
    }
    return out;
}

std::string hex(const digest& bytes) {
    return hex::encode(bytes);
}

/// Why a request cannot be compiled as given, or empty when its arrays are consistent.
std::string malformed(const hs_compile_request& request) {
    const std::size_t count = request.patterns.size();
    if (count > std::numeric_limits<unsigned>::max()) {
        return "too many patterns";
    }
    if (!request.flags.empty() && request.flags.size() != count) {
        return "flags and patterns differ in number";
    }
    if (!request.ids.empty() && request.ids.size() != count) {
        return "ids and patterns differ in number";
    }
    if (request.literal) {
        if (request.lengths.size() != count) {
            return "lengths and literals differ in number";
        }
        if (!request.extensions.empty()) {
            return "literals take no expression extensions";
        }
    } else {
        if (!request.lengths.empty()) {
            return "expressions take no lengths";
        }
        if (!request.extensions.empty() && request.extensions.size() != count) {
            return "extensions and expressions differ in number";
        }
    }
    for (std::size_t i = 0; i < count; ++i) {
        if (request.patterns[i] == nullptr) {
            return "pattern " + std::to_string(i) + " is null";
        }
    }
    return {};
}

/// The cache key of a well-formed request, or nullopt when it cannot be computed (then the
/// request is compiled without the cache).
std::optional<digest> request_key(const hs_compile_request& request) {
    hs_platform_info_t platform{};
    if (request.platform != nullptr) {
        platform = *request.platform;
    } else if (hs_populate_platform(&platform) != HS_SUCCESS) {
        return std::nullopt;
    }
    canonical_hasher hasher;
    hasher.bytes(key_domain.data(), key_domain.size());
    const char* version = hs_version();
    hasher.bytes(version, std::strlen(version));
    hasher.u32(platform.tune);
    hasher.u64(platform.cpu_features);
    hasher.u64(platform.reserved1);
    hasher.u64(platform.reserved2);
    hasher.u8(request.literal ? 1 : 0);
    hasher.u32(request.mode);
    hasher.u64(request.patterns.size());
    for (std::size_t i = 0; i < request.patterns.size(); ++i) {
        const char* pattern = request.patterns[i];
        hasher.bytes(pattern, request.literal ? request.lengths[i] : std::strlen(pattern));
        // An absent array means zeros to Hyperscan, so it encodes as zeros here too.
        hasher.u32(request.flags.empty() ? 0U : request.flags[i]);
        hasher.u32(request.ids.empty() ? 0U : request.ids[i]);
        const hs_expr_ext_t* ext = request.extensions.empty() ? nullptr : request.extensions[i];
        // Only the fields named in ext->flags reach the compiler; the rest may hold anything.
        const std::uint64_t used = ext != nullptr ? ext->flags : 0;
        hasher.u64(used);
        if ((used & HS_EXT_FLAG_MIN_OFFSET) != 0) {
            hasher.u64(ext->min_offset);
        }
        if ((used & HS_EXT_FLAG_MAX_OFFSET) != 0) {
            hasher.u64(ext->max_offset);
        }
        if ((used & HS_EXT_FLAG_MIN_LENGTH) != 0) {
            hasher.u64(ext->min_length);
        }
        if ((used & HS_EXT_FLAG_EDIT_DISTANCE) != 0) {
            hasher.u32(ext->edit_distance);
        }
        if ((used & HS_EXT_FLAG_HAMMING_DISTANCE) != 0) {
            hasher.u32(ext->hamming_distance);
        }
    }
    return hasher.finish();
}

// --- File I/O -------------------------------------------------------------------------------

/// Owns a file descriptor.
class unique_fd {
public:
    explicit unique_fd(int fd = -1) : fd_(fd) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    [[nodiscard]] int get() const { return fd_; }
    /// Closes now, reporting the error close() can carry (deferred write errors).
    [[nodiscard]] bool close() {
        const int fd = std::exchange(fd_, -1);
        return fd < 0 || ::close(fd) == 0;
    }

private:
    int fd_;
};

bool read_exactly(int fd, unsigned char* out, std::size_t length) {
    while (length > 0) {
        const ssize_t n = ::read(fd, out, length);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        out += n;
        length -= static_cast<std::size_t>(n);
    }
    return true;
}

bool write_exactly(int fd, const char* data, std::size_t length) {
    while (length > 0) {
        const ssize_t n = ::write(fd, data, length);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        length -= static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

bool prepare_cache_directory(const fs::path& directory) {
    std::error_code ec;
    if (directory.has_parent_path()) {
        fs::create_directories(directory.parent_path(), ec);
    }
    if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
        return false;
    }
    struct stat info {};
    if (::stat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
        return false;
    }
    return info.st_uid == ::geteuid() && (info.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

bool write_cache_file(const fs::path& directory, const std::string& name,
                      std::span<const std::string_view> parts) {
    std::string temp_path = (directory / (std::string(temp_prefix) + name + ".XXXXXX")).string();
    unique_fd file(::mkostemp(temp_path.data(), O_CLOEXEC));  // mode 0600
    if (file.get() < 0) {
        return false;
    }
    const fs::path final_path = directory / name;
    bool written = true;
    for (const std::string_view part : parts) {
        written = written && write_exactly(file.get(), part.data(), part.size());
    }
    written = written && ::fsync(file.get()) == 0 && file.close() &&
              ::rename(temp_path.c_str(), final_path.c_str()) == 0;
    if (!written) {
        ::unlink(temp_path.c_str());
    }
    return written;
}

namespace {

/// A loaded entry: a database, or a refusal remembered from an earlier compile.
struct loaded_entry {
    hs_database_t* database = nullptr;
    std::optional<compile_failure> refusal;
};

enum class load_status : std::uint8_t { absent, invalid, loaded };

/// Reads and verifies the entry at `path` for `key`. Only a fully verified entry loads.
load_status load_entry(const fs::path& path, const digest& key, std::size_t pattern_count,
                       loaded_entry& out, hs_cache_stats& stats) {
    unique_fd file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (file.get() < 0) {
        return errno == ENOENT ? load_status::absent : load_status::invalid;
    }
    struct stat info {};
    if (::fstat(file.get(), &info) != 0 || !S_ISREG(info.st_mode) ||
        static_cast<std::uint64_t>(info.st_size) < header_size) {
        return load_status::invalid;
    }
    std::array<unsigned char, header_size> header{};
    if (!read_exactly(file.get(), header.data(), header.size())) {
        return load_status::invalid;
    }
    stats.bytes_read += header.size();
    const std::uint64_t payload_length = get_u64(header.data() + 48);
    // The size check comes before any allocation: a corrupt length never allocates.
    if (std::memcmp(header.data(), file_magic.data(), file_magic.size()) != 0 ||
        get_u32(header.data() + 8) != format_version ||
        std::memcmp(header.data() + 16, key.data(), key.size()) != 0 ||
        payload_length != static_cast<std::uint64_t>(info.st_size) - header_size) {
        return load_status::invalid;
    }
    const std::uint32_t kind = get_u32(header.data() + 12);
    std::vector<unsigned char> payload(static_cast<std::size_t>(payload_length));
    if (!read_exactly(file.get(), payload.data(), payload.size())) {
        return load_status::invalid;
    }
    stats.bytes_read += payload.size();
    const std::optional<digest> payload_digest = sha256(payload.data(), payload.size());
    if (!payload_digest || std::memcmp(header.data() + 56, payload_digest->data(),
                                       payload_digest->size()) != 0) {
        return load_status::invalid;
    }
    if (kind == static_cast<std::uint32_t>(payload_kind::database)) {
        hs_database_t* database = nullptr;
        // The pointer cast is Hyperscan's API: it takes the bytes as const char*.
        if (hs_deserialize_database(reinterpret_cast<const char*>(payload.data()),
                                    payload.size(), &database) != HS_SUCCESS) {
            return load_status::invalid;
        }
        out.database = database;
    } else if (kind == static_cast<std::uint32_t>(payload_kind::refusal)) {
        if (payload.size() < 8 || get_u64(payload.data()) >= pattern_count) {
            return load_status::invalid;
        }
        out.refusal = compile_failure{
            std::string(payload.begin() + 8, payload.end()),
            static_cast<std::size_t>(get_u64(payload.data())),
        };
    } else {
        return load_status::invalid;
    }
    // Least recently used goes first on eviction: a hit counts as a use.
    (void)::futimens(file.get(), nullptr);
    return load_status::loaded;
}

/// Writes `payload` as the entry `name` in `directory`, atomically (write_cache_file).
bool store_entry(const fs::path& directory, const std::string& name, const digest& key,
                 payload_kind kind, std::string_view payload, hs_cache_stats& stats) {
    const std::optional<digest> payload_digest = sha256(payload.data(), payload.size());
    if (!payload_digest) {
        return false;
    }
    std::string header;
    header.reserve(header_size);
    header.append(file_magic);
    put_u32(header, format_version);
    put_u32(header, static_cast<std::uint32_t>(kind));
    header.append(reinterpret_cast<const char*>(key.data()), key.size());
    put_u64(header, payload.size());
    header.append(reinterpret_cast<const char*>(payload_digest->data()), payload_digest->size());
    const std::array<std::string_view, 2> parts{header, payload};
    if (!write_cache_file(directory, name, parts)) {
        return false;
    }
    stats.bytes_written += header.size() + payload.size();
    return true;
}

/// Removes the oldest entries until the directory holds at most `max_bytes` of them (never
/// the one just written, `keep`), and temp files abandoned by writers that died.
void trim_directory(const fs::path& directory, std::uint64_t max_bytes, const std::string& keep,
                    hs_cache_stats& stats) {
    struct entry {
        fs::path path;
        std::uint64_t size = 0;
        struct timespec mtime {};
    };
    std::vector<entry> entries;
    std::uint64_t total = 0;
    const auto now = std::chrono::system_clock::now();
    std::error_code ec;
    for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        struct stat info {};
        if (::lstat(it->path().c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
            continue;
        }
        if (name.starts_with(temp_prefix)) {
            const auto modified = std::chrono::system_clock::from_time_t(info.st_mtim.tv_sec);
            if (now - modified > stale_temp_age) {
                ::unlink(it->path().c_str());
            }
            continue;
        }
        if (!name.ends_with(entry_suffix)) {
            continue;
        }
        const auto size = static_cast<std::uint64_t>(info.st_size);
        total += size;
        if (name != keep) {
            entries.push_back({it->path(), size, info.st_mtim});
        }
    }
    if (max_bytes == 0 || total <= max_bytes) {
        return;
    }
    std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
        return a.mtime.tv_sec != b.mtime.tv_sec ? a.mtime.tv_sec < b.mtime.tv_sec
                                                : a.mtime.tv_nsec < b.mtime.tv_nsec;
    });
    for (const entry& e : entries) {
        if (total <= max_bytes) {
            break;
        }
        // Another process may have removed or replaced it already; either way it is gone.
        if (::unlink(e.path.c_str()) == 0) {
            ++stats.evicted;
        }
        total -= e.size;
    }
}

struct hs_compile_error_deleter {
    void operator()(hs_compile_error_t* error) const noexcept { hs_free_compile_error(error); }
};

/// Runs the Hyperscan compile the request describes.
tl::expected<hs_database_t*, compile_failure> compile(const hs_compile_request& request,
                                                      bool& deterministic) {
    hs_database_t* database = nullptr;
    hs_compile_error_t* raw_error = nullptr;
    const auto count = static_cast<unsigned>(request.patterns.size());
    const unsigned* flags = request.flags.empty() ? nullptr : request.flags.data();
    const unsigned* ids = request.ids.empty() ? nullptr : request.ids.data();
    const hs_error_t status =
        request.literal
            ? hs_compile_lit_multi(request.patterns.data(), flags, ids, request.lengths.data(),
                                   count, request.mode, request.platform, &database, &raw_error)
            : hs_compile_ext_multi(request.patterns.data(), flags, ids,
                                   request.extensions.empty() ? nullptr
                                                              : request.extensions.data(),
                                   count, request.mode, request.platform, &database, &raw_error);
    const std::unique_ptr<hs_compile_error_t, hs_compile_error_deleter> error(raw_error);
    deterministic = false;
    if (status == HS_SUCCESS && database != nullptr) {
        return database;
    }
    compile_failure failure{error != nullptr && error->message != nullptr
                                ? std::string(error->message)
                                : "Hyperscan error " + std::to_string(status),
                            std::nullopt};
    if (error != nullptr && error->expression >= 0 &&
        static_cast<std::size_t>(error->expression) < request.patterns.size()) {
        failure.failing_index = static_cast<std::size_t>(error->expression);
        // A refusal of one pattern follows from the input alone; out-of-memory and other
        // whole-compile errors may not recur, so only refusals are remembered.
        deterministic = status == HS_COMPILER_ERROR;
    }
    return tl::unexpected(std::move(failure));
}

struct serialized_deleter {
    // hs_serialize_database allocates with the misc allocator, malloc unless the process
    // installs its own with hs_set_misc_allocator / hs_set_allocator.
    void operator()(char* bytes) const noexcept { std::free(bytes); }
};

}  // namespace

std::string hs_cache_file_name(const hs_compile_request& request) {
    if (!malformed(request).empty()) {
        return {};
    }
    const std::optional<digest> key = request_key(request);
    return key ? hex(*key) + std::string(entry_suffix) : std::string();
}

tl::expected<hs_database_t*, compile_failure> compile_with_cache(
    const hs_compile_request& request, const hs_cache_config& config, hs_cache_stats& stats) {
    if (std::string problem = malformed(request); !problem.empty()) {
        return tl::unexpected(compile_failure{"invalid compile request: " + problem, std::nullopt});
    }
    std::optional<digest> key;
    const bool caching = !config.directory.empty();
    if (caching && prepare_cache_directory(config.directory)) {
        key = request_key(request);
    }
    const std::string name = key ? hex(*key) + std::string(entry_suffix) : std::string();
    if (key) {
        loaded_entry entry;
        switch (load_entry(config.directory / name, *key, request.patterns.size(), entry, stats)) {
            case load_status::loaded:
                ++stats.hits;
                if (entry.refusal) {
                    return tl::unexpected(std::move(*entry.refusal));
                }
                return entry.database;
            case load_status::invalid:
                ++stats.invalid;  // replaced below by the fresh compile
                break;
            case load_status::absent:
                break;
        }
    }
    ++stats.misses;
    bool deterministic = false;
    tl::expected<hs_database_t*, compile_failure> compiled = compile(request, deterministic);
    if (!compiled && !deterministic) {
        return compiled;
    }
    if (!key) {
        if (caching) {
            ++stats.store_failures;  // the directory is unusable (or untrusted)
        }
        return compiled;
    }
    bool stored = false;
    if (compiled) {
        char* raw_bytes = nullptr;
        std::size_t length = 0;
        if (hs_serialize_database(*compiled, &raw_bytes, &length) == HS_SUCCESS) {
            const std::unique_ptr<char, serialized_deleter> bytes(raw_bytes);
            stored = store_entry(config.directory, name, *key, payload_kind::database,
                                 {bytes.get(), length}, stats);
        }
    } else {
        std::string payload;
        put_u64(payload, *compiled.error().failing_index);
        payload += compiled.error().message;
        stored = store_entry(config.directory, name, *key, payload_kind::refusal, payload, stats);
    }
    if (stored) {
        trim_directory(config.directory, config.max_bytes, name, stats);
    } else {
        ++stats.store_failures;
    }
    return compiled;
}

fs::path default_cache_directory() {
    const auto env = [](const char* variable) -> std::string_view {
        const char* value = std::getenv(variable);
        return value != nullptr ? std::string_view(value) : std::string_view();
    };
    if (const std::string_view dir = env("RINGSCAN_CACHE_DIR"); !dir.empty()) {
        return fs::path(dir);
    }
    // The XDG spec says relative paths are invalid and must be ignored.
    if (const std::string_view xdg = env("XDG_CACHE_HOME"); !xdg.empty() && xdg.front() == '/') {
        return fs::path(xdg) / "ringscan";
    }
    if (const std::string_view home = env("HOME"); !home.empty()) {
        return fs::path(home) / ".cache" / "ringscan";
    }
    // Services often run without HOME: fall back to the account's home directory.
    struct passwd account {};
    struct passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (::getpwuid_r(::geteuid(), &account, buffer.data(), buffer.size(), &found) == 0 &&
        found != nullptr && account.pw_dir != nullptr && account.pw_dir[0] != '\0') {
        return fs::path(account.pw_dir) / ".cache" / "ringscan";
    }
    return {};
}

}  // namespace ringscan::matcher::detail
