#include "matcher/formats/ldb.h"
#include "matcher/formats/offset.h"

#include "base/hex.h"
#include "matcher/model/text.h"
#include "matcher/model/signature_set.h"

#include <algorithm>
#include <array>
#include <bit>
#include <limits>
#include <utility>

namespace ringscan::matcher::detail {
namespace {

// ClamAV 1.4.6 has 15 target types (CLI_MTARGETS); a higher Target: skips the line.
constexpr unsigned target_count = 15;
// Attributes beyond the tenth are cut off by ClamAV's tokenizer (ATTRIB_TOKENS).
constexpr std::size_t max_attributes = 10;
// Fields of an .ldb line ClamAV tokenizes (LDB_TOKENS + 1).
constexpr std::size_t max_line_fields = 68;
// `:` fields of a subsignature ClamAV looks at (4 + 1).
constexpr std::size_t max_subsig_fields = 5;
// ClamAV's byte-compare limits (CLI_BCOMP_MAX_HEX_BLEN, CLI_BCOMP_MAX_BIN_BLEN).
constexpr std::int64_t max_hex_length = 18;
constexpr std::int64_t max_binary_length = 8;

constexpr bool is_space(char c) { return is_c_space(c); }

/// cli_ldbtokenize(): like strtok on `delim`, except that from field `skip` on a '/' not
/// preceded by '\' toggles "inside a regex", where `delim` does not split. At most
/// `max_fields` fields; the last one ends at its delimiter (the rest is dropped).
std::vector<std::string_view> ldb_tokenize(std::string_view text, char delim,
                                           std::size_t max_fields, std::size_t skip) {
    std::vector<std::string_view> fields;
    bool in_regex = false;
    std::size_t pos = 0;
    while (fields.size() < max_fields) {
        const std::size_t start = pos;
        const std::size_t field_number = fields.size() + 1;
        while (pos < text.size()) {
            const char c = text[pos];
            if (!in_regex && c == delim) {
                break;
            }
            // The byte before a field's first byte is the (cleared) delimiter.
            const bool escaped = pos > start && text[pos - 1] == '\\';
            if (field_number > skip && !escaped && c == '/') {
                in_regex = !in_regex;
            }
            ++pos;
        }
        fields.push_back(text.substr(start, pos - start));
        if (pos >= text.size()) {
            break;
        }
        ++pos;  // the delimiter
    }
    return fields;
}

/// cli_strtokenize(): split on `delim`, at most `max_fields` fields, the last one ending at
/// its delimiter.
std::vector<std::string_view> str_tokenize(std::string_view text, char delim,
                                           std::size_t max_fields) {
    std::vector<std::string_view> fields;
    std::size_t pos = 0;
    while (fields.size() < max_fields) {
        const std::size_t end = text.find(delim, pos);
        fields.push_back(text.substr(pos, end == std::string_view::npos ? end : end - pos));
        if (end == std::string_view::npos) {
            break;
        }
        pos = end + 1;
    }
    return fields;
}

// ----------------------------------------------------------------------------------------
// Logical expressions: cli_ac_chklsig's decomposition, recorded as a tree.

class expression_parser {
public:
    explicit expression_parser(std::string_view text) : text_(text) {}

    tl::expected<logical_expression, std::string> run() {
        const auto top = parse(0, text_.size());
        if (!top) {
            return tl::unexpected(error_);
        }
        if (top->value == -1) {
            return tl::unexpected(std::string("subsignature id -1"));
        }
        logical_expression out;
        out.nodes = std::move(nodes_);
        out.root = top->node;
        out.highest_subsig = static_cast<std::uint32_t>(top->value);
        out.text = std::string(text_);
        return out;
    }

private:
    using node = logical_expression::node;
    using comparison = logical_expression::comparison;

    struct part {
        std::uint32_t node = 0;
        std::int32_t value = 0;  // ClamAV's parse-only result (max id, as a C int)
    };

    // Reads past a segment's end are allowed: ClamAV reads the NUL-terminated string.
    [[nodiscard]] char at(std::size_t i) const { return i < text_.size() ? text_[i] : '\0'; }

    std::nullopt_t fail(std::string message) {
        error_ = std::move(message);
        return std::nullopt;
    }

    static comparison comparison_of(char c) {
        switch (c) {
            case '=':
                return comparison::equal;
            case '<':
                return comparison::less;
            case '>':
                return comparison::greater;
            default:
                return comparison::none;
        }
    }

    std::uint32_t add(const node& n) {
        nodes_.push_back(n);
        return static_cast<std::uint32_t>(nodes_.size() - 1);
    }

