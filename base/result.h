#pragma once

/// Errors as values on hot paths: one alias so a later switch to std::expected is a
/// one-line change (STYLE.md, "Errors").

#include <tl/expected.hpp>

#include <system_error>

namespace ringscan {

template <typename T>
using result = tl::expected<T, std::error_code>;

/// Builds the error side of a result from an errno-style code (e.g. -cqe->res).
inline tl::unexpected<std::error_code> system_error_code(int errno_value) {
    return tl::unexpected(std::error_code(errno_value, std::system_category()));
}

}  // namespace ringscan
