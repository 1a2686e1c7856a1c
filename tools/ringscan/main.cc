// ringscan: a clamscan-compatible command line scanner over the matcher.
//
// Same options, output lines, summary block and exit codes as clamscan 1.4.6 (0 clean,
// 1 virus found, 2 error), so scripts written for clamscan work unchanged and the parity
// test (tests/parity) can compare the two line by line. Each file is scanned with one
// matcher::content_scan fed in 128 KiB reads, on one engine compiled from every -d merged.
// tools/ringscan/README.md lists what differs from clamscan.

#include "matcher/content_scan.h"
#include "matcher/engine.h"
#include "matcher/signatures.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <exception>
#include <fcntl.h>
#include <fstream>
#include <getopt.h>
#include <memory>
#include <optional>
#include <regex.h>
#include <span>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace ringscan;

constexpr std::string_view clamav_compatible_version = "1.4.6";
/// Bytes per read(2): the chunk size the brief of the matcher API is tuned for, and the
/// window clamscan itself reads.
constexpr std::size_t read_chunk = 128 * 1024;
/// clamscan counts "Data read" per file in whole 4 KiB blocks (CL_COUNT_PRECISION).
constexpr std::uint64_t count_precision = 4096;
/// clamscan's --max-dir-recursion default.
constexpr unsigned default_max_dir_recursion = 15;
constexpr const char* default_database_directory = "/var/lib/clamav";

/// A POSIX extended regex as clamscan's --exclude/--include take them. Owns the regex_t.
class path_pattern {
public:
    explicit path_pattern(const std::string& pattern) {
        valid_ = ::regcomp(&compiled_, pattern.c_str(), REG_EXTENDED | REG_NOSUB) == 0;
    }
    ~path_pattern() {
        if (valid_) {
            ::regfree(&compiled_);
        }
    }
    path_pattern(const path_pattern&) = delete;
    path_pattern& operator=(const path_pattern&) = delete;

    [[nodiscard]] bool valid() const { return valid_; }
    [[nodiscard]] bool matches(const std::string& path) const {
        return valid_ && ::regexec(&compiled_, path.c_str(), 0, nullptr, 0) == 0;
    }

private:
    regex_t compiled_{};
    bool valid_ = false;
};

using pattern_list = std::vector<std::unique_ptr<path_pattern>>;

struct options {
    std::vector<std::string> databases;
    std::vector<std::string> targets;
    std::optional<std::string> file_list;
    bool recursive = false;
    bool allmatch = false;
    bool infected_only = false;
    bool suppress_ok = false;
    bool summary = true;
    bool verbose = false;
    bool debug = false;
    bool quiet = false;
    bool print_version = false;
    bool help = false;
    unsigned max_dir_recursion = default_max_dir_recursion;
    int follow_dir_symlinks = 1;   ///< 0 never, 1 only named on the command line, 2 always
    int follow_file_symlinks = 1;  ///< same levels
    matcher::content_limits limits;
    pattern_list exclude;
    pattern_list exclude_dir;
    pattern_list include;
    pattern_list include_dir;
    /// Compiled-database cache (ringscan's own option; clamscan has none).
    std::filesystem::path cache_directory = matcher::default_cache_directory();
    /// Compile even when the cache holds a snapshot of the compiled databases.
    bool read_snapshot = true;
};

struct scan_stats {
    std::uint64_t directories = 0;
    std::uint64_t files = 0;
    std::uint64_t infected = 0;
    std::uint64_t errors = 0;          ///< scan errors ("Total errors")
    bool failed = false;               ///< any error that makes the exit code 2
    std::uint64_t bytes_scanned = 0;   ///< raw bytes plus every unpacked object
    std::uint64_t blocks_read = 0;     ///< whole 4 KiB blocks of the files read
};

