#include "matcher/engine/engine_snapshot.h"

#include "base/hex.h"
#include "matcher/engine/hs_cache.h"
#include "matcher/engine/object_match.h"
#include "matcher/engine/snapshot_codec.h"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <link.h>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <xxhash.h>

namespace ringscan::matcher::detail {

namespace fs = std::filesystem;

namespace {

// --- File layout (integers in host order: only this build reads the file) -----------------
//   0  magic "RSCANEN\n"   8  u32 format version   12  u32 zero
//  16  key (16 bytes)      32  u64 payload length  40  payload XXH3-128 (16 bytes)
//  56  payload (serialize_engine)
constexpr std::string_view file_magic = "RSCANEN\n";
constexpr std::uint32_t format_version = 3;
constexpr std::size_t header_size = 56;
constexpr std::string_view snapshot_suffix = ".engine";
// Bumped with the key's encoding, so an old key never means something new.
constexpr std::string_view key_domain = "ringscan engine snapshot key v1";

// --- The key ---------------------------------------------------------------------------

/// The GNU build id of the object this code is linked into (empty when it has none).
std::string find_build_id() {
    struct search {
        const void* address = nullptr;
        std::string id;
    } state{reinterpret_cast<const void*>(&find_build_id), {}};
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
            auto& s = *static_cast<search*>(data);
            const auto address = reinterpret_cast<ElfW(Addr)>(s.address);
            bool contains = false;
            for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& segment = info->dlpi_phdr[i];
                const ElfW(Addr) begin = info->dlpi_addr + segment.p_vaddr;
                contains = contains || (segment.p_type == PT_LOAD && address >= begin &&
                                        address < begin + segment.p_memsz);
            }
            if (!contains) {
                return 0;
            }
            for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& segment = info->dlpi_phdr[i];
                if (segment.p_type != PT_NOTE) {
                    continue;
                }
                const auto* at =
                    reinterpret_cast<const unsigned char*>(info->dlpi_addr + segment.p_vaddr);
                const unsigned char* end = at + segment.p_memsz;
                while (at + sizeof(ElfW(Nhdr)) <= end) {
                    ElfW(Nhdr) note{};
                    std::memcpy(&note, at, sizeof note);
                    const unsigned char* name = at + sizeof note;
                    const unsigned char* desc = name + ((note.n_namesz + 3U) & ~3U);
                    if (desc + note.n_descsz > end) {
                        break;
                    }
                    if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
                        std::memcmp(name, "GNU", 4) == 0) {
                        s.id.assign(reinterpret_cast<const char*>(desc), note.n_descsz);
                        return 1;
                    }
                    at = desc + ((note.n_descsz + 3U) & ~3U);
                }
            }
            return 1;
        },
        &state);
    return state.id;
}

const std::string& build_id() {
    static const std::string id = find_build_id();
    return id;
}

/// XXH3-128 over length-prefixed fields.
class key_hasher {
public:
    key_hasher() : state_(XXH3_createState()) {
        if (state_ != nullptr) {
            XXH3_128bits_reset(state_);
        }
    }
    ~key_hasher() { XXH3_freeState(state_); }
    key_hasher(const key_hasher&) = delete;
    key_hasher& operator=(const key_hasher&) = delete;

    void field(std::string_view bytes) {
        const std::uint64_t length = bytes.size();
        raw(&length, sizeof length);
        raw(bytes.data(), bytes.size());
    }
    void raw(const void* data, std::size_t size) {
        if (state_ != nullptr) {
            XXH3_128bits_update(state_, data, size);
        }
    }
    [[nodiscard]] std::optional<snapshot_key> finish() const {
        if (state_ == nullptr) {
            return std::nullopt;
        }
        XXH128_canonical_t canonical{};
        XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_));
        snapshot_key key{};
        std::memcpy(key.data(), canonical.digest, key.size());
        return key;
    }

private:
    XXH3_state_t* state_;
};

/// Adds the size and content of the file at `path`; false when it cannot be read.
bool hash_file(const fs::path& path, key_hasher& hasher) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    struct stat info {};
    bool read_all = ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
    if (read_all) {
        const auto size = static_cast<std::uint64_t>(info.st_size);
        hasher.raw(&size, sizeof size);
        std::uint64_t seen = 0;
        std::string buffer(std::size_t{1} << 20U, '\0');
        for (;;) {
            const ssize_t n = ::read(fd, buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                read_all = n == 0 && seen == size;  // a file that changed while read: no key
                break;
            }
            hasher.raw(buffer.data(), static_cast<std::size_t>(n));
            seen += static_cast<std::uint64_t>(n);
        }
    }
    ::close(fd);
    return read_all;
}

