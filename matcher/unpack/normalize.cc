#include "matcher/unpack/normalize.h"

#include "base/hex.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <string_view>

namespace ringscan::matcher::detail {
namespace {

// The C library's isspace/isalnum/tolower in the "C" locale, which ClamAV runs in.
constexpr bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
constexpr bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
constexpr bool is_xdigit(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
constexpr bool is_alnum(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr unsigned char to_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + 32) : c;
}

struct named_entity {
    std::string_view name;
    std::uint16_t value;
};

// ClamAV's entity table (entitylist.h: HTML 4 plus the SGML ISO sets), sorted by name.
// Values were read back from clamscan 1.4.6's nocomment.html for every name.
constexpr named_entity named_entities[] = {
    {"AElig", 198}, {"Aacgr", 902}, {"Aacute", 193}, {"Acirc", 194}, {"Acy", 1040}, {"Agr", 913},
    {"Agrave", 192}, {"Alpha", 913}, {"Aring", 197}, {"Atilde", 195}, {"Auml", 196}, {"Barwed", 8966},
    {"Bcy", 1041}, {"Beta", 914}, {"Bgr", 914}, {"CHcy", 1063}, {"Cap", 8914}, {"Ccedil", 199},
    {"Chi", 935}, {"Cup", 8915}, {"DJcy", 1026}, {"DScy", 1029}, {"DZcy", 1039}, {"Dagger", 8225},
    {"Dcy", 1044}, {"Delta", 916}, {"Dgr", 916}, {"Dot", 168}, {"DotDot", 8412}, {"EEacgr", 905},
    {"EEgr", 919}, {"ETH", 208}, {"Eacgr", 904}, {"Eacute", 201}, {"Ecirc", 202}, {"Ecy", 1069},
    {"Egr", 917}, {"Egrave", 200}, {"Epsilon", 917}, {"Eta", 919}, {"Euml", 203}, {"Fcy", 1060},
    {"GJcy", 1027}, {"Gamma", 915}, {"Gcy", 1043}, {"Gg", 8921}, {"Ggr", 915}, {"Gt", 8811},
    {"HARDcy", 1066}, {"IEcy", 1045}, {"IOcy", 1025}, {"Iacgr", 906}, {"Iacute", 205}, {"Icirc", 206},
    {"Icy", 1048}, {"Idigr", 938}, {"Igr", 921}, {"Igrave", 204}, {"Iota", 921}, {"Iukcy", 1030},
    {"Iuml", 207}, {"Jcy", 1049}, {"Jsercy", 1032}, {"Jukcy", 1028}, {"KHcy", 1061}, {"KHgr", 935},
    {"KJcy", 1036}, {"Kappa", 922}, {"Kcy", 1050}, {"Kgr", 922}, {"LJcy", 1033}, {"Lambda", 923},
    {"Lcy", 1051}, {"Lgr", 923}, {"Ll", 8920}, {"Lt", 8810}, {"Mcy", 1052}, {"Mgr", 924}, {"Mu", 924},
    {"NJcy", 1034}, {"Ncy", 1053}, {"Ngr", 925}, {"Ntilde", 209}, {"Nu", 925}, {"OElig", 338},
    {"OHacgr", 911}, {"OHgr", 937}, {"Oacgr", 908}, {"Oacute", 211}, {"Ocirc", 212}, {"Ocy", 1054},
    {"Ogr", 927}, {"Ograve", 210}, {"Omega", 937}, {"Omicron", 927}, {"Oslash", 216}, {"Otilde", 213},
    {"Ouml", 214}, {"PHgr", 934}, {"PSgr", 936}, {"Pcy", 1055}, {"Pgr", 928}, {"Phi", 934},
    {"Pi", 928}, {"Prime", 8243}, {"Psi", 936}, {"Rcy", 1056}, {"Rgr", 929}, {"Rho", 929},
    {"SHCHcy", 1065}, {"SHcy", 1064}, {"SOFTcy", 1068}, {"Scaron", 352}, {"Scy", 1057}, {"Sgr", 931},
    {"Sigma", 931}, {"Sub", 8912}, {"Sup", 8913}, {"THORN", 222}, {"THgr", 920}, {"TSHcy", 1035},
    {"TScy", 1062}, {"Tau", 932}, {"Tcy", 1058}, {"Tgr", 932}, {"Theta", 920}, {"Uacgr", 910},
    {"Uacute", 218}, {"Ubrcy", 1038}, {"Ucirc", 219}, {"Ucy", 1059}, {"Udigr", 939}, {"Ugr", 933},
    {"Ugrave", 217}, {"Upsi", 978}, {"Upsilon", 933}, {"Uuml", 220}, {"Vcy", 1042}, {"Vdash", 8873},
    {"Verbar", 8214}, {"Vvdash", 8874}, {"Xgr", 926}, {"Xi", 926}, {"YAcy", 1071}, {"YIcy", 1031},
    {"YUcy", 1070}, {"Yacute", 221}, {"Ycy", 1067}, {"Yuml", 376}, {"ZHcy", 1046}, {"Zcy", 1047},
    {"Zeta", 918}, {"Zgr", 918}, {"aacgr", 940}, {"aacute", 225}, {"acirc", 226}, {"acute", 180},
    {"acy", 1072}, {"aelig", 230}, {"agr", 945}, {"agrave", 224}, {"alefsym", 8501}, {"aleph", 8501},
    {"alpha", 945}, {"amalg", 10815}, {"amp", 38}, {"and", 8743}, {"ang", 8736}, {"ang90", 8735},
    {"angmsd", 8737}, {"angsph", 8738}, {"angst", 8491}, {"ap", 8776}, {"ape", 8778}, {"apos", 39},
    {"aring", 229}, {"ast", 42}, {"asymp", 8776}, {"atilde", 227}, {"auml", 228}, {"barwed", 8965},
    {"bcong", 8780}, {"bcy", 1073}, {"bdquo", 8222}, {"becaus", 8757}, {"bepsi", 1014},
    {"bernou", 8492}, {"beta", 946}, {"beth", 8502}, {"bgr", 946}, {"blank", 9251}, {"blk12", 9618},
    {"blk14", 9617}, {"blk34", 9619}, {"block", 9608}, {"bottom", 8869}, {"bowtie", 8904},
    {"boxDL", 9559}, {"boxDR", 9556}, {"boxDl", 9558}, {"boxDr", 9555}, {"boxH", 9552},
    {"boxHD", 9574}, {"boxHU", 9577}, {"boxHd", 9572}, {"boxHu", 9575}, {"boxUL", 9565},
    {"boxUR", 9562}, {"boxUl", 9564}, {"boxUr", 9561}, {"boxV", 9553}, {"boxVH", 9580},
    {"boxVL", 9571}, {"boxVR", 9568}, {"boxVh", 9579}, {"boxVl", 9570}, {"boxVr", 9567},
    {"boxdL", 9557}, {"boxdR", 9554}, {"boxdl", 9488}, {"boxdr", 9484}, {"boxh", 9472},
    {"boxhD", 9573}, {"boxhU", 9576}, {"boxhd", 9516}, {"boxhu", 9524}, {"boxuL", 9563},
    {"boxuR", 9560}, {"boxul", 9496}, {"boxur", 9492}, {"boxv", 9474}, {"boxvH", 9578},
    {"boxvL", 9569}, {"boxvR", 9566}, {"boxvh", 9532}, {"boxvl", 9508}, {"boxvr", 9500},
    {"bprime", 8245}, {"breve", 728}, {"brvbar", 166}, {"bsim", 8765}, {"bsime", 8909}, {"bsol", 92},
    {"bull", 8226}, {"bump", 8782}, {"bumpe", 8783}, {"cap", 8745}, {"caret", 8257}, {"caron", 711},
    {"ccedil", 231}, {"cedil", 184}, {"cent", 162}, {"chcy", 1095}, {"check", 10003}, {"chi", 967},
    {"cir", 9675}, {"circ", 710}, {"cire", 8791}, {"clubs", 9827}, {"colon", 58}, {"colone", 8788},
    {"comma", 44}, {"commat", 64}, {"comp", 8705}, {"compfn", 8728}, {"cong", 8773}, {"conint", 8750},
    {"coprod", 8720}, {"copy", 169}, {"copysr", 8471}, {"crarr", 8629}, {"cross", 10007},
    {"cuepr", 8926}, {"cuesc", 8927}, {"cup", 8746}, {"cupre", 8828}, {"curren", 164}, {"cuvee", 8910},
    {"cuwed", 8911}, {"dArr", 8659}, {"dagger", 8224}, {"daleth", 8504}, {"darr", 8595},
    {"dash", 8208}, {"dashv", 8867}, {"dblac", 733}, {"dcy", 1076}, {"deg", 176}, {"delta", 948},
    {"dgr", 948}, {"diam", 8900}, {"diams", 9830}, {"die", 168}, {"divide", 247}, {"divonx", 8903},
    {"djcy", 1106}, {"dlcorn", 8990}, {"dlcrop", 8973}, {"dollar", 36}, {"dot", 729}, {"drcorn", 8991},
    {"drcrop", 8972}, {"dscy", 1109}, {"dtri", 9663}, {"dtrif", 9662}, {"dzcy", 1119}, {"eDot", 8785},
    {"eacgr", 941}, {"eacute", 233}, {"ecir", 8790}, {"ecirc", 234}, {"ecolon", 8789}, {"ecy", 1101},
    {"eeacgr", 942}, {"eegr", 951}, {"efDot", 8786}, {"egr", 949}, {"egrave", 232}, {"egs", 10902},
    {"ell", 8467}, {"els", 10901}, {"empty", 8709}, {"emsp", 8195}, {"emsp13", 8196}, {"emsp14", 8197},
    {"ensp", 8194}, {"epsi", 1013}, {"epsilon", 949}, {"epsis", 1013}, {"epsiv", 949}, {"equals", 61},
    {"equiv", 8801}, {"erDot", 8787}, {"esdot", 8784}, {"eta", 951}, {"eth", 240}, {"euml", 235},
    {"euro", 8364}, {"excl", 33}, {"exist", 8707}, {"fcy", 1092}, {"female", 9792}, {"ffilig", 64259},
    {"fflig", 64256}, {"ffllig", 64260}, {"filig", 64257}, {"flat", 9837}, {"fllig", 64258},
    {"fnof", 402}, {"forall", 8704}, {"fork", 8916}, {"frac12", 189}, {"frac13", 8531},
    {"frac14", 188}, {"frac15", 8533}, {"frac16", 8537}, {"frac18", 8539}, {"frac23", 8532},
    {"frac25", 8534}, {"frac34", 190}, {"frac35", 8535}, {"frac38", 8540}, {"frac45", 8536},
    {"frac56", 8538}, {"frac58", 8541}, {"frac78", 8542}, {"frasl", 8260}, {"frown", 8994},
    {"gE", 8807}, {"gEl", 10892}, {"gamma", 947}, {"gammad", 989}, {"gap", 10886}, {"gcy", 1075},
    {"ge", 8805}, {"gel", 8923}, {"ges", 10878}, {"ggr", 947}, {"gimel", 8503}, {"gjcy", 1107},
    {"gl", 8823}, {"grave", 96}, {"gsdot", 8919}, {"gsim", 8819}, {"gt", 62}, {"hArr", 8660},
    {"hairsp", 8202}, {"half", 189}, {"hamilt", 8459}, {"hardcy", 1098}, {"harr", 8596},
    {"hearts", 9829}, {"hellip", 8230}, {"horbar", 8213}, {"hybull", 8259}, {"hyphen", 8208},
    {"iacgr", 943}, {"iacute", 237}, {"icirc", 238}, {"icy", 1080}, {"idiagr", 912}, {"idigr", 970},
    {"iecy", 1077}, {"iexcl", 161}, {"iff", 8660}, {"igr", 953}, {"igrave", 236}, {"image", 8465},
    {"incare", 8453}, {"infin", 8734}, {"inodot", 305}, {"int", 8747}, {"intcal", 8890},
    {"iocy", 1105}, {"iota", 953}, {"iquest", 191}, {"isin", 8712}, {"iukcy", 1110}, {"iuml", 239},
    {"jcy", 1081}, {"jnodot", 106}, {"jsercy", 1112}, {"jukcy", 1108}, {"kappa", 954},
    {"kappav", 1008}, {"kcy", 1082}, {"kgr", 954}, {"khcy", 1093}, {"khgr", 967}, {"kjcy", 1116},
    {"lArr", 8656}, {"lE", 8806}, {"lEg", 10891}, {"lagran", 8466}, {"lambda", 955}, {"lang", 9001},
    {"lap", 10885}, {"laquo", 171}, {"larr", 8592}, {"lceil", 8968}, {"lcub", 123}, {"lcy", 1083},
    {"ldot", 8918}, {"ldquo", 8220}, {"ldquor", 8222}, {"le", 8804}, {"leg", 8922}, {"les", 10877},
    {"lfloor", 8970}, {"lg", 8822}, {"lgr", 955}, {"lhblk", 9604}, {"ljcy", 1113}, {"lowast", 8727},
    {"lowbar", 95}, {"loz", 9674}, {"lozf", 10731}, {"lpar", 40}, {"lpargt", 10656}, {"lrm", 8206},
    {"lsaquo", 8249}, {"lsim", 8818}, {"lsqb", 91}, {"lsquo", 8216}, {"lsquor", 8218}, {"lt", 60},
    {"lthree", 8907}, {"ltimes", 8905}, {"ltri", 9667}, {"ltrie", 8884}, {"ltrif", 9666},
    {"macr", 175}, {"male", 9794}, {"malt", 10016}, {"marker", 9646}, {"mcy", 1084}, {"mdash", 8212},
    {"mgr", 956}, {"micro", 181}, {"mid", 8739}, {"middot", 183}, {"minus", 8722}, {"minusb", 8863},
    {"mldr", 8230}, {"mnplus", 8723}, {"models", 8871}, {"mu", 956}, {"nabla", 8711}, {"natur", 9838},
    {"nbsp", 160}, {"ncy", 1085}, {"ndash", 8211}, {"ne", 8800}, {"nexist", 8708}, {"ngr", 957},
    {"ni", 8715}, {"njcy", 1114}, {"nldr", 8229}, {"not", 172}, {"notin", 8713}, {"nsub", 8836},
    {"ntilde", 241}, {"nu", 957}, {"num", 35}, {"numero", 8470}, {"numsp", 8199}, {"oS", 9416},
    {"oacgr", 972}, {"oacute", 243}, {"oast", 8859}, {"ocir", 8858}, {"ocirc", 244}, {"ocy", 1086},
    {"odash", 8861}, {"odot", 8857}, {"oelig", 339}, {"ogon", 731}, {"ogr", 959}, {"ograve", 242},
    {"ohacgr", 974}, {"ohgr", 969}, {"ohm", 8486}, {"oline", 8254}, {"omega", 969}, {"omicron", 959},
    {"ominus", 8854}, {"oplus", 8853}, {"or", 8744}, {"order", 8500}, {"ordf", 170}, {"ordm", 186},
    {"oslash", 248}, {"osol", 8856}, {"otilde", 245}, {"otimes", 8855}, {"ouml", 246}, {"par", 8741},
    {"para", 182}, {"part", 8706}, {"pcy", 1087}, {"percnt", 37}, {"period", 46}, {"permil", 8240},
    {"perp", 8869}, {"pgr", 960}, {"phgr", 966}, {"phi", 966}, {"phis", 981}, {"phiv", 966},
    {"phmmat", 8499}, {"phone", 9742}, {"pi", 960}, {"piv", 982}, {"planck", 8463}, {"plus", 43},
    {"plusb", 8862}, {"plusdo", 8724}, {"plusmn", 177}, {"pound", 163}, {"pr", 8826}, {"prap", 10935},
    {"pre", 10927}, {"prime", 8242}, {"prod", 8719}, {"prop", 8733}, {"prsim", 8830}, {"psgr", 968},
    {"psi", 968}, {"puncsp", 8200}, {"quest", 63}, {"quot", 34}, {"rArr", 8658}, {"radic", 8730},
    {"rang", 9002}, {"raquo", 187}, {"rarr", 8594}, {"rceil", 8969}, {"rcub", 125}, {"rcy", 1088},
    {"rdquo", 8221}, {"rdquor", 8221}, {"real", 8476}, {"rect", 9645}, {"reg", 174}, {"rfloor", 8971},
    {"rgr", 961}, {"rho", 961}, {"rhov", 1009}, {"ring", 730}, {"rlm", 8207}, {"rpar", 41},
    {"rpargt", 10644}, {"rsaquo", 8250}, {"rsqb", 93}, {"rsquo", 8217}, {"rsquor", 8217},
    {"rthree", 8908}, {"rtimes", 8906}, {"rtri", 9657}, {"rtrie", 8885}, {"rtrif", 9656}, {"rx", 8478},
    {"samalg", 8720}, {"sbquo", 8218}, {"sbsol", 65128}, {"sc", 8827}, {"scap", 10936},
    {"scaron", 353}, {"sccue", 8829}, {"sce", 10928}, {"scsim", 8831}, {"scy", 1089}, {"sdot", 8901},
    {"sdotb", 8865}, {"sect", 167}, {"semi", 59}, {"setmn", 8726}, {"sext", 10038}, {"sfgr", 962},
    {"sfrown", 8994}, {"sgr", 963}, {"sharp", 9839}, {"shchcy", 1097}, {"shcy", 1096}, {"shy", 173},
    {"sigma", 963}, {"sigmaf", 962}, {"sigmav", 962}, {"sim", 8764}, {"sime", 8771}, {"smid", 8739},
    {"smile", 8995}, {"softcy", 1100}, {"sol", 47}, {"spades", 9824}, {"spar", 8741}, {"sqcap", 8851},
    {"sqcup", 8852}, {"sqsub", 8847}, {"sqsube", 8849}, {"sqsup", 8848}, {"sqsupe", 8850},
    {"squ", 9633}, {"square", 9633}, {"squf", 9642}, {"ssetmn", 8726}, {"ssmile", 8995},
    {"sstarf", 8902}, {"star", 9734}, {"starf", 9733}, {"sub", 8834}, {"subE", 10949}, {"sube", 8838},
    {"sum", 8721}, {"sung", 9834}, {"sup", 8835}, {"sup1", 185}, {"sup2", 178}, {"sup3", 179},
    {"supE", 10950}, {"supe", 8839}, {"szlig", 223}, {"target", 8982}, {"tau", 964}, {"tcy", 1090},
    {"tdot", 8411}, {"telrec", 8981}, {"tgr", 964}, {"there4", 8756}, {"theta", 952}, {"thetas", 952},
    {"thetasym", 977}, {"thetav", 977}, {"thgr", 952}, {"thinsp", 8201}, {"thkap", 8776},
    {"thksim", 8764}, {"thorn", 254}, {"tilde", 732}, {"times", 215}, {"timesb", 8864}, {"top", 8868},
    {"tprime", 8244}, {"trade", 8482}, {"trie", 8796}, {"tscy", 1094}, {"tshcy", 1115},
    {"twixt", 8812}, {"uArr", 8657}, {"uacgr", 973}, {"uacute", 250}, {"uarr", 8593}, {"ubrcy", 1118},
    {"ucirc", 251}, {"ucy", 1091}, {"udiagr", 944}, {"udigr", 971}, {"ugr", 965}, {"ugrave", 249},
    {"uhblk", 9600}, {"ulcorn", 8988}, {"ulcrop", 8975}, {"uml", 168}, {"uplus", 8846}, {"upsi", 965},
    {"upsih", 978}, {"upsilon", 965}, {"urcorn", 8989}, {"urcrop", 8974}, {"utri", 9653},
    {"utrif", 9652}, {"uuml", 252}, {"vDash", 8872}, {"vcy", 1074}, {"vdash", 8866}, {"veebar", 8891},
    {"vellip", 8942}, {"verbar", 124}, {"vltri", 8882}, {"vprime", 8242}, {"vprop", 8733},
    {"vrtri", 8883}, {"wedgeq", 8793}, {"weierp", 8472}, {"wreath", 8768}, {"xcirc", 9711},
    {"xdtri", 9661}, {"xgr", 958}, {"xi", 958}, {"xutri", 9651}, {"yacute", 253}, {"yacy", 1103},
    {"ycy", 1099}, {"yen", 165}, {"yicy", 1111}, {"yucy", 1102}, {"yuml", 255}, {"zcy", 1079},
    {"zeta", 950}, {"zgr", 950}, {"zhcy", 1078}, {"zwj", 8205}, {"zwnj", 8204},
};

std::optional<std::uint16_t> entity_value(std::string_view name) {
    const auto* end = std::end(named_entities);
    const auto* it = std::lower_bound(
        std::begin(named_entities), end, name,
        [](const named_entity& e, std::string_view n) { return e.name < n; });
    if (it == end || it->name != name) {
        return std::nullopt;
    }
    return it->value;
}

/// A UTF-16 code unit as the normalizer writes it: bytes below 0xff as themselves, the
/// ideographic/fullwidth full stops as '.', anything else as "&#xhhhh;"; 0 as nothing.
struct code_unit_text {
    std::array<unsigned char, 8> bytes{};
    std::size_t size = 0;
};
code_unit_text code_unit_bytes(std::uint16_t u16) {
    code_unit_text text;
    if (u16 == 0) {
        return text;
    }
    if (u16 < 0xff) {
        text.bytes[0] = static_cast<unsigned char>(u16);
        text.size = 1;
        return text;
    }
    if (u16 == 0x3002 || u16 == 0xff0e || u16 == 0xfe52) {
        text.bytes[0] = '.';
        text.size = 1;
        return text;
    }
    text.bytes = {'&',
                  '#',
                  'x',
                  static_cast<unsigned char>(hex::digit(u16 >> 12U)),
                  static_cast<unsigned char>(hex::digit(u16 >> 8U)),
                  static_cast<unsigned char>(hex::digit(u16 >> 4U)),
                  static_cast<unsigned char>(hex::digit(u16)),
                  ';'};
    text.size = 8;
    return text;
}

/// An output buffer whose one-byte append inlines (std::vector::push_back does not at -O2,
/// and the normalizer appends most of its output a byte at a time). Storage is reserved up
/// front and zero-filled in steps as it is used, so a small output of a large input does not
/// touch more memory than it needs.
class byte_sink {
public:
    void reserve(std::size_t n) { buf_.reserve(n); }
    void push(unsigned char c) {
        if (size_ == buf_.size()) [[unlikely]] {
            grow(1);
        }
        buf_[size_++] = c;
    }
    void append(const unsigned char* first, std::size_t n) {
        if (n == 0) {
            return;
        }
        std::memcpy(room(n), first, n);
        size_ += n;
    }
    /// Where the next `n` bytes go when written directly; commit them with set_end().
    unsigned char* room(std::size_t n) {
        if (buf_.size() - size_ < n) [[unlikely]] {
            grow(n);
        }
        return buf_.data() + size_;
    }
    void set_end(const unsigned char* end) { size_ = static_cast<std::size_t>(end - buf_.data()); }
    [[nodiscard]] bool empty() const { return size_ == 0; }
    void pop_back() { --size_; }
    std::vector<unsigned char> release() {
        buf_.resize(size_);
        size_ = 0;
        return std::move(buf_);
    }

private:
    [[gnu::noinline]] void grow(std::size_t n) {
        constexpr std::size_t step = 64 * 1024;
        std::size_t want = size_ + std::max(n, step);
        if (want > buf_.capacity()) {
            want = std::max(want, 2 * buf_.capacity());
        }
        buf_.resize(want);
    }

