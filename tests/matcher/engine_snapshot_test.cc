// Engine snapshots (matcher/engine/engine_snapshot.h): an engine read back answers as
// the compiled one, and load_database uses a snapshot only when it matches the files.

#include "matcher/engine/engine_snapshot.h"

#include "matcher/content_scan.h"
#include "matcher/engine.h"
#include "matcher/engine/engine_impl.h"

#include <gtest/gtest.h>

#include "tests/matcher/test_util.h"
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace ringscan::matcher {
namespace {

namespace fs = std::filesystem;
using testing::as_bytes;
using testing::read_file;
using testing::shared_dir;

/// Every name `compiled` reports for `bytes`, as clamscan --allmatch would.
std::vector<std::string> all_names(const std::shared_ptr<const engine>& compiled, scanner& context,
                                   std::string_view bytes) {
    content_scan scan(compiled, context, scan_mode::all_matches);
    scan.feed(as_bytes(bytes));
    static_cast<void>(scan.finish());
    EXPECT_FALSE(scan.scan_error());
    return {scan.matches().begin(), scan.matches().end()};
}

/// Real databases with every structure the engine keeps: .ldb with PCREs, target
/// descriptions, icons, YARA, EP/section offsets, PE section and import hashes, hashes of
/// each kind with and without sizes, an allow list, literal and wildcard bodies.
std::vector<fs::path> feature_rich_paths() {
    const fs::path sigs = shared_dir() / "sigs";
    return {sigs / "clamav-unit-pe_allmatch" / "alert-sigs",
            sigs / "clamav-unit-pe_allmatch" / "weak-sigs", sigs / "interserver",
            sigs / "unofficial-mix" / "MiscreantPunch099-Low.ldb",
            sigs / "unofficial-mix" / "rfxn.ndb"};
}

TEST(EngineSnapshot, ReadBackEngineAnswersAsTheCompiledOne) {
    const std::vector<fs::path> paths = feature_rich_paths();
    compile_options options;
    options.cache_directory = default_cache_directory();  // warm Hyperscan compiles
    options.read_snapshot = false;
    const loaded_database fresh = load_database(paths, options);
    options.read_snapshot = true;
    const loaded_database again = load_database(paths, options);
    if (options.cache_directory.empty() || !again.compiled->compile_stats().from_snapshot) {
        GTEST_SKIP() << "no usable cache directory for the snapshot";
    }
    EXPECT_EQ(again.skipped, fresh.skipped);
    EXPECT_EQ(again.compiled->skipped(), fresh.compiled->skipped());

    std::vector<fs::path> inputs{shared_dir() / "sigs" / "clamav-unit-pe_allmatch" / "test.exe"};
    if (fs::is_directory("/usr/share/clamav-testfiles")) {
        for (const auto& entry : fs::directory_iterator("/usr/share/clamav-testfiles")) {
            inputs.push_back(entry.path());
        }
    }
    scanner context;
    std::size_t names = 0;
    for (const fs::path& input : inputs) {
        const std::optional<std::string> bytes = read_file(input);
        ASSERT_TRUE(bytes.has_value()) << input;
        const auto expected = all_names(fresh.compiled, context, *bytes);
        EXPECT_EQ(all_names(again.compiled, context, *bytes), expected) << input;
        names += expected.size();
    }
    EXPECT_GE(names, 78U);  // test.exe alone gives 78 with the ClamAV unit set
}

TEST(EngineSnapshot, RoundTripIsExact) {
    const std::vector<fs::path> paths = feature_rich_paths();
    signature_set set;
    for (const fs::path& path : paths) {
        set.append(load_signatures(path));
    }
    compile_options options;
    options.cache_directory = default_cache_directory();
    const auto compiled = engine::compile(set, options);
    detail::snapshot_extras extras{{"a.ldb:3: skipped"}, database_version{27000, "Tue"}};
    const std::string payload = detail::serialize_engine(compiled->internals(), extras);

    detail::snapshot_extras read_extras;
    auto state = detail::deserialize_engine(as_bytes(payload), read_extras);
    ASSERT_NE(state, nullptr);
    EXPECT_TRUE(state->report.from_snapshot);
    EXPECT_NE(state->id, compiled->internals().id);
    EXPECT_EQ(read_extras.skipped, extras.skipped);
    ASSERT_TRUE(read_extras.daily_version.has_value());
    EXPECT_EQ(read_extras.daily_version->version, 27000U);
    EXPECT_EQ(read_extras.daily_version->build_time, "Tue");
    // Every field written is read back: writing the read engine gives the same bytes.
    EXPECT_TRUE(detail::serialize_engine(*state, read_extras) == payload);
}

TEST(EngineSnapshot, CorruptPayloadsAreRefused) {
    signature_set set = parse_signatures("Test.Body:0:*:6162636465666768\n", "t.ndb");
    const auto compiled = engine::compile(set);
    const std::string payload = detail::serialize_engine(compiled->internals(), {});
    detail::snapshot_extras extras;
    for (std::size_t cut = 0; cut < payload.size(); cut += 7) {
        EXPECT_EQ(detail::deserialize_engine(as_bytes(payload.substr(0, cut)), extras), nullptr)
            << "cut at " << cut;
    }
    EXPECT_EQ(detail::deserialize_engine(as_bytes(payload + "x"), extras), nullptr);
    std::string huge_count = payload;
    huge_count[0] = '\xff';  // signature_count is a value; the names' length follows it
    huge_count[8] = '\xff';
    EXPECT_EQ(detail::deserialize_engine(as_bytes(huge_count), extras), nullptr);
}

/// A private cache directory and a signature directory, removed afterwards.
class SnapshotFiles : public ::testing::Test {
protected:
    void SetUp() override {
        root_ = fs::temp_directory_path() / ("ringscan-snapshot-" + std::to_string(::getpid()));
        fs::remove_all(root_);
        fs::create_directories(root_ / "sigs");
        cache_ = root_ / "cache";
        write("sigs/a.ndb", "Test.Body:0:*:6162636465666768\n");
        write("sigs/b.hdb", testing::md5_hex("payload") + ":7:Test.Hash\n");
        write("sigs/c.ldb", "Test.Pcre;Engine:81-255,Target:0;0&1;6f6e65;0/t[wW]o\\d/\n");
    }
    void TearDown() override { fs::remove_all(root_); }

    void write(const std::string& name, const std::string& text) {
        std::ofstream(root_ / name, std::ios::binary | std::ios::trunc) << text;
    }
    loaded_database load() {
        compile_options options;
        options.cache_directory = cache_;
        const fs::path sigs = root_ / "sigs";
        return load_database(std::span(&sigs, 1), options);
    }
    std::vector<fs::path> snapshots() const {
        std::vector<fs::path> found;
        for (const auto& entry : fs::directory_iterator(cache_)) {
            if (entry.path().extension() == ".engine") {
                found.push_back(entry.path());
            }
        }
        return found;
    }
    std::vector<std::string> names_of(const loaded_database& db, std::string_view bytes) {
        return all_names(db.compiled, context_, bytes);
    }

    fs::path root_;
    fs::path cache_;
    scanner context_;
};

TEST_F(SnapshotFiles, SecondLoadReadsTheSnapshotAndAnswersTheSame) {
    const loaded_database fresh = load();
    EXPECT_FALSE(fresh.compiled->compile_stats().from_snapshot);
    ASSERT_EQ(snapshots().size(), 1U);
    const loaded_database again = load();
    EXPECT_TRUE(again.compiled->compile_stats().from_snapshot);
    EXPECT_EQ(again.compiled->signature_count(), fresh.compiled->signature_count());
    for (const std::string& input :
         {std::string("xxabcdefghxx"), std::string("payload"), std::string("one two7"),
          std::string("one"), std::string("nothing here")}) {
        EXPECT_EQ(names_of(again, input), names_of(fresh, input)) << input;
    }
    EXPECT_EQ(names_of(again, "one two7"), std::vector<std::string>{"Test.Pcre.UNOFFICIAL"});
}

TEST_F(SnapshotFiles, ChangedFileIsCompiledAgain) {
    static_cast<void>(load());
    write("sigs/a.ndb", "Test.Body:0:*:6162636465666769\n");  // one digit changed
    const loaded_database changed = load();
    EXPECT_FALSE(changed.compiled->compile_stats().from_snapshot);
    EXPECT_EQ(names_of(changed, "abcdefgi"), std::vector<std::string>{"Test.Body.UNOFFICIAL"});
    EXPECT_TRUE(names_of(changed, "abcdefgh").empty());
    // A new database file in the directory changes the key too.
    write("sigs/d.ndb", "Test.Other:0:*:7171717171717171\n");
    EXPECT_FALSE(load().compiled->compile_stats().from_snapshot);
    EXPECT_TRUE(load().compiled->compile_stats().from_snapshot);
}

TEST_F(SnapshotFiles, DamagedSnapshotIsCompiledAgainAndReplaced) {
    static_cast<void>(load());
    ASSERT_EQ(snapshots().size(), 1U);
    const fs::path file = snapshots().front();
    std::string bytes = *read_file(file);
    bytes[bytes.size() - 5] = static_cast<char>(bytes[bytes.size() - 5] ^ 0x40);
    write(fs::relative(file, root_).string(), bytes);
    const loaded_database damaged = load();
    EXPECT_FALSE(damaged.compiled->compile_stats().from_snapshot);
    EXPECT_EQ(names_of(damaged, "abcdefgh"), std::vector<std::string>{"Test.Body.UNOFFICIAL"});
    EXPECT_TRUE(load().compiled->compile_stats().from_snapshot);  // rewritten intact

    write(fs::relative(file, root_).string(), bytes.substr(0, 40));  // truncated
    EXPECT_FALSE(load().compiled->compile_stats().from_snapshot);
}

TEST_F(SnapshotFiles, NoSnapshotWithoutCacheOrWhenToldNotToRead) {
    compile_options options;
    options.cache_directory = cache_;
    options.read_snapshot = false;
    const fs::path sigs = root_ / "sigs";
    static_cast<void>(load_database(std::span(&sigs, 1), options));
    ASSERT_EQ(snapshots().size(), 1U);  // written, for the next normal load
    EXPECT_FALSE(
        load_database(std::span(&sigs, 1), options).compiled->compile_stats().from_snapshot);
    EXPECT_TRUE(load().compiled->compile_stats().from_snapshot);
    const loaded_database uncached = load_database(std::span(&sigs, 1));
    EXPECT_FALSE(uncached.compiled->compile_stats().from_snapshot);
}

TEST_F(SnapshotFiles, LoadErrorsAreThrownAsWithoutSnapshots) {
    static_cast<void>(load());
    write("sigs/bad.ndb", "Broken:0:*:zz\n");
    EXPECT_THROW(static_cast<void>(load()), load_error);
}

}  // namespace
}  // namespace ringscan::matcher
