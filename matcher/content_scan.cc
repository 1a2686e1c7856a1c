#include "matcher/content_scan.h"

#include "matcher/engine/engine_impl.h"
#include "matcher/engine/object_match.h"
#include "matcher/unpack/archive.h"
#include "matcher/unpack/filetype.h"
#include "matcher/unpack/mime.h"
#include "matcher/unpack/normalize.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher {

namespace {
/// cli_magic_scan leaves objects of at most 5 bytes unscanned ("Small data").
constexpr std::uint64_t small_object = 5;

/// ClamAV's text normalizer works in 128 KiB windows; past that the largest target-7
/// pattern matters (normalize_text).
constexpr std::size_t text_window = 128 * 1024;

std::span<const unsigned char> as_unsigned(std::string_view bytes) {
    return {reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()};
}

std::string_view as_chars(std::span<const unsigned char> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool is_html(detail::content_kind kind) {
    return kind == detail::content_kind::html || kind == detail::content_kind::html_utf16;
}

/// A-Z become a-z, other printable ASCII stays, whitespace runs become one space,
/// everything else is dropped (leaving a whitespace run open).
struct byte_class {
    unsigned char mapped = 0;
    unsigned visible = 0;      ///< written as `mapped`
    unsigned space = 0;        ///< whitespace: written once per run
    unsigned keeps_space = 0;  ///< dropped byte: the run state carries over
};
constexpr std::array<byte_class, 256> text_classes = [] {
    std::array<byte_class, 256> t{};
    for (unsigned c = 0; c < 256; ++c) {
        byte_class& k = t[c];
        if (c >= 'A' && c <= 'Z') {
            k = {static_cast<unsigned char>(c + 32), 1, 0, 0};
        } else if (c > ' ' && c < 0x80) {
            k = {static_cast<unsigned char>(c), 1, 0, 0};
        } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
            k = {' ', 0, 1, 0};
        } else {
            k = {0, 0, 0, 1};
        }
    }
    return t;
}();

/// normalize_text() as a stream, so UTF-16 "text" (which ClamAV's loose test also finds in
/// most random data) is normalized without a copy of the object: input is processed a page
/// at a time like cli_scanscript, holding back at most one partial page, because whether
/// the window restarts before a page depends on that page's length.
class text_normalizer {
public:
    /// `pattern_length` gives the longest target-7 pattern; asked for only when the output
    /// nears the 128 KiB window (most objects never need it).
    explicit text_normalizer(std::function<std::size_t()> pattern_length)
        : pattern_length_(std::move(pattern_length)) {}

    /// Appends to `out` the normalized form of every complete page fed so far.
    void feed(std::span<const unsigned char> in, std::vector<unsigned char>& out) {
        while (!in.empty()) {
            if (pending_length_ == 0 && in.size() > page) {
                // A whole page that is not the last one: straight from the input.
                normalize_page(in.first(page), out);
                in = in.subspan(page);
                continue;
            }
            const std::size_t take = std::min(page - pending_length_, in.size());
            std::copy_n(in.begin(), take,
                        pending_.begin() + static_cast<std::ptrdiff_t>(pending_length_));
            pending_length_ += take;
            in = in.subspan(take);
            if (pending_length_ == page) {
                normalize_page(std::span(pending_).first(pending_length_), out);
                pending_length_ = 0;
            }
        }
    }

    /// Appends the normalized form of the last (partial) page.
    void finish(std::vector<unsigned char>& out) {
        if (pending_length_ != 0) {
            normalize_page(std::span(pending_).first(pending_length_), out);
            pending_length_ = 0;
        }
    }

private:
    static constexpr std::size_t page = 4096;

    void normalize_page(std::span<const unsigned char> in, std::vector<unsigned char>& out) {
        if (used_ + in.size() > text_window) {
            if (!capacity_) {
                capacity_ = text_window + pattern_length_();
            }
            if (used_ + in.size() > *capacity_) {
                used_ = *capacity_ - text_window;
                space_written_ = false;
            }
        }
        // Branch-free (random data is the common input): every byte is written, and the
        // output advances only for kept bytes.
        const std::size_t start = out.size();
        out.resize(start + in.size() + 1);
        unsigned char* next = out.data() + start;
        unsigned space = space_written_ ? 1U : 0U;
        for (const unsigned char c : in) {
            const byte_class& k = text_classes[c];
            *next = k.mapped;
            const unsigned keep = k.visible | (k.space & (space ^ 1U));
            next += keep;
            space = (space & k.keeps_space) | k.space;
        }
        const auto written = static_cast<std::size_t>(next - (out.data() + start));
        used_ += written;
        space_written_ = space != 0;
        out.resize(start + written);
    }

