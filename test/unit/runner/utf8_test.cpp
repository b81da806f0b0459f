// test/unit/runner/utf8_test.cpp: repairing provider text for logs, JSON
// and PostgreSQL, and cutting it on a character boundary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "utf8.h"

namespace execguard::runner {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(IsValidUtf8, AcceptsWellFormedText) {
    EXPECT_TRUE(is_valid_utf8(""));
    EXPECT_TRUE(is_valid_utf8("plain ascii"));
    EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
    EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));  // NUL is valid UTF-8; replace_nul handles it
}

TEST(IsValidUtf8, RefusesWhatPostgresAndNlohmannRefuse) {
    for (const char* bad : {"\xFF", "\x80", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF0\x80\x80\xAF",
                            "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xE2\x82", "\xC3"}) {
        EXPECT_FALSE(is_valid_utf8(bad));
        // The repaired text is accepted by both of them.
        const std::string repaired = to_valid_utf8(bad);
        EXPECT_TRUE(is_valid_utf8(repaired));
        EXPECT_NO_THROW(nlohmann::json(repaired).dump());
    }
}

TEST(ToValidUtf8, ReplacesEachMaximalSubpartWithOneReplacementCharacter) {
    TextRepairs repairs;
    EXPECT_EQ(to_valid_utf8("req-\xFF", &repairs), "req-" + kFFFD);
    EXPECT_EQ(repairs.invalid_sequences, 1u);
    // A truncated 3-byte character is one subpart; two stray bytes are two.
    EXPECT_EQ(to_valid_utf8("a\xE2\x82z"), "a" + kFFFD + "z");
    EXPECT_EQ(to_valid_utf8("\xFF\xFF"), kFFFD + kFFFD);
    // A surrogate's lead byte cannot continue with A0: three subparts.
    EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);
    EXPECT_EQ(to_valid_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
}

TEST(ReplaceNul, ReplacesAndCounts) {
    TextRepairs repairs;
    EXPECT_EQ(storable_text(std::string("before\0after\0", 13), &repairs), "before" + kFFFD + "after" + kFFFD);
    EXPECT_EQ(repairs.nul_characters, 2u);
    EXPECT_EQ(repairs.invalid_sequences, 0u);
    EXPECT_EQ(describe(repairs), "2 NUL characters replaced by U+FFFD");
    EXPECT_EQ(describe({1, 1}), "1 invalid UTF-8 sequence replaced by U+FFFD; 1 NUL character replaced by U+FFFD");
    EXPECT_EQ(describe({}), "");
}

TEST(Excerpt, NeverCutsInsideACharacter) {
    // U+20AC (3 bytes) at every position around the limit.
    for (std::size_t before = 7; before <= 10; ++before) {
        const std::string text = std::string(before, 'e') + "\xE2\x82\xAC" + "tail";
        const std::string cut = excerpt(text, 10);
        EXPECT_TRUE(is_valid_utf8(cut)) << before;
        EXPECT_LE(cut.size(), 10u + 3u);
        EXPECT_EQ(cut.substr(cut.size() - 3), "...");
        const bool euro_fits = before + 3 <= 10;
        EXPECT_EQ(cut.find("\xE2\x82\xAC") != std::string::npos, euro_fits) << before;
    }
    EXPECT_EQ(excerpt("short", 10), "short");
    EXPECT_EQ(excerpt("exactly 10", 10), "exactly 10");
    EXPECT_EQ(excerpt("exactly 11!", 10), "exactly 11...");
}

TEST(Excerpt, RepairsWhatItKeeps) {
    EXPECT_EQ(excerpt(std::string("a\xFF\0b", 4), 100), "a" + kFFFD + kFFFD + "b");
    // A character cut by the end of the text is repaired, not kept half.
    EXPECT_EQ(excerpt("abc\xE2\x82", 100), "abc" + kFFFD);
    EXPECT_TRUE(is_valid_utf8(excerpt(std::string(1000, '\xFF'), 300)));
}

}  // namespace
}  // namespace execguard::runner
