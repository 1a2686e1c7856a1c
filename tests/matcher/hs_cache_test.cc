#include "matcher/engine/hs_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <hs/hs.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

namespace fs = std::filesystem;

struct database_deleter {
    void operator()(hs_database_t* database) const noexcept { hs_free_database(database); }
};
using database_ptr = std::unique_ptr<hs_database_t, database_deleter>;

/// A fresh directory under the gtest temp dir, removed at the end of the test.
class temp_directory {
public:
    temp_directory() {
        std::string pattern = (fs::path(::testing::TempDir()) / "hs_cache_test.XXXXXX").string();
        path_ = ::mkdtemp(pattern.data()) != nullptr ? fs::path(pattern) : fs::path();
    }
    temp_directory(const temp_directory&) = delete;
    temp_directory& operator=(const temp_directory&) = delete;
    ~temp_directory() {
        std::error_code ec;
        fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path_, ec);
    }
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

/// Owns the arrays a request views, like engine_build.cc compiles them.
struct expression_set {
    std::vector<std::string> expressions;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    std::vector<hs_expr_ext_t> extensions;  ///< flags == 0: passed as null
    unsigned mode = HS_MODE_STREAM;

    std::vector<const char*> pointers;
    std::vector<const hs_expr_ext_t*> extension_pointers;

    void add(std::string expression, unsigned id, unsigned flag = HS_FLAG_DOTALL,
             hs_expr_ext_t ext = {}) {
        expressions.push_back(std::move(expression));
        flags.push_back(flag);
        ids.push_back(id);
        extensions.push_back(ext);
    }

    hs_compile_request request() {
        pointers.clear();
        extension_pointers.clear();
        for (std::size_t i = 0; i < expressions.size(); ++i) {
            pointers.push_back(expressions[i].c_str());
            extension_pointers.push_back(extensions[i].flags != 0 ? &extensions[i] : nullptr);
        }
        hs_compile_request r;
        r.mode = mode;
        r.patterns = pointers;
        r.flags = flags;
        r.ids = ids;
        r.extensions = extension_pointers;
        return r;
    }
};

struct literal_set {
    std::vector<std::string> literals;
    std::vector<unsigned> ids;
    std::vector<const char*> pointers;
    std::vector<std::size_t> lengths;

    hs_compile_request request() {
        pointers.clear();
        lengths.clear();
        for (const std::string& literal : literals) {
            pointers.push_back(literal.data());
            lengths.push_back(literal.size());
        }
        hs_compile_request r;
        r.literal = true;
        r.patterns = pointers;
        r.lengths = lengths;
        r.ids = ids;
        return r;
    }
};

int collect(unsigned id, unsigned long long /*from*/, unsigned long long /*to*/,
            unsigned /*flags*/, void* context) {
    static_cast<std::set<unsigned>*>(context)->insert(id);
    return 0;
}

/// The ids `database` (stream or block mode) reports over `data`, or nullopt on an error.
std::optional<std::set<unsigned>> scan(const hs_database_t* database, std::string_view data) {
    hs_scratch_t* scratch = nullptr;
    if (hs_alloc_scratch(database, &scratch) != HS_SUCCESS) {
        return std::nullopt;
    }
    std::set<unsigned> ids;
    unsigned mode = 0;
    size_t stream_size = 0;
    bool ok = false;
    if (hs_stream_size(database, &stream_size) == HS_SUCCESS) {
        mode = HS_MODE_STREAM;
    }
    if (mode == HS_MODE_STREAM) {
        hs_stream_t* stream = nullptr;
        // Two chunks, so stream state carries across calls like in the engine.
        const std::size_t half = data.size() / 2;
        ok = hs_open_stream(database, 0, &stream) == HS_SUCCESS &&
             hs_scan_stream(stream, data.data(), static_cast<unsigned>(half), 0, scratch, collect,
                            &ids) == HS_SUCCESS &&
             hs_scan_stream(stream, data.data() + half, static_cast<unsigned>(data.size() - half),
                            0, scratch, collect, &ids) == HS_SUCCESS &&
             hs_close_stream(stream, scratch, collect, &ids) == HS_SUCCESS;
    } else {
        ok = hs_scan(database, data.data(), static_cast<unsigned>(data.size()), 0, scratch,
                     collect, &ids) == HS_SUCCESS;
    }
    hs_free_scratch(scratch);
    return ok ? std::optional(ids) : std::nullopt;
}

