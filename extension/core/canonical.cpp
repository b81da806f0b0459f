// extension/core/canonical.cpp
//
// Canonical spelling of identifiers (see canonical.hpp). Plain C++, no
// PostgreSQL headers.
#include "execguard/core/canonical.hpp"

namespace execguard::core {

void fail(const std::string& message) { throw InputError(ErrorKind::invalid_parameter, message); }

void fail_limit(const std::string& message) { throw InputError(ErrorKind::program_limit, message); }

namespace {

bool is_ascii_space(unsigned char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_control(unsigned char c) noexcept { return c < 0x20 || c == 0x7f; }

// Trims, then enforces the length and control-character rules.
std::string_view checked(std::string_view raw, const std::string& where, std::size_t max_bytes) {
    std::string_view text = trim_ascii(raw);
    if (text.size() > max_bytes) {
        fail(where + " is longer than " + std::to_string(max_bytes) + " bytes");
    }
    for (unsigned char c : text) {
        if (is_control(c)) {
            fail(where + " contains a control character");
        }
    }
    return text;
}

}  // namespace

std::string_view trim_ascii(std::string_view text) noexcept {
    while (!text.empty() && is_ascii_space(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_ascii_space(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    return text;
}

std::string canonical_model_or_region(std::string_view raw, const std::string& where) {
    std::string_view text = checked(raw, where, kMaxIdentifierBytes);
    if (text.empty()) {
        fail(where + " must not be empty");
    }
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

std::string canonical_exact_id(std::string_view raw, const std::string& where, std::size_t max_bytes) {
    std::string_view text = checked(raw, where, max_bytes);
    if (text.empty()) {
        fail(where + " must not be empty");
    }
    return std::string(text);
}

std::string checked_text(std::string_view raw, const std::string& where, std::size_t max_bytes) {
    return std::string(checked(raw, where, max_bytes));
}

std::string prompt_text(std::string_view raw, const std::string& where, std::size_t max_bytes) {
    std::string_view text = trim_ascii(raw);
    if (text.empty()) {
        fail(where + " must not be empty");
    }
    if (text.size() > max_bytes) {
        fail(where + " is longer than " + std::to_string(max_bytes) + " bytes");
    }
    for (unsigned char c : text) {
        if ((is_control(c) && c != '\t' && c != '\n' && c != '\r')) {
            fail(where + " contains a control character");
        }
    }
    return std::string(text);
}

std::string canonical_question_id(std::string_view raw, const std::string& where) {
    if (trim_ascii(raw).empty()) {
        return std::string();
    }
    return prompt_text(raw, where, kMaxQuestionTextBytes);
}

}  // namespace execguard::core
