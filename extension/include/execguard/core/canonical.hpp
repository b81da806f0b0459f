// extension/include/execguard/core/canonical.hpp
//
// Canonical spelling of identifiers and the error type of the core.
//
// Model ids and region names are compared after trimming surrounding ASCII
// whitespace and lower-casing ASCII letters; job and question ids after
// trimming only. Every identifier is at most kMaxIdentifierBytes bytes and
// contains no control characters. Non-ASCII bytes are kept as they are: no
// Unicode case folding, so no locale can change what counts as a duplicate.
#pragma once

#include "execguard/core/guard.hpp"

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace execguard::core {

inline constexpr std::size_t kMaxIdentifierBytes = 200;
inline constexpr std::size_t kMaxQuestionTextBytes = 1000;
inline constexpr std::size_t kMaxModelEntries = 10000;
inline constexpr std::size_t kMaxQuestions = 1000000;
inline constexpr std::size_t kMaxUnitsPerJob = 10000000;
// Sum over the normalised models of their regions.
inline constexpr std::size_t kMaxModelRegionPairs = 1000000;

// The SQLSTATE class an input error maps to in the PostgreSQL adapter.
enum class ErrorKind {
    invalid_parameter,  // 22023
    program_limit,      // 54000
};

// A bad input: the message names the position, e.g.
// "models[3].regions[1] must be a string".
class InputError : public std::runtime_error {
public:
    InputError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

private:
    ErrorKind kind_;
};

// A position in the input, for error messages, built only when one is
// needed: "models[3].regions[1]" is Where("models").element(3)
// .member("regions").element(1). Each Where refers to its parent, so it
// must not outlive it (they live on the stack of the code that walks the
// input).
class Where {
public:
    Where(const char* name) : parent_(nullptr), name_(name), index_(0), is_element_(false) {}       // NOLINT: implicit
    Where(std::string_view name) : parent_(nullptr), name_(name), index_(0), is_element_(false) {}  // NOLINT
    Where(const std::string& name) : Where(std::string_view(name)) {}                               // NOLINT: implicit
    Where element(std::size_t index) const& { return Where(this, {}, index, true); }
    Where member(std::string_view name) const& { return Where(this, name, 0, false); }
    // The result points at its parent: never derive one from a temporary.
    Where element(std::size_t index) const&& = delete;
    Where member(std::string_view name) const&& = delete;
    std::string str() const;

private:
    Where(const Where* parent, std::string_view name, std::size_t index, bool is_element)
        : parent_(parent), name_(name), index_(index), is_element_(is_element) {}
    const Where* parent_;
    std::string_view name_;
    std::size_t index_;
    bool is_element_;
};

[[noreturn]] void fail(const std::string& message);
[[noreturn]] void fail_limit(const std::string& message);

// Well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF). Identifiers must be; a database in SQL_ASCII could pass others.
bool is_valid_utf8(std::string_view text) noexcept;

// The length of the well-formed UTF-8 sequence that starts at text[i]
// (i < text.size()), or 0 when none does.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) noexcept;

// At most `max_bytes` of `text` for an error message, cut on a character
// boundary so the message stays valid UTF-8, with "..." when cut.
std::string excerpt(std::string_view text, std::size_t max_bytes = 64);

// Surrounding ASCII whitespace removed.
std::string_view trim_ascii(std::string_view text) noexcept;

// Trimmed and lower-cased; `where` names the position for error messages.
std::string canonical_model_or_region(std::string_view raw, const Where& where);

// Trimmed only (job ids, question ids: case is significant).
std::string canonical_exact_id(std::string_view raw, const Where& where, std::size_t max_bytes = kMaxIdentifierBytes);

// Trimmed free text (names, providers): may be empty, no control characters.
std::string checked_text(std::string_view raw, const Where& where, std::size_t max_bytes = kMaxIdentifierBytes);

// Prompt text: trimmed, non-empty; tabs and line breaks are ordinary text,
// other control characters are refused.
std::string prompt_text(std::string_view raw, const Where& where, std::size_t max_bytes);

// A question id as a client passes it to claim_execution(): trimmed, '' for
// the single-prompt unit, otherwise held to the rules of prompt_text(),
// since a plain-string question's id is its prompt text.
std::string canonical_question_id(std::string_view raw, const Where& where);

}  // namespace execguard::core
