#include "matcher/unpack/executable.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

namespace ringscan::matcher::detail {
namespace {

using bytes = std::span<const unsigned char>;

// Bounds-checked integer reads; nullopt when [at, at+N) is not inside `data`.
template <typename T>
std::optional<T> read_int(bytes data, std::uint64_t at, bool big_endian) {
    if (at > data.size() || data.size() - at < sizeof(T)) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        const std::size_t index = big_endian ? i : sizeof(T) - 1 - i;
        value = (value << 8U) | data[static_cast<std::size_t>(at) + index];
    }
    return static_cast<T>(value);
}

std::optional<std::uint16_t> le16(bytes data, std::uint64_t at) {
    return read_int<std::uint16_t>(data, at, false);
}
std::optional<std::uint32_t> le32(bytes data, std::uint64_t at) {
    return read_int<std::uint32_t>(data, at, false);
}

// Reads the caller has already bounds-checked (0 if that check was wrong, never UB).
std::uint32_t le32_at(bytes data, std::uint64_t at) { return le32(data, at).value_or(0); }
std::uint16_t le16_at(bytes data, std::uint64_t at) { return le16(data, at).value_or(0); }

bool contains(bytes data, std::uint64_t at, std::uint64_t size) {
    return at <= data.size() && data.size() - at >= size;
}

// PEALIGN / PESALIGN of pe.c, in ClamAV's uint32_t arithmetic (wrapping included).
std::uint32_t align_down(std::uint32_t value, std::uint32_t alignment) {
    return alignment != 0 ? value / alignment * alignment : value;
}
std::uint32_t align_up(std::uint32_t value, std::uint32_t alignment) {
    if (alignment == 0) {
        return value;
    }
    return (value / alignment + (value % alignment != 0 ? 1U : 0U)) * alignment;
}

// --- PE ---------------------------------------------------------------------------------

constexpr std::size_t pe_max_sections = 96;
constexpr std::uint32_t pe_file_header_size = 24;  // "PE\0\0" + IMAGE_FILE_HEADER
constexpr std::uint32_t pe_optional32_size = 96;   // without the data directories
constexpr std::uint32_t pe_optional64_size = 112;
constexpr std::uint32_t pe_section_header_size = 40;

// Walking a hostile resource directory can take billions of steps in ClamAV (three nested
// 16-bit counts); we stop after this many entries.
constexpr std::uint32_t resource_work_cap = 1U << 20U;

std::optional<std::uint32_t> raw_address(const std::vector<executable_section>& sections,
                                         std::uint32_t header_size, std::uint32_t rva,
                                         std::uint64_t file_size) {
    if (rva < header_size) {
        if (rva >= file_size) {
            return std::nullopt;
        }
        return rva;
    }
    // The LAST section holding the rva wins (ClamAV searches backwards).
    for (auto it = sections.rbegin(); it != sections.rend(); ++it) {
        if (it->raw_size != 0 && it->rva <= rva && it->raw_size > rva - it->rva) {
            return rva - it->rva + it->raw_offset;
        }
    }
    return std::nullopt;
}

// The version-information resources: findres(0x10, any name) collects at most 16 data-entry
// rvas, then each VS_VERSION_INFO is walked for its StringFileInfo strings.
struct resource_leaf {
    std::uint32_t type;
    std::uint32_t name;
    std::uint32_t language;
    std::uint32_t data_entry_rva;
};

// ClamAV's findres: `visit` returns false to stop.
template <typename Visit>
void find_resources(bytes file, const executable_info& info, std::uint32_t by_type,
                    Visit&& visit) {
    if (!info.is_pe() || info.directory_count < 3) {
        return;
    }
    const std::uint32_t res_rva = info.directories[2].rva;
    const auto directory_at = [&](std::uint32_t rva) -> std::optional<std::size_t> {
        const auto raw = raw_address(info.sections, info.header_size, rva, file.size());
        if (!raw || !contains(file, *raw, 16)) {
            return std::nullopt;
        }
        return *raw;
    };
    std::uint32_t work = 0;
    const auto entry_ok = [&](std::uint64_t at) { return contains(file, at, 8) && ++work <= resource_work_cap; };

    auto dir = directory_at(res_rva);
    if (!dir) {
        return;
    }
    std::uint32_t type_count = le16_at(file, *dir + 12);
    std::uint64_t type_entry = *dir + 16;
    if ((by_type >> 31U) == 0) {  // ids follow the named entries
        type_entry += static_cast<std::uint64_t>(type_count) * 8;
        type_count = le16_at(file, *dir + 14);
    }
    for (; type_count > 0; --type_count, type_entry += 8) {
        if (!entry_ok(type_entry)) {
            return;
        }
        const std::uint32_t type = le32_at(file, static_cast<std::size_t>(type_entry));
        std::uint32_t type_offset = le32_at(file, static_cast<std::size_t>(type_entry) + 4);
        if (type != by_type || (type_offset >> 31U) == 0) {
            continue;
        }
        type_offset &= 0x7fffffffU;
        const auto names = directory_at(res_rva + type_offset);
        if (!names) {
            return;
        }
        // Any name: the named and the numbered entries (a 16-bit sum, as in ClamAV).
        auto name_count = static_cast<std::uint16_t>(le16_at(file, *names + 12) +
                                                     le16_at(file, *names + 14));
        std::uint64_t name_entry = *names + 16;
        for (; name_count > 0; --name_count, name_entry += 8) {
            if (!entry_ok(name_entry)) {
                return;
            }
            const std::uint32_t name = le32_at(file, static_cast<std::size_t>(name_entry));
            std::uint32_t name_offset = le32_at(file, static_cast<std::size_t>(name_entry) + 4);
            if ((name_offset >> 31U) == 0) {
                continue;
            }
            name_offset &= 0x7fffffffU;
            const auto languages = directory_at(res_rva + name_offset);
            if (!languages) {
                return;
            }
            auto language_count = static_cast<std::uint16_t>(le16_at(file, *languages + 12) +
                                                             le16_at(file, *languages + 14));
            std::uint64_t language_entry = *languages + 16;
            for (; language_count > 0; --language_count, language_entry += 8) {
                if (!entry_ok(language_entry)) {
                    return;
                }
                const std::uint32_t language =
                    le32_at(file, static_cast<std::size_t>(language_entry));
                const std::uint32_t language_offset =
                    le32_at(file, static_cast<std::size_t>(language_entry) + 4);
                if ((language_offset >> 31U) == 0 &&
                    !visit(resource_leaf{type, name, language, res_rva + language_offset})) {
                    return;
                }
            }
        }
        return;  // only the first type entry with that id
    }
}

// UTF-16LE keys compared byte-wise, NUL included.
constexpr unsigned char vs_version_info_key[] = {'V', 0, 'S', 0, '_', 0, 'V', 0, 'E', 0, 'R', 0,
                                                 'S', 0, 'I', 0, 'O', 0, 'N', 0, '_', 0, 'I', 0,
                                                 'N', 0, 'F', 0, 'O', 0, 0,   0};
constexpr unsigned char var_file_info_key[] = {'V', 0, 'a', 0, 'r', 0, 'F', 0, 'i', 0, 'l', 0,
                                               'e', 0, 'I', 0, 'n', 0, 'f', 0, 'o', 0, 0,   0};
constexpr unsigned char string_file_info_key[] = {'S', 0, 't', 0, 'r', 0, 'i', 0, 'n', 0, 'g', 0,
                                                  'F', 0, 'i', 0, 'l', 0, 'e', 0, 'I', 0, 'n', 0,
                                                  'f', 0, 'o', 0, 0,   0};

bool key_is(bytes file, std::size_t at, std::span<const unsigned char> key) {
    return contains(file, at, key.size()) &&
           std::memcmp(file.data() + at, key.data(), key.size()) == 0;
}

// One VS_VERSION_INFO at file offset `at` of `size` bytes (in bounds): its string offsets.
void collect_version_strings(bytes file, std::size_t at, std::uint32_t size,
                             std::vector<version_info_string>& out) {
    constexpr std::uint32_t fixed_part = 6 + 0x20 + 2 + 0x34;  // header, key, pad, fixed info
    if (size <= 4) {
        return;
    }
    std::uint32_t info_size = le32_at(file, at) & 0xffffU;
    const std::uint32_t value_size = le32_at(file, at) >> 16U;
    if (info_size > size || info_size <= fixed_part || value_size != 0x34 ||
        !key_is(file, at + 6, vs_version_info_key) || le32_at(file, at + 0x28) != 0xfeef04bdU) {
        return;
    }
    std::size_t cursor = at + fixed_part;
    info_size -= fixed_part;
    bool skipped_var_file_info = false;
    while (info_size > 6) {
        std::uint32_t sfi_size = le32_at(file, cursor) & 0xffffU;
        if (sfi_size > info_size) {
            return;
        }
        // VarFileInfo sometimes precedes StringFileInfo: skipped once.
        if (!skipped_var_file_info && sfi_size > 6 + 0x18 &&
            key_is(file, cursor + 6, var_file_info_key)) {
            cursor += sfi_size;
            info_size -= sfi_size;
            skipped_var_file_info = true;
            continue;
        }
        if (sfi_size <= 6 + 0x1e || !key_is(file, cursor + 6, string_file_info_key)) {
            return;
        }
        cursor += 6 + 0x1e;
        sfi_size -= 6 + 0x1e;
        while (sfi_size > 6) {  // string tables
            std::uint32_t table_size = le32_at(file, cursor) & 0xffffU;
            const std::size_t next_table = cursor + table_size;
            const std::uint32_t next_sfi_size = sfi_size - table_size;
            if (table_size > sfi_size || table_size <= 24) {
                return;
            }
            cursor += 24;
            table_size -= 24;
            while (table_size > 6) {  // strings
                const std::uint32_t string_size = ((le32_at(file, cursor) & 0xffffU) + 3U) & ~3U;
                if (string_size > table_size || string_size <= 6 + 2 + 8) {
                    table_size = 0;
                    sfi_size = 0;  // a broken string ends the whole StringFileInfo
                    break;
                }
                // The key: UTF-16 up to and including its NUL, then padded to 4.
                std::uint32_t key_end = 6;
                for (; key_end + 1 < string_size; key_end += 2) {
                    if (file[cursor + key_end] == 0 && file[cursor + key_end + 1] == 0) {
                        key_end += 2;
                        break;
                    }
                }
                key_end = (key_end + 3U) & ~3U;
                if (key_end < string_size && string_size - key_end > 2) {
                    out.push_back(version_info_string{static_cast<std::uint32_t>(cursor + 6),
                                                      key_end - 6, string_size - key_end});
                }
                cursor += string_size;
                table_size -= string_size;
            }
            cursor = next_table;
            sfi_size = sfi_size != 0 ? next_sfi_size : 0;
        }
        return;  // at most one StringFileInfo
    }
}

void collect_version_info(bytes file, executable_info& info) {
    if (info.directory_count < 3 || info.directories[2].size == 0) {
        return;
    }
    std::vector<std::uint32_t> data_entries;
    find_resources(file, info, 0x10, [&](const resource_leaf& leaf) {
        data_entries.push_back(leaf.data_entry_rva);
        return data_entries.size() < 16;
    });
    for (const std::uint32_t entry_rva : data_entries) {
        const auto entry = raw_address(info.sections, info.header_size, entry_rva, file.size());
        if (!entry || !contains(file, *entry, 16)) {
            continue;
        }
        const std::uint32_t data_rva = le32_at(file, *entry);
        const std::uint32_t size = le32_at(file, *entry + 4);
        const auto data = raw_address(info.sections, info.header_size, data_rva, file.size());
        if (!data || size == 0 || !contains(file, *data, size)) {
            continue;
        }
        collect_version_strings(file, *data, size, info.version_info);
    }
    std::sort(info.version_info.begin(), info.version_info.end(),
              [](const auto& a, const auto& b) { return a.offset < b.offset; });
    info.version_info.erase(
        std::unique(info.version_info.begin(), info.version_info.end(),
                    [](const auto& a, const auto& b) { return a.offset == b.offset; }),
        info.version_info.end());
}

}  // namespace

