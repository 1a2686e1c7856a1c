#pragma once

/// Small helpers the reactor's parts share for talking about the system: error text,
/// why io_uring was refused, which CPUs the shards may run on. Private to ring/.

#include <cstddef>
#include <string>
#include <vector>

namespace ringscan::ring::internal {

/// strerror-style text for an errno value.
[[nodiscard]] std::string errno_text(int err);
/// Names the usual reasons io_uring is refused, so the operator knows what to change.
[[nodiscard]] std::string explain_uring_failure(int err);
/// The CPUs this process may run on (at least one entry).
[[nodiscard]] std::vector<std::size_t> allowed_cpus();

}  // namespace ringscan::ring::internal
