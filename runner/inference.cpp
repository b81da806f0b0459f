// runner/inference.cpp
#include "inference.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <utility>
#include <vector>

#include "utf8.h"

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

// The `error` member of a 200 error body, as text (not yet repaired).
std::string error_text(const nlohmann::json& error) {
    if (error.is_string()) return error.get_ref<const std::string&>();
    if (error.is_object()) {
        auto message = error.find("message");
        if (message != error.end() && message->is_string()) return message->get_ref<const std::string&>();
    }
    if (nested_deeper_than(error, kMaxProviderJsonDepth))
        return "(an error value nested deeper than " + std::to_string(kMaxProviderJsonDepth) + " levels)";
    return error.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

InferenceResult failure(ErrorClass c, const std::string& message) {
    InferenceResult r;
    r.error_class = c;
    r.error_message = excerpt(message, 1000);
    return r;
}

std::string count_of(std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

// A value of the provider's JSON as it can be stored: U+0000 in strings and
// keys becomes U+FFFD (the parser has already refused invalid UTF-8 inside
// strings). The caller has checked the depth, which bounds the recursion.
nlohmann::json storable_json(const nlohmann::json& value, TextRepairs& repairs, std::size_t& dropped_members) {
    if (value.is_string()) return storable_text(value.get_ref<const std::string&>(), &repairs);
    if (value.is_array()) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& element : value) out.push_back(storable_json(element, repairs, dropped_members));
        return out;
    }
    if (value.is_object()) {
        nlohmann::json out = nlohmann::json::object();
        for (const auto& [key, member] : value.items()) {
            std::string stored_key = storable_text(key, &repairs);
            // "a<NUL>" and "a<U+FFFD>" would become one key: keep the first
            // (in key order) and say so, never merge silently.
            if (out.contains(stored_key)) {
                ++dropped_members;
                continue;
            }
            out[std::move(stored_key)] = storable_json(member, repairs, dropped_members);
        }
        return out;
    }
    return value;  // numbers, booleans, null: jsonb takes what the parser took
}

// object[key] as stored in the result (null when absent). What had to change
// is noted in altered[key].
nlohmann::json provider_value(const nlohmann::json& object, const char* key, nlohmann::json& altered) {
    auto it = object.find(key);
    if (it == object.end()) return nullptr;
    if (nested_deeper_than(*it, kMaxProviderJsonDepth)) {
        altered[key] = "nested deeper than " + std::to_string(kMaxProviderJsonDepth) + " levels; stored as null";
        return nullptr;
    }
    TextRepairs repairs;
    std::size_t dropped_members = 0;
    nlohmann::json stored = storable_json(*it, repairs, dropped_members);
    std::string note = describe(repairs);
    if (dropped_members != 0)
        note += (note.empty() ? "" : "; ") + count_of(dropped_members, "member", "members") +
                " dropped: its key became another's after the replacement";
    if (!note.empty()) altered[key] = note;
    return stored;
}

// A provider string (content, request id) as stored, noting any change.
std::string provider_text(const std::string& text, const char* field, nlohmann::json& altered) {
    TextRepairs repairs;
    std::string stored = storable_text(text, &repairs);
    if (repairs.any()) altered[field] = describe(repairs);
    return stored;
}

// "[json.exception.parse_error.101] parse error at ..." -> "parse error at ...".
std::string parse_error_reason(const char* what) {
    std::string reason = what;
    if (!reason.empty() && reason[0] == '[') {
        const auto end = reason.find("] ");
        if (end != std::string::npos) reason.erase(0, end + 2);
    }
    return reason;
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
        case ErrorClass::response_too_large:
            return "response_too_large";
        case ErrorClass::result_refused:
            return "result_refused";
    }
    return "permanent";
}

bool is_retryable(ErrorClass c) {
    switch (c) {
        case ErrorClass::rate_limit:
        case ErrorClass::server_error:
        case ErrorClass::timeout:
        case ErrorClass::network:
            return true;
        case ErrorClass::none:
        case ErrorClass::permanent:
        case ErrorClass::response_too_large:
        case ErrorClass::result_refused:
            return false;
    }
    return false;
}