std::optional<executable_info> parse_pe(bytes file) {
    const std::uint64_t file_size = file.size();
    const auto magic = le16(file, 0);
    if (!magic || (*magic != 0x5a4d && *magic != 0x4d5a)) {
        return std::nullopt;
    }
    const auto lfanew = le32(file, 0x3c);
    if (!lfanew || *lfanew == 0) {
        return std::nullopt;
    }
    const std::uint64_t pe_at = *lfanew;
    if (!contains(file, pe_at, pe_file_header_size) || le32_at(file, pe_at) != 0x00004550U) {
        return std::nullopt;
    }
    executable_info info;
    const std::uint16_t characteristics = le16_at(file, pe_at + 22);
    info.is_dll = (characteristics & 0x2000U) != 0;
    const std::uint16_t section_count = le16_at(file, pe_at + 6);
    if (section_count == 0 || section_count > pe_max_sections) {
        return std::nullopt;
    }
    const std::uint16_t optional_size = le16_at(file, pe_at + 20);
    const std::uint64_t opt_at = pe_at + pe_file_header_size;
    if (optional_size < pe_optional32_size || !contains(file, opt_at, pe_optional32_size)) {
        return std::nullopt;
    }
    std::uint32_t stored_size = pe_optional32_size;
    std::uint32_t directory_count = 0;
    if (le16_at(file, opt_at) == 0x20b) {
        if (optional_size < pe_optional64_size || !contains(file, opt_at, pe_optional64_size)) {
            return std::nullopt;
        }
        info.kind = executable_kind::pe32_plus;
        stored_size = pe_optional64_size;
        directory_count = le32_at(file, opt_at + 108);
    } else {
        info.kind = executable_kind::pe32;
        directory_count = le32_at(file, opt_at + 92);
    }
    const std::uint32_t entry_rva = le32_at(file, opt_at + 16);
    const std::uint32_t section_alignment = le32_at(file, opt_at + 32);
    std::uint32_t file_alignment = le32_at(file, opt_at + 36);
    std::uint32_t header_size = le32_at(file, opt_at + 60);
    info.entry_point_address = entry_rva;

    info.directory_count = std::min<std::uint32_t>(directory_count, 16);
    const std::uint32_t directories_size = 8 * info.directory_count;
    if (optional_size < stored_size + directories_size ||
        !contains(file, opt_at + stored_size, directories_size)) {
        return std::nullopt;
    }
    for (std::uint32_t i = 0; i < info.directory_count; ++i) {
        info.directories[i].rva = le32_at(file, opt_at + stored_size + 8 * i);
        info.directories[i].size = le32_at(file, opt_at + stored_size + 8 * i + 4);
    }
    header_size = align_up(header_size, section_alignment);
    info.header_size = header_size;

    const std::uint64_t sections_at = opt_at + optional_size;
    if (!contains(file, sections_at, std::uint64_t{section_count} * pe_section_header_size)) {
        return std::nullopt;
    }
    const auto header_of = [&](std::size_t i) {
        return static_cast<std::size_t>(sections_at + i * pe_section_header_size);
    };
    // A raw pointer that is 0x200- but not FileAlignment-aligned switches to 0x200.
    for (std::size_t i = 0; file_alignment != 0x200 && i < section_count; ++i) {
        const std::uint32_t raw_pointer = le32_at(file, header_of(i) + 20);
        if (file_alignment != 0 && le32_at(file, header_of(i) + 16) != 0 &&
            raw_pointer % file_alignment != 0 && raw_pointer % 0x200 == 0) {
            file_alignment = 0x200;
        }
    }

    info.sections.reserve(section_count);
    for (std::size_t i = 0; i < section_count; ++i) {
        const std::size_t at = header_of(i);
        executable_section section;
        const auto* name = reinterpret_cast<const char*>(file.data() + at);
        section.name.assign(name, strnlen(name, 8));
        const std::uint32_t virtual_size = le32_at(file, at + 8);
        const std::uint32_t virtual_address = le32_at(file, at + 12);
        std::uint32_t raw_size = le32_at(file, at + 16);
        const std::uint32_t raw_pointer = le32_at(file, at + 20);
        section.rva = align_down(virtual_address, section_alignment);
        section.virtual_size = align_up(virtual_size, section_alignment);
        section.raw_offset = align_down(raw_pointer, file_alignment);
        section.raw_size = align_up(raw_size, file_alignment);
        if (section.raw_size != 0) {
            if (section.raw_offset >= file_size || raw_pointer >= file_size) {
                // Starts beyond the file: kept (the matcher's parse does not remove it).
                section.raw_size = 0;
                raw_size = 0;
            } else {
                if (std::uint64_t{section.raw_offset} + section.raw_size > file_size) {
                    section.raw_size = static_cast<std::uint32_t>(file_size - section.raw_offset);
                }
                if (raw_size == 0 || std::uint64_t{raw_pointer} + raw_size > file_size) {
                    raw_size = static_cast<std::uint32_t>(file_size - raw_pointer);
                }
            }
        }
        if (section.virtual_size == 0 && section.raw_size != 0) {
            section.virtual_size = align_up(raw_size, section_alignment);
        }
        // Values with the sign bit set make ClamAV call the file broken.
        if ((virtual_address >> 31U) != 0 || (virtual_size >> 31U) != 0 ||
            (section.raw_size != 0 && (raw_pointer >> 31U) != 0) || (raw_size >> 31U) != 0) {
            return std::nullopt;
        }
        info.sections.push_back(std::move(section));
    }

    const auto entry = raw_address(info.sections, header_size, entry_rva, file_size);
    if (!entry) {
        return std::nullopt;
    }
    info.entry_point = *entry;
    info.resource_rva = (info.is_dll || info.directory_count < 3 || info.directories[2].size == 0)
                            ? 0
                            : info.directories[2].rva;
    collect_version_info(file, info);
    return info;
}

