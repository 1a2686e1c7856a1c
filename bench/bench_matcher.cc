// Matcher throughput: 64 MiB buffers fed through stream_scan in 64 KiB chunks (the way
// INSTREAM data arrives), against BM_Memcpy over the same 64 MiB as the machine reference.
//
// Databases: the embedded defaults; the lines of the official daily.ndb + daily.hdb this
// slice loads; and rfxn.ndb (about 2,000 plain literals) as a larger literal set. The last
// two come from ../shared/sigs (or $RINGSCAN_SHARED_DIR/sigs) and are skipped with an error
// naming the path when absent.

#include "base/memory.h"
#include "matcher/content_scan.h"
#include "matcher/engine.h"
#include "matcher/introspect.h"

#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
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

// --- Real data, every signature set, clamd side by side --------------------------------
//
// Corpora: `bin` = regular files of /usr/bin then /usr/lib/x86_64-linux-gnu (>= 4 KiB, in path
// order) up to 64 MiB, each scanned as its own stream; `txt` = uncompressed text files of
// /usr/share/doc (no NUL byte in their first 4 KiB, >= 1 KiB) concatenated into 4 MiB
// streams, up to 32 MiB. Signatures: every file of sigs/clamav-official, sigs/unofficial-mix
// and sigs/interserver (all formats: hashes, .ndb/.db, .ldb with PCRE, allow and ignore
// lists), linked into one directory (prefixed with the set name) that both sides load.
// BM_Corpus scans each stream with content_scan (raw stream + whole-object signatures, as
// ringscand does); BM_ClamdCorpus sends the same streams as zINSTREAM (1 MiB chunks, one
// connection per stream) to Debian's /usr/sbin/clamd, started here on 127.0.0.1 on that
// directory with `DisableCache yes`, and stopped at exit. BM_Compile times the engine
// compile without a cache (cold) and with a warm cache; BM_Target reports per target type
// the Hyperscan database sizes, literal and expression counts and prefilter candidate hits
// per MiB of each corpus.
// They take minutes (clamd), so they run only with RINGSCAN_BENCH_REAL=1 in the environment.

enum class corpus_kind : std::uint8_t { bin, txt };

bool real_benchmarks_enabled(benchmark::State& state) {
    const char* on = std::getenv("RINGSCAN_BENCH_REAL");
    if (on == nullptr || std::string_view(on) != "1") {
        state.SkipWithError("set RINGSCAN_BENCH_REAL=1 to run the real-data benchmarks");
        return false;
    }
    return true;
}

std::vector<std::vector<std::byte>> make_corpus(corpus_kind kind) {
    namespace fs = std::filesystem;
    std::vector<std::vector<std::byte>> out;
    std::size_t total = 0;
    const std::size_t cap = kind == corpus_kind::bin ? std::size_t{64} << 20 : std::size_t{32} << 20;
    const std::vector<fs::path> roots =
        kind == corpus_kind::bin
            ? std::vector<fs::path>{"/usr/bin", "/usr/lib/x86_64-linux-gnu"}
            : std::vector<fs::path>{"/usr/share/doc"};
    const auto read_all = [](const fs::path& path) {
        std::ifstream in(path, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return text;
    };
    for (const fs::path& root : roots) {
        std::vector<fs::path> files;
        std::error_code error;
        const auto options = fs::directory_options::skip_permission_denied;
        for (fs::recursive_directory_iterator it(root, options, error), end; !error && it != end;
             it.increment(error)) {
            std::error_code status_error;
            if (it->is_symlink(status_error) || !it->is_regular_file(status_error)) {
                continue;
            }
            files.push_back(it->path());
        }
        std::sort(files.begin(), files.end());
        for (const fs::path& path : files) {
            if (total >= cap) {
                return out;
            }
            std::error_code size_error;
            const auto size = fs::file_size(path, size_error);
            if (size_error || size < (kind == corpus_kind::bin ? 4096U : 1024U) ||
                size > (std::size_t{32} << 20)) {
                continue;
            }
            const std::string text = read_all(path);
            if (kind == corpus_kind::txt) {
                const std::string ext = path.extension().string();
                if (ext == ".gz" || ext == ".pdf" || ext == ".png" || ext == ".jpg" ||
                    ext == ".gif" || ext == ".bz2" || ext == ".xz" || ext == ".zip" ||
                    ext == ".svgz" ||
                    text.find('\0') < std::min<std::size_t>(text.size(), 4096)) {
                    continue;
                }
                if (out.empty() || out.back().size() >= (std::size_t{4} << 20)) {
                    out.emplace_back();
                }
            } else {
                out.emplace_back();
            }
            const auto bytes = std::as_bytes(std::span<const char>(text.data(), text.size()));
            out.back().insert(out.back().end(), bytes.begin(), bytes.end());
            total += text.size();
        }
    }
    return out;
}

const std::vector<std::vector<std::byte>>& corpus(corpus_kind kind) {
    static const auto bin = make_corpus(corpus_kind::bin);
    static const auto txt = make_corpus(corpus_kind::txt);
    return kind == corpus_kind::bin ? bin : txt;
}

std::size_t corpus_bytes(const std::vector<std::vector<std::byte>>& streams) {
    std::size_t total = 0;
    for (const auto& s : streams) {
        total += s.size();
    }
    return total;
}

/// Resident memory of a process (kB), from /proc/<pid>/status; 0 when unknown.
std::uint64_t resident_kb(const std::string& pid = "self") {
    std::ifstream status("/proc/" + pid + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("VmRSS:")) {
            return std::strtoull(line.c_str() + 6, nullptr, 10);
        }
    }
    return 0;
}

