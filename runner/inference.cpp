// runner/inference.cpp
#include "inference.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace execguard::runner {

namespace {

// Keys of the request body that params may not override.
bool is_reserved_param(const std::string& key) { return key == "model" || key == "messages" || key == "stream"; }

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Providers and routers report quota exhaustion in prose, also inside
// HTTP 200 bodies ("HTTP 429: ... workspace billing cycle spend limit
// reached"); any of these phrases means "rate limit / billing".
bool mentions_rate_limit(const std::string& text) {
    const std::string t = lower(text);
    static const char* const phrases[] = {"rate limit", "rate_limit",        "ratelimit", "too many requests",
                                          "billing",    "spend limit",       "quota",     "http 429",
                                          "status 429", "insufficient_quota"};
    for (const char* p : phrases)
        if (t.find(p) != std::string::npos) return true;
    return false;
}

// "HTTP 5xx" / "status: 4xx" inside an error message relayed by a router.
// (A hand-written scan: std::regex trips GCC 12's -Wmaybe-uninitialized
// under the sanitizer build.)
bool mentions_status_class(const std::string& text, char first_digit) {
    const std::string t = lower(text);
    for (const char* word : {"http", "status"}) {
        for (auto pos = t.find(word); pos != std::string::npos; pos = t.find(word, pos + 1)) {
            auto i = pos + std::strlen(word);
            while (i < t.size() && (t[i] == ' ' || t[i] == ':')) ++i;
            if (i + 3 <= t.size() && t[i] == first_digit && std::isdigit(static_cast<unsigned char>(t[i + 1])) &&
                std::isdigit(static_cast<unsigned char>(t[i + 2])) &&
                (i + 3 == t.size() || !std::isdigit(static_cast<unsigned char>(t[i + 3]))))
                return true;
        }
    }
    return false;
}

std::string truncate(const std::string& s, std::size_t n = 300) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

std::string error_text(const nlohmann::json& error) {
    if (error.is_string()) return error.get<std::string>();
    if (error.is_object() && error.contains("message") && error["message"].is_string())
        return error["message"].get<std::string>();
    return error.dump();
}

InferenceResult failure(ErrorClass c, std::string message) {
    InferenceResult r;
    r.error_class = c;
    r.error_message = truncate(message, 1000);
    return r;
}

}  // namespace

const char* to_string(ErrorClass c) {
    switch (c) {
        case ErrorClass::none:
            return "none";
        case ErrorClass::rate_limit:
            return "rate_limit";
        case ErrorClass::server_error:
            return "server_error";
        case ErrorClass::timeout:
            return "timeout";
        case ErrorClass::network:
            return "network";
        case ErrorClass::permanent:
            return "permanent";
    }
    return "permanent";
}

bool is_retryable(ErrorClass c) { return c != ErrorClass::permanent && c != ErrorClass::none; }

InferenceRequest build_request(const RegionEndpoint& endpoint, const nlohmann::json& payload) {
    if (!payload.is_object()) throw std::invalid_argument("payload is not an object");
    auto text_field = [&](const char* key) -> std::string {
        auto it = payload.find(key);
        if (it == payload.end() || it->is_null()) return "";
        if (!it->is_string()) throw std::invalid_argument(std::string("payload.") + key + " is not a string");
        return it->get<std::string>();
    };
    const std::string model_id = text_field("model_id");
    const std::string prompt = text_field("prompt");
    if (model_id.empty()) throw std::invalid_argument("payload.model_id is missing");
    if (prompt.empty()) throw std::invalid_argument("payload.prompt is missing");

    InferenceRequest request;
    auto mapped = endpoint.model_names.find(model_id);
    request.model_sent = mapped != endpoint.model_names.end() ? mapped->second : model_id;
    nlohmann::json body = {
        {"model", request.model_sent},
        {"messages", nlohmann::json::array({{{"role", "user"}, {"content", prompt}}})},
        {"stream", false},
    };
    auto params = payload.find("params");
    if (params != payload.end() && !params->is_null()) {
        if (!params->is_object()) throw std::invalid_argument("payload.params is not an object");
        for (const auto& [key, value] : params->items()) {
            if (is_reserved_param(key)) throw std::invalid_argument("payload.params." + key + " is reserved");
            body[key] = value;
        }
    }
    request.url = endpoint.base_url + "/v1/chat/completions";
    request.body = body.dump();
    return request;
}