// --- Payload ---------------------------------------------------------------------------

/// A Hyperscan database through hs_serialize_database / hs_deserialize_database.
void visit_database(snapshot_writer& out, const hs_database_ptr& database) {
    char* bytes = nullptr;
    std::size_t length = 0;
    if (!database || hs_serialize_database(database.get(), &bytes, &length) != HS_SUCCESS) {
        out.count(0);  // none (a database that cannot be serialized is not stored either)
        return;
    }
    out.raw(std::as_bytes(std::span(bytes, length)));
    std::free(bytes);  // NOLINT(cppcoreguidelines-no-malloc): Hyperscan's allocation
}

void visit_database(snapshot_reader& in, hs_database_ptr& database) {
    const std::span<const std::byte> bytes = in.raw();
    if (bytes.empty()) {
        database.reset();
        return;
    }
    hs_database_t* loaded = nullptr;
    if (hs_deserialize_database(reinterpret_cast<const char*>(bytes.data()), bytes.size(),
                                &loaded) != HS_SUCCESS) {
        in.fail();
        return;
    }
    database.reset(loaded);
}

/// A snapshot_reader that can also map regions of the payload in place.
struct engine_reader : snapshot_reader {
    engine_reader(std::span<const std::byte> payload, region_mapper mapper)
        : snapshot_reader(payload), map_region(std::move(mapper)) {}
    region_mapper map_region;
};

}  // namespace

