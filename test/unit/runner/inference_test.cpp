// test/unit/runner/inference_test.cpp: request building, response parsing
// and the error classification that decides retries and the breaker.
#include <gtest/gtest.h>

#include <random>

#include "inference.h"
#include "utf8.h"

namespace execguard::runner {
namespace {

RegionEndpoint endpoint() {
    RegionEndpoint e;
    e.name = "us-east";
    e.base_url = "http://fake/us-east";
    e.model_names["llama3.2-1b"] = "meta-llama/Llama-3.2-1B-Instruct";
    return e;
}

HttpOutcome http(long status, std::string body) {
    HttpOutcome o;
    o.status = status;
    o.body = std::move(body);
    o.latency_seconds = 0.25;
    return o;
}

const char* kOk = R"({"id":"cmpl-1","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},
"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})";

TEST(BuildRequest, SendsModelIdPromptAndParams) {
    nlohmann::json payload = {
        {"model_id", "qwen2.5-1.5b"}, {"prompt", "What is 2+2?"}, {"params", {{"temperature", 0}, {"max_tokens", 16}}}};
    auto r = build_request(endpoint(), payload);
    EXPECT_EQ(r.url, "http://fake/us-east/v1/chat/completions");
    auto body = nlohmann::json::parse(r.body);
    EXPECT_EQ(body["model"], "qwen2.5-1.5b");
    EXPECT_EQ(body["messages"][0]["role"], "user");
    EXPECT_EQ(body["messages"][0]["content"], "What is 2+2?");
    EXPECT_EQ(body["temperature"], 0);
    EXPECT_EQ(body["max_tokens"], 16);
    EXPECT_EQ(body["stream"], false);
}

TEST(BuildRequest, UsesTheRegionsModelNameMapping) {
    auto r = build_request(endpoint(), {{"model_id", "llama3.2-1b"}, {"prompt", "hi"}, {"params", nullptr}});
    EXPECT_EQ(nlohmann::json::parse(r.body)["model"], "meta-llama/Llama-3.2-1B-Instruct");
    EXPECT_EQ(r.model_sent, "meta-llama/Llama-3.2-1B-Instruct");
}

TEST(BuildRequest, RefusesPayloadsThatCannotMakeARequest) {
    EXPECT_THROW(build_request(endpoint(), {{"prompt", "x"}}), std::invalid_argument);
    EXPECT_THROW(build_request(endpoint(), {{"model_id", "m"}}), std::invalid_argument);
    EXPECT_THROW(build_request(endpoint(), {{"model_id", "m"}, {"prompt", "x"}, {"params", {{"model", "y"}}}}),
                 std::invalid_argument);
    EXPECT_THROW(build_request(endpoint(), nlohmann::json::array()), std::invalid_argument);
}

TEST(InterpretResponse, SuccessStoresTextUsageLatencyAndRequestId) {
    auto o = http(200, kOk);
    o.headers["x-request-id"] = "req-42";
    auto r = interpret_response(o);
    ASSERT_EQ(r.error_class, ErrorClass::none) << r.error_message;
    EXPECT_EQ(r.result["text"], "4");
    EXPECT_EQ(r.result["usage"]["total_tokens"], 6);
    EXPECT_EQ(r.result["latency_ms"], 250);
    EXPECT_EQ(r.result["provider_request_id"], "req-42");
    EXPECT_EQ(interpret_response(http(200, kOk)).result["provider_request_id"], "cmpl-1");
}

TEST(InterpretResponse, Http429IsRateLimitWithRetryAfter) {
    auto o = http(429, R"({"error":"slow down"})");
    o.headers["retry-after"] = "7";
    auto r = interpret_response(o);
    EXPECT_EQ(r.error_class, ErrorClass::rate_limit);
    ASSERT_TRUE(r.retry_after_seconds.has_value());
    EXPECT_DOUBLE_EQ(*r.retry_after_seconds, 7);
    EXPECT_FALSE(interpret_response(http(429, "")).retry_after_seconds.has_value());
    EXPECT_TRUE(is_retryable(ErrorClass::rate_limit));
}

TEST(InterpretResponse, Http200WithTheFieldsBillingErrorIsRateLimitNotSuccess) {
    auto r = interpret_response(http(
        200,
        R"({"success":false,"error":"HTTP 429: Too Many Requests: workspace billing cycle spend limit reached"})"));
    EXPECT_EQ(r.error_class, ErrorClass::rate_limit);
    EXPECT_NE(r.error_message.find("spend limit"), std::string::npos);
}

TEST(InterpretResponse, Http200ErrorBodiesAreFailures) {
    EXPECT_EQ(interpret_response(http(200, R"({"success":false})")).error_class, ErrorClass::server_error);
    EXPECT_EQ(interpret_response(http(200, R"({"error":{"message":"HTTP 503: upstream down"}})")).error_class,
              ErrorClass::server_error);
    EXPECT_EQ(interpret_response(http(200, R"({"error":"HTTP 400: bad model"})")).error_class, ErrorClass::permanent);
    EXPECT_EQ(interpret_response(http(200, R"({"choices":[]})")).error_class, ErrorClass::permanent);
    EXPECT_EQ(interpret_response(http(200, R"({"id":"x"})")).error_class, ErrorClass::permanent);
    EXPECT_EQ(interpret_response(http(200, "<html>oops</html>")).error_class, ErrorClass::permanent);
    EXPECT_EQ(interpret_response(http(200, R"({"choices":[{"message":{"content":null}}]})")).error_class,
              ErrorClass::permanent);
}

TEST(InterpretResponse, StatusClasses) {
    EXPECT_EQ(interpret_response(http(500, "boom")).error_class, ErrorClass::server_error);
    EXPECT_EQ(interpret_response(http(503, "")).error_class, ErrorClass::server_error);
    EXPECT_EQ(interpret_response(http(503, "rate limit exceeded")).error_class, ErrorClass::rate_limit);
    EXPECT_EQ(interpret_response(http(402, "billing: payment required")).error_class, ErrorClass::rate_limit);
    EXPECT_EQ(interpret_response(http(400, "bad request")).error_class, ErrorClass::permanent);
    EXPECT_EQ(interpret_response(http(404, "no such model")).error_class, ErrorClass::permanent);
    EXPECT_EQ(interpret_response(http(408, "")).error_class, ErrorClass::timeout);
    EXPECT_FALSE(is_retryable(ErrorClass::permanent));
    EXPECT_TRUE(is_retryable(ErrorClass::server_error));
}

TEST(InterpretResponse, TransportErrors) {
    HttpOutcome o;
    o.transport = TransportError::timeout;
    EXPECT_EQ(interpret_response(o).error_class, ErrorClass::timeout);
    o.transport = TransportError::network;
    EXPECT_EQ(interpret_response(o).error_class, ErrorClass::network);
    EXPECT_TRUE(is_retryable(ErrorClass::timeout));
    EXPECT_TRUE(is_retryable(ErrorClass::network));
}

TEST(InterpretResponse, TransportErrorMessagesDoNotRepeatTheClass) {
    // The runner writes "class: message"; it was "network: network: ...".
    HttpOutcome o;
    o.transport = TransportError::network;
    o.transport_message = "Server returned nothing (no headers, no data)";
    EXPECT_EQ(interpret_response(o).error_message, "Server returned nothing (no headers, no data)");
    o.transport = TransportError::timeout;
    o.transport_message = "Timeout was reached";
    EXPECT_EQ(interpret_response(o).error_message, "Timeout was reached");
}

// What complete_execution sends must be accepted by jsonb: strict dump()
// (throws on invalid UTF-8) and no \u0000 (22P05).
void expect_storable(const nlohmann::json& value) {
    std::string text;
    ASSERT_NO_THROW(text = value.dump());
    EXPECT_EQ(text.find("\\u0000"), std::string::npos) << text;
}

void expect_storable_error(const InferenceResult& r) {
    EXPECT_TRUE(is_valid_utf8(r.error_message)) << r.error_message;
    EXPECT_EQ(r.error_message.find('\0'), std::string::npos);
}

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(HostileResponse, ErrorBodiesThatAreNotUtf8AreRepaired) {
    auto r = interpret_response(
        http(500, std::string(R"({"error":{"message":"internal error )") + "\xFF" + R"( near byte 20"}})"));
    EXPECT_EQ(r.error_class, ErrorClass::server_error);
    EXPECT_EQ(r.error_message, R"(HTTP 500: {"error":{"message":"internal error )" + kFFFD + R"( near byte 20"}})");
    expect_storable_error(r);
    expect_storable_error(interpret_response(http(500, std::string("nul\0in body", 12))));
}

TEST(HostileResponse, TheErrorExcerptNeverCutsACharacter) {
    // U+20AC starts at byte 299 of the body; the excerpt is 300 bytes.
    const std::string body = std::string(kErrorBodyExcerptBytes - 1, 'e') + "\xE2\x82\xAC tail";
    auto r = interpret_response(http(500, body));
    EXPECT_EQ(r.error_message, "HTTP 500: " + std::string(kErrorBodyExcerptBytes - 1, 'e') + "...");
    expect_storable_error(r);
    // The same in a 200 error body's message (cut at 1,000 bytes).
    const std::string message = std::string(1000 - 22, 'e') + "\xE2\x82\xAC";
    r = interpret_response(http(200, nlohmann::json({{"error", message}}).dump()));
    expect_storable_error(r);
    EXPECT_EQ(r.error_message.substr(r.error_message.size() - 3), "...");
}

TEST(HostileResponse, InvalidUtf8InTheContentIsRepairedKeptAndMarked) {
    const std::string body = std::string(R"({"choices":[{"message":{"content":"cut token )") + "\xE2\x82" + R"("}}]})";
    auto r = interpret_response(http(200, body));
    ASSERT_EQ(r.error_class, ErrorClass::none) << r.error_message;
    EXPECT_EQ(r.result["text"], "cut token " + kFFFD);
    EXPECT_EQ(r.result["altered"], nlohmann::json({{"response", "1 invalid UTF-8 sequence replaced by U+FFFD"}}));
    expect_storable(r.result);
}

TEST(HostileResponse, NulInTheContentIsReplacedKeptAndMarked) {
    auto r = interpret_response(http(200, R"({"choices":[{"message":{"content":"before\u0000after"}}]})"));
    ASSERT_EQ(r.error_class, ErrorClass::none) << r.error_message;
    EXPECT_EQ(r.result["text"], "before" + kFFFD + "after");
    EXPECT_EQ(r.result["altered"], nlohmann::json({{"text", "1 NUL character replaced by U+FFFD"}}));
    expect_storable(r.result);
}

TEST(HostileResponse, NulElsewhereIsReplacedAndMarkedPerField) {
    auto r = interpret_response(http(200, R"({"id":"i\u0000d","model":"m\u0000","choices":[{"finish_reason":
        "stop\u0000","message":{"content":"ok"}}],"usage":{"a\u0000":1,"a\ufffd":2,"n":["x\u0000"]}})"));
    ASSERT_EQ(r.error_class, ErrorClass::none) << r.error_message;
    EXPECT_EQ(r.result["model"], "m" + kFFFD);
    EXPECT_EQ(r.result["finish_reason"], "stop" + kFFFD);
    EXPECT_EQ(r.result["provider_request_id"], "i" + kFFFD + "d");
    // "a<NUL>" would become "a<U+FFFD>", which exists: one is kept, and that is said.
    EXPECT_EQ(r.result["usage"].size(), 2u);
    EXPECT_EQ(r.result["usage"]["n"][0], "x" + kFFFD);
    const std::string usage_note = r.result["altered"]["usage"];
    EXPECT_NE(usage_note.find("2 NUL characters"), std::string::npos) << usage_note;
    EXPECT_NE(usage_note.find("1 member dropped"), std::string::npos) << usage_note;
    EXPECT_EQ(r.result["altered"].size(), 4u) << r.result["altered"];  // model, finish_reason, id, usage
    expect_storable(r.result);
}

TEST(HostileResponse, RequestIdHeaderThatIsNotUtf8IsRepairedAndMarked) {
    auto o = http(200, kOk);
    o.headers["x-request-id"] = "req-\xFF";
    auto r = interpret_response(o);
    ASSERT_EQ(r.error_class, ErrorClass::none);
    EXPECT_EQ(r.result["provider_request_id"], "req-" + kFFFD);
    EXPECT_EQ(r.result["altered"],
              nlohmann::json({{"provider_request_id", "1 invalid UTF-8 sequence replaced by U+FFFD"}}));
    expect_storable(r.result);
}

TEST(HostileResponse, AnAnswerThatNeedsNoRepairSaysNothingWasAltered) {
    auto r = interpret_response(http(200, kOk));
    EXPECT_FALSE(r.result.contains("altered"));
}

std::string deep_array(int levels) { return std::string(levels, '[') + std::string(levels, ']'); }

TEST(HostileResponse, DeeplyNestedFieldsAreDroppedNotWalked) {
    // A million levels: a recursive copy or dump() overflows the stack.
    const std::string deep = deep_array(1000000);
    auto r = interpret_response(http(200, R"({"choices":[{"message":{"content":"ok"},"finish_reason":)" + deep +
                                              R"(}],"usage":)" + deep + R"(,"model":)" + deep + "}"));
    ASSERT_EQ(r.error_class, ErrorClass::none) << r.error_message;
    EXPECT_EQ(r.result["text"], "ok");
    for (const char* field : {"usage", "model", "finish_reason"}) {
        EXPECT_TRUE(r.result[field].is_null()) << field;
        EXPECT_EQ(r.result["altered"][field], "nested deeper than 32 levels; stored as null");
    }
    // Up to the limit, kept as sent.
    r = interpret_response(
        http(200, R"({"choices":[{"message":{"content":"ok"}}],"usage":)" + deep_array(kMaxProviderJsonDepth) + "}"));
    EXPECT_FALSE(r.result.contains("altered"));
    EXPECT_TRUE(r.result["usage"].is_array());
}

TEST(HostileResponse, ADeeplyNestedErrorIsReportedWithoutWalkingIt) {
    auto r = interpret_response(http(200, R"({"error":)" + deep_array(1000000) + "}"));
    EXPECT_EQ(r.error_class, ErrorClass::server_error);
    EXPECT_EQ(r.error_message, "HTTP 200 error body: (an error value nested deeper than 32 levels)");
}

TEST(NestedDeeperThan, CountsContainerLevels) {
    EXPECT_FALSE(nested_deeper_than(5, 0));
    EXPECT_TRUE(nested_deeper_than(nlohmann::json::array(), 0));
    EXPECT_FALSE(nested_deeper_than(nlohmann::json::parse("[[1],{\"a\":[2]}]"), 3));
    EXPECT_TRUE(nested_deeper_than(nlohmann::json::parse("[[1],{\"a\":[[2]]}]"), 3));
}

TEST(HostileResponse, WrongShapesAreMalformedNotCrashes) {
    for (const char* body : {R"({"choices":{"0":{"message":{"content":"x"}}}})", R"({"choices":"x"})",
                             R"({"choices":[{"message":{"content":42}}]})", R"({"choices":[{"message":"x"}]})",
                             R"({"choices":["x"]})", R"({"choices":[{"message":{}}]})", "[1,2,3]", "null", "",
                             R"({"choices":[{"message":{"content":["part"]}}]})"}) {
        auto r = interpret_response(http(200, body));
        EXPECT_EQ(r.error_class, ErrorClass::permanent) << body;
        EXPECT_EQ(r.error_message.rfind("malformed response: ", 0), 0u) << r.error_message;
    }
}

TEST(HostileResponse, HugeNumbersAreKeptAndUnrepresentableOnesNamed) {
    auto r = interpret_response(http(
        200,
        R"({"choices":[{"message":{"content":"ok"}}],"usage":{"a":123456789012345678901234567890,"b":-1.5e308}})"));
    ASSERT_EQ(r.error_class, ErrorClass::none) << r.error_message;
    expect_storable(r.result);
    r = interpret_response(http(200, R"({"choices":[{"message":{"content":"ok"}}],"usage":{"a":1e400}})"));
    EXPECT_EQ(r.error_class, ErrorClass::permanent);
    EXPECT_NE(r.error_message.find("number overflow parsing '1e400'"), std::string::npos) << r.error_message;
}

TEST(HostileResponse, ABodyOverTheCapIsNotRetriedWhenTheModelAnswered) {
    auto o = http(200, std::string(kMaxResponseBodyBytes, 'x'));
    o.transport = TransportError::response_too_large;
    auto r = interpret_response(o);
    EXPECT_EQ(r.error_class, ErrorClass::response_too_large);
    EXPECT_FALSE(is_retryable(ErrorClass::response_too_large));
    EXPECT_EQ(r.error_message.rfind("HTTP 200: the response body is larger than 16 MiB", 0), 0u) << r.error_message;
    // An error status did no work: it keeps its class.
    o.status = 503;
    EXPECT_EQ(interpret_response(o).error_class, ErrorClass::server_error);
    o.status = 429;
    EXPECT_EQ(interpret_response(o).error_class, ErrorClass::rate_limit);
}

TEST(HostileResponse, RandomBytesNeverThrowAndAlwaysGiveStorableText) {
    // Mutations of a good answer: flipped, inserted and deleted bytes.
    std::mt19937 random(16);
    const std::string base = R"({"id":"x","model":"m","choices":[{"message":{"content":"caf\u00e9 \u20ac"},
        "finish_reason":"stop"}],"usage":{"total_tokens":6,"nested":{"k":["v",1,true,null]}}})";
    for (int round = 0; round < 20000; ++round) {
        std::string body = base;
        const int edits = 1 + static_cast<int>(random() % 4);
        for (int e = 0; e < edits && !body.empty(); ++e) {
            const std::size_t at = random() % body.size();
            const char byte = static_cast<char>(random() % 256);
            switch (random() % 3) {
                case 0:
                    body[at] = byte;
                    break;
                case 1:
                    body.insert(body.begin() + static_cast<std::ptrdiff_t>(at), byte);
                    break;
                default:
                    body.erase(at, 1);
            }
        }
        auto o = http(random() % 4 == 0 ? 500 : 200, body);
        o.headers["x-request-id"] = body.substr(0, 8);
        InferenceResult r;
        ASSERT_NO_THROW(r = interpret_response(o)) << body;
        if (r.error_class == ErrorClass::none)
            expect_storable(r.result);
        else
            expect_storable_error(r);
    }
}

TEST(ParseRetryAfter, SecondsAndHttpDate) {
    EXPECT_DOUBLE_EQ(*parse_retry_after("120", 0), 120);
    EXPECT_DOUBLE_EQ(*parse_retry_after(" 1.5 ", 0), 1.5);
    // 2015-10-21 07:28:00 UTC is 1445412480.
    EXPECT_DOUBLE_EQ(*parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30), 30);
    EXPECT_DOUBLE_EQ(*parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 30), 0);
    EXPECT_FALSE(parse_retry_after("soon", 0).has_value());
    EXPECT_FALSE(parse_retry_after("", 0).has_value());
}

TEST(ParseRetryAfter, IsCappedAtADay) {
    // Uncapped, 1e20 s overflowed the clock and PostgreSQL's interval (22015).
    EXPECT_DOUBLE_EQ(*parse_retry_after("99999999999999999999", 0), kMaxRetryAfterSeconds);
    EXPECT_DOUBLE_EQ(*parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 0), kMaxRetryAfterSeconds);
    EXPECT_DOUBLE_EQ(*parse_retry_after("86399", 0), 86399);
}

}  // namespace
}  // namespace execguard::runner
