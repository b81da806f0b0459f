// test/fuzz/fuzz_invariants.hpp
//
// Checks shared by the libFuzzer targets. A fuzz target that only waits for
// a crash misses wrong answers, so every target states what a correct answer
// looks like and aborts (a libFuzzer "crash" with the message printed) when
// an answer breaks it. Each check is written independently of the core's
// own code, from the contract in docs and execguard/bridge.h.
#pragma once

#include "execguard/bridge.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace execguard::fuzz {

inline constexpr std::size_t kMaxIdentifierBytes = 200;

// One call through the bridge: its status, its output, its error message.
struct Call {
    eg_status status;
    std::string out;
    eg_error error;
};

[[noreturn]] inline void violated(const char* target, const std::string& what) {
    std::fprintf(stderr, "\n=== INVARIANT VIOLATED in %s: %s\n", target, what.c_str());
    std::fflush(stderr);
    std::abort();
}

inline bool is_ascii_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

inline bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

inline std::string_view trimmed(std::string_view s) {
    while (!s.empty() && is_ascii_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && is_ascii_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

// Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
inline bool is_valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t n;
        unsigned cp;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else
            return false;
        for (std::size_t k = 1; k <= n; ++k) {
            if (i + k >= s.size()) return false;
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

// A canonical model id or region: trimmed, non-empty, at most 200 bytes, no
// control characters, no ASCII upper case.
inline bool is_canonical_model_or_region(std::string_view s) {
    if (s.empty() || s.size() > kMaxIdentifierBytes || trimmed(s).size() != s.size()) return false;
    for (unsigned char c : s) {
        if (is_control(c) || (c >= 'A' && c <= 'Z')) return false;
    }
    return true;
}

// The error contract of every bridge call: an input error status (never
// EG_INTERNAL, which means a bug), a non-empty NUL-terminated message that
// was not cut off at the buffer size (messages quote at most a short excerpt
// of the input), that starts by naming a position or the input, and that is
// valid UTF-8 whenever the input was (clients decode messages as UTF-8).
inline void check_error(const char* target, eg_status status, const eg_error& error,
                        std::initializer_list<const char*> allowed_prefixes, bool input_is_utf8) {
    if (status != EG_INVALID_PARAMETER && status != EG_PROGRAM_LIMIT && status != EG_OUT_OF_MEMORY) {
        violated(target, "status " + std::to_string(static_cast<int>(status)) + " is not an input error; message: " +
                             std::string(error.message, strnlen(error.message, EG_MESSAGE_SIZE)));
    }
    const std::size_t len = strnlen(error.message, EG_MESSAGE_SIZE);
    if (len == EG_MESSAGE_SIZE) violated(target, "error message is not NUL-terminated");
    if (len == 0) violated(target, "error message is empty");
    if (len >= EG_MESSAGE_SIZE - 1)
        violated(target, "error message filled the whole buffer (cut off): " + std::string(error.message));
    const std::string_view message(error.message, len);
    if (status != EG_OUT_OF_MEMORY) {
        bool named = false;
        for (const char* prefix : allowed_prefixes) {
            named = named || message.substr(0, std::strlen(prefix)) == prefix;
        }
        if (!named) violated(target, "error message names no position: " + std::string(message));
    }
    if (input_is_utf8 && !is_valid_utf8(message)) {
        violated(target, "error message is not valid UTF-8 although the input was: " + std::string(message));
    }
}

}  // namespace execguard::fuzz