std::optional<std::uint32_t> pe_file_offset(const executable_info& info, std::uint32_t rva,
                                            std::uint64_t file_size) {
    return raw_address(info.sections, info.header_size, rva, file_size);
}

// --- ELF --------------------------------------------------------------------------------

std::optional<executable_info> parse_elf(bytes file) {
    constexpr std::size_t header32_size = 52;
    constexpr std::size_t header64_size = 64;
    if (file.size() < header32_size || std::memcmp(file.data(), "\x7f" "ELF", 4) != 0) {
        return std::nullopt;
    }
    const unsigned char elf_class = file[4];
    if (elf_class != 1 && elf_class != 2) {
        return std::nullopt;
    }
    const bool is64 = elf_class == 2;
    const bool big = file[5] != 1;  // anything but ELFDATA2LSB is read big-endian
    if (is64 && file.size() < header64_size) {
        return std::nullopt;
    }
    const auto u16 = [&](std::uint64_t at) { return read_int<std::uint16_t>(file, at, big); };
    const auto u32 = [&](std::uint64_t at) { return read_int<std::uint32_t>(file, at, big); };
    const auto u64 = [&](std::uint64_t at) { return read_int<std::uint64_t>(file, at, big); };

    executable_info info;
    info.kind = is64 ? executable_kind::elf64 : executable_kind::elf32;
    const std::uint64_t entry = is64 ? *u64(24) : *u32(24);
    const std::uint64_t ph_offset = is64 ? *u64(32) : *u32(28);
    const std::uint64_t sh_offset = is64 ? *u64(40) : *u32(32);
    const std::uint16_t ph_entry_size = *u16(is64 ? 54 : 42);
    const std::uint16_t ph_count = *u16(is64 ? 56 : 44);
    const std::uint16_t sh_entry_size = *u16(is64 ? 58 : 46);
    const std::uint16_t sh_count = *u16(is64 ? 60 : 48);
    info.entry_point_address = entry;

    // Entry point through the program headers.
    const std::uint32_t ph_size = is64 ? 56 : 32;
    if (ph_count > 128) {
        return std::nullopt;
    }
    if (ph_count != 0 && entry != 0) {
        if (ph_entry_size != ph_size) {
            return std::nullopt;
        }
        std::optional<std::uint64_t> entry_offset;
        for (std::uint32_t i = 0; i < ph_count; ++i) {
            // 32-bit files step a 32-bit offset (wrapping, as ClamAV's uint32_t does).
            const std::uint64_t at = is64 ? ph_offset + std::uint64_t{i} * ph_size
                                          : static_cast<std::uint32_t>(ph_offset + i * ph_size);
            if (!contains(file, at, ph_size)) {
                return std::nullopt;
            }
            if (entry_offset) {
                continue;  // ClamAV reads every header before mapping
            }
            if (is64) {
                const std::uint64_t offset = *u64(at + 8);
                const std::uint64_t vaddr = *u64(at + 16);
                const std::uint64_t memsz = *u64(at + 40);
                if (vaddr <= entry && vaddr + memsz > entry) {
                    entry_offset = entry - vaddr + offset;
                }
            } else {
                const std::uint32_t offset = *u32(at + 4);
                const std::uint32_t vaddr = *u32(at + 8);
                const std::uint32_t memsz = *u32(at + 20);
                const auto entry32 = static_cast<std::uint32_t>(entry);
                if (vaddr <= entry32 && static_cast<std::uint32_t>(vaddr + memsz) > entry32) {
                    entry_offset = static_cast<std::uint32_t>(entry32 - vaddr + offset);
                }
            }
        }
        if (!entry_offset) {
            return std::nullopt;
        }
        info.entry_point = static_cast<std::uint32_t>(*entry_offset);
    }

    // Sections from the section headers.
    const std::uint32_t sh_size = is64 ? 64 : 40;
    if (sh_count > 256 || sh_entry_size != sh_size) {
        return std::nullopt;
    }
    info.sections.reserve(sh_count);
    for (std::uint32_t i = 0; i < sh_count; ++i) {
        const std::uint64_t at = is64 ? sh_offset + std::uint64_t{i} * sh_size
                                      : static_cast<std::uint32_t>(sh_offset + i * sh_size);
        if (!contains(file, at, sh_size)) {
            return std::nullopt;
        }
        executable_section section;
        if (is64) {
            section.rva = static_cast<std::uint32_t>(*u64(at + 16));
            section.raw_offset = static_cast<std::uint32_t>(*u64(at + 24));
            section.raw_size = static_cast<std::uint32_t>(*u64(at + 32));
        } else {
            section.rva = *u32(at + 12);
            section.raw_offset = *u32(at + 16);
            section.raw_size = *u32(at + 20);
        }
        info.sections.push_back(std::move(section));
    }
    return info;
}