    std::vector<unsigned char> buf_;  ///< bytes [0, size_) are the output, the rest spare room
    std::size_t size_ = 0;
};

/// Cuts the input the way ClamAV's reader does (htmlnorm.c cli_readchunk): pieces of at
/// most 8191 bytes with NUL bytes dropped, a piece that would end inside a word pulled back
/// to its last whitespace. Piece boundaries are visible in the output (leading whitespace of
/// a piece is skipped), so they are reproduced exactly.
class chunk_reader {
public:
    explicit chunk_reader(std::span<const unsigned char> in) : in_(in) {}

    /// The next piece, NUL-terminated (the parser looks one byte ahead); false at the end.
    bool next(std::vector<unsigned char>& chunk) {
        constexpr std::size_t max_len = 8192;
        const std::size_t available = in_.size() - offset_;
        const std::size_t want = std::min(available, max_len - 1);
        if (want == 0) {
            return false;
        }
        const unsigned char* start = in_.data() + offset_;
        const unsigned char* end = in_.data() + in_.size();
        const unsigned char* ptr = nullptr;
        chunk.clear();
        const auto* nul = static_cast<const unsigned char*>(std::memchr(start, 0, want));
        if (nul == nullptr) {
            chunk.assign(start, start + want);
            ptr = start + want;
            offset_ += want;
        } else {
            chunk.assign(start, nul);
            ptr = nul;
            while (ptr < end && chunk.size() < max_len - 1) {
                const unsigned char c = *ptr++;
                if (c != 0) {
                    chunk.push_back(c);
                }
            }
            offset_ += static_cast<std::size_t>(ptr - start);
        }
        if (ptr < end && !is_space(*ptr) && !chunk.empty()) {
            const std::size_t keep = rewind_to_space(chunk);
            if (keep < chunk.size()) {
                // Counted in kept bytes even when NULs were skipped, as ClamAV does.
                offset_ -= chunk.size() - keep;
                chunk.resize(keep);
            }
        }
        chunk.push_back(0);
        return true;
    }

private:
    // Length up to and including the last whitespace; the whole piece when there is none
    // past its first byte.
    static std::size_t rewind_to_space(const std::vector<unsigned char>& chunk) {
        std::size_t len = chunk.size();
        while (!is_space(chunk[len - 1]) && len > 1) {
            --len;
        }
        return len == 1 ? chunk.size() : len;
    }