/// Every signature file of the three sets, linked into one directory (names prefixed with
/// the set: two sets hold an interservertopline.db and a shell.ldb), removed at exit.
class signature_directory {
public:
    signature_directory() {
        namespace fs = std::filesystem;
        path_ = fs::temp_directory_path() / ("ringscan-bench-sigs-" + std::to_string(::getpid()));
        fs::remove_all(path_);
        fs::create_directories(path_);
        for (const char* set : {"clamav-official", "unofficial-mix", "interserver"}) {
            std::error_code error;
            for (fs::directory_iterator it(shared_sigs() / set, error), end; !error && it != end;
                 it.increment(error)) {
                if (it->is_regular_file()) {
                    fs::create_symlink(fs::absolute(it->path()),
                                       path_ / (std::string(set) + "-" + it->path().filename().string()));
                    ++files_;
                }
            }
        }
    }
    ~signature_directory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    signature_directory(const signature_directory&) = delete;
    signature_directory& operator=(const signature_directory&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] std::size_t files() const { return files_; }

private:
    std::filesystem::path path_;
    std::size_t files_ = 0;
};

const signature_directory& all_signature_files() {
    static const signature_directory directory;
    return directory;
}

struct all_sets {
    std::shared_ptr<const engine> compiled;
    std::size_t signatures = 0;
    std::size_t skipped = 0;
    double load_seconds = 0;     ///< parse + cold compile
    double resident_mb = 0;      ///< growth of this process's RSS by the loaded engine
    std::string error;
};

/// The engine over every set, compiled without a cache (a cold start).
const all_sets& all_signatures() {
    static const all_sets loaded = [] {
        all_sets db;
        if (all_signature_files().files() == 0) {
            db.error = "no signature files under " + shared_sigs().string();
            return db;
        }
        try {
            const std::uint64_t before = resident_kb();
            const auto start = std::chrono::steady_clock::now();
            signature_set set = load_signatures(all_signature_files().path());
            db.compiled = engine::compile(set);
            db.load_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            db.signatures = set.size();
            db.skipped = set.skipped.size() + db.compiled->skipped().size();
            set = signature_set{};
            ringscan::give_back_free_memory();  // as ringscand does after a load
            db.resident_mb = static_cast<double>(resident_kb() - before) / 1024.0;
        } catch (const load_error& e) {
            db.error = e.what();
        }
        return db;
    }();
    return loaded;
}

/// The engine over every set, or nullptr after marking the benchmark skipped (real-data
/// benchmarks off, or the sets missing or refused).
const all_sets* all_signatures_or_skip(benchmark::State& state) {
    if (!real_benchmarks_enabled(state)) {
        return nullptr;
    }
    const all_sets& loaded = all_signatures();
    if (!loaded.error.empty()) {
        state.SkipWithError(loaded.error.c_str());
        return nullptr;
    }
    return &loaded;
}