std::vector<fs::path> files_in(const fs::path& directory) {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(directory)) {
        out.push_back(entry.path());
    }
    return out;
}

std::string read_all(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& path, std::string_view bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

constexpr std::size_t header_size = 88;  // see the layout in hs_cache.cc

expression_set sample_expressions() {
    expression_set set;
    set.add("abc", 7, HS_FLAG_DOTALL | HS_FLAG_SINGLEMATCH);
    set.add("x[0-9]+y", 9, HS_FLAG_DOTALL | HS_FLAG_SINGLEMATCH);
    hs_expr_ext_t ext{};
    ext.flags = HS_EXT_FLAG_MIN_OFFSET | HS_EXT_FLAG_MAX_OFFSET;
    ext.min_offset = 4;  // "head" must end at offset 4: only at the start of the data
    ext.max_offset = 4;
    set.add("head", 11, HS_FLAG_DOTALL | HS_FLAG_SINGLEMATCH, ext);
    return set;
}

TEST(HsCache, MissThenHitReturnsAWorkingDatabase) {
    temp_directory dir;
    const hs_cache_config config{dir.path()};
    expression_set set = sample_expressions();
    hs_cache_stats stats;

    auto first = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(first.has_value()) << first.error().message;
    const database_ptr compiled(*first);
    EXPECT_EQ(stats.misses, 1U);
    EXPECT_EQ(stats.hits, 0U);
    EXPECT_GT(stats.bytes_written, header_size);
    const fs::path entry = dir.path() / hs_cache_file_name(set.request());
    ASSERT_TRUE(fs::is_regular_file(entry));
    EXPECT_EQ(files_in(dir.path()).size(), 1U);  // no temp file left behind
    EXPECT_EQ(fs::status(entry).permissions() & (fs::perms::group_all | fs::perms::others_all),
              fs::perms::none);

    auto second = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(second.has_value()) << second.error().message;
    const database_ptr cached(*second);
    EXPECT_EQ(stats.misses, 1U);
    EXPECT_EQ(stats.hits, 1U);
    EXPECT_EQ(stats.bytes_read, fs::file_size(entry));
    EXPECT_EQ(stats.bytes_read, stats.bytes_written);

    const std::string data = "headzzabczzx123yzzhead";
    const std::set<unsigned> expected = {7, 9, 11};
    EXPECT_EQ(scan(compiled.get(), data), expected);
    EXPECT_EQ(scan(cached.get(), data), expected);
    EXPECT_EQ(scan(cached.get(), "zzhead"), std::set<unsigned>{});  // offset limit kept
}

TEST(HsCache, LiteralRequestsWithNulBytesHit) {
    temp_directory dir;
    const hs_cache_config config{dir.path()};
    literal_set set;
    set.literals = {std::string("a\0b", 3), "hello"};
    set.ids = {3, 4};
    hs_cache_stats stats;

    auto first = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(first.has_value()) << first.error().message;
    hs_free_database(*first);
    auto second = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(second.has_value()) << second.error().message;
    const database_ptr cached(*second);
    EXPECT_EQ(stats.hits, 1U);
    EXPECT_EQ(scan(cached.get(), std::string("xxa\0bxx", 7)), std::set<unsigned>{3});
    EXPECT_EQ(scan(cached.get(), "ab hello"), std::set<unsigned>{4});

    // The bytes before the NUL alone are a different literal.
    const std::string with_nul = hs_cache_file_name(set.request());
    set.literals[0] = "a";
    EXPECT_NE(hs_cache_file_name(set.request()), with_nul);
}

TEST(HsCache, EveryCompileInputChangesTheKey) {
    expression_set base = sample_expressions();
    const std::string base_name = hs_cache_file_name(base.request());
    ASSERT_EQ(base_name.size(), 64U + 5U);
    EXPECT_TRUE(base_name.ends_with(".hsdb"));
    EXPECT_EQ(hs_cache_file_name(base.request()), base_name);  // stable

    std::vector<std::string> names;
    {
        expression_set s = base;
        s.expressions[1] = "x[0-9]+z";
        names.push_back(hs_cache_file_name(s.request()));
    }
    {
        expression_set s = base;
        s.flags[0] |= HS_FLAG_CASELESS;
        names.push_back(hs_cache_file_name(s.request()));
    }
    {
        expression_set s = base;
        s.ids[1] = 10;
        names.push_back(hs_cache_file_name(s.request()));
    }
    {
        expression_set s = base;
        s.extensions[2].max_offset = 5;
        names.push_back(hs_cache_file_name(s.request()));
    }
    {
        expression_set s = base;
        s.mode = HS_MODE_BLOCK;
        names.push_back(hs_cache_file_name(s.request()));
    }
    {
        expression_set s = base;  // same strings, other order
        std::swap(s.expressions[0], s.expressions[1]);
        names.push_back(hs_cache_file_name(s.request()));
    }
    {
        expression_set s = base;  // boundaries between patterns matter
        s.expressions[0] = "ab";
        s.expressions[1] = "cx[0-9]+y";
        names.push_back(hs_cache_file_name(s.request()));
    }
    {
        hs_platform_info_t platform{};
        ASSERT_EQ(hs_populate_platform(&platform), HS_SUCCESS);
        platform.tune = platform.tune == HS_TUNE_FAMILY_GENERIC ? HS_TUNE_FAMILY_SKL
                                                                : HS_TUNE_FAMILY_GENERIC;
        hs_compile_request r = base.request();
        r.platform = &platform;
        names.push_back(hs_cache_file_name(r));
    }
    {
        literal_set literals;  // the literal API with the same text is another database
        literals.literals = {"abc"};
        expression_set s;
        s.add("abc", 0, 0);
        hs_compile_request r = s.request();
        r.ids = {};
        r.flags = {};
        r.extensions = {};
        names.push_back(hs_cache_file_name(r));
        names.push_back(hs_cache_file_name(literals.request()));
    }
    std::set<std::string> distinct(names.begin(), names.end());
    distinct.insert(base_name);
    EXPECT_EQ(distinct.size(), names.size() + 1);
}

TEST(HsCache, EquivalentInputsShareTheKey) {
    expression_set base = sample_expressions();
    const std::string base_name = hs_cache_file_name(base.request());
    // Fields Hyperscan ignores (not named in ext.flags) do not split the cache.
    expression_set noisy = base;
    noisy.extensions[2].min_length = 99;
    noisy.extensions[2].edit_distance = 3;
    EXPECT_EQ(hs_cache_file_name(noisy.request()), base_name);
    // A null array is all zeros to Hyperscan.
    expression_set zeros;
    zeros.add("abc", 0, 0);
    hs_compile_request without = zeros.request();
    without.flags = {};
    without.ids = {};
    without.extensions = {};
    EXPECT_EQ(hs_cache_file_name(without), hs_cache_file_name(zeros.request()));
    // The host platform spelled out is the null platform.
    hs_platform_info_t platform{};
    ASSERT_EQ(hs_populate_platform(&platform), HS_SUCCESS);
    hs_compile_request explicit_platform = base.request();
    explicit_platform.platform = &platform;
    EXPECT_EQ(hs_cache_file_name(explicit_platform), base_name);
}

TEST(HsCache, ChangedRequestIsAMissWithItsOwnEntry) {
    temp_directory dir;
    const hs_cache_config config{dir.path()};
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    hs_free_database(compile_with_cache(set.request(), config, stats).value());
    set.ids[0] = 8;
    auto changed = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(changed.has_value());
    const database_ptr database(*changed);
    EXPECT_EQ(stats.misses, 2U);
    EXPECT_EQ(stats.hits, 0U);
    EXPECT_EQ(files_in(dir.path()).size(), 2U);
    EXPECT_EQ(scan(database.get(), "abc"), std::set<unsigned>{8});
}

/// Writes an entry for `set`, damages it with `damage`, and checks the next compile
/// distrusts it, compiles, and replaces it with one that then hits.
template <typename Damage>
void expect_damaged_entry_recompiled(Damage damage) {
    temp_directory dir;
    const hs_cache_config config{dir.path()};
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    hs_free_database(compile_with_cache(set.request(), config, stats).value());
    const fs::path entry = dir.path() / hs_cache_file_name(set.request());
    const std::string intact = read_all(entry);
    std::string damaged = intact;
    damage(damaged);
    write_all(entry, damaged);

    auto again = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(again.has_value()) << again.error().message;
    const database_ptr recompiled(*again);
    EXPECT_EQ(stats.invalid, 1U);
    EXPECT_EQ(stats.misses, 2U);
    EXPECT_EQ(stats.hits, 0U);
    EXPECT_EQ(scan(recompiled.get(), "abc"), std::set<unsigned>{7});
    EXPECT_EQ(read_all(entry).size(), intact.size());  // replaced

    auto third = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(third.has_value());
    hs_free_database(*third);
    EXPECT_EQ(stats.hits, 1U);
}

TEST(HsCache, FlippedPayloadByteIsAMissAndReplaced) {
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes[bytes.size() / 2] ^= 0x20; });
}

