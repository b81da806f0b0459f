// extension/core/bridge.cpp
//
// The noexcept C-style face of the core (see execguard/bridge.h). Each
// function runs its C++ body inside one try/catch that turns every
// exception into a status and a message; nothing else may throw out.
#include "execguard/bridge.h"

#include "execguard/core/canonical.hpp"
#include "execguard/core/job_spec.hpp"
#include "execguard/core/normalize.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace {

using execguard::core::ErrorKind;
using execguard::core::InputError;

void set_message(eg_error* error, const char* message) noexcept {
    std::strncpy(error->message, message, EG_MESSAGE_SIZE - 1);
    error->message[EG_MESSAGE_SIZE - 1] = '\0';
}

bool copy_out(const std::string& text, eg_text* out) noexcept {
    char* data = static_cast<char*>(std::malloc(text.size() + 1));
    if (data == nullptr) {
        return false;
    }
    std::memcpy(data, text.data(), text.size());
    data[text.size()] = '\0';
    out->data = data;
    out->len = text.size();
    return true;
}

// Runs `body`, mapping every exception to a status.
template <typename Body>
eg_status guarded(eg_error* error, Body&& body) noexcept {
    try {
        return body();
    } catch (const InputError& e) {
        set_message(error, e.what());
        return e.kind() == ErrorKind::program_limit ? EG_PROGRAM_LIMIT : EG_INVALID_PARAMETER;
    } catch (const std::bad_alloc&) {
        set_message(error, "out of memory in execguard core");
        return EG_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        set_message(error, e.what());
        return EG_INTERNAL;
    } catch (...) {
        set_message(error, "unknown exception in execguard core");
        return EG_INTERNAL;
    }
}

eg_status text_result(const std::string& text, eg_text* out, eg_error* error) noexcept {
    if (!copy_out(text, out)) {
        set_message(error, "out of memory in execguard core");
        return EG_OUT_OF_MEMORY;
    }
    return EG_OK;
}

}  // namespace

extern "C" eg_status eg_normalize_models(eg_slice models_json, const eg_slice* default_regions,
                                         size_t n_default_regions, eg_text* out, eg_error* error) noexcept {
    return guarded(error, [&] {
        std::vector<std::string> regions;
        regions.reserve(n_default_regions);
        for (size_t i = 0; i < n_default_regions; ++i) {
            regions.emplace_back(default_regions[i].data, default_regions[i].len);
        }
        return text_result(
            execguard::core::normalize_models_text(std::string_view(models_json.data, models_json.len), regions), out,
            error);
    });
}

extern "C" eg_status eg_plan_job(eg_slice spec_json, eg_text* out, eg_error* error) noexcept {
    return guarded(error, [&] {
        return text_result(execguard::core::plan_job_text(std::string_view(spec_json.data, spec_json.len)), out, error);
    });
}

extern "C" eg_status eg_canonical_key_part(eg_key_part part, eg_slice raw, char* out, size_t* out_len,
                                           eg_error* error) noexcept {
    return guarded(error, [&] {
        const std::string_view text(raw.data, raw.len);
        std::string canonical;
        switch (part) {
            case EG_KEY_JOB_ID:
                canonical = execguard::core::canonical_exact_id(text, "job_id");
                break;
            case EG_KEY_MODEL_ID:
                canonical = execguard::core::canonical_model_or_region(text, "model_id");
                break;
            case EG_KEY_REGION:
                canonical = execguard::core::canonical_model_or_region(text, "region");
                break;
            case EG_KEY_QUESTION_ID:
                canonical = execguard::core::canonical_question_id(text, "question_id");
                break;
        }
        std::memcpy(out, canonical.data(), canonical.size());
        out[canonical.size()] = '\0';
        *out_len = canonical.size();
        return EG_OK;
    });
}

extern "C" void eg_text_free(eg_text* text) noexcept {
    std::free(text->data);
    text->data = nullptr;
    text->len = 0;
}
