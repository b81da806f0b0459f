// test/unit/core/job_spec_test.cpp: job spec → units, without PostgreSQL.
#include "execguard/core/job_spec.hpp"
#include "execguard/bridge.h"
#include "execguard/core/canonical.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

using execguard::core::InputError;
using execguard::core::plan_job_text;
using nlohmann::json;

json plan(const std::string& spec) { return json::parse(plan_job_text(spec)); }

std::string error_of(const std::string& spec) {
    try {
        plan_job_text(spec);
    } catch (const InputError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no error for " << spec;
    return {};
}

TEST(PlanJob, SeedStyleSpecGivesOneUnitPerUniqueModel) {
    json out = plan(R"({"id":"dedup-test","benchmark":{"input":{"type":"prompt","data":{"prompt":"What is 2+2?"}}},
        "constraints":{"regions":["us-east"]},
        "metadata":{"models":["llama3.2-1b","qwen2.5-1.5b","llama3.2-1b","qwen2.5-1.5b"]}})");
    ASSERT_EQ(out["units"].size(), 2u);
    EXPECT_EQ(out["duplicates_removed"], 2);
    EXPECT_EQ(out["units"][0][0], "llama3.2-1b");
    EXPECT_EQ(out["units"][0][1], "us-east");
    EXPECT_EQ(out["units"][0][2], "") << "the single prompt's question id";
    EXPECT_EQ(out["units"][0][3]["prompt"], "What is 2+2?");
}

TEST(PlanJob, TopLevelAndMetadataModelsAreMerged) {
    json out = plan(R"({"id":"j","models":["A"],"metadata":{"models":["a","b"]},"regions":["r"],
        "benchmark":{"input":{"data":{"prompt":"p"}}}})");
    EXPECT_EQ(out["units"].size(), 2u);
    EXPECT_EQ(out["duplicates_removed"], 1);
}

TEST(PlanJob, FanOutIsModelsTimesTheirRegionsTimesQuestions) {
    json out = plan(R"({"id":"j","models":["m1","m2"],"constraints":{"regions":["a","b","c"]},
        "questions":["q one", {"id":"q2","prompt":"two"}, " q one "]})");
    EXPECT_EQ(out["units"].size(), 12u);
    EXPECT_EQ(out["duplicates_removed"], 1) << "plain strings dedup by trimmed text";
    std::set<std::tuple<std::string, std::string, std::string>> keys;
    for (const json& unit : out["units"]) {
        keys.emplace(unit[0], unit[1], unit[2]);
    }
    EXPECT_EQ(keys.size(), 12u) << "every unit key is distinct";
}

TEST(PlanJob, ParamsAndMaxAttemptsReachThePlan) {
    json out = plan(R"({"id":"j","models":["m"],"regions":["r"],"questions":["q"],
        "params":{"temperature":0,"max_tokens":16},"max_attempts":5})");
    EXPECT_EQ(out["max_attempts"], 5);
    EXPECT_EQ(out["units"][0][3]["params"]["max_tokens"], 16);
    EXPECT_EQ(out["spec"]["max_attempts"], 5);
}

TEST(PlanJob, CanonicalSpecIgnoresWhereModelsAndRegionsWereGivenAndUnknownMembers) {
    json a = plan(R"({"id":"j","models":["M"],"regions":["R"],"questions":["q"],"owner":"x"})");
    json b = plan(R"({"id":"j","metadata":{"models":[" M "]},"constraints":{"regions":["r"]},"questions":["q"]})");
    EXPECT_EQ(a["spec"], b["spec"]);
}

