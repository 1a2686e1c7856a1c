#pragma once

/// Executable-structure facts ClamAV 1.4.6 uses when matching signatures, computed from a
/// complete file in memory: the entry point and section table behind the `EP+n`, `EP-n`,
/// `Sx+n`, `SEx`, `SL+n` offsets and the `EntryPoint:`/`NumberOfSections:` fields of .ldb
/// target descriptions, the PE version-information positions of `VI`, the PE section ranges
/// hashed for .mdb/.msb, the import-table string hashed for .imp, and a resource walker.
///
/// Behaviour follows libclamav (pe.c cli_peheader/cli_rawaddr/findres/hash_imptbl,
/// elf.c cli_elfheader, macho.c cli_scanmacho, matcher.c cli_caloff), quirks included:
///  - PE: sections come from the section table with ClamAV's alignment fix-ups (rva rounded
///    down to SectionAlignment, raw offset down to FileAlignment, raw size up to it and
///    clipped at the file end; 0 for a section starting beyond the file). EP is
///    AddressOfEntryPoint mapped to a file offset (an RVA below SizeOfHeaders maps to itself).
///  - ELF: sections are the SECTION HEADERS (sh_offset/sh_size/sh_addr; index 0 is the null
///    section), while EP is e_entry mapped through the PROGRAM HEADERS (first segment whose
///    [p_vaddr, p_vaddr+p_memsz) holds it). No program headers or e_entry 0 give EP 0. A file
///    with e_shentsize != the section header size fails, even with e_shnum 0.
///  - Mach-O: sections are the sections of all LC_SEGMENT(_64) commands in order (raw offset =
///    section offset, raw size = size rounded up to its alignment). EP is read only from an
///    LC_THREAD/LC_UNIXTHREAD of a 32-bit x86, PPC or PPC64 image, and ClamAV never stores the
///    x86 eip: EP is 0 (the file start) for x86, x86-64 and ARM images. A PPC entry point is
///    mapped through the sections (kept as an address when there are none).
///  - Mach-O universal (fat) files have no header of their own: ClamAV's header parse fails
///    on them (no EP/Sx/SL/SE offsets match the wrapper); it scans each member as a separate
///    embedded thin Mach-O, where the offsets are relative to the member.
/// Every read is bounds-checked; iteration counts follow ClamAV's own caps (96 PE sections,
/// 128 ELF program headers, 256 ELF sections, 1024 Mach-O commands, 255 sections per segment)
/// plus a work cap on resource-directory walks, which ClamAV does not have.

#include "matcher/model/offset.h"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

enum class executable_kind : std::uint8_t {
    pe32,       ///< PE with any optional-header magic other than 0x20b
    pe32_plus,  ///< PE32+ (optional-header magic 0x20b)
    elf32,
    elf64,
    macho32,
    macho64,
};

/// One section as ClamAV stores it (struct cli_exe_section). Values are 32-bit because
/// ClamAV 1.4.6 keeps them in uint32_t (64-bit ELF/Mach-O values are truncated).
struct executable_section {
    std::string name;               ///< PE: the 8-byte name up to NUL; Mach-O: sectname; ELF: ""
    std::uint32_t rva = 0;          ///< PE: aligned VirtualAddress; ELF: sh_addr; Mach-O: addr
    std::uint32_t virtual_size = 0; ///< PE: aligned VirtualSize; ELF: 0; Mach-O: size
    std::uint32_t raw_offset = 0;   ///< the file offset Sx+n/SEx/SL+n use
    std::uint32_t raw_size = 0;     ///< the size SEx uses (and .mdb/.msb compare)
};

struct pe_data_directory {
    std::uint32_t rva = 0;
    std::uint32_t size = 0;
};

/// A string of a PE VS_VERSION_INFO StringTable. A `VI` subsignature matches only when its
/// match STARTS at `offset` (ClamAV keeps the offsets in a hashset and tests the start only;
/// the match may be shorter or longer than the pair).
struct version_info_string {
    std::uint32_t offset = 0;  ///< file offset of the UTF-16LE key (the String header + 6)
    std::uint32_t key_size = 0;    ///< key bytes incl. its NUL and padding to 4
    std::uint32_t value_size = 0;  ///< value bytes after it, to the (4-aligned) String end
};

