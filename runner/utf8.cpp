// runner/utf8.cpp
#include "utf8.h"

namespace execguard::runner {

namespace {

const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length (1 to 4) of the well-formed sequence at text[at], or 0 when it is
// ill-formed; then `maximal_subpart` is the number of bytes (1 to 3) one
// U+FFFD stands for: the lead byte and the continuation bytes that were
// still possible after it (Unicode Table 3-7).
std::size_t well_formed_length(std::string_view text, std::size_t at, std::size_t& maximal_subpart) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    if (lead < 0x80) return 1;
    std::size_t length = 0;
    unsigned char second_low = 0x80, second_high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) second_low = 0xA0;   // no overlong forms
        if (lead == 0xED) second_high = 0x9F;  // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) second_low = 0x90;   // no overlong forms
        if (lead == 0xF4) second_high = 0x8F;  // nothing above U+10FFFF
    } else {
        maximal_subpart = 1;  // 80..C1, F5..FF never start a character
        return 0;
    }
    std::size_t i = 1;
    for (; i < length && at + i < text.size(); ++i) {
        const unsigned char c = byte(at + i);
        const unsigned char low = i == 1 ? second_low : 0x80;
        const unsigned char high = i == 1 ? second_high : 0xBF;
        if (c < low || c > high) break;
    }
    if (i == length) return length;
    maximal_subpart = i;
    return 0;
}

std::string plural(std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
    std::size_t subpart = 0;
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t length = well_formed_length(text, at, subpart);
        if (length == 0) return false;
        at += length;
    }
    return true;
}

std::string to_valid_utf8(std::string_view text, TextRepairs* repairs) {
    if (is_valid_utf8(text)) return std::string(text);
    std::string out;
    out.reserve(text.size() + 16);
    std::size_t subpart = 0;
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t length = well_formed_length(text, at, subpart);
        if (length != 0) {
            out.append(text.data() + at, length);
            at += length;
        } else {
            out += kReplacement;
            at += subpart;
            if (repairs) ++repairs->invalid_sequences;
        }
    }
    return out;
}

std::string replace_nul(std::string_view text, TextRepairs* repairs) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c != '\0') {
            out += c;
            continue;
        }
        out += kReplacement;
        if (repairs) ++repairs->nul_characters;
    }
    return out;
}

std::string storable_text(std::string_view text, TextRepairs* repairs) {
    if (text.find('\0') == std::string_view::npos) return to_valid_utf8(text, repairs);
    return replace_nul(to_valid_utf8(text, repairs), repairs);
}

std::string describe(const TextRepairs& repairs) {
    std::string out;
    if (repairs.invalid_sequences != 0)
        out = plural(repairs.invalid_sequences, "invalid UTF-8 sequence", "invalid UTF-8 sequences") +
              " replaced by U+FFFD";
    if (repairs.nul_characters != 0) {
        if (!out.empty()) out += "; ";
        out += plural(repairs.nul_characters, "NUL character", "NUL characters") + " replaced by U+FFFD";
    }
    return out;
}

std::string excerpt(std::string_view text, std::size_t max_bytes) {
    // A character that starts before max_bytes ends within 3 more bytes, so
    // this prefix repairs the same as the whole text up to the limit. A
    // repair never shortens, so text beyond the prefix means a cut below.
    std::string repaired = storable_text(text.substr(0, max_bytes + 4));
    if (repaired.size() <= max_bytes) return repaired;
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(repaired[cut]) & 0xC0) == 0x80) --cut;
    repaired.resize(cut);
    return repaired + "...";
}

}  // namespace execguard::runner