TEST(HsCache, TruncatedEntryIsAMissAndReplaced) {
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes.resize(bytes.size() - 1); });
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes.resize(10); });
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes.clear(); });
}

TEST(HsCache, DamagedHeaderIsAMissAndReplaced) {
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes[0] = 'X'; });    // magic
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes[8] = 9; });      // version
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes[20] ^= 1; });    // key
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes[55] = 0x7F; });  // length
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes[60] ^= 1; });    // digest
    expect_damaged_entry_recompiled([](std::string& bytes) { bytes.push_back('x'); });
}

TEST(HsCache, PayloadHyperscanRefusesIsAMiss) {
    // Valid header and digest over garbage: only hs_deserialize_database can tell.
    expect_damaged_entry_recompiled([](std::string& bytes) {
        for (std::size_t i = header_size; i < bytes.size(); ++i) {
            bytes[i] = static_cast<char>(i * 31U);
        }
        std::array<unsigned char, 32> digest{};
        unsigned length = 0;
        ASSERT_EQ(EVP_Digest(bytes.data() + header_size, bytes.size() - header_size,
                             digest.data(), &length, EVP_sha256(), nullptr),
                  1);
        std::copy(digest.begin(), digest.end(), bytes.begin() + 56);
    });
}

TEST(HsCache, EntryOfAnotherRequestUnderThisNameIsAMiss) {
    temp_directory dir;
    const hs_cache_config config{dir.path()};
    expression_set set = sample_expressions();
    expression_set other = sample_expressions();
    other.ids[0] = 1;
    hs_cache_stats stats;
    hs_free_database(compile_with_cache(other.request(), config, stats).value());
    fs::rename(dir.path() / hs_cache_file_name(other.request()),
               dir.path() / hs_cache_file_name(set.request()));
    auto result = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(result.has_value());
    const database_ptr database(*result);
    EXPECT_EQ(stats.invalid, 1U);
    EXPECT_EQ(scan(database.get(), "abc"), std::set<unsigned>{7});
}

