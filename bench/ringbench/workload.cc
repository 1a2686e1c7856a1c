#include "bench/ringbench/workload.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace ringscan::bench {

namespace fs = std::filesystem;

namespace {

void shuffle_order(workload& w, std::uint64_t seed) {
    w.order.resize(w.items.size());
    for (std::size_t i = 0; i < w.order.size(); ++i) {
        w.order[i] = static_cast<std::uint32_t>(i);
    }
    rng r(seed ^ 0x6f72646572ULL);  // its own stream: the order does not shift the content
    for (std::size_t i = w.order.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(r.below(i));
        std::swap(w.order[i - 1], w.order[j]);
    }
    w.total_bytes = 0;
    for (const auto& it : w.items) {
        w.total_bytes += it.data.size();
    }
}

/// "Name <a@b>" or "<a@b>" or "a@b" -> "<a@b>"; empty if none.
std::string envelope_address(std::string_view header_value) {
    const auto lt = header_value.find('<');
    const auto gt = header_value.find('>', lt == std::string_view::npos ? 0 : lt);
    if (lt != std::string_view::npos && gt != std::string_view::npos) {
        return std::string(header_value.substr(lt, gt - lt + 1));
    }
    const auto at = header_value.find('@');
    if (at == std::string_view::npos) {
        return {};
    }
    std::size_t b = header_value.find_last_of(" \t,", at);
    b = b == std::string_view::npos ? 0 : b + 1;
    std::size_t e = header_value.find_first_of(" \t,\r\n", at);
    e = e == std::string_view::npos ? header_value.size() : e;
    return "<" + std::string(header_value.substr(b, e - b)) + ">";
}

}  // namespace

std::uint64_t workload::expected_infected(std::uint64_t first, std::uint64_t n) const {
    std::uint64_t infected = 0;
    for (std::uint64_t s = first; s < first + n; ++s) {
        infected += for_seq(s).expect == expectation::infected ? 1U : 0U;
    }
    return infected;
}

void derive_milter_view(item& it) {
    header_split split = split_headers(it.data);
    it.body_offset = split.body_offset;
    it.headers = std::move(split.headers);
    for (const auto& [name, value] : it.headers) {
        std::string lower = name;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (lower == "from") {
            if (auto a = envelope_address(value); !a.empty()) {
                it.sender = a;
            }
        } else if (lower == "to") {
            if (auto a = envelope_address(value); !a.empty()) {
                it.recipient = a;
            }
        }
    }
}

bool load_directory(const std::string& dir, std::uint64_t seed, std::uint64_t max_bytes,
                    workload& out, std::string& error) {
    std::error_code ec;
    const fs::path root = fs::absolute(dir, ec);
    if (ec || !fs::is_directory(root, ec)) {
        error = "--dir " + dir + ": not a directory";
        return false;
    }
    std::vector<fs::path> files;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
        error = "--dir " + dir + ": " + ec.message();
        return false;
    }
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) {
            error = "--dir " + dir + ": " + ec.message();
            return false;
        }
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
            files.push_back(it->path());
        }
    }
    std::sort(files.begin(), files.end());
    std::uint64_t total = 0;
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        if (!in) {
            continue;  // unreadable: not part of the workload
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        item x;
        x.data = std::move(ss).str();
        if (total + x.data.size() > max_bytes) {
            error = "--dir " + dir + ": more than --max-bytes (" + std::to_string(max_bytes) +
                    ") of files; raise it or point at a smaller tree";
            return false;
        }
        total += x.data.size();
        x.name = fs::relative(f, root, ec).string();
        x.path = f.string();
        x.expect = x.data.find(eicar_string) != std::string::npos ? expectation::infected
                                                                    : expectation::unknown;
        derive_milter_view(x);
        out.items.push_back(std::move(x));
    }
    if (out.items.empty()) {
        error = "--dir " + dir + ": no readable regular files";
        return false;
    }
    shuffle_order(out, seed);
    out.description = "files from " + root.string() + " (" + std::to_string(out.items.size()) +
                      " files, " + std::to_string(out.total_bytes) + " bytes)";
    return true;
}

