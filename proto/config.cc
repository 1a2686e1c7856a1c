#include "proto/config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>

// Follows optparse() in ClamAV's common/optparser.c for config files. The option tables
// were taken from the installed clamd 1.4.6 (clamconf -g, clamconf -c <dir> for types and
// defaults) and every name, alias and type was checked against it (see tests/proto).

namespace ringscan::proto {
namespace {

constexpr std::size_t npos = std::string_view::npos;

// clamd reads the file with fgets() into a 1024-byte buffer: a longer line is split and
// every piece counts as a line of its own.
constexpr std::size_t line_buffer = 1024;

// SIZE values are clamped to LLONG_MAX in clamd (64-bit Linux, SIZE and SIZE64 alike).
constexpr auto size_clamp = static_cast<std::uint64_t>(std::numeric_limits<long long>::max());
constexpr std::uint64_t no_limit = std::numeric_limits<std::uint64_t>::max();

constexpr std::uint8_t multiple = 1;
constexpr std::uint8_t deprecated = 2;

struct option_spec {
    std::string_view name;   // as written in the file; empty for command-line-only options
    std::string_view alias;  // clamd's long option name, also accepted in files
    option_type type;
    std::uint8_t flags;
    std::string_view fallback;   // the default in stored form; empty: none
    std::string_view choices{};  // '|'-separated allowed values (case-insensitive)

