#include "matcher/engine.h"
#include "matcher/engine/engine_impl.h"
#include "matcher/engine/engine_snapshot.h"

#include <utility>

namespace ringscan::matcher {

loaded_database load_database(std::span<const std::filesystem::path> paths,
                              const compile_options& options) {
    loaded_database loaded;
    const bool snapshots = !options.cache_directory.empty();
    const std::optional<detail::snapshot_key> key =
        snapshots ? detail::snapshot_key_of(paths) : std::nullopt;
    if (key && options.read_snapshot) {
        detail::snapshot_extras extras;
        if (auto state = detail::load_snapshot(options.cache_directory, *key, extras)) {
            loaded.compiled = std::shared_ptr<const engine>(new engine(std::move(state)));
            loaded.skipped = std::move(extras.skipped);
            loaded.daily_version = std::move(extras.daily_version);
            return loaded;
        }
    }
    signature_set signatures;
    for (const std::filesystem::path& path : paths) {
        signatures.append(load_signatures(path));
    }
    loaded.compiled = engine::compile(signatures, options);
    loaded.skipped = std::move(signatures.skipped);
    loaded.daily_version = std::move(signatures.daily_version);
    signatures = signature_set{};  // not needed while the snapshot is written
    // Stored only when the files still have the content the key was made from: an update
    // that landed during the load must not be filed under the old content's key.
    if (key && detail::snapshot_key_of(paths) == key) {
        const detail::snapshot_extras extras{loaded.skipped, loaded.daily_version};
        // Best effort: without a snapshot the next start compiles again.
        static_cast<void>(detail::store_snapshot(options.cache_directory, *key,
                                                 loaded.compiled->internals(), extras));
    }
    return loaded;
}

}  // namespace ringscan::matcher
