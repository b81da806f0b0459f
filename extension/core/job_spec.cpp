// extension/core/job_spec.cpp
//
// Job spec → units (see job_spec.hpp). Plain C++, no PostgreSQL headers.
#include "execguard/core/job_spec.hpp"

#include "execguard/core/canonical.hpp"
#include "execguard/core/interrupt.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace execguard::core {

namespace {

using nlohmann::json;

// Member `key` of `object` when it is present and not null.
const json* member(const json& object, const char* key) {
    if (!object.is_object()) {
        return nullptr;
    }
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return nullptr;
    }
    return &*it;
}

// The member at a dotted path; an intermediate member that is present but
// not an object is an error naming it ("metadata must be an object").
const json* path(const json& root, std::initializer_list<const char*> keys) {
    const json* node = &root;
    std::string where;
    for (const char* key : keys) {
        if (!node->is_object()) {
            fail(where + " must be an object");
        }
        node = member(*node, key);
        if (node == nullptr) {
            return nullptr;
        }
        where += where.empty() ? key : std::string(".") + key;
    }
    return node;
}

std::vector<std::string> region_list(const json& array, const std::string& where) {
    if (!array.is_array()) {
        fail(where + " must be an array of strings");
    }
    std::vector<std::string_view> raw;
    std::size_t index = 0;
    for (const json& region : array) {
        poll_interrupt();
        if (!region.is_string()) {
            fail(where + "[" + std::to_string(index) + "] must be a string");
        }
        raw.push_back(region.get_ref<const std::string&>());
        ++index;
    }
    return canonical_regions(raw, where);
}

}  // namespace

// Both lists are canonical (no repeats), so sorted copies are equal exactly
// when the sets are: O(n log n), where comparing each with each was O(n²).
bool same_set(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    if (a.size() != b.size()) {
        return false;
    }
    std::vector<std::string_view> sorted_a(a.begin(), a.end());
    std::vector<std::string_view> sorted_b(b.begin(), b.end());
    std::sort(sorted_a.begin(), sorted_a.end());
    std::sort(sorted_b.begin(), sorted_b.end());
    return sorted_a == sorted_b;
}

namespace {

std::vector<Question> parse_questions(const json& questions, std::size_t& duplicates_removed) {
    if (!questions.is_array()) {
        fail("questions must be an array");
    }
    if (questions.size() > kMaxQuestions) {
        fail_limit("too many questions: " + std::to_string(questions.size()) + " (at most " +
                   std::to_string(kMaxQuestions) + ")");
    }
    struct FirstSeen {
        std::size_t kept;      // index in `out`
        std::size_t position;  // index in `questions`, for messages
    };
    std::vector<Question> out;
    std::unordered_map<std::string, FirstSeen> first_seen;
    // Sized once: growing them by doubling, rehashing every node, was most
    // of the planning time of a job of 1,000,000 questions.
    out.reserve(questions.size());
    first_seen.reserve(questions.size());
    const Where questions_where("questions");
    std::size_t position = 0;
    for (const json& element : questions) {
        poll_interrupt();
        const Where where = questions_where.element(position);
        Question question;
        if (element.is_string()) {
            // A plain string is the prompt, and its trimmed text is its id.
            question.prompt = prompt_text(element.get_ref<const std::string&>(), where, kMaxQuestionTextBytes);
            question.id = question.prompt;
        } else if (element.is_object()) {
            for (auto it = element.begin(); it != element.end(); ++it) {
                if (it.key() != "id" && it.key() != "prompt") {
                    fail(where.str() + " has unknown key \"" + excerpt(it.key()) + "\" (expected id, prompt)");
                }
            }
            const json* id = member(element, "id");
            if (id == nullptr) {
                fail(where.str() + ".id is required");
            }
            if (!id->is_string()) {
                fail(where.str() + ".id must be a string");
            }
            question.id = canonical_exact_id(id->get_ref<const std::string&>(), where.member("id"));
            const json* prompt = member(element, "prompt");
            if (prompt == nullptr) {
                fail(where.str() + ".prompt is required");
            }
            if (!prompt->is_string()) {
                fail(where.str() + ".prompt must be a string");
            }
            question.prompt =
                prompt_text(prompt->get_ref<const std::string&>(), where.member("prompt"), kMaxPromptBytes);
        } else {
            fail(where.str() + " must be a string or an object");
        }

        auto [it, inserted] = first_seen.emplace(question.id, FirstSeen{out.size(), position});
        if (inserted) {
            out.push_back(std::move(question));
        } else {
            // Same id: a duplicate only if it asks the same thing.
            if (out[it->second.kept].prompt != question.prompt) {
                fail(where.str() + " has the id of questions[" + std::to_string(it->second.position) +
                     "] but a different prompt");
            }
            ++duplicates_removed;
        }
        ++position;
    }
    return out;
}

}  // namespace

