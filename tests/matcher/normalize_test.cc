#include "matcher/unpack/normalize.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

using namespace std::string_view_literals;

template <std::size_t N>
std::span<const unsigned char> bytes(const char (&s)[N]) {
    return {reinterpret_cast<const unsigned char*>(s), N - 1};  // without the terminator
}
std::span<const unsigned char> bytes(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}
std::string str(const std::vector<unsigned char>& v) { return {v.begin(), v.end()}; }

struct html_case {
    std::string_view input;
    std::string_view nocomment;
    std::string_view notags;
};

// Every expected pair is html-tmp/nocomment.html and notags.html as clamscan 1.4.6 kept them
// (`clamscan --leave-temps --tempdir=DIR -d dummy.ndb file`), copied byte for byte.
// Facts these pin down, in order: CR dropped and LF as space, whitespace runs to one space;
// named/numeric references (unknown names kept lowercased, "&#65 " and "&# " still write
// their byte, NUL included; code units >= 0xff as "&#xhhhh;", U+3002 as "."); link targets
// of <a href>/<img src> copied unlowercased into notags; a space inside quotes ends the
// quoting; UTF-8 sequences copied but notags gets the middle byte in place of the last
// (a lone byte >= 0x80 gives a NUL there); NULs dropped; control bytes as spaces in notags;
// comments end at the first '>'; scripts keep comments, lose whitespace, ' becomes ";
// data: URIs cut out of the attribute; unfinished trailing references.
constexpr html_case html_cases[] = {
    {"<html>\x0d""\x0a""<BODY>Hello\x0d""\x0a""  World\x09""Tab</BODY></html>\x0d""\x0a"""sv,
     "<html><body>hello world tab</body></html>"sv,
     " hello world tab "sv},
    {"<html>&amp; &AMP; &lt;b&gt; &nbsp;x &Agrave; &euro; &bogus; &amp &#65; &#x41; &#X61; &#0x41; &#65 x &# y &#x; &#1234567890123; &#x3002; &#xff; &#256;"sv,
     "<html>& &amp; <b> \xa0""x \xc0"" &#x20ac; &bogus; &amp a a a a A x \x00"" y \x00"" &#x04cb; . &#x00ff; &#x0100;"sv,
     " b x x y "sv},
    {"<html><a href=\"HTTP://A.com/Q\x3f""x=1&amp;y=2\" title='It''s'>Click &amp; go</a> <img SRC=Pic.PNG><a href>x</a><a>y</a><a href=\"\">z</a>"sv,
     "<html><a href=\"http://a.com/q\x3f""x=1&y=2\" title=\"it\" 's'>click & go</a><img src=pic.png><a href>x</a><a>y</a><a href=\"\">z</a>"sv,
     " HTTP://A.com/Q\x3f""x=1&y=2 click go Pic.PNG x y z "sv},
    {"<html><p class = 'a b' id=\"c d\" data-x=1>t</p><input value=\"a>b\"><x y='q\\'r'>s</x>"sv,
     "<html><p class=\"a b\" id=\"c d\" data-x=1>t</p><input value=\"a>b\"><x y=\"q\\\" r'>s</x>"sv,
     " t s "sv},
    {"<html>caf\xc3""\xa9"" na\xc3""\xaf""ve \xe3""\x80""\x82"" \xef""\xbc""\x8e"" \xa1""C \xe9""x \xf0""\x9f""\x98""\x80"" end<b title=\"\xc3""\xa9""\xe3""\x80""\x82""\">q</b>"sv,
     "<html>caf\xc3""\xa9"" na\xc3""\xaf""ve . . .\x00"" \xe9""x \xf0""\x9f""\x98""\x80"" end<b title=\"\xc3""\xa9""\xe3""\">q</b>"sv,
     " caf\xc3""\xc3"" na\xc3""\xc3""ve ...\x00""\x00""x \xf0""\x9f""\x9f""\x00""end q "sv},
    {"<html>a\x00""b\x00""\x00""c<b\x00""r>d</html>"sv,
     "<html>abc<br>d</html>"sv,
     " abc d "sv},
    {"<html>ctrl\x01""\x02""x\x7f""y\x0b""z\x0c""w</html>"sv,
     "<html>ctrl\x01""\x02""x\x7f""y z w</html>"sv,
     " ctrl x\x7f""y z w "sv},
    {"<html><!-- comment <b>x</b> --> after <!DOCTYPE html> <! x> <!-->y</html>"sv,
     "<html>x</b>--> after y</html>"sv,
     " x --> after y "sv},
    {"<html><script language=\"JavaScript\">var a = 'b'; <!-- c --> if (a < b) { x(); }</script><script>\x0a""// c\x0a""var  q;</script>z"sv,
     "<html><script language=\"javascript\">vara=\"b\";<!--c-->if(a<b){x();}</script><script>//cvarq;</script>z"sv,
     " z"sv},
    {"<html><img src=\"data:image/png;base64,iVBORw0KGgo=\"> <a href='data:text/html,%3Cb%3Ehi%3C/b%3E'>t</a> <img src=data:,abc&amp;d> q"sv,
     "<html><img src=\"data\"><a href=\"data\">t</a><img src=data&q"sv,
     " t "sv},
    {"<html>< b >x</ b ><b\x0a"">y</b\x0a""><b/>z</html>"sv,
     "<html><b>x</ b><b>y</b><b/>z</html>"sv,
     " x y z "sv},
    {"<html><a href=x><a href=y>"sv,
     "<html><a href=x><a href=y>"sv,
     " x "sv},
    {"<html>&amp"sv,
     "<html>&"sv,
     " "sv},
    {"<html>&#65"sv,
     "<html>"sv,
     " "sv},
    {"<html>text &"sv,
     "<html>text "sv,
     " text "sv},
    {"<HTML><TITLE>Upper CASE</TITLE>\x0a""\x0a""\x0a""   lots    of    space   \x0a""</HTML>"sv,
     "<html><title>upper case</title>lots of space </html>"sv,
     " upper case lots of space "sv},
    {"   \x0a""\x0a""  <html>lead"sv,
     "<html>lead"sv,
     " lead"sv},
    {"<html><a HREF=One href=Two>x</a><img alt=q>"sv,
     "<html><a href=one href=two>x</a><img alt=q>"sv,
     " One x "sv},
    {"<html><x a=b=c d= e f =g>h</x><y 'q'=r>s"sv,
     "<html><x a=b=c d=e f=g>h</x><y 'q'=r>s"sv,
     " h s"sv},
    {"<html><script>a</script\x0a"">b<script src=x></script>c"sv,
     "<html><script>a</script>b<script src=x></script>c"sv,
     " >b c"sv},
};