bool make_fixed(std::size_t size, std::size_t count, payload_kind kind, double infected_share,
                std::uint64_t seed, workload& out, std::string& error) {
    const auto infected = static_cast<std::size_t>(
        std::llround(static_cast<double>(count) * std::clamp(infected_share, 0.0, 1.0)));
    if (infected > 0 && size < eicar_string.size()) {
        error = "--size " + std::to_string(size) + " is smaller than the 68-byte EICAR string; "
                "use --infected-share 0 or a larger size";
        return false;
    }
    rng r(seed);
    for (std::size_t i = 0; i < count; ++i) {
        item x;
        char name[32];
        std::snprintf(name, sizeof name, "fixed-%04zu", i);
        x.name = name;
        if (kind == payload_kind::random) {
            x.data.resize(size);
            for (auto& c : x.data) {
                c = static_cast<char>(r.next() & 0xff);
            }
        } else {
            // Mail-like text: reuse the generator's body text, cut to size.
            mail m = make_mail(r, seed, i, size + 2048, false, plant_encoding::plain);
            x.data = m.raw.substr(m.body_offset);
            while (x.data.size() < size) {
                x.data += x.data;
            }
            x.data.resize(size);
        }
        x.expect = expectation::clean;
        x.body_offset = 0;
        out.items.push_back(std::move(x));
    }
    // Plant EICAR into exactly `infected` items, at seeded positions and offsets.
    std::vector<std::size_t> idx(count);
    for (std::size_t i = 0; i < count; ++i) {
        idx[i] = i;
    }
    for (std::size_t i = 0; i < infected; ++i) {
        const std::size_t j = i + static_cast<std::size_t>(r.below(count - i));
        std::swap(idx[i], idx[j]);
        item& x = out.items[idx[i]];
        const auto off = static_cast<std::size_t>(r.below(size - eicar_string.size() + 1));
        x.data.replace(off, eicar_string.size(), eicar_string);
        x.expect = expectation::infected;
    }
    shuffle_order(out, seed);
    out.description = std::to_string(count) + " fixed " +
                      (kind == payload_kind::random ? "random" : "text") + " payloads of " +
                      std::to_string(size) + " bytes, " + std::to_string(infected) +
                      " with EICAR, seed " + std::to_string(seed);
    return true;
}

workload make_mail_workload(const mail_mix_options& options) {
    workload w;
    std::vector<mail> mails = make_mail_mix(options);
    std::size_t infected = 0;
    for (std::size_t i = 0; i < mails.size(); ++i) {
        mail& m = mails[i];
        item x;
        char name[32];
        std::snprintf(name, sizeof name, "mail-%06zu.eml", i);
        x.name = name;
        x.expect = m.infected ? expectation::infected : expectation::clean;
        infected += m.infected ? 1U : 0U;
        x.sender = m.sender;
        x.recipient = m.recipient;
        x.data = std::move(m.raw);
        header_split split = split_headers(x.data);
        x.headers = std::move(split.headers);
        x.body_offset = split.body_offset;
        w.items.push_back(std::move(x));
    }
    shuffle_order(w, options.seed);
    std::vector<std::size_t> sizes;
    for (const auto& it : w.items) {
        sizes.push_back(it.data.size());
    }
    std::sort(sizes.begin(), sizes.end());
    const std::size_t median = sizes.empty() ? 0 : sizes[sizes.size() / 2];
    w.description = "mail mix: " + std::to_string(w.items.size()) + " messages, median " +
                    std::to_string(median) + " B, mean " +
                    std::to_string(w.items.empty() ? 0 : w.total_bytes / w.items.size()) +
                    " B, " + std::to_string(infected) + " with EICAR (" +
                    (options.encoding == plant_encoding::plain ? "7bit" : "base64") +
                    "), seed " + std::to_string(options.seed);
    return w;
}

bool materialize(workload& w, const std::string& dir, std::string& error) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        error = "spool dir " + dir + ": " + ec.message();
        return false;
    }
    const fs::path root = fs::absolute(dir, ec);
    for (auto& it : w.items) {
        if (!it.path.empty()) {
            continue;
        }
        const fs::path p = root / it.name;
        std::ofstream o(p, std::ios::binary | std::ios::trunc);
        o.write(it.data.data(), static_cast<std::streamsize>(it.data.size()));
        o.close();
        if (!o) {
            error = "cannot write " + p.string();
            return false;
        }
        // Readable by a server running as another user (clamd's User option).
        fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write |
                               fs::perms::group_read | fs::perms::others_read, ec);
        it.path = p.string();
    }
    return true;
}

}  // namespace ringscan::bench
