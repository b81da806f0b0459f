// test/unit/runner/inference_test.cpp: request building, response parsing
// and the error classification that decides retries and the breaker.
#include <gtest/gtest.h>

#include "inference.h"

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

TEST(ParseRetryAfter, SecondsAndHttpDate) {
    EXPECT_DOUBLE_EQ(*parse_retry_after("120", 0), 120);
    EXPECT_DOUBLE_EQ(*parse_retry_after(" 1.5 ", 0), 1.5);
    // 2015-10-21 07:28:00 UTC is 1445412480.
    EXPECT_DOUBLE_EQ(*parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30), 30);
    EXPECT_DOUBLE_EQ(*parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 30), 0);
    EXPECT_FALSE(parse_retry_after("soon", 0).has_value());
    EXPECT_FALSE(parse_retry_after("", 0).has_value());
}

}  // namespace
}  // namespace execguard::runner