    std::span<const unsigned char> in_;
    std::size_t offset_ = 0;
};

enum class html_state : std::uint8_t {
    bad,
    norm,
    eight_bit,
    comment,
    char_ref,
    entity_ref_decode,
    skip_ws,
    trim_ws,
    tag,
    tag_arg,
    tag_arg_val,
    tag_arg_equal,
    process_tag,
    char_ref_decode,
    rfc2397_type,
    rfc2397_init,
    rfc2397_data,
    rfc2397_finish,
    rfc2397_esc,
    escape_char,
};

enum class quoting : std::uint8_t { single_quoted, double_quoted, not_quoted };

// Tag names, attribute names and values are kept to this many bytes.
constexpr std::size_t max_html_string = 1024;

struct tag_argument {
    std::vector<unsigned char> name;
    std::vector<unsigned char> value;
    bool has_value = false;
};

// How the text fast path (html_normalizer::scan_text) treats a byte in states norm/trim_ws.
enum class text_byte : std::uint8_t {
    special,  ///< left to step(): '<', '&', bytes >= 0x80, the line's NUL terminator
    plain,    ///< written lowercased to both outputs
    control,  ///< written as is; a space in notags
    space,    ///< whitespace (LF included: outside binary data it reads as a space)
    cr,       ///< dropped outside binary data
};

constexpr std::array<text_byte, 256> text_bytes = [] {
    std::array<text_byte, 256> t{};
    for (std::size_t c = 1; c < 0x20; ++c) {
        t[c] = text_byte::control;
    }
    for (std::size_t c = 0x21; c < 0x80; ++c) {
        t[c] = text_byte::plain;
    }
    for (const char c : {' ', '\t', '\n', '\v', '\f'}) {
        t[static_cast<unsigned char>(c)] = text_byte::space;
    }
    t['\r'] = text_byte::cr;
    t['<'] = text_byte::special;
    t['&'] = text_byte::special;
    return t;
}();

// to_lower as a table; in scripts a single quote is also written as a double quote.
constexpr std::array<unsigned char, 256> make_lower_table(bool script) {
    std::array<unsigned char, 256> t{};
    for (std::size_t c = 0; c < t.size(); ++c) {
        t[c] = to_lower(static_cast<unsigned char>(c));
    }
    if (script) {
        t['\''] = '"';
    }
    return t;
}
constexpr std::array<unsigned char, 256> lower_text = make_lower_table(false);
constexpr std::array<unsigned char, 256> lower_script = make_lower_table(true);

/// The HTML normalizer state machine (htmlnorm.c cli_html_normalise with no URL collection,
/// as cli_scanhtml runs it). Kept byte-compatible, odd corners included.
class html_normalizer {
public:
    normalized_html run(std::span<const unsigned char> in) {
        // Text comes out about as long as it went in (tags and comments shrink it).
        nocomment_.reserve(in.size() + 16);
        notags_.reserve(in.size() + 16);
        tag_.reserve(max_html_string);
        tag_arg_.reserve(max_html_string);
        tag_val_.reserve(max_html_string);
        chunk_reader reader(in);
        std::vector<unsigned char> line;
        while (reader.next(line)) {
            if (!process_line(line)) {
                return finish(false);
            }
            if (next_state_ == state_) {
                next_state_ = html_state::bad;  // ClamAV's guard against looping
            }
        }
        return finish(true);
    }

private:
    // Returns false when the machine reached its error state (ClamAV stops normalizing).
    bool process_line(std::vector<unsigned char>& line) {
        std::size_t p = 0;
        while (line[p] != 0 && is_space(line[p])) {
            ++p;
        }
        while (line[p] != 0) {
            if (!binary_) {
                scan_run(line, p);
                if (line[p] == 0) {
                    break;
                }
            }
            if (!binary_ && line[p] == '\n') {
                line[p] = ' ';
                continue;
            }
            if (!binary_ && line[p] == '\r') {
                ++p;
                continue;
            }
            if (!step(line, p)) {
                return false;
            }
        }
        return true;
    }

