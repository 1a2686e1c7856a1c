#pragma once

// Helpers shared by the matcher tests: test data locations and byte-buffer builders.

#include "base/hex.h"
#include "matcher/content_scan.h"
#include "matcher/engine.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace ringscan::matcher::testing {

/// ../shared next to the project root (tests reach shared data through it; CI has it there too).
inline std::filesystem::path shared_dir() {
    return std::filesystem::path(RINGSCAN_SOURCE_DIR) / ".." / "shared";
}

/// Debian clamav-testfiles: the plain clam.exe (MD5 aa15bcf4..., 544 bytes).
inline const std::filesystem::path clam_exe_path{"/usr/share/clamav-testfiles/clam.exe"};

inline bool running_in_ci() {
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string_view(ci) == "true";
}

inline std::optional<std::string> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The EICAR test string, assembled at run time so the test binary does not carry it whole.
inline std::string eicar() {
    std::string text = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR";
    text += "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    return text;
}

inline std::span<const std::byte> as_bytes(std::string_view text) {
    return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

/// Lower-case hex digits of `bytes` (signature lines are written with it).
inline std::string hex_of(std::string_view bytes) {
    return hex::encode(bytes);
}

/// MD5 of `bytes` in lower-case hex, as .hdb lines write it.
inline std::string md5_hex(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_md5(), nullptr),
              1);
    return hex_of(std::string_view(reinterpret_cast<const char*>(digest.data()), length));
}

inline std::string random_bytes(std::size_t size, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string out(size, '\0');
    for (char& c : out) {
        c = static_cast<char>(rng() & 0xFFU);
    }
    return out;
}

/// English-like text with markup and code fragments, deterministic for a seed.
inline std::string text_like(std::size_t size, std::uint64_t seed) {
    static constexpr std::string_view words[] = {
        "the",     "of",       "and",      "to",     "in",         "is",       "that",
        "for",     "it",       "with",     "as",     "was",        "on",       "be",
        "message", "received", "function", "return", "<div>",      "</div>",   "http://",
        "www.",    "example",  "com",      "From:",  "Subject:",   "Content-", "Type:",
        "text/",   "plain;",   "charset",  "utf-8",  "var",        "=",        "{",
        "}",       "if",       "else",     "0x00",   "2024-01-01", "report",   "invoice",
        "payment", "account",  "please",   "click",  "here",       "password", "update"};
    std::mt19937_64 rng(seed);
    std::string out;
    out.reserve(size + 32);
    while (out.size() < size) {
        out += words[rng() % std::size(words)];
        const auto r = rng() % 16;
        out += r == 0 ? ".\n" : (r == 1 ? ", " : " ");
    }
    out.resize(size);
    return out;
}

/// Runs a shell command (the parity tests' clamscan) and returns what it printed.
inline std::string run_command(const std::string& command) {
    std::string out;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return out;
    }
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) {
        out += buffer.data();
    }
    ::pclose(pipe);
    return out;
}

/// clamscan's report ("path: Name FOUND" / "path: OK" lines) as file name -> the names it
/// found, in order, each once; a file reported OK maps to no names.
inline std::map<std::string, std::vector<std::string>> clamscan_names_by_file(
    const std::string& report) {
    std::map<std::string, std::vector<std::string>> names_by_file;
    std::size_t start = 0;
    while (start < report.size()) {
        std::size_t end = report.find('\n', start);
        if (end == std::string::npos) {
            end = report.size();
        }
        const std::string text = report.substr(start, end - start);
        start = end + 1;
        const auto colon = text.find(": ");
        const auto found = text.rfind(" FOUND");
        if (colon == std::string::npos) {
            continue;
        }
        auto& names = names_by_file[std::filesystem::path(text.substr(0, colon)).filename()];
        if (found != std::string::npos && found > colon) {
            const std::string name = text.substr(colon + 2, found - colon - 2);
            if (std::find(names.begin(), names.end(), name) == names.end()) {
                names.push_back(name);
            }
        }
    }
    return names_by_file;
}

/// A small deterministic generator (xorshift64) for randomized layouts: the same seed gives
/// the same files on every machine, so a failure can be replayed.
struct xorshift {
    std::uint64_t state;
    std::uint64_t operator()() {
        state ^= state << 13U;
        state ^= state >> 7U;
        state ^= state << 17U;
        return state;
    }
};

/// Every name content_scan reports for `bytes` in all-match mode, as a set (clamscan prints
/// some names several times; comparisons with it go by set).
inline std::set<std::string> content_names(const std::shared_ptr<const engine>& compiled,
                                           std::string_view bytes) {
    scanner context;
    content_scan scan(compiled, context, scan_mode::all_matches);
    scan.feed(std::as_bytes(std::span(bytes.data(), bytes.size())));
    static_cast<void>(scan.finish());
    return {scan.matches().begin(), scan.matches().end()};
}

/// Debian's clamscan, the oracle the parity tests run.
inline const std::filesystem::path clamscan_path{"/usr/bin/clamscan"};

/// Writes `databases` and `files` (name -> content) to a fresh temporary directory, runs
/// `clamscan --allmatch --no-summary` with those databases on those files and returns the
/// names it reported per file, as a set (a file it found clean maps to no names; one it
/// gave no verdict for is absent). Callers check clamscan_path exists first.
inline std::map<std::string, std::set<std::string>> clamscan_allmatch(
    const std::map<std::string, std::string>& databases,
    const std::map<std::string, std::string>& files) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("ringscan-clamscan-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string command = clamscan_path.string() + " --allmatch --no-summary";
    for (const auto& [name, content] : databases) {
        std::ofstream(dir / name) << content;
        command += " -d " + (dir / name).string();
    }
    for (const auto& [name, content] : files) {
        std::ofstream(dir / name, std::ios::binary) << content;
        command += " " + (dir / name).string();
    }
    std::map<std::string, std::set<std::string>> names;
    for (auto& [file, found] : clamscan_names_by_file(run_command(command + " 2>&1"))) {
        names[file] = std::set<std::string>(found.begin(), found.end());
    }
    std::filesystem::remove_all(dir);
    return names;
}

}  // namespace ringscan::matcher::testing

/// Skips a test whose local input is missing, except under CI=true where it fails.
#define RINGSCAN_REQUIRE_FILE(path)                              \
    do {                                                         \
        if (!std::filesystem::exists(path)) {                    \
            if (::ringscan::matcher::testing::running_in_ci()) { \
                FAIL() << "missing test input " << (path);       \
            }                                                    \
            GTEST_SKIP() << "missing test input " << (path);     \
        }                                                        \
    } while (false)

/// Fails (never skips) when ../shared test data is absent, naming the path.
#define RINGSCAN_REQUIRE_SHARED(path)                                       \
    do {                                                                    \
        if (!std::filesystem::exists(path)) {                               \
            FAIL() << "shared test data missing: " << (path)                \
                   << " (tests expect ../shared next to the project root)"; \
        }                                                                   \
    } while (false)