    [[nodiscard]] std::string_view key() const { return name.empty() ? alias : name; }
};

// clamd.conf: every entry of clamd 1.4.6's table owned by clamd, in clamd's order.
constexpr option_spec clamd_options[] = {
    // Command-line options that clamd also accepts in the file (it matches long names too).
    {"", "help", option_type::boolean, 0, "no"},
    {"", "config-file", option_type::string, 0, "/etc/clamav/clamd.conf"},
    {"", "version", option_type::boolean, 0, "no"},
    {"", "debug", option_type::boolean, 0, "no"},
    {"", "gen-json", option_type::boolean, 0, "no"},
    {"AlertExceedsMax", "alert-exceeds-max", option_type::boolean, 0, "no"},
    {"CacheSize", "cache-size", option_type::number, 0, "65536"},
    {"PreludeEnable", "prelude-enable", option_type::boolean, 0, "no"},
    {"PreludeAnalyzerName", "prelude-analyzer-name", option_type::string, 0, ""},
    {"LogFile", "log", option_type::string, 0, ""},
    {"LogFileUnlock", "", option_type::boolean, 0, "no"},
    {"LogFileMaxSize", "", option_type::size, 0, "1048576"},
    {"LogTime", "", option_type::boolean, 0, "no"},
    {"LogClean", "", option_type::boolean, 0, "no"},
    {"LogSyslog", "", option_type::boolean, 0, "no"},
    {"LogFacility", "", option_type::string, 0, "LOG_LOCAL6"},
    {"LogVerbose", "", option_type::boolean, 0, "no"},
    {"LogRotate", "log-rotate", option_type::boolean, 0, "no"},
    {"ExtendedDetectionInfo", "", option_type::boolean, 0, "no"},
    {"PidFile", "pid", option_type::string, 0, ""},
    {"TemporaryDirectory", "tempdir", option_type::string, 0, ""},
    {"DatabaseDirectory", "datadir", option_type::string, 0, "/var/lib/clamav"},
    {"OfficialDatabaseOnly", "official-db-only", option_type::boolean, 0, "no"},
    {"FailIfCvdOlderThan", "fail-if-cvd-older-than", option_type::number, 0, ""},
    {"LocalSocket", "", option_type::string, 0, ""},
    {"LocalSocketGroup", "", option_type::string, 0, ""},
    {"LocalSocketMode", "", option_type::string, 0, ""},
    {"FixStaleSocket", "", option_type::boolean, 0, "yes"},
    {"TCPSocket", "", option_type::number, 0, ""},
    {"TCPAddr", "", option_type::string, multiple, ""},
    {"MaxConnectionQueueLength", "", option_type::number, 0, "200"},
    {"StreamMaxLength", "", option_type::size, 0, "104857600"},
    {"StreamMinPort", "", option_type::number, 0, "1024"},
    {"StreamMaxPort", "", option_type::number, 0, "2048"},
    {"MaxThreads", "", option_type::number, 0, "10"},
    {"ReadTimeout", "", option_type::number, 0, "120"},
    {"CommandReadTimeout", "", option_type::number, 0, "30"},
    {"SendBufTimeout", "", option_type::number, 0, "500"},
    {"MaxQueue", "", option_type::number, 0, "100"},
    {"IdleTimeout", "", option_type::number, 0, "30"},
    {"ExcludePath", "", option_type::string, multiple, ""},
    {"MaxDirectoryRecursion", "max-dir-recursion", option_type::number, 0, "15"},
    {"FollowDirectorySymlinks", "", option_type::boolean, 0, "no"},
    {"FollowFileSymlinks", "", option_type::boolean, 0, "no"},
    {"CrossFilesystems", "cross-fs", option_type::boolean, 0, "yes"},
    {"SelfCheck", "", option_type::number, 0, "600"},
    {"ConcurrentDatabaseReload", "", option_type::boolean, 0, "yes"},
    {"DisableCache", "disable-cache", option_type::boolean, 0, "no"},
    {"VirusEvent", "", option_type::string, 0, ""},
    {"ExitOnOOM", "", option_type::boolean, 0, "no"},
    {"AllowAllMatchScan", "", option_type::boolean, 0, "yes"},
    {"Foreground", "foreground", option_type::boolean, 0, "no"},
    {"Debug", "", option_type::boolean, 0, "no"},
    {"LeaveTemporaryFiles", "", option_type::boolean, 0, "no"},
    {"GenerateMetadataJson", "", option_type::boolean, 0, "no"},
    {"User", "", option_type::string, 0, ""},
    {"Bytecode", "bytecode", option_type::boolean, 0, "yes"},
    {"BytecodeSecurity", "", option_type::string, 0, "TrustSigned", "TrustSigned|Paranoid"},
    {"BytecodeTimeout", "bytecode-timeout", option_type::number, 0, "10000"},
    {"BytecodeUnsigned", "bytecode-unsigned", option_type::boolean, 0, "no"},
    {"BytecodeMode", "bytecode-mode", option_type::string, 0, "Auto",
     "Auto|ForceJIT|ForceInterpreter|Test"},
    {"DetectPUA", "detect-pua", option_type::boolean, 0, "no"},
    {"ExcludePUA", "exclude-pua", option_type::string, multiple, ""},
    {"IncludePUA", "include-pua", option_type::string, multiple, ""},
    {"ScanPE", "scan-pe", option_type::boolean, 0, "yes"},
    {"ScanELF", "scan-elf", option_type::boolean, 0, "yes"},
    {"ScanMail", "scan-mail", option_type::boolean, 0, "yes"},
    {"ScanPartialMessages", "", option_type::boolean, 0, "no"},
    {"PhishingSignatures", "phishing-sigs", option_type::boolean, 0, "yes"},
    {"PhishingScanURLs", "phishing-scan-urls", option_type::boolean, 0, "yes"},
    {"HeuristicAlerts", "heuristic-alerts", option_type::boolean, 0, "yes"},
    {"HeuristicScanPrecedence", "heuristic-scan-precedence", option_type::boolean, 0, "no"},
    {"StructuredDataDetection", "detect-structured", option_type::boolean, 0, "no"},
    {"StructuredMinCreditCardCount", "structured-cc-count", option_type::number, 0, "3"},
    {"StructuredMinSSNCount", "structured-ssn-count", option_type::number, 0, "3"},
    {"StructuredSSNFormatNormal", "", option_type::boolean, 0, "yes"},
    {"StructuredSSNFormatStripped", "", option_type::boolean, 0, "no"},
    {"ScanHTML", "scan-html", option_type::boolean, 0, "yes"},
    {"ScanOLE2", "scan-ole2", option_type::boolean, 0, "yes"},
    {"AlertBrokenExecutables", "alert-broken", option_type::boolean, 0, "no"},
    {"AlertBrokenMedia", "alert-broken-media", option_type::boolean, 0, "no"},
    {"AlertEncrypted", "alert-encrypted", option_type::boolean, 0, "no"},
    {"StructuredCCOnly", "structured-cc-mode", option_type::boolean, 0, "no"},
    {"AlertEncryptedArchive", "alert-encrypted-archive", option_type::boolean, 0, "no"},
    {"AlertEncryptedDoc", "alert-encrypted-doc", option_type::boolean, 0, "no"},
    {"AlertOLE2Macros", "alert-macros", option_type::boolean, 0, "no"},
    {"AlertPhishingSSLMismatch", "alert-phishing-ssl", option_type::boolean, 0, "no"},
    {"AlertPhishingCloak", "alert-phishing-cloak", option_type::boolean, 0, "no"},
    {"AlertPartitionIntersection", "alert-partition-intersection", option_type::boolean, 0, "no"},
    {"ScanPDF", "scan-pdf", option_type::boolean, 0, "yes"},
    {"ScanSWF", "scan-swf", option_type::boolean, 0, "yes"},
    {"ScanXMLDOCS", "scan-xmldocs", option_type::boolean, 0, "yes"},
    {"ScanHWP3", "scan-hwp3", option_type::boolean, 0, "yes"},
    {"ScanOneNote", "scan-onenote", option_type::boolean, 0, "yes"},
    {"ScanArchive", "scan-archive", option_type::boolean, 0, "yes"},
    {"ScanImage", "scan-image", option_type::boolean, 0, "yes"},
    {"ScanImageFuzzyHash", "scan-image-fuzzy-hash", option_type::boolean, 0, "yes"},
    {"ForceToDisk", "force-to-disk", option_type::boolean, 0, "no"},
    {"MaxScanTime", "max-scantime", option_type::number, 0, "0"},
    {"MaxScanSize", "max-scansize", option_type::size, 0, "419430400"},
    {"MaxFileSize", "max-filesize", option_type::size, 0, "104857600"},
    {"MaxRecursion", "max-recursion", option_type::number, 0, "17"},
    {"MaxFiles", "max-files", option_type::number, 0, "10000"},
    {"MaxEmbeddedPE", "max-embeddedpe", option_type::size, 0, "41943040"},
    {"MaxHTMLNormalize", "max-htmlnormalize", option_type::size, 0, "41943040"},
    {"MaxHTMLNoTags", "max-htmlnotags", option_type::size, 0, "8388608"},
    {"MaxScriptNormalize", "max-scriptnormalize", option_type::size, 0, "20971520"},
    {"MaxZipTypeRcg", "max-ziptypercg", option_type::size, 0, "1048576"},
    {"MaxPartitions", "max-partitions", option_type::number, 0, "50"},
    {"MaxIconsPE", "max-iconspe", option_type::number, 0, "100"},
    {"MaxRecHWP3", "max-rechwp3", option_type::number, 0, "16"},
    {"PCREMatchLimit", "pcre-match-limit", option_type::number, 0, "100000"},
    {"PCRERecMatchLimit", "pcre-recmatch-limit", option_type::number, 0, "2000"},
    {"PCREMaxFileSize", "pcre-max-filesize", option_type::size, 0, "104857600"},
    {"OnAccessMountPath", "", option_type::string, multiple, ""},
    {"OnAccessIncludePath", "", option_type::string, multiple, ""},
    {"OnAccessExcludePath", "", option_type::string, multiple, ""},
    {"OnAccessExcludeRootUID", "", option_type::boolean, 0, "no"},
    {"OnAccessExcludeUID", "", option_type::number, multiple, ""},
    {"OnAccessExcludeUname", "", option_type::string, multiple, ""},
    {"OnAccessMaxFileSize", "", option_type::size, 0, "5242880"},
    {"OnAccessDisableDDD", "", option_type::boolean, 0, "no"},
    {"OnAccessPrevention", "", option_type::boolean, 0, "no"},
    {"OnAccessExtraScanning", "", option_type::boolean, 0, "no"},
    {"OnAccessCurlTimeout", "", option_type::number, 0, "5000"},
    {"OnAccessMaxThreads", "", option_type::number, 0, "5"},
    {"OnAccessRetryAttempts", "", option_type::number, 0, "0"},
    {"OnAccessDenyOnError", "", option_type::boolean, 0, "no"},
    {"DevACOnly", "dev-ac-only", option_type::boolean, 0, "no"},
    {"DevACDepth", "dev-ac-depth", option_type::number, 0, ""},
    {"DevPerformance", "dev-performance", option_type::boolean, 0, "no"},
    {"DevLiblog", "dev-liblog", option_type::boolean, 0, "no"},
    {"DisableCertCheck", "nocerts", option_type::boolean, 0, "no"},
    {"AlgorithmicDetection", "algorithmic-detection", option_type::boolean, 0, "yes"},
    {"BlockMax", "block-max", option_type::boolean, 0, "no"},
    {"PhishingAlwaysBlockSSLMismatch", "phishing-ssl", option_type::boolean, 0, "no"},
    {"PhishingAlwaysBlockCloak", "phishing-cloak", option_type::boolean, 0, "no"},
    {"PartitionIntersection", "partition-intersection", option_type::boolean, 0, "no"},
    {"OLE2BlockMacros", "block-macros", option_type::boolean, 0, "no"},
    {"ArchiveBlockEncrypted", "block-encrypted", option_type::boolean, 0, "no"},
    // Deprecated: accepted, ignored with a warning.
    {"DetectBrokenExecutables", "detect-broken", option_type::boolean, deprecated, "no"},
    {"MailMaxRecursion", "", option_type::number, deprecated, ""},
    {"ArchiveMaxScanSize", "", option_type::size, deprecated, ""},
    {"ArchiveMaxRecursion", "", option_type::number, deprecated, ""},
    {"ArchiveMaxFiles", "", option_type::number, deprecated, ""},
    {"ArchiveMaxCompressionRatio", "", option_type::number, deprecated, ""},
    {"ArchiveBlockMax", "", option_type::boolean, deprecated, "no"},
    {"ArchiveLimitMemoryUsage", "", option_type::boolean, deprecated, "no"},
    {"MailFollowURLs", "mail-follow-urls", option_type::boolean, deprecated, "no"},
    {"AllowSupplementaryGroups", "", option_type::boolean, deprecated, "no"},
    {"ScanOnAccess", "", option_type::boolean, deprecated, "no"},
};

// clamav-milter.conf, same rules (LogClean is a string here, not a bool).
constexpr option_spec milter_options[] = {
    {"", "help", option_type::boolean, 0, "no"},
    {"", "config-file", option_type::string, 0, "/etc/clamav/clamav-milter.conf"},
    {"", "version", option_type::boolean, 0, "no"},
    {"LogFile", "log", option_type::string, 0, ""},
    {"LogFileUnlock", "", option_type::boolean, 0, "no"},
    {"LogFileMaxSize", "", option_type::size, 0, "1048576"},
    {"LogTime", "", option_type::boolean, 0, "no"},
    {"LogSyslog", "", option_type::boolean, 0, "no"},
    {"LogFacility", "", option_type::string, 0, "LOG_LOCAL6"},
    {"LogVerbose", "", option_type::boolean, 0, "no"},
    {"LogRotate", "log-rotate", option_type::boolean, 0, "no"},
    {"PidFile", "pid", option_type::string, 0, ""},
    {"TemporaryDirectory", "tempdir", option_type::string, 0, ""},
    {"FixStaleSocket", "", option_type::boolean, 0, "yes"},
    {"MaxThreads", "", option_type::number, 0, "10"},
    {"ReadTimeout", "", option_type::number, 0, "120"},
    {"Foreground", "foreground", option_type::boolean, 0, "no"},
    {"User", "", option_type::string, 0, ""},
    {"MaxFileSize", "max-filesize", option_type::size, 0, "104857600"},
    {"ClamdSocket", "", option_type::string, multiple, ""},
    {"MilterSocket", "", option_type::string, 0, ""},
    {"MilterSocketGroup", "", option_type::string, 0, ""},
    {"MilterSocketMode", "", option_type::string, 0, ""},
    {"LocalNet", "", option_type::string, multiple, ""},
    {"OnClean", "", option_type::string, 0, "Accept", "Accept|Reject|Defer|Blackhole|Quarantine"},
    {"OnInfected", "", option_type::string, 0, "Quarantine",
     "Accept|Reject|Defer|Blackhole|Quarantine"},
    {"OnFail", "", option_type::string, 0, "Defer", "Accept|Reject|Defer"},
    {"RejectMsg", "", option_type::string, 0, ""},
    {"AddHeader", "", option_type::string, 0, "no", "No|Replace|Yes|Add"},
    {"ReportHostname", "", option_type::string, 0, ""},
    {"VirusAction", "", option_type::string, 0, ""},
    {"Chroot", "", option_type::string, 0, ""},
    {"AllowList", "", option_type::string, 0, ""},
    {"Whitelist", "", option_type::string, 0, ""},
    {"SkipAuthenticated", "", option_type::string, 0, ""},
    {"LogInfected", "", option_type::string, 0, ""},
    {"LogClean", "", option_type::string, 0, ""},
    {"SupportMultipleRecipients", "", option_type::boolean, 0, "no"},
    {"AllowSupplementaryGroups", "", option_type::boolean, deprecated, "no"},
    {"ArchiveBlockEncrypted", "", option_type::boolean, deprecated, "no"},
    {"DatabaseDirectory", "", option_type::string, deprecated, ""},
    {"Debug", "", option_type::boolean, deprecated, "no"},
    {"DetectBrokenExecutables", "", option_type::boolean, deprecated, "no"},
    {"LeaveTemporaryFiles", "", option_type::boolean, deprecated, "no"},
    {"LocalSocket", "", option_type::string, deprecated, ""},
    {"MailFollowURLs", "", option_type::boolean, deprecated, "no"},
    {"MaxScanSize", "", option_type::size, deprecated, ""},
    {"MaxFiles", "", option_type::number, deprecated, ""},
    {"MaxRecursion", "", option_type::number, deprecated, ""},
    {"PhishingSignatures", "", option_type::boolean, deprecated, "no"},
    {"ScanArchive", "", option_type::boolean, deprecated, "no"},
    {"ScanHTML", "", option_type::boolean, deprecated, "no"},
    {"ScanMail", "", option_type::boolean, deprecated, "no"},
    {"ScanOLE2", "", option_type::boolean, deprecated, "no"},
    {"ScanPE", "", option_type::boolean, deprecated, "no"},
    {"StreamMaxLength", "", option_type::size, deprecated, ""},
    {"TCPAddr", "", option_type::string, deprecated, ""},
    {"TCPSocket", "", option_type::number, deprecated, ""},
};

std::span<const option_spec> options_for(config_kind kind) {
    if (kind == config_kind::milter) {
        return milter_options;
    }
    return clamd_options;
}

// optget(): an entry matches by its file name or by its long option name.
const option_spec* find_option(std::span<const option_spec> table, std::string_view name) {
    for (const option_spec& spec : table) {
        if ((!spec.name.empty() && spec.name == name) ||
            (!spec.alias.empty() && spec.alias == name)) {
            return &spec;
        }
    }
    return nullptr;
}

std::string_view type_name(option_type type) {
    switch (type) {
        case option_type::string:
            return "string";
        case option_type::boolean:
            return "boolean";
        case option_type::number:
            return "number";
        case option_type::size:
            return "size";
    }
    return "?";
}

const option_spec& spec_for(config_kind kind, std::string_view name, option_type type) {
    const option_spec* spec = find_option(options_for(kind), name);
    if (spec == nullptr || spec->type != type) {
        throw std::logic_error("clamd_config: no " + std::string(type_name(type)) +
                               " option named " + std::string(name));
    }
    return *spec;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_bool_word(std::string_view s) {
    return iequals(s, "yes") || iequals(s, "true") || s == "1" || iequals(s, "no") ||
           iequals(s, "false") || s == "0";
}

bool is_size_word(std::string_view s) {
    if (!s.empty() && std::string_view("KMGkmg").find(s.back()) != npos) {
        s.remove_suffix(1);
    }
    return all_digits(s);
}

bool is_choice(std::string_view value, std::string_view choices) {
    while (!choices.empty()) {
        const std::size_t bar = choices.find('|');
        if (iequals(value, choices.substr(0, bar))) {
            return true;
        }
        choices = bar == npos ? std::string_view{} : choices.substr(bar + 1);
    }
    return false;
}

// The MATCH_BOOL/NUMBER/SIZE regexes (>= 1.5 form): the value, optionally spaces and a
// comment. Checked before the comment is cut, so "yes\t# x" is still an error.
bool matches_format(const option_spec& spec, std::string_view arg) {
    if (!spec.choices.empty()) {
        return is_choice(arg, spec.choices);  // these regexes allow no comment
    }
    if (spec.type == option_type::string) {
        return true;
    }
    const std::size_t hash = arg.find('#');
    if (hash != npos) {
        arg = arg.substr(0, hash);
        while (!arg.empty() && arg.back() == ' ') {
            arg.remove_suffix(1);
        }
    }
    switch (spec.type) {
        case option_type::boolean:
            return is_bool_word(arg);
        case option_type::number:
            return all_digits(arg);
        case option_type::size:
            return is_size_word(arg);
        case option_type::string:
            break;
    }
    return true;
}

// atoi() as glibc does it: strtol() saturating at LONG_MAX, then truncated to int.
std::int32_t clamd_atoi(std::string_view digits) {
    constexpr auto long_max = static_cast<std::uint64_t>(std::numeric_limits<long>::max());
    std::uint64_t value = 0;
    for (const char c : digits) {
        const auto digit = static_cast<std::uint64_t>(c - '0');
        value = value > (long_max - digit) / 10 ? long_max : value * 10 + digit;
    }
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(value & 0xFFFFFFFFU));
}

enum class size_status : std::uint8_t { ok, clamped, bad };

// strtoll(arg, &end, 0) plus the K/M/G suffix: "010" is octal, "09" stops at the '9'.
size_status parse_size(std::string_view arg, std::uint64_t& out) {
    const bool octal = arg.size() > 1 && arg.front() == '0';
    const std::uint64_t base = octal ? 8 : 10;
    std::uint64_t value = 0;
    bool range = false;
    std::size_t i = 0;
    for (; i < arg.size(); ++i) {
        const char c = arg[i];
        if (c < '0' || c > (octal ? '7' : '9')) {
            break;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (size_clamp - digit) / base) {
            range = true;
        } else {
            value = value * base + digit;
        }
    }
    if (range) {
        out = size_clamp;
        return size_status::clamped;
    }
    std::uint64_t scale = 1;
    if (i < arg.size()) {
        switch (arg[i]) {
            case 'G':
            case 'g':
                scale = 1024ULL * 1024 * 1024;
                break;
            case 'M':
            case 'm':
                scale = 1024ULL * 1024;
                break;
            case 'K':
            case 'k':
                scale = 1024;
                break;
            default:
                return size_status::bad;
        }
    }
    if (value > size_clamp / scale) {
        out = size_clamp;
        return size_status::clamped;
    }
    value *= scale;
    out = value == 0 ? no_limit : value;
    return size_status::ok;
}

std::string at(std::string_view file, std::size_t line) {
    return std::string(file) + ":" + std::to_string(line);
}

}  // namespace

clamd_config clamd_config::parse(std::string_view text, std::string_view file_name) {
    return parse(text, file_name, config_kind::clamd);
}

clamd_config clamd_config::load(const std::string& path) { return load(path, config_kind::clamd); }

clamd_config clamd_config::load(const std::string& path, config_kind kind) {
    // clamd's own wording when fopen() fails.
    std::ifstream in(path, std::ios::binary);
    if (!in.is_open()) {
        throw config_error("ERROR: Can't open/parse the config file " + path);
    }
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad()) {
        throw config_error("ERROR: Can't open/parse the config file " + path);
    }
    return parse(text, path, kind);
}