struct executable_info {
    executable_kind kind = executable_kind::pe32;
    /// The FILE OFFSET of the entry point: the base of `EP+n`/`EP-n`, and the value the .ldb
    /// `EntryPoint:` field compares (not the RVA).
    std::uint32_t entry_point = 0;
    /// The entry point as the header states it (PE AddressOfEntryPoint, ELF e_entry, Mach-O
    /// PPC srr0; 0 when ClamAV does not read one).
    std::uint64_t entry_point_address = 0;
    /// In header order; ClamAV's `Sx` indexes this list from 0 and `SL` is its last element.
    std::vector<executable_section> sections;

    // PE only.
    bool is_dll = false;
    std::uint32_t header_size = 0;      ///< SizeOfHeaders rounded up to SectionAlignment
    std::uint32_t directory_count = 0;  ///< NumberOfRvaAndSizes capped at 16
    std::array<pe_data_directory, 16> directories{};  ///< zero beyond directory_count
    /// ClamAV's res_addr: directory 2's rva, or 0 for a DLL, fewer than 3 directories or a
    /// zero-sized resource directory (icon matching needs it non-zero).
    std::uint32_t resource_rva = 0;
    /// VI positions, sorted by offset, each once.
    std::vector<version_info_string> version_info;

    /// The value the .ldb `NumberOfSections:` field compares (ClamAV's nsections, uint16_t).
    [[nodiscard]] std::uint16_t number_of_sections() const {
        return static_cast<std::uint16_t>(sections.size());
    }
    [[nodiscard]] bool is_pe() const {
        return kind == executable_kind::pe32 || kind == executable_kind::pe32_plus;
    }
};

/// Parses the header of `file` with the parser of target `target` (1 PE, 6 ELF, 9 Mach-O):
/// ClamAV picks it by the target of the FILE's type (CL_TYPE_MSEXE -> PE ...), and every
/// signature scanned on the file sees that result. nullopt where ClamAV's header parse fails:
/// then no relative offset (EP, Sx, SL, SE, EOF-n) matches and the EntryPoint and
/// NumberOfSections fields are false. Other targets: nullopt (ClamAV parses nothing; EOF-n
/// still works, see start_window).
[[nodiscard]] std::optional<executable_info> parse_executable(std::span<const unsigned char> file,
                                                              unsigned target);
/// Picks the parser from the magic (MZ/ZM, \x7fELF, Mach-O thin magics).
[[nodiscard]] std::optional<executable_info> parse_executable(std::span<const unsigned char> file);

[[nodiscard]] std::optional<executable_info> parse_pe(std::span<const unsigned char> file);
[[nodiscard]] std::optional<executable_info> parse_elf(std::span<const unsigned char> file);
[[nodiscard]] std::optional<executable_info> parse_macho(std::span<const unsigned char> file);

/// ClamAV's cli_rawaddr: the file offset of PE `rva`, or nullopt when no section with raw
/// data holds it (an rva below header_size maps to itself when inside the file).
[[nodiscard]] std::optional<std::uint32_t> pe_file_offset(const executable_info& info,
                                                          std::uint32_t rva,
                                                          std::uint64_t file_size);

/// Where a match may START, both ends inclusive.
struct start_window_range {
    std::uint64_t min_start = 0;
    std::uint64_t max_start = 0;
};