/// Normalizes each case's input and compares both buffers with clamscan's.
void expect_clamscan_outputs(std::span<const html_case> cases) {
    for (const auto& c : cases) {
        const std::span<const unsigned char> in(
            reinterpret_cast<const unsigned char*>(c.input.data()), c.input.size());
        const auto html = normalize_html(in);
        ASSERT_TRUE(html);
        EXPECT_EQ(str(html->nocomment), c.nocomment) << c.input;
        ASSERT_TRUE(html->notags);
        EXPECT_EQ(str(*html->notags), c.notags) << c.input;
        EXPECT_TRUE(html->exact);
    }
}

TEST(NormalizeHtml, MatchesClamscanOutputs) { expect_clamscan_outputs(html_cases); }

TEST(NormalizeHtml, StyleBlocksAreScriptLike) {
    // clamscan 1.4.6: a <style> body is kept like a script's (comment included, whitespace
    // dropped, ' as "), nothing of it in notags; </script> also ends it, </style> does not
    // end a script.
    const auto a = normalize_html(bytes("<html><style>a  b 'x' <b>c</b> <!-- d  'e' --> </style> after 'q' &amp; z\n"));
    ASSERT_TRUE(a);
    EXPECT_EQ(str(a->nocomment), "<html><style>ab\"x\"<b>c</b><!--d\"e\"--></style>after 'q' & z");
    EXPECT_EQ(str(*a->notags), " after 'q' z ");
    const auto b = normalize_html(bytes("<html><style>a</script>b<script>c</style>d</script>e\n"));
    ASSERT_TRUE(b);
    EXPECT_EQ(str(b->nocomment), "<html><style>a</script>b<script>c</style>d</script>e");
    EXPECT_EQ(str(*b->notags), " b e ");
}

TEST(NormalizeHtml, DataUrisBecomeFilesOfTheirOwn) {
    // clamscan 1.4.6 html-tmp/rfc2397/*.tmp for these three attributes.
    const auto html = normalize_html(bytes(
        "<html><img src=\"data:image/png;base64,iVBORw0KGgo=\"> "
        "<a href='data:text/html,%3Cb%3Ehi%3C/b%3E'>t</a> <img src=data:,abc&amp;d> q"));
    ASSERT_TRUE(html);
    ASSERT_EQ(html->rfc2397.size(), 3U);
    EXPECT_EQ(str(html->rfc2397[0]),
              "From html-normalise\nContent-type: image/png;base64\n"
              "Content-transfer-encoding: base64\n\niVBORw0KGgo=");
    EXPECT_EQ(str(html->rfc2397[1]), "From html-normalise\nContent-type: text/html\n\n<b>hi</b>");
    EXPECT_EQ(str(html->rfc2397[2]), "From html-normalise\nContent-type: \n\nabcd");
}

