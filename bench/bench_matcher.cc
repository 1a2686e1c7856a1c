// Matcher throughput: 64 MiB buffers fed through stream_scan in 64 KiB chunks (the way
// INSTREAM data arrives), against BM_Memcpy over the same 64 MiB as the machine reference.
//
// Databases: the embedded defaults; the lines of the official daily.ndb + daily.hdb this
// slice loads; and rfxn.ndb (about 2,000 plain literals) as a larger literal set. The last
// two come from ../shared/sigs (or $RINGSCAN_SHARED_DIR/sigs) and are skipped with an error
// naming the path when absent.

#include "matcher/engine.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace ringscan::matcher;

constexpr std::size_t buffer_size = std::size_t{64} << 20;
constexpr std::size_t chunk_size = std::size_t{64} << 10;

std::vector<std::byte> make_random() {
    std::vector<std::byte> out(buffer_size);
    std::mt19937_64 rng(42);
    for (std::size_t i = 0; i < out.size(); i += 8) {
        const std::uint64_t word = rng();
        std::memcpy(out.data() + i, &word, sizeof word);
    }
    return out;
}

// Mail- and web-like text: words, headers, markup, numbers, line breaks.
std::vector<std::byte> make_text() {
    static constexpr std::string_view words[] = {
        "the",     "of",           "and",      "to",     "in",         "is",       "that",
        "for",     "it",           "with",     "as",     "was",        "on",       "be",
        "message", "received",     "function", "return", "<div>",      "</div>",   "<a href=",
        "http://", "https://www.", "example",  ".com/",  "From:",      "Subject:", "Content-",
        "Type:",   "text/html;",   "charset=", "utf-8",  "var",        "=",        "{",
        "}",       "if",           "else",     "0x00",   "2024-01-01", "report",   "invoice",
        "payment", "account",      "please",   "click",  "here",       "password", "update",
        "Dear",    "customer",     "regards",  "base64", "boundary"};
    std::vector<std::byte> out;
    out.reserve(buffer_size + 32);
    std::mt19937_64 rng(7);
    const auto append = [&out](std::string_view s) {
        const auto bytes = std::as_bytes(std::span<const char>(s.data(), s.size()));
        out.insert(out.end(), bytes.begin(), bytes.end());
    };
    while (out.size() < buffer_size) {
        append(words[rng() % std::size(words)]);
        const auto r = rng() % 16;
        append(r == 0 ? ".\r\n" : (r == 1 ? ", " : " "));
    }
    out.resize(buffer_size);
    return out;
}

enum class data_kind : std::uint8_t { random, text };

const std::vector<std::byte>& buffer(data_kind kind) {
    static const std::vector<std::byte> random = make_random();
    static const std::vector<std::byte> text = make_text();
    return kind == data_kind::random ? random : text;
}

std::filesystem::path shared_sigs() {
    if (const char* dir = std::getenv("RINGSCAN_SHARED_DIR")) {
        return std::filesystem::path(dir) / "sigs";
    }
    // bench/bench_matcher.cc -> project root -> ../shared
    return std::filesystem::path(__FILE__).parent_path().parent_path() / ".." / "shared" / "sigs";
}

enum class db_kind : std::uint8_t { embedded, daily, rfxn };

struct database {
    std::shared_ptr<const engine> compiled;
    std::size_t bodies = 0;
    std::size_t hashes = 0;
    std::size_t skipped = 0;
    std::string error;  ///< non-empty: the benchmark is skipped with it
};

database load(db_kind kind) {
    database db;
    signature_set set;
    try {
        if (kind == db_kind::embedded) {
            set = embedded_default_signatures();
        } else {
            const std::vector<std::filesystem::path> files =
                kind == db_kind::daily
                    ? std::vector<std::filesystem::path>{shared_sigs() /
                                                             "clamav-official/daily.ndb",
                                                         shared_sigs() /
                                                             "clamav-official/daily.hdb"}
                    : std::vector<std::filesystem::path>{shared_sigs() / "unofficial-mix/rfxn.ndb"};
            for (const auto& file : files) {
                if (!std::filesystem::exists(file)) {
                    db.error = "missing " + file.string();
                    return db;
                }
                set.append(load_signatures(file));
            }
        }
        db.compiled = engine::compile(set);
    } catch (const load_error& e) {
        db.error = e.what();
        return db;
    }
    db.bodies = set.bodies.size();
    db.hashes = set.hashes.size();
    db.skipped = set.skipped.size();
    return db;
}

const database& get(db_kind kind) {
    static std::map<db_kind, database> cache;
    auto it = cache.find(kind);
    if (it == cache.end()) {
        it = cache.emplace(kind, load(kind)).first;
    }
    return it->second;
}

void BM_ScanStream(benchmark::State& state, db_kind db, data_kind data) {
    const database& loaded = get(db);
    if (!loaded.error.empty()) {
        state.SkipWithError(loaded.error.c_str());
        return;
    }
    const std::span<const std::byte> bytes(buffer(data));
    scanner context;
    for (auto _ : state) {
        stream_scan scan(loaded.compiled, context);
        for (std::size_t at = 0; at < bytes.size(); at += chunk_size) {
            scan.feed(bytes.subspan(at, std::min(chunk_size, bytes.size() - at)));
        }
        const verdict v = scan.finish();
        benchmark::DoNotOptimize(v);
        if (v.infected || scan.scan_error()) {
            state.SkipWithError("unexpected verdict on clean data");
            break;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(bytes.size()));
    state.counters["bodies"] = static_cast<double>(loaded.bodies);
    state.counters["hashes"] = static_cast<double>(loaded.hashes);
    state.counters["skipped"] = static_cast<double>(loaded.skipped);
}

BENCHMARK_CAPTURE(BM_ScanStream, embedded_random, db_kind::embedded, data_kind::random)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ScanStream, embedded_text, db_kind::embedded, data_kind::text)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ScanStream, daily_random, db_kind::daily, data_kind::random)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ScanStream, daily_text, db_kind::daily, data_kind::text)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ScanStream, rfxn_random, db_kind::rfxn, data_kind::random)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ScanStream, rfxn_text, db_kind::rfxn, data_kind::text)
    ->Unit(benchmark::kMillisecond);

// Per-stream cost: many small messages, each its own stream_scan (open, one feed, finish).
void BM_ScanSmallStreams(benchmark::State& state, db_kind db) {
    const database& loaded = get(db);
    if (!loaded.error.empty()) {
        state.SkipWithError(loaded.error.c_str());
        return;
    }
    const auto size = static_cast<std::size_t>(state.range(0));
    const std::span<const std::byte> bytes = std::span(buffer(data_kind::text)).first(size);
    scanner context;
    for (auto _ : state) {
        benchmark::DoNotOptimize(scan_buffer(loaded.compiled, context, bytes));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(size));
}
BENCHMARK_CAPTURE(BM_ScanSmallStreams, embedded, db_kind::embedded)->Arg(1024)->Arg(16384);
BENCHMARK_CAPTURE(BM_ScanSmallStreams, rfxn, db_kind::rfxn)->Arg(1024)->Arg(16384);

// The machine's reference: one copy of the same 64 MiB.
void BM_Memcpy(benchmark::State& state) {
    const std::vector<std::byte>& source = buffer(data_kind::random);
    std::vector<std::byte> target(source.size());
    for (auto _ : state) {
        std::memcpy(target.data(), source.data(), source.size());
        benchmark::ClobberMemory();
    }
    benchmark::DoNotOptimize(target.data());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(source.size()));
}
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
