#include "matcher/formats/yara.h"

#include "base/hex.h"
#include "matcher/formats/ldb.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

// ---------------------------------------------------------------------------------------
// Lexer (the token set of ClamAV's YARA 3.1 lexer)

enum class token_kind : std::uint8_t {
    end,
    identifier,  ///< also keywords
    string_id,   ///< $a (text "$a"), or "$" for the anonymous string
    string_wildcard,  ///< $a* (text "$a")
    string_count,     ///< #a (text "$a")
    string_offset,    ///< @a (text "$a")
    number,
    text,   ///< "..." with escapes resolved
    hex,    ///< { ... } including the braces
    regex,  ///< /.../ body, `\/` resolved
    punct,
};

struct token {
    token_kind kind = token_kind::end;
    std::string text;
    std::int64_t number = 0;
};

constexpr std::array<std::string_view, 34> keywords = {
    "rule",     "private",  "global", "meta",     "strings", "condition", "ascii",
    "wide",     "nocase",   "fullword", "at",     "filesize", "entrypoint", "all",
    "any",      "in",       "of",     "for",      "them",    "int8",      "int16",
    "int32",    "uint8",    "uint16", "uint32",   "matches", "contains",  "import",
    "include",  "true",     "false",  "and",      "or",      "not"};

bool is_keyword(std::string_view word) {
    return std::find(keywords.begin(), keywords.end(), word) != keywords.end();
}

bool is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
bool is_hex_digit(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return c - 'A' + 10;
}

class lexer {
public:
    lexer(std::string_view text, std::vector<std::string>& warnings)
        : text_(text), warnings_(warnings) {}

    token next() {
        skip_blanks_and_comments();
        token t;
        if (pos_ >= text_.size() || stopped_) {
            return t;
        }
        const char c = text_[pos_];
        if (c == '"') {
            return lex_text();
        }
        if (c == '/') {
            return lex_regex();
        }
        if (c == '{') {
            if (auto hex = lex_hex()) {
                return *hex;
            }
        }
        if (c == '$' || c == '#' || c == '@') {
            ++pos_;
            const std::size_t begin = pos_;
            while (pos_ < text_.size() && is_ident_char(text_[pos_])) {
                ++pos_;
            }
            t.text = "$" + std::string(text_.substr(begin, pos_ - begin));
            t.kind = c == '#' ? token_kind::string_count
                     : c == '@' ? token_kind::string_offset
                                : token_kind::string_id;
            if (c == '$' && pos_ < text_.size() && text_[pos_] == '*') {
                ++pos_;
                t.kind = token_kind::string_wildcard;
            }
            return t;
        }
        if (c >= '0' && c <= '9') {
            return lex_number();
        }
        if (is_ident_start(c)) {
            const std::size_t begin = pos_;
            while (pos_ < text_.size() && is_ident_char(text_[pos_])) {
                ++pos_;
            }
            t.kind = token_kind::identifier;
            t.text = std::string(text_.substr(begin, pos_ - begin));
            return t;
        }
        static constexpr std::array<std::string_view, 7> two_char = {"..", "<=", ">=", "==",
                                                                     "!=", "<<", ">>"};
        for (const auto op : two_char) {
            if (text_.substr(pos_, 2) == op) {
                pos_ += 2;
                t.kind = token_kind::punct;
                t.text = std::string(op);
                return t;
            }
        }
        ++pos_;
        t.kind = token_kind::punct;
        t.text = std::string(1, c);
        return t;
    }

private:
    void skip_blanks_and_comments() {
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
                ++pos_;
            } else if (text_.substr(pos_, 2) == "//") {
                while (pos_ < text_.size() && text_[pos_] != '\n') {
                    ++pos_;
                }
            } else if (text_.substr(pos_, 2) == "/*") {
                const auto close = text_.find("*/", pos_ + 2);
                pos_ = close == std::string_view::npos ? text_.size() : close + 2;
            } else {
                return;
            }
        }
    }

    // An unterminated string or regex ends the lexer's input (yyterminate).
    token stop(std::string message) {
        warnings_.push_back(std::move(message));
        stopped_ = true;
        return token{};
    }

    token lex_text() {
        token t;
        t.kind = token_kind::text;
        ++pos_;
        while (true) {
            if (pos_ >= text_.size() || text_[pos_] == '\n') {
                return stop("unterminated string");
            }
            const char c = text_[pos_];
            if (c == '"') {
                ++pos_;
                return t;
            }
            if (c != '\\') {
                t.text += c;
                ++pos_;
                continue;
            }
            const char e = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
            if (e == '"' || e == '\\') {
                t.text += e;
                pos_ += 2;
            } else if (e == 't') {
                t.text += '\t';
                pos_ += 2;
            } else if (e == 'n') {
                t.text += '\n';
                pos_ += 2;
            } else if (e == 'x' && pos_ + 3 < text_.size() && is_hex_digit(text_[pos_ + 2]) &&
                       is_hex_digit(text_[pos_ + 3])) {
                t.text += static_cast<char>(hex_value(text_[pos_ + 2]) * 16 +
                                            hex_value(text_[pos_ + 3]));
                pos_ += 4;
            } else {
                // clamscan: "ab\qcd" loads as "abcd", "ab\x4" as "ab4".
                warnings_.emplace_back("illegal escape sequence");
                pos_ += e == '\0' || e == '\n' ? 1 : 2;
            }
        }
    }

    token lex_regex() {
        token t;
        t.kind = token_kind::regex;
        ++pos_;
        while (true) {
            if (pos_ >= text_.size() || text_[pos_] == '\n') {
                return stop("unterminated regular expression");
            }
            const char c = text_[pos_];
            if (c == '/') {
                ++pos_;
                break;
            }
            if (c == '\\' && pos_ + 1 < text_.size() && text_[pos_ + 1] != '\n') {
                if (text_[pos_ + 1] != '/') {
                    t.text += '\\';
                }
                t.text += text_[pos_ + 1];
                pos_ += 2;
                continue;
            }
            t.text += c;
            ++pos_;
        }
        // The `i` and `s` flags are lexed; ClamAV does not pass them to PCRE.
        while (pos_ < text_.size() && (text_[pos_] == 'i' || text_[pos_] == 's')) {
            ++pos_;
        }
        return t;
    }

    // `{` followed by at least one hex-string character and `}`; comments are not allowed
    // (clamscan: `{ 41 42 // c` is a syntax error).
    std::optional<token> lex_hex() {
        std::size_t at = pos_ + 1;
        const auto allowed = [](char c) {
            return is_hex_digit(c) || c == '?' || c == '-' || c == '|' || c == '[' ||
                   c == ']' || c == '(' || c == ')' || c == ' ' || c == '\t' || c == '\r' ||
                   c == '\n';
        };
        while (at < text_.size() && allowed(text_[at])) {
            ++at;
        }
        if (at == pos_ + 1 || at >= text_.size() || text_[at] != '}') {
            return std::nullopt;
        }
        token t;
        t.kind = token_kind::hex;
        t.text = std::string(text_.substr(pos_, at + 1 - pos_));
        pos_ = at + 1;
        return t;
    }

    token lex_number() {
        token t;
        t.kind = token_kind::number;
        std::uint64_t value = 0;
        if (text_.substr(pos_, 2) == "0x" || text_.substr(pos_, 2) == "0X") {
            pos_ += 2;
            while (pos_ < text_.size() && is_hex_digit(text_[pos_])) {
                value = value * 16 + static_cast<std::uint64_t>(hex_value(text_[pos_]));
                ++pos_;
            }
        } else {
            while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
                value = value * 10 + static_cast<std::uint64_t>(text_[pos_] - '0');
                ++pos_;
            }
            if (text_.substr(pos_, 2) == "KB") {
                value *= 1024;
                pos_ += 2;
            } else if (text_.substr(pos_, 2) == "MB") {
                value *= 1024 * 1024;
                pos_ += 2;
            }
        }
        t.number = static_cast<std::int64_t>(value);
        return t;
    }

    std::string_view text_;
    std::vector<std::string>& warnings_;
    std::size_t pos_ = 0;
    bool stopped_ = false;
};

