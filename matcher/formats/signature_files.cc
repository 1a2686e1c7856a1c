#include "matcher/signatures.h"

#include "base/assert.h"
#include "base/hex.h"
#include "matcher/formats/cvd.h"
#include "matcher/formats/hexsig.h"
#include "matcher/formats/idb.h"
#include "matcher/formats/ldb.h"
#include "matcher/formats/offset.h"
#include "matcher/formats/offset.h"
#include "matcher/formats/yara.h"
#include "matcher/model/text.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <iterator>
#include <map>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

namespace ringscan::matcher {
namespace {

using detail::all_digits;
using detail::digits_value;

// What ClamAV 1.4.6 does with each field was checked line by line with `clamscan -d`; the
// comments name the behaviour they mirror.

// A plain literal for target 0 goes to ClamAV's Boyer-Moore matcher, which refuses
// anything shorter (cli_bm_addpatt: "Signature ... is too short").
constexpr std::size_t min_literal_length = 3;
// Targets from 15 up are unknown to ClamAV 1.4.6: it skips such lines without a word.
constexpr unsigned first_unknown_target = 15;
// `*` as .hdb size is only valid when the line also says MinFL >= 73.
constexpr std::int64_t min_flevel_for_any_size = 73;
// ClamAV keeps hash-signature sizes in 32 bits and rejects 0 and UINT32_MAX.
constexpr std::int64_t max_hash_size = 0xFFFFFFFELL;

enum class db_format : std::uint8_t {
    ndb,
    db,
    hash,
    allow,
    ignore,
    section_hash,  ///< .mdb/.msb: PESectionSize:Hash:Name
    import_hash,   ///< .imp: Hash:Size:Name
    logical,       ///< .ldb
    yara,          ///< .yar/.yara
    icon,          ///< .idb
};

// The extension after the last dot, lower-cased; empty when there is none or it is long.
std::string extension_of(std::string_view file_name) {
    const auto dot = file_name.rfind('.');
    if (dot == std::string_view::npos || file_name.size() - dot > 5) {
        return {};
    }
    std::string ext(file_name.substr(dot + 1));
    for (char& c : ext) {
        c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return ext;
}

bool ends_with_ignoring_case(std::string_view text, std::string_view suffix) {
    if (text.size() < suffix.size()) {
        return false;
    }
    const std::string_view tail = text.substr(text.size() - suffix.size());
    return std::equal(tail.begin(), tail.end(), suffix.begin(), [](char a, char b) {
        return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
    });
}

/// Database files by extension (lower-cased first, see extension_of):
/// a new signature format gets its row here.
constexpr std::array<std::pair<std::string_view, db_format>, 15> formats_by_extension{{
    {"db", db_format::db},
    {"ndb", db_format::ndb},
    {"hdb", db_format::hash},
    {"hsb", db_format::hash},
    {"fp", db_format::allow},
    {"sfp", db_format::allow},
    {"ign", db_format::ignore},
    {"ign2", db_format::ignore},
    {"mdb", db_format::section_hash},
    {"msb", db_format::section_hash},
    {"imp", db_format::import_hash},
    {"ldb", db_format::logical},
    {"yar", db_format::yara},
    {"yara", db_format::yara},
    {"idb", db_format::icon},
}};

std::optional<db_format> format_of(std::string_view file_name) {
    const std::string e = extension_of(file_name);
    for (const auto& [extension, format] : formats_by_extension) {
        if (e == extension) {
            return format;
        }
    }
    return std::nullopt;
}

enum class container_kind : std::uint8_t { cvd, cld, cud };

std::optional<container_kind> container_of(std::string_view file_name) {
    const std::string e = extension_of(file_name);
    if (e == "cvd") {
        return container_kind::cvd;
    }
    if (e == "cld") {
        return container_kind::cld;
    }
    if (e == "cud") {
        return container_kind::cud;
    }
    return std::nullopt;
}

// .ign / .ign2 entries: a signature name, optionally with the MD5 of the whole database line.
struct ignore_list {
    /// Name -> MD5s of the lines to drop; an empty MD5 drops every line of that name.
    std::map<std::string, std::vector<std::string>, std::less<>> entries;

    [[nodiscard]] bool empty() const { return entries.empty(); }
    [[nodiscard]] bool drops(std::string_view name, std::string_view line) const;
};

// Where a line came from, for messages: "<file>:<line>: <reason>".
struct line_ref {
    std::string_view file;
    std::size_t number = 0;

    [[nodiscard]] std::string describe(std::string_view reason) const {
        std::string text(file);
        text += ':';
        text += std::to_string(number);
        text += ": ";
        text += reason;
        return text;
    }
};

[[noreturn]] void malformed(const line_ref& where, std::string_view reason) {
    throw load_error(where.describe(reason));
}

void skip(signature_set& out, const line_ref& where, std::string_view reason) {
    out.skipped.push_back(where.describe(reason));
}

// Splits on ':' keeping empty fields; counts every field but stores at most fields.size().
struct fields {
    static constexpr std::size_t capacity = 8;
    std::array<std::string_view, capacity> items{};
    std::size_t count = 0;

    explicit fields(std::string_view line) {
        std::size_t start = 0;
        while (true) {
            const auto colon = line.find(':', start);
            const auto field = line.substr(
                start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
            if (count < capacity) {
                items[count] = field;
            }
            ++count;
            if (colon == std::string_view::npos) {
                break;
            }
            start = colon + 1;
        }
    }
    [[nodiscard]] std::string_view operator[](std::size_t i) const { return items[i]; }
};

// ClamAV's cli_virname(): the name ends at the first " (Clam)"; raw files get
// ".UNOFFICIAL" appended unconditionally (a name already ending in it gets it twice).
std::string signature_name(std::string_view raw, bool official, const line_ref& where) {
    if (const auto clam = raw.find(" (Clam)"); clam != std::string_view::npos) {
        raw = raw.substr(0, clam);
    }
    if (raw.empty()) {
        malformed(where, "empty signature name");
    }
    std::string name(raw);
    if (!official) {
        name += ".UNOFFICIAL";
    }
    return name;
}

std::string flevel_reason(std::string_view relation, std::uint64_t level) {
    return "needs functionality level " + std::string(relation) + ' ' + std::to_string(level) +
           " (this engine has " + std::to_string(functionality_level) + ")";
}

// Characters of ClamAV's hex-signature syntax beyond the hex digits themselves:
// `??` `a?` `*` `{n-m}` `[x-y]` `(aa|bb)` `!(..)` `(B)` `(L)` `(W)`.
constexpr bool is_pattern_char(char c) {
    switch (c) {
        case '?':
        case '*':
        case '{':
        case '}':
        case '[':
        case ']':
        case '(':
        case ')':
        case '|':
        case '!':
        case '-':
        case 'L':
        case 'W':
            return true;
        default:
            return false;
    }
}

/// True when `hex` is only hex digits (a literal); throws on a character no hex signature
/// may hold, as ClamAV refuses the line.
bool is_plain_hex(std::string_view hex, const line_ref& where) {
    bool literal = true;
    for (const char c : hex) {
        if (hex::digit_value(c) >= 0) {
            continue;
        }
        if (!is_pattern_char(c)) {
            malformed(where, std::string("invalid character '") + c + "' in hex signature");
        }
        literal = false;
    }
    return literal;
}

void add_body(std::string name, std::string_view hex, unsigned target,
              const detail::body_offset& offset, std::string_view offset_text,
              const line_ref& where, signature_set& out);
void add_structural_body(std::string name, std::string_view hex, unsigned target,
                         const detail::body_offset& offset, std::string_view offset_text,
                         const line_ref& where, signature_set& out);

// .ndb: Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]]
void parse_ndb_line(std::string_view line, const line_ref& where, bool official,
                    signature_set& out) {
    const fields f(line);
    if (f.count < 4 || f.count > 6) {
        malformed(where, "expected Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]], found " +
                             std::to_string(f.count) + " fields");
    }
    // The FLEVEL range is checked before anything else, so an out-of-range line is skipped
    // even when its other fields would not parse.
    if (f.count >= 5) {
        if (!all_digits(f[4])) {
            malformed(where, "MinFL is not a number");
        }
        if (const auto min_level = digits_value(f[4]); min_level > functionality_level) {
            skip(out, where, flevel_reason(">=", min_level));
            return;
        }
    }
    if (f.count == 6) {
        if (!all_digits(f[5])) {
            malformed(where, "MaxFL is not a number");
        }
        if (const auto max_level = digits_value(f[5]); max_level < functionality_level) {
            skip(out, where, flevel_reason("<=", max_level));
            return;
        }
    }
    if (!all_digits(f[1])) {
        malformed(where, "target type is not a number");
    }
    const std::uint64_t target64 = digits_value(f[1]);
    if (target64 >= first_unknown_target) {
        skip(out, where, "unknown target type " + std::string(f[1]) + " (ClamAV ignores it)");
        return;
    }
    const auto target = static_cast<unsigned>(target64);
    std::string name = signature_name(f[0], official, where);

    const std::string_view hex = f[3];
    const bool literal = is_plain_hex(hex, where);
    if (literal && hex.size() % 2 != 0) {
        malformed(where, "hex signature has an odd number of digits");
    }
    const auto offset = detail::parse_body_offset(f[2], target);
    if (!offset) {
        malformed(where, "offset '" + std::string(f[2]) + "': " + offset.error());
    }
    if (literal && target == 0 && hex.size() / 2 < min_literal_length) {
        malformed(where, "signature too short: " + std::to_string(hex.size() / 2) +
                             " bytes, at least 3 needed");
    }
    add_body(std::move(name), hex, target, *offset, f[2], where, out);
}

// Common tail of .ndb and .db lines: checks what this engine can match, translates the hex.
void add_body(std::string name, std::string_view hex, unsigned target,
              const detail::body_offset& offset, std::string_view offset_text,
              const line_ref& where, signature_set& out) {
    auto translated = detail::translate_hex(hex);
    if (!translated) {
        if (translated.error().malformed) {
            malformed(where, "hex signature: " + translated.error().reason);
        }
        skip(out, where, "hex signature: " + translated.error().reason + " not supported yet");
        return;
    }
    const bool variable_length =
        !translated->literal && translated->max_length != translated->min_length;
    // What the stream engine cannot match goes to the whole-object one: offsets relative
    // to the executable's structure, gaps wider than a Hyperscan repeat, and patterns of
    // variable length anchored at EOF-n or past an absolute offset of 32767 (Hyperscan
    // cannot bound where such a match starts).
    if ((offset.from != detail::body_offset::anchor::any &&
         offset.from != detail::body_offset::anchor::absolute &&
         offset.from != detail::body_offset::anchor::end_of_file) ||
        translated->wide_gap ||
        (variable_length && offset.from == detail::body_offset::anchor::end_of_file) ||
        (variable_length && offset.from == detail::body_offset::anchor::absolute &&
         static_cast<std::uint64_t>(offset.value) + offset.max_shift > 32767)) {
        add_structural_body(std::move(name), hex, target, offset, offset_text, where, out);
        return;
    }
    body_signature body;
    body.name = std::move(name);
    body.target = static_cast<std::uint8_t>(target);
    body.origin = where.describe("");
    body.origin.resize(body.origin.size() - 2);  // "file:line"
    switch (offset.from) {
        case detail::body_offset::anchor::any:
            break;
        case detail::body_offset::anchor::absolute:
            body.offset.from = match_offset::anchor::absolute;
            break;
        case detail::body_offset::anchor::end_of_file:
            body.offset.from = match_offset::anchor::end_of_file;
            break;
        default:
            break;  // structural offsets were handed to add_structural_body() above
    }
    body.offset.value = static_cast<std::uint64_t>(offset.value);
    body.offset.max_shift = offset.max_shift;
    if (translated->literal) {
        body.bytes = std::move(translated->bytes);
    } else {
        body.expression = std::move(translated->expression);
        body.hex = std::string(hex);
        body.min_length = translated->min_length;
        body.max_length = translated->max_length;
        if (body.min_length == 0) {
            skip(out, where, "pattern that can match nothing not supported");
            return;
        }
    }
    out.bodies.push_back(std::move(body));
}

// .ldb: Name;TargetDescriptionBlock;LogicalExpression;Subsig0[;Subsig1...]
void parse_ldb_line(std::string_view line, const line_ref& where, bool official,
                    signature_set& out) {
    auto parsed = detail::parse_logical_signature(line);
    if (auto* error = std::get_if<detail::logical_error>(&parsed)) {
        malformed(where, error->message);
    }
    if (auto* skipped = std::get_if<detail::logical_skip>(&parsed)) {
        skip(out, where, skipped->message + " (ClamAV skips it too)");
        return;
    }
    auto& signature = std::get<detail::logical_signature>(parsed);
    logical_entry entry;
    entry.name = signature_name(signature.name, official, where);
    entry.origin = where.describe("");
    entry.origin.resize(entry.origin.size() - 2);
    entry.logic = std::make_shared<const detail::logical_signature>(std::move(signature));
    out.logicals.push_back(std::move(entry));
}

// An .ndb/.db line the stream engine cannot match (see add_body), as a logical signature
// of one subsignature and expression "0" for the whole-object engine.
void add_structural_body(std::string name, std::string_view hex, unsigned target,
                         const detail::body_offset& offset, std::string_view offset_text,
                         const line_ref& where, signature_set& out) {
    detail::logical_signature signature;
    signature.target.target = target;
    auto expression = detail::parse_logical_expression("0");
    RINGSCAN_ASSERT(expression.has_value());
    signature.expression = std::move(*expression);
    detail::hex_subsignature sub;
    sub.offset_text = std::string(offset_text);
    sub.offset = offset;
    sub.hex = std::string(hex);
    signature.subsignatures.emplace_back(std::move(sub));
    logical_entry entry;
    entry.name = std::move(name);
    entry.boyer_moore =
        detail::ndb_matcher(hex, offset, offset_text) == detail::clamav_matcher::boyer_moore;
    entry.body_line = true;
    entry.origin = where.describe("");
    entry.origin.resize(entry.origin.size() - 2);
    entry.logic = std::make_shared<const detail::logical_signature>(std::move(signature));
    out.logicals.push_back(std::move(entry));
}

// .idb: IconName:Group1:Group2:IconHash
void parse_idb_line(std::string_view line, const line_ref& where, signature_set& out) {
    if (auto entry = detail::parse_idb_line(line); !entry) {
        malformed(where, entry.error());
    }
    out.icons.emplace_back(line);
}

// .yar/.yara: YARA rules, the subset ClamAV accepts, in the .ldb model.
void parse_yara_file(std::string_view text, std::string_view file_name, bool official,
                     signature_set& out) {
    auto parsed = detail::parse_yara(text);
    if (!parsed) {
        throw load_error(std::string(file_name) + ": " + parsed.error());
    }
    const line_ref where{file_name, 0};
    for (auto& rule : parsed->rules) {
        logical_entry entry;
        entry.name = signature_name(rule.name, official, where);
        entry.origin = std::string(file_name) + ":" + rule.name;
        entry.logic = std::make_shared<const detail::logical_signature>(std::move(rule));
        out.logicals.push_back(std::move(entry));
    }
    if (parsed->poisoned) {
        logical_entry halt;
        halt.name = signature_name(*parsed->poisoned, official, where);
        halt.origin = std::string(file_name) + ":" + *parsed->poisoned;
        halt.halts_generic = true;
        out.logicals.push_back(std::move(halt));
    }
    for (const auto& message : parsed->skipped) {
        out.skipped.push_back(std::string(file_name) + ": " + message);
    }
    for (const auto& message : parsed->not_supported) {
        out.skipped.push_back(std::string(file_name) + ": " + message + " (not supported yet)");
    }
}

// .db: Name=HexSignature, target 0, anywhere in the file.
void parse_db_line(std::string_view line, const line_ref& where, bool official,
                   signature_set& out) {
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) {
        malformed(where, "expected Name=HexSignature");
    }
    std::string name = signature_name(line.substr(0, equals), official, where);
    const std::string_view hex = line.substr(equals + 1);
    const bool literal = is_plain_hex(hex, where);
    if (literal && hex.size() / 2 < min_literal_length) {
        malformed(where, "signature too short: " + std::to_string(hex.size() / 2) +
                             " bytes, at least 3 needed");
    }
    add_body(std::move(name), hex, 0, detail::body_offset{}, "*", where, out);
}

// .hdb / .hsb / .imp: HashHex:FileSize:Name[:MinFL[:MaxFL]]; .mdb / .msb swap the first
// two fields (PESectionSize:SectionHash:Name...). `into` receives the signature.
void parse_hash_line(std::string_view line, const line_ref& where, bool official,
                     signature_set& out, db_format format) {
    fields f(line);
    if (format == db_format::section_hash && f.count >= 2) {
        std::swap(f.items[0], f.items[1]);
    }
    if (f.count < 3 || f.count > 5) {
        malformed(where, "expected Hash:Size:Name[:MinFL[:MaxFL]], found " +
                             std::to_string(f.count) + " fields");
    }
    // Unlike .ndb, the hash loader reads FLEVELs with atoi: "x" or "" means 0.
    const std::int64_t min_level = f.count >= 4 ? detail::c_atoi(f[3]) : 0;
    if (min_level > static_cast<std::int64_t>(functionality_level)) {
        skip(out, where, flevel_reason(">=", static_cast<std::uint64_t>(min_level)));
        return;
    }
    if (f.count == 5) {
        if (const std::int64_t max_level = detail::c_atoi(f[4]);
            max_level < static_cast<std::int64_t>(functionality_level)) {
            skip(out, where,
                 max_level < 0 ? std::string("needs a negative functionality level")
                               : flevel_reason("<=", static_cast<std::uint64_t>(max_level)));
            return;
        }
    }

    hash_signature sig;
    const std::string_view hash = f[0];
    switch (hash.size()) {
        case 32:
            sig.kind = hash_kind::md5;
            break;
        case 40:
            sig.kind = hash_kind::sha1;
            break;
        case 64:
            sig.kind = hash_kind::sha256;
            break;
        default:
            malformed(where, "hash must be 32 (MD5), 40 (SHA1) or 64 (SHA256) hex digits");
    }
    if (!hex::decode(hash, sig.digest)) {
        malformed(where, "hash is not a hex string");
    }

    if (f[1] == "*") {
        if (min_level < min_flevel_for_any_size) {
            malformed(where, "size '*' needs MinFL 73 or higher");
        }
    } else {
        const auto size = detail::c_strtol_whole(f[1]);
        if (!size || *size < 1 || *size > max_hash_size) {
            malformed(where, "invalid file size '" + std::string(f[1]) + "'");
        }
        sig.size = static_cast<std::uint64_t>(*size);
    }
    sig.name = signature_name(f[2], official, where);
    switch (format) {
        case db_format::section_hash:
            out.section_hashes.push_back(std::move(sig));
            break;
        case db_format::import_hash:
            out.import_hashes.push_back(std::move(sig));
            break;
        default:
            out.hashes.push_back(std::move(sig));
            break;
    }
}

std::string read_file(const std::filesystem::path& path) {
    struct file_closer {
        void operator()(std::FILE* file) const noexcept { std::fclose(file); }
    };
    const std::unique_ptr<std::FILE, file_closer> file(std::fopen(path.c_str(), "rb"));
    if (!file) {
        throw load_error(path.string() +
                         ": cannot open: " + std::generic_category().message(errno));
    }
    std::string text;
    std::array<char, 1 << 16> buffer{};
    while (true) {
        const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
        text.append(buffer.data(), n);
        if (n < buffer.size()) {
            break;
        }
    }
    if (std::ferror(file.get()) != 0) {
        throw load_error(path.string() + ": read error");
    }
    return text;
}

template <typename Element>
void move_all(std::vector<Element>& into, std::vector<Element>& from) {
    if (into.empty()) {
        into = std::move(from);
        return;
    }
    into.reserve(into.size() + from.size());
    std::move(from.begin(), from.end(), std::back_inserter(into));
}

}  // namespace

void signature_set::append(signature_set other) {
    move_all(bodies, other.bodies);
    move_all(hashes, other.hashes);
    move_all(section_hashes, other.section_hashes);
    move_all(import_hashes, other.import_hashes);
    move_all(logicals, other.logicals);
    move_all(icons, other.icons);
    move_all(allow_hashes, other.allow_hashes);
    move_all(skipped, other.skipped);
    if (other.daily_version) {
        daily_version = std::move(other.daily_version);
    }
}

namespace {

bool ignore_list::drops(std::string_view name, std::string_view line) const {
    const auto at = entries.find(name);
    if (at == entries.end()) {
        return false;
    }
    const auto& digests = at->second;
    if (std::find(digests.begin(), digests.end(), std::string()) != digests.end()) {
        return true;
    }
    return std::find(digests.begin(), digests.end(), detail::md5_hex(line)) != digests.end();
}

// The signature name field of a database line, before any parsing (ClamAV checks the
// ignore list against the raw name token).
std::string_view raw_name(db_format format, std::string_view line) {
    if (format == db_format::db) {
        return line.substr(0, line.find('='));
    }
    if (format == db_format::logical) {
        return line.substr(0, line.find(';'));
    }
    const fields f(line);
    if (format == db_format::ndb) {
        return f[0];
    }
    return f.count >= 3 ? f[2] : std::string_view{};
}

// .ign2: Name[:MD5]; .ign (legacy): db:line:Name.
void parse_ignore_line(std::string_view line, const line_ref& where, ignore_list& out) {
    const fields f(line);
    if (f.count == 1) {
        out.entries[std::string(f[0])].emplace_back();
    } else if (f.count == 2) {
        std::string md5(f[1]);
        for (char& c : md5) {
            c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        }
        if (md5.size() != 32 || md5.find_first_not_of(hex::lower_digits) != std::string::npos) {
            malformed(where, "expected Name[:MD5], the MD5 is not 32 hex digits");
        }
        out.entries[std::string(f[0])].push_back(std::move(md5));
    } else if (f.count == 3) {
        out.entries[std::string(f[2])].emplace_back();
    } else {
        malformed(where, "expected Name[:MD5] or db:line:Name");
    }
}

/// Parses one database file. Lines named by `ignores` are dropped; the lines of an ignore
/// file (.ign/.ign2) are added to `*added_ignores`, which must then be given.
signature_set parse_into(std::string_view text, std::string_view file_name, bool official,
                         const ignore_list& ignores, ignore_list* added_ignores) {
    const auto format = format_of(file_name);
    if (!format) {
        throw load_error(std::string(file_name) +
                         ": unsupported database type (expected .ndb, .db, .hdb, .hsb, .fp, "
                         ".sfp, .ign or .ign2)");
    }
    if (text.empty()) {
        throw load_error(std::string(file_name) + ": empty database file");
    }
    signature_set out;
    if (*format == db_format::yara) {
        parse_yara_file(text, file_name, official, out);
        return out;
    }
    line_ref where{file_name, 0};
    std::size_t start = 0;
    while (start < text.size()) {
        const auto newline = text.find('\n', start);
        const auto end = newline == std::string_view::npos ? text.size() : newline;
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++where.number;
        while (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            malformed(where, "empty line");  // ClamAV rejects blank lines too
        }
        if (line.front() == '#') {
            continue;
        }
        if (*format == db_format::ignore) {
            RINGSCAN_ASSERT(added_ignores != nullptr);
            parse_ignore_line(line, where, *added_ignores);
            continue;
        }
        if (!ignores.empty() && ignores.drops(raw_name(*format, line), line)) {
            continue;
        }
        if (*format == db_format::ndb) {
            parse_ndb_line(line, where, official, out);
        } else if (*format == db_format::db) {
            parse_db_line(line, where, official, out);
        } else if (*format == db_format::logical) {
            parse_ldb_line(line, where, official, out);
        } else if (*format == db_format::icon) {
            parse_idb_line(line, where, out);
        } else {
            parse_hash_line(line, where, official, out, *format);
        }
    }
    if (*format == db_format::allow) {
        out.allow_hashes = std::move(out.hashes);
        out.hashes.clear();
    }
    return out;
}

}  // namespace

signature_set parse_signatures(std::string_view text, std::string_view file_name, bool official) {
    ignore_list ignores;
    return parse_into(text, file_name, official, ignores, &ignores);
}

namespace {

// ClamAV's CLI_DBEXT: the members of a container it loads, each checked against the .info.
bool clamav_database_name(std::string_view name) {
    static constexpr std::string_view suffixes[] = {
        ".db",  ".hdb", ".hdu", ".fp",   ".mdb",  ".mdu", ".hsb",  ".hsu", ".sfp", ".msb",
        ".msu", ".ndb", ".ndu", ".ldb",  ".ldu",  ".sdb", ".zmd",  ".rmd", ".pdb", ".gdb",
        ".wdb", ".cbc", ".ftm", ".cfg",  ".cvd",  ".cld", ".cud",  ".cdb", ".cat", ".crb",
        ".idb", ".ioc", ".yar", ".yara", ".pwdb", ".ign", ".ign2", ".imp"};
    return std::any_of(std::begin(suffixes), std::end(suffixes), [&](std::string_view suffix) {
        return ends_with_ignoring_case(name, suffix);
    });
}

// The .info member as ClamAV 1.4.6's cli_cvdload reads it before anything else: the first
// member named *.info, signed unless the container is a .cud, its header line equal to the
// container's in version, signatures, functionality level and build time.
detail::container_info checked_info(const std::vector<detail::cvd_member>& members,
                                    const detail::cvd_header& header, const std::string& file,
                                    bool is_unsigned, const detail::container_keys& keys) {
    const auto member = std::find_if(members.begin(), members.end(), [](const auto& m) {
        return ends_with_ignoring_case(m.name, ".info");
    });
    if (member == members.end()) {
        throw load_error(file + ": Corrupted CVD header (no .info member)");
    }
    detail::container_info info =
        detail::read_info(member->data, file + '/' + member->name, is_unsigned, keys.info);
    if (info.header.version != header.version || info.header.signatures != header.signatures ||
        info.header.flevel != header.flevel || info.header.stime != header.stime) {
        throw load_error(file + ": Corrupted CVD header (the .info header differs)");
    }
    if (info.entries.empty()) {
        throw load_error(file + ": dbinfo error (the .info lists no database)");
    }
    return info;
}

// After a member loaded, as cli_tgzload checks it: listed in the .info, and unless empty of
// the size and SHA-256 listed there.
void check_against_info(const detail::cvd_member& member, const detail::container_info& info,
                        const std::string& name) {
    const auto entry = std::find_if(info.entries.begin(), info.entries.end(),
                                    [&](const auto& e) { return e.name == member.name; });
    if (entry == info.entries.end()) {
        throw load_error(name + ": not found in .info");
    }
    if (member.data.empty()) {
        return;
    }
    if (entry->size != member.data.size()) {
        throw load_error(name + ": not correctly loaded (size differs from the .info)");
    }
    std::array<unsigned char, 32> digest{};
    if (EVP_Digest(member.data.data(), member.data.size(), digest.data(), nullptr, EVP_sha256(),
                   nullptr) != 1 ||
        digest != entry->sha256) {
        throw load_error(name + ": invalid checksum (SHA-256 differs from the .info)");
    }
}

void load_container(const std::filesystem::path& path, const std::string& bytes,
                    const detail::cvd_header& header, ignore_list& ignores, signature_set& all,
                    const detail::container_keys& keys) {
    const std::string file = path.string();
    const auto kind = container_of(file);
    const bool official = kind != container_kind::cud;
    const std::vector<detail::cvd_member> members =
        detail::unpack_cvd(bytes, header, file, kind == container_kind::cvd, keys.header);
    const detail::container_info info =
        checked_info(members, header, file, kind == container_kind::cud, keys);
    // Members load in archive order, as in ClamAV: an .ign2 member drops lines of the
    // members and containers after it only.
    for (const detail::cvd_member& member : members) {
        const std::string name = file + '/' + member.name;
        if (!clamav_database_name(member.name)) {
            continue;  // COPYING, the .info, anything ClamAV does not load
        }
        if (!format_of(member.name)) {
            all.skipped.push_back(name + ": format not supported yet");
        } else if (!member.data.empty()) {  // official containers carry empty databases
            all.append(parse_into(member.data, name, official, ignores, &ignores));
        }
        check_against_info(member, info, name);
    }
    if (path.stem() == "daily") {
        all.daily_version = database_version{header.version, detail::ctime_text(header.stime)};
    }
}

void load_into(const std::filesystem::path& path, ignore_list& ignores, signature_set& all,
               const detail::container_keys& keys) {
    const std::string bytes = read_file(path);
    if (container_of(path.filename().native())) {
        load_container(path, bytes, detail::parse_cvd_header(bytes, path.string()), ignores, all,
                       keys);
        return;
    }
    all.append(parse_into(bytes, path.string(), false, ignores, &ignores));
}

/// Parses `files` (no containers, no ignore files) on up to every core and appends them to
/// `all` in the order given: the result, and the first load error in that order, are the
/// same as one by one.
void parse_plain_files(const std::vector<std::filesystem::path>& files, const ignore_list& ignores,
                       signature_set& all) {
    if (files.empty()) {
        return;
    }
    std::vector<signature_set> parsed(files.size());
    std::vector<std::exception_ptr> failed(files.size());
    std::atomic<std::size_t> next{0};
    const auto work = [&] {
        for (std::size_t i = next++; i < files.size(); i = next++) {
            try {
                parsed[i] =
                    parse_into(read_file(files[i]), files[i].string(), false, ignores, nullptr);
            } catch (...) {
                failed[i] = std::current_exception();
            }
        }
    };
    const std::size_t helpers =
        std::min<std::size_t>(files.size(), std::max(1U, std::thread::hardware_concurrency())) - 1;
    std::vector<std::jthread> threads;
    threads.reserve(helpers);
    for (std::size_t t = 0; t < helpers; ++t) {
        threads.emplace_back(work);
    }
    work();
    threads.clear();  // joins
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (failed[i]) {
            std::rethrow_exception(failed[i]);
        }
        all.append(std::move(parsed[i]));
    }
}

// Of x.cvd and x.cld, ClamAV loads only one: the .cld when its version is >= the .cvd's.
void drop_older_containers(std::vector<std::filesystem::path>& files) {
    std::vector<std::filesystem::path> kept;
    for (const auto& path : files) {
        const auto kind = container_of(path.filename().native());
        if (kind != container_kind::cvd && kind != container_kind::cld) {
            kept.push_back(path);
            continue;
        }
        auto other = path;
        other.replace_extension(kind == container_kind::cvd ? ".cld" : ".cvd");
        if (std::find(files.begin(), files.end(), other) == files.end()) {
            kept.push_back(path);
            continue;
        }
        const auto version = [](const std::filesystem::path& p) {
            return detail::parse_cvd_header(read_file(p), p.string()).version;
        };
        const std::uint32_t mine = version(path);
        const std::uint32_t theirs = version(other);
        if (kind == container_kind::cld ? mine >= theirs : mine > theirs) {
            kept.push_back(path);
        }
    }
    files = std::move(kept);
}

}  // namespace

bool is_database_file_name(std::string_view file_name) {
    return format_of(file_name).has_value() || container_of(file_name).has_value();
}

signature_set load_signatures(const std::filesystem::path& file_or_directory) {
    return load_signatures(file_or_directory, detail::container_keys{});
}

signature_set load_signatures(const std::filesystem::path& file_or_directory,
                              const detail::container_keys& keys) {
    namespace fs = std::filesystem;
    std::error_code error;
    const auto status = fs::status(file_or_directory, error);
    if (error) {
        throw load_error(file_or_directory.string() + ": " + error.message());
    }
    signature_set all;
    ignore_list ignores;
    if (fs::is_regular_file(status)) {
        load_into(file_or_directory, ignores, all, keys);
        return all;
    }
    if (!fs::is_directory(status)) {
        throw load_error(file_or_directory.string() + ": not a file or directory");
    }

    std::vector<fs::path> files;
    fs::directory_iterator it(file_or_directory, error);
    for (; !error && it != fs::directory_iterator(); it.increment(error)) {
        const auto& path = it->path();
        std::error_code type_error;
        const std::string name = path.filename().native();
        if (is_database_file_name(name) && it->is_regular_file(type_error)) {
            files.push_back(path);
        }
    }
    if (error) {
        throw load_error(file_or_directory.string() + ": " + error.message());
    }
    if (files.empty()) {
        throw load_error(file_or_directory.string() +
                         ": no supported database files (.ndb, .db, .hdb, .hsb, .fp, .sfp, "
                         ".ign, .ign2, .cvd, .cld, .cud)");
    }
    // ClamAV's cli_loaddbdir order: ignore lists, then the daily container, then the rest,
    // each in the order the directory lists them (readdir, as clamd reads it -- which
    // decides e.g. which of two names for one hash a scan reports).
    drop_older_containers(files);
    const auto daily = [](const fs::path& p) {
        const auto kind = container_of(p.filename().native());
        return p.stem() == "daily" && (kind == container_kind::cvd || kind == container_kind::cld);
    };
    const auto rest = std::stable_partition(files.begin(), files.end(), [](const fs::path& p) {
        return format_of(p.filename().native()) == db_format::ignore;
    });
    std::stable_partition(rest, files.end(), daily);
    // Containers (their .ign2 members change the ignore list for later files) and ignore
    // files load one by one; the plain files between them only read the list, so each run
    // of them is parsed on every core and appended in file order.
    std::vector<fs::path> plain_run;
    for (const auto& path : files) {
        const std::string name = path.filename().native();
        if (container_of(name) || format_of(name) == db_format::ignore) {
            parse_plain_files(plain_run, ignores, all);
            plain_run.clear();
            load_into(path, ignores, all, keys);
        } else {
            plain_run.push_back(path);
        }
    }
    parse_plain_files(plain_run, ignores, all);
    return all;
}

signature_set embedded_default_signatures() {
    // The 68-byte EICAR test string (eicar.org). Built from two halves so that this object
    // file does not itself carry the complete string.
    static constexpr std::string_view eicar_head = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR";
    static constexpr std::string_view eicar_tail = "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    // MD5 and size of ClamAV's clam.exe test file (Debian clamav-testfiles).
    static constexpr std::string_view clam_exe_md5 = "aa15bcf478d165efd2065190eb473bcb";
    static constexpr std::uint64_t clam_exe_size = 544;

    signature_set set;
    std::string eicar(eicar_head);
    eicar += eicar_tail;
    set.bodies.push_back(body_signature{"Eicar-Test-Signature", std::move(eicar)});

    hash_signature clam_exe;
    clam_exe.kind = hash_kind::md5;
    RINGSCAN_ASSERT(hex::decode(clam_exe_md5, clam_exe.digest));
    clam_exe.size = clam_exe_size;
    clam_exe.name = "Clamav.Test.File-6";
    set.hashes.push_back(std::move(clam_exe));
    return set;
}

}  // namespace ringscan::matcher