void print_help() {
    std::printf(
        "\n"
        "                       ringscan %s (clamscan %s compatible)\n"
        "\n"
        "    ringscan [options] [file/directory/-]\n"
        "\n"
        "    --help                -h             Show this help\n"
        "    --version             -V             Print version number\n"
        "    --verbose             -v             Be verbose (also lists skipped signatures)\n"
        "    --debug                              Print load details (skipped signatures)\n"
        "    --quiet                              Only output error messages\n"
        "    --no-summary                         Disable summary at end of scanning\n"
        "    --cache-dir=DIR                      Keep compiled databases in DIR (default:\n"
        "                                         $RINGSCAN_CACHE_DIR or ~/.cache/ringscan)\n"
        "    --no-cache                           Always compile the databases\n"
        "    --no-snapshot                        Compile the databases even when their compiled\n"
        "                                         engine is cached (the cache is refreshed)\n"
        "    --infected            -i             Only print infected files\n"
        "    --suppress-ok-results -o             Skip printing OK files\n"
        "    --database=FILE/DIR   -d FILE/DIR    Load virus database from FILE or load all\n"
        "                                         supported db files from DIR (repeatable)\n"
        "    --recursive[=yes/no(*)]  -r          Scan subdirectories recursively\n"
        "    --allmatch[=yes/no(*)]   -z          Continue scanning within file after finding "
        "a match\n"
        "    --follow-dir-symlinks[=0/1(*)/2]     Follow directory symlinks (0 = never, 1 = "
        "direct, 2 = always)\n"
        "    --follow-file-symlinks[=0/1(*)/2]    Follow file symlinks (0 = never, 1 = direct, "
        "2 = always)\n"
        "    --file-list=FILE      -f FILE        Scan files from FILE\n"
        "    --exclude=REGEX                      Don't scan file names matching REGEX\n"
        "    --exclude-dir=REGEX                  Don't scan directories matching REGEX\n"
        "    --include=REGEX                      Only scan file names matching REGEX\n"
        "    --include-dir=REGEX                  Only scan directories matching REGEX\n"
        "    --scan-mail[=yes(*)/no]              Scan mail files\n"
        "    --scan-archive[=yes(*)/no]           Scan archive files (zip, gzip, bzip2, tar, cpio)\n"
        "    --max-filesize=#n                    Files larger than this will be skipped and "
        "assumed clean\n"
        "    --max-scansize=#n                    The maximum amount of data to scan for each "
        "container file\n"
        "    --max-files=#n                       The maximum number of files to scan for each "
        "container file\n"
        "    --max-recursion=#n                   Maximum recursion level for container file\n"
        "    --max-dir-recursion=#n               Maximum directory recursion level\n"
        "\n"
        "Other clamscan options are accepted and ignored. Pass in - as the filename for "
        "stdin.\n"
        "\n"
        "(*) Default scan settings\n",
        RINGSCAN_VERSION, clamav_compatible_version.data());
}

/// clamscan's [=yes/no] arguments; also 1/0 and true/false.
std::optional<bool> parse_yes_no(const char* argument) {
    if (argument == nullptr) {
        return true;
    }
    const std::string_view text = argument;
    if (text == "yes" || text == "1" || text == "true") {
        return true;
    }
    if (text == "no" || text == "0" || text == "false") {
        return false;
    }
    return std::nullopt;
}

