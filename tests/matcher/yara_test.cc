#include "matcher/internal/yara.h"

#include <gtest/gtest.h>

namespace ringscan::matcher::detail {
namespace {

TEST(Yara, Basic) {
    auto r = parse_yara(R"(rule A { strings: $a = "hello" condition: $a })");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->rules.size(), 1U);
    EXPECT_EQ(r->rules[0].name, "YARA.A");
}

}  // namespace
}  // namespace ringscan::matcher::detail