/// The fields of every engine structure, in one order for both directions. `Codec` is
/// snapshot_writer (with const structures) or snapshot_reader (with mutable ones).
struct snapshot_codec {
    /// Compiles only when `T` has exactly `N` non-static data members. Each visit function
    /// that lists the members of a structure one by one states first how many it knows of
    /// (those it carries plus those it leaves out on purpose, named there): a member added
    /// to the structure later breaks the build here ("N names provided for structured
    /// binding ... decomposes into M elements", from the visit function's instantiation)
    /// until the visit function carries it or says why not, and the count is updated.
    /// Structures stored as bytes (value/values) need no count: their bytes carry every
    /// member. A structured binding sees private members too, as this struct is the friend
    /// of the classes it visits; it cannot bind a class whose members are spread over a
    /// base and a derived class (none is visited member-wise).
    template <std::size_t N, class T>
    static void expect_fields(const T& object) {
        if constexpr (N == 1) {
            [[maybe_unused]] const auto& [a] = object;
        } else if constexpr (N == 2) {
            [[maybe_unused]] const auto& [a, b] = object;
        } else if constexpr (N == 3) {
            [[maybe_unused]] const auto& [a, b, c] = object;
        } else if constexpr (N == 4) {
            [[maybe_unused]] const auto& [a, b, c, d] = object;
        } else if constexpr (N == 5) {
            [[maybe_unused]] const auto& [a, b, c, d, e] = object;
        } else if constexpr (N == 6) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f] = object;
        } else if constexpr (N == 7) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g] = object;
        } else if constexpr (N == 8) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h] = object;
        } else if constexpr (N == 9) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i] = object;
        } else if constexpr (N == 10) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j] = object;
        } else if constexpr (N == 11) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k] = object;
        } else if constexpr (N == 12) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l] = object;
        } else if constexpr (N == 13) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m] = object;
        } else if constexpr (N == 14) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n] = object;
        } else if constexpr (N == 15) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o] = object;
        } else if constexpr (N == 16) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = object;
        } else if constexpr (N == 17) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q] = object;
        } else if constexpr (N == 18) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q, r] = object;
        } else if constexpr (N == 19) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q, r, s] = object;
        } else if constexpr (N == 20) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q, r, s, t] = object;
        } else if constexpr (N == 21) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q, r, s, t, u] = object;
        } else if constexpr (N == 22) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q, r, s, t, u, v] = object;
        } else if constexpr (N == 23) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q, r, s, t, u, v, w] = object;
        } else if constexpr (N == 24) {
            [[maybe_unused]] const auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
                                          q, r, s, t, u, v, w, x] = object;
        } else {
            static_assert(N > 0 && N <= 24, "expect_fields takes 1 to 24 members");
        }
    }

    template <class Codec, class Pool>
    static void names(Codec& c, Pool& pool) {
        expect_fields<2>(pool);  // text_, or mapped_ when read back from a mappable file
        if constexpr (Codec::reading) {
            // Left in the file when the caller can map it (see name_pool).
            const std::span<const std::byte> text = c.raw();
            if (c.map_region) {
                pool.mapped_ = c.map_region(c.offset_of(text), text.size());
            }
            if (!pool.mapped_) {
                pool.text_.assign(reinterpret_cast<const char*>(text.data()), text.size());
            }
        } else {
            c.text(pool.text_);
        }
    }

    template <class Codec, class Table>
    static void hashes(Codec& c, Table& table) {
        expect_fields<6>(table);
        c.value(table.digest_length_);
        c.values(table.digests_);
        c.values(table.values_);
        if (table.digests_.size() != table.values_.size() * table.digest_length_) {
            c.fail();  // lookups would read past the digests
        }
        c.values(table.sizes_);
        c.value(table.max_size_);
        c.value(table.has_any_size_);
    }

    template <class Codec, class Tables>
    static void hash_tables(Codec& c, Tables& tables) {
        for (auto& table : tables) {
            hashes(c, table);
        }
    }

    template <class Codec, class Token>
    static void token(Codec& c, Token& t) {
        expect_fields<6>(t);
        c.value(t.what);
        c.value(t.bytes);
        c.value(t.low);
        c.value(t.high);
        c.value(t.unbounded);
        c.each(t.choices, [&](auto& sequence) { tokens(c, sequence); });
    }

    template <class Codec, class Tokens>
    static void tokens(Codec& c, Tokens& sequence) {
        c.each(sequence, [&](auto& t) { token(c, t); });
    }

    template <class Codec, class Program>
    static void program(Codec& c, Program& p) {
        expect_fields<10>(p);
        std::span<const std::byte> bytes;
        if constexpr (Codec::reading) {
            bytes = c.raw();
            p.bytes_ = std::make_unique_for_overwrite<char[]>(bytes.size());
            if (!bytes.empty()) {  // a failed read gives an empty span with no data
                std::memcpy(p.bytes_.get(), bytes.data(), bytes.size());
            }
        } else {
            bytes = std::as_bytes(std::span(p.bytes_.get(), p.bytes_length()));
            c.raw(bytes);
        }
        bool has_tokens = p.tokens_ != nullptr;
        c.value(has_tokens);
        if constexpr (Codec::reading) {
            if (has_tokens) {
                auto context = std::make_unique<verify_program::token_context>();
                tokens(c, context->prefix);
                tokens(c, context->suffix);
                p.tokens_ = std::move(context);
            }
        } else if (has_tokens) {
            expect_fields<2>(*p.tokens_);
            tokens(c, p.tokens_->prefix);
            tokens(c, p.tokens_->suffix);
        }
        c.value(p.prefix_length_);
        c.value(p.suffix_length_);
        c.value(p.prefix_max_);
        c.value(p.suffix_max_);
        c.value(p.score_);
        c.value(p.factor_length_);
        c.value(p.caseless_);
        c.value(p.masked_);
        if (bytes.size() != p.bytes_length()) {
            c.fail();  // the accessors would read past the bytes
        }
    }

    template <class Codec, class Programs>
    static void programs(Codec& c, Programs& all) {
        c.each(all, [&](auto& p) { program(c, p); });
    }

    template <class Codec, class Expression>
    static void expression(Codec& c, Expression& e) {
        expect_fields<3>(e);
        c.values(e.nodes);
        c.value(e.root);
        c.value(e.highest_subsig);
    }

    template <class Codec, class Text>
    static void optional_text(Codec& c, Text& text) {
        bool present = text.has_value();
        c.value(present);
        if constexpr (Codec::reading) {
            if (present) {
                text.emplace();
                c.text(*text);
            }
        } else if (present) {
            c.text(*text);
        }
    }

    template <class Codec, class Description>
    static void description(Codec& c, Description& d) {
        expect_fields<10>(d);
        c.value(d.target);
        c.value(d.engine);
        c.value(d.file_size);
        c.value(d.entry_point);
        c.value(d.number_of_sections);
        optional_text(c, d.icon_group1);
        optional_text(c, d.icon_group2);
        optional_text(c, d.container);
        optional_text(c, d.handler_type);
        c.each(d.intermediates, [&](auto& name) { c.text(name); });
    }

    /// A unique_ptr<const T> member: a presence flag, then the object.
    template <class Codec, class Pointer, class Make, class Visit>
    static void owned(Codec& c, Pointer& pointer, Make make, Visit visit) {
        bool present = pointer != nullptr;
        c.value(present);
        if constexpr (Codec::reading) {
            if (present) {
                auto object = make();
                visit(*object);
                pointer = std::move(object);
            }
        } else if (present) {
            visit(*pointer);
        }
    }

    template <class Codec, class Runtime>
    static void pcre(Codec& c, Runtime& r) {
        expect_fields<4>(r);  // regex: by subsig()
        expression(c, r.trigger);
        c.value(r.flags);
        c.values(r.gate_literals);
    }

    template <class Codec, class Subsig>
    static void subsig(Codec& c, Subsig& s) {
        expect_fields<5>(s);
        c.value(s.what);
        c.value(s.offset);
        c.value(s.macro);
        // The regex is stored as its pattern and options and compiled on first use.
        bool has_pcre = s.pcre != nullptr;
        c.value(has_pcre);
        if constexpr (Codec::reading) {
            if (has_pcre) {
                std::string pattern;
                std::uint32_t options = 0;
                c.text(pattern);
                c.value(options);
                auto runtime = std::make_unique<pcre_runtime>(std::move(pattern), options);
                pcre(c, *runtime);
                s.pcre = std::move(runtime);
            }
        } else if (has_pcre) {
            // pattern_ and options_; ready_ and code_ are made on first use.
            expect_fields<4>(s.pcre->regex);
            c.text(s.pcre->regex.pattern());
            c.value(s.pcre->regex.options());
            pcre(c, *s.pcre);
        }
        owned(
            c, s.compare, [] { return std::make_unique<byte_compare_subsignature>(); },
            [&](auto& compare) {
                expect_fields<7>(compare);
                c.value(compare.reference);
                c.value(compare.offset);
                c.value(compare.number_base);
                c.value(compare.byte_order);
                c.value(compare.exact);
                c.value(compare.length);
                c.values(compare.comparisons);
            });
    }

    template <class Codec, class Signature>
    static void signature(Codec& c, Signature& s) {
        expect_fields<10>(s);
        c.value(s.name);
        c.value(s.target);
        expression(c, s.expression);
        owned(
            c, s.description, [] { return std::make_unique<target_description>(); },
            [&](auto& d) { description(c, d); });
        c.value(s.first_subsig);
        c.value(s.subsig_count);
        c.value(s.boyer_moore);
        c.value(s.has_macros);
        c.value(s.body_line);
        c.value(s.always);
    }

    template <class Codec, class Icons>
    static void icons(Codec& c, Icons& db) {
        expect_fields<2>(db);
        for (auto& names : db.group_names_) {
            c.each(names, [&](auto& name) { c.text(name); });
        }
        for (auto& list : db.icons_) {
            c.each(list, [&](auto& icon) {
                expect_fields<3>(icon);
                c.text(icon.name);
                c.value(icon.group);
                c.value(icon.metrics);
            });
        }
    }

    template <class Codec, class Objects>
    static void objects(Codec& c, Objects& db) {
        expect_fields<16>(db);
        c.each(db.signatures, [&](auto& s) { signature(c, s); });
        c.each(db.subsigs, [&](auto& s) { subsig(c, s); });
        c.values(db.patterns);
        programs(c, db.programs);
        c.each(db.chains, [&](auto& chain) {
            expect_fields<5>(chain);
            c.value(chain.subsig);
            c.values(chain.gaps);
            c.values(chain.max_gaps);
            c.value(chain.first_segment);
            c.value(chain.needed_once);
        });
        c.value(db.chain_segments);
        c.values(db.factors);
        c.values(db.factor_patterns);
        c.each(db.groups, [&](auto& group) {
            expect_fields<7>(group);
            c.value(group.target);
            visit_database(c, group.factors);
            visit_database(c, group.direct);
            c.values(group.signatures);
            c.value(group.factor_count);
            c.value(group.direct_count);
            c.value(group.database_bytes);
        });
        c.value(db.group_of);
        expect_fields<3>(db.pe_hashes);
        hash_tables(c, db.pe_hashes.sections);
        hash_tables(c, db.pe_hashes.imports);
        c.value(db.pe_hashes.any);
        c.values(db.macro_members);
        c.value(db.generic_halt);
        icons(c, db.icons);
        visit_database(c, db.pcre_gates);
        c.value(db.pcre_gate_count);
    }

    template <class Codec, class Engine>
    static void engine(Codec& c, Engine& e) {
        // Not stored: id (each engine gets a new one), report and digests (set again by
        // deserialize_engine).
        expect_fields<21>(e);
        c.value(e.signature_count);
        names(c, e.names);
        c.each(e.shards, [&](auto& s) {
            expect_fields<6>(s);
            c.value(s.target);
            visit_database(c, s.direct);
            visit_database(c, s.prefilter);
            c.value(s.direct_count);
            c.value(s.factor_count);
            c.value(s.database_bytes);
        });
        c.value(e.shard_of);
        c.values(e.bodies);
        programs(c, e.programs);
        c.values(e.factors);
        c.values(e.factor_bodies);
        c.value(e.history);
        c.value(e.max_body_length);
        c.value(e.literals_only);
        c.value(e.typed);
        c.value(e.has_end_of_file);
        c.each(e.skipped, [&](auto& line) { c.text(line); });
        hash_tables(c, e.hashes);
        hash_tables(c, e.allowed);
        c.value(e.has_allowed);
        objects(c, *e.objects);
    }

    template <class Codec, class Extras>
    static void extras(Codec& c, Extras& x) {
        expect_fields<2>(x);
        c.each(x.skipped, [&](auto& line) { c.text(line); });
        bool has_daily = x.daily_version.has_value();
        c.value(has_daily);
        if constexpr (Codec::reading) {
            if (has_daily) {
                x.daily_version.emplace();
            }
        }
        if (has_daily) {
            expect_fields<2>(*x.daily_version);
            c.value(x.daily_version->version);
            c.text(x.daily_version->build_time);
        }
    }
};

