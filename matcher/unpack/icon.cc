#include "matcher/unpack/icon.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <utility>

// Integer arithmetic below is deliberately 32-bit unsigned (ClamAV's `unsigned int`), including
// its wrap-around on hostile offsets, and the floating-point colour maths uses float literals
// inside double expressions exactly where ClamAV does: the fingerprints must agree bit for bit.

namespace ringscan::matcher::detail {
namespace {

using u32 = std::uint32_t;

// ---------------------------------------------------------------------------------------------
// Reading the PE file the way ClamAV's fmap + cli_rawaddr() do

std::uint16_t read_u16(const unsigned char* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8U));
}
u32 read_u32(const unsigned char* p) {
    return static_cast<u32>(p[0]) | (static_cast<u32>(p[1]) << 8U) |
           (static_cast<u32>(p[2]) << 16U) | (static_cast<u32>(p[3]) << 24U);
}

/// Values of `bits` (1, 2, 4 or 8) bits read from a row of bytes, most significant first: the
/// palette indexes of 1/4/8-bit bitmaps and the AND mask. The caller bounds the row.
struct msb_bits {
    const unsigned char* at;
    u32 byte = 0;
    u32 left = 0;
    u32 next(u32 bits) {
        if (left == 0) {
            byte = *at++;
            left = 8;
        }
        left -= bits;
        return (byte >> left) & ((1U << bits) - 1);
    }
};

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
                msb_bits row{raw + offset};
                for (u32 x = 0; x < width; ++x) {
                    const u32 index = row.next(depth);
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
            msb_bits row{raw + std::size_t{y} * maskline};
            for (u32 x = 0; x < width; ++x) {
                if (row.next(1) == 0) {
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

}  // namespace

bool scan_icons(const icon_pe_view& pe, std::function<bool(const icon_metrics&)> on_icon) {
    icon_walk walk(pe, std::move(on_icon));
    return walk.run();
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