bool nested_deeper_than(const nlohmann::json& value, int max_depth) {
    std::vector<std::pair<const nlohmann::json*, int>> pending{{&value, 0}};
    while (!pending.empty()) {
        const auto [node, depth] = pending.back();
        pending.pop_back();
        if (!node->is_structured()) continue;
        if (depth + 1 > max_depth) return true;
        for (const auto& child : *node) pending.emplace_back(&child, depth + 1);
    }
    return false;
}

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
            return std::min(std::stod(v), kMaxRetryAfterSeconds);
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    std::tm tm{};
    // IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
    if (strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return std::nullopt;
    const std::time_t when = timegm(&tm);
    return std::clamp(std::difftime(when, now), 0.0, kMaxRetryAfterSeconds);
}

InferenceResult interpret_response(const HttpOutcome& outcome) {
    // The class is not repeated in the message: the caller writes "class: message".
    if (outcome.transport == TransportError::timeout) return failure(ErrorClass::timeout, outcome.transport_message);
    if (outcome.transport == TransportError::network) return failure(ErrorClass::network, outcome.transport_message);

    std::optional<double> retry_after;
    if (auto it = outcome.headers.find("retry-after"); it != outcome.headers.end())
        retry_after = parse_retry_after(it->second, std::time(nullptr));

    const std::string status_text = "HTTP " + std::to_string(outcome.status);
    if (outcome.transport == TransportError::response_too_large && outcome.status >= 200 && outcome.status < 300)
        return failure(ErrorClass::response_too_large,
                       status_text + ": the response body is larger than " +
                           std::to_string(kMaxResponseBodyBytes / (1024 * 1024)) +
                           " MiB; the model answered, so the request is not sent again");
    // An error status with an oversized body did no work: classified by its
    // status, on the part that was read.
    if (outcome.status != 200) {
        const std::string message = status_text + ": " + excerpt(outcome.body, kErrorBodyExcerptBytes);
        InferenceResult r;
        if (outcome.status == 429 || mentions_rate_limit(outcome.body))
            r = failure(ErrorClass::rate_limit, message);
        else if (outcome.status >= 500)
            r = failure(ErrorClass::server_error, message);
        else if (outcome.status == 408)
            r = failure(ErrorClass::timeout, message);
        else
            r = failure(ErrorClass::permanent, message);
        r.retry_after_seconds = retry_after;
        return r;
    }

    // JSON must be UTF-8 and nlohmann refuses a body that is not. A model
    // cut inside a multibyte token (a real provider bug) would lose a paid
    // answer, so ill-formed bytes become U+FFFD and the result says so.
    TextRepairs body_repairs;
    std::string repaired_body;
    if (!is_valid_utf8(outcome.body)) repaired_body = to_valid_utf8(outcome.body, &body_repairs);
    const std::string& body_text = body_repairs.any() ? repaired_body : outcome.body;

    nlohmann::json body;
    try {
        body = nlohmann::json::parse(body_text);
    } catch (const nlohmann::json::exception& e) {
        return failure(ErrorClass::permanent, "malformed response: not JSON (" + parse_error_reason(e.what()) +
                                                  "): " + excerpt(body_text, 200));
    }
    if (!body.is_object())
        return failure(ErrorClass::permanent, "malformed response: not a JSON object: " + excerpt(body_text, 200));

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
    const auto& message = choice["message"];
    auto content = message.find("content");
    if (content == message.end() || !content->is_string())
        return failure(ErrorClass::permanent, "malformed response: no message content");

    // Every string below is valid UTF-8 (parsed) but may hold U+0000, which
    // jsonb refuses (22P05): it becomes U+FFFD, noted in "altered".
    nlohmann::json altered = nlohmann::json::object();
    if (body_repairs.any()) altered["response"] = describe(body_repairs);
    InferenceResult r;
    r.result = {
        {"text", provider_text(content->get_ref<const std::string&>(), "text", altered)},
        {"usage", provider_value(body, "usage", altered)},
        {"latency_ms", static_cast<long long>(outcome.latency_seconds * 1000.0 + 0.5)},
        {"finish_reason", provider_value(choice, "finish_reason", altered)},
        {"model", provider_value(body, "model", altered)},
    };
    std::string request_id;
    if (auto it = outcome.headers.find("x-request-id"); it != outcome.headers.end()) {
        // A header value may hold any byte a provider sends.
        request_id = provider_text(it->second, "provider_request_id", altered);
    } else if (auto id = body.find("id"); id != body.end() && id->is_string()) {
        request_id = provider_text(id->get_ref<const std::string&>(), "provider_request_id", altered);
    }
    r.result["provider_request_id"] = request_id.empty() ? nlohmann::json() : nlohmann::json(request_id);
    if (!altered.empty()) r.result["altered"] = std::move(altered);
    return r;
}

}  // namespace execguard::runner