// --- Mach-O -----------------------------------------------------------------------------

std::optional<executable_info> parse_macho(bytes file) {
    constexpr std::size_t header_size = 28;
    const auto magic = le32(file, 0);
    if (!magic || file.size() < header_size) {
        return std::nullopt;
    }
    bool big = false;
    bool is64 = false;
    switch (*magic) {
        case 0xfeedfaceU: break;
        case 0xcefaedfeU: big = true; break;
        case 0xfeedfacfU: is64 = true; break;
        case 0xcffaedfeU: big = true; is64 = true; break;
        default: return std::nullopt;
    }
    const auto u32 = [&](std::uint64_t at) { return read_int<std::uint32_t>(file, at, big); };
    const auto u64 = [&](std::uint64_t at) { return read_int<std::uint64_t>(file, at, big); };

    executable_info info;
    info.kind = is64 ? executable_kind::macho64 : executable_kind::macho32;
    // Which thread state carries the entry point: 1 x86 (read, never used), 2 PPC, 3 PPC64.
    int thread_arch = 0;
    switch (*u32(4)) {
        case 7: thread_arch = 1; break;
        case 18: thread_arch = 2; break;
        case 18 | 0x1000000: thread_arch = 3; break;
        default: break;
    }
    const std::uint32_t command_count = *u32(16);
    if (command_count == 0 || command_count > 1024) {
        return std::nullopt;
    }
    std::uint64_t at = header_size + (is64 ? 4 : 0);
    std::uint32_t entry = 0;
    const std::uint32_t segment_size = is64 ? 64 : 48;
    const std::uint32_t section_size = is64 ? 80 : 68;
    for (std::uint32_t i = 0; i < command_count; ++i) {
        if (!contains(file, at, 8)) {
            return std::nullopt;
        }
        const std::uint32_t command = *u32(at);
        const std::uint32_t command_size = *u32(at + 4);
        at += 8;
        if ((is64 && command == 0x19) || (!is64 && command == 0x01)) {  // LC_SEGMENT(_64)
            if (!contains(file, at, segment_size)) {
                return std::nullopt;
            }
            const std::uint32_t section_count = *u32(at + (is64 ? 56 : 40));
            at += segment_size;
            if (section_count > 255) {
                return std::nullopt;
            }
            for (std::uint32_t j = 0; j < section_count; ++j) {
                if (!contains(file, at, section_size)) {
                    return std::nullopt;
                }
                executable_section section;
                const auto* name = reinterpret_cast<const char*>(file.data() + at);
                section.name.assign(name, strnlen(name, 15));
                std::uint32_t align_exponent = 0;
                if (is64) {
                    section.rva = static_cast<std::uint32_t>(*u64(at + 32));
                    section.virtual_size = static_cast<std::uint32_t>(*u64(at + 40));
                    section.raw_offset = *u32(at + 48);
                    align_exponent = *u32(at + 52);
                } else {
                    section.rva = *u32(at + 32);
                    section.virtual_size = *u32(at + 36);
                    section.raw_offset = *u32(at + 40);
                    align_exponent = *u32(at + 44);
                    if ((align_exponent & 63U) >= 31) {  // 1 << align > INT32_MAX
                        return std::nullopt;
                    }
                }
                // x86 shift semantics of ClamAV's `1 << align` on a 32-bit value.
                const std::uint32_t alignment = 1U << (align_exponent & 31U);
                section.raw_size = section.virtual_size +
                                   (alignment - section.virtual_size % alignment) % alignment;
                at += section_size;
                info.sections.push_back(std::move(section));
            }
        } else if (thread_arch != 0 && (command == 0x4 || command == 0x5)) {  // LC_(UNIX)THREAD
            at += 8;  // flavor, count
            const std::uint32_t state_size = thread_arch == 1 ? 64 : thread_arch == 2 ? 160 : 312;
            if (!contains(file, at, state_size)) {
                return std::nullopt;
            }
            if (thread_arch == 2) {
                entry = *u32(at);
            } else if (thread_arch == 3) {
                entry = static_cast<std::uint32_t>(*u64(at));
            }
            at += state_size;
        } else if (command_size > 8) {
            at += command_size - 8;
        }
    }
    info.entry_point_address = entry;
    // ClamAV's section count is a uint16_t (also for the entry-point lookup).
    info.sections.resize(static_cast<std::uint16_t>(info.sections.size()));
    if (entry != 0 && !info.sections.empty()) {
        bool found = false;
        for (const auto& section : info.sections) {
            if (section.rva <= entry &&
                static_cast<std::uint32_t>(section.rva + section.virtual_size) > entry) {
                entry = entry - section.rva + section.raw_offset;
                found = true;
                break;
            }
        }
        if (!found) {
            return std::nullopt;
        }
    }
    info.entry_point = entry;
    return info;
}

std::optional<executable_info> parse_executable(bytes file, unsigned target) {
    switch (target) {
        case 1: return parse_pe(file);
        case 6: return parse_elf(file);
        case 9: return parse_macho(file);
        default: return std::nullopt;
    }
}

std::optional<executable_info> parse_executable(bytes file) {
    if (file.size() >= 2 && ((file[0] == 'M' && file[1] == 'Z') || (file[0] == 'Z' && file[1] == 'M'))) {
        return parse_pe(file);
    }
    if (file.size() >= 4 && std::memcmp(file.data(), "\x7f" "ELF", 4) == 0) {
        return parse_elf(file);
    }
    return parse_macho(file);
}

// --- offsets ----------------------------------------------------------------------------

namespace {

constexpr std::uint64_t no_limit = std::numeric_limits<std::uint64_t>::max();

std::optional<start_window_range> window_from(std::uint64_t start, std::uint64_t shift) {
    if (no_limit - start < shift) {
        return std::nullopt;
    }
    return start_window_range{start, start + shift};
}

}  // namespace