// ---------------------------------------------------------------------------------------
// Rules and conditions

struct yara_string {
    enum class type : std::uint8_t { text, hex, regex };
    std::string identifier;
    type kind = type::text;
    std::string value;  ///< bytes, hex token text, or regex body
    bool nocase = false;
    bool wide = false;
    bool ascii = false;
    bool fullword = false;
    bool referenced = false;
};

enum class value_type : std::uint8_t { boolean, integer, string };

struct condition_node {
    enum class kind : std::uint8_t {
        constant,     ///< boolean or integer constant in `value`
        found,        ///< $a
        count,        ///< #a
        filesize,
        compare,      ///< kids[0] op kids[1]
        and_,
        or_,
        not_,
        of,           ///< `quantifier of strings` (quantifier < 0: all)
        unsupported,  ///< valid YARA this translation cannot express (`reason`)
    };
    kind what = kind::constant;
    value_type type = value_type::boolean;
    std::int64_t value = 0;
    std::uint32_t string = 0;
    std::string op;
    std::vector<std::size_t> kids;
    std::vector<std::uint32_t> strings;
    std::optional<std::int64_t> quantifier;  ///< nullopt: `all`
    std::string reason;
};

struct parsed_rule {
    std::string name;
    bool is_private = false;
    std::vector<yara_string> strings;  ///< leftovers of failed rules first
    std::size_t leftover = 0;          ///< how many leading strings are leftovers
    bool garbage_code = false;         ///< a failed rule's bytecode runs first
    std::vector<condition_node> nodes;
    std::size_t root = 0;
};

// ---------------------------------------------------------------------------------------
// Parser

class parser {
public:
    parser(std::string_view text, std::vector<std::string>& warnings) : lex_(text, warnings) {
        advance();
    }

    /// Every rule that parsed, in order (what ClamAV's rule queue holds), and the
    /// per-rule YARA error messages.
    std::vector<parsed_rule> rules;
    std::vector<std::string> errors;

    void parse_file() {
        while (current_.kind != token_kind::end) {
            if (is(token_kind::identifier, "import")) {
                advance();
                if (current_.kind != token_kind::text) {
                    fail("syntax error after import");
                    recover();
                    continue;
                }
                advance();
                continue;
            }
            if (is(token_kind::identifier, "include")) {
                advance();
                if (current_.kind == token_kind::text) {
                    errors.push_back("include \"" + current_.text + "\" is not supported");
                    advance();
                    continue;
                }
                fail("syntax error after include");
                recover();
                continue;
            }
            parse_rule();
        }
    }

private:
    // -- tokens --
    void advance() { current_ = lex_.next(); }
    [[nodiscard]] bool is(token_kind kind, std::string_view text) const {
        return current_.kind == kind && current_.text == text;
    }
    [[nodiscard]] bool is_punct(std::string_view text) const {
        return is(token_kind::punct, text);
    }
    [[nodiscard]] bool is_word(std::string_view text) const {
        return is(token_kind::identifier, text);
    }
    bool accept_punct(std::string_view text) {
        if (is_punct(text)) {
            advance();
            return true;
        }
        return false;
    }
    bool accept_word(std::string_view text) {
        if (is_word(text)) {
            advance();
            return true;
        }
        return false;
    }
    bool expect_punct(std::string_view text) {
        if (accept_punct(text)) {
            return true;
        }
        fail("syntax error, expected '" + std::string(text) + "'");
        return false;
    }
    bool expect_word(std::string_view text) {
        if (accept_word(text)) {
            return true;
        }
        fail("syntax error, expected '" + std::string(text) + "'");
        return false;
    }

    void fail(std::string message) {
        if (!failed_) {
            failed_ = true;
            error_ = std::move(message);
        }
    }

    // bison's `rules error rule`: drop tokens until one can start a rule.
    void recover() {
        failed_ = false;
        while (current_.kind != token_kind::end && !is_word("rule") && !is_word("private") &&
               !is_word("global")) {
            advance();
        }
    }

