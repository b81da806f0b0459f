// extension/include/execguard/core/job_spec.hpp
//
// submit_job()'s PostgreSQL-free half: turns a job spec, in the shape
// already used in the field, into the exact list of units to create.
//
// Spec members read (everything else is ignored):
//   id                             required string
//   models, metadata.models        merged, then normalised together
//   regions, constraints.regions   default regions (must agree if both given)
//   questions                      strings (prompt text, which is also the
//                                  question id) or {"id", "prompt"} objects
//   benchmark.input.data.prompt    the single prompt when there are no
//                                  questions (question id '')
//   params                         object copied into every payload
//   max_attempts                   1..100, default 3
#pragma once

#include "execguard/core/guard.hpp"
#include "execguard/core/normalize.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace execguard::core {

inline constexpr std::size_t kMaxPromptBytes = 1 << 20;
inline constexpr int kDefaultMaxAttempts = 3;
inline constexpr int kMaxMaxAttempts = 100;

struct Question {
    std::string id;
    std::string prompt;
};

struct JobPlan {
    std::string job_id;
    std::vector<Model> models;
    std::vector<Question> questions;
    nlohmann::json params;  // object or null
    int max_attempts = kDefaultMaxAttempts;
    std::size_t duplicates_removed = 0;  // model and question entries dropped
    std::size_t unit_count = 0;

    // What identifies the job: a resubmission must normalise to exactly this.
    nlohmann::json canonical_spec() const;
    // Every region any unit uses, first-seen order.
    std::vector<std::string> regions() const;
    // {"job_id", "spec", "max_attempts", "duplicates_removed", "regions"}:
    // what submit_job needs before it writes the units.
    nlohmann::json header() const;
    // The payload stored with one unit: everything a runner needs.
    nlohmann::json payload(const Model& model, const std::string& region, const Question& question) const;
};

JobPlan plan_job(const nlohmann::json& spec);

// The spec text parsed, polling for query cancel ("spec is not valid JSON"
// when it is not).
nlohmann::json parse_spec(std::string_view spec_json);

// Whether two canonical region lists (no repeats) name the same regions.
bool same_set(const std::vector<std::string>& a, const std::vector<std::string>& b);

// The whole plan as JSON text, every unit spelled out (for the unit tests
// and the fuzzer; submit_job reads the plan through eg_job_plan_open and
// expands the units itself, a chunk at a time):
//   {"job_id", "spec", "max_attempts", "duplicates_removed", "regions",
//    "units": [[model_id, region, question_id, payload], ...]}
std::string plan_job_text(std::string_view spec_json);

}  // namespace execguard::core