clamd_config clamd_config::parse(std::string_view text, std::string_view file_name,
                                 config_kind kind) {
    clamd_config cfg;
    cfg.kind_ = kind;
    const std::span<const option_spec> table = options_for(kind);
    std::size_t line = 0;
    std::size_t offset = 0;
    while (offset < text.size()) {
        // One fgets(): up to and including '\n', at most line_buffer - 1 bytes.
        std::string_view buff = text.substr(offset, line_buffer - 1);
        if (const std::size_t nl = buff.find('\n'); nl != npos) {
            buff = buff.substr(0, nl + 1);
        }
        offset += buff.size();
        ++line;
        buff = buff.substr(0, buff.find('\0'));  // clamd handles it as a C string

        // Leading blanks are skipped, but never the last byte.
        while (buff.size() > 1 && is_blank(buff.front())) {
            buff.remove_prefix(1);
        }
        if (buff.size() <= 2 || buff.front() == '#') {
            continue;
        }
        if (buff.starts_with("Example")) {
            throw config_error(
                "ERROR: Please edit the example config file " + std::string(file_name), line);
        }
        const std::size_t sep = buff.find_first_of(" \t");
        if (sep == npos) {
            throw config_error("ERROR: Missing argument for option at " + at(file_name, line),
                               line);
        }
        const std::string_view name = buff.substr(0, sep);
        std::string_view arg = buff.substr(sep + 1);
        while (arg.size() > 1 && is_blank(arg.front())) {
            arg.remove_prefix(1);
        }
        while (!arg.empty() && (is_blank(arg.back()) || arg.back() == '\n')) {
            arg.remove_suffix(1);  // not '\r': CRLF files keep it, as in clamd
        }
        if (arg.empty()) {
            throw config_error("ERROR: Missing argument for option at " + at(file_name, line),
                               line);
        }
        if (arg.front() == '"') {
            // From the first quote to the last one.
            arg.remove_prefix(1);
            const std::size_t quote = arg.rfind('"');
            if (quote == npos) {
                throw config_error("ERROR: Missing closing parenthesis in option " +
                                       std::string(name) + " at " + at(file_name, line),
                                   line);
            }
            arg = arg.substr(0, quote);
            if (arg.empty()) {
                throw config_error("ERROR: Empty argument for option " + std::string(name) +
                                       " at " + at(file_name, line),
                                   line);
            }
        }

        const option_spec* spec = find_option(table, name);
        if (spec == nullptr) {
            throw config_error("ERROR: Parse error at " + at(file_name, line) +
                                   ": Unknown option " + std::string(name),
                               line);
        }
        if ((spec->flags & deprecated) != 0) {
            cfg.warnings_.push_back("WARNING: Ignoring deprecated option " +
                                    std::string(spec->key()) + " at " + at(file_name, line));
            continue;
        }
        if (!matches_format(*spec, arg)) {
            throw config_error("ERROR: Incorrect argument format for option " + std::string(name),
                               line);
        }

        // Inline comment, as strtok(arg, "#") cuts it: leading '#'s skipped, then up to the
        // next '#', trailing blanks trimmed. Nothing left: the option takes its default.
        // This is ClamAV >= 1.5 (and the spec); 1.4.6 keeps '#' in values and rejects
        // "MaxThreads 12 # x". Accepting both forms loses only '#' inside values.
        bool no_value = false;
        if (arg.find('#') != npos) {
            const std::size_t start = arg.find_first_not_of('#');
            if (start == npos) {
                no_value = true;
            } else {
                arg = arg.substr(start);
                arg = arg.substr(0, arg.find('#'));
                while (!arg.empty() && is_blank(arg.back())) {
                    arg.remove_suffix(1);
                }
            }
        }

        std::string value;
        switch (spec->type) {
            case option_type::string:
                if (no_value) {
                    value = spec->fallback;
                } else {
                    value = arg;
                }
                break;
            case option_type::boolean:
                value = iequals(arg, "yes") || arg == "1" || iequals(arg, "true") ? "yes" : "no";
                break;
            case option_type::number: {
                const std::int32_t number = clamd_atoi(arg);
                if (number < 0) {
                    cfg.warnings_.push_back("WARNING: Numerical value for option " +
                                            std::string(name) +
                                            " does not fit an int (clamd reads " +
                                            std::to_string(number) + "), using 0");
                }
                value = std::to_string(std::max<std::int32_t>(number, 0));
                break;
            }
            case option_type::size: {
                std::uint64_t bytes = 0;
                switch (parse_size(arg, bytes)) {
                    case size_status::bad:
                        throw config_error(
                            "ERROR: Can't parse numerical argument for option " + std::string(name),
                            line);
                    case size_status::clamped:
                        cfg.warnings_.push_back("WARNING: Numerical value for option " +
                                                std::string(name) + " too high, resetting to " +
                                                std::to_string(size_clamp));
                        break;
                    case size_status::ok:
                        break;
                }
                value = std::to_string(bytes);
                break;
            }
        }

        const std::string key(spec->key());
        const auto found = cfg.values_.find(key);
        if ((spec->flags & multiple) != 0) {
            std::vector<std::string>& values = cfg.values_[key];
            if (!no_value || !value.empty()) {
                values.push_back(std::move(value));
            }
        } else if (found == cfg.values_.end()) {  // the first occurrence wins
            std::vector<std::string>& values = cfg.values_[key];
            if (!no_value || !value.empty()) {
                values.push_back(std::move(value));
            }
        }
    }
    return cfg;
}