    // -- rules --
    void parse_rule() {
        rule_ = parsed_rule{};
        strings_.clear();
        emitted_ = false;
        failed_ = false;
        const bool ok = parse_rule_body();
        if (ok) {
            parsed_rule done = std::move(rule_);
            done.leftover = leftover_strings_.size();
            done.garbage_code = leftover_code_;
            done.strings = std::move(leftover_strings_);
            for (auto& s : strings_) {
                done.strings.push_back(std::move(s));
            }
            leftover_strings_.clear();
            leftover_code_ = false;
            names_.push_back(done.name);
            rules.push_back(std::move(done));
            return;
        }
        const std::string name = rule_.name.empty() ? "?" : rule_.name;
        errors.push_back("rule " + name + ": " + error_);
        for (auto& s : strings_) {
            leftover_strings_.push_back(std::move(s));
        }
        leftover_code_ = leftover_code_ || emitted_;
        recover();
    }

    bool parse_rule_body() {
        while (is_word("private") || is_word("global")) {
            rule_.is_private = rule_.is_private || is_word("private");
            advance();
        }
        if (!expect_word("rule")) {
            return false;
        }
        if (current_.kind != token_kind::identifier || is_keyword(current_.text)) {
            fail("syntax error, expected a rule name");
            return false;
        }
        rule_.name = current_.text;
        advance();
        if (accept_punct(":")) {
            if (current_.kind != token_kind::identifier || is_keyword(current_.text)) {
                fail("syntax error, expected a tag");
                return false;
            }
            while (current_.kind == token_kind::identifier && !is_keyword(current_.text)) {
                advance();
            }
        }
        if (!expect_punct("{")) {
            return false;
        }
        if (accept_word("meta")) {
            if (!expect_punct(":") || !parse_meta()) {
                return false;
            }
        }
        if (accept_word("strings")) {
            if (!expect_punct(":") || !parse_strings()) {
                return false;
            }
        }
        if (!expect_word("condition") || !expect_punct(":")) {
            return false;
        }
        const auto root = parse_or();
        if (!root || failed_) {
            return false;
        }
        rule_.root = *root;
        if (!expect_punct("}")) {
            return false;
        }
        // yr_parser_reduce_rule_declaration
        if (std::find(names_.begin(), names_.end(), rule_.name) != names_.end()) {
            fail("duplicate identifier \"" + rule_.name + "\"");
            return false;
        }
        for (const auto& s : strings_) {
            if (!s.referenced) {
                fail("unreferenced string \"" + s.identifier + "\"");
                return false;
            }
        }
        return true;
    }

    bool parse_meta() {
        do {
            if (current_.kind != token_kind::identifier || is_keyword(current_.text)) {
                fail("syntax error in meta");
                return false;
            }
            advance();
            if (!expect_punct("=")) {
                return false;
            }
            if (current_.kind == token_kind::text || current_.kind == token_kind::number ||
                is_word("true") || is_word("false")) {
                advance();
            } else {
                fail("syntax error in meta value");
                return false;
            }
        } while (current_.kind == token_kind::identifier && !is_keyword(current_.text));
        return true;
    }

    bool parse_strings() {
        do {
            if (current_.kind != token_kind::string_id) {
                fail("syntax error, expected a string identifier");
                return false;
            }
            yara_string s;
            s.identifier = current_.text;
            advance();
            if (!expect_punct("=")) {
                return false;
            }
            if (current_.kind == token_kind::text || current_.kind == token_kind::regex) {
                s.kind = current_.kind == token_kind::text ? yara_string::type::text
                                                           : yara_string::type::regex;
                s.value = current_.text;
                advance();
                while (true) {
                    if (accept_word("wide")) {
                        s.wide = true;
                    } else if (accept_word("ascii")) {
                        s.ascii = true;
                    } else if (accept_word("nocase")) {
                        s.nocase = true;
                    } else if (accept_word("fullword")) {
                        s.fullword = true;
                    } else {
                        break;
                    }
                }
            } else if (current_.kind == token_kind::hex) {
                s.kind = yara_string::type::hex;
                s.value = current_.text;
                advance();
            } else {
                fail("syntax error, expected a string value");
                return false;
            }
            strings_.push_back(std::move(s));
        } while (current_.kind == token_kind::string_id);
        return true;
    }

    // -- conditions --
    std::size_t add(condition_node node) {
        rule_.nodes.push_back(std::move(node));
        return rule_.nodes.size() - 1;
    }
    std::size_t add_unsupported(value_type type, std::string reason) {
        condition_node n;
        n.what = condition_node::kind::unsupported;
        n.type = type;
        n.reason = std::move(reason);
        return add(std::move(n));
    }
    [[nodiscard]] const condition_node& node(std::size_t i) const { return rule_.nodes[i]; }

    std::optional<std::uint32_t> lookup_string(const std::string& identifier) {
        for (std::size_t i = 0; i < strings_.size(); ++i) {
            if (strings_[i].identifier == identifier) {
                strings_[i].referenced = true;
                return static_cast<std::uint32_t>(i);
            }
        }
        fail("undefined string \"" + identifier + "\"");
        return std::nullopt;
    }

    std::optional<std::size_t> parse_or() {
        auto left = parse_and();
        while (left && is_word("or")) {
            advance();
            auto right = parse_and();
            if (!right) {
                return std::nullopt;
            }
            condition_node n;
            n.what = condition_node::kind::or_;
            n.kids = {*left, *right};
            left = add(std::move(n));
        }
        return left;
    }

    std::optional<std::size_t> parse_and() {
        auto left = parse_not();
        while (left && is_word("and")) {
            advance();
            auto right = parse_not();
            if (!right) {
                return std::nullopt;
            }
            condition_node n;
            n.what = condition_node::kind::and_;
            n.kids = {*left, *right};
            left = add(std::move(n));
        }
        return left;
    }

    std::optional<std::size_t> parse_not() {
        if (accept_word("not")) {
            auto operand = parse_not();
            if (!operand) {
                return std::nullopt;
            }
            condition_node n;
            n.what = condition_node::kind::not_;
            n.kids = {*operand};
            return add(std::move(n));
        }
        return parse_term();
    }

