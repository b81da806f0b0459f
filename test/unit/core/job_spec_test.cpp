// test/unit/core/job_spec_test.cpp: job spec → units, without PostgreSQL.
#include "execguard/core/job_spec.hpp"
#include "execguard/core/canonical.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <tuple>

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

TEST(PlanJob, InvalidJsonIsAnInputError) { EXPECT_EQ(error_of("{"), "spec is not valid JSON"); }

}  // namespace
