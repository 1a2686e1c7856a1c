#include "matcher/unpack/icon.h"

#include "base/hex.h"
#include "matcher/model/text.h"
#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstddef>
#include <functional>
#include <utility>

// Integer arithmetic below is deliberately 32-bit unsigned (ClamAV's `unsigned int`), including
// its wrap-around on hostile offsets, and the floating-point colour maths uses float literals
// inside double expressions exactly where ClamAV does: the fingerprints must agree bit for bit.

namespace ringscan::matcher::detail {
namespace {

using u32 = std::uint32_t;

// ---------------------------------------------------------------------------------------------
// .idb lines

constexpr std::size_t hash_digits = 124;

/// Reads the hash digits left to right, as cli_loadidb() walks its nibble array.
class nibble_reader {
public:
    explicit nibble_reader(const std::array<u32, hash_digits>& nibbles) : nibbles_(nibbles) {}
    u32 take(std::size_t digits) {
        u32 value = 0;
        for (std::size_t i = 0; i < digits; ++i) {
            value = (value << 4U) | nibbles_[pos_++];
        }
        return value;
    }

private:
    const std::array<u32, hash_digits>& nibbles_;
    std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Reading the PE file the way ClamAV's fmap + cli_rawaddr() do

std::uint16_t read_u16(const unsigned char* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8U));
}
u32 read_u32(const unsigned char* p) {
    return static_cast<u32>(p[0]) | (static_cast<u32>(p[1]) << 8U) |
           (static_cast<u32>(p[2]) << 16U) | (static_cast<u32>(p[3]) << 24U);
}

class pe_reader {
public:
    explicit pe_reader(const icon_pe_view& pe) : pe_(pe) {}

    /// cli_rawaddr(): header RVAs map to themselves, others through the last section that
    /// holds them (searched from the end, like ClamAV).
    [[nodiscard]] std::optional<u32> raw_offset(u32 rva) const {
        if (rva < pe_.header_size) {
            if (rva >= pe_.file.size()) {
                return std::nullopt;
            }
            return rva;
        }
        for (auto it = pe_.sections.rbegin(); it != pe_.sections.rend(); ++it) {
            if (it->raw_size != 0 && it->rva <= rva && it->raw_size > rva - it->rva) {
                return (rva - it->rva) + it->raw;
            }
        }
        return std::nullopt;
    }

    /// `length` bytes at `offset`, or null when they are not all inside the file.
    [[nodiscard]] const unsigned char* bytes(std::uint64_t offset, std::uint64_t length) const {
        const std::uint64_t size = pe_.file.size();
        if (length == 0 || offset > size || length > size - offset) {
            return nullptr;
        }
        return pe_.file.data() + offset;
    }