TEST(NormalizeHtml, PieceBoundariesAreReproduced) {
    // ClamAV reads 8191-byte pieces pulled back to a space; whitespace opening a piece is
    // skipped. Compared with clamscan 1.4.6 byte for byte (the parity test covers more).
    const std::string long_word = "<html>" + std::string(9000, 'a') + " tail";
    const auto html = normalize_html(bytes(long_word));
    ASSERT_TRUE(html);
    EXPECT_EQ(str(html->nocomment), "<html>" + std::string(9000, 'a') + " tail");
}

TEST(NormalizeHtml, Limits) {
    const std::string page = "<html><b>x</b></html>";
    normalize_limits limits;
    limits.max_html_normalize = page.size() - 1;
    EXPECT_FALSE(normalize_html(bytes(page), limits));  // larger than MaxHTMLNormalize
    limits.max_html_normalize = page.size();
    limits.max_html_notags = page.size() - 1;
    const auto html = normalize_html(bytes(page), limits);
    ASSERT_TRUE(html);
    EXPECT_EQ(str(html->nocomment), page);
    EXPECT_FALSE(html->notags);  // input larger than MaxHTMLNoTags: not scanned
}

TEST(NormalizeHtml, ScriptEncoderIsFlaggedInexact) {
    const auto html = normalize_html(bytes(
        "<html><script language=\"JScript.Encode\">#@~^AAAAAA==^#~@</script>"));
    ASSERT_TRUE(html);
    EXPECT_FALSE(html->exact);
}

TEST(NormalizeHtml, RunsOfTextAndMarkupMatchClamscan) {
    // clamscan 1.4.6 nocomment.html / notags.html (--leave-temps) for these inputs, which
    // end runs of text, tag names and attribute values in every way the normalizer's
    // fast paths must hand back to the byte-at-a-time machine: CR inside markup (dropped),
    // an attribute value that becomes "data:" only in lower case, a backslash before a
    // closing quote or at the end of a value, control bytes in text and in scripts,
    // whitespace runs mixing CR, LF, VT and FF, and CRs after a tag's '>'.
    constexpr html_case cases[] = {
        {"<html><ta\rble bor\rder=1 ti\rtle=ab\rcd>x</ta\rble>\r\n<b\r>y\r</b>"sv,
         "<html><table border=1 title=abcd>x</table><b>y</b>"sv,
         " x y "sv},
        {"<html><img src=DATA:,abc> <img src=xdata:,q> <img src=data:,zz>t"sv,
         "<html><img src=data:,abc><img src=xdata:,q><img src=datat"sv,
         " DATA:,abc xdata:,q "sv},
        {"<html><x y='a\\'b' z=\"c\\\\\" w='q\\\\'>s</x><v u=ab\\>t"sv,
         "<html><x y=\"a\\\" b' z=\"c\\\\\" w=\"q\\\\\">s</x><v u=ab\\>t"sv,
         " s t"sv},
        {"<html>a\x01\x02""b \x03 c\x7f\x1f""d<script>x\x01 'y'\x02\tz</script>e\x1b"sv,
         "<html>a\x01\x02""b \x03 c\x7f\x1f""d<script>x\x01\"y\"\x02z</script>e\x1b"sv,
         " a b c\x7f d e "sv},
        {"<html>a \t\x0b\x0c\r\n b\r\r\rc\n\n\nd   <b>  e  </b>  f"sv,
         "<html>a bc d <b>e </b>f"sv,
         " a bc d e f"sv},
        // A tag is processed at the byte after its '>', and CR is never such a byte: with
        // only CRs left, <img src> and <a href> put nothing in notags.
        {"<html><img src=x>\r"sv, "<html><img src=x>"sv, " "sv},
        {"<html><img src=x>\r\r\nq<a href=y>\r\r"sv, "<html><img src=x>q<a href=y>"sv, " x q "sv},
    };
    expect_clamscan_outputs(cases);
    const auto data = normalize_html(bytes("<html><img src=DATA:,abc> <img src=data:,zz>t"));
    ASSERT_TRUE(data);
    ASSERT_EQ(data->rfc2397.size(), 1U);  // only the lower-case "data:" is cut out
    EXPECT_EQ(str(data->rfc2397[0]), "From html-normalise\nContent-type: \n\nzz");
}

