// test/unit/core/normalize_test.cpp: the PostgreSQL-free normalisation core.
#include "execguard/core/normalize.hpp"
#include "execguard/bridge.h"
#include "execguard/core/canonical.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace {

using execguard::core::ErrorKind;
using execguard::core::InputError;
using nlohmann::json;

json normalize(const std::string& models, const std::vector<std::string>& defaults = {}) {
    return json::parse(execguard::core::normalize_models_text(models, defaults));
}

// Runs normalize and returns the error message; fails the test if it succeeds.
std::string error_of(const std::string& models, const std::vector<std::string>& defaults = {},
                     ErrorKind expected_kind = ErrorKind::invalid_parameter) {
    try {
        execguard::core::normalize_models_text(models, defaults);
    } catch (const InputError& e) {
        EXPECT_EQ(e.kind(), expected_kind) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no error for " << models;
    return {};
}

TEST(NormalizeModels, ReferenceIncidentKeepsTwoOfFour) {
    json out = normalize(R"(["llama3.2-1b","qwen2.5-1.5b","llama3.2-1b","qwen2.5-1.5b"])", {"us-east"});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0]["id"], "llama3.2-1b");
    EXPECT_EQ(out[1]["id"], "qwen2.5-1.5b");
    EXPECT_EQ(out[0]["regions"], json::array({"us-east"}));
    EXPECT_TRUE(out[0]["provider"].is_null());
}

TEST(NormalizeModels, CaseAndWhitespaceVariantsAreOneModel) {
    json out = normalize(R"([" Llama3.2-1B ","llama3.2-1b\t","LLAMA3.2-1B"])", {"US-East "});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0]["id"], "llama3.2-1b");
    EXPECT_EQ(out[0]["name"], "Llama3.2-1B") << "the first spelling, trimmed, is the name";
    EXPECT_EQ(out[0]["regions"], json::array({"us-east"}));
}

TEST(NormalizeModels, StringsAndObjectsMixAndRegionsUnionInFirstSeenOrder) {
    json out = normalize(R"([
        "gpt-x",
        {"id": "GPT-X", "name": "GPT X", "provider": "openai", "regions": ["eu-west", "us-east"]},
        {"id": "other", "regions": ["ap-south"]},
        {"id": "gpt-x", "regions": ["EU-WEST", "ap-south"]}
    ])",
                         {"us-east"});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0]["id"], "gpt-x");
    EXPECT_EQ(out[0]["name"], "GPT X") << "the first non-empty name given beats the id's spelling";
    EXPECT_EQ(out[0]["provider"], "openai");
    EXPECT_EQ(out[0]["regions"], json::array({"us-east", "eu-west", "ap-south"}));
    EXPECT_EQ(out[1]["regions"], json::array({"ap-south"})) << "own regions replace the defaults";
}

TEST(NormalizeModels, ProviderConflictIsAnErrorNamingBothPositions) {
    std::string message = error_of(R"([{"id":"m","provider":"a"},"m",{"id":"M","provider":"b"}])");
    EXPECT_NE(message.find("models[2].provider"), std::string::npos) << message;
    EXPECT_NE(message.find("models[0].provider"), std::string::npos) << message;
}

TEST(NormalizeModels, SameProviderTwiceIsNotAConflict) {
    json out = normalize(R"([{"id":"m","provider":"a"},{"id":"m","provider":"a"}])");
    EXPECT_EQ(out[0]["provider"], "a");
}