std::optional<start_window_range> start_window(const body_offset& offset,
                                               const executable_info* info,
                                               std::uint64_t file_size, bool header_failed,
                                               clamav_matcher matcher) {
    using anchor = body_offset::anchor;
    const std::uint64_t value = offset.value < 0 ? static_cast<std::uint64_t>(-offset.value)
                                                 : static_cast<std::uint64_t>(offset.value);
    switch (offset.from) {
        case anchor::any:
        case anchor::version_info:
        case anchor::macro_group:
            return start_window_range{0, no_limit};
        case anchor::absolute:
            return window_from(value, offset.max_shift);
        default:
            break;
    }
    if (header_failed) {
        return std::nullopt;
    }
    switch (offset.from) {
        case anchor::end_of_file:
            if (value > file_size) {
                return std::nullopt;
            }
            return window_from(file_size - value, offset.max_shift);
        default:
            break;
    }
    if (info == nullptr) {
        return std::nullopt;
    }
    const auto& sections = info->sections;
    switch (offset.from) {
        case anchor::entry_point:
            if (offset.value < 0) {
                if (value > info->entry_point) {
                    return std::nullopt;
                }
                return window_from(info->entry_point - value, offset.max_shift);
            }
            return window_from(std::uint64_t{info->entry_point} + value, offset.max_shift);
        case anchor::section_start:
            if (offset.section >= sections.size()) {
                return std::nullopt;
            }
            return window_from(std::uint64_t{sections[offset.section].raw_offset} + value,
                               offset.max_shift);
        case anchor::last_section:
            if (sections.empty()) {
                return std::nullopt;
            }
            return window_from(std::uint64_t{sections.back().raw_offset} + value,
                               offset.max_shift);
        case anchor::section_whole: {
            if (offset.section >= sections.size()) {
                return std::nullopt;
            }
            const auto& section = sections[offset.section];
            if (matcher == clamav_matcher::boyer_moore) {
                return start_window_range{section.raw_offset, section.raw_offset};
            }
            return window_from(section.raw_offset,
                               std::uint64_t{section.raw_size} + offset.max_shift);
        }
        default:
            return std::nullopt;
    }
}

bool version_info_allows(const executable_info& info, std::uint64_t start) {
    return std::binary_search(
        info.version_info.begin(), info.version_info.end(), start,
        [](const auto& a, const auto& b) {
            if constexpr (std::is_same_v<std::decay_t<decltype(a)>, std::uint64_t>) {
                return a < b.offset;
            } else {
                return a.offset < b;
            }
        });
}

// --- hashes -----------------------------------------------------------------------------

std::vector<byte_range> section_hash_ranges(const executable_info& info) {
    std::vector<byte_range> ranges;
    if (!info.is_pe()) {
        return ranges;
    }
    for (const auto& section : info.sections) {
        if (section.raw_size != 0) {
            ranges.push_back(byte_range{section.raw_offset, section.raw_size});
        }
    }
    return ranges;
}

