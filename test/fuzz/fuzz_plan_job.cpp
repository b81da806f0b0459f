// test/fuzz/fuzz_plan_job.cpp
//
// libFuzzer target for eg_plan_job() and eg_job_plan_open(), the core
// behind execguard.submit_job().
// Input: the job spec as JSON text.
//
// On EG_OK the plan must be internally consistent (units are exactly
// models x their regions x questions, keys unique and canonical, payloads
// agree with their keys), every key part must already be in the form
// eg_canonical_key_part() gives it (so claim_execution() with the stored key
// finds the stored row), planning is deterministic, and a spec rebuilt from
// the plan's canonical spec plans to the same canonical spec (fixed point).
// eg_job_plan_open, which submit_job uses, must give the same status and
// message, and views that expand, in order, to exactly the same units.
#include "fuzz_invariants.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

using execguard::fuzz::Call;
using execguard::fuzz::check_error;
using execguard::fuzz::is_canonical_model_or_region;
using execguard::fuzz::is_valid_utf8;
using nlohmann::json;

constexpr const char* kTarget = "fuzz_plan_job";

void violated(const std::string& what) { execguard::fuzz::violated(kTarget, what); }

Call plan(std::string_view spec) {
    Call call{};
    eg_text out{nullptr, 0};
    std::memset(call.error.message, 0x7f, sizeof(call.error.message));
    call.status = eg_plan_job({spec.data(), spec.size()}, &out, &call.error);
    if (call.status == EG_OK) {
        if (out.data == nullptr || out.data[out.len] != '\0') violated("EG_OK without a NUL-terminated result");
        call.out.assign(out.data, out.len);
        eg_text_free(&out);
    } else if (out.data != nullptr) {
        violated("an error left a result behind (partial result)");
    }
    return call;
}

// The key part as claim_execution() canonicalises it must equal `stored`.
void check_key_part(eg_key_part part, const std::string& stored, const char* name) {
    std::vector<char> buffer(stored.size() + 1);
    std::size_t len = 0;
    eg_error error{};
    const eg_status status = eg_canonical_key_part(part, {stored.data(), stored.size()}, buffer.data(), &len, &error);
    if (status != EG_OK) {
        violated(std::string("stored ") + name + " is refused by eg_canonical_key_part: " + error.message + " (value " +
                 json(stored).dump() + ")");
    }
    if (std::string(buffer.data(), len) != stored) {
        violated(std::string("stored ") + name + " is not canonical: " + json(stored).dump());
    }
}

// A spec that says exactly what the plan's canonical spec says.
json respec(const json& planned) {
    const json& spec = planned["spec"];
    json out = {{"id", planned["job_id"]}, {"models", spec["models"]}, {"max_attempts", spec["max_attempts"]}};
    if (!spec["params"].is_null()) out["params"] = spec["params"];
    json questions = json::array();
    for (const json& q : spec["questions"]) {
        if (q["id"] == "") {
            out["benchmark"] = {{"input", {{"data", {{"prompt", q["prompt"]}}}}}};
        } else if (q["id"] == q["prompt"]) {
            questions.push_back(q["prompt"]);  // a plain-string question: its text is its id
        } else {
            questions.push_back(q);
        }
    }
    if (!questions.empty()) out["questions"] = questions;
    return out;
}

void check_plan(const json& p) {
    for (const char* key : {"job_id", "spec", "max_attempts", "duplicates_removed", "regions", "units"}) {
        if (!p.contains(key)) violated(std::string("plan has no ") + key);
    }
    if (!p["job_id"].is_string()) violated("job_id is not a string");
    const std::string job_id = p["job_id"];
    check_key_part(EG_KEY_JOB_ID, job_id, "job_id");
    if (!p["max_attempts"].is_number_integer() || p["max_attempts"] < 1 || p["max_attempts"] > 100) {
        violated("max_attempts out of 1..100: " + p["max_attempts"].dump());
    }
    const json& spec = p["spec"];
    if (!spec["models"].is_array() || spec["models"].empty()) violated("plan without models");
    if (!spec["questions"].is_array() || spec["questions"].empty()) violated("plan without questions");
    if (!spec["params"].is_null() && !spec["params"].is_object()) violated("params neither null nor object");

    std::set<std::string> question_ids;
    for (const json& q : spec["questions"]) {
        if (!question_ids.insert(q["id"].get<std::string>()).second) violated("question id twice: " + q["id"].dump());
        if (q["prompt"].get_ref<const std::string&>().empty()) violated("empty prompt");
    }
    if (question_ids.count("") && spec["questions"].size() != 1) violated("the '' question is not alone");

    std::set<std::tuple<std::string, std::string, std::string>> expected_keys;
    std::vector<std::string> expected_regions;
    for (const json& m : spec["models"]) {
        if (!is_canonical_model_or_region(m["id"].get_ref<const std::string&>())) violated("model id not canonical");
        if (m["regions"].empty()) violated("model without regions in a plan: " + m.dump());
        for (const json& r : m["regions"]) {
            const std::string region = r;
            if (!is_canonical_model_or_region(region)) violated("region not canonical: " + r.dump());
            bool seen = false;
            for (const std::string& e : expected_regions) seen = seen || e == region;
            if (!seen) expected_regions.push_back(region);
            for (const json& q : spec["questions"]) {
                if (!expected_keys.insert({m["id"], region, q["id"]}).second) violated("a key twice in the spec");
            }
        }
    }
    if (p["regions"] != json(expected_regions)) violated("regions list differs from the models' regions");

    const json& units = p["units"];
    if (!units.is_array() || units.size() != expected_keys.size()) {
        violated("unit count " + std::to_string(units.size()) +
                 " is not models x regions x questions = " + std::to_string(expected_keys.size()));
    }
    std::set<std::tuple<std::string, std::string, std::string>> keys;
    for (const json& u : units) {
        if (!u.is_array() || u.size() != 4 || !u[0].is_string() || !u[1].is_string() || !u[2].is_string()) {
            violated("unit is not [model_id, region, question_id, payload]: " + u.dump());
        }
        const std::string model = u[0], region = u[1], question = u[2];
        if (!keys.insert({model, region, question}).second) violated("duplicate unit key: " + u.dump());
        if (!expected_keys.count({model, region, question})) violated("unit not in the spec: " + u.dump());
        check_key_part(EG_KEY_MODEL_ID, model, "model_id");
        check_key_part(EG_KEY_REGION, region, "region");
        check_key_part(EG_KEY_QUESTION_ID, question, "question_id");
        const json& payload = u[3];
        if (payload["job_id"] != job_id || payload["model_id"] != model || payload["region"] != region ||
            payload["question_id"] != question || !payload["prompt"].is_string() ||
            payload["params"] != spec["params"]) {
            violated("payload disagrees with its key: " + u.dump());
        }
    }
}

