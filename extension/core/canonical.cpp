// extension/core/canonical.cpp
//
// Canonical spelling of identifiers (see canonical.hpp). Plain C++, no
// PostgreSQL headers.
#include "execguard/core/canonical.hpp"

namespace execguard::core {

std::string Where::str() const {
    std::string out = parent_ != nullptr ? parent_->str() : std::string();
    if (is_element_) {
        out += "[" + std::to_string(index_) + "]";
    } else {
        if (!out.empty()) {
            out += ".";
        }
        out.append(name_.data(), name_.size());
    }
    return out;
}

void fail(const std::string& message) { throw InputError(ErrorKind::invalid_parameter, message); }

void fail_limit(const std::string& message) { throw InputError(ErrorKind::program_limit, message); }

namespace {

bool is_ascii_space(unsigned char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_control(unsigned char c) noexcept { return c < 0x20 || c == 0x7f; }

// Trims, then enforces the length, encoding and control-character rules.
std::string_view checked(std::string_view raw, const Where& where, std::size_t max_bytes) {
    std::string_view text = trim_ascii(raw);
    if (text.size() > max_bytes) {
        fail(where.str() + " is longer than " + std::to_string(max_bytes) + " bytes");
    }
    if (!is_valid_utf8(text)) {
        fail(where.str() + " is not valid UTF-8");
    }
    for (unsigned char c : text) {
        if (is_control(c)) {
            fail(where.str() + " contains a control character");
        }
    }
    return text;
}

}  // namespace

std::size_t utf8_sequence_length(std::string_view text, std::size_t i) noexcept {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
        return 1;
    }
    std::size_t length;
    unsigned char low = 0x80;  // allowed range of the second byte
    unsigned char high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        if (c == 0xE0) low = 0xA0;   // overlong
        if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        if (c == 0xF0) low = 0x90;   // overlong
        if (c == 0xF4) high = 0x8F;  // past U+10FFFF
    } else {
        return 0;
    }
    if (i + length > text.size()) {
        return 0;
    }
    for (std::size_t k = 1; k < length; ++k) {
        const unsigned char next = static_cast<unsigned char>(text[i + k]);
        if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) {
            return 0;
        }
    }
    return length;
}

bool is_valid_utf8(std::string_view text) noexcept {
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t length = utf8_sequence_length(text, i);
        if (length == 0) {
            return false;
        }
        i += length;
    }
    return true;
}

std::string excerpt(std::string_view text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) {
        return std::string(text);
    }
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
        --cut;
    }
    return std::string(text.substr(0, cut)) + "...";
}

std::string_view trim_ascii(std::string_view text) noexcept {
    while (!text.empty() && is_ascii_space(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_ascii_space(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    return text;
}

std::string canonical_model_or_region(std::string_view raw, const Where& where) {
    std::string_view text = checked(raw, where, kMaxIdentifierBytes);
    if (text.empty()) {
        fail(where.str() + " must not be empty");
    }
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

std::string canonical_exact_id(std::string_view raw, const Where& where, std::size_t max_bytes) {
    std::string_view text = checked(raw, where, max_bytes);
    if (text.empty()) {
        fail(where.str() + " must not be empty");
    }
    return std::string(text);
}

std::string checked_text(std::string_view raw, const Where& where, std::size_t max_bytes) {
    return std::string(checked(raw, where, max_bytes));
}

std::string prompt_text(std::string_view raw, const Where& where, std::size_t max_bytes) {
    std::string_view text = trim_ascii(raw);
    if (text.empty()) {
        fail(where.str() + " must not be empty");
    }
    if (text.size() > max_bytes) {
        fail(where.str() + " is longer than " + std::to_string(max_bytes) + " bytes");
    }
    if (!is_valid_utf8(text)) {
        fail(where.str() + " is not valid UTF-8");
    }
    for (unsigned char c : text) {
        if ((is_control(c) && c != '\t' && c != '\n' && c != '\r')) {
            fail(where.str() + " contains a control character");
        }
    }
    return std::string(text);
}

std::string canonical_question_id(std::string_view raw, const Where& where) {
    if (trim_ascii(raw).empty()) {
        return std::string();
    }
    return prompt_text(raw, where, kMaxQuestionTextBytes);
}

}  // namespace execguard::core