void BM_Corpus(benchmark::State& state, corpus_kind kind) {
    const all_sets* all = all_signatures_or_skip(state);
    if (all == nullptr) {
        return;
    }
    const all_sets& loaded = *all;
    const auto& streams = corpus(kind);
    scanner context;
    std::size_t infected = 0;
    for (auto _ : state) {
        infected = 0;
        for (const auto& stream : streams) {
            const std::span<const std::byte> bytes(stream);
            content_scan scan(loaded.compiled, context);
            for (std::size_t at = 0; at < bytes.size(); at += chunk_size) {
                scan.feed(bytes.subspan(at, std::min(chunk_size, bytes.size() - at)));
            }
            infected += scan.finish().infected ? 1U : 0U;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(corpus_bytes(streams)));
    state.counters["streams"] = static_cast<double>(streams.size());
    state.counters["found"] = static_cast<double>(infected);
    state.counters["signatures"] = static_cast<double>(loaded.signatures);
    state.counters["skipped"] = static_cast<double>(loaded.skipped);
    state.counters["load_s"] = loaded.load_seconds;
    state.counters["engine_rss_MB"] = loaded.resident_mb;
}
BENCHMARK_CAPTURE(BM_Corpus, bin, corpus_kind::bin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Corpus, txt, corpus_kind::txt)->Unit(benchmark::kMillisecond)->UseRealTime();

// How an engine comes to be at startup: cold (parse + compile, no cache), with every
// Hyperscan database in a private cache (parse + the rest of the compile), and from the
// engine snapshot in that cache (what ringscand and ringscan do when nothing changed).
enum class start_kind : std::uint8_t { cold, hyperscan_cache, snapshot };

/// A private cache directory for the warm starts, filled by one load the first time it is
/// asked for and removed when the benchmark program exits.
class private_cache {
public:
    static const std::filesystem::path& filled(std::span<const std::filesystem::path> paths) {
        static private_cache cache;
        if (!cache.filled_) {
            compile_options options;
            options.cache_directory = cache.directory_;
            static_cast<void>(load_database(paths, options));
            cache.filled_ = true;
        }
        return cache.directory_;
    }
    private_cache(const private_cache&) = delete;
    private_cache& operator=(const private_cache&) = delete;

private:
    private_cache()
        : directory_(std::filesystem::temp_directory_path() /
                     ("ringscan-bench-cache-" + std::to_string(::getpid()))) {}
    ~private_cache() {
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
    }
    std::filesystem::path directory_;
    bool filled_ = false;
};

void BM_Compile(benchmark::State& state, start_kind kind) {
    if (all_signatures_or_skip(state) == nullptr) {
        return;
    }
    namespace fs = std::filesystem;
    const fs::path signatures = all_signature_files().path();
    const std::span<const fs::path> paths(&signatures, 1);
    compile_options options;
    if (kind != start_kind::cold) {
        options.cache_directory = private_cache::filled(paths);
    }
    options.read_snapshot = kind == start_kind::snapshot;
    compile_report report;
    for (auto _ : state) {
        const loaded_database loaded = load_database(paths, options);
        report = loaded.compiled->compile_stats();
    }
    state.counters["cache_hits"] = static_cast<double>(report.cache_hits);
    state.counters["compiled"] = static_cast<double>(report.cache_misses);
    state.counters["from_snapshot"] = report.from_snapshot ? 1 : 0;
}
BENCHMARK_CAPTURE(BM_Compile, cold, start_kind::cold)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Compile, warm_hyperscan, start_kind::hyperscan_cache)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK_CAPTURE(BM_Compile, warm_snapshot, start_kind::snapshot)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

// Per target type: the Hyperscan databases (streaming body shard + whole-object group),
// their literal and expression counts, and how many prefilter candidates (factor hits,
// each verified exactly afterwards) each MiB of the corpora yields. Timed: scanning both
// corpora through this target's literal databases alone.
using introspect::databases_of;
using introspect::target_databases;

int count_hit(unsigned int, unsigned long long, unsigned long long, unsigned int, void* context) {
    ++*static_cast<std::uint64_t*>(context);
    return 0;
}

/// Factor hits of `database` over every stream of `streams`.
std::uint64_t candidate_hits(const hs_database_t* database, bool streaming,
                             const std::vector<std::vector<std::byte>>& streams) {
    if (database == nullptr) {
        return 0;
    }
    hs_scratch_t* scratch = nullptr;
    if (hs_alloc_scratch(database, &scratch) != HS_SUCCESS) {
        return 0;
    }
    std::uint64_t hits = 0;
    for (const auto& stream : streams) {
        const auto* data = reinterpret_cast<const char*>(stream.data());
        const auto length = static_cast<unsigned>(stream.size());
        if (streaming) {
            hs_stream_t* open = nullptr;
            if (hs_open_stream(database, 0, &open) == HS_SUCCESS) {
                hs_scan_stream(open, data, length, 0, scratch, count_hit, &hits);
                hs_close_stream(open, scratch, count_hit, &hits);
            }
        } else {
            hs_scan(database, data, length, 0, scratch, count_hit, &hits);
        }
    }
    hs_free_scratch(scratch);
    return hits;
}