namespace {

struct ordinal_name {
    std::uint16_t ordinal;
    std::string_view name;
};

// Names ClamAV's pe_ordinal gives to ordinal imports of these libraries.
constexpr ordinal_name ws2_32_ordinals[] = {
    {1, "accept"}, {2, "bind"}, {3, "closesocket"}, {4, "connect"}, {5, "getpeername"},
    {6, "getsockname"}, {7, "getsockopt"}, {8, "htonl"}, {9, "htons"}, {10, "ioctlsocket"},
    {11, "inet_addr"}, {12, "inet_ntoa"}, {13, "listen"}, {14, "ntohl"}, {15, "ntohs"},
    {16, "recv"}, {17, "recvfrom"}, {18, "select"}, {19, "send"}, {20, "sendto"},
    {21, "setsockopt"}, {22, "shutdown"}, {23, "socket"}, {24, "GetAddrInfoW"},
    {25, "GetNameInfoW"}, {26, "WSApSetPostRoutine"}, {27, "FreeAddrInfoW"},
    {28, "WPUCompleteOverlappedRequest"}, {29, "WSAAccept"}, {30, "WSAAddressToStringA"},
    {31, "WSAAddressToStringW"}, {32, "WSACloseEvent"}, {33, "WSAConnect"},
    {34, "WSACreateEvent"}, {35, "WSADuplicateSocketA"}, {36, "WSADuplicateSocketW"},
    {37, "WSAEnumNameSpaceProvidersA"}, {38, "WSAEnumNameSpaceProvidersW"},
    {39, "WSAEnumNetworkEvents"}, {40, "WSAEnumProtocolsA"}, {41, "WSAEnumProtocolsW"},
    {42, "WSAEventSelect"}, {43, "WSAGetOverlappedResult"}, {44, "WSAGetQOSByName"},
    {45, "WSAGetServiceClassInfoA"}, {46, "WSAGetServiceClassInfoW"},
    {47, "WSAGetServiceClassNameByClassIdA"}, {48, "WSAGetServiceClassNameByClassIdW"},
    {49, "WSAHtonl"}, {50, "WSAHtons"}, {51, "gethostbyaddr"}, {52, "gethostbyname"},
    {53, "getprotobyname"}, {54, "getprotobynumber"}, {55, "getservbyname"},
    {56, "getservbyport"}, {57, "gethostname"}, {58, "WSAInstallServiceClassA"},
    {59, "WSAInstallServiceClassW"}, {60, "WSAIoctl"}, {61, "WSAJoinLeaf"},
    {62, "WSALookupServiceBeginA"}, {63, "WSALookupServiceBeginW"},
    {64, "WSALookupServiceEnd"}, {65, "WSALookupServiceNextA"},
    {66, "WSALookupServiceNextW"}, {67, "WSANSPIoctl"}, {68, "WSANtohl"}, {69, "WSANtohs"},
    {70, "WSAProviderConfigChange"}, {71, "WSARecv"}, {72, "WSARecvDisconnect"},
    {73, "WSARecvFrom"}, {74, "WSARemoveServiceClass"}, {75, "WSAResetEvent"},
    {76, "WSASend"}, {77, "WSASendDisconnect"}, {78, "WSASendTo"}, {79, "WSASetEvent"},
    {80, "WSASetServiceA"}, {81, "WSASetServiceW"}, {82, "WSASocketA"}, {83, "WSASocketW"},
    {84, "WSAStringToAddressA"}, {85, "WSAStringToAddressW"},
    {86, "WSAWaitForMultipleEvents"}, {87, "WSCDeinstallProvider"},
    {88, "WSCEnableNSProvider"}, {89, "WSCEnumProtocols"}, {90, "WSCGetProviderPath"},
    {91, "WSCInstallNameSpace"}, {92, "WSCInstallProvider"}, {93, "WSCUnInstallNameSpace"},
    {94, "WSCUpdateProvider"}, {95, "WSCWriteNameSpaceOrder"}, {96, "WSCWriteProviderOrder"},
    {97, "freeaddrinfo"}, {98, "getaddrinfo"}, {99, "getnameinfo"}, {101, "WSAAsyncSelect"},
    {102, "WSAAsyncGetHostByAddr"}, {103, "WSAAsyncGetHostByName"},
    {104, "WSAAsyncGetProtoByNumber"}, {105, "WSAAsyncGetProtoByName"},
    {106, "WSAAsyncGetServByPort"}, {107, "WSAAsyncGetServByName"},
    {108, "WSACancelAsyncRequest"}, {109, "WSASetBlockingHook"},
    {110, "WSAUnhookBlockingHook"}, {111, "WSAGetLastError"}, {112, "WSASetLastError"},
    {113, "WSACancelBlockingCall"}, {114, "WSAIsBlocking"}, {115, "WSAStartup"},
    {116, "WSACleanup"}, {151, "__WSAFDIsSet"}, {500, "WEP"},
};

constexpr ordinal_name oleaut32_ordinals[] = {
    {2, "SysAllocString"}, {3, "SysReAllocString"}, {4, "SysAllocStringLen"},
    {5, "SysReAllocStringLen"}, {6, "SysFreeString"}, {7, "SysStringLen"},
    {8, "VariantInit"}, {9, "VariantClear"}, {10, "VariantCopy"}, {11, "VariantCopyInd"},
    {12, "VariantChangeType"}, {13, "VariantTimeToDosDateTime"},
    {14, "DosDateTimeToVariantTime"}, {15, "SafeArrayCreate"}, {16, "SafeArrayDestroy"},
    {17, "SafeArrayGetDim"}, {18, "SafeArrayGetElemsize"}, {19, "SafeArrayGetUBound"},
    {20, "SafeArrayGetLBound"}, {21, "SafeArrayLock"}, {22, "SafeArrayUnlock"},
    {23, "SafeArrayAccessData"}, {24, "SafeArrayUnaccessData"}, {25, "SafeArrayGetElement"},
    {26, "SafeArrayPutElement"}, {27, "SafeArrayCopy"}, {28, "DispGetParam"},
    {29, "DispGetIDsOfNames"}, {30, "DispInvoke"}, {31, "CreateDispTypeInfo"},
    {32, "CreateStdDispatch"}, {33, "RegisterActiveObject"}, {34, "RevokeActiveObject"},
    {35, "GetActiveObject"}, {36, "SafeArrayAllocDescriptor"}, {37, "SafeArrayAllocData"},
    {38, "SafeArrayDestroyDescriptor"}, {39, "SafeArrayDestroyData"}, {40, "SafeArrayRedim"},
    {41, "SafeArrayAllocDescriptorEx"}, {42, "SafeArrayCreateEx"},
    {43, "SafeArrayCreateVectorEx"}, {44, "SafeArraySetRecordInfo"},
    {45, "SafeArrayGetRecordInfo"}, {46, "VarParseNumFromStr"}, {47, "VarNumFromParseNum"},
    {48, "VarI2FromUI1"}, {49, "VarI2FromI4"}, {50, "VarI2FromR4"}, {51, "VarI2FromR8"},
    {52, "VarI2FromCy"}, {53, "VarI2FromDate"}, {54, "VarI2FromStr"}, {55, "VarI2FromDisp"},
    {56, "VarI2FromBool"}, {57, "SafeArraySetIID"}, {58, "VarI4FromUI1"}, {59, "VarI4FromI2"},
    {60, "VarI4FromR4"}, {61, "VarI4FromR8"}, {62, "VarI4FromCy"}, {63, "VarI4FromDate"},
    {64, "VarI4FromStr"}, {65, "VarI4FromDisp"}, {66, "VarI4FromBool"},
    {67, "SafeArrayGetIID"}, {68, "VarR4FromUI1"}, {69, "VarR4FromI2"}, {70, "VarR4FromI4"},
    {71, "VarR4FromR8"}, {72, "VarR4FromCy"}, {73, "VarR4FromDate"}, {74, "VarR4FromStr"},
    {75, "VarR4FromDisp"}, {76, "VarR4FromBool"}, {77, "SafeArrayGetVartype"},
    {78, "VarR8FromUI1"}, {79, "VarR8FromI2"}, {80, "VarR8FromI4"}, {81, "VarR8FromR4"},
    {82, "VarR8FromCy"}, {83, "VarR8FromDate"}, {84, "VarR8FromStr"}, {85, "VarR8FromDisp"},
    {86, "VarR8FromBool"}, {87, "VarFormat"}, {88, "VarDateFromUI1"}, {89, "VarDateFromI2"},
    {90, "VarDateFromI4"}, {91, "VarDateFromR4"}, {92, "VarDateFromR8"},
    {93, "VarDateFromCy"}, {94, "VarDateFromStr"}, {95, "VarDateFromDisp"},
    {96, "VarDateFromBool"}, {97, "VarFormatDateTime"}, {98, "VarCyFromUI1"},
    {99, "VarCyFromI2"}, {100, "VarCyFromI4"}, {101, "VarCyFromR4"}, {102, "VarCyFromR8"},
    {103, "VarCyFromDate"}, {104, "VarCyFromStr"}, {105, "VarCyFromDisp"},
    {106, "VarCyFromBool"}, {107, "VarFormatNumber"}, {108, "VarBstrFromUI1"},
    {109, "VarBstrFromI2"}, {110, "VarBstrFromI4"}, {111, "VarBstrFromR4"},
    {112, "VarBstrFromR8"}, {113, "VarBstrFromCy"}, {114, "VarBstrFromDate"},
    {115, "VarBstrFromDisp"}, {116, "VarBstrFromBool"}, {117, "VarFormatPercent"},
    {118, "VarBoolFromUI1"}, {119, "VarBoolFromI2"}, {120, "VarBoolFromI4"},
    {121, "VarBoolFromR4"}, {122, "VarBoolFromR8"}, {123, "VarBoolFromDate"},
    {124, "VarBoolFromCy"}, {125, "VarBoolFromStr"}, {126, "VarBoolFromDisp"},
    {127, "VarFormatCurrency"}, {128, "VarWeekdayName"}, {129, "VarMonthName"},
    {130, "VarUI1FromI2"}, {131, "VarUI1FromI4"}, {132, "VarUI1FromR4"},
    {133, "VarUI1FromR8"}, {134, "VarUI1FromCy"}, {135, "VarUI1FromDate"},
    {136, "VarUI1FromStr"}, {137, "VarUI1FromDisp"}, {138, "VarUI1FromBool"},
    {139, "VarFormatFromTokens"}, {140, "VarTokenizeFormatString"}, {141, "VarAdd"},
    {142, "VarAnd"}, {143, "VarDiv"}, {144, "DllCanUnloadNow"}, {145, "DllGetClassObject"},
    {146, "DispCallFunc"}, {147, "VariantChangeTypeEx"}, {148, "SafeArrayPtrOfIndex"},
    {149, "SysStringByteLen"}, {150, "SysAllocStringByteLen"}, {151, "DllRegisterServer"},
    {152, "VarEqv"}, {153, "VarIdiv"}, {154, "VarImp"}, {155, "VarMod"}, {156, "VarMul"},
    {157, "VarOr"}, {158, "VarPow"}, {159, "VarSub"}, {160, "CreateTypeLib"},
    {161, "LoadTypeLib"}, {162, "LoadRegTypeLib"}, {163, "RegisterTypeLib"},
    {164, "QueryPathOfRegTypeLib"}, {165, "LHashValOfNameSys"}, {166, "LHashValOfNameSysA"},
    {167, "VarXor"}, {168, "VarAbs"}, {169, "VarFix"}, {170, "OaBuildVersion"},
    {171, "ClearCustData"}, {172, "VarInt"}, {173, "VarNeg"}, {174, "VarNot"},
    {175, "VarRound"}, {176, "VarCmp"}, {177, "VarDecAdd"}, {178, "VarDecDiv"},
    {179, "VarDecMul"}, {180, "CreateTypeLib2"}, {181, "VarDecSub"}, {182, "VarDecAbs"},
    {183, "LoadTypeLibEx"}, {184, "SystemTimeToVariantTime"},
    {185, "VariantTimeToSystemTime"}, {186, "UnRegisterTypeLib"}, {187, "VarDecFix"},
    {188, "VarDecInt"}, {189, "VarDecNeg"}, {190, "VarDecFromUI1"}, {191, "VarDecFromI2"},
    {192, "VarDecFromI4"}, {193, "VarDecFromR4"}, {194, "VarDecFromR8"},
    {195, "VarDecFromDate"}, {196, "VarDecFromCy"}, {197, "VarDecFromStr"},
    {198, "VarDecFromDisp"}, {199, "VarDecFromBool"}, {200, "GetErrorInfo"},
    {201, "SetErrorInfo"}, {202, "CreateErrorInfo"}, {203, "VarDecRound"},
    {204, "VarDecCmp"}, {205, "VarI2FromI1"}, {206, "VarI2FromUI2"}, {207, "VarI2FromUI4"},
    {208, "VarI2FromDec"}, {209, "VarI4FromI1"}, {210, "VarI4FromUI2"},
    {211, "VarI4FromUI4"}, {212, "VarI4FromDec"}, {213, "VarR4FromI1"},
    {214, "VarR4FromUI2"}, {215, "VarR4FromUI4"}, {216, "VarR4FromDec"},
    {217, "VarR8FromI1"}, {218, "VarR8FromUI2"}, {219, "VarR8FromUI4"},
    {220, "VarR8FromDec"}, {221, "VarDateFromI1"}, {222, "VarDateFromUI2"},
    {223, "VarDateFromUI4"}, {224, "VarDateFromDec"}, {225, "VarCyFromI1"},
    {226, "VarCyFromUI2"}, {227, "VarCyFromUI4"}, {228, "VarCyFromDec"},
    {229, "VarBstrFromI1"}, {230, "VarBstrFromUI2"}, {231, "VarBstrFromUI4"},
    {232, "VarBstrFromDec"}, {233, "VarBoolFromI1"}, {234, "VarBoolFromUI2"},
    {235, "VarBoolFromUI4"}, {236, "VarBoolFromDec"}, {237, "VarUI1FromI1"},
    {238, "VarUI1FromUI2"}, {239, "VarUI1FromUI4"}, {240, "VarUI1FromDec"},
    {241, "VarDecFromI1"}, {242, "VarDecFromUI2"}, {243, "VarDecFromUI4"},
    {244, "VarI1FromUI1"}, {245, "VarI1FromI2"}, {246, "VarI1FromI4"},
    {247, "VarI1FromR4"}, {248, "VarI1FromR8"}, {249, "VarI1FromDate"},
    {250, "VarI1FromCy"}, {251, "VarI1FromStr"}, {252, "VarI1FromDisp"},
    {253, "VarI1FromBool"}, {254, "VarI1FromUI2"}, {255, "VarI1FromUI4"},
    {256, "VarI1FromDec"}, {257, "VarUI2FromUI1"}, {258, "VarUI2FromI2"},
    {259, "VarUI2FromI4"}, {260, "VarUI2FromR4"}, {261, "VarUI2FromR8"},
    {262, "VarUI2FromDate"}, {263, "VarUI2FromCy"}, {264, "VarUI2FromStr"},
    {265, "VarUI2FromDisp"}, {266, "VarUI2FromBool"}, {267, "VarUI2FromI1"},
    {268, "VarUI2FromUI4"}, {269, "VarUI2FromDec"}, {270, "VarUI4FromUI1"},
    {271, "VarUI4FromI2"}, {272, "VarUI4FromI4"}, {273, "VarUI4FromR4"},
    {274, "VarUI4FromR8"}, {275, "VarUI4FromDate"}, {276, "VarUI4FromCy"},
    {277, "VarUI4FromStr"}, {278, "VarUI4FromDisp"}, {279, "VarUI4FromBool"},
    {280, "VarUI4FromI1"}, {281, "VarUI4FromUI2"}, {282, "VarUI4FromDec"},
    {283, "BSTR_UserSize"}, {284, "BSTR_UserMarshal"}, {285, "BSTR_UserUnmarshal"},
    {286, "BSTR_UserFree"}, {287, "VARIANT_UserSize"}, {288, "VARIANT_UserMarshal"},
    {289, "VARIANT_UserUnmarshal"}, {290, "VARIANT_UserFree"},
    {291, "LPSAFEARRAY_UserSize"}, {292, "LPSAFEARRAY_UserMarshal"},
    {293, "LPSAFEARRAY_UserUnmarshal"}, {294, "LPSAFEARRAY_UserFree"},
    {295, "LPSAFEARRAY_Size"}, {296, "LPSAFEARRAY_Marshal"}, {297, "LPSAFEARRAY_Unmarshal"},
    {298, "VarDecCmpR8"}, {299, "VarCyAdd"}, {300, "DllUnregisterServer"},
    {301, "OACreateTypeLib2"}, {303, "VarCyMul"}, {304, "VarCyMulI4"}, {305, "VarCySub"},
    {306, "VarCyAbs"}, {307, "VarCyFix"}, {308, "VarCyInt"}, {309, "VarCyNeg"},
    {310, "VarCyRound"}, {311, "VarCyCmp"}, {312, "VarCyCmpR8"}, {313, "VarBstrCat"},
    {314, "VarBstrCmp"}, {315, "VarR8Pow"}, {316, "VarR4CmpR8"}, {317, "VarR8Round"},
    {318, "VarCat"}, {319, "VarDateFromUdateEx"}, {322, "GetRecordInfoFromGuids"},
    {323, "GetRecordInfoFromTypeInfo"}, {325, "SetVarConversionLocaleSetting"},
    {326, "GetVarConversionLocaleSetting"}, {327, "SetOaNoCache"}, {329, "VarCyMulI8"},
    {330, "VarDateFromUdate"}, {331, "VarUdateFromDate"}, {332, "GetAltMonthNames"},
    {333, "VarI8FromUI1"}, {334, "VarI8FromI2"}, {335, "VarI8FromR4"}, {336, "VarI8FromR8"},
    {337, "VarI8FromCy"}, {338, "VarI8FromDate"}, {339, "VarI8FromStr"},
    {340, "VarI8FromDisp"}, {341, "VarI8FromBool"}, {342, "VarI8FromI1"},
    {343, "VarI8FromUI2"}, {344, "VarI8FromUI4"}, {345, "VarI8FromDec"},
    {346, "VarI2FromI8"}, {347, "VarI2FromUI8"}, {348, "VarI4FromI8"}, {349, "VarI4FromUI8"},
    {360, "VarR4FromI8"}, {361, "VarR4FromUI8"}, {362, "VarR8FromI8"}, {363, "VarR8FromUI8"},
    {364, "VarDateFromI8"}, {365, "VarDateFromUI8"}, {366, "VarCyFromI8"},
    {367, "VarCyFromUI8"}, {368, "VarBstrFromI8"}, {369, "VarBstrFromUI8"},
    {370, "VarBoolFromI8"}, {371, "VarBoolFromUI8"}, {372, "VarUI1FromI8"},
    {373, "VarUI1FromUI8"}, {374, "VarDecFromI8"}, {375, "VarDecFromUI8"},
    {376, "VarI1FromI8"}, {377, "VarI1FromUI8"}, {378, "VarUI2FromI8"},
    {379, "VarUI2FromUI8"}, {401, "OleLoadPictureEx"}, {402, "OleLoadPictureFileEx"},
    {411, "SafeArrayCreateVector"}, {412, "SafeArrayCopyData"}, {413, "VectorFromBstr"},
    {414, "BstrFromVector"}, {415, "OleIconToCursor"}, {416, "OleCreatePropertyFrameIndirect"},
    {417, "OleCreatePropertyFrame"}, {418, "OleLoadPicture"},
    {419, "OleCreatePictureIndirect"}, {420, "OleCreateFontIndirect"},
    {421, "OleTranslateColor"}, {422, "OleLoadPictureFile"}, {423, "OleSavePictureFile"},
    {424, "OleLoadPicturePath"}, {425, "VarUI4FromI8"}, {426, "VarUI4FromUI8"},
    {427, "VarI8FromUI8"}, {428, "VarUI8FromI8"}, {429, "VarUI8FromUI1"},
    {430, "VarUI8FromI2"}, {431, "VarUI8FromR4"}, {432, "VarUI8FromR8"},
    {433, "VarUI8FromCy"}, {434, "VarUI8FromDate"}, {435, "VarUI8FromStr"},
    {436, "VarUI8FromDisp"}, {437, "VarUI8FromBool"}, {438, "VarUI8FromI1"},
    {439, "VarUI8FromUI2"}, {440, "VarUI8FromUI4"}, {441, "VarUI8FromDec"},
    {442, "RegisterTypeLibForUser"}, {443, "UnRegisterTypeLibForUser"},
};

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// strncasecmp(text, prefix, prefix.size()) == 0, stopping at a NUL like the C function.
bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) {
        return false;
    }
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (ascii_lower(text[i]) != ascii_lower(prefix[i])) {
            return false;
        }
    }
    return true;
}