    std::function<std::size_t()> pattern_length_;
    std::optional<std::size_t> capacity_;
    std::array<unsigned char, page> pending_{};
    std::size_t pending_length_ = 0;
    std::size_t used_ = 0;
    bool space_written_ = false;
};

/// libclamav's type name of an archive, as .ldb `Container:` names its members' container.
std::string_view container_name(detail::archive_kind kind) {
    const detail::archive_format* format = detail::archive_format_of(kind);
    return format != nullptr ? format->type_name : std::string_view{};
}

/// Kinds whose derived buffers need the whole object after the raw stream has ended. An
/// image only when its head already shows HTML (an HTML signature further in is missed).
bool needs_copy(detail::content_kind kind, std::span<const unsigned char> head) {
    switch (kind) {
        case detail::content_kind::text:
        case detail::content_kind::text_utf16:
        case detail::content_kind::html:
        case detail::content_kind::html_utf16:
            return true;
        case detail::content_kind::graphics:
            return detail::has_html_signature(head);
        default:
            return false;
    }
}
}  // namespace

struct content_scan::impl {
    impl(std::shared_ptr<const engine> engine_ptr, scanner& scan_context, scan_mode scan_mode_,
         content_limits scan_limits)
        : compiled(std::move(engine_ptr)),
          context(scan_context),
          mode(scan_mode_),
          limits(scan_limits),
          raw(compiled, scan_context, scan_mode_),
          keep_objects(compiled->keeps_objects()) {
        if (!limits.scan_mail) {
            typing = detail::mail_typing::not_mail;
        }
    }

    std::shared_ptr<const engine> compiled;
    scanner& context;
    scan_mode mode;
    content_limits limits;
    stream_scan raw;
    object_observer observer;

    detail::mail_typing typing = detail::mail_typing::undecided;
    std::string copy;  ///< the typing head, then (mail only) the whole object
    std::uint64_t copied = 0;
    bool truncated = false;  ///< the mail outgrew the copy limit: parts not scanned
    /// The engine has whole-object signatures: the object is kept (up to copy_limit())
    /// and evaluated in finish().
    bool keep_objects = false;
    /// The object kept for whole-object signatures and for the buffers ClamAV derives from
    /// HTML and text (while the kind is undecided: its first bytes only).
    std::string whole;
    bool whole_truncated = false;
    /// ClamAV's typing of the (non-mail) object from its first file_type_window bytes.
    detail::content_kind kind = detail::content_kind::binary;
    bool kind_known = false;
    bool kind_needs_copy = false;
    /// The object is an archive ClamAV unpacks (with ScanArchive): kept whole, its members
    /// scanned in finish().
    detail::archive_kind archive = detail::archive_kind::none;
    std::uint64_t fed = 0;  ///< bytes seen by keep_whole()
    /// UTF-16 text on an engine that keeps no objects: normalized and matched as target 7
    /// while it streams (no copy); results taken in finish(), after the raw ones.
    std::optional<text_normalizer> text_norm;
    std::optional<stream_scan> text_scan;
    std::uint64_t text_length = 0;
    std::vector<unsigned char> text_out;
    detail::normalize_limits normalize;

    // finish() state.
    bool finished = false;
    bool error = false;
    bool exceeded = false;
    bool stop = false;  ///< first_match: a part matched, nothing more to scan
    unsigned files = 0;
    std::uint64_t scanned = 0;
    /// CL_TYPE_* of the objects enclosing the one being scanned, outermost first.
    std::vector<std::string_view> ancestors;
    /// MD5 of the content last re-scanned for a HandlerType signature (ClamAV keeps one
    /// per scan: ctx->handlertype_hash).
    std::optional<std::array<unsigned char, 16>> retyped_digest;
    std::vector<std::string_view> names;
    verdict result;

    [[nodiscard]] std::uint64_t copy_limit() const {
        return std::min(limits.max_scan_size, limits.max_file_size);
    }