/// The window of match starts that `offset` allows in a file of `file_size` bytes, as ClamAV's
/// cli_caloff computes it; nullopt: the subsignature cannot match in this file.
///  - `*`, `VI` and `$n$` give the whole file: VI additionally needs the start to be one of
///    info->version_info (version_info_allows), macro groups are checked elsewhere.
///  - `n,m`: [n, n+m]. `EOF-n,m`: [size-n, size-n+m] (n > size: nothing).
///  - `EP+n,m`/`EP-n,m`: [ep+-n, ep+-n+m] (ep-n below 0: nothing).
///  - `Sx+n,m`: [raw(x)+n, raw(x)+n+m]; `SL+n,m` the same with the last section.
///  - `SEx,m`: [raw(x), raw(x)+rsize(x)+m] -- only the START must lie there; a match may run
///    past the section end (clamscan 1.4.6: a 16-byte match starting 8 bytes before the end of
///    .text, or exactly at raw+rsize, is found; at raw+rsize+1 it is not). With the
///    Boyer-Moore matcher: [raw(x), raw(x)].
///  - a section index beyond the table, or an executable offset without `info`: nothing.
/// `info`: the header parse of the OBJECT's own type (ClamAV parses by the file's type, and
/// uses it for every signature scanned on it, target 0 ones included). `header_failed`: the
/// object is a PE/ELF/Mach-O whose header did not parse; ClamAV then rejects every relative
/// offset, EOF-n included, for every signature (clamscan 1.4.6: on test.exe cut to 1000 bytes,
/// EOF-16 sigs of target 0 and 1 both miss, absolute `0:` and `*` sigs match).
[[nodiscard]] std::optional<start_window_range> start_window(
    const body_offset& offset, const executable_info* info, std::uint64_t file_size,
    bool header_failed = false, clamav_matcher matcher = clamav_matcher::aho_corasick);

/// Whether a `VI` subsignature may match starting at `start`.
[[nodiscard]] bool version_info_allows(const executable_info& info, std::uint64_t start);

/// A range of file bytes.
struct byte_range {
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
};

/// The PE sections ClamAV hashes for .mdb/.msb, in header order: the raw data
/// [raw_offset, raw_offset + raw_size) of every section with raw_size > 0 (size already
/// rounded up to FileAlignment and clipped at the file end). `size` is the value compared with
/// the signature's PESectionSize field. Both PE32 and PE32+ are hashed. Empty for non-PE.
[[nodiscard]] std::vector<byte_range> section_hash_ranges(const executable_info& info);

/// Streams the bytes ClamAV hashes for .imp (hash_imptbl): for each import descriptor and
/// each thunk, `dll.function` lower-cased, joined by `,`, where `dll` loses a `.dll`/`.ocx`/
/// `.sys` extension and an ordinal import becomes a known name (ws2_32/wsock32/oleaut32) or
/// `ord<N>`. The .imp size field is the total length. Returns false when ClamAV computes no
/// import hash: not PE32 (ClamAV stops before the import scan for PE32+), no import
/// directory, a directory outside the file, or a malformed entry (invalid function-name
/// character, unmappable dll name or thunk) -- then the pieces already delivered are void.
bool visit_import_table_hash_input(std::span<const unsigned char> file,
                                   const executable_info& info,
                                   const std::function<void(std::string_view)>& sink);

/// The whole .imp hash input as one string (see visit_import_table_hash_input).
[[nodiscard]] std::optional<std::string> import_table_hash_input(
    std::span<const unsigned char> file, const executable_info& info);

/// One leaf of the PE resource directory.
struct resource_entry {
    std::uint32_t type = 0;      ///< the type directory entry's id (or name offset | 1<<31)
    std::uint32_t name = 0;      ///< the name entry's id, or its name offset with bit 31 set
    std::uint32_t language = 0;  ///< the language entry's id
    std::uint32_t data_entry_rva = 0;  ///< rva of the IMAGE_RESOURCE_DATA_ENTRY
    std::uint32_t data_rva = 0;        ///< OffsetToData of that entry
    std::uint32_t data_size = 0;       ///< Size of that entry
    /// The resource bytes when they map into the file whole, else empty.
    std::span<const unsigned char> data;
};

/// Walks the resources of type `type_id` (e.g. 3 RT_ICON, 14 RT_GROUP_ICON, 16 RT_VERSION)
/// the way ClamAV's findres does: the first type entry with that id, every name (named and
/// numbered), every language leaf. `visit` returns false to stop. Does nothing when
/// directory 2 is absent. Bounded: at most 1 << 20 directory entries are visited.
void for_each_resource(std::span<const unsigned char> file, const executable_info& info,
                       std::uint32_t type_id,
                       const std::function<bool(const resource_entry&)>& visit);

}  // namespace ringscan::matcher::detail