void BM_Target(benchmark::State& state, std::uint8_t target) {
    const all_sets* all = all_signatures_or_skip(state);
    if (all == nullptr) {
        return;
    }
    const all_sets& loaded = *all;
    const target_databases db = databases_of(*loaded.compiled, target);
    if (db.literals + db.expressions == 0) {
        state.SkipWithError("no signatures of this target type");
        return;
    }
    std::uint64_t bin_hits = 0;
    std::uint64_t txt_hits = 0;
    for (auto _ : state) {
        bin_hits = candidate_hits(db.stream_literals, true, corpus(corpus_kind::bin)) +
                   candidate_hits(db.object_literals, false, corpus(corpus_kind::bin));
        txt_hits = candidate_hits(db.stream_literals, true, corpus(corpus_kind::txt)) +
                   candidate_hits(db.object_literals, false, corpus(corpus_kind::txt));
    }
    const double mib = 1024.0 * 1024.0;
    state.counters["db_KB"] = static_cast<double>(db.bytes) / 1024.0;
    state.counters["literals"] = static_cast<double>(db.literals);
    state.counters["expressions"] = static_cast<double>(db.expressions);
    state.counters["bin_hits_per_MiB"] =
        static_cast<double>(bin_hits) / (static_cast<double>(corpus_bytes(corpus(corpus_kind::bin))) / mib);
    state.counters["txt_hits_per_MiB"] =
        static_cast<double>(txt_hits) / (static_cast<double>(corpus_bytes(corpus(corpus_kind::txt))) / mib);
}
// ClamAV target types (matcher/signatures.h `target::`): any, PE, OLE2, HTML, mail, graphics,
// ELF, normalized text, Mach-O, PDF.
BENCHMARK_CAPTURE(BM_Target, 0_any, 0)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 1_pe, 1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 2_ole2, 2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 3_html, 3)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 4_mail, 4)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 5_graphics, 5)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 6_elf, 6)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 7_text, 7)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 9_macho, 9)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Target, 10_pdf, 10)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// A private clamd (or ringscand) on loopback over every signature set, started on first
// use and stopped (by its pid) at exit. Startup is timed up to the first PONG.
class daemon_process {
public:
    explicit daemon_process(const std::filesystem::path& binary) {
        namespace fs = std::filesystem;
        if (!fs::exists(binary)) {
            error_ = "missing " + binary.string();
            return;
        }
        if (all_signature_files().files() == 0) {
            error_ = "no signature files under " + shared_sigs().string();
            return;
        }
        dir_ = fs::temp_directory_path() /
               ("ringscan-bench-" + binary.filename().string() + "-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        port_ = free_port();
        std::ofstream(dir_ / "clamd.conf")
            << "Foreground yes\nTCPSocket " << port_ << "\nTCPAddr 127.0.0.1\n"
            << "DatabaseDirectory " << all_signature_files().path().string() << "\nLogFile "
            << (dir_ / "daemon.log").string() << "\nDisableCache yes\nMaxThreads 4\n"
            << "StreamMaxLength 300M\nMaxFileSize 300M\nMaxScanSize 400M\n";
        const std::string config = "--config-file=" + (dir_ / "clamd.conf").string();
        const std::string name = binary.filename().string();
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            ::execl(binary.c_str(), name.c_str(), config.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        // Polled every 5 ms: a warm ringscand start takes about 0.1 s, which a coarser poll
        // would round up.
        const auto start = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - start < std::chrono::seconds(300)) {
            if (request("zPING", {}) == "PONG") {
                load_seconds_ =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                        .count();
                resident_mb_ = static_cast<double>(resident_kb(std::to_string(pid_))) / 1024.0;
                return;
            }
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                error_ = name + " exited during startup, see " + (dir_ / "daemon.log").string();
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        error_ = name + " did not answer PING";
    }
    ~daemon_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    daemon_process(const daemon_process&) = delete;
    daemon_process& operator=(const daemon_process&) = delete;

    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] double load_seconds() const { return load_seconds_; }
    /// The daemon's resident memory right after it loaded the signatures.
    [[nodiscard]] double resident_mb() const { return resident_mb_; }

    /// Sends `command` (NUL-terminated, z-form), then `data` as INSTREAM chunks when the
    /// command is zINSTREAM; returns the reply without its terminator.
    [[nodiscard]] std::string request(std::string_view command,
                                      std::span<const std::byte> data) const {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            return {};
        }
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port_);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::string reply;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
            bool ok = send_all(fd, command.data(), command.size()) && send_all(fd, "", 1);
            if (command == "zINSTREAM") {
                constexpr std::size_t chunk = std::size_t{1} << 20;
                for (std::size_t at = 0; ok && at < data.size(); at += chunk) {
                    const auto n = static_cast<std::uint32_t>(std::min(chunk, data.size() - at));
                    const std::uint32_t length = htonl(n);
                    ok = send_all(fd, &length, sizeof length) &&
                         send_all(fd, data.data() + at, n);
                }
                const std::uint32_t end = 0;
                ok = ok && send_all(fd, &end, sizeof end);
            }
            std::array<char, 4096> buffer{};
            while (ok) {
                const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
                if (n <= 0) {
                    break;
                }
                reply.append(buffer.data(), static_cast<std::size_t>(n));
                if (reply.back() == '\0') {
                    reply.pop_back();
                    break;
                }
            }
        }
        ::close(fd);
        return reply;
    }