/// clamscan's #n sizes: a number with an optional K or M suffix.
std::optional<std::uint64_t> parse_size(const char* argument) {
    if (argument == nullptr || *argument == '\0') {
        return std::nullopt;
    }
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(argument, &end, 10);
    if (errno != 0 || end == argument) {
        return std::nullopt;
    }
    std::uint64_t multiplier = 1;
    if (*end == 'k' || *end == 'K') {
        multiplier = 1024;
        ++end;
    } else if (*end == 'm' || *end == 'M') {
        multiplier = 1024 * 1024;
        ++end;
    }
    if (*end != '\0') {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(value) * multiplier;
}

enum option_id : int {
    opt_no_summary = 256,
    opt_debug,
    opt_quiet,
    opt_stdout,
    opt_follow_dir,
    opt_follow_file,
    opt_exclude,
    opt_exclude_dir,
    opt_include,
    opt_include_dir,
    opt_scan_mail,
    opt_scan_archive,
    opt_max_filesize,
    opt_max_scansize,
    opt_max_files,
    opt_max_recursion,
    opt_max_dir_recursion,
    opt_cache_dir,
    opt_no_cache,
    opt_no_snapshot,
    opt_ignored_with_argument,
    opt_ignored_optional_argument,
    opt_ignored_flag,
};

/// Parses clamscan's command line. Returns nullopt after printing the error (exit 2).
std::optional<options> parse_command_line(int argc, char** argv) {
    static const option long_options[] = {
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},
        {"verbose", no_argument, nullptr, 'v'},
        {"debug", no_argument, nullptr, opt_debug},
        {"quiet", no_argument, nullptr, opt_quiet},
        {"stdout", no_argument, nullptr, opt_stdout},
        {"no-summary", no_argument, nullptr, opt_no_summary},
        {"cache-dir", required_argument, nullptr, opt_cache_dir},
        {"no-cache", no_argument, nullptr, opt_no_cache},
        {"no-snapshot", no_argument, nullptr, opt_no_snapshot},
        {"infected", no_argument, nullptr, 'i'},
        {"suppress-ok-results", no_argument, nullptr, 'o'},
        {"database", required_argument, nullptr, 'd'},
        {"recursive", optional_argument, nullptr, 'r'},
        {"allmatch", optional_argument, nullptr, 'z'},
        {"file-list", required_argument, nullptr, 'f'},
        {"follow-dir-symlinks", optional_argument, nullptr, opt_follow_dir},
        {"follow-file-symlinks", optional_argument, nullptr, opt_follow_file},
        {"exclude", required_argument, nullptr, opt_exclude},
        {"exclude-dir", required_argument, nullptr, opt_exclude_dir},
        {"include", required_argument, nullptr, opt_include},
        {"include-dir", required_argument, nullptr, opt_include_dir},
        {"scan-mail", optional_argument, nullptr, opt_scan_mail},
        {"scan-archive", optional_argument, nullptr, opt_scan_archive},
        {"max-filesize", required_argument, nullptr, opt_max_filesize},
        {"max-scansize", required_argument, nullptr, opt_max_scansize},
        {"max-files", required_argument, nullptr, opt_max_files},
        {"max-recursion", required_argument, nullptr, opt_max_recursion},
        {"max-dir-recursion", required_argument, nullptr, opt_max_dir_recursion},
        // clamscan options this scanner accepts so that existing command lines keep
        // working, but which change nothing here (README: what differs).
        {"log", required_argument, nullptr, 'l'},
        {"tempdir", required_argument, nullptr, opt_ignored_with_argument},
        {"leave-temps", optional_argument, nullptr, opt_ignored_optional_argument},
        {"official-db-only", optional_argument, nullptr, opt_ignored_optional_argument},
        {"cross-fs", optional_argument, nullptr, opt_ignored_optional_argument},
        {"bytecode", optional_argument, nullptr, opt_ignored_optional_argument},
        {"bytecode-unsigned", optional_argument, nullptr, opt_ignored_optional_argument},
        {"detect-pua", optional_argument, nullptr, opt_ignored_optional_argument},
        {"heuristic-alerts", optional_argument, nullptr, opt_ignored_optional_argument},
        {"normalize", optional_argument, nullptr, opt_ignored_optional_argument},
        {"phishing-sigs", optional_argument, nullptr, opt_ignored_optional_argument},
        {"phishing-scan-urls", optional_argument, nullptr, opt_ignored_optional_argument},
        {"scan-pe", optional_argument, nullptr, opt_ignored_optional_argument},
        {"scan-elf", optional_argument, nullptr, opt_ignored_optional_argument},
        {"scan-ole2", optional_argument, nullptr, opt_ignored_optional_argument},
        {"scan-pdf", optional_argument, nullptr, opt_ignored_optional_argument},
        {"scan-swf", optional_argument, nullptr, opt_ignored_optional_argument},
        {"scan-html", optional_argument, nullptr, opt_ignored_optional_argument},
        {"scan-image", optional_argument, nullptr, opt_ignored_optional_argument},
        {"disable-cache", no_argument, nullptr, opt_ignored_flag},
        {"bell", no_argument, nullptr, opt_ignored_flag},
        {nullptr, 0, nullptr, 0},
    };

    options opts;
    bool bad = false;
    auto bad_value = [&](const char* option, const char* value) {
        std::fprintf(stderr, "ERROR: Invalid argument for option %s: %s\n", option,
                     value == nullptr ? "" : value);
        bad = true;
    };
    auto set_size = [&](const char* option, std::uint64_t& into) {
        if (const auto size = parse_size(optarg)) {
            into = *size;
        } else {
            bad_value(option, optarg);
        }
    };
    auto set_flag = [&](const char* option, bool& into) {
        if (const auto value = parse_yes_no(optarg)) {
            into = *value;
        } else {
            bad_value(option, optarg);
        }
    };
    auto set_level = [&](const char* option, int& into) {
        if (optarg == nullptr) {
            into = 1;
        } else if (std::strlen(optarg) == 1 && optarg[0] >= '0' && optarg[0] <= '2') {
            into = optarg[0] - '0';
        } else {
            bad_value(option, optarg);
        }
    };
    auto add_pattern = [&](const char* option, pattern_list& into) {
        auto pattern = std::make_unique<path_pattern>(optarg);
        if (!pattern->valid()) {
            bad_value(option, optarg);
            return;
        }
        into.push_back(std::move(pattern));
    };

    int option_char = 0;
    while (!bad && (option_char = ::getopt_long(argc, argv, "hVvio d:rzf:l:", long_options,
                                                nullptr)) != -1) {
        switch (option_char) {
            case 'h': opts.help = true; break;
            case 'V': opts.print_version = true; break;
            case 'v': opts.verbose = true; break;
            case 'i': opts.infected_only = true; break;
            case 'o': opts.suppress_ok = true; break;
            case 'd': opts.databases.emplace_back(optarg); break;
            case 'r': set_flag("--recursive", opts.recursive); break;
            case 'z': set_flag("--allmatch", opts.allmatch); break;
            case 'f': opts.file_list = optarg; break;
            case opt_debug: opts.debug = true; break;
            case opt_quiet: opts.quiet = true; break;
            case opt_no_summary: opts.summary = false; break;
            case opt_follow_dir: set_level("--follow-dir-symlinks", opts.follow_dir_symlinks); break;
            case opt_follow_file:
                set_level("--follow-file-symlinks", opts.follow_file_symlinks);
                break;
            case opt_exclude: add_pattern("--exclude", opts.exclude); break;
            case opt_exclude_dir: add_pattern("--exclude-dir", opts.exclude_dir); break;
            case opt_include: add_pattern("--include", opts.include); break;
            case opt_include_dir: add_pattern("--include-dir", opts.include_dir); break;
            case opt_scan_mail: set_flag("--scan-mail", opts.limits.scan_mail); break;
            case opt_scan_archive: set_flag("--scan-archive", opts.limits.scan_archive); break;
            case opt_cache_dir: opts.cache_directory = optarg; break;
            case opt_no_cache: opts.cache_directory.clear(); break;
            case opt_no_snapshot: opts.read_snapshot = false; break;
            case opt_max_filesize: set_size("--max-filesize", opts.limits.max_file_size); break;
            case opt_max_scansize: set_size("--max-scansize", opts.limits.max_scan_size); break;
            case opt_max_files: {
                std::uint64_t files = opts.limits.max_files;
                set_size("--max-files", files);
                opts.limits.max_files = static_cast<unsigned>(std::min<std::uint64_t>(files, ~0U));
                break;
            }
            case opt_max_recursion: {
                std::uint64_t levels = opts.limits.max_recursion;
                set_size("--max-recursion", levels);
                opts.limits.max_recursion =
                    static_cast<unsigned>(std::min<std::uint64_t>(levels, ~0U));
                break;
            }
            case opt_max_dir_recursion: {
                std::uint64_t levels = opts.max_dir_recursion;
                set_size("--max-dir-recursion", levels);
                opts.max_dir_recursion = static_cast<unsigned>(std::min<std::uint64_t>(levels, ~0U));
                break;
            }
            case opt_stdout:
            case 'l':
            case opt_ignored_with_argument:
            case opt_ignored_optional_argument:
            case opt_ignored_flag: break;
            default:
                // getopt_long has printed "unrecognized option"; clamscan then says:
                std::fprintf(stderr, "ERROR: Unknown option passed\n");
                bad = true;
                break;
        }
    }
    if (bad) {
        std::fprintf(stderr, "ERROR: Can't parse command line options\n");
        return std::nullopt;
    }
    for (int i = optind; i < argc; ++i) {
        opts.targets.emplace_back(argv[i]);
    }
    return opts;
}