    std::optional<part> parse(std::size_t begin, std::size_t end) {  // NOLINT(misc-no-recursion)
        const std::size_t len = end - begin;
        std::size_t depth = 0;
        std::size_t op_at = 0;
        std::size_t block_op_at = 0;
        std::size_t block_end = 0;
        std::size_t mod_at = 0;
        char op = 0;
        char block_op = 0;
        char mod = 0;
        char block_mod = 0;
        std::uint32_t block_count = 0;
        std::uint32_t block_distinct = 0;  // persists across blocks, as in ClamAV

        for (std::size_t i = 0; i < len; ++i) {
            const char c = text_[begin + i];
            switch (c) {
                case '(':
                    ++depth;
                    break;
                case ')':
                    if (depth == 0) {
                        return fail("syntax error: missing opening parenthesis");
                    }
                    --depth;
                    mod = c;
                    mod_at = i;
                    break;
                case '>':
                case '<':
                case '=':
                    mod = c;
                    mod_at = i;
                    break;
                case '&':
                case '|':
                    if (depth == 0) {
                        op = c;
                        op_at = i;
                    } else if (depth == 1) {
                        block_op = c;
                        block_op_at = i;
                    }
                    break;
                default:
                    break;
            }
            if (op != 0) {
                break;
            }
            if (block_op != 0 && depth == 0) {
                block_end = i;
                const char next = at(begin + i + 1);
                if (next == '>' || next == '<' || next == '=') {
                    block_mod = next;
                    const auto first = scan_unsigned(text_, begin + i + 2);
                    if (!first) {
                        return fail(std::string("syntax error: missing number after '") + next +
                                    "'");
                    }
                    block_count = first->value;
                    if (at(first->end) == ',') {
                        if (const auto second = scan_unsigned(text_, first->end + 1)) {
                            block_distinct = second->value;
                        }
                    }
                    for (i += 2; i + 1 < len && (is_digit(at(begin + i + 1)) ||
                                                 at(begin + i + 1) == ',');
                         ++i) {
                    }
                }
                if (begin + i + 1 == end) {
                    break;
                }
                block_mod = 0;
            }
        }
        if (depth != 0) {
            return fail("syntax error: missing closing parenthesis");
        }

        if (op == 0 && block_op == 0) {
            if (at(begin) == '(') {
                return parse(begin + 1, end - 1);
            }
            const auto id = scan_unsigned(text_, begin);
            if (!id) {
                return fail("can't parse '" + std::string(text_.substr(begin, len)) + "'");
            }
            node leaf;
            leaf.subsig = id->value;
            if (mod != 0) {
                const auto value = scan_unsigned(text_, begin + mod_at + 1);
                if (!value) {
                    return fail(std::string("syntax error: missing number after '") + mod + "'");
                }
                // A ')' as the last modifier character makes ClamAV's switch fail: never true.
                leaf.compare = mod == ')' ? comparison::never : comparison_of(mod);
                leaf.count = value->value;
            }
            return part{add(leaf), static_cast<std::int32_t>(id->value)};
        }

        std::size_t left_begin = begin;
        std::size_t right_end = end;
        if (op == 0) {
            op = block_op;
            op_at = block_op_at;
            ++left_begin;
            right_end = begin + block_end;
        }
        if (op_at == 0) {
            return fail("syntax error: missing left argument");
        }
        if (op_at + 1 == len) {
            return fail("syntax error: missing right argument");
        }
        const auto left = parse(left_begin, begin + op_at);
        if (!left) {
            return std::nullopt;
        }
        const auto right = parse(begin + op_at + 1, right_end);
        if (!right) {
            return std::nullopt;
        }
        if (right->node >= logical_expression::max_nodes) {  // children come first
            return fail("logical expression too long (more than " +
                        std::to_string(logical_expression::max_nodes) + " parts)");
        }
        node inner;
        inner.leaf = false;
        inner.op = op;
        inner.left = static_cast<std::uint16_t>(left->node);
        inner.right = static_cast<std::uint16_t>(right->node);
        if (block_mod != 0) {
            inner.compare = comparison_of(block_mod);
            inner.count = block_count;
            inner.distinct = block_distinct;
        }
        return part{add(inner), std::max(left->value, right->value)};
    }