std::string ordinal_import_name(std::string_view dll, std::uint16_t ordinal) {
    std::span<const ordinal_name> table;
    if (starts_with_nocase(dll, "WS2_32.dll") || starts_with_nocase(dll, "wsock32.dll")) {
        table = ws2_32_ordinals;
    } else if (starts_with_nocase(dll, "oleaut32.dll")) {
        table = oleaut32_ordinals;
    }
    const auto it = std::lower_bound(table.begin(), table.end(), ordinal,
                                      [](const ordinal_name& entry, std::uint16_t wanted) {
                                          return entry.ordinal < wanted;
                                      });
    if (it != table.end() && it->ordinal == ordinal) {
        return std::string(it->name);
    }
    return "ord" + std::to_string(ordinal);
}

// strndup(file + at, limit): the bytes up to the first NUL within `limit`.
std::string_view c_string(bytes file, std::size_t at, std::size_t limit) {
    const auto* start = reinterpret_cast<const char*>(file.data() + at);
    return {start, strnlen(start, limit)};
}

bool valid_import_name(std::string_view name) {
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_' || c == '.';
    });
}

constexpr std::uint64_t max_name_size = 256;  // PE_MAXNAMESIZE
constexpr int max_imports = 1024;             // PE_MAXIMPORTS (descriptors)
constexpr std::uint32_t import_descriptor_size = 20;

}  // namespace