std::optional<snapshot_key> snapshot_key_of(std::span<const fs::path> paths) {
    const std::string& id = build_id();
    if (id.empty()) {
        return std::nullopt;
    }
    key_hasher hasher;
    hasher.field(key_domain);
    hasher.field(id);
    hasher.field(hs_version());
    hs_platform_info_t platform{};
    if (hs_populate_platform(&platform) != HS_SUCCESS) {
        return std::nullopt;
    }
    // Field by field: the struct's padding is not guaranteed to be zero.
    for (const std::uint64_t field :
         {std::uint64_t{platform.tune}, std::uint64_t{platform.cpu_features},
          std::uint64_t{platform.reserved1}, std::uint64_t{platform.reserved2}}) {
        hasher.raw(&field, sizeof field);
    }
    for (const fs::path& path : paths) {
        hasher.field(path.native());
        std::error_code error;
        const auto status = fs::status(path, error);
        if (error) {
            return std::nullopt;
        }
        std::vector<fs::path> files;
        if (fs::is_directory(status)) {
            for (fs::directory_iterator it(path, error), end; !error && it != end;
                 it.increment(error)) {
                std::error_code type_error;
                if (is_database_file_name(it->path().filename().native()) &&
                    it->is_regular_file(type_error)) {
                    files.push_back(it->path());
                }
            }
            if (error) {
                return std::nullopt;
            }
            // Unsorted: load_signatures() reads a directory in its listing order, which
            // decides e.g. which of two names for one hash is reported.
        } else {
            files.push_back(path);
        }
        const std::uint64_t count = files.size();
        hasher.raw(&count, sizeof count);
        for (const fs::path& file : files) {
            hasher.field(file.filename().native());
            if (!hash_file(file, hasher)) {
                return std::nullopt;
            }
        }
    }
    return hasher.finish();
}