    std::string_view text_;
    std::vector<node> nodes_;
    std::string error_;
};

// ----------------------------------------------------------------------------------------
// Target description block (lsigattribs + init_tdb).

// cli_ftcode() names of ClamAV 1.4.6 (`strings libclamav.so.12`, CL_TYPE_TEXT_ASCII checked
// with clamscan as it does not show up there).
constexpr std::array<std::string_view, 90> known_file_types = {
    "CL_TYPE_7Z",          "CL_TYPE_7ZSFX",        "CL_TYPE_ALZ",         "CL_TYPE_ANY",
    "CL_TYPE_APM",         "CL_TYPE_ARJ",          "CL_TYPE_ARJSFX",      "CL_TYPE_AUTOIT",
    "CL_TYPE_BINARY_DATA", "CL_TYPE_BINHEX",       "CL_TYPE_BZ",          "CL_TYPE_CABSFX",
    "CL_TYPE_CPIO_CRC",    "CL_TYPE_CPIO_NEWC",    "CL_TYPE_CPIO_ODC",    "CL_TYPE_CPIO_OLD",
    "CL_TYPE_CRYPTFF",     "CL_TYPE_DMG",          "CL_TYPE_EGG",         "CL_TYPE_EGGSFX",
    "CL_TYPE_ELF",         "CL_TYPE_GIF",          "CL_TYPE_GPT",         "CL_TYPE_GRAPHICS",
    "CL_TYPE_GZ",          "CL_TYPE_HTML",         "CL_TYPE_HTML_UTF16",  "CL_TYPE_HWP3",
    "CL_TYPE_HWP5",        "CL_TYPE_HWPOLE2",      "CL_TYPE_IGNORED",     "CL_TYPE_INTERNAL",
    "CL_TYPE_ISHIELD_MSI", "CL_TYPE_ISO9660",      "CL_TYPE_JAVA",        "CL_TYPE_JPEG",
    "CL_TYPE_LHA_LZH",     "CL_TYPE_LNK",          "CL_TYPE_MACHO",       "CL_TYPE_MACHO_UNIBIN",
    "CL_TYPE_MAIL",        "CL_TYPE_MBR",          "CL_TYPE_MHTML",       "CL_TYPE_MSCAB",
    "CL_TYPE_MSCHM",       "CL_TYPE_MSEXE",        "CL_TYPE_MSOLE2",      "CL_TYPE_MSPPT",
    "CL_TYPE_MSSZDD",      "CL_TYPE_MSWORD",       "CL_TYPE_MSXL",        "CL_TYPE_NULSFT",
    "CL_TYPE_OLD_TAR",     "CL_TYPE_ONENOTE",      "CL_TYPE_OOXML_HWP",   "CL_TYPE_OOXML_PPT",
    "CL_TYPE_OOXML_WORD",  "CL_TYPE_OOXML_XL",     "CL_TYPE_PART_ANY",    "CL_TYPE_PART_HFSPLUS",
    "CL_TYPE_PDF",         "CL_TYPE_PNG",          "CL_TYPE_POSIX_TAR",   "CL_TYPE_PS",
    "CL_TYPE_PYTHON_COMPILED", "CL_TYPE_RAR",      "CL_TYPE_RARSFX",      "CL_TYPE_RIFF",
    "CL_TYPE_RTF",         "CL_TYPE_SCRENC",       "CL_TYPE_SCRIPT",      "CL_TYPE_SFX",
    "CL_TYPE_SIS",         "CL_TYPE_SWF",          "CL_TYPE_TEXT_ASCII",  "CL_TYPE_TEXT_UTF16BE",
    "CL_TYPE_TEXT_UTF16LE", "CL_TYPE_TEXT_UTF8",   "CL_TYPE_TIFF",        "CL_TYPE_TNEF",
    "CL_TYPE_UDF",         "CL_TYPE_UUENCODED",    "CL_TYPE_XAR",         "CL_TYPE_XDP",
    "CL_TYPE_XML_HWP",     "CL_TYPE_XML_WORD",     "CL_TYPE_XML_XL",      "CL_TYPE_XZ",
    "CL_TYPE_ZIP",         "CL_TYPE_ZIPSFX",
};

enum class tdb_status : std::uint8_t { ok, skip, error };
struct tdb_result {
    tdb_status status = tdb_status::ok;
    std::string message;
};

std::uint32_t atoi32(std::string_view digits) {
    return static_cast<std::uint32_t>(c_atoi(digits));
}

tdb_result parse_target_description(std::string_view text, target_description& out) {
    const auto error = [](std::string m) { return tdb_result{tdb_status::error, std::move(m)}; };
    const auto skip = [](std::string m) { return tdb_result{tdb_status::skip, std::move(m)}; };
    bool have_target = false;
    bool have_new_attribute = false;
    const auto attributes = str_tokenize(text, ',', max_attributes);
    for (std::size_t i = 0; i < attributes.size(); ++i) {
        const std::string_view attribute = attributes[i];
        const auto colon = attribute.find(':');
        if (colon == std::string_view::npos) {
            return error("incorrect format of attribute '" + std::string(attribute) + "'");
        }
        const std::string_view key = attribute.substr(0, colon);
        const std::string_view value = attribute.substr(colon + 1);
        const auto range = [&](std::optional<value_range>& slot) -> std::optional<tdb_result> {
            const auto dash = value.find('-');
            if (dash == std::string_view::npos) {
                return error("incorrect parameters in '" + std::string(key) + "'");
            }
            const auto low = value.substr(0, dash);
            const auto high = value.substr(dash + 1);
            if (!all_digits(low) || !all_digits(high)) {
                return error("invalid argument for " + std::string(key));
            }
            slot = value_range{atoi32(low), atoi32(high)};
            return std::nullopt;
        };
        std::optional<tdb_result> problem;
        if (key == "Engine") {
            if (i != 0) {
                return error("the Engine attribute must be on the first position");
            }
            problem = range(out.engine);
        } else if (key == "Target") {
            if (!all_digits(value)) {
                return error("invalid argument for Target");
            }
            out.target = atoi32(value);
            have_target = true;
        } else {
            have_new_attribute = true;
            if (key == "FileSize") {
                problem = range(out.file_size);
            } else if (key == "EntryPoint") {
                problem = range(out.entry_point);
            } else if (key == "NumberOfSections") {
                problem = range(out.number_of_sections);
            } else if (key == "IconGroup1") {
                out.icon_group1 = std::string(value);
            } else if (key == "IconGroup2") {
                out.icon_group2 = std::string(value);
            } else if (key == "Container" || key == "HandlerType") {
                if (!is_known_file_type(value)) {
                    return skip("unknown file type '" + std::string(value) + "' in " +
                                std::string(key));
                }
                (key == "Container" ? out.container : out.handler_type) = std::string(value);
            } else if (key == "Intermediates") {
                out.intermediates.clear();
                for (const auto type : str_tokenize(value, '>', 16)) {
                    if (!is_known_file_type(type)) {
                        return skip("unknown file type '" + std::string(type) +
                                    "' in Intermediates");
                    }
                    out.intermediates.emplace_back(type);
                }
            } else {
                return skip("unknown attribute '" + std::string(key) + "'");
            }
        }
        if (problem) {
            return *problem;
        }
    }
    if (have_new_attribute && (!out.engine || out.engine->low < 51)) {
        return error("signatures using attributes other than Target need Engine:51 or higher");
    }
    if (out.engine) {
        if (out.engine->low > functionality_level || out.engine->high < functionality_level) {
            return skip("Engine range " + std::to_string(out.engine->low) + "-" +
                        std::to_string(out.engine->high) + " excludes functionality level " +
                        std::to_string(functionality_level));
        }
    }
    if (!have_target) {
        return error("no Target in the target description block");
    }
    if (out.target >= target_count) {
        return skip("unsupported target type " + std::to_string(out.target));
    }
    if ((out.icon_group1 || out.icon_group2) && out.target != 1) {
        return error("IconGroup is only supported with Target:1 (PE)");
    }
    if ((out.entry_point || out.number_of_sections) && out.target != 1 && out.target != 6 &&
        out.target != 9) {
        return error("EntryPoint/NumberOfSections need Target 1 (PE), 6 (ELF) or 9 (Mach-O)");
    }
    return {};
}

// ----------------------------------------------------------------------------------------
// Subsignatures.

struct subsig_result {
    std::optional<subsignature> value;
    std::optional<logical_skip> skipped;
    std::string error;  // non-empty: malformed
};

subsig_result subsig_error(std::string m) {
    subsig_result r;
    r.error = std::move(m);
    return r;
}

subsig_result parse_macro(std::string_view text) {
    if (text.back() != '$') {
        return subsig_error("macro subsignature is missing the '$' terminator");
    }
    // sscanf(text, "${%u-%u}%u$") must convert three numbers.
    macro_subsignature macro;
    const auto bad = [] { return subsig_error("invalid macro subsignature format"); };
    if (text.substr(0, 2) != "${") {
        return bad();
    }
    const auto min = scan_unsigned(text, 2);
    if (!min || min->end >= text.size() || text[min->end] != '-') {
        return bad();
    }
    const auto max = scan_unsigned(text, min->end + 1);
    if (!max || max->end >= text.size() || text[max->end] != '}') {
        return bad();
    }
    const auto group = scan_unsigned(text, max->end + 1);
    if (!group) {
        return bad();
    }
    if (group->value >= 32) {
        return subsig_error("only 32 macro groups are supported");
    }
    macro.min = min->value;
    macro.max = max->value;
    macro.group = group->value;
    subsig_result r;
    r.value = macro;
    return r;
}

subsig_result parse_pcre(std::string_view text, unsigned target, std::size_t index) {
    const auto fields = ldb_tokenize(text, ':', max_subsig_fields, 0);
    std::string_view offset_text = "*";
    std::string_view sig = fields[0];
    if (fields.size() == 2) {
        offset_text = fields[0];
        sig = fields[1];
    }
    const auto first = sig.find('/');
    const auto last = sig.rfind('/');
    if (first == std::string_view::npos || first == last) {
        return subsig_error("PCRE subsignature has mismatched '/' delimiters");
    }
    if (text.front() == '/') {
        return subsig_error("PCRE subsignature must start with a logical trigger");
    }
    pcre_subsignature pcre;
    const std::string_view trigger = sig.substr(0, first);
    pcre.pattern = std::string(sig.substr(first + 1, last - first - 1));
    pcre.flags_text = std::string(sig.substr(last + 1));
    if (trigger.empty() || pcre.pattern.empty()) {
        return subsig_error("PCRE trigger or pattern is empty");
    }
    auto parsed_trigger = parse_logical_expression(trigger);
    if (!parsed_trigger) {
        return subsig_error("PCRE /" + pcre.pattern + "/ has no valid logical trigger: " +
                            parsed_trigger.error());
    }
    if (parsed_trigger->highest_subsig >= index) {
        return subsig_error("PCRE subsignature " + std::to_string(index) +
                            " has a trigger referring to itself or a later subsignature");
    }
    pcre.trigger = std::move(*parsed_trigger);
    auto offset = parse_body_offset(offset_text, target);
    if (!offset) {
        return subsig_error("PCRE offset '" + std::string(offset_text) + "': " + offset.error());
    }
    pcre.offset = *offset;
    pcre.offset_text = std::string(offset_text);
    for (const char f : pcre.flags_text) {
        auto& fl = pcre.flags;
        switch (f) {
            case 'g': fl.global = true; break;
            case 'r': fl.rolling = true; break;
            case 'e': fl.encompass = true; break;
            case 'i': fl.caseless = true; break;
            case 's': fl.dotall = true; break;
            case 'm': fl.multiline = true; break;
            case 'x': fl.extended = true; break;
            case 'A': fl.anchored = true; break;
            case 'E': fl.dollar_end_only = true; break;
            case 'U': fl.ungreedy = true; break;
            default:
                return subsig_error(std::string("unknown PCRE flag '") + f + "'");
        }
    }
    // ClamAV compiles every regex when the engine is built; a failure refuses the database.
    const std::uint32_t options = pcre2_compile_options(pcre.flags);
    int code = 0;
    PCRE2_SIZE at = 0;
    pcre2_code* compiled =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre.pattern.data()), pcre.pattern.size(),
                      options, &code, &at, nullptr);
    if (compiled == nullptr) {
        std::array<PCRE2_UCHAR, 256> message{};
        pcre2_get_error_message(code, message.data(), message.size());
        return subsig_error("PCRE /" + pcre.pattern + "/ does not compile at offset " +
                            std::to_string(at) + ": " +
                            reinterpret_cast<const char*>(message.data()));
    }
    pcre2_code_free(compiled);
    pcre.validated = true;
    subsig_result r;
    r.value = std::move(pcre);
    return r;
}

