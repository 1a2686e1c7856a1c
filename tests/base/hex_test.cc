#include "base/hex.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>

namespace ringscan {
namespace {

TEST(Hex, EncodesBytesInLowercase) {
    const std::array<std::uint8_t, 4> bytes{0x00, 0x0f, 0xa5, 0xff};
    EXPECT_EQ(hex::encode(bytes), "000fa5ff");
    EXPECT_EQ(hex::encode(std::string_view("AZ\n")), "415a0a");
    EXPECT_EQ(hex::encode(std::string_view()), "");
}

TEST(Hex, EscapesBytesForRegexes) {
    std::string out;
    hex::append_escaped_byte(out, 0x00);
    hex::append_escaped_byte(out, 0xab);
    EXPECT_EQ(out, "\\x00\\xab");
}

TEST(Hex, NumbersArePaddedToTheWidthButNeverCut) {
    std::string out;
    hex::append_number(out, 0x1f, 4);
    out += '|';
    hex::append_number(out, 0, 1);
    out += '|';
    hex::append_number(out, 0x12345, 2);
    out += '|';
    hex::append_number(out, 0xffffffffffffffffULL, 18);
    EXPECT_EQ(out, "001f|0|12345|00ffffffffffffffff");
}

TEST(Hex, DecodesEitherCaseAndRefusesTheRest) {
    std::array<std::uint8_t, 3> out{};
    ASSERT_TRUE(hex::decode("00aBFf", out));
    EXPECT_EQ(out, (std::array<std::uint8_t, 3>{0x00, 0xab, 0xff}));
    EXPECT_FALSE(hex::decode("0", out));      // odd length
    EXPECT_FALSE(hex::decode("0g", out));     // not a digit
    EXPECT_FALSE(hex::decode("00112233", out));  // longer than the output
    EXPECT_EQ(hex::digit_value('F'), 15);
    EXPECT_EQ(hex::digit_value('/'), -1);
}

}  // namespace
}  // namespace ringscan