json JobPlan::canonical_spec() const {
    json questions_json = json::array();
    for (const Question& question : questions) {
        poll_interrupt();
        questions_json.push_back({{"id", question.id}, {"prompt", question.prompt}});
    }
    return {{"models", models_to_json(models)},
            {"questions", std::move(questions_json)},
            {"params", params},
            {"max_attempts", max_attempts}};
}

std::vector<std::string> JobPlan::regions() const {
    std::vector<std::string> out;
    std::unordered_set<std::string_view> seen;  // views of the models' strings
    for (const Model& model : models) {
        for (const std::string& region : model.regions) {
            poll_interrupt();
            if (seen.insert(region).second) {
                out.push_back(region);
            }
        }
    }
    return out;
}

json JobPlan::payload(const Model& model, const std::string& region, const Question& question) const {
    return {{"job_id", job_id},          {"model_id", model.id},
            {"model_name", model.name},  {"provider", model.provider ? json(*model.provider) : json(nullptr)},
            {"region", region},          {"question_id", question.id},
            {"prompt", question.prompt}, {"params", params}};
}

JobPlan plan_job(const json& spec) {
    if (!spec.is_object()) {
        fail("spec must be a JSON object");
    }
    JobPlan plan;

    const json* id = member(spec, "id");
    if (id == nullptr) {
        fail("id is required");
    }
    if (!id->is_string()) {
        fail("id must be a string");
    }
    plan.job_id = canonical_exact_id(id->get_ref<const std::string&>(), "id");

    // Default regions: top-level "regions" and "constraints.regions".
    std::vector<std::string> default_regions;
    const json* top_regions = member(spec, "regions");
    const json* constraint_regions = path(spec, {"constraints", "regions"});
    if (top_regions != nullptr) {
        default_regions = region_list(*top_regions, "regions");
    }
    if (constraint_regions != nullptr) {
        std::vector<std::string> from_constraints = region_list(*constraint_regions, "constraints.regions");
        if (top_regions != nullptr && !same_set(default_regions, from_constraints)) {
            fail("regions and constraints.regions name different regions; give one of them");
        }
        default_regions = std::move(from_constraints);
    }

    // Models: both places, merged (the field ignored one or the other).
    std::vector<ModelSource> sources;
    std::vector<eg_json_node> top_models;
    std::vector<eg_json_node> metadata_models;
    if (const json* models = member(spec, "models")) {
        top_models = flatten(*models);
        sources.push_back({"models", JsonNode(top_models.data(), 0)});
    }
    if (const json* models = path(spec, {"metadata", "models"})) {
        metadata_models = flatten(*models);
        sources.push_back({"metadata.models", JsonNode(metadata_models.data(), 0)});
    }
    NormalizedModels normalized = normalize_models(sources, default_regions);
    plan.models = std::move(normalized.models);
    plan.duplicates_removed = normalized.duplicates_removed;
    if (plan.models.empty()) {
        fail("job has no models (give models or metadata.models)");
    }
    for (const Model& model : plan.models) {
        if (model.regions.empty()) {
            fail("model \"" + model.id +
                 "\" has no regions (give constraints.regions, regions, or the model's own regions)");
        }
    }

    const json* questions = member(spec, "questions");
    if (questions != nullptr) {
        plan.questions = parse_questions(*questions, plan.duplicates_removed);
    }
    if (plan.questions.empty()) {
        const json* prompt = path(spec, {"benchmark", "input", "data", "prompt"});
        if (prompt == nullptr) {
            fail("job has no questions and no benchmark.input.data.prompt");
        }
        if (!prompt->is_string()) {
            fail("benchmark.input.data.prompt must be a string");
        }
        plan.questions.push_back(
            {"", prompt_text(prompt->get_ref<const std::string&>(), "benchmark.input.data.prompt", kMaxPromptBytes)});
    }

    if (const json* params = member(spec, "params")) {
        if (!params->is_object()) {
            fail("params must be an object");
        }
        plan.params = *params;
    }
    if (const json* attempts = member(spec, "max_attempts")) {
        if (!attempts->is_number_integer() || attempts->get<long long>() < 1 ||
            attempts->get<long long>() > kMaxMaxAttempts) {
            fail("max_attempts must be an integer from 1 to " + std::to_string(kMaxMaxAttempts));
        }
        plan.max_attempts = attempts->get<int>();
    }

    std::size_t units = 0;
    for (const Model& model : plan.models) {
        units += model.regions.size() * plan.questions.size();
    }
    if (units > kMaxUnitsPerJob) {
        fail_limit("job has " + std::to_string(units) + " units (at most " + std::to_string(kMaxUnitsPerJob) + ")");
    }
    plan.unit_count = units;
    return plan;
}