    /// Appends to the copy; past copy_limit() the mail copy is dropped (typing head aside).
    void keep(std::span<const std::byte> bytes) {
        if (truncated || bytes.empty()) {
            return;
        }
        if (typing == detail::mail_typing::mail && copy.size() + bytes.size() > copy_limit()) {
            truncated = true;
            std::string().swap(copy);
            return;
        }
        copy.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        copied += bytes.size();
    }

    void decide_kind(std::span<const unsigned char> head) {
        kind = detail::classify_content(head);
        kind_known = true;
        kind_needs_copy = needs_copy(kind, head);
        archive = unpacked(detail::detect_archive(head));
        kind_needs_copy = kind_needs_copy || archive != detail::archive_kind::none;
        if (kind == detail::content_kind::text_utf16 && !keep_objects &&
            typing != detail::mail_typing::mail) {
            kind_needs_copy = false;
            text_norm.emplace([this] { return longest_text_pattern(); });
            stream_options normalized_text;
            normalized_text.mode = mode;
            normalized_text.as_type = target::text;
            normalized_text.hashes = false;
            text_scan.emplace(compiled, context, normalized_text);
        }
    }

    void stop_text_stream() {
        text_norm.reset();
        text_scan.reset();
        std::vector<unsigned char>().swap(text_out);
    }

    void feed_text(std::span<const std::byte> bytes) {
        if (!text_scan || bytes.empty()) {
            return;
        }
        text_length += bytes.size();
        if (text_length > normalize.max_script_normalize) {
            stop_text_stream();  // ClamAV does not normalize text that large
            return;
        }
        text_out.clear();
        text_norm->feed(std::span<const unsigned char>(
                            reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()),
                        text_out);
        text_scan->feed(std::as_bytes(std::span<const unsigned char>(text_out)));
    }

    void finish_text() {
        if (!text_scan) {
            return;
        }
        text_out.clear();
        text_norm->finish(text_out);
        text_scan->feed(std::as_bytes(std::span<const unsigned char>(text_out)));
        const verdict v = text_scan->finish();
        if (text_length > small_object && !stop) {
            take(*text_scan, v);
        }
        stop_text_stream();
    }

    [[nodiscard]] bool wants_whole() const {
        if (keep_objects) {
            return true;
        }
        return typing != detail::mail_typing::mail && (!kind_known || kind_needs_copy);
    }

    /// Past ClamAV's HTML normalization limit nothing is derived; whole-object signatures
    /// stop at MaxScanSize.
    [[nodiscard]] std::uint64_t whole_limit() const {
        return keep_objects || archive != detail::archive_kind::none
                   ? copy_limit()
                   : std::min(copy_limit(), normalize.max_html_normalize);
    }

    void drop_whole_unless_wanted() {
        if (!wants_whole()) {
            std::string().swap(whole);
        }
    }

    void keep_whole(std::span<const std::byte> bytes) {
        const std::size_t size = bytes.size();
        if (!kind_known && fed == 0) {
            // Type straight from the caller's bytes: no copy when the type needs none.
            const std::span<const unsigned char> head(
                reinterpret_cast<const unsigned char*>(bytes.data()),
                std::min(bytes.size(), detail::file_type_window));
            if (head.size() == detail::file_type_window ||
                (detail::has_leading_magic(head) &&
                 detail::classify_content(head) == detail::content_kind::other)) {
                decide_kind(head);  // images wait for the window: it may show HTML
            }
        }
        if (!kind_known && !whole_truncated) {
            // Only the typing window until the kind says whether the rest is needed.
            const std::size_t take =
                std::min(detail::file_type_window - whole.size(), bytes.size());
            append_whole(bytes.first(take));
            bytes = bytes.subspan(take);
            if (whole.size() >= detail::file_type_window) {
                decide_kind(as_unsigned(whole).first(detail::file_type_window));
                feed_text(std::as_bytes(std::span<const char>(whole)));
                drop_whole_unless_wanted();
            }
        }
        if (wants_whole()) {
            append_whole(bytes);
        }
        feed_text(bytes);
        fed += size;
    }

    void append_whole(std::span<const std::byte> bytes) {
        if (whole_truncated || bytes.empty()) {
            return;
        }
        if (whole.size() + bytes.size() > whole_limit()) {
            whole_truncated = true;  // ClamAV: past MaxScanSize nothing more is matched
            std::string().swap(whole);
            return;
        }
        whole.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        copied += bytes.size();
    }

    /// An object's own bytes as match_whole sees them (a buffer derived from them has
    /// none): what a HandlerType re-scan of it needs.
    struct raw_layer {
        unsigned depth = 0;
        std::string_view type_name;  ///< the object's CL_TYPE_*: the re-scan's container
    };