std::optional<double> parse_retry_after(const std::string& value, std::time_t now) {
    std::string v = value;
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r\n") + 1);
    if (v.empty()) return std::nullopt;
    if (std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c) || c == '.'; })) {
        try {
            return std::stod(v);
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    std::tm tm{};
    // IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
    if (strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return std::nullopt;
    const std::time_t when = timegm(&tm);
    return std::max(0.0, std::difftime(when, now));
}

InferenceResult interpret_response(const HttpOutcome& outcome) {
    if (outcome.transport == TransportError::timeout)
        return failure(ErrorClass::timeout, "timeout: " + outcome.transport_message);
    if (outcome.transport == TransportError::network)
        return failure(ErrorClass::network, "network: " + outcome.transport_message);

    std::optional<double> retry_after;
    if (auto it = outcome.headers.find("retry-after"); it != outcome.headers.end())
        retry_after = parse_retry_after(it->second, std::time(nullptr));

    const std::string status_text = "HTTP " + std::to_string(outcome.status);
    if (outcome.status != 200) {
        InferenceResult r;
        if (outcome.status == 429 || mentions_rate_limit(outcome.body))
            r = failure(ErrorClass::rate_limit, status_text + ": " + truncate(outcome.body));
        else if (outcome.status >= 500)
            r = failure(ErrorClass::server_error, status_text + ": " + truncate(outcome.body));
        else if (outcome.status == 408)
            r = failure(ErrorClass::timeout, status_text + ": " + truncate(outcome.body));
        else
            r = failure(ErrorClass::permanent, status_text + ": " + truncate(outcome.body));
        r.retry_after_seconds = retry_after;
        return r;
    }

    nlohmann::json body = nlohmann::json::parse(outcome.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object())
        return failure(ErrorClass::permanent, "malformed response: not a JSON object: " + truncate(outcome.body, 200));

    // A 200 that reports an error is a failure, never a result.
    const bool success_false = body.contains("success") && body["success"] == false;
    const bool has_error = body.contains("error") && !body["error"].is_null() && body["error"] != false;
    if (success_false || has_error) {
        const std::string message = has_error ? error_text(body["error"]) : "success=false";
        InferenceResult r;
        if (mentions_rate_limit(message))
            r = failure(ErrorClass::rate_limit, "HTTP 200 error body: " + message);
        else if (mentions_status_class(message, '5') || !mentions_status_class(message, '4'))
            r = failure(ErrorClass::server_error, "HTTP 200 error body: " + message);
        else
            r = failure(ErrorClass::permanent, "HTTP 200 error body: " + message);
        r.retry_after_seconds = retry_after;
        return r;
    }

    auto choices = body.find("choices");
    if (choices == body.end() || !choices->is_array() || choices->empty())
        return failure(ErrorClass::permanent, "malformed response: no choices");
    const auto& choice = (*choices)[0];
    if (!choice.is_object() || !choice.contains("message") || !choice["message"].is_object())
        return failure(ErrorClass::permanent, "malformed response: choices[0].message missing");
    const auto& content = choice["message"].value("content", nlohmann::json());
    if (!content.is_string()) return failure(ErrorClass::permanent, "malformed response: no message content");

    InferenceResult r;
    r.result = {
        {"text", content},
        {"usage", body.value("usage", nlohmann::json())},
        {"latency_ms", static_cast<long long>(outcome.latency_seconds * 1000.0 + 0.5)},
        {"finish_reason", choice.value("finish_reason", nlohmann::json())},
        {"model", body.value("model", nlohmann::json())},
    };
    std::string request_id;
    if (auto it = outcome.headers.find("x-request-id"); it != outcome.headers.end())
        request_id = it->second;
    else if (body.contains("id") && body["id"].is_string())
        request_id = body["id"].get<std::string>();
    r.result["provider_request_id"] = request_id.empty() ? nlohmann::json() : nlohmann::json(request_id);
    return r;
}

}  // namespace execguard::runner
