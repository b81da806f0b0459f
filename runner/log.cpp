// runner/log.cpp: spdlog provides the sink, levels and thread safety; the
// line body (logfmt or JSON) is formatted here so both formats carry the
// same fields.
#include "log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "utf8.h"

namespace execguard::runner::log {

namespace {

LogFormat g_format = LogFormat::logfmt;  // set once by init(), before threads start

bool needs_quotes(const std::string& s) {
    if (s.empty()) return true;
    for (char c : s)
        if (c == ' ' || c == '=' || c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return true;
    return false;
}

// A log line never throws and is always UTF-8: values carry text from the
// provider and the database (an error body, a server message), and dump()
// throws on an invalid byte (type_error.316), which used to end the runner.
std::string dump(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string logfmt_value(const nlohmann::json& value) {
    std::string text = value.is_string() ? to_valid_utf8(value.get_ref<const std::string&>()) : dump(value);
    if (!needs_quotes(text)) return text;
    // JSON string escaping is a valid logfmt quoting.
    return dump(nlohmann::json(text));
}

spdlog::level::level_enum to_spdlog(Level level) {
    switch (level) {
        case Level::debug:
            return spdlog::level::debug;
        case Level::info:
            return spdlog::level::info;
        case Level::warn:
            return spdlog::level::warn;
        case Level::error:
            return spdlog::level::err;
    }
    return spdlog::level::info;
}

}  // namespace

std::string format_fields(LogFormat format, const char* name, const Fields& fields) {
    if (format == LogFormat::json) {
        // The pattern supplies '{"ts":...,"level":...,'; this part closes the object.
        std::string out = "\"event\":" + dump(nlohmann::json(name));
        for (const auto& [key, value] : fields) {
            out += ",";
            out += dump(nlohmann::json(key));
            out += ":";
            out += dump(value);
        }
        return out + "}";
    }
    std::string out = std::string("event=") + name;
    for (const auto& [key, value] : fields) {
        out += " ";
        out += key;
        out += "=";
        out += logfmt_value(value);
    }
    return out;
}

void init(LogFormat format, const std::string& level) {
    g_format = format;
    auto logger = spdlog::stderr_logger_mt("execguard-runner");
    if (format == LogFormat::json)
        logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v)", spdlog::pattern_time_type::utc);
    else
        logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
}

void event(Level level, const char* name, const Fields& fields) {
    auto lvl = to_spdlog(level);
    if (!spdlog::default_logger_raw()->should_log(lvl)) return;
    spdlog::default_logger_raw()->log(lvl, "{}", format_fields(g_format, name, fields));
}

}  // namespace execguard::runner::log