    std::optional<std::size_t> parse_term() {
        if (is_word("true") || is_word("false")) {
            condition_node n;
            n.value = is_word("true") ? 1 : 0;
            advance();
            emitted_ = true;
            return add(std::move(n));
        }
        if (current_.kind == token_kind::string_id) {
            const std::string id = current_.text;
            advance();
            std::optional<std::uint32_t> index;
            if (id == "$") {
                if (!in_for_of_) {
                    fail("misplaced anonymous string");
                    return std::nullopt;
                }
            } else if (!(index = lookup_string(id))) {
                return std::nullopt;
            }
            emitted_ = true;
            if (accept_word("at")) {
                auto where = parse_primary();
                if (!where) {
                    return std::nullopt;
                }
                if (node(*where).type != value_type::integer) {
                    fail("wrong type for \"at\" operator");
                    return std::nullopt;
                }
                return add_unsupported(value_type::boolean, "`" + id + " at ...`");
            }
            if (accept_word("in")) {
                if (!parse_range()) {
                    return std::nullopt;
                }
                return add_unsupported(value_type::boolean, "`" + id + " in (...)`");
            }
            if (!index) {
                return add_unsupported(value_type::boolean, "anonymous string in a loop");
            }
            condition_node n;
            n.what = condition_node::kind::found;
            n.string = *index;
            return add(std::move(n));
        }
        if (is_word("for")) {
            return parse_for();
        }
        if (is_word("all") || is_word("any")) {
            condition_node n;
            n.what = condition_node::kind::of;
            if (is_word("any")) {
                n.quantifier = 1;
            }
            advance();
            emitted_ = true;
            if (!expect_word("of") || !parse_string_set(n.strings)) {
                return std::nullopt;
            }
            return add(std::move(n));
        }
        if (is_punct("(")) {
            advance();
            auto inner = parse_or();
            if (!inner || !expect_punct(")")) {
                return std::nullopt;
            }
            if (node(*inner).type != value_type::integer &&
                node(*inner).type != value_type::string) {
                return inner;
            }
            auto primary = continue_primary(*inner);
            if (!primary) {
                return std::nullopt;
            }
            return finish_term(*primary);
        }
        auto primary = parse_primary();
        if (!primary) {
            return std::nullopt;
        }
        return finish_term(*primary);
    }

    // What may follow a primary expression in a condition term.
    std::optional<std::size_t> finish_term(std::size_t left) {
        if (accept_word("of")) {
            condition_node n;
            n.what = condition_node::kind::of;
            const auto& q = node(left);
            if (q.what == condition_node::kind::constant && q.type == value_type::integer) {
                n.quantifier = q.value;
            } else {
                n.reason = "a computed `N of` quantifier";
            }
            if (!parse_string_set(n.strings)) {
                return std::nullopt;
            }
            if (!n.reason.empty()) {
                return add_unsupported(value_type::boolean, n.reason);
            }
            return add(std::move(n));
        }
        static constexpr std::array<std::string_view, 6> comparisons = {"<",  "<=", ">",
                                                                         ">=", "==", "!="};
        for (const auto op : comparisons) {
            if (!is_punct(op)) {
                continue;
            }
            advance();
            auto right = parse_primary();
            if (!right) {
                return std::nullopt;
            }
            const auto lt = node(left).type;
            const auto rt = node(*right).type;
            if ((op == "==" || op == "!=") ? lt != rt
                                           : (lt != value_type::integer ||
                                              rt != value_type::integer)) {
                fail("wrong type for \"" + std::string(op) + "\" operator");
                return std::nullopt;
            }
            condition_node n;
            n.what = condition_node::kind::compare;
            n.op = std::string(op);
            n.kids = {left, *right};
            return add(std::move(n));
        }
        if (accept_word("matches")) {
            if (current_.kind != token_kind::regex) {
                fail("syntax error, expected a regular expression");
                return std::nullopt;
            }
            advance();
            if (node(left).type != value_type::string) {
                fail("wrong type for \"matches\" operator");
                return std::nullopt;
            }
            return add_unsupported(value_type::boolean, "`matches`");
        }
        if (accept_word("contains")) {
            auto right = parse_primary();
            if (!right) {
                return std::nullopt;
            }
            if (node(left).type != value_type::string ||
                node(*right).type != value_type::string) {
                fail("wrong type for \"contains\" operator");
                return std::nullopt;
            }
            return add_unsupported(value_type::boolean, "`contains`");
        }
        return left;
    }

    bool parse_string_set(std::vector<std::uint32_t>& out) {
        if (accept_word("them")) {
            for (std::size_t i = 0; i < strings_.size(); ++i) {
                strings_[i].referenced = true;
                out.push_back(static_cast<std::uint32_t>(i));
            }
            return true;
        }
        if (!expect_punct("(")) {
            return false;
        }
        do {
            if (current_.kind == token_kind::string_id) {
                const auto index = lookup_string(current_.text);
                if (!index) {
                    return false;
                }
                out.push_back(*index);
                advance();
            } else if (current_.kind == token_kind::string_wildcard) {
                bool any = false;
                for (std::size_t i = 0; i < strings_.size(); ++i) {
                    if (strings_[i].identifier.starts_with(current_.text)) {
                        strings_[i].referenced = true;
                        out.push_back(static_cast<std::uint32_t>(i));
                        any = true;
                    }
                }
                if (!any) {
                    fail("undefined string \"" + current_.text + "*\"");
                    return false;
                }
                advance();
            } else {
                fail("syntax error in string set");
                return false;
            }
        } while (accept_punct(","));
        return expect_punct(")");
    }

    bool parse_range() {
        if (!expect_punct("(")) {
            return false;
        }
        auto low = parse_primary();
        if (!low || !expect_punct("..")) {
            return false;
        }
        auto high = parse_primary();
        return high.has_value() && expect_punct(")");
    }