    // Runs of bytes that step() would handle one at a time the same way, in the states
    // most input is spent in (outside binary data, where LF and CR are special), and the
    // commonest moves between them (a tag opened, named, its arguments, closed). Leaves p
    // at the line's end or at a byte step() must see, with the state as step() would have
    // left it. Each turn of the loop consumes a byte or moves on to a state that does.
    void scan_run(const std::vector<unsigned char>& line, std::size_t& p) {
        const unsigned char* const s = line.data();
        for (;;) {
            switch (state_) {
                case html_state::norm:
                    scan_text(line, p);
                    if (s[p] != '<') {
                        return;
                    }
                    out('<');
                    text_space_once();
                    ++p;
                    tag_.clear();
                    enter(html_state::skip_ws, html_state::tag);
                    break;
                case html_state::trim_ws:
                    if (next_state_ != html_state::norm) {
                        return;
                    }
                    scan_text(line, p);
                    break;
                case html_state::skip_ws:
                    // LF and CR are whitespace too, and step() would consume them alike.
                    while (is_space(s[p])) {
                        ++p;
                    }
                    if (s[p] == 0) {
                        return;
                    }
                    enter(next_state_, html_state::bad);
                    break;
                case html_state::process_tag:
                    // step() runs at a byte other than CR: the tag is processed only when
                    // such a byte follows in this piece.
                    if (s[p] == '\r') {
                        return;
                    }
                    process_tag();
                    break;
                case html_state::tag:
                    if (in_script_) {
                        return;
                    }
                    scan_tag_name(s, p);
                    if (s[p] != '>') {
                        return;
                    }
                    out('>');
                    ++p;
                    enter(html_state::skip_ws, html_state::process_tag);
                    break;
                case html_state::tag_arg:
                    scan_argument_name(s, p);
                    if (s[p] != '=') {
                        return;
                    }
                    out('=');
                    ++p;
                    escape_ = false;
                    quoted_ = quoting::not_quoted;
                    tag_val_.clear();
                    enter(html_state::skip_ws, html_state::tag_arg_val);
                    break;
                case html_state::tag_arg_val:
                    if (mbchar2_ == 0) {
                        scan_argument_value(s, p);
                    }
                    return;
                case html_state::comment: {
                    if (in_script_) {
                        return;
                    }
                    // Outside scripts a comment is skipped up to the first '>'.
                    const std::size_t end = line.size() - 1;  // the NUL terminator
                    const auto* gt =
                        static_cast<const unsigned char*>(std::memchr(s + p, '>', end - p));
                    if (gt == nullptr) {
                        p = end;
                        return;
                    }
                    p = static_cast<std::size_t>(gt - s) + 1;
                    enter(html_state::skip_ws, html_state::norm);
                    break;
                }
                default:
                    return;
            }
            if (s[p] == 0) {
                return;
            }
        }
    }