namespace {

// U+10FFFF, a noncharacter: what stands for each byte that is not UTF-8
// while looking for where it was.
constexpr std::string_view kBadByte = "\xF4\x8F\xBF\xBF";

bool is_spec_member(const std::string& name) {
    static const char* const known[] = {"id",        "models",    "metadata", "regions",     "constraints",
                                        "questions", "benchmark", "params",   "max_attempts"};
    return std::any_of(std::begin(known), std::end(known), [&](const char* k) { return name == k; });
}

// The error for the first string or member name in `node` (at `where`, ""
// for the root) that holds kBadByte, or "" when none does. Messages start
// with the position, as every message of the core does.
std::string bad_byte_error(const json& node, const std::string& where) {
    poll_interrupt();
    const std::string here = where.empty() ? std::string("spec") : where;
    if (node.is_string()) {
        if (node.get_ref<const std::string&>().find(kBadByte) == std::string::npos) return {};
        return here + " is not valid UTF-8";
    }
    if (node.is_array()) {
        std::size_t index = 0;
        for (const json& element : node) {
            std::string found = bad_byte_error(element, here + "[" + std::to_string(index++) + "]");
            if (!found.empty()) return found;
        }
    } else if (node.is_object()) {
        for (auto it = node.begin(); it != node.end(); ++it) {
            if (it.key().find(kBadByte) != std::string::npos) {
                return here + " has a member name that is not valid UTF-8";
            }
            // A member the spec does not read is not named: its name is the
            // client's, of any length.
            if (where.empty() && !is_spec_member(it.key())) {
                if (bad_byte_error(it.value(), "spec").empty()) continue;
                return "spec is not valid UTF-8 (in a member execguard does not read)";
            }
            std::string found =
                bad_byte_error(it.value(), where.empty() ? it.key() : where + "." + excerpt(it.key(), 64));
            if (!found.empty()) return found;
        }
    }
    return {};
}

// Text that did not parse: if it is JSON but for bytes that are not UTF-8
// (a SQL_ASCII database passes any byte), the error naming where the first
// of them is; else "".
std::string invalid_utf8_error(std::string_view text) {
    if (is_valid_utf8(text)) {
        return {};
    }
    std::string repaired;
    repaired.reserve(text.size() + 16);
    for (std::size_t i = 0; i < text.size();) {
        poll_interrupt();
        const std::size_t length = utf8_sequence_length(text, i);
        if (length == 0) {
            repaired += kBadByte;
            ++i;
        } else {
            repaired.append(text.substr(i, length));
            i += length;
        }
    }
    const json tree = json::parse(repaired, nullptr, /*allow_exceptions=*/false);
    if (tree.is_discarded()) {
        return {};
    }
    return bad_byte_error(tree, "");
}

}  // namespace

json parse_spec(std::string_view spec_json) {
    // The callback is the parser's only loop we can reach: it polls for
    // query cancel once per value (its exception leaves parse() normally).
    json spec = json::parse(
        spec_json.begin(), spec_json.end(),
        [](int, json::parse_event_t, json&) {
            poll_interrupt();
            return true;
        },
        /*allow_exceptions=*/false);
    if (spec.is_discarded()) {
        const std::string error = invalid_utf8_error(spec_json);
        if (!error.empty()) {
            fail(error);
        }
        fail("spec is not valid JSON");
    }
    return spec;
}

json JobPlan::header() const {
    return {{"job_id", job_id},
            {"spec", canonical_spec()},
            {"max_attempts", max_attempts},
            {"duplicates_removed", duplicates_removed},
            {"regions", regions()}};
}

std::string plan_job_text(std::string_view spec_json) {
    JobPlan plan = plan_job(parse_spec(spec_json));

    json units = json::array();
    units.get_ref<json::array_t&>().reserve(plan.unit_count);
    for (const Model& model : plan.models) {
        for (const std::string& region : model.regions) {
            for (const Question& question : plan.questions) {
                poll_interrupt();
                units.push_back(json::array({model.id, region, question.id, plan.payload(model, region, question)}));
            }
        }
    }
    json out = plan.header();
    out["units"] = std::move(units);
    return out.dump();
}

}  // namespace execguard::core