bool visit_import_table_hash_input(bytes file, const executable_info& info,
                                   const std::function<void(std::string_view)>& sink) {
    if (info.kind != executable_kind::pe32) {
        return false;
    }
    const std::uint64_t file_size = file.size();
    const pe_data_directory imports = info.directories[1];
    if (imports.rva == 0 || imports.size == 0) {
        return false;
    }
    const auto map = [&](std::uint32_t rva) {
        return raw_address(info.sections, info.header_size, rva, file_size);
    };
    const auto table = map(imports.rva);
    if (!table || !contains(file, *table, imports.size)) {
        return false;
    }
    bool first = true;
    std::string piece;
    std::uint64_t left = imports.size;
    std::uint64_t descriptor = *table;
    for (int count = 0; left > import_descriptor_size && count < max_imports;
         ++count, descriptor += import_descriptor_size) {
        const auto at = static_cast<std::size_t>(descriptor);
        const std::uint32_t original_first_thunk = le32_at(file, at);
        const std::uint32_t name_rva = le32_at(file, at + 12);
        const std::uint32_t first_thunk = le32_at(file, at + 16);
        if (name_rva == 0) {
            break;
        }
        left -= import_descriptor_size;
        const auto name_at = map(name_rva);
        if (!name_at || *name_at >= file_size) {
            return false;
        }
        const std::string_view dll =
            c_string(file, *name_at, std::min<std::uint64_t>(max_name_size, file_size - *name_at));

        std::optional<std::uint32_t> thunk;
        if (original_first_thunk != 0) {
            thunk = map(original_first_thunk);
        }
        if (!thunk || *thunk == 0) {
            thunk = map(first_thunk);
        }
        if (!thunk) {
            return false;
        }
        // The dll part: up to a first '.' that starts ".dll", ".ocx" or ".sys".
        std::string_view dll_part = dll;
        if (const auto dot = dll.find('.'); dot != std::string_view::npos) {
            const std::string_view ext = dll.substr(dot);
            if (starts_with_nocase(ext, ".ocx") || starts_with_nocase(ext, ".sys") ||
                starts_with_nocase(ext, ".dll")) {
                dll_part = dll.substr(0, dot);
            }
        }
        // ClamAV's thunk loop has no count limit; the file end bounds it.
        for (std::uint64_t thunk_at = *thunk;; thunk_at += 4) {
            const auto value = le32(file, thunk_at);
            if (!value || *value == 0) {
                break;
            }
            std::string function;
            if ((*value & 0x80000000U) != 0) {
                function = ordinal_import_name(dll, static_cast<std::uint16_t>(*value & 0xffffU));
            } else {
                // ClamAV ignores a mapping failure here and reads at offset 0; a name too
                // close to the file end (the hint plus 256 bytes do not fit) is skipped.
                const std::uint64_t name_offset = map(*value).value_or(0);
                const std::uint64_t limit = name_offset > file_size
                                                ? max_name_size
                                                : std::min(max_name_size, file_size - name_offset);
                if (limit == 0 || !contains(file, name_offset + 2, limit)) {
                    continue;
                }
                function = std::string(c_string(file, static_cast<std::size_t>(name_offset + 2),
                                                 static_cast<std::size_t>(limit)));
            }
            if (!valid_import_name(function)) {
                return false;
            }
            piece.clear();
            if (!first) {
                piece += ',';
            }
            for (const char c : dll_part) {
                piece += ascii_lower(c);
            }
            piece += '.';
            for (const char c : function) {
                piece += ascii_lower(c);
            }
            sink(piece);
            first = false;
        }
    }
    return true;
}

std::optional<std::string> import_table_hash_input(bytes file, const executable_info& info) {
    std::string out;
    if (!visit_import_table_hash_input(file, info, [&](std::string_view piece) { out += piece; })) {
        return std::nullopt;
    }
    return out;
}

void for_each_resource(bytes file, const executable_info& info, std::uint32_t type_id,
                       const std::function<bool(const resource_entry&)>& visit) {
    find_resources(file, info, type_id, [&](const resource_leaf& leaf) {
        resource_entry entry;
        entry.type = leaf.type;
        entry.name = leaf.name;
        entry.language = leaf.language;
        entry.data_entry_rva = leaf.data_entry_rva;
        const auto at = raw_address(info.sections, info.header_size, leaf.data_entry_rva,
                                    file.size());
        if (at && contains(file, *at, 16)) {
            entry.data_rva = le32_at(file, *at);
            entry.data_size = le32_at(file, *at + 4);
            const auto data = raw_address(info.sections, info.header_size, entry.data_rva,
                                          file.size());
            if (data && contains(file, *data, entry.data_size)) {
                entry.data = file.subspan(*data, entry.data_size);
            }
        }
        return visit(entry);
    });
}

}  // namespace ringscan::matcher::detail