private:
    static bool send_all(int fd, const void* data, std::size_t size) {
        const auto* p = static_cast<const char*>(data);
        while (size > 0) {
            const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            p += n;
            size -= static_cast<std::size_t>(n);
        }
        return true;
    }
    static std::uint16_t free_port() {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        ::close(fd);
        return ntohs(address.sin_port);
    }

    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    double load_seconds_ = 0;
    double resident_mb_ = 0;
    std::string error_;
};

const daemon_process& clamd() {
    static const daemon_process process("/usr/sbin/clamd");
    return process;
}

void BM_ClamdCorpus(benchmark::State& state, corpus_kind kind) {
    if (!real_benchmarks_enabled(state)) {
        return;
    }
    const daemon_process& server = clamd();
    if (!server.error().empty()) {
        state.SkipWithError(server.error().c_str());
        return;
    }
    const auto& streams = corpus(kind);
    std::size_t infected = 0;
    for (auto _ : state) {
        infected = 0;
        for (const auto& stream : streams) {
            const std::string reply = server.request("zINSTREAM", stream);
            if (reply.ends_with(" FOUND")) {
                ++infected;
            } else if (!reply.ends_with(" OK")) {
                state.SkipWithError(("clamd replied '" + reply + "'").c_str());
                return;
            }
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(corpus_bytes(streams)));
    state.counters["streams"] = static_cast<double>(streams.size());
    state.counters["found"] = static_cast<double>(infected);
    state.counters["load_s"] = server.load_seconds();
    state.counters["clamd_rss_MB"] = server.resident_mb();
}
BENCHMARK_CAPTURE(BM_ClamdCorpus, bin, corpus_kind::bin)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK_CAPTURE(BM_ClamdCorpus, txt, corpus_kind::txt)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

// ringscand's own startup over every signature set (parse and compile with the user's
// Hyperscan cache, or read the engine snapshot, then serve) against clamd's, both timed to
// the first PONG, with each daemon's resident memory right after. ringscand starts twice:
// the second start is the warm one (the first fills the cache and writes the snapshot if
// they were missing).
void BM_DaemonStart(benchmark::State& state) {
    if (!real_benchmarks_enabled(state)) {
        return;
    }
    const daemon_process& reference = clamd();
    if (!reference.error().empty()) {
        state.SkipWithError(reference.error().c_str());
        return;
    }
    double first_load = 0;
    double warm_load = 0;
    double resident = 0;
    for (auto _ : state) {
        {
            const daemon_process first(RINGSCAND_PATH);
            if (!first.error().empty()) {
                state.SkipWithError(first.error().c_str());
                return;
            }
            first_load = first.load_seconds();
        }
        const daemon_process warm(RINGSCAND_PATH);
        if (!warm.error().empty()) {
            state.SkipWithError(warm.error().c_str());
            return;
        }
        warm_load = warm.load_seconds();
        resident = warm.resident_mb();
    }
    state.counters["ringscand_first_load_s"] = first_load;
    state.counters["ringscand_warm_load_s"] = warm_load;
    state.counters["ringscand_rss_MB"] = resident;
    state.counters["clamd_load_s"] = reference.load_seconds();
    state.counters["clamd_rss_MB"] = reference.resident_mb();
}
BENCHMARK(BM_DaemonStart)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);

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