subsig_result parse_byte_compare(std::string_view text) {
    using bc = byte_compare_subsignature;
    bc compare;
    const auto reference = scan_long(text, 0, 10);
    if (reference.end >= text.size() || text[reference.end] != '(') {
        return subsig_error("byte compare: invalid reference subsignature id");
    }
    compare.reference = static_cast<std::uint32_t>(static_cast<std::uint16_t>(reference.value));
    const auto open = reference.end;
    const auto close = text.find(')', open);
    if (close == std::string_view::npos) {
        return subsig_error("byte compare: ending parenthesis not found");
    }
    const std::string_view params = text.substr(open + 1, close - open - 1);
    const auto fields = str_tokenize(params, '#', 4);
    if (fields.size() != 3) {
        return subsig_error("byte compare: 3 '#' separated parameters expected");
    }
    // Each numeric field must be consumed to its end (ClamAV: endptr + 1 == next field).
    const auto whole = [](std::string_view field, std::size_t from, int base,
                          std::int64_t& value) {
        const auto n = scan_long(field, from, base);
        value = n.value;
        return n.end == field.size() || (n.end == from && from == field.size());
    };
    const std::string_view shift = fields[0];
    if (!shift.empty() && shift[0] == '<') {
        if (shift.size() < 2 || shift[1] != '<' || !whole(shift, 2, 0, compare.offset)) {
            return subsig_error("byte compare: invalid offset '" + std::string(shift) + "'");
        }
        compare.offset = -compare.offset;
    } else if (!shift.empty() && shift[0] == '>') {
        if (shift.size() < 2 || shift[1] != '>' || !whole(shift, 2, 0, compare.offset)) {
            return subsig_error("byte compare: invalid offset '" + std::string(shift) + "'");
        }
    } else if (!shift.empty() && shift[0] != '0') {
        return subsig_error("byte compare: invalid offset '" + std::string(shift) + "'");
    }

    const std::string_view options = fields[1];
    std::size_t pos = 0;
    for (; pos < options.size() && !is_digit(options[pos]); ++pos) {
        const bool base_taken = compare.number_base != bc::base::none;
        bool ok = true;
        switch (options[pos]) {
            case 'h':
                ok = !base_taken || compare.number_base == bc::base::hex;
                compare.number_base = bc::base::hex;
                break;
            case 'd':
                ok = (!base_taken || compare.number_base == bc::base::decimal) &&
                     compare.byte_order != bc::endian::little;
                compare.number_base = bc::base::decimal;
                compare.byte_order = bc::endian::big;
                break;
            case 'i':
                ok = !base_taken || compare.number_base == bc::base::binary;
                compare.number_base = bc::base::binary;
                break;
            case 'a':
                ok = !base_taken || compare.number_base == bc::base::automatic;
                compare.number_base = bc::base::automatic;
                break;
            case 'l':
                ok = compare.byte_order != bc::endian::big;
                compare.byte_order = bc::endian::little;
                break;
            case 'b':
                ok = compare.byte_order != bc::endian::little;
                compare.byte_order = bc::endian::big;
                break;
            case 'e':
                compare.exact = true;
                break;
            default:
                ok = false;
                break;
        }
        if (!ok) {
            return subsig_error("byte compare: invalid option parameter '" +
                                std::string(options) + "'");
        }
    }
    if (pos == options.size()) {
        return subsig_error("byte compare: missing byte length");
    }
    std::int64_t length = 0;
    if (!whole(options, pos, 0, length)) {
        return subsig_error("byte compare: invalid byte length '" + std::string(options) + "'");
    }
    if (compare.number_base == bc::base::binary &&
        (length <= 0 || length > max_binary_length || max_binary_length % length != 0)) {
        return subsig_error("byte compare: binary length must be 1, 2, 4 or 8");
    }
    if (compare.number_base == bc::base::hex && length > max_hex_length) {
        return subsig_error("byte compare: hex length too long");
    }
    compare.length = static_cast<std::uint32_t>(length);

    const std::string_view comparisons = fields[2];
    if (std::count(comparisons.begin(), comparisons.end(), ',') > 1) {
        return subsig_error("byte compare: too many commas in the comparison");
    }
    for (const auto item : str_tokenize(comparisons, ',', 2)) {
        bc::comparison c;
        if (item.empty() || (item[0] != '<' && item[0] != '>' && item[0] != '=')) {
            return subsig_error("byte compare: comparison symbol must be <, > or =");
        }
        c.symbol = item[0];
        if (!whole(item, 1, 0, c.value)) {
            return subsig_error("byte compare: invalid comparison value '" + std::string(item) +
                                "'");
        }
        compare.comparisons.push_back(c);
    }
    subsig_result r;
    r.value = compare;
    return r;
}

