// runner/log.h: one line per event, logfmt or JSON, through spdlog.
//
// Callers pass an event name and fields; secrets are never passed (the API
// key lives only in RegionEndpoint::api_key and the request headers, the
// database password only inside libpq).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "config.h"

namespace execguard::runner::log {

enum class Level { debug, info, warn, error };

using Fields = std::vector<std::pair<const char*, nlohmann::json>>;

// Sets up the stderr logger; call once before any event().
void init(LogFormat format, const std::string& level);

void event(Level level, const char* name, const Fields& fields = {});

inline void info(const char* name, const Fields& fields = {}) { event(Level::info, name, fields); }
inline void warn(const char* name, const Fields& fields = {}) { event(Level::warn, name, fields); }
inline void error(const char* name, const Fields& fields = {}) { event(Level::error, name, fields); }
inline void debug(const char* name, const Fields& fields = {}) { event(Level::debug, name, fields); }

// Formats the fields part of a line (exposed for unit tests).
std::string format_fields(LogFormat format, const char* name, const Fields& fields);

}  // namespace execguard::runner::log
