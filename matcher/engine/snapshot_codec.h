#pragma once

/// The byte codec of engine snapshots (engine_snapshot.h): a writer that appends to a
/// string and a reader over a byte span, with the same member names so that one visit
/// function per type, templated on the codec, both writes and reads it -- the two
/// directions cannot drift apart.
///
/// Values are stored as their object bytes (the snapshot is read only by the build that
/// wrote it, so layouts match), vectors as a count then their elements. The reader never
/// reads past its span or allocates more elements than bytes remain; on any violation it
/// stops, reports !ok(), and leaves further values default.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace ringscan::matcher::detail {

template <class T>
concept stored_as_bytes = std::is_trivially_copyable_v<T>;

class snapshot_writer {
public:
    static constexpr bool reading = false;

    template <stored_as_bytes T>
    void value(const T& v) {
        append(&v, sizeof v);
    }
    void text(const std::string& s) {
        count(s.size());
        append(s.data(), s.size());
    }
    template <stored_as_bytes T>
    void values(const std::vector<T>& v) {
        count(v.size());
        append(v.data(), v.size() * sizeof(T));
    }
    /// Each element through `visit(element)`.
    template <class T, class Visit>
    void each(const std::vector<T>& v, Visit&& visit) {
        count(v.size());
        for (const T& element : v) {
            visit(element);
        }
    }
    void count(std::size_t n) { value(static_cast<std::uint64_t>(n)); }
    void raw(std::span<const std::byte> bytes) {
        count(bytes.size());
        append(bytes.data(), bytes.size());
    }

    void fail() {}  // the reader's check; what the writer writes is consistent

    [[nodiscard]] std::string& output() { return out_; }

private:
    void append(const void* data, std::size_t size) {
        if (size != 0) {  // empty vectors may have no data pointer
            out_.append(static_cast<const char*>(data), size);
        }
    }
    std::string out_;
};

class snapshot_reader {
public:
    static constexpr bool reading = true;

    explicit snapshot_reader(std::span<const std::byte> bytes) : bytes_(bytes) {}

    template <stored_as_bytes T>
    void value(T& v) {
        take(&v, sizeof v);
    }
    void text(std::string& s) {
        const std::size_t n = count(1);
        s.resize(n);
        take(s.data(), n);
    }
    template <stored_as_bytes T>
    void values(std::vector<T>& v) {
        const std::size_t n = count(sizeof(T));
        v.resize(n);
        take(v.data(), n * sizeof(T));
    }
    template <class T, class Visit>
    void each(std::vector<T>& v, Visit&& visit) {
        // Every element takes at least one byte, which bounds a corrupt count.
        const std::size_t n = count(1);
        v.resize(n);
        for (T& element : v) {
            visit(element);
        }
    }
    /// A count of elements of at least `element_bytes` each; 0 (and failed) when more
    /// than the remaining bytes could hold.
    std::size_t count(std::size_t element_bytes) {
        std::uint64_t n = 0;
        value(n);
        if (n > remaining() / (element_bytes == 0 ? 1 : element_bytes)) {
            failed_ = true;
            return 0;
        }
        return static_cast<std::size_t>(n);
    }
    /// A span of the input, valid while the input is.
    std::span<const std::byte> raw() {
        const std::size_t n = count(1);
        if (failed_) {
            return {};
        }
        const auto part = bytes_.subspan(at_, n);
        at_ += n;
        return part;
    }

    /// Where `part` (a span raw() returned) starts in the input.
    [[nodiscard]] std::size_t offset_of(std::span<const std::byte> part) const {
        return static_cast<std::size_t>(part.data() - bytes_.data());
    }

    [[nodiscard]] bool ok() const { return !failed_; }
    [[nodiscard]] std::size_t remaining() const { return bytes_.size() - at_; }
    void fail() { failed_ = true; }

private:
    void take(void* data, std::size_t size) {
        if (failed_ || size > remaining()) {
            failed_ = true;
            return;
        }
        if (size != 0) {
            std::memcpy(data, bytes_.data() + at_, size);
        }
        at_ += size;
    }
    std::span<const std::byte> bytes_;
    std::size_t at_ = 0;
    bool failed_ = false;
};

}  // namespace ringscan::matcher::detail