/// Loads and merges every database, printing errors the way clamscan does. Returns nullopt
/// on failure (the caller exits 2, after the summary as clamscan does).
std::optional<matcher::loaded_database> load_databases(const options& opts) {
    std::vector<std::filesystem::path> paths(opts.databases.begin(), opts.databases.end());
    if (paths.empty()) {
        paths.emplace_back(default_database_directory);
    }
    bool any_directory = false;
    for (const std::filesystem::path& path : paths) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            std::fprintf(stderr, "LibClamAV Error: cl_load(): %s: %s\n", std::strerror(errno),
                         path.c_str());
            std::fprintf(stderr, "ERROR: Can't get file status\n");
            return std::nullopt;
        }
        any_directory = any_directory || S_ISDIR(st.st_mode);
    }
    matcher::compile_options compile;
    compile.cache_directory = opts.cache_directory;
    compile.read_snapshot = opts.read_snapshot;
    try {
        return matcher::load_database(paths, compile);
    } catch (const matcher::load_error& error) {
        const std::string_view message = error.what();
        std::fprintf(stderr, "LibClamAV Error: %s\n", error.what());
        // The loader's one "nothing to load" message (directories only) maps to clamscan's
        // own wording.
        const bool empty_directory =
            any_directory && message.find("no supported database files") != std::string_view::npos;
        std::fprintf(stderr, "ERROR: %s\n",
                     empty_directory ? "Can't open file or directory" : "Malformed database");
        return std::nullopt;
    }
}