bool clamd_config::has(std::string_view name) const {
    const option_spec* spec = find_option(options_for(kind_), name);
    return spec != nullptr && values_.contains(spec->key());
}

std::optional<std::string> clamd_config::get_string(std::string_view name) const {
    const option_spec& spec = spec_for(kind_, name, option_type::string);
    if (const auto it = values_.find(spec.key()); it != values_.end() && !it->second.empty()) {
        return it->second.front();
    }
    if (spec.fallback.empty()) {
        return std::nullopt;
    }
    return std::string(spec.fallback);
}

bool clamd_config::get_bool(std::string_view name) const {
    const option_spec& spec = spec_for(kind_, name, option_type::boolean);
    if (const auto it = values_.find(spec.key()); it != values_.end() && !it->second.empty()) {
        return it->second.front() == "yes";
    }
    return spec.fallback == "yes";
}

namespace {

std::uint64_t to_u64(std::string_view digits) {
    std::uint64_t value = 0;
    for (const char c : digits) {
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
}

}  // namespace

std::uint64_t clamd_config::get_number(std::string_view name) const {
    const option_spec& spec = spec_for(kind_, name, option_type::number);
    if (const auto it = values_.find(spec.key()); it != values_.end() && !it->second.empty()) {
        return to_u64(it->second.front());
    }
    return to_u64(spec.fallback);
}

std::uint64_t clamd_config::get_size(std::string_view name) const {
    const option_spec& spec = spec_for(kind_, name, option_type::size);
    if (const auto it = values_.find(spec.key()); it != values_.end() && !it->second.empty()) {
        return to_u64(it->second.front());
    }
    return to_u64(spec.fallback);
}

std::vector<std::string> clamd_config::get_all(std::string_view name) const {
    const option_spec* spec = find_option(options_for(kind_), name);
    if (spec == nullptr) {
        throw std::logic_error("clamd_config: no option named " + std::string(name));
    }
    if (const auto it = values_.find(spec->key()); it != values_.end()) {
        return it->second;
    }
    if (spec->fallback.empty()) {
        return {};
    }
    return {std::string(spec->fallback)};
}

}  // namespace ringscan::proto