TEST(NormalizeModels, ErrorsNameThePosition) {
    EXPECT_EQ(error_of(R"({"id":"x"})"), "models must be a JSON array");
    EXPECT_EQ(error_of(R"(["a", 3])"), "models[1] must be a string or an object");
    EXPECT_EQ(error_of(R"([{"name":"x"}])"), "models[0].id is required");
    EXPECT_EQ(error_of(R"([{"id":"  "}])"), "models[0].id must not be empty");
    EXPECT_EQ(error_of(R"([{"id":7}])"), "models[0].id must be a string");
    EXPECT_EQ(error_of(R"(["a","b","c",{"id":"d","regions":["x",1]}])"), "models[3].regions[1] must be a string");
    EXPECT_EQ(error_of(R"([{"id":"d","regions":"x"}])"), "models[0].regions must be an array of strings");
    EXPECT_EQ(error_of(R"(["a\u0001b"])"), "models[0] contains a control character");
    EXPECT_EQ(error_of(R"([{"id":"a","regions":["us\neast"]}])"), "models[0].regions[0] contains a control character");
    EXPECT_EQ(error_of("[\"" + std::string(201, 'a') + "\"]"), "models[0] is longer than 200 bytes");
    EXPECT_EQ(error_of(R"([{"id":"a","color":"red"}])"),
              "models[0] has unknown key \"color\" (expected id, name, provider, regions)");
    EXPECT_EQ(error_of(R"(["a"])", {"ok", " "}), "default_regions[1] must not be empty");
}

TEST(NormalizeModels, TwoHundredBytesIsAllowed) {
    json out = normalize("[\"" + std::string(200, 'a') + "\"]");
    EXPECT_EQ(out[0]["id"].get<std::string>().size(), 200u);
}

TEST(NormalizeModels, MoreThanTenThousandEntriesIsAProgramLimit) {
    std::string many = "[";
    for (int i = 0; i < 10001; ++i) {
        many += (i ? ",\"m" : "\"m") + std::to_string(i) + "\"";
    }
    many += "]";
    EXPECT_NE(error_of(many, {}, ErrorKind::program_limit).find("too many model entries"), std::string::npos);
}

// 120,000 distinct regions took 15 s when each was compared with every
// earlier one; with a hash set it is linear. The ctest timeout is the guard.
TEST(NormalizeModels, ManyDistinctRegionsDedupeInFirstSeenOrder) {
    std::vector<std::string> defaults;
    for (int i = 0; i < 120000; ++i) {
        defaults.push_back("R" + std::to_string(i));
    }
    defaults.push_back(" r7 ");  // a repeat, in another spelling
    std::string models = R"(["m1", {"id": "m2", "regions": [)";
    for (int i = 119999; i >= 0; --i) {
        models += "\"r" + std::to_string(i) + "\"" + (i > 0 ? "," : "");
    }
    models += "]}, {\"id\": \"M1\", \"regions\": [\"extra\", \"r5\"]}]";
    json out = normalize(models, defaults);
    ASSERT_EQ(out.size(), 2u);
    ASSERT_EQ(out[0]["regions"].size(), 120001u) << "the defaults, then the new region of the merged entry";
    EXPECT_EQ(out[0]["regions"][0], "r0");
    EXPECT_EQ(out[0]["regions"][119999], "r119999");
    EXPECT_EQ(out[0]["regions"][120000], "extra");
    ASSERT_EQ(out[1]["regions"].size(), 120000u);
    EXPECT_EQ(out[1]["regions"][0], "r119999") << "its own regions, in its own order";
}

TEST(NormalizeModels, TooManyModelRegionPairsIsAProgramLimitBeforeTheyAreCopied) {
    std::vector<std::string> defaults;
    for (int i = 0; i < 600000; ++i) {
        defaults.push_back("r" + std::to_string(i));
    }
    EXPECT_EQ(error_of(R"(["a", "b"])", defaults, ErrorKind::program_limit),
              "too many (model, region) pairs: more than 1000000");
}

TEST(NormalizeModels, NonAsciiIsKeptNotFolded) {
    json out = normalize(R"(["Modèle", "MODÈLE", "modèle"])");
    // ASCII letters fold, the non-ASCII letter does not: two distinct ids.
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0]["id"], "modèle");
    EXPECT_EQ(out[1]["id"], "modÈle");
}

