#pragma once

/// Allocator housekeeping for the binaries we ship (jemalloc, or glibc in sanitizer
/// builds). RINGSCAN_WITH_JEMALLOC comes with the ringscan_allocator CMake target.

#if defined(RINGSCAN_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>

#include <string>
#else
#include <malloc.h>
#endif

namespace ringscan {

/// Returns freed pages to the system. After a database load the freed parse and compile
/// buffers outweigh the engine; jemalloc keeps them dirty until allocations resume, and
/// an idle daemon makes none.
inline void give_back_free_memory() {
#if defined(RINGSCAN_WITH_JEMALLOC)
    const std::string every_arena = "arena." + std::to_string(MALLCTL_ARENAS_ALL) + ".purge";
    mallctl(every_arena.c_str(), nullptr, nullptr, nullptr, 0);
#else
    malloc_trim(0);
#endif
}

}  // namespace ringscan