/// One scanning run: the engine, the shard-less scanner and the counters.
class file_scanner {
public:
    file_scanner(const options& opts, std::shared_ptr<const matcher::engine> compiled)
        : opts_(opts),
          engine_(std::move(compiled)),
          buffer_(std::make_unique<std::byte[]>(read_chunk)) {}

    [[nodiscard]] const scan_stats& stats() const { return stats_; }

    /// A path named on the command line (or in --file-list, or "-").
    void scan_argument(std::string path) {
        if (path == "-") {
            scan_descriptor(STDIN_FILENO, "stdin", std::nullopt);
            return;
        }
        while (path.size() > 1 && path.back() == '/') {
            path.pop_back();  // clamscan prints "dir/file", never "dir//file"
        }
        struct stat link_st {};
        if (::lstat(path.c_str(), &link_st) != 0) {
            std::fprintf(stderr, "%s: %s\n", path.c_str(), std::strerror(errno));
            std::fprintf(stderr, "WARNING: %s: Can't access file\n", path.c_str());
            stats_.failed = true;
            return;
        }
        struct stat st = link_st;
        if (S_ISLNK(link_st.st_mode)) {
            if (::stat(path.c_str(), &st) != 0) {
                std::fprintf(stderr, "%s: %s\n", path.c_str(), std::strerror(errno));
                std::fprintf(stderr, "WARNING: %s: Can't access file\n", path.c_str());
                stats_.failed = true;
                return;
            }
            const int level = S_ISDIR(st.st_mode) ? opts_.follow_dir_symlinks
                                                  : opts_.follow_file_symlinks;
            if (level == 0) {
                report_status(path, "Symbolic link");
                return;
            }
        }
        if (S_ISDIR(st.st_mode)) {
            scan_directory(path, 1);
        } else if (S_ISREG(st.st_mode)) {
            scan_file(path, st);
        } else {
            std::fprintf(stderr, "WARNING: %s: Not supported file type\n", path.c_str());
            stats_.failed = true;
        }
    }

private:
    /// "path: status" lines clamscan prints unless --infected.
    void report_status(const std::string& path, const char* status) {
        if (!opts_.infected_only && !opts_.quiet) {
            std::printf("%s: %s\n", path.c_str(), status);
        }
    }

