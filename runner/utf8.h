// runner/utf8.h: text from an inference provider made fit for a log line, a
// JSON document and a PostgreSQL text or jsonb value.
//
// Whatever the provider sends (a body, a header, a string inside its JSON)
// may hold bytes that are not UTF-8, and JSON strings may hold U+0000,
// which PostgreSQL's text and jsonb cannot store. nlohmann::json::dump()
// throws on the first, PostgreSQL refuses both (22021, 22P05). So every
// such string passes through here before it is used: ill-formed sequences
// and NUL become U+FFFD, and a cut never falls inside a character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace execguard::runner {

// True when `text` is well-formed UTF-8: no stray continuation bytes, no
// overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text);

// What a repair changed.
struct TextRepairs {
    std::size_t invalid_sequences = 0;  // ill-formed UTF-8, each replaced by one U+FFFD
    std::size_t nul_characters = 0;     // U+0000, each replaced by U+FFFD
    bool any() const { return invalid_sequences != 0 || nul_characters != 0; }
};

// `text` with every maximal ill-formed subpart replaced by U+FFFD (the
// Unicode Standard's recommended practice, chapter 3.9, so "\xE2\x82" is
// one U+FFFD and "\xFF\xFF" two). Adds to `repairs->invalid_sequences`.
std::string to_valid_utf8(std::string_view text, TextRepairs* repairs = nullptr);

// `text` with each U+0000 replaced by U+FFFD. Adds to `repairs->nul_characters`.
std::string replace_nul(std::string_view text, TextRepairs* repairs = nullptr);

// Both: what PostgreSQL can store as text and inside jsonb.
std::string storable_text(std::string_view text, TextRepairs* repairs = nullptr);

// "1 NUL character replaced by U+FFFD", "2 invalid UTF-8 sequences
// replaced by U+FFFD; 1 NUL character ...", "" when nothing changed.
std::string describe(const TextRepairs& repairs);

// At most `max_bytes` bytes of storable_text(text), cut before the
// character that would cross the limit, with "..." appended when anything
// was left out. Only the first max_bytes + 4 bytes of `text` are read.
std::string excerpt(std::string_view text, std::size_t max_bytes);

}  // namespace execguard::runner