TEST(HsCache, DirectoryThatCannotBeCreatedStillCompiles) {
    temp_directory dir;
    write_all(dir.path() / "file", "not a directory");
    const hs_cache_config config{dir.path() / "file" / "cache"};
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    for (int round = 0; round < 2; ++round) {
        auto result = compile_with_cache(set.request(), config, stats);
        ASSERT_TRUE(result.has_value()) << result.error().message;
        const database_ptr database(*result);
        EXPECT_EQ(scan(database.get(), "abc"), std::set<unsigned>{7});
    }
    EXPECT_EQ(stats.misses, 2U);
    EXPECT_EQ(stats.store_failures, 2U);
    EXPECT_EQ(stats.bytes_written, 0U);
}

TEST(HsCache, ReadOnlyDirectoryStillCompiles) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "root writes to read-only directories";
    }
    temp_directory dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0500), 0);
    const hs_cache_config config{dir.path()};
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    auto result = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(result.has_value()) << result.error().message;
    hs_free_database(*result);
    EXPECT_EQ(stats.store_failures, 1U);
    EXPECT_TRUE(files_in(dir.path()).empty());
}

TEST(HsCache, DirectoryOthersCanWriteIsNotUsed) {
    temp_directory dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
    const hs_cache_config config{dir.path()};
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    auto result = compile_with_cache(set.request(), config, stats);
    ASSERT_TRUE(result.has_value()) << result.error().message;
    hs_free_database(*result);
    EXPECT_EQ(stats.store_failures, 1U);
    EXPECT_TRUE(files_in(dir.path()).empty());
}