    std::optional<std::size_t> parse_for() {
        advance();  // for
        emitted_ = true;
        if (!accept_word("all") && !accept_word("any") && !parse_primary()) {
            return std::nullopt;
        }
        if (accept_word("of")) {
            std::vector<std::uint32_t> ignored;
            if (!parse_string_set(ignored) || !expect_punct(":") || !expect_punct("(")) {
                return std::nullopt;
            }
            if (in_for_of_) {
                fail("nested for..of loop");
                return std::nullopt;
            }
            in_for_of_ = true;
            auto body = parse_or();
            in_for_of_ = false;
            if (!body || !expect_punct(")")) {
                return std::nullopt;
            }
            return add_unsupported(value_type::boolean, "a `for ... of` loop");
        }
        if (current_.kind != token_kind::identifier || is_keyword(current_.text)) {
            fail("syntax error in for loop");
            return std::nullopt;
        }
        const std::string variable = current_.text;
        advance();
        if (!expect_word("in") || !expect_punct("(")) {
            return std::nullopt;
        }
        auto first = parse_primary();
        if (!first) {
            return std::nullopt;
        }
        if (accept_punct("..")) {
            if (!parse_primary()) {
                return std::nullopt;
            }
        } else {
            while (accept_punct(",")) {
                if (!parse_primary()) {
                    return std::nullopt;
                }
            }
        }
        if (!expect_punct(")") || !expect_punct(":") || !expect_punct("(")) {
            return std::nullopt;
        }
        loop_variables_.push_back(variable);
        auto body = parse_or();
        loop_variables_.pop_back();
        if (!body || !expect_punct(")")) {
            return std::nullopt;
        }
        return add_unsupported(value_type::boolean, "a `for ... in` loop");
    }

    // primary_expression with its arithmetic; anything beyond a number, `#a` or
    // `filesize` is unsupported (but still checked for errors).
    std::optional<std::size_t> parse_primary() {
        auto left = parse_unary();
        if (!left) {
            return std::nullopt;
        }
        return continue_primary(*left);
    }

    std::optional<std::size_t> continue_primary(std::size_t left) {
        static constexpr std::array<std::string_view, 11> operators = {
            "+", "-", "*", "\\", "%", "&", "|", "^", "<<", ">>", "~"};
        while (true) {
            bool matched = false;
            for (const auto op : operators) {
                if (op != "~" && is_punct(op)) {
                    advance();
                    auto right = parse_unary();
                    if (!right) {
                        return std::nullopt;
                    }
                    if (node(left).type != value_type::integer ||
                        node(*right).type != value_type::integer) {
                        fail("wrong type for \"" + std::string(op) + "\" operator");
                        return std::nullopt;
                    }
                    left = add_unsupported(value_type::integer, "arithmetic");
                    matched = true;
                    break;
                }
            }
            if (!matched) {
                return left;
            }
        }
    }

    std::optional<std::size_t> parse_unary() {
        if (accept_punct("-") || accept_punct("~")) {
            auto operand = parse_unary();
            if (!operand) {
                return std::nullopt;
            }
            return add_unsupported(value_type::integer, "arithmetic");
        }
        return parse_atom();
    }

    std::optional<std::size_t> parse_atom() {
        condition_node n;
        n.type = value_type::integer;
        if (current_.kind == token_kind::number) {
            n.value = current_.number;
            advance();
            emitted_ = true;
            return add(std::move(n));
        }
        if (current_.kind == token_kind::text) {
            advance();
            emitted_ = true;
            return add_unsupported(value_type::string, "a text string in the condition");
        }
        if (accept_word("filesize")) {
            emitted_ = true;
            n.what = condition_node::kind::filesize;
            return add(std::move(n));
        }
        if (accept_word("entrypoint")) {
            emitted_ = true;
            return add_unsupported(value_type::integer, "`entrypoint`");
        }
        if (current_.kind == token_kind::string_count) {
            const std::string id = current_.text;
            advance();
            emitted_ = true;
            if (id == "$") {
                if (!in_for_of_) {
                    fail("misplaced anonymous string");
                    return std::nullopt;
                }
                return add_unsupported(value_type::integer, "anonymous string in a loop");
            }
            const auto index = lookup_string(id);
            if (!index) {
                return std::nullopt;
            }
            n.what = condition_node::kind::count;
            n.string = *index;
            return add(std::move(n));
        }
        if (current_.kind == token_kind::string_offset) {
            const std::string id = current_.text;
            advance();
            if (id == "$" ? !in_for_of_ : !lookup_string(id)) {
                fail("undefined string \"" + id + "\"");
                return std::nullopt;
            }
            emitted_ = true;
            if (accept_punct("[")) {
                if (!parse_primary() || !expect_punct("]")) {
                    return std::nullopt;
                }
            }
            return add_unsupported(value_type::integer, "`@` string offsets");
        }
        static constexpr std::array<std::string_view, 6> readers = {
            "int8", "int16", "int32", "uint8", "uint16", "uint32"};
        for (const auto reader : readers) {
            if (accept_word(reader)) {
                if (!expect_punct("(")) {
                    return std::nullopt;
                }
                auto at = parse_primary();
                if (!at || !expect_punct(")")) {
                    return std::nullopt;
                }
                return add_unsupported(value_type::integer,
                                       "`" + std::string(reader) + "()` reads");
            }
        }
        if (current_.kind == token_kind::identifier && !is_keyword(current_.text)) {
            const std::string name = current_.text;
            advance();
            if (std::find(loop_variables_.begin(), loop_variables_.end(), name) !=
                loop_variables_.end()) {
                emitted_ = true;
                return add_unsupported(value_type::integer, "a loop variable");
            }
            if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
                emitted_ = true;
                return add_unsupported(value_type::boolean, "a reference to rule " + name);
            }
            fail("undefined identifier \"" + name + "\"");
            return std::nullopt;
        }
        if (is_punct("(")) {
            advance();
            auto inner = parse_or();
            if (!inner || !expect_punct(")")) {
                return std::nullopt;
            }
            return inner;
        }
        fail("syntax error, unexpected '" + current_.text + "'");
        return std::nullopt;
    }

    lexer lex_;
    token current_;
    bool failed_ = false;
    std::string error_;
    parsed_rule rule_;
    std::vector<yara_string> strings_;  ///< the current rule's own strings
    bool emitted_ = false;              ///< the current rule has emitted bytecode
    bool in_for_of_ = false;
    std::vector<std::string> loop_variables_;
    std::vector<std::string> names_;  ///< rules that parsed (YARA's rules table)
    std::vector<yara_string> leftover_strings_;
    bool leftover_code_ = false;
};