TEST(NormalizeHtml, StatesCarriedAcrossPiecesMatchClamscan) {
    // 6 + 8180 bytes of words, so what follows straddles the first 8191-byte piece:
    // a whitespace run, a comment and a tag cut by the boundary, and a script whose
    // dropped whitespace spans many pieces. Outputs as clamscan 1.4.6 kept them.
    std::string words;
    for (int i = 0; i < 1636; ++i) {
        words += "word ";
    }
    const std::string crlf5 = "\r\n\r\n\r\n\r\n\r\n";
    struct piece_case {
        std::string input, nocomment, notags;
    };
    std::string script = "<html><script>";
    std::string script_out = "<html><script>";
    for (int i = 0; i < 700; ++i) {
        script += "var  x = 'a';\n";
        script_out += "varx=\"a\";";
    }
    const piece_case cases[] = {
        {"<html>" + words + "xy" + std::string(20, ' ') + crlf5 + "tail  end",
         "<html>" + words + "xy tail end", " " + words + "xy tail end"},
        {"<html>" + words + "<!-- c " + std::string(40, 'z') + " --> after <b>bold</b>",
         "<html>" + words + "after <b>bold</b>", " " + words + "after bold "},
        {"<html>" + words + "a<table border=1 class=\"wide one\">cell</table>",
         "<html>" + words + "a<table border=1 class=\"wide one\">cell</table>",
         " " + words + "a cell "},
        {script + "</script> done", script_out + "</script>done", " done"},
    };
    for (const auto& c : cases) {
        const auto html = normalize_html(bytes(c.input));
        ASSERT_TRUE(html);
        EXPECT_EQ(str(html->nocomment), c.nocomment);
        ASSERT_TRUE(html->notags);
        EXPECT_EQ(str(*html->notags), c.notags);
    }
}

TEST(NormalizeText, MatchesClamscanOutputs) {
    // cli_scanscript's kept normalized file (clamscan 1.4.6 --leave-temps) for a text file.
    auto text = normalize_text(bytes("Some TEXT here\tand\r\n  HELLO   World  \n"));
    ASSERT_TRUE(text);
    EXPECT_EQ(str(*text), "some text here and hello world ");
    // UTF-16LE with BOM: NULs and bytes >= 0x80 dropped, markup kept (not HTML-typed).
    const char u16[] = "\xff\xfeH\0e\0l\0l\0o\0 \0W\0O\0R\0L\0D\0 \0<\0b\0>\0x\0<\0/\0b\0>\0";
    text = normalize_text(std::span(reinterpret_cast<const unsigned char*>(u16), sizeof u16 - 1));
    ASSERT_TRUE(text);
    EXPECT_EQ(str(*text), "hello world <b>x</b>");
    text = normalize_text(bytes("a\x01" "b\x7f" "c\x85" "d\xe9" "E\x0b\x0c" "F"));
    ASSERT_TRUE(text);
    EXPECT_EQ(str(*text), "ab\x7f" "cde f");  // DEL is kept, VT and FF are whitespace
}

TEST(NormalizeText, WindowFlushRestartsWhitespace) {
    // 32 pages fill the 128 KiB window; the flush before page 33 forgets the pending space.
    std::string in(32 * 4096, 'x');
    in.back() = ' ';
    in += ' ';
    in += 'y';
    const auto text = normalize_text(bytes(in));
    ASSERT_TRUE(text);
    EXPECT_EQ(str(*text), std::string(32 * 4096 - 1, 'x') + "  y");
    normalize_limits limits;
    limits.max_script_normalize = in.size() - 1;
    EXPECT_FALSE(normalize_text(bytes(in), limits));
}

TEST(FileTyping, HtmlSignatures) {
    // clamscan --debug "Matched signature for file type HTML data" for these heads.
    EXPECT_TRUE(has_html_signature(bytes("x <html> y")));
    EXPECT_TRUE(has_html_signature(bytes("<SCRIPT src=a>")));
    EXPECT_TRUE(has_html_signature(bytes("text <a title=x HREF=y>")));
    EXPECT_TRUE(has_html_signature(bytes("<%@ LANGUAGE = VBScript %>")));
    EXPECT_FALSE(has_html_signature(bytes("<!DOCTYPE html><html lang=en>")));
    EXPECT_FALSE(has_html_signature(bytes("<HtMl>")));
    EXPECT_TRUE(has_html_signature(bytes("<a Href=x>")));    // "<a " then [hH][rR](EF|ef)
    EXPECT_FALSE(has_html_signature(bytes("<a HREf=x>")));
    EXPECT_FALSE(has_html_signature(bytes(" <%@ LANGUAGE =")));
}

