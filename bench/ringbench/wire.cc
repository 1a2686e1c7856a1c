#include "bench/ringbench/wire.h"

#include <algorithm>
#include <cstdlib>

namespace ringscan::bench {

void send_queue::copy(std::string_view bytes) {
    if (bytes.empty()) {
        return;
    }
    // Merge with a trailing owned segment so framing bytes go out in one iovec.
    if (!segs_.empty() && segs_.back().ext == nullptr &&
        segs_.back().off + segs_.back().len == owned_base_ + owned_.size() &&
        !(segs_.size() == 1 && head_done_ > 0)) {
        segs_.back().len += bytes.size();
    } else {
        segs_.push_back({nullptr, owned_base_ + owned_.size(), bytes.size()});
    }
    owned_.append(bytes);
    pending_ += bytes.size();
}

void send_queue::ref(std::string_view bytes) {
    if (bytes.empty()) {
        return;
    }
    segs_.push_back({bytes.data(), 0, bytes.size()});
    pending_ += bytes.size();
}

int send_queue::fill_iov(iovec* iov, int max) const {
    int n = 0;
    for (std::size_t i = 0; i < segs_.size() && n < max; ++i) {
        const segment& s = segs_[i];
        const std::size_t skip = i == 0 ? head_done_ : 0;
        const char* base = s.ext != nullptr ? s.ext : owned_.data() + (s.off - owned_base_);
        iov[n].iov_base = const_cast<char*>(base + skip);
        iov[n].iov_len = s.len - skip;
        ++n;
    }
    return n;
}

void send_queue::consume(std::size_t n) {
    pending_ -= std::min(n, pending_);
    while (n > 0 && !segs_.empty()) {
        segment& s = segs_.front();
        const std::size_t left = s.len - head_done_;
        if (n < left) {
            head_done_ += n;
            return;
        }
        n -= left;
        segs_.pop_front();
        head_done_ = 0;
    }
    if (segs_.empty()) {
        owned_base_ += owned_.size();
        owned_.clear();
        return;
    }
    // Release owned bytes no segment refers to any more, once that is worth a move.
    std::size_t lowest = owned_base_ + owned_.size();
    for (const segment& s : segs_) {
        if (s.ext == nullptr) {
            lowest = std::min(lowest, s.off);
            break;  // owned offsets increase along the queue
        }
    }
    const std::size_t dead = lowest - owned_base_;
    if (dead > 65536 && dead * 2 > owned_.size()) {
        owned_.erase(0, dead);
        owned_base_ += dead;
    }
}

void send_queue::clear() noexcept {
    segs_.clear();
    owned_base_ += owned_.size();
    owned_.clear();
    head_done_ = 0;
    pending_ = 0;
}

void encode_instream(send_queue& q, std::string_view data, std::size_t chunk_size) {
    q.copy(std::string_view("zINSTREAM\0", 10));
    for (std::size_t at = 0; at < data.size(); at += chunk_size) {
        const std::size_t n = std::min(chunk_size, data.size() - at);
        const char len[4] = {static_cast<char>((n >> 24) & 0xff), static_cast<char>((n >> 16) & 0xff),
                             static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)};
        q.copy(std::string_view(len, 4));
        q.ref(data.substr(at, n));
    }
    q.copy(std::string_view("\0\0\0\0", 4));
}

void encode_scan(send_queue& q, std::string_view path) {
    std::string cmd = "zSCAN ";
    cmd.append(path);
    cmd.push_back('\0');
    q.copy(cmd);
}

void line_splitter::feed(std::string_view bytes, std::vector<std::string>& out) {
    while (!bytes.empty()) {
        const std::size_t end = bytes.find_first_of(std::string_view("\0\n", 2));
        if (end == std::string_view::npos) {
            partial_.append(bytes);
            return;
        }
        partial_.append(bytes.substr(0, end));
        out.push_back(std::move(partial_));
        partial_.clear();
        bytes.remove_prefix(end + 1);
    }
}

classified classify_reply(std::string_view line, bool in_session) {
    classified c;
    if (in_session) {
        std::size_t digits = 0;
        while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9') {
            ++digits;
        }
        if (digits > 0 && digits < 10 && line.substr(digits, 2) == ": ") {
            c.session_id = std::strtol(std::string(line.substr(0, digits)).c_str(), nullptr, 10);
            line.remove_prefix(digits + 2);
        }
    }
    c.text = std::string(line);
    constexpr std::string_view found = " FOUND";
    constexpr std::string_view error = " ERROR";
    constexpr std::string_view ok = ": OK";
    if (line.size() > found.size() && line.ends_with(found)) {
        const std::string_view rest = line.substr(0, line.size() - found.size());
        const std::size_t colon = rest.rfind(": ");
        if (colon != std::string_view::npos) {
            c.kind = verdict::found;
            c.signature = std::string(rest.substr(colon + 2));
            return c;
        }
    }
    if (line.size() >= error.size() && line.ends_with(error)) {
        c.kind = verdict::error_reply;
        return c;
    }
    if (line.size() > ok.size() && line.ends_with(ok)) {
        c.kind = verdict::ok;
        return c;
    }
    c.kind = verdict::protocol_error;
    return c;
}

verdict combine(verdict a, verdict b) noexcept {
    const auto rank = [](verdict v) {
        switch (v) {
            case verdict::found: return 3;
            case verdict::error_reply: return 2;
            case verdict::protocol_error: return 1;
            case verdict::ok: return 0;
        }
        return 0;
    };
    return rank(a) >= rank(b) ? a : b;
}

}  // namespace ringscan::bench