// ---------------------------------------------------------------------------------------
// Translation of a condition into .ldb expression text

struct ldb_term {
    enum class kind : std::uint8_t { always, never, text, all_of, any_of };
    kind what = kind::text;
    std::string text;
    std::vector<ldb_term> parts;  ///< all_of / any_of
};

ldb_term always() { return ldb_term{ldb_term::kind::always, {}, {}}; }
ldb_term never() { return ldb_term{ldb_term::kind::never, {}, {}}; }
ldb_term leaf(std::string text) { return ldb_term{ldb_term::kind::text, std::move(text), {}}; }

ldb_term combine(ldb_term::kind op, ldb_term a, ldb_term b) {
    const bool is_and = op == ldb_term::kind::all_of;
    const auto absorbing = is_and ? ldb_term::kind::never : ldb_term::kind::always;
    const auto neutral = is_and ? ldb_term::kind::always : ldb_term::kind::never;
    if (a.what == absorbing || b.what == absorbing) {
        return is_and ? never() : always();
    }
    if (a.what == neutral) {
        return b;
    }
    if (b.what == neutral) {
        return a;
    }
    ldb_term out{op, {}, {}};
    for (auto* side : {&a, &b}) {
        if (side->what == op) {
            for (auto& p : side->parts) {
                out.parts.push_back(std::move(p));
            }
        } else {
            out.parts.push_back(std::move(*side));
        }
    }
    return out;
}

std::string render(const ldb_term& t, bool top) {
    if (t.what == ldb_term::kind::text) {
        return t.text;
    }
    std::string out = top ? "" : "(";
    const char op = t.what == ldb_term::kind::all_of ? '&' : '|';
    for (std::size_t i = 0; i < t.parts.size(); ++i) {
        if (i != 0) {
            out += op;
        }
        out += render(t.parts[i], false);
    }
    if (!top) {
        out += ')';
    }
    return out;
}

class translator {
public:
    explicit translator(const parsed_rule& rule) : rule_(rule) {}

    /// The expression text, or why it cannot be written (nullopt text = never true).
    tl::expected<ldb_term, std::string> translate(std::size_t index, bool negated) {
        const condition_node& n = rule_.nodes[index];
        using k = condition_node::kind;
        switch (n.what) {
            case k::constant:
                return ((n.value != 0) != negated) ? always() : never();
            case k::found:
                return leaf(subsig(n.string) + (negated ? "=0" : ""));
            case k::count:
                // An integer as a condition: true when non-zero.
                return leaf(subsig(n.string) + (negated ? "=0" : ""));
            case k::filesize:
                return tl::unexpected(std::string("`filesize` outside a top-level `and`"));
            case k::unsupported:
                return tl::unexpected(n.reason);
            case k::not_:
                return translate(n.kids[0], !negated);
            case k::and_:
            case k::or_: {
                for (const auto kid : n.kids) {
                    const auto& operand = rule_.nodes[kid];
                    if (n.what == k::and_ && operand.type == value_type::integer) {
                        // OP_AND is a bitwise AND of the two values.
                        return tl::unexpected(
                            std::string("an integer operand of `and` (ClamAV ANDs the bits)"));
                    }
                }
                auto left = translate(n.kids[0], negated);
                if (!left) {
                    return left;
                }
                auto right = translate(n.kids[1], negated);
                if (!right) {
                    return right;
                }
                const bool conjunction = (n.what == k::and_) != negated;
                return combine(conjunction ? ldb_term::kind::all_of : ldb_term::kind::any_of,
                               std::move(*left), std::move(*right));
            }
            case k::of:
                return translate_of(n, negated);
            case k::compare:
                return translate_compare(n, negated);
        }
        return tl::unexpected(std::string("unknown condition"));
    }

    std::string subsig(std::uint32_t own_index) const {
        return std::to_string(rule_.leftover + own_index);
    }

private:
    tl::expected<ldb_term, std::string> translate_of(const condition_node& n, bool negated) {
        std::vector<std::uint32_t> set = n.strings;
        std::sort(set.begin(), set.end());
        if (std::adjacent_find(set.begin(), set.end()) != set.end()) {
            return tl::unexpected(std::string("a string listed twice in `of`"));
        }
        const auto size = static_cast<std::int64_t>(set.size());
        const std::int64_t wanted = n.quantifier.value_or(size);
        if (wanted <= 0) {
            return negated ? never() : always();
        }
        if (wanted > size) {
            return negated ? always() : never();
        }
        const bool all = wanted == size;
        if (!all && wanted != 1) {
            if (negated) {
                return tl::unexpected(std::string("`not N of` with 1 < N < size"));
            }
            std::string block = "(";
            for (std::size_t i = 0; i < set.size(); ++i) {
                block += (i == 0 ? "" : "|") + subsig(set[i]);
            }
            return leaf(block + ")>0," + std::to_string(wanted));
        }
        // all: every string found; any: one of them. Negation swaps the two.
        const auto op = (all != negated) ? ldb_term::kind::all_of : ldb_term::kind::any_of;
        ldb_term out = op == ldb_term::kind::all_of ? always() : never();
        for (const auto s : set) {
            out = combine(op, std::move(out), leaf(subsig(s) + (negated ? "=0" : "")));
        }
        return out;
    }

