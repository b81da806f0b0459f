// extension/core/bridge.cpp
//
// The noexcept C-style face of the core (see execguard/bridge.h). Each
// function runs its C++ body inside one try/catch that turns every
// exception into a status and a message; nothing else may throw out.
#include "execguard/bridge.h"

#include "execguard/core/canonical.hpp"
#include "execguard/core/interrupt.hpp"
#include "execguard/core/job_spec.hpp"
#include "execguard/core/normalize.hpp"

#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <memory>
#include <new>
#include <stdexcept>
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
    } catch (const execguard::core::Interrupted&) {
        set_message(error, "interrupted");
        return EG_INTERRUPTED;
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

extern "C" eg_status eg_normalize_model_tree(const eg_json_node* nodes, size_t n_nodes, const eg_slice* default_regions,
                                             size_t n_default_regions, eg_models* out, eg_error* error) noexcept {
    out->models = nullptr;
    out->n_models = 0;
    out->regions = nullptr;
    out->arena = nullptr;
    return guarded(error, [&] {
        if (n_nodes == 0) {
            throw std::logic_error("eg_normalize_model_tree: empty document");
        }
        std::vector<std::string_view> defaults;
        defaults.reserve(n_default_regions);
        for (size_t i = 0; i < n_default_regions; ++i) {
            defaults.emplace_back(default_regions[i].data, default_regions[i].len);
        }
        const execguard::core::NormalizedModels normalized =
            execguard::core::normalize_model_tree(execguard::core::JsonNode(nodes, 0), defaults);

        // One allocation: the model array, the region slices, then the text.
        size_t n_regions = 0;
        size_t text_bytes = 0;
        for (const execguard::core::Model& model : normalized.models) {
            n_regions += model.regions.size();
            text_bytes += model.id.size() + model.name.size() + (model.provider ? model.provider->size() : 0);
            for (const std::string& region : model.regions) {
                text_bytes += region.size();
            }
        }
        const size_t models_bytes = sizeof(eg_model_out) * normalized.models.size();
        const size_t regions_bytes = sizeof(eg_slice) * n_regions;
        char* arena = static_cast<char*>(std::malloc(models_bytes + regions_bytes + text_bytes + 1));
        if (arena == nullptr) {
            throw std::bad_alloc();
        }
        auto* models = reinterpret_cast<eg_model_out*>(arena);
        auto* regions = reinterpret_cast<eg_slice*>(arena + models_bytes);
        char* text = arena + models_bytes + regions_bytes;
        auto copy = [&text](const std::string& value) {
            std::memcpy(text, value.data(), value.size());
            eg_slice slice{text, value.size()};
            text += value.size();
            return slice;
        };
        size_t region_index = 0;
        for (size_t i = 0; i < normalized.models.size(); ++i) {
            const execguard::core::Model& model = normalized.models[i];
            models[i].id = copy(model.id);
            models[i].name = copy(model.name);
            models[i].provider = model.provider ? copy(*model.provider) : eg_slice{nullptr, 0};
            models[i].first_region = region_index;
            models[i].n_regions = model.regions.size();
            for (const std::string& region : model.regions) {
                regions[region_index++] = copy(region);
            }
        }
        out->models = models;
        out->n_models = normalized.models.size();
        out->regions = regions;
        out->arena = arena;
        return EG_OK;
    });
}

extern "C" void eg_models_free(eg_models* models) noexcept {
    std::free(models->arena);
    models->arena = nullptr;
    models->models = nullptr;
    models->regions = nullptr;
    models->n_models = 0;
}

extern "C" eg_status eg_plan_job(eg_slice spec_json, eg_text* out, eg_error* error) noexcept {
    return guarded(error, [&] {
        return text_result(execguard::core::plan_job_text(std::string_view(spec_json.data, spec_json.len)), out, error);
    });
}

namespace {

// What an eg_job_plan borrows from. The vectors are filled once and never
// grow again, so the slices into them and into `plan` stay valid.
struct JobPlanImpl {
    execguard::core::JobPlan plan;
    std::string header;
    std::string params;
    std::vector<eg_model_out> models;
    std::vector<eg_slice> regions;
    std::vector<eg_question_out> questions;
};

eg_slice slice_of(const std::string& text) noexcept { return eg_slice{text.data(), text.size()}; }

}  // namespace

extern "C" eg_status eg_job_plan_open(eg_slice spec_json, eg_job_plan* out, eg_error* error) noexcept {
    *out = eg_job_plan{};
    return guarded(error, [&] {
        auto impl = std::make_unique<JobPlanImpl>();
        // The parsed document is as big as the spec several times over:
        // gone before the header and the C views are built.
        impl->plan =
            execguard::core::plan_job(execguard::core::parse_spec(std::string_view(spec_json.data, spec_json.len)));
        const execguard::core::JobPlan& plan = impl->plan;
        // Without the canonical spec: as JSON text it is as big as the
        // questions, and the adapter writes its Jsonb from the views below.
        impl->header = nlohmann::json{{"job_id", plan.job_id},
                                      {"max_attempts", plan.max_attempts},
                                      {"duplicates_removed", plan.duplicates_removed},
                                      {"regions", plan.regions()}}
                           .dump();
        impl->params = plan.params.dump();

        std::size_t n_regions = 0;
        for (const execguard::core::Model& model : plan.models) {
            n_regions += model.regions.size();
        }
        impl->models.reserve(plan.models.size());
        impl->regions.reserve(n_regions);
        for (const execguard::core::Model& model : plan.models) {
            eg_model_out entry{slice_of(model.id), slice_of(model.name),
                               model.provider ? slice_of(*model.provider) : eg_slice{nullptr, 0}, impl->regions.size(),
                               model.regions.size()};
            for (const std::string& region : model.regions) {
                impl->regions.push_back(slice_of(region));
            }
            impl->models.push_back(entry);
        }
        impl->questions.reserve(plan.questions.size());
        for (const execguard::core::Question& question : plan.questions) {
            execguard::core::poll_interrupt();
            impl->questions.push_back(eg_question_out{slice_of(question.id), slice_of(question.prompt)});
        }

        out->header = slice_of(impl->header);
        out->job_id = slice_of(plan.job_id);
        out->params = slice_of(impl->params);
        out->max_attempts = plan.max_attempts;
        out->duplicates_removed = plan.duplicates_removed;
        out->unit_count = plan.unit_count;
        out->models = impl->models.data();
        out->n_models = impl->models.size();
        out->regions = impl->regions.data();
        out->questions = impl->questions.data();
        out->n_questions = impl->questions.size();
        out->impl = impl.release();
#if defined(__GLIBC__)
        // The parsed document was freed in many small pieces that glibc
        // keeps; without this the backend's later large allocations (its
        // memory contexts' blocks are mmap'd) add to them instead of
        // reusing them, and the peak is the sum of both.
        malloc_trim(0);
#endif
        return EG_OK;
    });
}

extern "C" void eg_job_plan_free(eg_job_plan* plan) noexcept {
    delete static_cast<JobPlanImpl*>(plan->impl);
    *plan = eg_job_plan{};
}

extern "C" void eg_set_interrupt_check(eg_interrupt_check check) noexcept {
    execguard::core::set_interrupt_check(check);
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