    [[nodiscard]] const unsigned char* bytes_at_rva(u32 rva, std::uint64_t length) const {
        const auto offset = raw_offset(rva);
        return offset ? bytes(*offset, length) : nullptr;
    }

private:
    const icon_pe_view& pe_;
};

constexpr u32 any_name = 0xffffffffU;

/// pe.c findres(): calls visit(name, data_entry_rva) for each language leaf of the first
/// `type` directory entry (by id), for names equal to `by_name` (by id) or all names when
/// `by_name` is any_name. Stops when visit returns true or the directory leaves the file.
template <class Visit>
void find_resources(const pe_reader& pe, u32 resource_rva, u32 type, u32 by_name, Visit&& visit) {
    const auto directory = [&](u32 rva) -> std::optional<std::uint64_t> {
        const auto offset = pe.raw_offset(rva);
        if (!offset || pe.bytes(*offset, 16) == nullptr) {
            return std::nullopt;
        }
        return *offset;
    };
    const auto root = directory(resource_rva);
    if (!root) {
        return;
    }
    const unsigned char* root_bytes = pe.bytes(*root, 16);
    // Types are looked up by id: skip the named entries.
    std::uint64_t type_entry = *root + 16 + std::uint64_t{read_u16(root_bytes + 12)} * 8;
    std::uint16_t type_count = read_u16(root_bytes + 14);
    for (; type_count != 0; --type_count, type_entry += 8) {
        const unsigned char* entry = pe.bytes(type_entry, 8);
        if (entry == nullptr) {
            return;
        }
        u32 names_offset = read_u32(entry + 4);
        if (read_u32(entry) != type || (names_offset >> 31U) == 0) {
            continue;
        }
        const auto names = directory(resource_rva + (names_offset & 0x7fffffffU));
        if (!names) {
            return;
        }
        const unsigned char* names_bytes = pe.bytes(*names, 16);
        std::uint64_t name_entry = *names + 16;
        std::uint16_t name_count = read_u16(names_bytes + 12);
        if (by_name == any_name) {
            name_count = static_cast<std::uint16_t>(name_count + read_u16(names_bytes + 14));
        } else if ((by_name >> 31U) == 0) {
            name_entry += std::uint64_t{name_count} * 8;
            name_count = read_u16(names_bytes + 14);
        }
        for (; name_count != 0; --name_count, name_entry += 8) {
            const unsigned char* name_bytes = pe.bytes(name_entry, 8);
            if (name_bytes == nullptr) {
                return;
            }
            const u32 name = read_u32(name_bytes);
            const u32 langs_offset = read_u32(name_bytes + 4);
            if ((by_name != any_name && name != by_name) || (langs_offset >> 31U) == 0) {
                continue;
            }
            const auto langs = directory(resource_rva + (langs_offset & 0x7fffffffU));
            if (!langs) {
                return;
            }
            const unsigned char* langs_bytes = pe.bytes(*langs, 16);
            auto lang_count =
                static_cast<std::uint16_t>(read_u16(langs_bytes + 12) + read_u16(langs_bytes + 14));
            std::uint64_t lang_entry = *langs + 16;
            for (; lang_count != 0; --lang_count, lang_entry += 8) {
                const unsigned char* lang_bytes = pe.bytes(lang_entry, 8);
                if (lang_bytes == nullptr) {
                    return;
                }
                const u32 data_offset = read_u32(lang_bytes + 4);
                if ((data_offset >> 31U) == 0 && visit(name, resource_rva + data_offset)) {
                    return;
                }
            }
        }
        return;  // only the first matching type entry, as in ClamAV
    }
}

// ---------------------------------------------------------------------------------------------
// Fingerprint of a decoded, square icon (pe_icons.c getmetrics)

struct hsv_pixel {
    u32 r, g, b, s, v, delta;
};

hsv_pixel to_hsv(u32 c) {
    hsv_pixel p{};
    p.r = (c >> 16U) & 0xffU;
    p.g = (c >> 8U) & 0xffU;
    p.b = c & 0xffU;
    const u32 low = std::min({p.r, p.g, p.b});
    const u32 high = std::max({p.r, p.g, p.b});
    p.v = high;
    p.delta = high - low;
    p.s = p.delta == 0 ? 0 : 255 * p.delta / high;
    return p;
}

u32 colourfulness(const hsv_pixel& p) {
    return static_cast<u32>(std::sqrt(static_cast<double>(p.s * p.s * p.v)));
}

u32 abs_diff(u32 a, u32 b) {
    return a > b ? a - b : b - a;
}

// CIE L*a*b* distance from mid gray; float literals as in ClamAV (they round the constants).
void to_lab(double r, double g, double b, double& l_out, double& a_out, double& b_out) {
    r /= 255.0f;
    g /= 255.0f;
    b /= 255.0f;
    r = r > 0.04045f ? std::pow((r + 0.055f) / 1.055f, 2.4f) : r / 12.92f;
    g = g > 0.04045f ? std::pow((g + 0.055f) / 1.055f, 2.4f) : g / 12.92f;
    b = b > 0.04045f ? std::pow((b + 0.055f) / 1.055f, 2.4f) : b / 12.92f;
    r *= 100.0f;
    g *= 100.0f;
    b *= 100.0f;
    double x = r * 0.4124f + g * 0.3576f + b * 0.1805f;
    double y = r * 0.2126f + g * 0.7152f + b * 0.0722f;
    double z = r * 0.0193f + g * 0.1192f + b * 0.9505f;
    x /= 95.047f;
    y /= 100.000f;
    z /= 108.883f;
    constexpr float third = 1.0f / 3.0f;
    constexpr float offset = 16.0f / 116.0f;
    x = x > 0.008856f ? std::pow(x, third) : (7.787f * x) + offset;
    y = y > 0.008856f ? std::pow(y, third) : (7.787f * y) + offset;
    z = z > 0.008856f ? std::pow(z, third) : (7.787f * z) + offset;
    l_out = (116.0f * y) - 16.0f;
    a_out = 500.0f * (x - y);
    b_out = 200.0f * (y - z);
}

double lab_distance_from_gray(u32 rgb) {
    const double l_ref = 53.192777691077211f;
    const double a_ref = 0.0031420942181448197f;
    const double b_ref = -0.0062075877844014471f;
    double l = 0;
    double a = 0;
    double b = 0;
    to_lab((rgb >> 16U) & 0xffU, (rgb >> 8U) & 0xffU, rgb & 0xffU, l, a, b);
    return std::sqrt(std::pow(l_ref - l, 2.0f) + std::pow(a_ref - a, 2.0f) +
                     std::pow(b_ref - b, 2.0f));
}

/// Picks `count` non-overlapping ksize windows with the largest (or smallest) sums, scanning
/// the window origins ClamAV scans (which leave out the last row and last two columns).
template <std::size_t N, class Sum>
void pick_windows(u32 side, u32 ksize, std::size_t count, bool largest, const Sum& sum_at,
                  std::array<u32, N>& sums, std::array<u32, N>& xs, std::array<u32, N>& ys) {
    for (std::size_t i = 0; i < count; ++i) {
        sums[i] = largest ? 0 : 0xffffffffU;
        for (u32 y = 0; y < side - ksize; ++y) {
            for (u32 x = 0; x < side - 1 - ksize; ++x) {
                const u32 sum = sum_at(y, x);
                if (largest ? sum <= sums[i] : sum >= sums[i]) {
                    continue;
                }
                bool overlaps = false;
                for (std::size_t j = 0; j < i; ++j) {
                    if (x + ksize > xs[j] && x < xs[j] + ksize && y + ksize > ys[j] &&
                        y < ys[j] + ksize) {
                        overlaps = true;
                        break;
                    }
                }
                if (!overlaps) {
                    sums[i] = sum;
                    xs[i] = x;
                    ys[i] = y;
                }
            }
        }
    }
}

icon_metrics compute_metrics(u32 side, std::vector<u32>& image) {
    icon_metrics res;
    res.side = side;
    const u32 ksize = side / 4;
    const std::size_t area = std::size_t{side} * side;
    std::vector<u32> colour_sums(area, 0);
    std::vector<u32> light_sums(area, 0);
    const auto at = [side](u32 y, u32 x) { return std::size_t{y} * side + x; };

    const auto count_colour = [&res](const hsv_pixel& p) {
        if (p.s > 85 && p.v > 85) {
            ++res.ccount;
            res.rsum += 100 - 100 * abs_diff(p.g, p.b) / p.delta;
            res.gsum += 100 - 100 * abs_diff(p.r, p.b) / p.delta;
            res.bsum += 100 - 100 * abs_diff(p.r, p.g) / p.delta;
        }
    };

    // Sliding ksize x ksize sums of colourfulness and value; colour presence is counted over
    // the pixels entering the window, exactly as ClamAV's incremental loop does.
    for (u32 y = 0; y + ksize <= side; ++y) {
        for (u32 x = 0; x + ksize <= side; ++x) {
            u32 colour = 0;
            u32 light = 0;
            if (x == 0 && y == 0) {
                for (u32 yk = 0; yk < ksize; ++yk) {
                    for (u32 xk = 0; xk < ksize; ++xk) {
                        const hsv_pixel p = to_hsv(image[at(yk, xk)]);
                        colour += colourfulness(p);
                        light += p.v;
                        count_colour(p);
                    }
                }
            } else if (x != 0) {
                colour = colour_sums[at(y, x - 1)];
                light = light_sums[at(y, x - 1)];
                for (u32 yk = 0; yk < ksize; ++yk) {
                    const hsv_pixel gone = to_hsv(image[at(y + yk, x - 1)]);
                    colour -= colourfulness(gone);
                    light -= gone.v;
                    const hsv_pixel added = to_hsv(image[at(y + yk, x + ksize - 1)]);
                    colour += colourfulness(added);
                    light += added.v;
                    if (y == 0 || yk == ksize - 1) {
                        count_colour(added);
                    }
                }
            } else {
                colour = colour_sums[at(y - 1, 0)];
                light = light_sums[at(y - 1, 0)];
                for (u32 xk = 0; xk < ksize; ++xk) {
                    const hsv_pixel gone = to_hsv(image[at(y - 1, xk)]);
                    colour -= colourfulness(gone);
                    light -= gone.v;
                    const hsv_pixel added = to_hsv(image[at(y + ksize - 1, xk)]);
                    colour += colourfulness(added);
                    light += added.v;
                    count_colour(added);
                }
            }
            colour_sums[at(y, x)] = colour;
            light_sums[at(y, x)] = light;
        }
    }

    const auto colour_at = [&](u32 y, u32 x) { return colour_sums[at(y, x)]; };
    const auto light_at = [&](u32 y, u32 x) { return light_sums[at(y, x)]; };
    pick_windows(side, ksize, 3, true, colour_at, res.color_avg, res.color_x, res.color_y);
    pick_windows(side, ksize, 3, false, colour_at, res.gray_avg, res.gray_x, res.gray_y);
    pick_windows(side, ksize, 3, true, light_at, res.bright_avg, res.bright_x, res.bright_y);
    pick_windows(side, ksize, 3, false, light_at, res.dark_avg, res.dark_x, res.dark_y);
    const u32 window = ksize * ksize;
    for (std::size_t i = 0; i < 3; ++i) {
        res.color_avg[i] /= window;
        res.gray_avg[i] /= window;
        res.bright_avg[i] /= window;
        res.dark_avg[i] /= window;
    }

    bool black_and_white = false;
    if (res.ccount * 100 / side / side > 5) {
        res.rsum /= res.ccount;
        res.gsum /= res.ccount;
        res.bsum /= res.ccount;
        res.ccount = res.ccount * 100 / side / side;
    } else {
        res.ccount = res.rsum = res.gsum = res.bsum = 0;
        black_and_white = true;
    }

    // Sobel gradient magnitude of the L*a*b* distance from gray, normalised to 0..255.
    std::vector<double> lab(area);
    for (std::size_t i = 0; i < area; ++i) {
        lab[i] = lab_distance_from_gray(image[i]);
    }
    std::vector<u32> gradient(area, 0);
    u32 strongest = 0;
    for (u32 y = 1; y + 1 < side; ++y) {
        for (u32 x = 1; x + 1 < side; ++x) {
            double gx = lab[at(y - 1, x - 1)];
            gx += lab[at(y, x - 1)] * 2;
            gx += lab[at(y + 1, x - 1)];
            gx -= lab[at(y - 1, x + 1)];
            gx -= lab[at(y, x + 1)] * 2;
            gx -= lab[at(y + 1, x + 1)];
            double gy = lab[at(y - 1, x - 1)];
            gy += lab[at(y - 1, x)] * 2;
            gy += lab[at(y - 1, x + 1)];
            gy -= lab[at(y + 1, x - 1)];
            gy -= lab[at(y + 1, x)] * 2;
            gy -= lab[at(y + 1, x + 1)];
            const auto magnitude =
                static_cast<u32>(static_cast<int>(std::sqrt(gx * gx + gy * gy)));
            gradient[at(y, x)] = magnitude;
            strongest = std::max(strongest, magnitude);
        }
    }
    // Without any gradient ClamAV leaves the interior pixels as they were (colour and all).
    if (strongest != 0) {
        for (u32 y = 1; y + 1 < side; ++y) {
            for (u32 x = 1; x + 1 < side; ++x) {
                const u32 c = gradient[at(y, x)] * 255 / strongest;
                image[at(y, x)] = 0xff000000U | c | (c << 8U) | (c << 16U);
            }
        }
    }
    for (u32 i = 0; i < side; ++i) {
        image[at(0, i)] = image[at(side - 1, i)] = 0xff000000U;
        image[at(i, 0)] = image[at(i, side - 1)] = 0xff000000U;
    }

    // 1-2-1 blur, horizontal then vertical, in place (the vertical pass reads the row above
    // after it was already blurred, as ClamAV does).
    constexpr std::array<u32, 3> kernel{1, 2, 1};
    for (u32 y = 1; y + 1 < side; ++y) {
        for (u32 x = 1; x + 1 < side; ++x) {
            u32 sum = 0;
            u32 total = 0;
            for (u32 k = 0; k < 3; ++k) {
                sum += (image[at(y, x + k - 1)] & 0xffU) * kernel[k];
                total += kernel[k];
            }
            sum /= total;
            image[at(y, x)] = (image[at(y, x)] & 0xffU) | (sum << 8U);
        }
    }
    for (u32 y = 1; y + 1 < side; ++y) {
        for (u32 x = 1; x + 1 < side; ++x) {
            u32 sum = 0;
            u32 total = 0;
            for (u32 k = 0; k < 3; ++k) {
                sum += ((image[at(y + k - 1, x)] >> 8U) & 0xffU) * kernel[k];
                total += kernel[k];
            }
            sum /= total;
            image[at(y, x)] = 0xff000000U | sum | (sum << 8U) | (sum << 16U);
        }
    }

    std::vector<u32> edge_sums(area, 0);
    for (u32 y = 0; y + ksize <= side; ++y) {
        for (u32 x = 0; x + 1 + ksize <= side; ++x) {
            u32 sum = 0;
            if (x == 0 && y == 0) {
                for (u32 yk = 0; yk < ksize; ++yk) {
                    for (u32 xk = 0; xk < ksize; ++xk) {
                        sum += image[at(yk, xk)] & 0xffU;
                    }
                }
            } else if (x != 0) {
                sum = edge_sums[at(y, x - 1)];
                for (u32 yk = 0; yk < ksize; ++yk) {
                    sum -= image[at(y + yk, x - 1)] & 0xffU;
                    sum += image[at(y + yk, x + ksize - 1)] & 0xffU;
                }
            } else {
                sum = edge_sums[at(y - 1, 0)];
                for (u32 xk = 0; xk < ksize; ++xk) {
                    sum -= image[at(y - 1, xk)] & 0xffU;
                    sum += image[at(y + ksize - 1, xk)] & 0xffU;
                }
            }
            edge_sums[at(y, x)] = sum;
        }
    }

    // Black-and-white icons take three more edge/noedge windows in place of colour/gray.
    const std::size_t edge_windows = black_and_white ? 6 : 3;
    std::array<u32, 6> edge_avg{}, edge_x{}, edge_y{}, noedge_avg{}, noedge_x{}, noedge_y{};
    const auto edge_at = [&](u32 y, u32 x) { return edge_sums[at(y, x)]; };
    pick_windows(side, ksize, edge_windows, true, edge_at, edge_avg, edge_x, edge_y);
    pick_windows(side, ksize, edge_windows, false, edge_at, noedge_avg, noedge_x, noedge_y);
    for (std::size_t i = 0; i < 3; ++i) {
        res.edge_avg[i] = edge_avg[i] / ksize / ksize;
        res.edge_x[i] = edge_x[i];
        res.edge_y[i] = edge_y[i];
        res.noedge_avg[i] = noedge_avg[i] / ksize / ksize;
        res.noedge_x[i] = noedge_x[i];
        res.noedge_y[i] = noedge_y[i];
    }
    if (black_and_white) {
        for (std::size_t i = 0; i < 3; ++i) {
            res.color_avg[i] = edge_avg[i + 3] / ksize / ksize;
            res.color_x[i] = edge_x[i + 3];
            res.color_y[i] = edge_y[i + 3];
            res.gray_avg[i] = noedge_avg[i + 3] / ksize / ksize;
            // ClamAV stores the second edge windows' coordinates here, not the noedge ones.
            res.gray_x[i] = edge_x[i + 3];
            res.gray_y[i] = edge_y[i + 3];
        }
    }
    return res;
}

// ---------------------------------------------------------------------------------------------
// Decoding one RT_ICON bitmap (pe_icons.c parseicon)

/// Halves the image (2x2 average in linear gamma) until it is at most 32 pixels wide.
void halve_to_32(std::vector<u32>& image, u32& width, u32& height) {
    while (width > 32) {
        for (u32 y = 0; y < height; y += 2) {
            for (u32 x = 0; x < width; x += 2) {
                u32 c1 = image[std::size_t{y} * width + x];
                u32 c2 = image[std::size_t{y} * width + x + 1];
                const u32 c3 = image[std::size_t{y + 1} * width + x];
                const u32 c4 = image[std::size_t{y + 1} * width + x + 1];
                c1 = (((c1 ^ c2) & 0xfefefefeU) >> 1U) + (c1 & c2);
                c2 = (((c3 ^ c4) & 0xfefefefeU) >> 1U) + (c3 & c4);
                image[std::size_t{y / 2} * width / 2 + x / 2] =
                    (((c1 ^ c2) & 0xfefefefeU) >> 1U) + (c1 & c2);
            }
        }
        width /= 2;
        height /= 2;
    }
}

/// Nearest-neighbour scaling to the closest of 32, 24 and 16.
std::vector<u32> resample(const std::vector<u32>& image, u32& width, u32& height) {
    const auto distance = [&](int size) {
        return std::abs(static_cast<int>(width) - size) + std::abs(static_cast<int>(height) - size);
    };
    u32 side = 16;
    if (distance(32) < distance(24)) {
        side = 32;
    } else if (distance(24) < distance(16)) {
        side = 24;
    }
    const double scale_x = static_cast<double>(width) / side;
    const double scale_y = static_cast<double>(height) / side;
    std::vector<u32> out(std::size_t{side} * side);
    for (u32 y = 0; y < side; ++y) {
        const std::size_t row = std::size_t{static_cast<u32>(y * scale_y)} * width;
        for (u32 x = 0; x < side; ++x) {
            const auto column = static_cast<u32>(x * scale_x + 0.5f);
            out[std::size_t{y} * side + x] = image[std::min(row + column, image.size() - 1)];
        }
    }
    width = height = side;
    return out;
}

std::optional<icon_metrics> decode_icon(const pe_reader& pe, u32 data_entry_rva) {
    const unsigned char* entry = pe.bytes_at_rva(data_entry_rva, 4);
    if (entry == nullptr) {
        return std::nullopt;
    }
    const auto header_offset = pe.raw_offset(read_u32(entry));
    if (!header_offset) {
        return std::nullopt;
    }
    const unsigned char* header = pe.bytes(*header_offset, 40);
    if (header == nullptr) {
        return std::nullopt;
    }
    const u32 header_size = read_u32(header);
    if (header_size < 40) {
        return std::nullopt;
    }
    u32 at = *header_offset + header_size;  // 32-bit, wrapping like ClamAV's icoff
    u32 width = read_u32(header + 4);
    u32 height = read_u32(header + 8) / 2;  // the height counts the AND mask too
    const u32 depth = read_u16(header + 14);
    if (width > 256 || height > 256 || width < 16 || height < 16) {
        return std::nullopt;
    }
    if (width < height * 3 / 4 || height < width * 3 / 4) {
        return std::nullopt;
    }
    enum class scaling { none, halve, resample };
    scaling mode = scaling::resample;
    if (width == height) {
        if (width == 16 || width == 24 || width == 32) {
            mode = scaling::none;
        } else if (width % 32 == 0 || width % 24 == 0) {
            mode = scaling::halve;
        }
    }

    const unsigned char* palette = nullptr;
    switch (depth) {
        case 1:
        case 4:
        case 8: {
            const u32 palette_size = (1U << depth) * 4;
            palette = pe.bytes(at, palette_size);
            if (palette == nullptr) {
                return std::nullopt;
            }
            at += palette_size;
            break;
        }
        case 16:
        case 24:
        case 32:
            break;
        default:
            return std::nullopt;  // 0 = PNG/JPEG: ClamAV does not decode those
    }

    const u32 scanline = 4 * (width * depth / 32) + 4 * static_cast<u32>(width * depth % 32 != 0);
    u32 maskline = (depth & 0x1fU) != 0 ? 4 * (width / 32) + 4 * static_cast<u32>(width % 32 != 0)
                                        : 0;
    const unsigned char* raw = pe.bytes(at, std::uint64_t{height} * (scanline + maskline));
    if (raw == nullptr) {
        return std::nullopt;
    }

    std::vector<u32> image(std::size_t{width} * height);
    const auto pixel = [&](u32 y, u32 x) -> u32& {
        return image[std::size_t{height - 1 - y} * width + x];  // bitmaps are stored bottom-up
    };
    u32 alpha_seen = 0;
    for (u32 y = 0; y < height; ++y) {
        std::size_t offset = std::size_t{y} * scanline;
        switch (depth) {
            case 1:
            case 4:
            case 8: {
                u32 bits_left = 0;
                u32 byte = 0;
                for (u32 x = 0; x < width; ++x) {
                    if (bits_left == 0) {
                        byte = raw[offset++];
                        bits_left = 8;
                    }
                    bits_left -= depth;
                    const u32 index = (byte >> bits_left) & ((1U << depth) - 1);
                    pixel(y, x) = read_u32(palette + std::size_t{index} * 4);
                }
                break;
            }
            case 16:
                for (u32 x = 0; x < width; ++x, offset += 2) {
                    // ClamAV's (lossy, overlapping) unpacking of 5-5-5 pixels, reproduced.
                    u32 b = raw[offset] & 0x1fU;
                    u32 g = (raw[offset] >> 5U) | ((raw[offset + 1] & 0x3U) << 3U);
                    u32 r = raw[offset + 1] & 0xfcU;
                    b = (b << 3U) | (b >> 2U);
                    g = ((g << 3U) | (g >> 2U)) << 11U;
                    r = ((r << 3U) | (r >> 2U)) << 17U;
                    pixel(y, x) = r | g | b;
                }
                break;
            case 24:
                for (u32 x = 0; x < width; ++x, offset += 3) {
                    pixel(y, x) = raw[offset] | (u32{raw[offset + 1]} << 8U) |
                                  (u32{raw[offset + 2]} << 16U);
                }
                break;
            default:  // 32
                for (u32 x = 0; x < width; ++x, offset += 4) {
                    const u32 alpha = u32{raw[offset + 3]} << 24U;
                    pixel(y, x) = raw[offset] | (u32{raw[offset + 1]} << 8U) |
                                  (u32{raw[offset + 2]} << 16U) | alpha;
                    alpha_seen |= alpha;
                }
                break;
        }
    }

    if (depth == 32 && alpha_seen == 0) {
        // A 32-bit icon without alpha really is 24-bit plus an AND mask after the pixels.
        maskline = 4 * (width / 32) + 4 * static_cast<u32>(width % 32 != 0);
        raw = pe.bytes(static_cast<u32>(at + height * scanline), std::uint64_t{height} * maskline);
        if (raw == nullptr) {
            for (u32& p : image) {
                p |= 0xff000000U;
            }
            alpha_seen = 1;
        }
    } else {
        raw += std::size_t{height} * scanline;
    }
    if ((depth & 0x1fU) != 0 || alpha_seen == 0) {
        for (u32 y = 0; y < height; ++y) {
            std::size_t offset = std::size_t{y} * maskline;
            u32 bits_left = 0;
            u32 byte = 0;
            for (u32 x = 0; x < width; ++x) {
                if (bits_left == 0) {
                    byte = raw[offset++];
                    bits_left = 8;
                }
                --bits_left;
                if (((byte >> bits_left) & 1U) == 0) {
                    pixel(y, x) |= 0xff000000U;
                }
            }
        }
    }

    for (u32& c : image) {  // blend onto white
        const u32 a = c >> 24U;
        const u32 r = 0xff - a + a * ((c >> 16U) & 0xffU) / 0xff;
        const u32 g = 0xff - a + a * ((c >> 8U) & 0xffU) / 0xff;
        const u32 b = 0xff - a + a * (c & 0xffU) / 0xff;
        c = 0xff000000U | (r << 16U) | (g << 8U) | b;
    }

    if (mode == scaling::halve) {
        halve_to_32(image, width, height);
    } else if (mode == scaling::resample) {
        image = resample(image, width, height);
    }
    image.resize(std::size_t{width} * height);
    return compute_metrics(width, image);
}

// ---------------------------------------------------------------------------------------------
// Walking the icon groups (pe_icons.c cli_scanicon / cli_groupiconscan)

/// Images decoded per file at most. ClamAV has no such cap (only MaxIconsPE on group entries,
/// and its scan time limit); one group entry can name thousands of language variants.
constexpr u32 max_decoded_images = 512;

enum class scan_state { going, matched, stopped };

class icon_walk {
public:
    icon_walk(const icon_pe_view& view, std::function<bool(const icon_metrics&)> on_icon)
        : view_(view), pe_(view), on_icon_(std::move(on_icon)) {}

