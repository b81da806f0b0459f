// test/fuzz/fuzz_canonical_key_part.cpp
//
// libFuzzer target for eg_canonical_key_part(), which claim_execution(),
// claim_next() filters, cancel_job() and retry_job() use to spell a key the
// way submit_job() stored it. First byte: which part; the rest: the raw text.
//
// The output buffer is exactly raw.len + 1 bytes, as the contract allows,
// so AddressSanitizer sees any overrun. On EG_OK the result is the
// reference spelling (trimmed; model ids and regions also ASCII
// lower-cased) and canonicalising it again changes nothing.
#include "fuzz_invariants.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace {

using execguard::fuzz::ascii_lower;
using execguard::fuzz::Call;
using execguard::fuzz::check_error;
using execguard::fuzz::is_control;
using execguard::fuzz::is_valid_utf8;
using execguard::fuzz::trimmed;

constexpr const char* kTarget = "fuzz_canonical_key_part";

void violated(const std::string& what) { execguard::fuzz::violated(kTarget, what); }

Call canonical(eg_key_part part, std::string_view raw) {
    Call call{};
    std::unique_ptr<char[]> buffer(new char[raw.size() + 1]);
    std::size_t len = static_cast<std::size_t>(-1);
    std::memset(call.error.message, 0x7f, sizeof(call.error.message));
    call.status = eg_canonical_key_part(part, {raw.data(), raw.size()}, buffer.get(), &len, &call.error);
    if (call.status == EG_OK) {
        if (len > raw.size()) violated("canonical form is longer than the input");
        if (buffer[len] != '\0') violated("canonical form is not NUL-terminated");
        call.out.assign(buffer.get(), len);
    }
    return call;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const eg_key_part part = static_cast<eg_key_part>(data[0] % 4);
    const std::string_view raw(reinterpret_cast<const char*>(data + 1), size - 1);
    const char* names[] = {"job_id", "model_id", "region", "question_id"};

    const Call call = canonical(part, raw);
    if (call.status != EG_OK) {
        check_error(kTarget, call.status, call.error, {names[part]}, is_valid_utf8(raw));
        if (call.status != EG_INVALID_PARAMETER) violated("a key part error that is not 22023");
        return 0;
    }

    const std::string_view t = trimmed(raw);
    const std::string expected = (part == EG_KEY_MODEL_ID || part == EG_KEY_REGION) ? ascii_lower(t) : std::string(t);
    if (call.out != expected)
        violated(std::string(names[part]) + ": got \"" + call.out + "\", expected \"" + expected + "\"");
    if (call.out.empty() && part != EG_KEY_QUESTION_ID) violated(std::string(names[part]) + " accepted empty");
    const std::size_t limit = part == EG_KEY_QUESTION_ID ? 1000 : 200;
    if (call.out.size() > limit)
        violated(std::string(names[part]) + " accepted over " + std::to_string(limit) + " bytes");
    for (unsigned char c : call.out) {
        const bool allowed_in_text = part == EG_KEY_QUESTION_ID && (c == '\t' || c == '\n' || c == '\r');
        if (is_control(c) && !allowed_in_text) violated(std::string(names[part]) + " accepted a control character");
    }

    const Call again = canonical(part, call.out);
    if (again.status != EG_OK || again.out != call.out) violated(std::string(names[part]) + " is not idempotent");
    return 0;
}