subsig_result parse_fuzzy_image(std::string_view text) {
    // fuzzy_img#<16 hex digits>[#<hamming distance>]
    const auto fields = str_tokenize(text, '#', 4);
    const auto bad = [&] {
        return subsig_error("invalid fuzzy image subsignature '" + std::string(text) + "'");
    };
    if (fields.size() < 2 || fields.size() > 3 || fields[1].size() != 16) {
        return bad();
    }
    for (const char c : fields[1]) {
        if (hex::digit_value(c) < 0) {
            return bad();
        }
    }
    if (fields.size() == 3 && (fields[2].empty() || !all_digits(fields[2]))) {
        return bad();
    }
    // 1.4.6: "Non-zero hamming distances for image fuzzy hashes are not supported".
    if (fields.size() == 3 && digits_value(fields[2]) != 0) {
        return subsig_error("non-zero hamming distances for image fuzzy hashes are not supported");
    }
    subsig_result r;
    r.value = fuzzy_image_subsignature{std::string(text)};
    return r;
}

subsig_result parse_content(std::string_view text, unsigned target) {
    const auto fields = ldb_tokenize(text, ':', max_subsig_fields, 0);
    hex_subsignature hex;
    std::optional<std::string_view> modifiers;
    if (fields.size() % 2 == 0) {
        hex.offset_text = std::string(fields[0]);
    }
    if (fields.size() == 3) {
        modifiers = fields[2];
    } else if (fields.size() == 4) {
        modifiers = fields[3];
    }
    if (modifiers) {
        for (const char m : *modifiers) {
            switch (m) {
                case 'i': hex.nocase = true; break;
                case 'f': hex.fullword = true; break;
                case 'w': hex.wide = true; break;
                case 'a': hex.ascii = true; break;
                default:
                    return subsig_error(std::string("invalid subsignature modifier '") + m + "'");
            }
        }
    }
    hex.hex = std::string(fields.size() % 2 != 0 ? fields[0] : fields[1]);
    auto offset = parse_body_offset(hex.offset_text, target);
    if (!offset) {
        return subsig_error("offset '" + hex.offset_text + "': " + offset.error());
    }
    hex.offset = *offset;
    auto variants = hex_variants(hex);
    // cli_ac_addsig: "Signature ... is too short" (one byte, e.g. `61`).
    if (variants && std::any_of(variants->begin(), variants->end(), [](const hex_variant& v) {
            return v.translation.max_length && *v.translation.max_length < 2;
        })) {
        return subsig_error("signature is too short");
    }
    if (!variants) {
        if (variants.error().malformed) {
            return subsig_error(variants.error().reason);
        }
        subsig_result r;
        r.skipped = logical_skip{logical_skip::why::not_supported, variants.error().reason};
        return r;
    }
    subsig_result r;
    r.value = std::move(hex);
    return r;
}