    // A tag name outside scripts: up to whitespace or '>' ("<!" is left to step()).
    void scan_tag_name(const unsigned char* s, std::size_t& p) {
        std::size_t i = p;
        for (;;) {
            const unsigned char c = s[i];
            if (c == 0 || c == '>' || is_space(c) || (c == '!' && tag_.empty())) {
                break;
            }
            const unsigned char lower = to_lower(c);
            out(lower);
            if (tag_.size() < max_html_string) {
                tag_.push_back(lower);
            }
            ++i;
        }
        p = i;
    }

    // An attribute name: up to whitespace, '=' or '>'.
    void scan_argument_name(const unsigned char* s, std::size_t& p) {
        std::size_t i = p;
        for (;;) {
            const unsigned char c = s[i];
            if (c == 0 || c == '=' || c == '>' || is_space(c)) {
                break;
            }
            if (tag_arg_.empty()) {
                out(' ');
            }
            const unsigned char lower = to_lower(c);
            out(lower);
            if (tag_arg_.size() < max_html_string) {
                tag_arg_.push_back(lower);
            }
            ++i;
        }
        p = i;
    }

    // The plain ASCII bytes of an attribute value (no multi-byte sequence pending).
    void scan_argument_value(const unsigned char* s, std::size_t& p) {
        std::size_t i = p;
        for (;;) {
            const unsigned char c = s[i];
            if (c == 0 || c >= 0x80 || c == '&' || c == '\'' || c == '"' || c == '>' ||
                is_space(c) || tag_val_is_data()) {
                break;
            }
            out(to_lower(c));
            tag_val_push(c);
            ++i;
        }
        if (i != p) {
            escape_ = s[i] == '\\';  // as step() leaves it after the last byte
            p = i;
        }
    }
    bool tag_val_is_data() const {
        const std::string_view val(reinterpret_cast<const char*>(tag_val_.data()), tag_val_.size());
        return val == "data:" || val == "\"data:";
    }

    // step() for states norm and trim_ws (trim_ws always returns to norm) over a run of
    // text, where most of the input is spent. Leaves p at the line's end or at a byte of
    // text_byte::special with the state at norm; each byte consumed adds at most one byte
    // to each output, plus the space that ends a whitespace run begun on an earlier line.
    void scan_text(const std::vector<unsigned char>& line, std::size_t& p) {
        const unsigned char* const s = line.data();
        const std::size_t room = line.size() - p + 1;
        unsigned char* o = nocomment_.room(room);
        unsigned char* t = notags_.room(room);
        const bool script = in_script_;
        const auto& lower = script ? lower_script : lower_text;
        bool trimming = state_ == html_state::trim_ws;
        bool changed_state = false;
        bool space_written = text_space_written_;
        std::size_t i = p;
        for (;;) {
            const unsigned char c = s[i];
            const text_byte kind = text_bytes[c];
            if (kind == text_byte::plain && !trimming) {
                unsigned char b = c;
                if (script) {
                    do {
                        *o++ = lower[b];
                        b = s[++i];
                    } while (text_bytes[b] == text_byte::plain);
                } else {
                    do {
                        const unsigned char l = lower[b];
                        *o++ = l;
                        *t++ = l;
                        b = s[++i];
                    } while (text_bytes[b] == text_byte::plain);
                    space_written = false;
                }
                continue;
            }
            if (kind == text_byte::cr) {
                ++i;
                continue;
            }
            if (kind == text_byte::space) {
                if (!trimming) {
                    if (!space_written && !script) {
                        *t++ = ' ';
                        space_written = true;
                    }
                    trimming = true;
                    changed_state = true;
                }
                ++i;
                continue;
            }
            if (c == 0) {
                break;  // the line ends, in whichever state
            }
            if (trimming) {
                if (!script) {
                    *o++ = ' ';
                }
                trimming = false;
                changed_state = true;
            }
            if (kind == text_byte::special) {
                break;
            }
            if (kind == text_byte::plain) {
                continue;  // handled above, now out of the whitespace run
            }
            *o++ = c;  // a control byte
            if (!script && !space_written) {
                *t++ = ' ';
                space_written = true;
            }
            ++i;
        }
        p = i;
        nocomment_.set_end(o);
        notags_.set_end(t);
        text_space_written_ = space_written;
        if (changed_state) {
            if (trimming) {
                enter(html_state::trim_ws, html_state::norm);
            } else {
                enter(html_state::norm, html_state::bad);
            }
        }
    }

    void out(unsigned char c) { nocomment_.push(c); }
    void text(unsigned char c) { notags_.push(c); }
    void text_space_once() {
        if (!text_space_written_ && !in_script_) {
            text(' ');
            text_space_written_ = true;
        }
    }
    void tag_val_push(unsigned char c) {
        if (tag_val_.size() < max_html_string) {
            tag_val_.push_back(c);
        }
    }
    void tag_val_push_if_value(unsigned char c) {
        if (next_state_ == html_state::tag_arg_val) {
            tag_val_push(c);
        }
    }
    void enter(html_state state, html_state next) {
        state_ = state;
        next_state_ = next;
    }
    void add_argument(bool with_value) {
        // The slots of earlier tags are reused, buffers and all.
        if (tag_arg_count_ == tag_args_.size()) {
            tag_args_.emplace_back();
        }
        tag_argument& arg = tag_args_[tag_arg_count_++];
        arg.name.assign(tag_arg_.begin(), tag_arg_.end());
        arg.has_value = with_value;
        arg.value.clear();
        if (with_value) {
            // A value that starts with a quote loses its first and last byte.
            if (!tag_val_.empty() && tag_val_.front() == '"') {
                if (tag_val_.size() >= 2) {
                    arg.value.assign(tag_val_.begin() + 1, tag_val_.end() - 1);
                }
            } else {
                arg.value.assign(tag_val_.begin(), tag_val_.end());
            }
        }
    }
    const std::vector<unsigned char>* argument(std::string_view name) const {
        for (std::size_t i = 0; i < tag_arg_count_; ++i) {
            const tag_argument& arg = tag_args_[i];
            if (std::string_view(reinterpret_cast<const char*>(arg.name.data()),
                                 arg.name.size()) == name) {
                return arg.has_value ? &arg.value : nullptr;
            }
        }
        return nullptr;
    }
    // Emits the bytes a multi-byte (>= 0x80) sequence stands for; returns true when the
    // sequence was one of the full stops and the current byte was consumed with it.
    template <typename Emit>
    static bool flush_multibyte(std::uint32_t mb, unsigned char current, Emit emit,
                                bool& consumed) {
        consumed = false;
        if (mb == 0xE38082 || mb == 0xEFBC8E || mb == 0xEFB992 ||
            (mb == 0xA1 && (current == 0x43 || current == 0x44 || current == 0x4F))) {
            emit(static_cast<unsigned char>('.'), 3);
            consumed = (mb == 0xA1);
            return true;
        }
        const auto c0 = static_cast<unsigned char>(mb >> 16);
        const auto c1 = static_cast<unsigned char>((mb >> 8) & 0xff);
        const auto c2 = static_cast<unsigned char>(mb & 0xff);
        if (c0 != 0) {
            emit(c0, 0);
        }
        if (c0 != 0 || c1 != 0) {
            emit(c1, 1);
        }
        emit(c2, 2);
        return false;
    }

    bool step(std::vector<unsigned char>& line, std::size_t& p);
    void process_tag();

    normalized_html finish(bool completed) {
        if (completed && entity_.size() > 0) {
            // An entity cut by the end of the input.
            const std::string_view name(reinterpret_cast<const char*>(entity_.data()),
                                        entity_.size());
            if (const auto value = entity_value(name)) {
                const code_unit_text unit = code_unit_bytes(*value);
                nocomment_.append(unit.bytes.data(), unit.size);
            } else {
                out('&');
                for (const unsigned char c : entity_) {
                    out(to_lower(c));
                }
            }
        }
        if (rfc2397_open_) {
            rfc2397_.push_back(std::move(rfc2397_current_));
        }
        normalized_html result;
        result.nocomment = nocomment_.release();
        result.notags = notags_.release();
        result.rfc2397 = std::move(rfc2397_);
        result.exact = exact_;
        return result;
    }