TEST(FileTyping, TextClasses) {
    // clamscan --debug "Recognized ASCII text" / "UTF-16LE character data" / "binary data".
    EXPECT_EQ(classify_text(bytes("plain\ttext\r\n")), text_kind::ascii);
    EXPECT_EQ(classify_text(bytes("caf\xc3\xa9")), text_kind::ascii);  // >= 0x80 counts as text
    EXPECT_EQ(classify_text(bytes("xx\x00\x01 more")), text_kind::binary);
    // Without a byte-order mark any even-offset pair may pass as big-endian UTF-16.
    EXPECT_EQ(classify_text(bytes("abcdef\x01 ghi")), text_kind::utf16be);
    const char u16[] = "\xff\xfeH\0i\0";
    EXPECT_EQ(classify_text(std::span(reinterpret_cast<const unsigned char*>(u16), 6)),
              text_kind::utf16le);
    const char folded_in[] = "\xff\xfe<\0h\0";
    const auto folded =
        fold_utf16_to_ascii(std::span(reinterpret_cast<const unsigned char*>(folded_in), 6));
    EXPECT_EQ(str(folded), "\xdf<h");  // the BOM folds to 0xdf, as in html-utf16-tmp
}

// Runs clamscan on real HTML and text files and compares its kept temp files with ours.
class NormalizeClamscanParity : public ::testing::Test {
protected:
    static bool have_clamscan() { return std::system("clamscan --version >/dev/null 2>&1") == 0; }

    static std::vector<unsigned char> read(const std::filesystem::path& p) {
        std::ifstream f(p, std::ios::binary);
        return {std::istreambuf_iterator<char>(f), {}};
    }

    // The kept file named `name` (first found) under `dir`.
    static std::optional<std::filesystem::path> find(const std::filesystem::path& dir,
                                                     std::string_view prefix,
                                                     std::string_view suffix) {
        std::error_code ec;
        for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
            const std::string name = e.path().filename().string();
            if (e.is_regular_file() && e.path().parent_path().filename() != "rfc2397" &&
                name.starts_with(prefix) && name.ends_with(suffix)) {
                return e.path();
            }
        }
        return std::nullopt;
    }
};

TEST_F(NormalizeClamscanParity, RealFiles) {
    if (!have_clamscan()) {
        GTEST_SKIP() << "clamscan not installed";
    }
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator("/usr/share/doc", ec)) {
        const auto ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".html" || ext == ".htm" || ext == ".txt") &&
            e.file_size() > 64 && e.file_size() < (1U << 20)) {
            files.push_back(e.path());
        }
    }
    if (files.empty()) {
        GTEST_SKIP() << "no HTML or text files under /usr/share/doc";
    }
    std::sort(files.begin(), files.end());
    const std::size_t step = std::max<std::size_t>(1, files.size() / 12);

    const auto work = std::filesystem::temp_directory_path() /
                      ("normalize_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(work);
    const auto db = work / "dummy.ndb";
    std::ofstream(db) << "Dummy0:0:*:6e6f6e6578697374656e74\nDummy7:7:*:6e6f6e6578697374656e74\n";
    std::size_t compared = 0;
    for (std::size_t i = 0; i < files.size(); i += step) {
        const auto& file = files[i];
        const auto keep = work / std::to_string(i);
        std::filesystem::create_directories(keep);
        const std::string cmd = "clamscan --leave-temps --tempdir='" + keep.string() + "' -d '" +
                                db.string() + "' '" + file.string() + "' >/dev/null 2>&1";
        (void)std::system(cmd.c_str());
        const auto in = read(file);
        if (const auto nocomment = find(keep, "nocomment.html", "")) {
            const auto html = normalize_html(in);
            ASSERT_TRUE(html) << file;
            EXPECT_EQ(html->nocomment, read(*nocomment)) << file;
            const auto notags = find(keep, "notags.html", "");
            ASSERT_TRUE(notags && html->notags) << file;
            EXPECT_EQ(*html->notags, read(*notags)) << file;
            ++compared;
        } else if (const auto text = find(keep, "clamav-", ".tmp")) {
            const auto ours = normalize_text(in);
            ASSERT_TRUE(ours) << file;
            EXPECT_EQ(*ours, read(*text)) << file;
            ++compared;
        }
    }
    std::filesystem::remove_all(work, ec);
    EXPECT_GT(compared, 0U);
}

}  // namespace
}  // namespace ringscan::matcher::detail