// eg_job_plan_open (what submit_job reads) must agree with eg_plan_job:
// the same status and message, and views that expand, in order, to exactly
// the plan's units, with its spec's models, questions, params.
void check_views(std::string_view input, const Call& call, const json* p) {
    eg_job_plan view{};
    eg_error error{};
    const eg_status status = eg_job_plan_open({input.data(), input.size()}, &view, &error);
    if (status != call.status) violated("eg_job_plan_open and eg_plan_job disagree on the status");
    if (status != EG_OK) {
        if (view.impl != nullptr) violated("a refused plan left views behind");
        if (std::string(error.message) != call.error.message) violated("the two entry points give other messages");
        return;
    }
    const json& units = (*p)["units"];
    const json& spec = (*p)["spec"];
    json header = json::parse(std::string(view.header.data, view.header.len), nullptr, false);
    if (header.is_discarded() || header["job_id"] != (*p)["job_id"] || header["regions"] != (*p)["regions"] ||
        header["max_attempts"] != (*p)["max_attempts"] || header["duplicates_removed"] != (*p)["duplicates_removed"]) {
        violated("the views' header differs from the plan");
    }
    if (json::parse(std::string(view.params.data, view.params.len), nullptr, false) != spec["params"]) {
        violated("the views' params differ from the plan's");
    }
    if (view.unit_count != units.size() || view.n_models != spec["models"].size() ||
        view.n_questions != spec["questions"].size() || view.max_attempts != (*p)["max_attempts"]) {
        violated("the views' counts differ from the plan");
    }
    auto text = [](eg_slice slice) { return std::string(slice.data, slice.len); };
    std::size_t index = 0;
    for (std::size_t m = 0; m < view.n_models && index <= units.size(); ++m) {
        const eg_model_out& model = view.models[m];
        const json& spec_model = spec["models"][m];
        if (spec_model["id"] != text(model.id) || spec_model["name"] != text(model.name) ||
            spec_model["provider"] != (model.provider.data ? json(text(model.provider)) : json(nullptr)) ||
            spec_model["regions"].size() != model.n_regions) {
            violated("model " + std::to_string(m) + " of the views differs from the spec");
        }
        for (std::size_t r = 0; r < model.n_regions; ++r) {
            for (std::size_t q = 0; q < view.n_questions; ++q, ++index) {
                if (index >= units.size()) violated("the views expand to more units than the plan");
                const json& unit = units[index];
                const eg_question_out& question = view.questions[q];
                if (unit[0] != text(model.id) || unit[1] != text(view.regions[model.first_region + r]) ||
                    unit[2] != text(question.id) || unit[3]["prompt"] != text(question.prompt) ||
                    unit[3]["model_name"] != text(model.name)) {
                    violated("unit " + std::to_string(index) + " of the views differs from the plan's");
                }
            }
        }
    }
    if (index != units.size()) violated("the views expand to fewer units than the plan");
    eg_job_plan_free(&view);
    if (view.impl != nullptr) violated("eg_job_plan_free left impl set");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const Call call = plan(input);
    if (call.status != EG_OK) {
        check_error(kTarget, call.status, call.error,
                    {"spec", "id ", "regions", "constraints", "models", "metadata", "questions", "benchmark", "params",
                     "max_attempts", "job has", "model \"", "too many"},
                    is_valid_utf8(input));
        check_views(input, call, nullptr);
        return 0;
    }
    const json p = json::parse(call.out, nullptr, false);
    if (p.is_discarded() || !p.is_object()) violated("plan is not a JSON object: " + call.out);
    check_plan(p);
    check_views(input, call, &p);

    const Call same = plan(input);
    if (same.status != EG_OK || same.out != call.out) violated("planning the same spec twice gave different plans");

    const std::string rebuilt = respec(p).dump();
    const Call again = plan(rebuilt);
    if (again.status != EG_OK)
        violated("the plan's own canonical spec is refused: " + std::string(again.error.message) +
                 "\n  spec: " + rebuilt);
    const json p2 = json::parse(again.out);
    if (p2["spec"] != p["spec"] || p2["units"] != p["units"] || p2["duplicates_removed"] != 0) {
        violated("not a fixed point:\n  first:  " + p["spec"].dump() + "\n  second: " + p2["spec"].dump());
    }
    return 0;
}