    html_state state_ = html_state::norm;
    html_state next_state_ = html_state::bad;
    bool binary_ = false;
    bool in_script_ = false;  ///< inside <script> or <style>
    bool in_style_ = false;
    bool text_space_written_ = false;
    bool escape_ = false;
    bool hex_ = false;
    bool exact_ = true;
    quoting quoted_ = quoting::not_quoted;
    std::int64_t value_ = 0;
    std::size_t escape_length_ = 0;
    std::uint32_t mbchar_ = 0;
    std::uint32_t mbchar2_ = 0;
    std::vector<unsigned char> tag_;
    std::vector<unsigned char> tag_arg_;
    std::vector<unsigned char> tag_val_;
    std::vector<unsigned char> entity_;
    std::vector<tag_argument> tag_args_;  ///< the first tag_arg_count_ are the current tag's
    std::size_t tag_arg_count_ = 0;
    byte_sink nocomment_;
    byte_sink notags_;
    std::vector<std::vector<unsigned char>> rfc2397_;
    std::vector<unsigned char> rfc2397_current_;
    bool rfc2397_open_ = false;
};

bool html_normalizer::step(std::vector<unsigned char>& line, std::size_t& p) {
    const unsigned char c = line[p];
    switch (state_) {
        case html_state::bad:
            return false;
        case html_state::skip_ws:
            if (is_space(c)) {
                ++p;
            } else {
                enter(next_state_, html_state::bad);
            }
            break;
        case html_state::trim_ws:
            if (is_space(c)) {
                ++p;
            } else {
                if (!in_script_) {
                    out(' ');
                }
                enter(next_state_, html_state::bad);
            }
            break;
        case html_state::eight_bit:
            if (c < 0x80 || mbchar_ >= 0x10000) {
                bool consumed = false;
                // notags gets the middle byte where the last is due (as ClamAV does).
                const auto c1 = static_cast<unsigned char>((mbchar_ >> 8) & 0xff);
                flush_multibyte(
                    mbchar_, c,
                    [&](unsigned char b, int which) {
                        out(b);
                        text(which == 2 ? c1 : b);
                    },
                    consumed);
                mbchar_ = 0;
                if (consumed) {
                    ++p;
                    break;
                }
                enter(next_state_, html_state::norm);
            } else {
                mbchar_ = (mbchar_ << 8) | c;
                ++p;
            }
            break;
        case html_state::norm:
            if (c == '<') {
                out('<');
                text_space_once();
                ++p;
                tag_.clear();
                enter(html_state::skip_ws, html_state::tag);
            } else if (is_space(c)) {
                text_space_once();
                enter(html_state::trim_ws, html_state::norm);
            } else if (c == '&') {
                text_space_once();
                enter(html_state::char_ref, html_state::norm);
                ++p;
            } else if (c >= 0x80) {
                enter(html_state::eight_bit, html_state::norm);
                mbchar_ = c;
                ++p;
            } else {
                unsigned char lower = to_lower(c);
                if (in_script_ && lower == '\'') {
                    lower = '"';
                }
                out(lower);
                if (!in_script_) {
                    if (c < 0x20) {
                        text_space_once();
                    } else {
                        text(lower);
                        text_space_written_ = false;
                    }
                }
                ++p;
            }
            break;
        case html_state::tag:
            if (tag_.empty() && c == '!') {
                if (in_script_) {
                    out('!');
                } else if (!nocomment_.empty()) {
                    nocomment_.pop_back();  // take back the '<'
                }
                enter(html_state::comment, html_state::bad);
                ++p;
            } else if (c == '>') {
                out('>');
                ++p;
                enter(html_state::skip_ws, html_state::process_tag);
            } else if (!is_space(c)) {
                out(to_lower(c));
                // Inside a script only an end tag is a tag.
                if (in_script_ && tag_.empty() && c != '/') {
                    state_ = html_state::norm;
                }
                if (tag_.size() < max_html_string) {
                    tag_.push_back(to_lower(c));
                }
                ++p;
            } else {
                tag_arg_.clear();
                enter(html_state::skip_ws,
                      in_script_ ? html_state::process_tag : html_state::tag_arg);
            }
            break;
        case html_state::tag_arg:
            if (c == '=') {
                out('=');
                ++p;
                escape_ = false;
                quoted_ = quoting::not_quoted;
                tag_val_.clear();
                enter(html_state::skip_ws, html_state::tag_arg_val);
            } else if (is_space(c)) {
                ++p;
                enter(html_state::skip_ws, html_state::tag_arg_equal);
            } else if (c == '>') {
                out('>');
                if (!tag_arg_.empty()) {
                    add_argument(false);
                }
                ++p;
                enter(html_state::process_tag, html_state::bad);
            } else {
                if (tag_arg_.empty()) {
                    out(' ');
                }
                out(to_lower(c));
                if (tag_arg_.size() < max_html_string) {
                    tag_arg_.push_back(to_lower(c));
                }
                ++p;
            }
            break;
        case html_state::tag_arg_equal:
            if (c == '=') {
                out('=');
                ++p;
                escape_ = false;
                quoted_ = quoting::not_quoted;
                tag_val_.clear();
                enter(html_state::skip_ws, html_state::tag_arg_val);
            } else {
                if (!tag_arg_.empty()) {
                    add_argument(false);
                }
                tag_arg_.clear();
                enter(html_state::tag_arg, html_state::bad);
            }
            break;
        case html_state::tag_arg_val: {
            if (tag_val_is_data()) {
                // RFC 2397 inline data: its payload goes to a file of its own.
                if (!nocomment_.empty()) {
                    nocomment_.pop_back();
                }
                if (quoted_ != quoting::not_quoted) {
                    out('"');
                }
                tag_val_.clear();
                enter(html_state::rfc2397_type, html_state::tag_arg);
            } else if (c == '&') {
                enter(html_state::char_ref, html_state::tag_arg_val);
                ++p;
            } else if (c == '\'' || c == '"') {
                const quoting mine =
                    c == '\'' ? quoting::single_quoted : quoting::double_quoted;
                if (tag_val_.empty()) {
                    quoted_ = mine;
                    out('"');
                    tag_val_push('"');
                    ++p;
                } else if (!escape_ && quoted_ == mine) {
                    out('"');
                    tag_val_push('"');
                    add_argument(true);
                    ++p;
                    tag_arg_.clear();
                    enter(html_state::skip_ws, html_state::tag_arg);
                } else {
                    out('"');
                    tag_val_push('"');
                    ++p;
                }
            } else if (is_space(c) || c == '>') {
                if (quoted_ == quoting::not_quoted) {
                    add_argument(true);
                    tag_arg_.clear();
                    enter(html_state::skip_ws, html_state::tag_arg);
                } else {
                    // ClamAV ends the quoting at the first space or '>' inside quotes.
                    out(c);
                    tag_val_push(is_space(c) ? ' ' : '>');
                    escape_ = false;
                    quoted_ = quoting::not_quoted;
                    enter(html_state::skip_ws, html_state::tag_arg_val);
                    ++p;
                }
            } else {
                if (mbchar2_ != 0 && (c < 0x80 || mbchar2_ >= 0x10000)) {
                    bool consumed = false;
                    flush_multibyte(
                        mbchar2_, c,
                        [&](unsigned char b, int) {
                            out(b);
                            tag_val_push(b);
                        },
                        consumed);
                    mbchar2_ = 0;
                    if (consumed) {
                        ++p;
                        break;
                    }
                }
                if (c >= 0x80) {
                    mbchar2_ = (mbchar2_ << 8) | c;
                } else {
                    out(to_lower(c));
                    tag_val_push(c);
                }
                ++p;
            }
            // ClamAV tests the byte after the one just handled.
            escape_ = line[p] == '\\';
            break;
        }
        case html_state::comment:
            if (in_script_ && !is_space(c)) {
                unsigned char lower = to_lower(c);
                if (lower == '\'') {
                    lower = '"';
                }
                out(lower);
            }
            if (c == '>') {
                enter(html_state::skip_ws, html_state::norm);
            }
            ++p;
            break;
        case html_state::process_tag:
            process_tag();
            break;
        case html_state::char_ref:
            if (c == '#') {
                value_ = 0;
                hex_ = false;
                state_ = html_state::char_ref_decode;
                ++p;
            } else {
                state_ = html_state::entity_ref_decode;
            }
            break;
        case html_state::entity_ref_decode:
            if (c == ';') {
                const std::string_view name(reinterpret_cast<const char*>(entity_.data()),
                                            entity_.size());
                if (const auto value = entity_value(name)) {
                    const code_unit_text unit = code_unit_bytes(*value);
                    for (std::size_t i = 0; i < unit.size; ++i) {
                        out(unit.bytes[i]);
                        tag_val_push_if_value(unit.bytes[i]);
                    }
                } else {
                    out('&');
                    tag_val_push_if_value('&');
                    for (const unsigned char e : entity_) {
                        out(to_lower(e));
                        tag_val_push_if_value(to_lower(e));
                    }
                    tag_val_push_if_value(';');
                    out(';');
                }
                entity_.clear();
                enter(next_state_, html_state::bad);
                ++p;
            } else if ((is_alnum(c) || c == '_' || c == ':' || c == '-') &&
                       entity_.size() < max_html_string) {
                entity_.push_back(c);
                ++p;
            } else {
                // Not an entity after all: written out as it came, lowercased.
                tag_val_push_if_value('&');
                out('&');
                for (const unsigned char e : entity_) {
                    out(to_lower(e));
                    tag_val_push_if_value(to_lower(e));
                }
                entity_.clear();
                enter(next_state_, html_state::bad);
            }
            break;
        case html_state::char_ref_decode:
            if (value_ == 0 && (c == 'x' || c == 'X')) {
                hex_ = true;
                ++p;
            } else if (c == ';') {
                tag_val_push_if_value(static_cast<unsigned char>(value_));
                if (value_ < 0x80) {
                    out(to_lower(static_cast<unsigned char>(value_)));
                } else {
                    const code_unit_text unit =
                        code_unit_bytes(static_cast<std::uint16_t>(value_));
                    nocomment_.append(unit.bytes.data(), unit.size);
                }
                enter(next_state_, html_state::bad);
                ++p;
            } else if (is_digit(c) || (hex_ && is_xdigit(c))) {
                constexpr std::int64_t int32_max = 0x7fffffff;
                const std::int64_t base = hex_ ? 16 : 10;
                if ((value_ >> 32) * base >= int32_max) {
                    out(static_cast<unsigned char>(value_));
                    enter(next_state_, html_state::bad);
                    ++p;
                    break;
                }
                value_ *= base;
                const std::int64_t digit = is_digit(c) ? c - '0' : to_lower(c) - 'a' + 10;
                if (value_ > INT64_MAX - digit) {
                    out(static_cast<unsigned char>(value_));
                    enter(next_state_, html_state::bad);
                    ++p;
                    break;
                }
                value_ += digit;
                ++p;
            } else {
                // An unterminated reference still writes its (low) byte, NUL included.
                out(static_cast<unsigned char>(value_));
                enter(next_state_, html_state::bad);
            }
            break;
        case html_state::rfc2397_type:
            if (c == '\'' || c == '"') {
                const quoting mine =
                    c == '\'' ? quoting::single_quoted : quoting::double_quoted;
                if (!escape_ && quoted_ == mine) {
                    ++p;
                    tag_arg_.clear();
                    enter(html_state::skip_ws, html_state::tag_arg);
                } else {
                    tag_val_push('"');
                    ++p;
                }
            } else if (is_space(c) || c == '>') {
                if (quoted_ == quoting::not_quoted) {
                    tag_arg_.clear();
                    enter(html_state::skip_ws, html_state::tag_arg);
                } else {
                    tag_val_push(is_space(c) ? ' ' : '>');
                    escape_ = false;
                    quoted_ = quoting::not_quoted;
                    enter(html_state::skip_ws, html_state::rfc2397_type);
                    ++p;
                }
            } else if (c == ',') {
                escape_ = false;
                enter(html_state::rfc2397_init, html_state::bad);
                ++p;
            } else {
                tag_val_push(to_lower(c));
                ++p;
            }
            escape_ = line[p] == '\\';
            break;
        case html_state::rfc2397_init: {
            if (rfc2397_open_) {
                rfc2397_.push_back(std::move(rfc2397_current_));
            }
            rfc2397_current_.clear();
            rfc2397_open_ = true;
            auto put = [this](std::string_view s) {
                rfc2397_current_.insert(rfc2397_current_.end(), s.begin(), s.end());
            };
            put("From html-normalise\n");
            put("Content-type: ");
            // ClamAV writes the media type as collected (an empty one stays empty).
            rfc2397_current_.insert(rfc2397_current_.end(), tag_val_.begin(), tag_val_.end());
            put("\n");
            const std::string_view type(reinterpret_cast<const char*>(tag_val_.data()),
                                        tag_val_.size());
            if (type.find(";base64") != std::string_view::npos) {
                put("Content-transfer-encoding: base64\n");
            }
            put("\n");
            state_ = html_state::rfc2397_data;
            binary_ = true;
            break;
        }
        case html_state::rfc2397_data:
            if (c == '&') {
                enter(html_state::char_ref, html_state::rfc2397_data);
                ++p;
            } else if (c == '%') {
                escape_length_ = 0;
                value_ = 0;
                enter(html_state::escape_char, html_state::rfc2397_esc);
                ++p;
            } else if (c == '\'' || c == '"') {
                const quoting mine =
                    c == '\'' ? quoting::single_quoted : quoting::double_quoted;
                if (!escape_ && quoted_ == mine) {
                    state_ = html_state::rfc2397_finish;
                } else {
                    rfc2397_current_.push_back(c);
                }
                ++p;
            } else if (is_space(c) || c == '>') {
                if (quoted_ == quoting::not_quoted) {
                    state_ = html_state::rfc2397_finish;
                } else {
                    rfc2397_current_.push_back(c);
                }
                ++p;
            } else {
                rfc2397_current_.push_back(c);
                ++p;
            }
            escape_ = line[p] == '\\';
            break;
        case html_state::rfc2397_finish:
            if (rfc2397_open_) {
                rfc2397_.push_back(std::move(rfc2397_current_));
                rfc2397_current_.clear();
                rfc2397_open_ = false;
            }
            escape_ = false;
            quoted_ = quoting::not_quoted;
            binary_ = false;
            enter(html_state::skip_ws, html_state::tag_arg);
            break;
        case html_state::rfc2397_esc:
            if (escape_length_ == 2) {
                rfc2397_current_.push_back(static_cast<unsigned char>(value_));
            } else if (escape_length_ == 1) {
                rfc2397_current_.push_back('%');
                rfc2397_current_.push_back(static_cast<unsigned char>(value_ + '0'));
            } else {
                rfc2397_current_.push_back('%');
            }
            state_ = html_state::rfc2397_data;
            break;
        case html_state::escape_char:
            value_ *= 16;
            ++escape_length_;
            if (is_xdigit(c)) {
                value_ += is_digit(c) ? c - '0' : to_lower(c) - 'a' + 10;
            } else {
                state_ = next_state_;
            }
            if (escape_length_ == 2) {
                state_ = next_state_;
            }
            ++p;
            break;
    }
    return true;
}

void html_normalizer::process_tag() {
    enter(html_state::skip_ws, html_state::norm);
    const std::string_view tag(reinterpret_cast<const char*>(tag_.data()), tag_.size());
    auto is_encoded_language = [this] {
        const auto* language = argument("language");
        if (language == nullptr) {
            return false;
        }
        std::string lower;
        for (const unsigned char c : *language) {
            lower.push_back(static_cast<char>(to_lower(c)));
        }
        return lower == "jscript.encode" || lower == "vbscript.encode";
    };
    if (!tag.empty() && tag.front() == '/') {
        // </script> also ends a style block; </style> ends only that.
        if (tag == "/script" || (tag == "/style" && in_style_)) {
            in_script_ = false;
            in_style_ = false;
        }
    } else if (tag == "script") {
        if (is_encoded_language()) {
            exact_ = false;  // ClamAV decodes MS Script Encoder here; we do not
        }
        in_script_ = true;
        in_style_ = false;
    } else if (tag == "style") {
        // ClamAV 1.x (not 0.103) treats a style block like a script: kept whole, comments
        // included, whitespace dropped, ' as ", nothing in notags.
        in_script_ = true;
        in_style_ = true;
    } else if (tag == "%@") {
        if (is_encoded_language()) {
            exact_ = false;
        }
    } else if (tag == "a" || tag == "img") {
        // The link target goes to the text, as a word of its own.
        const auto* target = argument(tag == "a" ? "href" : "src");
        if (target != nullptr && !target->empty()) {
            notags_.append(target->data(), target->size());
            text(' ');
            text_space_written_ = true;
        }
    }
    tag_arg_count_ = 0;
}

}  // namespace

std::optional<normalized_html> normalize_html(std::span<const unsigned char> in,
                                              const normalize_limits& limits) {
    if (in.size() > limits.max_html_normalize) {
        return std::nullopt;
    }
    html_normalizer normalizer;
    normalized_html result = normalizer.run(in);
    if (in.size() > limits.max_html_notags) {
        result.notags.reset();  // the limit is on the input size, as in ClamAV
    }
    return result;
}

std::optional<std::vector<unsigned char>> normalize_text(std::span<const unsigned char> in,
                                                         const normalize_limits& limits,
                                                         std::size_t max_pattern_length) {
    if (in.size() > limits.max_script_normalize) {
        return std::nullopt;
    }
    // cli_scanscript: input read a page at a time into a window of 128 KiB plus the longest
    // pattern; when the next page might not fit, the window is scanned and restarted with
    // its last max_pattern_length bytes, and the whitespace run starts afresh.
    constexpr std::size_t page = 4096;
    constexpr std::size_t window = 131072;
    const std::size_t capacity = window + max_pattern_length;
    std::vector<unsigned char> out;
    out.reserve(in.size());
    std::size_t used = 0;
    bool space_written = false;
    for (std::size_t at = 0; at < in.size(); at += page) {
        const std::size_t len = std::min(page, in.size() - at);
        if (used + len > capacity) {
            used = max_pattern_length;
            space_written = false;
        }
        for (const unsigned char c : in.subspan(at, len)) {
            if (c >= 'A' && c <= 'Z') {
                out.push_back(static_cast<unsigned char>(c + 32));
                ++used;
                space_written = false;
            } else if (c > ' ' && c < 0x80) {
                out.push_back(c);
                ++used;
                space_written = false;
            } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
                if (!space_written) {
                    out.push_back(' ');
                    ++used;
                }
                space_written = true;
            }
        }
    }
    return out;
}