subsig_result parse_subsignature(std::string_view text, unsigned target, std::size_t index) {
    if (text.empty()) {
        return subsig_error("empty subsignature");
    }
    if (text.front() == '$') {
        return parse_macro(text);
    }
    if (text.find('/') != std::string_view::npos) {
        return parse_pcre(text, target, index);
    }
    const auto hash = text.find('#');
    if (text.find('(') != std::string_view::npos && hash != std::string_view::npos &&
        text.rfind('#') != hash) {
        return parse_byte_compare(text);
    }
    if (text.substr(0, 10) == "fuzzy_img#") {
        return parse_fuzzy_image(text);
    }
    return parse_content(text, target);
}

void fold_case(std::vector<hex_token>& tokens) {  // NOLINT(misc-no-recursion)
    for (auto& t : tokens) {
        if (t.what == hex_token::kind::byte_set) {
            const int b = t.single_byte();
            if (b >= 'a' && b <= 'z') {
                const unsigned other = static_cast<unsigned>(b) - 32U;
                t.bytes[other >> 6U] |= std::uint64_t{1} << (other & 63U);
            } else if (b >= 'A' && b <= 'Z') {
                const unsigned other = static_cast<unsigned>(b) + 32U;
                t.bytes[other >> 6U] |= std::uint64_t{1} << (other & 63U);
            }
        } else if (t.what == hex_token::kind::alternatives) {
            for (auto& choice : t.choices) {
                fold_case(choice);
            }
        }
    }
}

}  // namespace

