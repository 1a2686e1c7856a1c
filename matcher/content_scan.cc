#include "matcher/content_scan.h"

#include "matcher/internal/engine_impl.h"
#include "matcher/internal/filetype.h"
#include "matcher/internal/mime.h"
#include "matcher/internal/object_match.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher {

namespace {
/// cli_magic_scan leaves objects of at most 5 bytes unscanned ("Small data").
constexpr std::uint64_t small_object = 5;
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
    std::string whole;
    bool whole_truncated = false;

    // finish() state.
    bool finished = false;
    bool error = false;
    bool exceeded = false;
    bool stop = false;  ///< first_match: a part matched, nothing more to scan
    unsigned files = 0;
    std::uint64_t scanned = 0;
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

    void keep_whole(std::span<const std::byte> bytes) {
        if (!keep_objects || whole_truncated) {
            return;
        }
        if (whole.size() + bytes.size() > copy_limit()) {
            whole_truncated = true;  // ClamAV: past MaxScanSize nothing more is matched
            std::string().swap(whole);
            return;
        }
        whole.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        copied += bytes.size();
    }

    /// Evaluates the whole-object signatures on one object.
    void match_whole(std::string_view bytes, std::string_view container) {
        if (!keep_objects || stop || bytes.size() <= small_object) {
            return;
        }
        scanner::impl& scratch_owner = context.internals();
        const engine::impl& state = compiled->internals();
        if (!scratch_owner.prepare(state)) {
            error = true;
            return;
        }
        const std::span<const unsigned char> view(reinterpret_cast<const unsigned char*>(bytes.data()),
                                                  bytes.size());
        detail::object_context object;
        object.type = detail::target_of(view.first(std::min<std::size_t>(view.size(), 4096)));
        object.container = container;
        std::vector<std::string_view> found;
        if (!detail::match_object(state, scratch_owner.scratch.get(), view, object, mode, found)) {
            error = true;
        }
        for (const auto name : found) {
            add_name(name);
        }
        if (mode == scan_mode::first_match && !found.empty()) {
            stop = true;
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

    /// Scans one unpacked object: first what it holds (when it is mail), then its bytes --
    /// the order of cli_magic_scan (type handler before the raw scan).
    void scan_object(std::string_view bytes, unsigned depth) {
        if (observer) {
            observer(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), depth);
        }
        if (depth <= limits.max_recursion &&
            detail::type_mail(bytes, true) == detail::mail_typing::mail) {
            unpack(bytes, depth);
        } else if (depth > limits.max_recursion) {
            exceeded = true;
        }
        if (stop) {
            return;
        }
        stream_scan part(compiled, context, mode);
        part.feed(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
        const verdict v = part.finish();
        error = error || part.scan_error();
        if (mode == scan_mode::all_matches) {
            for (const auto name : part.matches()) {
                add_name(name);
            }
        } else if (v.infected) {
            add_name(v.name);
            stop = true;
        }
        match_whole(bytes, "CL_TYPE_MAIL");
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
            if (stop) {
                return;
            }
            if (files >= limits.max_files) {
                exceeded = true;
                return;
            }
            ++files;
            const std::uint64_t size = part.bytes.size();
            if (size <= small_object) {
                continue;  // ClamAV: "Small data (n bytes)", not scanned
            }
            if (size > limits.max_file_size) {
                exceeded = true;
                continue;
            }
            if (scanned + size > limits.max_scan_size) {
                exceeded = true;
                return;
            }
            scanned += size;
            scan_object(part.bytes, depth + 1);
            std::string().swap(part.bytes);
        }
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
        if (mode == scan_mode::all_matches) {
            for (const auto name : raw.matches()) {
                add_name(name);
            }
        } else if (!stop && raw_verdict.infected) {
            add_name(raw_verdict.name);
            stop = true;
        }
        if (!whole_truncated) {
            const std::string object = std::move(whole);
            whole = std::string();
            match_whole(object, {});
        }
        if (!names.empty()) {
            result = verdict{true, names.front()};
        }
        return result;
    }
};

content_scan::content_scan(std::shared_ptr<const engine> compiled, scanner& context,
                           scan_mode mode, content_limits limits)
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