    /// The CL_TYPE_* name of an object content_scan typed as mail / `archive_kind` /
    /// `object_kind`.
    static std::string_view type_name_of(bool mail, detail::archive_kind archive_kind,
                                         std::string_view bytes, detail::content_kind object_kind) {
        if (mail) {
            return "CL_TYPE_MAIL";
        }
        if (archive_kind != detail::archive_kind::none) {
            return container_name(archive_kind);
        }
        return detail::type_name_of(
            as_unsigned(bytes).first(std::min(bytes.size(), detail::file_type_window)),
            object_kind);
    }

    /// Evaluates the whole-object signatures on one object (`layer` set) or derived
    /// buffer of `type`; a HandlerType signature matching the object re-scans it.
    void match_whole(std::string_view bytes, std::string_view container, std::uint8_t type,
                     std::optional<raw_layer> layer) {
        if (!keep_objects || stop || bytes.size() <= small_object) {
            return;
        }
        scanner::impl& scratch_owner = context.internals();
        const engine::impl& state = compiled->internals();
        if (!scratch_owner.prepare(state)) {
            error = true;
            return;
        }
        const std::span<const unsigned char> view(
            reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
        detail::object_context object;
        object.type = type;
        object.container = container;
        object.ancestors = ancestors;
        object.raw = layer.has_value();
        std::vector<std::string_view> found;
        std::optional<detail::retype_request> retype;
        if (!detail::match_object(state, scratch_owner.scratch.get(), scratch_owner.objects, view,
                                  object, mode, found, retype)) {
            error = true;
        }
        const std::size_t before = retype ? retype->position : found.size();
        for (std::size_t k = 0; k < before; ++k) {
            add_name(found[k]);
        }
        if (retype) {
            // The re-scan reuses the scanner's object scratch: `found` is ours.
            rescan_as(bytes, *retype, *layer);
            for (std::size_t k = before; k < found.size() && !stop; ++k) {
                add_name(found[k]);
            }
        }
        if (mode == scan_mode::first_match && !names.empty()) {
            stop = true;
        }
    }

    /// ClamAV's HandlerType (lsig_eval): the object scanned again as
    /// `request.handler_type`, one layer deeper -- where the signature, evaluated on the
    /// same content, alerts -- unless this content was re-scanned so already.
    void rescan_as(std::string_view bytes, const detail::retype_request& request,
                   const raw_layer& layer) {
        std::array<unsigned char, 16> digest{};
        unsigned int length = 0;
        if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_md5(), nullptr) !=
            1) {
            error = true;
            return;
        }
        if (retyped_digest == digest) {
            add_name(request.name);
            return;
        }
        retyped_digest = digest;
        if (layer.depth + 1 >= limits.max_recursion) {
            exceeded = true;  // ClamAV cannot push the layer: nothing is reported
            return;
        }
        ancestors.push_back(layer.type_name);
        scan_as_type(bytes, request.handler_type, layer.depth + 1, layer.type_name);
        ancestors.pop_back();
    }

    /// cli_magic_scan with a given type: that type's handler (those content_scan has:
    /// mail, the archives it unpacks, HTML), then the raw bytes as that type's target.
    void scan_as_type(std::string_view bytes, std::string_view type_name, unsigned depth,
                      std::string_view container) {
        const std::uint8_t as_target = detail::target_of_type_name(type_name);
        if (type_name == "CL_TYPE_HTML") {
            scan_html(bytes, detail::content_kind::html, depth, container);
            return;
        }
        if (type_name == "CL_TYPE_MAIL") {
            if (limits.scan_mail) {
                unpack(bytes, depth);
            }
        } else if (const auto format = unpacked(detail::archive_kind_of_handler_type(type_name));
                   format != detail::archive_kind::none) {
            unpack_archive(bytes, format, depth);
        }
        if (stop) {
            return;
        }
        scan_buffer(bytes, as_target, true);
        match_whole(bytes, container, as_target, raw_layer{depth, type_name});
        if (type_name == "CL_TYPE_TEXT_ASCII") {
            scan_after_raw(bytes, detail::content_kind::text, depth, container);
        }
    }

    void feed(std::span<const std::byte> bytes) {
        raw.feed(bytes);
        keep_whole(bytes);
        if (typing == detail::mail_typing::undecided) {
            const std::size_t take =
                std::min(detail::mail_typing_window - copy.size(), bytes.size());
            if (copy.empty()) {
                // Type straight from the caller's bytes: no copy when the magic decides.
                typing = detail::type_mail(
                    std::string_view(reinterpret_cast<const char*>(bytes.data()), take), false);
            }
            if (typing == detail::mail_typing::undecided) {
                keep(bytes.first(take));
                bytes = bytes.subspan(take);
                typing = detail::type_mail(copy, false);
                if (typing == detail::mail_typing::mail) {
                    check_copy_limit();
                }
            } else if (typing == detail::mail_typing::mail) {
                keep(bytes.first(take));
                bytes = bytes.subspan(take);
                check_copy_limit();
            }
            if (typing == detail::mail_typing::not_mail) {
                std::string().swap(copy);
            } else if (typing == detail::mail_typing::mail) {
                // A mail is neither HTML nor text.
                kind = detail::content_kind::other;
                kind_known = true;
                kind_needs_copy = false;
                stop_text_stream();
                drop_whole_unless_wanted();
            }
        }
        if (typing == detail::mail_typing::mail) {
            keep(bytes);
        }
    }

    void check_copy_limit() {
        if (copy.size() > copy_limit()) {
            truncated = true;
            std::string().swap(copy);
        }
    }

    void add_name(std::string_view name) {
        if (std::find(names.begin(), names.end(), name) == names.end()) {
            names.push_back(name);
        }
    }

    /// Scans one buffer through the engine (typed as `as_type`, else from its bytes) and
    /// takes its names (in report order).
    void scan_buffer(std::string_view bytes, std::optional<std::uint8_t> as_type, bool hashes) {
        if (stop) {
            return;
        }
        stream_options options;
        options.mode = mode;
        options.as_type = as_type;
        options.hashes = hashes;
        options.length = bytes.size();
        stream_scan part(compiled, context, options);
        part.feed(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
        const verdict v = part.finish();
        take(part, v);
    }

    /// Takes the names of a finished stream.
    void take(const stream_scan& part, const verdict& v) {
        error = error || part.scan_error();
        if (mode == scan_mode::all_matches) {
            for (const auto name : part.matches()) {
                add_name(name);
            }
        } else if (v.infected) {
            add_name(v.name);
            stop = true;
        }
    }

    /// A buffer ClamAV derives from an object and matches as `type` plus the generic
    /// signatures: body (and, for HTML, hash) signatures, then whole-object ones.
    void scan_derived(std::span<const unsigned char> bytes, std::uint8_t type, bool hashes,
                      std::string_view container) {
        scan_buffer(as_chars(bytes), type, hashes);
        match_whole(as_chars(bytes), container, type, std::nullopt);
    }

    /// cli_scanhtml: the raw bytes are not matched; nocomment and notags are (target 3 and
    /// 0, hashes too), then each `data:` URI payload is scanned as a new object.
    void scan_html(std::string_view bytes, detail::content_kind html_kind, unsigned depth,
                   std::string_view container) {
        std::optional<detail::normalized_html> normalized;
        if (html_kind == detail::content_kind::html_utf16) {
            normalized =
                detail::normalize_html(detail::fold_utf16_to_ascii(as_unsigned(bytes)), normalize);
        } else {
            normalized = detail::normalize_html(as_unsigned(bytes), normalize);
        }
        if (!normalized) {
            return;  // larger than MaxHTMLNormalize: ClamAV scans nothing of it
        }
        scan_derived(normalized->nocomment, target::html, true, container);
        if (normalized->notags) {
            scan_derived(*normalized->notags, target::html, true, container);
        }
        for (auto& payload : normalized->rfc2397) {
            std::string object(as_chars(payload));
            std::vector<unsigned char>().swap(payload);
            // The payload is written out as a pseudo-mail ("From html-normalise").
            if (!scan_part(object, depth, "CL_TYPE_MAIL")) {
                return;
            }
        }
    }

    /// What ClamAV matches after the raw bytes of a text or image object: the HTML buffers
    /// when its raw scan retypes it HTML, else (text only) the normalized text as target 7.
    void scan_after_raw(std::string_view bytes, detail::content_kind object_kind, unsigned depth,
                        std::string_view container) {
        if (stop || bytes.size() <= small_object) {
            return;
        }
        const bool text = object_kind == detail::content_kind::text ||
                          object_kind == detail::content_kind::text_utf16;
        if ((object_kind == detail::content_kind::text ||
             object_kind == detail::content_kind::graphics) &&
            detail::retypes_as_html(as_unsigned(bytes))) {
            scan_html(bytes, detail::content_kind::html, depth, container);
            return;
        }
        if (!text) {
            return;
        }
        const auto normalized = detail::normalize_text(
            as_unsigned(bytes), normalize, bytes.size() > text_window ? longest_text_pattern() : 0);
        if (normalized) {
            scan_derived(*normalized, target::text, false, container);
        }
    }

    /// The longest target-7 body signature: sizes ClamAV's normalization window.
    [[nodiscard]] std::size_t longest_text_pattern() const {
        std::size_t longest = 0;
        for (const auto& body : compiled->internals().bodies) {
            if (body.target == target::text) {
                longest = std::max<std::size_t>(longest, body.length);
            }
        }
        return longest;
    }

    /// Scans one unpacked object: first what it holds (when it is mail), then its bytes --
    /// the order of cli_magic_scan (type handler before the raw scan).
    void scan_object(std::string_view bytes, unsigned depth, std::string_view container) {
        if (observer) {
            observer(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), depth);
        }
        const bool mail = detail::type_mail(bytes, true) == detail::mail_typing::mail;
        const detail::archive_kind archive_kind =
            mail ? detail::archive_kind::none
                 : unpacked(detail::detect_archive(
                       as_unsigned(bytes).first(std::min(bytes.size(), detail::file_type_window))));
        if (mail) {
            unpack(bytes, depth);
        } else if (archive_kind != detail::archive_kind::none) {
            unpack_archive(bytes, archive_kind, depth);
        }
        if (stop) {
            return;
        }
        const auto head =
            as_unsigned(bytes).first(std::min(bytes.size(), detail::file_type_window));
        const detail::content_kind object_kind =
            mail ? detail::content_kind::other : detail::classify_content(head);
        if (is_html(object_kind)) {
            scan_html(bytes, object_kind, depth, container);
            return;
        }
        scan_buffer(bytes, std::nullopt, true);
        match_whole(
            bytes, container,
            detail::target_of(as_unsigned(bytes).first(std::min<std::size_t>(bytes.size(), 4096))),
            raw_layer{depth, type_name_of(mail, archive_kind, bytes, object_kind)});
        scan_after_raw(bytes, object_kind, depth, container);
    }

    /// One object unpacked from `depth`: counted against ClamAV's limits, then scanned.
    /// False when the limits end the unpacking.
    bool scan_part(std::string& bytes, unsigned depth, std::string_view container) {
        if (stop) {
            return false;
        }
        if (depth + 1 >= limits.max_recursion) {
            // clamscan --max-recursion=N scans objects nested less than N deep (the members
            // of a top-level zip need N >= 2, those of a .tar.gz N >= 3).
            exceeded = true;
            return false;
        }
        if (files >= limits.max_files) {
            exceeded = true;
            return false;
        }
        ++files;
        const std::uint64_t size = bytes.size();
        if (size <= small_object) {
            return true;  // ClamAV: "Small data (n bytes)", not scanned
        }
        if (size > limits.max_file_size) {
            exceeded = true;
            return true;
        }
        if (scanned + size > limits.max_scan_size) {
            exceeded = true;
            return false;
        }
        scanned += size;
        ancestors.push_back(container);
        scan_object(bytes, depth + 1, container);
        ancestors.pop_back();
        std::string().swap(bytes);
        return true;
    }

    /// Unpacks a mail and scans the objects it holds, in document order.
    void unpack(std::string_view mail, unsigned depth) {
        std::vector<detail::mime_object> parts;
        detail::mime_limits nesting;
        nesting.max_nesting = limits.max_recursion;
        if (!detail::unpack_mail(mail, nesting, parts)) {
            exceeded = true;
        }
        for (auto& part : parts) {
            if (!scan_part(part.bytes, depth, "CL_TYPE_MAIL")) {
                return;
            }
        }
    }

    /// `kind` when this scan unpacks it, else none: the format's option (ScanArchive, or
    /// ScanMail for TNEF) must be on.
    [[nodiscard]] detail::archive_kind unpacked(detail::archive_kind found) const {
        const detail::archive_format* format = detail::archive_format_of(found);
        if (format == nullptr) {
            return detail::archive_kind::none;
        }
        const bool wanted = format->option == detail::archive_option::scan_mail
                                ? limits.scan_mail
                                : limits.scan_archive;
        return wanted ? found : detail::archive_kind::none;
    }

    /// Unpacks an archive and scans its members in archive order, each as its own object
    /// (nested archives and mails unpacked in turn, up to MaxRecursion).
    void unpack_archive(std::string_view bytes, detail::archive_kind format, unsigned depth) {
        detail::archive_limits room;
        room.max_file_size = limits.max_file_size;
        room.max_scan_size = limits.max_scan_size > scanned ? limits.max_scan_size - scanned : 0;
        room.max_files = limits.max_files > files ? limits.max_files - files : 0;
        if (room.max_scan_size == 0 || room.max_files == 0) {
            exceeded = true;
            return;
        }
        const std::string_view container = container_name(format);
        std::string member;
        const auto unpacked = detail::unpack_archive(
            format, as_unsigned(bytes), room, [&](const detail::archive_member& found) {
                member.assign(reinterpret_cast<const char*>(found.bytes.data()),
                              found.bytes.size());
                return scan_part(member, depth, container) ? detail::sink_action::next
                                                           : detail::sink_action::stop;
            });
        exceeded = exceeded || unpacked.limit_hit();
    }

    verdict finish() {
        if (finished) {
            return result;
        }
        finished = true;
        const verdict raw_verdict = raw.finish();
        error = raw.scan_error();
        if (typing == detail::mail_typing::undecided) {
            typing = detail::type_mail(copy, true);
            if (typing == detail::mail_typing::mail) {
                check_copy_limit();
            }
        }
        if (typing == detail::mail_typing::mail) {
            if (truncated) {
                exceeded = true;
            } else {
                const std::string mail = std::move(copy);
                copy = std::string();
                unpack(mail, 0);
            }
        }
        std::string().swap(copy);
        if (!kind_known && !whole_truncated) {
            decide_kind(as_unsigned(whole));  // an object shorter than the typing window
            feed_text(std::as_bytes(std::span<const char>(whole)));
        }
        const bool mail = typing == detail::mail_typing::mail;
        const detail::content_kind object_kind = mail ? detail::content_kind::other : kind;
        const std::string object = std::move(whole);
        whole = std::string();
        if (is_html(object_kind)) {
            // ClamAV does not match an HTML file's raw bytes (hashes included).
            if (!whole_truncated && !stop && object.size() > small_object) {
                scan_html(object, object_kind, 0, {});
            }
        } else {
            if (archive != detail::archive_kind::none && !whole_truncated && !mail) {
                // clamscan reports an archive's members before the archive's own bytes.
                unpack_archive(object, archive, 0);
            }
            if (mode == scan_mode::all_matches) {
                for (const auto name : raw.matches()) {
                    add_name(name);
                }
            } else if (!stop && raw_verdict.infected) {
                add_name(raw_verdict.name);
                stop = true;
            }
            if (!whole_truncated) {
                if (keep_objects) {
                    match_whole(object, {},
                                detail::target_of(as_unsigned(object).first(
                                    std::min<std::size_t>(object.size(), 4096))),
                                raw_layer{0, type_name_of(mail, archive, object, object_kind)});
                }
                if (kind_needs_copy && !mail) {
                    scan_after_raw(object, object_kind, 0, {});
                }
            }
            finish_text();
        }
        if (!names.empty()) {
            result = verdict{true, names.front()};
        }
        return result;
    }
};

content_scan::content_scan(std::shared_ptr<const engine> compiled, scanner& context, scan_mode mode,
                           content_limits limits)
    : impl_(std::make_unique<impl>(std::move(compiled), context, mode, limits)) {}

content_scan::~content_scan() = default;

void content_scan::feed(std::span<const std::byte> bytes) { impl_->feed(bytes); }

verdict content_scan::finish() { return impl_->finish(); }

bool content_scan::scan_error() const { return impl_->error || impl_->raw.scan_error(); }

const std::vector<std::string_view>& content_scan::matches() const { return impl_->names; }

bool content_scan::is_mail() const { return impl_->typing == detail::mail_typing::mail; }

bool content_scan::limits_exceeded() const { return impl_->exceeded; }

std::uint64_t content_scan::bytes_copied() const { return impl_->copied; }

void content_scan::set_object_observer(object_observer observer) {
    impl_->observer = std::move(observer);
}

}  // namespace ringscan::matcher