TEST(HsCache, MissingDirectoryIsCreatedPrivate) {
    temp_directory dir;
    const fs::path nested = dir.path() / "a" / "b" / "ringscan";
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    hs_free_database(compile_with_cache(set.request(), {nested}, stats).value());
    EXPECT_EQ(stats.store_failures, 0U);
    EXPECT_TRUE(fs::is_regular_file(nested / hs_cache_file_name(set.request())));
    EXPECT_EQ(fs::status(nested).permissions(), fs::perms::owner_all);
}

TEST(HsCache, CachingOffOnlyCompiles) {
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    auto result = compile_with_cache(set.request(), {}, stats);
    ASSERT_TRUE(result.has_value());
    hs_free_database(*result);
    EXPECT_EQ(stats.misses, 1U);
    EXPECT_EQ(stats.store_failures, 0U);
    EXPECT_EQ(stats.bytes_written + stats.bytes_read, 0U);
}

TEST(HsCache, CompileErrorReportsTheFailingIndexAndIsRemembered) {
    temp_directory dir;
    const hs_cache_config config{dir.path()};
    expression_set set;
    set.add("abc", 0);
    set.add("a(b", 1);  // unbalanced parenthesis
    set.add("def", 2);
    hs_cache_stats stats;

    auto off = compile_with_cache(set.request(), {}, stats);
    ASSERT_FALSE(off.has_value());
    EXPECT_EQ(off.error().failing_index, std::optional<std::size_t>(1));

    auto first = compile_with_cache(set.request(), config, stats);
    ASSERT_FALSE(first.has_value());
    EXPECT_EQ(first.error().failing_index, std::optional<std::size_t>(1));
    EXPECT_FALSE(first.error().message.empty());
    EXPECT_EQ(first.error().message, off.error().message);
    EXPECT_EQ(stats.misses, 2U);

    // A restart replays the refusal without compiling (the engine's drop-and-retry loop).
    auto second = compile_with_cache(set.request(), config, stats);
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(stats.hits, 1U);
    EXPECT_EQ(second.error().failing_index, first.error().failing_index);
    EXPECT_EQ(second.error().message, first.error().message);
}

TEST(HsCache, MalformedRequestIsAnErrorWithoutIndex) {
    expression_set set = sample_expressions();
    hs_compile_request r = set.request();
    r.ids = r.ids.first(1);
    hs_cache_stats stats;
    auto result = compile_with_cache(r, {}, stats);
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().failing_index, std::nullopt);
    EXPECT_EQ(hs_cache_file_name(r), "");

    literal_set literals;
    literals.literals = {"abc"};
    hs_compile_request missing_lengths = literals.request();
    missing_lengths.lengths = {};
    EXPECT_FALSE(compile_with_cache(missing_lengths, {}, stats).has_value());
}

TEST(HsCache, OldestEntriesAreEvictedOverTheCap) {
    temp_directory dir;
    hs_cache_config config{dir.path()};
    std::vector<expression_set> sets(3);
    for (unsigned i = 0; i < sets.size(); ++i) {
        sets[i].add("abc" + std::to_string(i), i);
    }
    hs_cache_stats stats;
    std::vector<fs::path> paths;
    for (unsigned i = 0; i < 2; ++i) {
        hs_free_database(compile_with_cache(sets[i].request(), config, stats).value());
        paths.push_back(dir.path() / hs_cache_file_name(sets[i].request()));
        // Old, distinct use times: entry 0 is the oldest.
        const std::array<struct timespec, 2> times = {
            timespec{1000 + static_cast<time_t>(i), 0}, timespec{1000 + static_cast<time_t>(i), 0}};
        ASSERT_EQ(::utimensat(AT_FDCWD, paths.back().c_str(), times.data(), 0), 0);
    }
    // A hit refreshes entry 0: entry 1 becomes the oldest.
    hs_free_database(compile_with_cache(sets[0].request(), config, stats).value());
    EXPECT_EQ(stats.hits, 1U);

    const std::uint64_t entry_size = fs::file_size(paths[0]);
    config.max_bytes = entry_size * 2 + entry_size / 2;  // room for two entries
    hs_free_database(compile_with_cache(sets[2].request(), config, stats).value());
    EXPECT_EQ(stats.evicted, 1U);
    EXPECT_TRUE(fs::exists(paths[0]));
    EXPECT_FALSE(fs::exists(paths[1]));
    EXPECT_TRUE(fs::exists(dir.path() / hs_cache_file_name(sets[2].request())));

    // The entry just written is never evicted, even when it alone exceeds the cap.
    config.max_bytes = 1;
    expression_set extra;
    extra.add("xyz", 0);
    hs_free_database(compile_with_cache(extra.request(), config, stats).value());
    EXPECT_EQ(files_in(dir.path()).size(), 1U);
    EXPECT_TRUE(fs::exists(dir.path() / hs_cache_file_name(extra.request())));
}