bool has_html_signature(std::span<const unsigned char> bytes) {
    const std::string_view s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    // filetypes_int.h "HTML data" entries, literal forms.
    static constexpr std::string_view literals[] = {
        "<HEAD>",   "<HTML>",   "<Head>",   "<Html>",   "<IFRAME", "<IMG",    "<Img",
        "<OBJECT",  "<Object",  "<SCRIPT",  "<Script",  "<TABLE",  "<head>",  "<html>",
        "<iframe",  "<img",     "<object",  "<script",  "<table",
    };
    for (const auto literal : literals) {
        if (s.find(literal) != std::string_view::npos) {
            return true;
        }
    }
    if (s.substr(0, 14) == "<%@ LANGUAGE =") {
        return true;
    }
    // "<A " or "<a " followed anywhere later by [hH][rR]EF or [hH][rR]ef.
    std::size_t anchor = std::string_view::npos;
    for (const auto open : {std::string_view("<A "), std::string_view("<a ")}) {
        anchor = std::min(anchor, s.find(open));
    }
    if (anchor == std::string_view::npos) {
        return false;
    }
    for (std::size_t i = anchor + 3; i + 4 <= s.size(); ++i) {
        if ((s[i] == 'h' || s[i] == 'H') && (s[i + 1] == 'r' || s[i + 1] == 'R') &&
            ((s[i + 2] == 'E' && s[i + 3] == 'F') || (s[i + 2] == 'e' && s[i + 3] == 'f'))) {
            return true;
        }
    }
    return false;
}