TEST(PlanJob, ErrorsSayWhatIsMissingOrWrong) {
    EXPECT_EQ(error_of(R"([1])"), "spec must be a JSON object");
    EXPECT_EQ(error_of(R"({"models":["m"]})"), "id is required");
    EXPECT_EQ(error_of(R"({"id":"j","regions":["r"],"questions":["q"]})"),
              "job has no models (give models or metadata.models)");
    EXPECT_EQ(error_of(R"({"id":"j","models":["m"],"questions":["q"]})"),
              "model \"m\" has no regions (give constraints.regions, regions, or the model's own regions)");
    EXPECT_EQ(error_of(R"({"id":"j","models":["m"],"regions":["r"]})"),
              "job has no questions and no benchmark.input.data.prompt");
    EXPECT_EQ(
        error_of(
            R"({"id":"j","models":["m"],"regions":["r"],"questions":[{"id":"q","prompt":"a"},{"id":"q","prompt":"b"}]})"),
        "questions[1] has the id of questions[0] but a different prompt");
    EXPECT_EQ(
        error_of(R"({"id":"j","models":["m"],"regions":["a"],"constraints":{"regions":["b"]},"questions":["q"]})"),
        "regions and constraints.regions name different regions; give one of them");
    EXPECT_EQ(
        error_of(
            R"({"id":"j","metadata":{"models":["m",{"id":"x","regions":[1]}]},"regions":["r"],"questions":["q"]})"),
        "metadata.models[1].regions[0] must be a string");
    EXPECT_EQ(error_of(R"({"id":"j","models":["m"],"regions":["r"],"questions":["q"],"max_attempts":0})"),
              "max_attempts must be an integer from 1 to 100");
    EXPECT_EQ(error_of(R"({"id":"j","metadata":"x","models":["m"],"regions":["r"],"questions":["q"]})"),
              "metadata must be an object");
}

TEST(PlanJob, SameSetIgnoresOrderAndIsNotQuadratic) {
    using execguard::core::same_set;
    EXPECT_TRUE(same_set({"a", "b", "c"}, {"c", "a", "b"}));
    EXPECT_FALSE(same_set({"a", "b"}, {"a", "c"}));
    EXPECT_FALSE(same_set({"a", "b"}, {"a"}));
    std::vector<std::string> forward;
    std::vector<std::string> backward;
    for (int i = 0; i < 120000; ++i) {
        forward.push_back("r" + std::to_string(i));
        backward.push_back("r" + std::to_string(119999 - i));
    }
    EXPECT_TRUE(same_set(forward, backward));
    backward.back() = "other";
    EXPECT_FALSE(same_set(forward, backward));
}

// What submit_job reads: the views must describe exactly the units that
// plan_job_text spells out, in the same order.
TEST(PlanJob, JobPlanViewsExpandToTheSameUnits) {
    const std::string spec = R"({"id":"j","models":["m1",{"id":"m2","provider":"p","regions":["x"]}],
        "regions":["a","b"],"questions":["q1",{"id":"q2","prompt":"two"}],"params":{"k":1}})";
    const json expected = plan(spec);
    eg_job_plan view{};
    eg_error error{};
    ASSERT_EQ(eg_job_plan_open({spec.data(), spec.size()}, &view, &error), EG_OK) << error.message;
    EXPECT_EQ(json::parse(std::string(view.header.data, view.header.len)), [&] {
        json header = expected;
        header.erase("units");
        header.erase("spec");
        return header;
    }());
    EXPECT_EQ(std::string(view.params.data, view.params.len), R"({"k":1})");
    EXPECT_EQ(view.unit_count, expected["units"].size());
    std::size_t index = 0;
    for (std::size_t m = 0; m < view.n_models; ++m) {
        const eg_model_out& model = view.models[m];
        for (std::size_t r = 0; r < model.n_regions; ++r) {
            const eg_slice& region = view.regions[model.first_region + r];
            for (std::size_t q = 0; q < view.n_questions; ++q) {
                const json& unit = expected["units"].at(index++);
                EXPECT_EQ(unit[0], std::string(model.id.data, model.id.len));
                EXPECT_EQ(unit[1], std::string(region.data, region.len));
                EXPECT_EQ(unit[2], std::string(view.questions[q].id.data, view.questions[q].id.len));
                EXPECT_EQ(unit[3]["prompt"], std::string(view.questions[q].prompt.data, view.questions[q].prompt.len));
                EXPECT_EQ(unit[3]["model_name"], std::string(model.name.data, model.name.len));
                EXPECT_EQ(unit[3]["provider"].is_null(), model.provider.data == nullptr);
            }
        }
    }
    EXPECT_EQ(index, expected["units"].size());
    // The canonical spec is written from the same views.
    const json& spec_models = expected["spec"]["models"];
    ASSERT_EQ(spec_models.size(), view.n_models);
    for (std::size_t m = 0; m < view.n_models; ++m) {
        const eg_model_out& model = view.models[m];
        EXPECT_EQ(spec_models[m]["id"], std::string(model.id.data, model.id.len));
        EXPECT_EQ(spec_models[m]["name"], std::string(model.name.data, model.name.len));
        EXPECT_EQ(spec_models[m]["provider"].is_null(), model.provider.data == nullptr);
        ASSERT_EQ(spec_models[m]["regions"].size(), model.n_regions);
    }
    const json& spec_questions = expected["spec"]["questions"];
    ASSERT_EQ(spec_questions.size(), view.n_questions);
    for (std::size_t q = 0; q < view.n_questions; ++q) {
        EXPECT_EQ(spec_questions[q]["id"], std::string(view.questions[q].id.data, view.questions[q].id.len));
    }
    EXPECT_EQ(expected["spec"]["max_attempts"], view.max_attempts);
    eg_job_plan_free(&view);
    EXPECT_EQ(view.impl, nullptr);
    // A refused spec leaves nothing to free.
    const std::string bad = R"({"id":"j"})";
    EXPECT_EQ(eg_job_plan_open({bad.data(), bad.size()}, &view, &error), EG_INVALID_PARAMETER);
    EXPECT_EQ(view.impl, nullptr);
}