    bool run() {
        if (view_.resource_rva == 0) {
            return false;
        }
        find_resources(pe_, view_.resource_rva, 14, any_name, [this](u32 name, u32 rva) {
            // Only the first group name is scanned (all its languages).
            if (groups_ != 0 && last_group_ != name) {
                return true;
            }
            ++groups_;
            last_group_ = name;
            scan_group(rva);
            return state_ != scan_state::going;
        });
        return state_ == scan_state::matched;
    }

private:
    void scan_group(u32 data_entry_rva) {
        const unsigned char* entry = pe_.bytes_at_rva(data_entry_rva, 16);
        if (entry == nullptr) {
            return;
        }
        u32 remaining = read_u32(entry + 4);
        if (remaining <= 6) {
            return;
        }
        const unsigned char* group = pe_.bytes_at_rva(read_u32(entry), remaining);
        if (group == nullptr) {
            return;
        }
        std::uint16_t count = read_u16(group + 4);
        group += 6;
        remaining -= 6;
        for (; count != 0 && remaining >= 14; --count, group += 14, remaining -= 14) {
            const std::uint16_t id = read_u16(group + 12);
            find_resources(pe_, view_.resource_rva, 3, id, [this](u32, u32 rva) {
                if (++decoded_ > max_decoded_images) {
                    state_ = scan_state::stopped;
                    return true;
                }
                if (const auto metrics = decode_icon(pe_, rva); metrics && on_icon_(*metrics)) {
                    state_ = scan_state::matched;
                }
                return state_ != scan_state::going;
            });
            if (state_ != scan_state::going) {
                return;
            }
            if (++entries_ >= view_.max_icons) {
                state_ = scan_state::stopped;
                return;
            }
        }
    }