TEST(NormalizeModels, OutputIsAFixedPoint) {
    json once = normalize(R"(["B", {"id":"a","regions":["X"]}, "b"])", {"y"});
    json twice = normalize(once.dump());
    EXPECT_EQ(once, twice);
}

TEST(Bridge, NormalizeReportsErrorsAsStatusNotExceptions) {
    const std::string input = R"([1])";
    eg_text out{nullptr, 0};
    eg_error error{};
    eg_status status = eg_normalize_models(eg_slice{input.data(), input.size()}, nullptr, 0, &out, &error);
    EXPECT_EQ(status, EG_INVALID_PARAMETER);
    EXPECT_STREQ(error.message, "models[0] must be a string or an object");
    EXPECT_EQ(out.data, nullptr);
}

TEST(Bridge, NormalizeReturnsMallocedText) {
    const std::string input = R"(["A"])";
    const std::string region = "Us-East";
    eg_slice regions[] = {{region.data(), region.size()}};
    eg_text out{nullptr, 0};
    eg_error error{};
    ASSERT_EQ(eg_normalize_models(eg_slice{input.data(), input.size()}, regions, 1, &out, &error), EG_OK)
        << error.message;
    EXPECT_EQ(json::parse(std::string(out.data, out.len))[0]["regions"][0], "us-east");
    eg_text_free(&out);
    EXPECT_EQ(out.data, nullptr);
}

// The interrupt check is asked while the core loops over input; when it
// says stop, the call unwinds and reports EG_INTERRUPTED, nothing else.
TEST(Bridge, InterruptCheckStopsALongCallWithItsOwnStatus) {
    static int asked = 0;
    asked = 0;
    eg_set_interrupt_check([] {
        ++asked;
        return 1;
    });
    std::string models = "[";
    for (int i = 0; i < 5000; ++i) {
        models += (i ? ",\"m" : "\"m") + std::to_string(i) + "\"";
    }
    models += "]";
    eg_text out{nullptr, 0};
    eg_error error{};
    const eg_slice region{"r", 1};
    const eg_status status = eg_normalize_models({models.data(), models.size()}, &region, 1, &out, &error);
    eg_set_interrupt_check(nullptr);
    EXPECT_EQ(status, EG_INTERRUPTED);
    EXPECT_EQ(out.data, nullptr) << "no partial result";
    EXPECT_EQ(asked, 1);
    // And without the check, the same call succeeds.
    EXPECT_EQ(eg_normalize_models({models.data(), models.size()}, &region, 1, &out, &error), EG_OK);
    eg_text_free(&out);
}

TEST(Bridge, CanonicalKeyParts) {
    char buffer[64];
    size_t len = 0;
    eg_error error{};
    const std::string model = "  Qwen2.5-1.5B ";
    ASSERT_EQ(eg_canonical_key_part(EG_KEY_MODEL_ID, {model.data(), model.size()}, buffer, &len, &error), EG_OK);
    EXPECT_EQ(std::string(buffer, len), "qwen2.5-1.5b");
    const std::string job = " Job-A ";
    ASSERT_EQ(eg_canonical_key_part(EG_KEY_JOB_ID, {job.data(), job.size()}, buffer, &len, &error), EG_OK);
    EXPECT_EQ(std::string(buffer, len), "Job-A") << "job ids keep their case";
    const std::string empty = "  ";
    ASSERT_EQ(eg_canonical_key_part(EG_KEY_QUESTION_ID, {empty.data(), empty.size()}, buffer, &len, &error), EG_OK);
    EXPECT_EQ(len, 0u) << "'' is the single-prompt unit";
    EXPECT_EQ(eg_canonical_key_part(EG_KEY_REGION, {empty.data(), empty.size()}, buffer, &len, &error),
              EG_INVALID_PARAMETER);
    EXPECT_STREQ(error.message, "region must not be empty");
}

}  // namespace