    [[nodiscard]] static bool any_match(const pattern_list& patterns, const std::string& path) {
        return std::any_of(patterns.begin(), patterns.end(),
                           [&](const auto& pattern) { return pattern->matches(path); });
    }

    [[nodiscard]] bool excluded(const std::string& path, bool directory) {
        const pattern_list& exclude = directory ? opts_.exclude_dir : opts_.exclude;
        const pattern_list& include = directory ? opts_.include_dir : opts_.include;
        if (any_match(exclude, path) || (!include.empty() && !any_match(include, path))) {
            report_status(path, "Excluded");
            return true;
        }
        return false;
    }

    void scan_directory(const std::string& path, unsigned depth) {
        if (excluded(path, true) || depth > opts_.max_dir_recursion) {
            return;
        }
        DIR* dir = ::opendir(path.c_str());
        if (dir == nullptr) {
            std::fprintf(stderr, "WARNING: %s: Can't open directory: %s\n", path.c_str(),
                         std::strerror(errno));
            stats_.failed = true;
            return;
        }
        ++stats_.directories;
        // readdir order, as clamscan: the report lists files in the order the file system
        // returns them.
        while (const dirent* entry = ::readdir(dir)) {
            const std::string_view name = entry->d_name;
            if (name == "." || name == "..") {
                continue;
            }
            std::string child = path == "/" ? "/" + std::string(name) : path + "/";
            if (path != "/") {
                child += name;
            }
            struct stat st {};
            if (::lstat(child.c_str(), &st) != 0) {
                continue;
            }
            if (S_ISLNK(st.st_mode)) {
                struct stat target {};
                if (::stat(child.c_str(), &target) != 0) {
                    continue;  // dangling: clamscan says nothing
                }
                const int level = S_ISDIR(target.st_mode) ? opts_.follow_dir_symlinks
                                                          : opts_.follow_file_symlinks;
                if (level < 2) {
                    report_status(child, "Symbolic link");
                    continue;
                }
                st = target;
            }
            if (S_ISDIR(st.st_mode)) {
                if (opts_.recursive) {
                    scan_directory(child, depth + 1);
                }
            } else if (S_ISREG(st.st_mode)) {
                scan_file(child, st);
            }
            // Sockets, FIFOs and devices inside a tree are skipped silently, as clamscan.
        }
        ::closedir(dir);
    }