    tl::expected<ldb_term, std::string> translate_compare(const condition_node& n,
                                                          bool negated) {
        using k = condition_node::kind;
        const condition_node* left = &rule_.nodes[n.kids[0]];
        const condition_node* right = &rule_.nodes[n.kids[1]];
        std::string op = n.op;
        if (left->what == k::unsupported) {
            return tl::unexpected(left->reason);
        }
        if (right->what == k::unsupported) {
            return tl::unexpected(right->reason);
        }
        if (left->what == k::constant && right->what == k::constant) {
            const std::int64_t a = left->value;
            const std::int64_t b = right->value;
            const bool holds = op == "<"    ? a < b
                               : op == "<=" ? a <= b
                               : op == ">"  ? a > b
                               : op == ">=" ? a >= b
                               : op == "==" ? a == b
                                            : a != b;
            return holds != negated ? always() : never();
        }
        if (left->what == k::constant) {  // n < #a  ->  #a > n
            std::swap(left, right);
            op = op == "<" ? ">" : op == ">" ? "<" : op == "<=" ? ">=" : op == ">=" ? "<=" : op;
        }
        if (left->what == k::filesize || right->what == k::filesize) {
            return tl::unexpected(std::string("`filesize` outside a top-level `and`"));
        }
        if (left->what != k::count || right->what != k::constant) {
            return tl::unexpected(std::string("a comparison other than `#a` with a number"));
        }
        if (negated) {
            op = op == "<"    ? ">="
                 : op == "<=" ? ">"
                 : op == ">"  ? "<="
                 : op == ">=" ? "<"
                 : op == "==" ? "!="
                              : "==";
        }
        const std::string id = subsig(left->string);
        const std::int64_t v = right->value;
        constexpr std::int64_t most = std::numeric_limits<std::uint32_t>::max() - 1;
        if (v > most) {
            return tl::unexpected(std::string("a count compared with a huge number"));
        }
        // Counts are >= 0; the .ldb forms are N=X, N<X and N>X.
        if (op == "==") {
            return v < 0 ? never() : leaf(id + "=" + std::to_string(v));
        }
        if (op == "!=") {
            if (v < 0) {
                return always();
            }
            if (v == 0) {
                return leaf(id);
            }
            return combine(ldb_term::kind::any_of, leaf(id + "<" + std::to_string(v)),
                           leaf(id + ">" + std::to_string(v)));
        }
        if (op == ">") {
            return v < 0 ? always() : leaf(id + ">" + std::to_string(v));
        }
        if (op == ">=") {
            return v <= 0 ? always() : leaf(id + ">" + std::to_string(v - 1));
        }
        if (op == "<") {
            return v <= 0 ? never() : leaf(id + "<" + std::to_string(v));
        }
        // <=
        return v < 0 ? never() : leaf(id + "<" + std::to_string(v + 1));
    }

    const parsed_rule& rule_;
};

/// `filesize OP number` (either order), as the inclusive range it allows.
std::optional<std::pair<std::int64_t, std::int64_t>> filesize_bounds(
    const parsed_rule& rule, const condition_node& n) {
    using k = condition_node::kind;
    if (n.what != k::compare) {
        return std::nullopt;
    }
    const auto* left = &rule.nodes[n.kids[0]];
    const auto* right = &rule.nodes[n.kids[1]];
    std::string op = n.op;
    if (left->what == k::constant && right->what == k::filesize) {
        std::swap(left, right);
        op = op == "<" ? ">" : op == ">" ? "<" : op == "<=" ? ">=" : op == ">=" ? "<=" : op;
    }
    if (left->what != k::filesize || right->what != k::constant) {
        return std::nullopt;
    }
    constexpr std::int64_t lowest = std::numeric_limits<std::int64_t>::min();
    constexpr std::int64_t highest = std::numeric_limits<std::int64_t>::max();
    const std::int64_t v = right->value;
    if (op == "<") {
        return std::pair{lowest, v == lowest ? lowest : v - 1};
    }
    if (op == "<=") {
        return std::pair{lowest, v};
    }
    if (op == ">") {
        return std::pair{v == highest ? highest : v + 1, highest};
    }
    if (op == ">=") {
        return std::pair{v, highest};
    }
    if (op == "==") {
        return std::pair{v, v};
    }
    return std::nullopt;  // != is not a range
}

void top_level_conjuncts(const parsed_rule& rule, std::size_t index,
                         std::vector<std::size_t>& out) {
    const auto& n = rule.nodes[index];
    if (n.what == condition_node::kind::and_ && rule.nodes[n.kids[0]].type != value_type::integer &&
        rule.nodes[n.kids[1]].type != value_type::integer) {
        top_level_conjuncts(rule, n.kids[0], out);
        top_level_conjuncts(rule, n.kids[1], out);
        return;
    }
    out.push_back(index);
}

// ---------------------------------------------------------------------------------------
// load_oneyara: strings to subsignatures

std::string to_hex(std::string_view bytes) {
    return hex::encode(bytes);
}

/// parse_yara_hex_string: drop blanks and braces, `[-]` -> `*`, `[`/`]` -> `{`/`}`.
std::string clamav_hex_of(std::string_view yara_hex) {
    const std::string_view body = yara_hex.substr(1, yara_hex.size() - 2);
    std::string out;
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        }
        if (c == '[' && i + 2 < body.size() && body[i + 1] == '-' && body[i + 2] == ']') {
            out += '*';
            i += 2;
        } else if (c == '[') {
            out += '{';
        } else if (c == ']') {
            out += '}';
        } else {
            out += c;
        }
    }
    return out;
}

enum class load_status : std::uint8_t { loaded, dropped, malformed };

struct string_outcome {
    load_status status = load_status::loaded;
    std::string message;
    bool engine_cannot = false;  ///< valid for ClamAV, not for this engine's hex matcher
    bool keep_going = false;     ///< ClamAV skips the rule but still checks its next strings
};