TEST(PlanJob, InterruptedPlanningLeavesNothingBehind) {
    std::string spec = R"({"id":"j","models":["m"],"regions":["r"],"questions":[)";
    for (int i = 0; i < 20000; ++i) {
        spec += (i ? ",\"q" : "\"q") + std::to_string(i) + "\"";
    }
    spec += "]}";
    eg_set_interrupt_check([] { return 1; });
    eg_job_plan view{};
    eg_error error{};
    const eg_status status = eg_job_plan_open({spec.data(), spec.size()}, &view, &error);
    eg_set_interrupt_check(nullptr);
    EXPECT_EQ(status, EG_INTERRUPTED);
    EXPECT_EQ(view.impl, nullptr);
    ASSERT_EQ(eg_job_plan_open({spec.data(), spec.size()}, &view, &error), EG_OK);
    EXPECT_EQ(view.unit_count, 20000u);
    eg_job_plan_free(&view);
}

TEST(PlanJob, InvalidJsonIsAnInputError) { EXPECT_EQ(error_of("{"), "spec is not valid JSON"); }

}  // namespace

// A SQL_ASCII database passes any byte: a spec that is JSON but for bytes
// that are not UTF-8 names the string that holds them (it said only "spec
// is not valid JSON").
TEST(PlanJob, BytesThatAreNotUtf8AreNamedWhereTheyAre) {
    EXPECT_EQ(error_of("{\"id\":\"j\xff\",\"models\":[\"m\"],\"regions\":[\"r\"],\"questions\":[\"q\"]}"),
              "id is not valid UTF-8");
    EXPECT_EQ(error_of("{\"id\":\"j\",\"models\":[\"m\",\"n\xc3\"],\"regions\":[\"r\"],\"questions\":[\"q\"]}"),
              "models[1] is not valid UTF-8");
    EXPECT_EQ(error_of("{\"id\":\"j\",\"models\":[\"m\"],\"regions\":[\"r\"],"
                       "\"questions\":[{\"id\":\"q\",\"prompt\":\"\xed\xa0\x80\"}]}"),
              "questions[0].prompt is not valid UTF-8");
    EXPECT_EQ(error_of("{\"id\":\"j\",\"x\xfe\":1,\"models\":[\"m\"],\"regions\":[\"r\"],\"questions\":[\"q\"]}"),
              "spec has a member name that is not valid UTF-8");
    // A member the spec does not read is not named (found by fuzz_plan_job).
    EXPECT_EQ(error_of("{\"id\":\"j\",\"questigns\":[\"\x8c\"],\"models\":[\"m\"],\"regions\":[\"r\"],"
                       "\"questions\":[\"q\"]}"),
              "spec is not valid UTF-8 (in a member execguard does not read)");
    // Not JSON at all stays what it was.
    EXPECT_EQ(error_of("{\"id\":\"j\xff"), "spec is not valid JSON");
}