    void scan_file(const std::string& path, const struct stat& st) {
        if (excluded(path, false)) {
            return;
        }
        const auto size = static_cast<std::uint64_t>(st.st_size);
        if (size == 0) {
            report_status(path, "Empty file");
            return;
        }
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            if (errno == EACCES) {
                report_status(path, "Access denied");
            } else {
                std::fprintf(stderr, "WARNING: %s: Can't open file: %s\n", path.c_str(),
                             std::strerror(errno));
            }
            stats_.failed = true;
            return;
        }
        scan_descriptor(fd, path, size);
        ::close(fd);
    }

    /// Scans one open object. `size` is nullopt for stdin (read to its end).
    void scan_descriptor(int fd, const std::string& path, std::optional<std::uint64_t> size) {
        if (opts_.verbose) {
            std::printf("Scanning %s\n", path.c_str());
        }
        ++stats_.files;
        if (size && *size > opts_.limits.max_file_size) {
            // clamscan skips what exceeds --max-filesize and calls it clean.
            stats_.blocks_read += *size / count_precision;
            report_ok(path);
            return;
        }
        const matcher::scan_mode mode =
            opts_.allmatch ? matcher::scan_mode::all_matches : matcher::scan_mode::first_match;
        matcher::content_scan scan(engine_, scanner_, mode, opts_.limits);
        std::uint64_t unpacked = 0;
        scan.set_object_observer(
            [&unpacked](std::span<const std::byte> object, unsigned /*depth*/) {
                unpacked += object.size();
            });
        std::uint64_t total = 0;
        bool read_failed = false;
        while (true) {
            const ssize_t got = ::read(fd, buffer_.get(), read_chunk);
            if (got < 0) {
                if (errno == EINTR) {
                    continue;
                }
                read_failed = true;
                break;
            }
            if (got == 0) {
                break;
            }
            scan.feed(std::span<const std::byte>(buffer_.get(), static_cast<std::size_t>(got)));
            total += static_cast<std::uint64_t>(got);
        }
        const matcher::verdict verdict = scan.finish();
        stats_.blocks_read += total / count_precision;
        stats_.bytes_scanned += total + unpacked;
        if (verdict.infected) {
            ++stats_.infected;
            if (opts_.allmatch) {
                for (const std::string_view name : scan.matches()) {
                    print_found(path, name);
                }
            } else {
                print_found(path, verdict.name);
            }
            return;
        }
        if (read_failed || scan.scan_error()) {
            ++stats_.errors;
            stats_.failed = true;
            if (!opts_.infected_only) {
                std::printf("%s: %s ERROR\n", path.c_str(),
                            read_failed ? "Can't read file" : "Unspecified error");
            }
            return;
        }
        report_ok(path);
    }

    void report_ok(const std::string& path) {
        if (!opts_.suppress_ok) {
            report_status(path, "OK");
        }
    }

    void print_found(const std::string& path, std::string_view name) {
        std::printf("%s: %.*s FOUND\n", path.c_str(), static_cast<int>(name.size()), name.data());
    }

    const options& opts_;
    std::shared_ptr<const matcher::engine> engine_;
    matcher::scanner scanner_;
    std::unique_ptr<std::byte[]> buffer_;
    scan_stats stats_;
};

std::string format_date(std::time_t when) {
    std::tm local{};
    ::localtime_r(&when, &local);
    std::array<char, 32> text{};
    const std::size_t n = std::strftime(text.data(), text.size(), "%Y:%m:%d %H:%M:%S", &local);
    return std::string(text.data(), n);
}

void print_summary(std::uint64_t known, const scan_stats& stats,
                   std::chrono::steady_clock::duration elapsed, std::time_t start,
                   std::time_t end) {
    constexpr double mebibyte = 1024.0 * 1024.0;
    const double scanned_mb = static_cast<double>(stats.bytes_scanned) / mebibyte;
    const double read_mb =
        static_cast<double>(stats.blocks_read * count_precision) / mebibyte;
    const auto millis = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());
    const std::uint64_t seconds = millis / 1000;
    std::printf("\n----------- SCAN SUMMARY -----------\n");
    std::printf("Known viruses: %llu\n", static_cast<unsigned long long>(known));
    std::printf("Engine version: ringscan %s\n", RINGSCAN_VERSION);
    std::printf("Scanned directories: %llu\n",
                static_cast<unsigned long long>(stats.directories));
    std::printf("Scanned files: %llu\n", static_cast<unsigned long long>(stats.files));
    std::printf("Infected files: %llu\n", static_cast<unsigned long long>(stats.infected));
    if (stats.errors != 0) {
        std::printf("Total errors: %llu\n", static_cast<unsigned long long>(stats.errors));
    }
    std::printf("Data scanned: %.2f MB\n", scanned_mb);
    std::printf("Data read: %.2f MB (ratio %.2f:1)\n", read_mb,
                read_mb > 0 ? scanned_mb / read_mb : 0.0);
    std::printf("Time: %llu.%03llu sec (%llu m %llu s)\n",
                static_cast<unsigned long long>(seconds),
                static_cast<unsigned long long>(millis % 1000),
                static_cast<unsigned long long>(seconds / 60),
                static_cast<unsigned long long>(seconds % 60));
    std::printf("Start Date: %s\n", format_date(start).c_str());
    std::printf("End Date:   %s\n", format_date(end).c_str());
}