std::string serialize_engine(const engine::impl& compiled, const snapshot_extras& extras) {
    snapshot_writer out;
    snapshot_codec::engine(out, compiled);
    snapshot_codec::extras(out, extras);
    return std::move(out.output());
}

std::unique_ptr<engine::impl> deserialize_engine(std::span<const std::byte> payload,
                                                 snapshot_extras& extras,
                                                 const region_mapper& map_region) {
    auto compiled = std::make_unique<engine::impl>();
    compiled->objects = std::make_unique<object_database>();
    engine_reader in(payload, map_region);
    snapshot_codec::engine(in, *compiled);
    snapshot_codec::extras(in, extras);
    if (!in.ok() || in.remaining() != 0 || fetch_digests(*compiled) != nullptr) {
        return nullptr;
    }
    compiled->id = next_engine_id.fetch_add(1, std::memory_order_relaxed);
    compiled->report.from_snapshot = true;
    compiled->report.cache_bytes_read = payload.size();
    return compiled;
}

std::string snapshot_file_name(const snapshot_key& key) {
    return hex::encode(key) + std::string(snapshot_suffix);
}

namespace {

XXH128_hash_t payload_hash(std::string_view payload) {
    return XXH3_128bits(payload.data(), payload.size());
}

/// Removes the oldest snapshots (by modification time) beyond snapshot_budget bytes; the
/// newest always stays.
void trim_snapshots(const fs::path& directory) {
    struct snapshot {
        struct timespec modified {};
        std::uint64_t size = 0;
        fs::path path;
    };
    std::vector<snapshot> snapshots;
    std::error_code error;
    for (fs::directory_iterator it(directory, error), end; !error && it != end;
         it.increment(error)) {
        struct stat info {};
        if (it->path().filename().native().ends_with(snapshot_suffix) &&
            ::lstat(it->path().c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
            snapshots.push_back(
                {info.st_mtim, static_cast<std::uint64_t>(info.st_size), it->path()});
        }
    }
    std::sort(snapshots.begin(), snapshots.end(), [](const snapshot& a, const snapshot& b) {
        return a.modified.tv_sec != b.modified.tv_sec ? a.modified.tv_sec > b.modified.tv_sec
                                                      : a.modified.tv_nsec > b.modified.tv_nsec;
    });
    std::uint64_t total = 0;
    for (std::size_t k = 0; k < snapshots.size(); ++k) {
        total += snapshots[k].size;
        if (k > 0 && total > snapshot_budget) {
            ::unlink(snapshots[k].path.c_str());
        }
    }
}

}  // namespace

bool store_snapshot(const fs::path& directory, const snapshot_key& key,
                    const engine::impl& compiled, const snapshot_extras& extras) {
    if (directory.empty() || !prepare_cache_directory(directory)) {
        return false;
    }
    const std::string payload = serialize_engine(compiled, extras);
    std::string header(header_size, '\0');
    const std::uint64_t length = payload.size();
    const XXH128_hash_t hash = payload_hash(payload);
    std::memcpy(header.data(), file_magic.data(), file_magic.size());
    std::memcpy(header.data() + 8, &format_version, sizeof format_version);
    std::memcpy(header.data() + 16, key.data(), key.size());
    std::memcpy(header.data() + 32, &length, sizeof length);
    std::memcpy(header.data() + 40, &hash.low64, sizeof hash.low64);
    std::memcpy(header.data() + 48, &hash.high64, sizeof hash.high64);
    const std::array<std::string_view, 2> parts{header, payload};
    if (!write_cache_file(directory, snapshot_file_name(key), parts)) {
        return false;
    }
    trim_snapshots(directory);
    return true;
}

std::unique_ptr<engine::impl> load_snapshot(const fs::path& directory, const snapshot_key& key,
                                            snapshot_extras& extras) {
    if (directory.empty() || !prepare_cache_directory(directory)) {
        return nullptr;
    }
    const fs::path path = directory / snapshot_file_name(key);
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return nullptr;
    }
    struct stat info {};
    void* mapping = MAP_FAILED;
    std::size_t size = 0;
    if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) &&
        static_cast<std::size_t>(info.st_size) >= header_size) {
        size = static_cast<std::size_t>(info.st_size);
        mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    if (mapping == MAP_FAILED) {
        ::close(fd);
        return nullptr;
    }
    // Read once, front to back: ask for the pages ahead of time.
    ::madvise(mapping, size, MADV_WILLNEED);
    const std::string_view file(static_cast<const char*>(mapping), size);
    std::unique_ptr<engine::impl> compiled;
    std::uint32_t version = 0;
    std::uint64_t length = 0;
    XXH128_hash_t stored{};
    std::memcpy(&version, file.data() + 8, sizeof version);
    std::memcpy(&length, file.data() + 32, sizeof length);
    std::memcpy(&stored.low64, file.data() + 40, sizeof stored.low64);
    std::memcpy(&stored.high64, file.data() + 48, sizeof stored.high64);
    const std::string_view payload = file.substr(header_size);
    if (file.starts_with(file_magic) && version == format_version &&
        std::memcmp(file.data() + 16, key.data(), key.size()) == 0 && length == payload.size() &&
        XXH128_isEqual(payload_hash(payload), stored) != 0) {
        compiled = deserialize_engine(std::as_bytes(std::span(payload.data(), payload.size())),
                                      extras, [fd](std::size_t offset, std::size_t region_length) {
                                          return mapped_bytes::map(fd, header_size + offset,
                                                                   region_length);
                                      });
    }
    ::munmap(mapping, size);
    ::close(fd);
    if (compiled) {
        ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // recently used: trimmed last
    }
    return compiled;
}

}  // namespace ringscan::matcher::detail
