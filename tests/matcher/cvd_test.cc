// CVD/CLD/CUD containers, .fp/.sfp allow lists and .ign/.ign2 ignore lists, checked against
// Debian clamscan 1.4.6. Found by experiment (and asserted below): clamscan loads a .cud
// whose header MD5 is wrong (only .cvd/.cld are checked); a .cud needs a daily.info whose
// first line repeats the header and lists `name:size:sha256` per member; a hand-made .cvd
// cannot be loaded by clamscan (RSA dsig), so .cvd parity is by name rule only.

#include "matcher/internal/cvd.h"

#include "matcher/engine.h"
#include "matcher/signatures.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "tests/matcher/test_util.h"
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>
#include <zlib.h>

namespace ringscan::matcher {
namespace {

namespace fs = std::filesystem;
using testing::as_bytes;

std::string hex_of(const unsigned char* data, unsigned int size) {
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < size; ++i) {
        text += digits[data[i] >> 4U];
        text += digits[data[i] & 0xFU];
    }
    return text;
}

std::string digest_hex(std::string_view bytes, const EVP_MD* kind) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), digest.data(), &size, kind, nullptr), 1);
    return hex_of(digest.data(), size);
}

using member_list = std::vector<std::pair<std::string, std::string>>;

std::string ustar(const member_list& members) {
    std::string out;
    for (const auto& [name, data] : members) {
        std::string header(512, '\0');
        std::copy(name.begin(), name.end(), header.begin());
        std::snprintf(header.data() + 100, 8, "%07o", 0644U);
        std::snprintf(header.data() + 108, 8, "%07o", 0U);
        std::snprintf(header.data() + 116, 8, "%07o", 0U);
        std::snprintf(header.data() + 124, 12, "%011lo", static_cast<unsigned long>(data.size()));
        std::snprintf(header.data() + 136, 12, "%011lo", 0UL);
        header[156] = '0';
        std::copy_n("ustar", 6, header.begin() + 257);
        header[263] = '0';
        header[264] = '0';
        std::fill_n(header.begin() + 148, 8, ' ');
        unsigned sum = 0;
        for (const char c : header) {
            sum += static_cast<unsigned char>(c);
        }
        std::snprintf(header.data() + 148, 8, "%06o", sum);
        out += header;
        out += data;
        out.append((512 - data.size() % 512) % 512, '\0');
    }
    out.append(1024, '\0');
    return out;
}