int run(const options& opts) {
    const auto started = std::chrono::steady_clock::now();
    const std::time_t start_date = std::time(nullptr);
    auto finish = [&](std::uint64_t known, const scan_stats& stats, int code) {
        if (opts.summary) {
            print_summary(known, stats, std::chrono::steady_clock::now() - started, start_date,
                          std::time(nullptr));
        }
        return code;
    };

    std::optional<matcher::loaded_database> loaded = load_databases(opts);
    if (!loaded) {
        return finish(0, {}, 2);
    }
    if (opts.verbose || opts.debug) {
        for (const std::string& line : loaded->skipped) {
            std::fprintf(stderr, "LibClamAV debug: skipped: %s\n",
                         line.c_str());
        }
    }
    const std::shared_ptr<const matcher::engine> compiled = std::move(loaded->compiled);
    if (opts.verbose || opts.debug) {
        for (const std::string& line : compiled->skipped()) {
            std::fprintf(stderr, "LibClamAV debug: skipped: %s\n",
                         line.c_str());
        }
        const matcher::compile_report& report = compiled->compile_stats();
        const char* cache = opts.cache_directory.empty() ? "off" : opts.cache_directory.c_str();
        if (report.from_snapshot) {
            std::fprintf(stderr, "LibClamAV debug: engine read from its snapshot (cache %s)\n",
                         cache);
        } else {
            std::fprintf(stderr,
                         "LibClamAV debug: compiled databases: %llu from the cache, %llu "
                         "compiled (cache %s)\n",
                         static_cast<unsigned long long>(report.cache_hits),
                         static_cast<unsigned long long>(report.cache_misses), cache);
        }
    }
    const std::uint64_t known = compiled->signature_count();

    file_scanner scanner(opts, compiled);
    if (opts.file_list) {
        std::ifstream list(*opts.file_list);
        if (!list) {
            std::fprintf(stderr, "ERROR: Can't open file %s\n", opts.file_list->c_str());
            return finish(known, scanner.stats(), 2);
        }
        if (!opts.targets.empty()) {
            std::fprintf(stderr,
                         "WARNING: Only scanning files from --file-list (files passed at "
                         "cmdline are ignored)\n");
        }
        std::string line;
        while (std::getline(list, line)) {
            if (!line.empty()) {
                scanner.scan_argument(line);
            }
        }
    } else if (opts.targets.empty()) {
        // No argument: clamscan scans the current directory.
        std::array<char, 4096> cwd{};
        if (::getcwd(cwd.data(), cwd.size()) == nullptr) {
            std::fprintf(stderr, "ERROR: Can't get absolute pathname of current working "
                                 "directory\n");
            return finish(known, scanner.stats(), 2);
        }
        scanner.scan_argument(cwd.data());
    } else {
        for (const std::string& target : opts.targets) {
            scanner.scan_argument(target);
        }
    }
    std::fflush(stdout);
    const scan_stats& stats = scanner.stats();
    const int code = stats.infected != 0 ? 1 : (stats.failed ? 2 : 0);
    return finish(known, stats, code);
}

}  // namespace

int main(int argc, char** argv) {
    const std::optional<options> opts = parse_command_line(argc, argv);
    if (!opts) {
        return 2;
    }
    if (opts->help) {
        print_help();
        return 0;
    }
    if (opts->print_version) {
        std::printf("ringscan %s (ClamAV %s compatible)\n", RINGSCAN_VERSION,
                    clamav_compatible_version.data());
        return 0;
    }
    try {
        return run(*opts);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "ERROR: %s\n", error.what());
        return 2;
    }
}