    const icon_pe_view& view_;
    pe_reader pe_;
    std::function<bool(const icon_metrics&)> on_icon_;
    u32 groups_ = 0;
    u32 last_group_ = 0;
    u32 entries_ = 0;
    u32 decoded_ = 0;
    scan_state state_ = scan_state::going;
};

// ---------------------------------------------------------------------------------------------
// Comparing fingerprints (pe_icons.c matchpoint / matchbwpoint)

using triple = icon_metrics::triple;

/// Average over the scanned windows of the best closeness to a reference window whose
/// position is within 3/4 window and whose average is within max_avg_diff/5.
template <std::size_t N>
unsigned match_windows(u32 side, const std::array<u32, N>& x1, const std::array<u32, N>& y1,
                       const std::array<u32, N>& avg1, const std::array<u32, N>& x2,
                       const std::array<u32, N>& y2, const std::array<u32, N>& avg2,
                       u32 max_avg_diff) {
    const u32 reach = side / 4 * 3 / 4;
    u32 total = 0;
    for (std::size_t i = 0; i < N; ++i) {
        u32 best = 0;
        for (std::size_t j = 0; j < N; ++j) {
            const int dx = static_cast<int>(x1[i]) - static_cast<int>(x2[j]);
            const int dy = static_cast<int>(y1[i]) - static_cast<int>(y2[j]);
            auto distance = static_cast<u32>(std::sqrt(dx * dx + dy * dy));
            const auto avg_diff = static_cast<std::int64_t>(avg1[i]) - avg2[j];
            if (distance > reach || static_cast<u32>(avg_diff < 0 ? -avg_diff : avg_diff) >
                                        max_avg_diff / 5) {
                continue;
            }
            distance = 100 - distance * 60 / reach;
            best = std::max(best, distance);
        }
        total += best;
    }
    return total / N;
}

unsigned match_triples(u32 side, const triple& x1, const triple& y1, const triple& avg1,
                       const triple& x2, const triple& y2, const triple& avg2, u32 max) {
    return match_windows(side, x1, y1, avg1, x2, y2, avg2, max);
}

std::array<u32, 6> join(const triple& a, const triple& b) {
    return {a[0], a[1], a[2], b[0], b[1], b[2]};
}

/// Black-and-white matching pools two window sets (edge + 2nd edge, noedge + 2nd noedge).
unsigned match_pooled(u32 side, const triple& x1a, const triple& y1a, const triple& avg1a,
                      const triple& x1b, const triple& y1b, const triple& avg1b,
                      const triple& x2a, const triple& y2a, const triple& avg2a,
                      const triple& x2b, const triple& y2b, const triple& avg2b) {
    return match_windows(side, join(x1a, x1b), join(y1a, y1b), join(avg1a, avg1b),
                         join(x2a, x2b), join(y2a, y2b), join(avg2a, avg2b), 255);
}

u32 spread_closeness(u32 a, u32 b) {
    const u32 difference = abs_diff(a, b) * 10;
    return difference < 100 ? 100 - difference : 0;
}

u32 engine_size_of(u32 side) {
    return (side >> 3U) - 2;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

std::string format_icon_hash(const icon_metrics& m) {
    std::string out;
    out.reserve(hash_digits);
    const auto put = [&out](u32 value, int digits) {
        hex::append_number(out, value, static_cast<unsigned>(digits));
    };
    put(m.side, 2);
    const auto put_triples = [&put](const triple& avg, const triple& xs, const triple& ys,
                                    int avg_digits) {
        for (std::size_t i = 0; i < 3; ++i) {
            put(avg[i], avg_digits);
            put(xs[i], 2);
            put(ys[i], 2);
        }
    };
    put_triples(m.color_avg, m.color_x, m.color_y, 3);
    put_triples(m.gray_avg, m.gray_x, m.gray_y, 3);
    put_triples(m.bright_avg, m.bright_x, m.bright_y, 2);
    put_triples(m.dark_avg, m.dark_x, m.dark_y, 2);
    put_triples(m.edge_avg, m.edge_x, m.edge_y, 2);
    put_triples(m.noedge_avg, m.noedge_x, m.noedge_y, 2);
    put(m.rsum, 2);
    put(m.gsum, 2);
    put(m.bsum, 2);
    put(m.ccount, 2);
    return out;
}

tl::expected<idb_entry, std::string> parse_idb_line(std::string_view line) {
    // cli_strtokenize(line, ':', 5): more than three colons gives a fifth token.
    std::array<std::string_view, 4> fields;
    std::size_t count = 0;
    std::string_view rest = line;
    while (true) {
        const auto colon = rest.find(':');
        if (count == fields.size()) {
            return tl::unexpected(std::string("malformed .idb line (wrong token count)"));
        }
        fields[count++] = rest.substr(0, colon);
        if (colon == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(colon + 1);
    }
    if (count != fields.size()) {
        return tl::unexpected(std::string("malformed .idb line (wrong token count)"));
    }
    const std::string_view hash = fields[3];
    if (hash.size() != hash_digits) {
        return tl::unexpected(std::string("malformed .idb hash (wrong length)"));
    }
    std::array<u32, hash_digits> nibbles{};
    for (std::size_t i = 0; i < hash_digits; ++i) {
        const int value = hex::digit_value(hash[i]);
        if (value < 0) {
            return tl::unexpected(std::string("malformed .idb hash (bad chars)"));
        }
        nibbles[i] = static_cast<u32>(value);
    }
    nibble_reader in(nibbles);
    idb_entry entry;
    entry.name = fields[0];
    entry.group1 = fields[1];
    entry.group2 = fields[2];
    icon_metrics& m = entry.metrics;
    m.side = in.take(2);
    if (m.side != 16 && m.side != 24 && m.side != 32) {
        return tl::unexpected(std::string("malformed .idb hash (bad size)"));
    }
    const u32 max_position = m.side - m.side / 8;
    const auto read_windows = [&](triple& avg, triple& xs, triple& ys, std::size_t avg_digits,
                                  bool check_avg) {
        for (std::size_t i = 0; i < 3; ++i) {
            avg[i] = in.take(avg_digits);
            if (check_avg && avg[i] > 4072) {
                return false;
            }
            xs[i] = in.take(2);
            if (xs[i] > max_position) {
                return false;
            }
            ys[i] = in.take(2);
            if (ys[i] > max_position) {
                return false;
            }
        }
        return true;
    };
    if (!read_windows(m.color_avg, m.color_x, m.color_y, 3, true)) {
        return tl::unexpected(std::string("malformed .idb hash (bad color data)"));
    }
    if (!read_windows(m.gray_avg, m.gray_x, m.gray_y, 3, true)) {
        return tl::unexpected(std::string("malformed .idb hash (bad gray data)"));
    }
    if (!read_windows(m.bright_avg, m.bright_x, m.bright_y, 2, false)) {
        return tl::unexpected(std::string("malformed .idb hash (bad bright data)"));
    }
    if (!read_windows(m.dark_avg, m.dark_x, m.dark_y, 2, false)) {
        return tl::unexpected(std::string("malformed .idb hash (bad dark data)"));
    }
    if (!read_windows(m.edge_avg, m.edge_x, m.edge_y, 2, false)) {
        return tl::unexpected(std::string("malformed .idb hash (bad edge data)"));
    }
    if (!read_windows(m.noedge_avg, m.noedge_x, m.noedge_y, 2, false)) {
        return tl::unexpected(std::string("malformed .idb hash (bad noedge data)"));
    }
    m.rsum = in.take(2);
    m.gsum = in.take(2);
    m.bsum = in.take(2);
    m.ccount = in.take(2);
    if (m.rsum + m.gsum + m.bsum > 103 || m.ccount > 100) {
        return tl::unexpected(std::string("malformed .idb hash (bad spread data)"));
    }
    return entry;
}

tl::expected<void, std::string> icon_database::add(idb_entry entry) {
    stored_icon icon;
    const std::array<std::string*, 2> groups{&entry.group1, &entry.group2};
    for (std::size_t position = 0; position < 2; ++position) {
        auto& names = group_names_[position];
        const auto found = std::find(names.begin(), names.end(), *groups[position]);
        const auto index = static_cast<std::size_t>(found - names.begin());
        if (found == names.end()) {
            if (names.size() >= max_groups) {
                return tl::unexpected(std::string("too many icon groups"));
            }
            names.push_back(std::move(*groups[position]));
        }
        icon.group[position] = static_cast<std::uint16_t>(index);
    }
    icon.name = std::move(entry.name);
    icon.metrics = entry.metrics;
    icons_[engine_size_of(icon.metrics.side)].push_back(std::move(icon));
    return {};
}

std::size_t icon_database::size() const {
    return icons_[0].size() + icons_[1].size() + icons_[2].size();
}

icon_score score_icon(const icon_metrics& m, const icon_metrics& ref) {
    const u32 side = m.side;
    u32 color = 0;
    u32 gray = 0;
    u32 edge = 0;
    u32 noedge = 0;
    const bool black_and_white = m.ccount == 0 && ref.ccount == 0;
    if (black_and_white) {
        edge = match_pooled(side, m.edge_x, m.edge_y, m.edge_avg, m.color_x, m.color_y,
                            m.color_avg, ref.edge_x, ref.edge_y, ref.edge_avg, ref.color_x,
                            ref.color_y, ref.color_avg);
        noedge = match_pooled(side, m.noedge_x, m.noedge_y, m.noedge_avg, m.gray_x, m.gray_y,
                              m.gray_avg, ref.noedge_x, ref.noedge_y, ref.noedge_avg,
                              ref.gray_x, ref.gray_y, ref.gray_avg);
    } else {
        edge = match_triples(side, m.edge_x, m.edge_y, m.edge_avg, ref.edge_x, ref.edge_y,
                             ref.edge_avg, 255);
        noedge = match_triples(side, m.noedge_x, m.noedge_y, m.noedge_avg, ref.noedge_x,
                               ref.noedge_y, ref.noedge_avg, 255);
        if (m.ccount != 0 && ref.ccount != 0) {
            color = match_triples(side, m.color_x, m.color_y, m.color_avg, ref.color_x,
                                  ref.color_y, ref.color_avg, 4072);
            gray = match_triples(side, m.gray_x, m.gray_y, m.gray_avg, ref.gray_x, ref.gray_y,
                                 ref.gray_avg, 4072);
        }
    }
    const u32 bright = match_triples(side, m.bright_x, m.bright_y, m.bright_avg, ref.bright_x,
                                     ref.bright_y, ref.bright_avg, 255);
    const u32 dark = match_triples(side, m.dark_x, m.dark_y, m.dark_avg, ref.dark_x, ref.dark_y,
                                   ref.dark_avg, 255);
    const u32 colors = (spread_closeness(m.rsum, ref.rsum) + spread_closeness(m.gsum, ref.gsum) +
                        spread_closeness(m.bsum, ref.bsum) +
                        spread_closeness(m.ccount, ref.ccount)) /
                       4;
    icon_score score;
    if (black_and_white) {
        score.confidence = (bright + dark + edge * 2 + noedge) / 6;
        score.threshold = 70;
    } else {
        score.confidence = (color + (gray + bright + noedge) * 2 / 3 + dark + edge + colors) / 6;
        score.threshold = 64 + 4 * (2 - engine_size_of(side));
    }
    return score;
}

namespace {

/// The icons of `db` selected by the two group names (cli_icongroupset_add), tested against
/// one scanned image.
class group_filter {
public:
    group_filter(const icon_database& db, std::optional<std::string_view> group1,
                 std::optional<std::string_view> group2)
        : db_(db) {
        const std::array<std::optional<std::string_view>, 2> requested{group1, group2};
        for (std::size_t position = 0; position < 2; ++position) {
            const std::string_view name = requested[position].value_or("*");
            if (name == "*") {
                wanted_[position].set();
                continue;
            }
            const auto& names = db.group_names(position);
            const auto found = std::find(names.begin(), names.end(), name);
            if (found != names.end()) {
                wanted_[position].set(static_cast<std::size_t>(found - names.begin()));
            }
        }
    }

    /// ClamAV only looks at icons when both group positions have names loaded.
    [[nodiscard]] bool usable() const {
        return !db_.group_names(0).empty() && !db_.group_names(1).empty();
    }

    [[nodiscard]] bool matches(const icon_metrics& scanned) const {
        const u32 engine_size = std::min<u32>(engine_size_of(scanned.side), 2);
        for (const auto& icon : db_.icons(engine_size)) {
            if (!wanted_[0].test(icon.group[0]) || !wanted_[1].test(icon.group[1])) {
                continue;
            }
            const icon_score score = score_icon(scanned, icon.metrics);
            if (score.confidence >= score.threshold) {
                return true;
            }
        }
        return false;
    }

private:
    const icon_database& db_;
    std::array<std::bitset<icon_database::max_groups>, 2> wanted_;
};

}  // namespace

bool icon_group_matches(const icon_database& db, std::optional<std::string_view> group1,
                        std::optional<std::string_view> group2, const icon_pe_view& pe) {
    const group_filter filter(db, group1, group2);
    if (!filter.usable()) {
        return false;
    }
    icon_walk walk(pe, [&filter](const icon_metrics& scanned) { return filter.matches(scanned); });
    return walk.run();
}

bool icon_group_matches(const icon_database& db, std::optional<std::string_view> group1,
                        std::optional<std::string_view> group2,
                        std::span<const icon_metrics> scanned) {
    const group_filter filter(db, group1, group2);
    return filter.usable() && std::any_of(scanned.begin(), scanned.end(), [&](const auto& m) {
               return filter.matches(m);
           });
}

std::vector<icon_metrics> icon_metrics_of(const icon_pe_view& pe) {
    std::vector<icon_metrics> all;
    icon_walk walk(pe, [&all](const icon_metrics& scanned) {
        all.push_back(scanned);
        return false;
    });
    (void)walk.run();
    return all;
}

}  // namespace ringscan::matcher::detail
