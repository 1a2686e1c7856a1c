#pragma once

/// Broken invariants abort with a message; they are bugs, not error values.

#include <cstdio>
#include <cstdlib>

#define RINGSCAN_ASSERT(cond)                                                                 \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                     \
        }                                                                                     \
    } while (false)