std::string gzip(const std::string& data) {
    z_stream stream{};
    EXPECT_EQ(deflateInit2(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&stream, data.size()) + 64, '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

constexpr std::int64_t build_epoch = 1795498256;  // Tue Nov 24 05:30:56 2026 UTC

/// A container as sigtool builds one: COPYING, <name>.info (header line, then
/// name:size:sha256 per database), the databases; tar.gz (or plain tar) after the header.
std::string container(const std::string& name, std::uint32_t version, const member_list& dbs,
                      bool gzipped = true, bool break_md5 = false) {
    const std::string fields = "ClamAV-VDB:24 Nov 2026 05-30 +0000:" + std::to_string(version) +
                               ":" + std::to_string(dbs.size()) + ":216:";
    const std::string tail = ":X:tester:" + std::to_string(build_epoch);
    std::string info = fields + "X" + tail + "\n";
    for (const auto& [db, data] : dbs) {
        info +=
            db + ":" + std::to_string(data.size()) + ":" + digest_hex(data, EVP_sha256()) + "\n";
    }
    member_list members{{"COPYING", "ClamAV databases\n"}, {name + ".info", info}};
    members.insert(members.end(), dbs.begin(), dbs.end());
    const std::string tar = ustar(members);
    const std::string body = gzipped ? gzip(tar) : tar;
    std::string header =
        fields + (break_md5 ? std::string(32, '0') : digest_hex(body, EVP_md5())) + tail;
    header.resize(512, ' ');
    return header + body;
}

void write(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        path = fs::temp_directory_path() /
               ("ringscan-cvd-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    static int& counter() {
        static int n = 0;
        return n;
    }
};

// "ERROR-TEST" and its halves: three literal signatures for the same text.
const std::string ndb =
    "Test.Cvd.Ndb:0:*:4552524f522d54455354\n"
    "Test.Two:0:*:4552524f522d5445\n"
    "Test.Three:0:*:524f522d54455354\n";
const std::string clam_exe_hdb = "aa15bcf478d165efd2065190eb473bcb:544:Test.Cvd.Hdb\n";
const std::string detected = "yyERROR-TESTyy";
const std::string allowed = "xxERROR-TESTxx";

std::vector<std::string> all_names(const signature_set& set, std::string_view data) {
    const auto compiled = engine::compile(set);
    scanner context;
    std::vector<std::string> out;
    for (const auto name : scan_buffer_all(compiled, context, as_bytes(data))) {
        out.emplace_back(name);
    }
    return out;
}

std::string first_name(const signature_set& set, std::string_view data) {
    const auto compiled = engine::compile(set);
    scanner context;
    const verdict v = scan_buffer(compiled, context, as_bytes(data));
    return v.infected ? std::string(v.name) : std::string("OK");
}

TEST(CvdTest, CudMembersLoadUnofficialWithDailyVersion) {
    temp_dir dir;
    write(dir.path / "daily.cud",
          container("daily", 27000,
                    {{"daily.ndb", ndb}, {"daily.hdb", clam_exe_hdb}, {"daily.ldb", "x;y\n"}}));
    const signature_set set = load_signatures(dir.path);
    EXPECT_EQ(set.bodies.size(), 3U);
    EXPECT_EQ(set.hashes.size(), 1U);
    ASSERT_EQ(set.skipped.size(), 1U);
    EXPECT_EQ(set.skipped[0],
              (dir.path / "daily.cud").string() + "/daily.ldb: format not supported yet");
    ASSERT_TRUE(set.daily_version.has_value());
    EXPECT_EQ(set.daily_version->version, 27000U);
    EXPECT_EQ(set.daily_version->build_time, detail::ctime_text(build_epoch));
    if (::getenv("TZ") == nullptr) {
        EXPECT_EQ(set.daily_version->build_time, "Tue Nov 24 05:30:56 2026");  // machine is UTC
    }
    EXPECT_EQ(first_name(set, detected), "Test.Cvd.Ndb.UNOFFICIAL");
    // A .cud's header MD5 is not checked (clamscan 1.4.6 loads such a file too).
    write(dir.path / "daily.cud", container("daily", 27000, {{"daily.ndb", ndb}}, true, true));
    EXPECT_EQ(load_signatures(dir.path).bodies.size(), 3U);
}

TEST(CvdTest, CvdNamesAreBareAndMd5IsChecked) {
    temp_dir dir;
    const fs::path cvd = dir.path / "main.cvd";
    write(cvd, container("main", 62, {{"main.ndb", ndb}, {"main.hdb", clam_exe_hdb}}));
    const signature_set set = load_signatures(cvd);
    EXPECT_FALSE(set.daily_version.has_value());
    EXPECT_EQ(all_names(set, detected),
              (std::vector<std::string>{"Test.Cvd.Ndb", "Test.Two", "Test.Three"}));
    const auto clam_exe = testing::read_file(testing::clam_exe_path);
    if (clam_exe) {
        EXPECT_EQ(first_name(set, *clam_exe), "Test.Cvd.Hdb");
    }
    write(cvd, container("main", 62, {{"main.ndb", ndb}}, true, true));
    try {
        static_cast<void>(load_signatures(dir.path));
        FAIL() << "a CVD with a wrong MD5 loaded";
    } catch (const load_error& e) {
        EXPECT_EQ(
            std::string(e.what()),
            cvd.string() + ": Can't verify database integrity (MD5 does not match the header)");
    }
    write(cvd, "ClamAV-VDB:nonsense");
    EXPECT_THROW(static_cast<void>(load_signatures(cvd)), load_error);
    write(cvd, std::string(600, 'x'));
    EXPECT_THROW(static_cast<void>(load_signatures(cvd)), load_error);
}

TEST(CvdTest, MalformedMemberNamesContainerAndMember) {
    temp_dir dir;
    write(dir.path / "daily.cld", container("daily", 3, {{"daily.ndb", "Bad:0:*:zz\n"}}));
    try {
        static_cast<void>(load_signatures(dir.path));
        FAIL() << "malformed member loaded";
    } catch (const load_error& e) {
        EXPECT_TRUE(
            std::string(e.what()).starts_with((dir.path / "daily.cld").string() + "/daily.ndb:1: "))
            << e.what();
    }
}

TEST(CvdTest, NewerOfCvdAndCldLoads) {
    temp_dir dir;
    write(dir.path / "daily.cvd",
          container("daily", 5, {{"daily.ndb", "Old.Sig:0:*:4552524f522d54455354\n"}}));
    write(dir.path / "daily.cld",
          container("daily", 6, {{"daily.ndb", "New.Sig:0:*:4552524f522d54455354\n"}}, false));
    auto set = load_signatures(dir.path);
    EXPECT_EQ(all_names(set, detected), std::vector<std::string>{"New.Sig"});
    EXPECT_EQ(set.daily_version->version, 6U);
    // Equal versions: the .cld still wins.
    write(dir.path / "daily.cvd",
          container("daily", 6, {{"daily.ndb", "Old.Sig:0:*:4552524f522d54455354\n"}}));
    EXPECT_EQ(all_names(load_signatures(dir.path), detected), std::vector<std::string>{"New.Sig"});
    write(dir.path / "daily.cvd",
          container("daily", 7, {{"daily.ndb", "Old.Sig:0:*:4552524f522d54455354\n"}}));
    set = load_signatures(dir.path);
    EXPECT_EQ(all_names(set, detected), std::vector<std::string>{"Old.Sig"});
    EXPECT_EQ(set.daily_version->version, 7U);
}

TEST(AllowListTest, FpAndSfpClearDetections) {
    temp_dir dir;
    write(dir.path / "a.ndb", ndb);
    write(dir.path / "a.hdb", clam_exe_hdb);
    write(dir.path / "a.fp",
          digest_hex(allowed, EVP_md5()) + ":" + std::to_string(allowed.size()) + ":Allowed.T\n");
    const auto clam_exe = testing::read_file(testing::clam_exe_path);
    const std::string clam = clam_exe.value_or(std::string(544, 'c'));
    write(dir.path / "a.sfp", digest_hex(clam, EVP_sha256()) + ":544:Allowed.C\n");
    const signature_set set = load_signatures(dir.path);
    EXPECT_EQ(set.allow_hashes.size(), 2U);
    EXPECT_EQ(set.hashes.size(), 1U);
    EXPECT_EQ(first_name(set, allowed), "OK");
    EXPECT_TRUE(all_names(set, allowed).empty());
    EXPECT_EQ(first_name(set, clam), "OK");
    EXPECT_EQ(first_name(set, detected), "Test.Cvd.Ndb.UNOFFICIAL");
    EXPECT_EQ(all_names(set, detected).size(), 3U);

    // Fed in small chunks: the first-match decision while streaming must not skip hashing.
    const auto compiled = engine::compile(set);
    scanner context;
    stream_scan scan(compiled, context);
    for (const char c : allowed) {
        scan.feed(as_bytes(std::string_view(&c, 1)));
    }
    EXPECT_FALSE(scan.finish().infected);
    // A size that does not match: no allow.
    EXPECT_EQ(first_name(set, allowed + "z"), "Test.Cvd.Ndb.UNOFFICIAL");
}

TEST(IgnoreListTest, Ign2DropsByNameAndLineMd5) {
    temp_dir dir;
    write(dir.path / "a.ndb", ndb);
    const std::string three_md5 = digest_hex("Test.Three:0:*:524f522d54455354", EVP_md5());
    write(dir.path / "b.ign2", "Test.Two\nTest.Three:" + three_md5 + "\n");
    EXPECT_EQ(all_names(load_signatures(dir.path), detected),
              std::vector<std::string>{"Test.Cvd.Ndb.UNOFFICIAL"});
    write(dir.path / "b.ign2", "Test.Three:" + std::string(32, 'a') + "\n");
    EXPECT_EQ(all_names(load_signatures(dir.path), detected).size(), 3U);
    fs::remove(dir.path / "b.ign2");
    write(dir.path / "old.ign", "a.ndb:1:Test.Cvd.Ndb\n");
    EXPECT_EQ(all_names(load_signatures(dir.path), detected),
              (std::vector<std::string>{"Test.Two.UNOFFICIAL", "Test.Three.UNOFFICIAL"}));
    write(dir.path / "old.ign", "a:b:c:d\n");
    EXPECT_THROW(static_cast<void>(load_signatures(dir.path)), load_error);
}

TEST(IgnoreListTest, Ign2InsideContainerAppliesToLaterMembers) {
    temp_dir dir;
    write(dir.path / "daily.cud",
          container("daily", 1, {{"daily.ign2", "Test.Cvd.Ndb\n"}, {"daily.ndb", ndb}}));
    EXPECT_EQ(first_name(load_signatures(dir.path), detected), "Test.Two.UNOFFICIAL");
    // After the database in the archive: too late for it (clamscan agrees, parity test).
    write(dir.path / "daily.cud",
          container("daily", 1, {{"daily.ndb", ndb}, {"daily.ign2", "Test.Cvd.Ndb\n"}}));
    EXPECT_EQ(first_name(load_signatures(dir.path), detected), "Test.Cvd.Ndb.UNOFFICIAL");
}

// --- Parity with clamscan --------------------------------------------------------------

std::vector<std::string> clamscan_names(const fs::path& db, const fs::path& file, bool all) {
    const std::string out = testing::run_command(std::string("/usr/bin/clamscan --no-summary ") +
                                                 (all ? "--allmatch -d " : "-d ") + db.string() +
                                                 " " + file.string() + " 2>/dev/null");
    std::vector<std::string> names;
    const std::string prefix = file.string() + ": ";
    std::size_t at = 0;
    while (at < out.size()) {
        auto end = out.find('\n', at);
        end = end == std::string::npos ? out.size() : end;
        const std::string line = out.substr(at, end - at);
        if (line.starts_with(prefix) && line.ends_with(" FOUND")) {
            names.push_back(line.substr(prefix.size(), line.size() - prefix.size() - 6));
        }
        at = end + 1;
    }
    return names;
}

TEST(CvdParityTest, MatchesClamscan) {
    if (!fs::exists("/usr/bin/clamscan")) {
        if (testing::running_in_ci()) {
            FAIL() << "clamscan missing";
        }
        GTEST_SKIP() << "clamscan missing";
    }
    RINGSCAN_REQUIRE_FILE(testing::clam_exe_path);
    const std::string clam = *testing::read_file(testing::clam_exe_path);
    temp_dir dir;
    const fs::path db = dir.path / "db";
    const fs::path files = dir.path / "files";
    fs::create_directories(db);
    fs::create_directories(files);
    write(db / "daily.cud",
          container(
              "daily", 27000,
              {{"daily.ndb", ndb}, {"daily.hdb", clam_exe_hdb}, {"daily.ign2", "Test.Three\n"}}));
    write(db / "local.ndb", "Local.Sig:0:*:4552524f522d54455354\n");
    write(db / "local.ign2", "Test.Two\n");
    write(db / "local.fp",
          digest_hex(allowed, EVP_md5()) + ":" + std::to_string(allowed.size()) + ":Allowed.T\n");
    const std::vector<std::pair<std::string, std::string>> inputs = {
        {"detected.txt", detected},
        {"allowed.txt", allowed},
        {"clam.exe", clam},
        {"testfile.txt", testing::eicar()}};
    const fs::path db2 = dir.path / "db2";
    fs::create_directories(db2);
    write(db2 / "daily.cud",
          container("daily", 27000, {{"daily.ign2", "Test.Three\n"}, {"daily.ndb", ndb}}));
    write(db2 / "local.sfp", digest_hex(clam, EVP_sha256()) + ":544:Allowed.C\n");
    write(db2 / "local.hdb", clam_exe_hdb);
    for (const fs::path& database : {db, db2}) {
        const signature_set set = load_signatures(database);
        for (const auto& [name, data] : inputs) {
            write(files / name, data);
            const auto first = clamscan_names(database, files / name, false);
            auto expected = clamscan_names(database, files / name, true);
            auto actual = all_names(set, data);
            std::sort(expected.begin(), expected.end());
            std::sort(actual.begin(), actual.end());
            EXPECT_EQ(actual, expected) << database << " " << name;
            EXPECT_EQ(first_name(set, data), first.empty() ? std::string("OK") : first.front())
                << database << " " << name;
        }
    }
}

}  // namespace
}  // namespace ringscan::matcher
