#pragma once

/// The signature model: what the database readers (matcher/formats/) produce and the
/// compiler (matcher/engine/) consumes. Plain data, no parsing and no matching; every room
/// of the matcher may use it.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ringscan::matcher {

namespace detail {
struct logical_signature;  // matcher/model/logical.h
}  // namespace detail

/// The functionality level (FLEVEL) this engine claims: ClamAV 1.4.6's (`clamconf`: "Engine
/// flevel: 216"). Lines whose :MinFL:MaxFL range excludes it are skipped, as ClamAV does.
inline constexpr unsigned functionality_level = 216;

class load_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Where a body signature may start (.ndb Offset field) -- the forms this engine matches.
struct match_offset {
    enum class anchor : std::uint8_t {
        any,          ///< `*`
        absolute,     ///< `n[,m]`: starts at byte n .. n+m
        end_of_file,  ///< `EOF-n[,m]`: starts at size-n .. size-n+m
    };
    anchor from = anchor::any;
    std::uint64_t value = 0;      ///< n
    std::uint64_t max_shift = 0;  ///< m
};

/// ClamAV target types (.ndb TargetType, .ldb Target:) this engine routes by file type.
namespace target {
inline constexpr std::uint8_t any = 0;
inline constexpr std::uint8_t pe = 1;
inline constexpr std::uint8_t ole2 = 2;
inline constexpr std::uint8_t html = 3;
inline constexpr std::uint8_t mail = 4;
inline constexpr std::uint8_t graphics = 5;
inline constexpr std::uint8_t elf = 6;
inline constexpr std::uint8_t text = 7;
inline constexpr std::uint8_t macho = 9;
inline constexpr std::uint8_t pdf = 10;
inline constexpr std::uint8_t flash = 11;
inline constexpr std::uint8_t java = 12;
/// ClamAV's CL_TYPE_INTERNAL and CL_TYPE_OTHER targets: no scanner types an object so, but
/// a HandlerType:CL_TYPE_INTERNAL re-scan runs target-13 signatures.
inline constexpr std::uint8_t internal = 13;
inline constexpr std::uint8_t other = 14;
}  // namespace target

/// A body signature (.ndb / .db line). Either a plain byte string (`bytes`, `expression`
/// empty) or a Hyperscan expression with the exact semantics of the ClamAV hex pattern.
struct body_signature {
    body_signature() = default;
    /// A literal matched anywhere (target 0, offset `*`).
    body_signature(std::string signature_name, std::string literal)
        : name(std::move(signature_name)), bytes(std::move(literal)) {}

    std::string name;        ///< as reported, ".UNOFFICIAL" already appended where due
    std::string bytes;       ///< the literal to find (empty when `expression` is set)
    std::string expression;  ///< Hyperscan syntax (DOTALL) for wildcard patterns, else empty
    /// The ClamAV hex pattern `expression` was translated from: the engine derives its
    /// prefilter factor and exact verification from it. Empty: always a Hyperscan expression.
    std::string hex;
    std::uint8_t target = target::any;  ///< file type the signature applies to
    match_offset offset;
    std::uint32_t min_length = 0;             ///< shortest match (expression only)
    std::optional<std::uint32_t> max_length;  ///< longest match; nullopt: unbounded
    std::string origin;                       ///< "file:line", for messages
};

enum class hash_kind : std::uint8_t { md5, sha1, sha256 };

/// A whole-file hash signature (.hdb / .hsb line).
struct hash_signature {
    hash_kind kind = hash_kind::md5;
    std::array<std::uint8_t, 32> digest{};  ///< first 16/20/32 bytes used
    std::optional<std::uint64_t> size;      ///< nullopt: `*` (any size)
    std::string name;
};

/// The daily database's version and build time (daily.cvd/.cld/.cud header), as clamd's
/// VERSION reports them: "ClamAV 1.4.6/<version>/<build_time>".
struct database_version {
    std::uint32_t version = 0;
    /// ctime(3) (local time) of the header's build time, e.g. "Tue Nov 24 05:30:56 2026".
    std::string build_time;
};

/// A signature evaluated over a whole object (matcher/engine/object_match.h): an .ldb
/// line, a YARA rule, or an .ndb line whose offset needs the executable header (EP, Sx,
/// SL, SE, VI) -- all in the .ldb model.
struct logical_entry {
    std::string name;  ///< as reported, ".UNOFFICIAL" already appended where due
    std::shared_ptr<const detail::logical_signature> logic;
    /// .ndb lines only: ClamAV's Boyer-Moore matcher holds it (plain bytes, exact offset),
    /// which checks `SEx` at the section start only.
    bool boyer_moore = false;
    /// An .ndb/.db line held here for the whole-object matcher: a body signature to ClamAV,
    /// not a logical one.
    bool body_line = false;
    /// No signature: where a YARA rule ClamAV loads but fails to run sits (see
    /// detail::yara_rule_result::poisoned). ClamAV evaluates no generic (target 0) logical
    /// signature loaded from here on, in any file.
    bool halts_generic = false;
    std::string origin;  ///< "file:line"
};

struct signature_set {
    std::vector<body_signature> bodies;
    std::vector<hash_signature> hashes;
    /// Allow list (.fp MD5, .sfp SHA1/SHA256): a stream with one of these hashes and sizes
    /// is clean whatever else matched in it. The names are kept for messages only.
    std::vector<hash_signature> allow_hashes;
    /// PE section hashes (.mdb/.msb; `size` is the section's raw size) and import-table
    /// hashes (.imp; `size` is the length of the hashed import list).
    std::vector<hash_signature> section_hashes;
    std::vector<hash_signature> import_hashes;
    std::vector<logical_entry> logicals;
    /// .idb lines (icon fuzzy hashes for the .ldb IconGroup1/IconGroup2 fields), validated.
    std::vector<std::string> icons;
    /// Lines not loaded, each as "file:line: reason": ones ClamAV skips too (functionality
    /// level, unknown target type or attribute -- the reason says so) and ones this engine
    /// cannot match yet (the reason ends in "not supported yet").
    std::vector<std::string> skipped;
    /// From daily.cvd / daily.cld / daily.cud, when loaded.
    std::optional<database_version> daily_version;

    void append(signature_set other);
    [[nodiscard]] std::size_t size() const {
        return bodies.size() + hashes.size() + section_hashes.size() + import_hashes.size() +
               logicals.size();
    }
};

}  // namespace ringscan::matcher
