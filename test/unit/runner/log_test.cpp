// test/unit/runner/log_test.cpp: a log line never throws and is valid
// UTF-8 whatever bytes its fields hold (issue 16: an invalid byte in a
// provider's error body ended the runner with type_error.316).
#include <gtest/gtest.h>

#include "log.h"
#include "utf8.h"

namespace execguard::runner {
namespace {

const log::Fields kHostileFields = {
    {"error", "server_error: HTTP 500: internal error \xFF"},
    {"cut", "eee\xE2\x82"},
    {"nul", std::string("a\0b", 3)},
    {"nested", nlohmann::json::object({{"k\xFF", "v\xC3"}})},
};

TEST(LogFormat, LogfmtLineWithInvalidUtf8IsValidAndDoesNotThrow) {
    std::string line;
    ASSERT_NO_THROW(line = log::format_fields(LogFormat::logfmt, "execution_failed", kHostileFields));
    EXPECT_TRUE(is_valid_utf8(line)) << line;
    EXPECT_NE(line.find("error=\"server_error: HTTP 500: internal error \xEF\xBF\xBD\""), std::string::npos) << line;
    EXPECT_NE(line.find("nul=\"a\\u0000b\""), std::string::npos) << line;
}

TEST(LogFormat, JsonLineWithInvalidUtf8IsValidJson) {
    std::string line;
    ASSERT_NO_THROW(line = log::format_fields(LogFormat::json, "execution_failed", kHostileFields));
    EXPECT_TRUE(is_valid_utf8(line)) << line;
    const auto parsed = nlohmann::json::parse("{" + line, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << line;
    EXPECT_EQ(parsed["error"], "server_error: HTTP 500: internal error \xEF\xBF\xBD");
}

TEST(LogFormat, PlainValuesStayUnquoted) {
    EXPECT_EQ(log::format_fields(LogFormat::logfmt, "e", {{"job", "j1"}, {"attempt", 2}}), "event=e job=j1 attempt=2");
}

}  // namespace
}  // namespace execguard::runner
