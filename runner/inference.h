// runner/inference.h: the OpenAI-compatible chat-completions protocol.
//
// Pure functions (no I/O): building a request from an execution's payload,
// and turning an HTTP outcome into a result or a classified failure. The
// classification decides whether fail_execution is told "retryable" and
// whether the region's circuit breaker hears about it.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config.h"

namespace execguard::runner {

enum class ErrorClass { none, rate_limit, server_error, timeout, network, permanent };

const char* to_string(ErrorClass error_class);
bool is_retryable(ErrorClass error_class);

// What the transfer layer saw below HTTP.
enum class TransportError { none, timeout, network };

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
    std::string error_message;                  // for fail_execution's error
    std::optional<double> retry_after_seconds;  // from Retry-After, if any
    nlohmann::json result;                      // for complete_execution
};

InferenceResult interpret_response(const HttpOutcome& outcome);

// Retry-After: delta-seconds or an HTTP-date; nullopt when unparseable.
std::optional<double> parse_retry_after(const std::string& value, std::time_t now);

}  // namespace execguard::runner