TEST(HsCache, AbandonedTempFilesAreRemoved) {
    temp_directory dir;
    const fs::path stale = dir.path() / ".tmp-dead.hsdb.AAAAAA";
    const fs::path fresh = dir.path() / ".tmp-live.hsdb.BBBBBB";
    write_all(stale, "half");
    write_all(fresh, "half");
    const std::array<struct timespec, 2> old_times = {timespec{1000, 0}, timespec{1000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, stale.c_str(), old_times.data(), 0), 0);
    expression_set set = sample_expressions();
    hs_cache_stats stats;
    hs_free_database(compile_with_cache(set.request(), {dir.path()}, stats).value());
    EXPECT_FALSE(fs::exists(stale));
    EXPECT_TRUE(fs::exists(fresh));  // may still be on its way to a rename
}

TEST(HsCache, ConcurrentCompilesShareOneDirectory) {
    temp_directory dir;
    const hs_cache_config config{dir.path()};
    constexpr std::size_t thread_count = 4;
    std::array<hs_cache_stats, thread_count> stats{};
    std::array<bool, thread_count> ok{};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < thread_count; ++t) {
        threads.emplace_back([&, t] {
            expression_set set = sample_expressions();
            for (int round = 0; round < 3; ++round) {
                auto result = compile_with_cache(set.request(), config, stats[t]);
                if (!result) {
                    return;
                }
                const database_ptr database(*result);
                if (scan(database.get(), "abc") != std::set<unsigned>{7}) {
                    return;
                }
            }
            ok[t] = true;
        });
    }
    for (std::thread& thread : threads) {
        thread.join();
    }
    hs_cache_stats total;
    for (std::size_t t = 0; t < thread_count; ++t) {
        EXPECT_TRUE(ok[t]) << "thread " << t;
        total += stats[t];
    }
    EXPECT_EQ(total.hits + total.misses, 3U * thread_count);
    EXPECT_EQ(total.invalid, 0U);  // nobody ever saw a half-written entry
    EXPECT_EQ(files_in(dir.path()).size(), 1U);
}

/// Sets an environment variable for one scope, restoring it after.
class scoped_env {
public:
    scoped_env(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) {
            old_ = old;
        }
        if (value != nullptr) {
            ::setenv(name, value, 1);
        } else {
            ::unsetenv(name);
        }
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;
    ~scoped_env() {
        if (old_) {
            ::setenv(name_, old_->c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }

private:
    const char* name_;
    std::optional<std::string> old_;
};

TEST(HsCache, DefaultDirectoryFollowsTheEnvironment) {
    scoped_env home("HOME", "/home/someone");
    {
        scoped_env cache("RINGSCAN_CACHE_DIR", "/var/cache/ringscan");
        scoped_env xdg("XDG_CACHE_HOME", "/xdg");
        EXPECT_EQ(default_cache_directory(), fs::path("/var/cache/ringscan"));
    }
    {
        scoped_env cache("RINGSCAN_CACHE_DIR", "");
        scoped_env xdg("XDG_CACHE_HOME", "/xdg");
        EXPECT_EQ(default_cache_directory(), fs::path("/xdg/ringscan"));
    }
    {
        scoped_env cache("RINGSCAN_CACHE_DIR", nullptr);
        scoped_env xdg("XDG_CACHE_HOME", "relative/ignored");
        EXPECT_EQ(default_cache_directory(), fs::path("/home/someone/.cache/ringscan"));
    }
    {
        scoped_env cache("RINGSCAN_CACHE_DIR", nullptr);
        scoped_env xdg("XDG_CACHE_HOME", nullptr);
        scoped_env no_home("HOME", nullptr);
        // Falls back to the password database's home of this user.
        EXPECT_TRUE(default_cache_directory().string().ends_with("/.cache/ringscan"));
    }
}

}  // namespace
}  // namespace ringscan::matcher::detail