bool is_known_file_type(std::string_view name) {
    return std::find(known_file_types.begin(), known_file_types.end(), name) !=
           known_file_types.end();
}

tl::expected<logical_expression, std::string> parse_logical_expression(std::string_view text) {
    return expression_parser(text).run();
}


tl::expected<std::vector<std::string>, std::string> modified_hex_texts(
    const hex_subsignature& sub) {
    std::string text = sub.hex;
    if (sub.fullword) {
        text = "(W)" + text + "(W)";
        for (std::size_t open = text.find('['); open != std::string::npos;
             open = text.find('[', open)) {
            text[open] = '{';
            const auto close = text.find(']', open);
            if (close == std::string::npos) {
                return tl::unexpected(std::string("unmatched '[' with ::f"));
            }
            text[close] = '}';
        }
    }
    std::vector<std::string> out;
    if (sub.wide) {
        std::string wide;
        const std::size_t n = text.size();
        for (std::size_t i = 0; i < n; ++i) {
            const char c = text[i];
            if (c == '*' || c == '|' || c == ')') {
                wide += c;
            } else if (c == '[') {
                wide += '{';
                for (++i; i < n && text[i] != ']'; ++i) {
                    wide += text[i];
                }
                wide += '}';
            } else if (c == '{') {
                for (; i < n && text[i] != '}'; ++i) {
                    wide += text[i];
                }
                wide += '}';
            } else if (c == '!' || c == '(') {
                if (c == '!') {
                    wide += '!';
                    ++i;
                }
                if (i < n) {
                    wide += text[i];
                }
                if (i + 2 >= n) {
                    return tl::unexpected(std::string("truncated group with ::w"));
                }
                if (text[i + 1] == 'B' || text[i + 1] == 'L' || text[i + 1] == 'W') {
                    wide += text[i + 1];
                    i += 2;
                    if (text[i] != ')') {
                        return tl::unexpected(std::string("malformed boundary with ::w"));
                    }
                    wide += ')';
                }
            } else {
                // One byte element: two characters, then the 00 of UTF-16LE. A lone last
                // character ends ClamAV's C string (the pair's NUL), dropping the 00.
                wide += c;
                if (i + 1 < n) {
                    wide += text[i + 1];
                    wide += "00";
                }
                ++i;
            }
        }
        out.push_back(std::move(wide));
        if (!sub.ascii) {
            return out;
        }
    }
    out.push_back(std::move(text));
    return out;
}