namespace {

// textdet.c character classes: 0 never in text, 1 plain ASCII text, 2 other text bytes.
constexpr std::array<std::uint8_t, 256> text_classes = [] {
    std::array<std::uint8_t, 256> t{};
    for (std::size_t c = 0x20; c < 0x7f; ++c) {
        t[c] = 1;
    }
    for (const std::size_t c : {0x07UL, 0x08UL, 0x09UL, 0x0aUL, 0x0cUL, 0x0dUL, 0x1bUL, 0x85UL}) {
        t[c] = 1;
    }
    for (std::size_t c = 0x80; c < 0x100; ++c) {
        if (c != 0x85) {
            t[c] = 2;
        }
    }
    return t;
}();

bool looks_ascii(std::span<const unsigned char> b) {
    return std::all_of(b.begin(), b.end(), [](unsigned char c) { return text_classes[c] != 0; });
}

bool looks_utf8(std::span<const unsigned char> b) {
    bool got_one = false;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const unsigned char c = b[i];
        if ((c & 0x80) == 0) {
            if (text_classes[c] != 1) {
                return false;
            }
            continue;
        }
        if ((c & 0x40) == 0) {
            return false;
        }
        std::size_t following = 0;
        if ((c & 0x20) == 0) {
            following = 1;
        } else if ((c & 0x10) == 0) {
            following = 2;
        } else if ((c & 0x08) == 0) {
            following = 3;
        } else if ((c & 0x04) == 0) {
            following = 4;
        } else if ((c & 0x02) == 0) {
            following = 5;
        } else {
            return false;
        }
        for (std::size_t j = 0; j < following; ++j) {
            if (++i >= b.size()) {
                return got_one;  // a sequence cut by the window still counts as before
            }
            if ((b[i] & 0x80) == 0 || (b[i] & 0x40) != 0) {
                return false;
            }
        }
        got_one = true;
    }
    return got_one;
}

// 0 no, 1 little endian, 2 big endian (also the guess without a byte-order mark).
int looks_utf16(std::span<const unsigned char> b) {
    if (b.size() < 2) {
        return 0;
    }
    bool big_endian = true;
    bool bom = true;
    if (b[0] == 0xff && b[1] == 0xfe) {
        big_endian = false;
    } else if (!(b[0] == 0xfe && b[1] == 0xff)) {
        bom = false;
    }
    std::size_t bad = 0;
    for (std::size_t i = 2; i + 1 < b.size(); i += 2) {
        const unsigned unit = big_endian ? (b[i + 1] + 256U * b[i]) : (b[i] + 256U * b[i + 1]);
        if (unit == 0xfffe) {
            return 0;
        }
        if (unit < 128 && text_classes[unit] != 1) {
            if (!bom) {
                return 0;
            }
            ++bad;
        }
    }
    if (bom && bad >= b.size() / 2) {
        return 0;
    }
    return big_endian ? 2 : 1;
}

}  // namespace

text_kind classify_text(std::span<const unsigned char> head) {
    head = head.first(std::min(head.size(), html_typing_window));
    if (looks_ascii(head)) {
        return text_kind::ascii;
    }
    if (looks_utf8(head)) {
        return text_kind::utf8;
    }
    switch (looks_utf16(head)) {
        case 1:
            return text_kind::utf16le;
        case 2:
            return text_kind::utf16be;
        default:
            return text_kind::binary;
    }
}

std::vector<unsigned char> fold_utf16_to_ascii(std::span<const unsigned char> in) {
    std::vector<unsigned char> out;
    out.reserve(in.size() / 2);
    for (std::size_t i = 0; i + 1 < in.size(); i += 2) {
        out.push_back(static_cast<unsigned char>((in[i + 1] << 4) + in[i]));
    }
    return out;
}

}  // namespace ringscan::matcher::detail
