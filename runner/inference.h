// runner/inference.h: the OpenAI-compatible chat-completions protocol.
//
// Pure functions (no I/O): building a request from an execution's payload,
// and turning an HTTP outcome into a result or a classified failure. The
// classification decides whether fail_execution is told "retryable" and
// whether the region's circuit breaker hears about it.
#pragma once

#include <cstddef>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config.h"

namespace execguard::runner {

// response_too_large: the provider answered (the model did the work) with a
// body over kMaxResponseBodyBytes; sending the request again would pay for
// the same work twice, so it is not retried. result_refused: the database
// refused to store a result (not an inference error; never counted as one).
enum class ErrorClass {
    none,
    rate_limit,
    server_error,
    timeout,
    network,
    permanent,
    response_too_large,
    result_refused
};

const char* to_string(ErrorClass error_class);
bool is_retryable(ErrorClass error_class);

// A response body is read up to this size; past it the transfer stops.
constexpr std::size_t kMaxResponseBodyBytes = 16 * 1024 * 1024;
// A provider's Retry-After is honoured up to a day. Larger values (or an
// HTTP-date years ahead) are capped: they would overflow the clock and
// PostgreSQL's interval, and a day is already "stop until someone looks".
constexpr double kMaxRetryAfterSeconds = 86400;
// Values of the provider's JSON kept in a result (usage, model,
// finish_reason) nested deeper than this are dropped: the runner walks them
// recursively, and a 16 MiB body can nest millions of levels.
constexpr int kMaxProviderJsonDepth = 32;
// Bytes of a provider's body or error text quoted in an error message.
constexpr std::size_t kErrorBodyExcerptBytes = 300;

// What the transfer layer saw below HTTP. response_too_large: the body
// passed kMaxResponseBodyBytes; status and headers are kept, the body is
// its first kMaxResponseBodyBytes.
enum class TransportError { none, timeout, network, response_too_large };

struct InferenceRequest {
    std::string url;
    std::string body;  // JSON
    std::string model_sent;
};

// Builds the request for one execution. Throws std::invalid_argument when
// the payload cannot make a request (the failure is then permanent).
InferenceRequest build_request(const RegionEndpoint& endpoint, const nlohmann::json& payload);

struct HttpOutcome {
    TransportError transport = TransportError::none;
    std::string transport_message;
    long status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // names lower-cased
    double latency_seconds = 0;
};

struct InferenceResult {
    ErrorClass error_class = ErrorClass::none;  // none = success
    // For fail_execution's error, without the class (the caller prefixes
    // it): valid UTF-8 without NUL, at most about 1,000 bytes.
    std::string error_message;
    std::optional<double> retry_after_seconds;  // from Retry-After, if any
    // For complete_execution: text, usage, latency_ms, finish_reason, model,
    // provider_request_id, and "altered" when any of them is not exactly
    // what the provider sent ({"text": "1 NUL character replaced by
    // U+FFFD", ...}; see docs/runner.md). Every string is valid UTF-8
    // without NUL, so jsonb stores it.
    nlohmann::json result;
};

// Never throws on anything the provider sends.
InferenceResult interpret_response(const HttpOutcome& outcome);

// Retry-After: delta-seconds or an HTTP-date, at most kMaxRetryAfterSeconds;
// nullopt when unparseable.
std::optional<double> parse_retry_after(const std::string& value, std::time_t now);

// True when `value` has containers nested more than `max_depth` deep (a
// scalar is depth 0, [1] depth 1). Iterative: safe on any depth.
bool nested_deeper_than(const nlohmann::json& value, int max_depth);

}  // namespace execguard::runner