tl::expected<std::vector<hex_variant>, hex_problem> hex_variants(const hex_subsignature& sub) {
    // ::wf checks wide boundaries itself instead of the (W) bytes of the text form.
    hex_subsignature plain = sub;
    const bool wide_fullword = sub.wide && sub.fullword;
    if (wide_fullword) {
        plain.fullword = false;
    }
    auto texts = modified_hex_texts(plain);
    if (!texts) {
        return tl::unexpected(hex_problem{true, texts.error()});
    }
    if (wide_fullword) {
        // Validate the rewrite ClamAV itself makes (it can fail on '[').
        if (auto checked = modified_hex_texts(sub); !checked) {
            return tl::unexpected(hex_problem{true, checked.error()});
        }
        if (texts->size() == 2) {  // the ascii variant keeps its ordinary (W) boundaries
            hex_subsignature ascii = sub;
            ascii.wide = false;
            auto ascii_text = modified_hex_texts(ascii);
            if (!ascii_text) {
                return tl::unexpected(hex_problem{true, ascii_text.error()});
            }
            (*texts)[1] = std::move(ascii_text->front());
        }
    }
    std::vector<hex_variant> out;
    for (auto& text : *texts) {
        auto translation = translate_hex(text);
        if (!translation) {
            return tl::unexpected(translation.error());
        }
        if (sub.nocase) {
            fold_case(translation->tokens);
        }
        const bool wide_boundaries = wide_fullword && out.empty();
        out.push_back(
            hex_variant{std::move(text), std::move(*translation), sub.nocase, wide_boundaries});
    }
    return out;
}

logical_parse_result parse_logical_signature(std::string_view line) {
    const auto error = [](std::string m) { return logical_error{std::move(m)}; };
    const auto fields = ldb_tokenize(line, ';', max_line_fields, 2);
    if (fields.size() < 4) {
        return error("invalid or unsupported ldb signature format (fewer than 4 fields)");
    }
    logical_signature sig;
    sig.name = std::string(fields[0]);
    if (const auto clam = sig.name.find(" (Clam)"); clam != std::string::npos) {
        sig.name.erase(clam);
    }

    auto expression = parse_logical_expression(fields[2]);
    if (!expression) {
        return error("invalid logical expression '" + std::string(fields[2]) +
                     "': " + expression.error());
    }
    const auto highest = static_cast<std::int32_t>(expression->highest_subsig);
    const std::size_t subsig_fields = fields.size() - 3;
    if (static_cast<std::int64_t>(highest) + 1 != static_cast<std::int64_t>(subsig_fields)) {
        return error("the number of subsignatures (" + std::to_string(subsig_fields) +
                     ") doesn't match the IDs in the logical expression (" +
                     std::to_string(static_cast<std::int64_t>(highest) + 1) + ")");
    }
    if (subsig_fields > max_subsignatures) {
        return error("more than 64 subsignatures");
    }
    // An id that wrapped to a negative C int passes ClamAV's count check; it would read
    // outside its count table at scan time. Refuse to guess.
    for (const auto& n : expression->nodes) {
        if (n.leaf && n.subsig >= subsig_fields) {
            return logical_skip{logical_skip::why::not_supported,
                                "subsignature id " + std::to_string(n.subsig) + " out of range"};
        }
    }
    sig.expression = std::move(*expression);

    const tdb_result tdb = parse_target_description(fields[1], sig.target);
    if (tdb.status == tdb_status::error) {
        return error("target description block: " + tdb.message);
    }
    if (tdb.status == tdb_status::skip) {
        return logical_skip{logical_skip::why::clamav_skips, tdb.message};
    }

    if (sig.name.empty()) {
        return error("empty signature name");
    }
    std::optional<logical_skip> unsupported;
    for (std::size_t i = 0; i < subsig_fields; ++i) {
        auto sub = parse_subsignature(fields[3 + i], sig.target.target, i);
        if (!sub.error.empty()) {
            return error("subsignature " + std::to_string(i) + ": " + sub.error);
        }
        if (sub.skipped) {
            if (!unsupported) {
                unsupported = std::move(*sub.skipped);
                unsupported->message =
                    "subsignature " + std::to_string(i) + ": " + unsupported->message;
            }
            continue;
        }
        sig.subsignatures.push_back(std::move(*sub.value));
    }
    if (unsupported) {
        return *unsupported;
    }
    return sig;
}

std::uint32_t pcre2_compile_options(const pcre_flags& flags) {
    std::uint32_t options = 0;
    options |= flags.caseless ? PCRE2_CASELESS : 0U;
    options |= flags.dotall ? PCRE2_DOTALL : 0U;
    options |= flags.multiline ? PCRE2_MULTILINE : 0U;
    options |= flags.extended ? PCRE2_EXTENDED : 0U;
    options |= flags.anchored ? PCRE2_ANCHORED : 0U;
    options |= flags.dollar_end_only ? PCRE2_DOLLAR_ENDONLY : 0U;
    options |= flags.ungreedy ? PCRE2_UNGREEDY : 0U;
    return options;
}

}  // namespace ringscan::matcher::detail