/// One string of load_oneyara's loop. `dropped` stops the rule, `malformed` also makes
/// the rule's status CL_EMALFDB.
string_outcome load_string(const yara_string& s, std::vector<subsignature>& out) {
    switch (s.kind) {
        case yara_string::type::text: {
            if (s.value.size() < 2) {
                return {load_status::dropped, "string " + s.identifier + " is too short", false,
                        true};
            }
            hex_subsignature hex;
            hex.hex = to_hex(s.value);
            hex.nocase = s.nocase;
            hex.wide = s.wide;
            hex.ascii = s.wide && s.ascii;
            hex.fullword = s.fullword;
            if (auto variants = hex_variants(hex); !variants) {
                return {load_status::dropped, "string " + s.identifier + ": " +
                                                  variants.error().reason,
                        !variants.error().malformed};
            }
            out.emplace_back(std::move(hex));
            return {};
        }
        case yara_string::type::hex: {
            const std::string converted = clamav_hex_of(s.value);
            const auto first_open = converted.find('{');
            const auto last_close = converted.rfind('}');
            if ((first_open != std::string::npos && first_open == 2) ||
                (last_close != std::string::npos && converted.size() - last_close == 3)) {
                return {load_status::malformed,
                        "hex string " + s.identifier + " has a single byte subpattern", false};
            }
            if (converted.size() / 2 < 2) {
                return {load_status::malformed, "hex string " + s.identifier + " is too short",
                        false};
            }
            hex_subsignature hex;
            hex.hex = converted;
            auto variants = hex_variants(hex);
            if (variants && std::any_of(variants->begin(), variants->end(),
                                        [](const hex_variant& v) {
                                            return v.translation.max_length &&
                                                   *v.translation.max_length < 2;
                                        })) {
                return {load_status::malformed, "hex string " + s.identifier + " is too short",
                        false};
            }
            if (!variants) {
                if (variants.error().malformed) {
                    return {load_status::malformed, "hex string " + s.identifier + " (" +
                                                        converted + "): " +
                                                        variants.error().reason,
                            false};
                }
                return {load_status::dropped, "hex string " + s.identifier + ": " +
                                                  variants.error().reason,
                        true};
            }
            out.emplace_back(std::move(hex));
            return {};
        }
        case yara_string::type::regex: {
            if (s.wide) {
                return {load_status::dropped,
                        "wide modifier is not supported for regex string " + s.identifier,
                        false};
            }
            pcre_subsignature pcre;
            pcre.pattern = s.value;  // ClamAV passes no flags and no trigger
            out.emplace_back(std::move(pcre));
            return {};
        }
    }
    return {};
}

}  // namespace

tl::expected<yara_rule_result, std::string> parse_yara(std::string_view text) {
    yara_rule_result result;
    parser p(text, result.warnings);
    p.parse_file();
    for (auto& e : p.errors) {
        result.warnings.push_back(std::move(e));
    }

    load_status last = load_status::loaded;
    for (const parsed_rule& rule : p.rules) {
        const std::string name = "YARA." + rule.name;
        std::vector<subsignature> subsigs;
        string_outcome outcome;
        bool engine_cannot = false;
        for (const auto& s : rule.strings) {
            auto one = load_string(s, subsigs);
            if (one.keep_going) {
                if (outcome.status == load_status::loaded) {
                    outcome = std::move(one);
                }
                continue;
            }
            if (one.status != load_status::loaded) {
                engine_cannot = one.engine_cannot;
                outcome = std::move(one);
                break;
            }
        }
        last = outcome.status == load_status::malformed ? load_status::malformed
                                                        : load_status::loaded;
        if (result.poisoned) {
            result.skipped.push_back(name + ": ClamAV stops evaluating at " + *result.poisoned);
            continue;
        }
        if (outcome.status != load_status::loaded) {
            (engine_cannot ? result.not_supported : result.skipped)
                .push_back(name + ": " + outcome.message);
            continue;
        }
        if (subsigs.empty()) {
            result.skipped.push_back(name + ": no supported strings");
            continue;
        }
        if (subsigs.size() > max_subsignatures) {
            result.skipped.push_back(name + ": more than 64 strings");
            continue;
        }
        if (rule.garbage_code) {
            result.poisoned = name;
            result.skipped.push_back(name +
                                     ": runs bytecode left by an earlier failed rule and "
                                     "fails; ClamAV evaluates no logical signature after it");
            continue;
        }
        if (rule.is_private) {
            result.skipped.push_back(name + ": private rule (never alerts)");
            continue;
        }

        // filesize bounds from the top-level `and`, the rest as an expression.
        std::vector<std::size_t> conjuncts;
        top_level_conjuncts(rule, rule.root, conjuncts);
        std::int64_t low = 0;
        std::int64_t high = std::numeric_limits<std::int64_t>::max();
        bool sized = false;
        ldb_term term = always();
        std::optional<std::string> problem;
        translator t(rule);
        for (const auto c : conjuncts) {
            if (auto bounds = filesize_bounds(rule, rule.nodes[c])) {
                low = std::max(low, bounds->first);
                high = std::min(high, bounds->second);
                sized = true;
                continue;
            }
            auto part = t.translate(c, false);
            if (!part) {
                problem = part.error();
                break;
            }
            term = combine(ldb_term::kind::all_of, std::move(term), std::move(*part));
        }
        if (problem) {
            result.not_supported.push_back(name + ": " + *problem);
            continue;
        }
        constexpr std::int64_t max_size = std::numeric_limits<std::uint32_t>::max();
        if (term.what == ldb_term::kind::never || (sized && (low > high || low > max_size))) {
            result.skipped.push_back(name + ": the condition is never true");
            continue;
        }
        if (term.what == ldb_term::kind::always) {
            result.not_supported.push_back(
                name + ": the condition holds without any string (ClamAV alerts on every file)");
            continue;
        }
        const std::string expression_text = render(term, true);
        auto expression = parse_logical_expression(expression_text);
        if (!expression) {
            result.not_supported.push_back(name + ": expression " + expression_text + ": " +
                                           expression.error());
            continue;
        }
        logical_signature sig;
        sig.name = name;
        sig.target.target = 0;
        if (sized) {
            sig.target.file_size = value_range{static_cast<std::uint32_t>(low),
                                               static_cast<std::uint32_t>(std::min(high, max_size))};
        }
        sig.expression = std::move(*expression);
        sig.subsignatures = std::move(subsigs);
        result.rules.push_back(std::move(sig));
    }
    // cli_loadyara returns the status of the last rule it loaded.
    if (last == load_status::malformed) {
        return tl::unexpected("Malformed database: the last YARA rule (" + p.rules.back().name +
                              ") has a hex string ClamAV refuses");
    }
    return result;
}

}  // namespace ringscan::matcher::detail
