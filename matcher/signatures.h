#pragma once

/// Loading ClamAV database files into a signature_set (matcher/model/signature_set.h),
/// before compilation.
///
/// Loading runs at startup and reload only, so errors are exceptions (load_error) whose
/// what() names the file and line, as ClamAV's loader does.

#include "matcher/model/signature_set.h"

#include <filesystem>
#include <string_view>

namespace ringscan::matcher {

namespace detail {
struct container_keys;  // matcher/formats/cvd.h
}  // namespace detail

/// Loads one database file (by extension: .ndb, .db, .hdb, .hsb, .fp, .sfp, .ign, .ign2,
/// or a .cvd/.cld/.cud container) or every such file in a directory (non-recursive, in
/// ClamAV's order: .ign/.ign2 first, then daily.cld/.cvd, then the rest as the directory
/// lists them; of x.cvd and x.cld only the newer, the .cld when versions are equal). Names from
/// raw files and .cud get ".UNOFFICIAL"; .cvd/.cld names print bare. Names listed in
/// .ign/.ign2 files of the directory are dropped. Throws load_error naming file and line on
/// a malformed line, a broken container (MD5 mismatch), and when a directory holds no
/// database at all. Containers are checked as ClamAV 1.4.6 checks them: a .cvd's header
/// MD5 and digital signature, and for every container its .info member (a signed one for
/// .cvd and .cld) listing each database's size and SHA-256.
[[nodiscard]] signature_set load_signatures(const std::filesystem::path& file_or_directory);

/// The same with containers verified against other keys (tests sign their own).
[[nodiscard]] signature_set load_signatures(const std::filesystem::path& file_or_directory,
                                            const detail::container_keys& keys);

/// Whether load_signatures() of a directory considers a file of this name (a database or
/// container extension it knows).
[[nodiscard]] bool is_database_file_name(std::string_view file_name);

/// Parses the text of one database file; `file_name` decides the format by extension and
/// names the file in errors. `official` suppresses the ".UNOFFICIAL" suffix. .ign/.ign2
/// text parses to an empty set (their names only act inside load_signatures()).
[[nodiscard]] signature_set parse_signatures(std::string_view text, std::string_view file_name,
                                             bool official = false);

/// The database used when no DatabaseDirectory is configured: EICAR as
/// "Eicar-Test-Signature" and ClamAV's clam.exe (MD5 aa15bcf4..., 544 bytes) as
/// "Clamav.Test.File-6" -- the names clients know from the official databases.
[[nodiscard]] signature_set embedded_default_signatures();

}  // namespace ringscan::matcher
