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
inline constexpr std::size_t kMaxQuestions = 10000;
inline constexpr std::size_t kMaxUnitsPerJob = 1000000;

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

[[noreturn]] void fail(const std::string& message);
[[noreturn]] void fail_limit(const std::string& message);

// Surrounding ASCII whitespace removed.
std::string_view trim_ascii(std::string_view text) noexcept;

// Trimmed and lower-cased; `where` names the position for error messages.
std::string canonical_model_or_region(std::string_view raw, const std::string& where);

// Trimmed only (job ids, question ids: case is significant).
std::string canonical_exact_id(std::string_view raw, const std::string& where,
                               std::size_t max_bytes = kMaxIdentifierBytes);

// Trimmed free text (names, providers): may be empty, no control characters.
std::string checked_text(std::string_view raw, const std::string& where, std::size_t max_bytes = kMaxIdentifierBytes);

// Prompt text: trimmed, non-empty; tabs and line breaks are ordinary text,
// other control characters are refused.
std::string prompt_text(std::string_view raw, const std::string& where, std::size_t max_bytes);

// A question id as a client passes it to claim_execution(): trimmed, '' for
// the single-prompt unit, otherwise held to the rules of prompt_text(),
// since a plain-string question's id is its prompt text.
std::string canonical_question_id(std::string_view raw, const std::string& where);

}  // namespace execguard::core
