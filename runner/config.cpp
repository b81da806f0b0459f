// runner/config.cpp: flags (CLI11), EXECGUARD_* environment and the TOML
// config file (toml11) merged into one validated Config.
#include "config.h"

#include <unistd.h>

#include <libpq-fe.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>
#include <toml.hpp>

namespace execguard::runner {

namespace {

// Scalar settings, by their config-file key. The flag is "--" + the key
// with '_' as '-', the variable "EXECGUARD_" + the key upper-cased.
struct ScalarSetting {
    const char* key;
    const char* help;
    const char* default_text;  // shown in --help
};

const ScalarSetting kScalarSettings[] = {
    {"worker_id", "Worker id recorded on claimed rows", "host name + '-' + pid"},
    {"database", "libpq conninfo or URI (password never logged)", "libpq's PG* variables"},
    {"concurrency", "Maximum executions in flight", "10"},
    {"lease", "Lease taken by claim_next and renewed by heartbeats", "60s"},
    {"heartbeat_interval", "Heartbeat period for each claimed execution", "a third of the lease"},
    {"request_timeout", "Timeout of one inference request", "120s"},
    {"connect_timeout", "TCP connect timeout of an inference request", "10s"},
    {"retry_backoff_base", "Retry delay after a failed attempt (doubles per attempt)", "1s"},
    {"retry_backoff_max", "Ceiling of the retry delay", "300s"},
    {"breaker_threshold", "Consecutive rate-limit failures that open a region's breaker", "3"},
    {"breaker_cooldown", "First cool-down of an open breaker (doubles on each re-open)", "5s"},
    {"breaker_cooldown_max", "Ceiling of the breaker cool-down", "300s"},
    {"poll_interval", "Claim poll period when no notification arrives", "5s"},
    {"grace_period", "On SIGTERM/SIGINT: time in-flight calls may take to finish", "30s"},
    {"reconnect_backoff_base", "First delay before reconnecting to PostgreSQL", "0.5s"},
    {"reconnect_backoff_max", "Ceiling of the reconnect delay", "30s"},
    {"metrics_listen", "host:port for /metrics and /healthz (port 0 = any free port)", "127.0.0.1:9464"},
    {"log_format", "logfmt or json", "logfmt"},
    {"log_level", "trace, debug, info, warn or error", "info"},
    {"api_key_env", "Variable holding the API key for regions given by --region", "none"},
};

std::string flag_name(const std::string& key) {
    std::string flag = "--" + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    return flag;
}

std::string env_name(const std::string& key) {
    std::string env = "EXECGUARD_" + key;
    std::transform(env.begin(), env.end(), env.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return env;
}

int parse_int(const std::string& field, const std::string& text) {
    try {
        std::size_t used = 0;
        long value = std::stol(text, &used);
        if (used != text.size() || value < INT32_MIN || value > INT32_MAX) throw std::invalid_argument(text);
        return static_cast<int>(value);
    } catch (const std::exception&) {
        throw ConfigError(field + ": '" + text + "' is not an integer");
    }
}

bool parse_bool(const std::string& field, const std::string& text) {
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "1" || lower == "true" || lower == "yes" || lower == "on") return true;
    if (lower == "0" || lower == "false" || lower == "no" || lower == "off" || lower.empty()) return false;
    throw ConfigError(field + ": '" + text + "' is not a boolean");
}

// "NAME=VALUE" -> pair; `field` and `position` (0-based, among the
// setting's values) name it in errors. The text is not shown: a URL may
// carry credentials, and a mistyped entry may be a key.
std::pair<std::string, std::string> split_assignment(const std::string& field, std::size_t position,
                                                     const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
        throw ConfigError(field + "[" + std::to_string(position) + "]: is not NAME=VALUE (the value is not shown)");
    return {text.substr(0, eq), text.substr(eq + 1)};
}

// libpq quotes the part of a conninfo it could not parse, and that can be
// the password or part of it ('invalid percent-encoded token: "S3cret%zz"',
// 'missing "=" after "word"' for an unquoted password with a space). So
// quoted text is hidden, except the punctuation libpq says it expected.
std::string without_quoted_values(const std::string& message) {
    std::string out;
    std::size_t at = 0;
    while (at < message.size()) {
        const auto open = message.find('"', at);
        if (open == std::string::npos) {
            out += message.substr(at);
            break;
        }
        out += message.substr(at, open - at);
        const auto close = message.find('"', open + 1);
        const std::string quoted =
            message.substr(open + 1, close == std::string::npos ? std::string::npos : close - open - 1);
        out += (quoted == "=" || quoted == ":" || quoted == "/" || quoted == "]") ? "\"" + quoted + "\""
                                                                                  : std::string("(hidden)");
        if (close == std::string::npos) break;
        at = close + 1;
    }
    return out;
}

// The first line of a message, without toml11's "[error] " prefix.
std::string first_line(const std::string& message) {
    std::string line = message.substr(0, message.find('\n'));
    if (line.rfind("[error] ", 0) == 0) line.erase(0, 8);
    return line;
}

// A TOML scalar as the text a flag would carry, so one parser serves both.
std::string toml_scalar_text(const std::string& field, const toml::value& value) {
    if (value.is_string()) return value.as_string().str;
    if (value.is_integer()) return std::to_string(value.as_integer());
    if (value.is_floating()) {
        std::ostringstream out;
        out << value.as_floating();
        return out.str();
    }
    if (value.is_boolean()) return value.as_boolean() ? "true" : "false";
    throw ConfigError(field + ": expected a string, number or boolean");
}

std::string default_worker_id() {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "runner");
    return std::string(host) + "-" + std::to_string(getpid());
}

// Reads the config file into `file_values` (scalars by key), regions and models.
void read_config_file(const std::string& path, std::map<std::string, std::string>& file_values,
                      std::vector<RegionEndpoint>& regions, std::vector<std::string>& models) {
    toml::value root;
    // toml11's messages go on to quote the offending line, which may be the
    // `database` line with its password: only what is wrong, and where.
    try {
        root = toml::parse(path);
    } catch (const toml::exception& e) {
        throw ConfigError("config: cannot read " + path + ": line " + std::to_string(e.location().line()) + ": " +
                          first_line(e.what()) + " (the line is not shown)");
    } catch (const std::exception& e) {
        throw ConfigError("config: cannot read " + path + ": " + first_line(e.what()));
    }
    if (!root.is_table()) throw ConfigError("config: " + path + " is not a TOML table");
    std::set<std::string> scalar_keys;
    for (const auto& s : kScalarSettings) scalar_keys.insert(s.key);
    scalar_keys.insert("pooler_mode");
    for (const auto& [key, value] : root.as_table()) {
        if (key == "models") {
            if (!value.is_array()) throw ConfigError("models: expected an array of model ids");
            for (const auto& m : value.as_array()) {
                if (!m.is_string()) throw ConfigError("models: expected an array of model ids");
                models.push_back(m.as_string().str);
            }
        } else if (key == "regions") {
            if (!value.is_table()) throw ConfigError("regions: expected [regions.NAME] tables");
            for (const auto& [name, region_value] : value.as_table()) {
                const std::string field = "regions." + name;
                if (!region_value.is_table()) throw ConfigError(field + ": expected a table");
                RegionEndpoint region;
                region.name = name;
                for (const auto& [rkey, rvalue] : region_value.as_table()) {
                    const std::string rfield = field + "." + rkey;
                    if (rkey == "base_url" || rkey == "api_key_env") {
                        if (!rvalue.is_string()) throw ConfigError(rfield + ": expected a string");
                        (rkey == "base_url" ? region.base_url : region.api_key_env) = rvalue.as_string().str;
                    } else if (rkey == "models") {
                        if (!rvalue.is_table()) throw ConfigError(rfield + ": expected a table of model_id = \"name\"");
                        for (const auto& [model_id, model_name] : rvalue.as_table()) {
                            if (!model_name.is_string())
                                throw ConfigError(rfield + "." + model_id + ": expected a string");
                            region.model_names[model_id] = model_name.as_string().str;
                        }
                    } else {
                        throw ConfigError(rfield + ": unknown key (expected base_url, api_key_env, models)");
                    }
                }
                regions.push_back(std::move(region));
            }
        } else if (scalar_keys.count(key)) {
            file_values[key] = toml_scalar_text(key, value);
        } else {
            throw ConfigError(key + ": unknown key in " + path);
        }
    }
}

}  // namespace

const RegionEndpoint* Config::find_region(const std::string& name) const {
    for (const auto& r : regions)
        if (r.name == name) return &r;
    return nullptr;
}

std::vector<std::string> Config::region_names() const {
    std::vector<std::string> names;
    for (const auto& r : regions) names.push_back(r.name);
    return names;
}

double parse_duration(const std::string& field, const std::string& text) {
    const std::string bad = field + ": '" + text + "' is not a duration (use 250ms, 2s, 1.5m, 1h or seconds)";
    if (text.empty()) throw ConfigError(bad);
    std::size_t used = 0;
    double number = 0;
    try {
        number = std::stod(text, &used);
    } catch (const std::exception&) {
        throw ConfigError(bad);
    }
    const std::string unit = text.substr(used);
    double scale = 0;
    if (unit.empty() || unit == "s")
        scale = 1;
    else if (unit == "ms")
        scale = 0.001;
    else if (unit == "m" || unit == "min")
        scale = 60;
    else if (unit == "h")
        scale = 3600;
    else
        throw ConfigError(bad);
    const double seconds = number * scale;
    if (!std::isfinite(seconds) || seconds < 0) throw ConfigError(field + ": must not be negative");
    return seconds;
}

void validate_config(const Config& c) {
    if (c.worker_id.empty()) throw ConfigError("worker_id: must not be empty");
    if (c.worker_id.size() > 200) throw ConfigError("worker_id: longer than 200 characters");
    if (!c.database.empty()) {
        char* error = nullptr;
        PQconninfoOption* options = PQconninfoParse(c.database.c_str(), &error);
        if (options == nullptr) {
            std::string message = error ? error : "invalid conninfo";
            PQfreemem(error);
            while (!message.empty() && message.back() == '\n') message.pop_back();
            throw ConfigError("database: " + without_quoted_values(message));
        }
        PQconninfoFree(options);
    }
    if (c.regions.empty())
        throw ConfigError("regions: at least one region is required (--region NAME=BASE_URL or [regions.NAME])");
    std::set<std::string> seen;
    for (const auto& r : c.regions) {
        const std::string field = "regions." + r.name;
        if (r.name.empty()) throw ConfigError("regions: a region name is empty");
        if (!seen.insert(r.name).second) throw ConfigError(field + ": configured twice");
        // Neither value is shown: a URL may carry credentials, and a key given
        // by mistake for the variable's name would be printed.
        if (r.base_url.rfind("http://", 0) != 0 && r.base_url.rfind("https://", 0) != 0)
            throw ConfigError(field + ".base_url: must start with http:// or https://");
        if (!r.api_key_env.empty() && std::getenv(r.api_key_env.c_str()) == nullptr)
            throw ConfigError(field +
                              ".api_key_env: names an environment variable that is not set (the name is not shown, "
                              "in case it is a key: give the variable's name, not its value)");
    }
    for (const auto& m : c.models)
        if (m.empty()) throw ConfigError("models: a model id is empty");
    if (c.concurrency < 1 || c.concurrency > 10000)
        throw ConfigError("concurrency: must be between 1 and 10000 (got " + std::to_string(c.concurrency) + ")");
    if (c.lease_seconds < 1) throw ConfigError("lease: must be at least 1s");
    if (c.heartbeat_seconds <= 0) throw ConfigError("heartbeat_interval: must be positive");
    if (c.heartbeat_seconds >= c.lease_seconds) throw ConfigError("heartbeat_interval: must be shorter than the lease");
    if (c.request_timeout_seconds <= 0) throw ConfigError("request_timeout: must be positive");
    if (c.connect_timeout_seconds <= 0) throw ConfigError("connect_timeout: must be positive");
    if (c.retry_backoff_base_seconds <= 0) throw ConfigError("retry_backoff_base: must be positive");
    if (c.retry_backoff_max_seconds < c.retry_backoff_base_seconds)
        throw ConfigError("retry_backoff_max: must not be less than retry_backoff_base");
    if (c.breaker_threshold < 1) throw ConfigError("breaker_threshold: must be at least 1");
    if (c.breaker_cooldown_seconds <= 0) throw ConfigError("breaker_cooldown: must be positive");
    if (c.breaker_cooldown_max_seconds < c.breaker_cooldown_seconds)
        throw ConfigError("breaker_cooldown_max: must not be less than breaker_cooldown");
    if (c.poll_interval_seconds <= 0) throw ConfigError("poll_interval: must be positive");
    if (c.reconnect_backoff_base_seconds <= 0) throw ConfigError("reconnect_backoff_base: must be positive");
    if (c.reconnect_backoff_max_seconds < c.reconnect_backoff_base_seconds)
        throw ConfigError("reconnect_backoff_max: must not be less than reconnect_backoff_base");
    const auto colon = c.metrics_listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == c.metrics_listen.size())
        throw ConfigError("metrics_listen: expected host:port (got '" + c.metrics_listen + "')");
    const std::string port = c.metrics_listen.substr(colon + 1);
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) || std::stol(port) > 65535)
        throw ConfigError("metrics_listen: '" + port + "' is not a port");
    static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
    if (!levels.count(c.log_level)) throw ConfigError("log_level: must be one of trace, debug, info, warn, error");
}

Config load_config(int argc, const char* const* argv) {
    CLI::App app{
        "execguard-runner: executes LLM inference only for executions it has claimed from "
        "PostgreSQL (execguard), and exports Prometheus metrics.\n"
        "Precedence: flag > EXECGUARD_* variable > config file > default.\n"
        "Signals: SIGTERM/SIGINT stop claiming, let in-flight calls finish within "
        "--grace-period, release the rest and exit 0; a second SIGTERM/SIGINT ends the grace "
        "period at once; SIGHUP logs the runner's state (no reload).",
        "execguard-runner"};
    app.set_version_flag("--version", "execguard-runner 0.1.0");
    app.get_formatter()->column_width(40);

    std::string config_path;
    app.add_option("-c,--config", config_path, "TOML config file (keys as in docs/runner.md)")
        ->envname("EXECGUARD_CONFIG");

    std::map<std::string, std::string> flag_values;
    std::map<std::string, CLI::Option*> flag_options;
    for (const auto& s : kScalarSettings) {
        flag_options[s.key] = app.add_option(flag_name(s.key), flag_values[s.key],
                                             std::string(s.help) + " [default: " + s.default_text + "]")
                                  ->envname(env_name(s.key))
                                  ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
    bool pooler_mode_flag = false;
    CLI::Option* pooler_option =
        app.add_flag("--pooler-mode", pooler_mode_flag,
                     "Behind a transaction-mode pooler (PgBouncer): claim without tracking the owner "
                     "backend, so rescue waits for the lease; no LISTEN: new work is found by polling and "
                     "cancellations by the heartbeat")
            ->envname("EXECGUARD_POOLER_MODE");
    std::vector<std::string> region_flags;
    CLI::Option* region_option = app.add_option("--region", region_flags,
                                                "Region served and its endpoint, NAME=BASE_URL (repeatable; "
                                                "EXECGUARD_REGIONS is comma-separated)")
                                     ->envname("EXECGUARD_REGIONS")
                                     ->delimiter(',');
    std::vector<std::string> model_flags;
    CLI::Option* model_option =
        app.add_option("--model", model_flags,
                       "Model id to claim (repeatable; default: any model). Only these appear as "
                       "the metrics' model label")
            ->envname("EXECGUARD_MODELS")
            ->delimiter(',');
    std::vector<std::string> model_map_flags;
    app.add_option("--model-name", model_map_flags,
                   "MODEL_ID=NAME: model name to send for a model id, for regions given by --region "
                   "(repeatable)")
        ->envname("EXECGUARD_MODEL_NAMES")
        ->delimiter(',');

    // Unexpected arguments are reported here, not by CLI11, which would print
    // them all: one may be a key typed after a flag that does not exist.
    app.allow_extras();
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        throw HelpRequested(app.help());
    } catch (const CLI::CallForAllHelp&) {
        throw HelpRequested(app.help("", CLI::AppFormatMode::All));
    } catch (const CLI::CallForVersion&) {
        throw HelpRequested("execguard-runner 0.1.0\n");
    } catch (const CLI::ParseError& e) {
        throw ConfigError(std::string("command line: ") + e.what());
    }
    if (!app.remaining().empty()) {
        std::string flags;
        std::size_t values = 0;
        for (const auto& argument : app.remaining()) {
            if (argument.size() > 1 && argument[0] == '-') {
                flags += (flags.empty() ? "" : ", ") + argument.substr(0, argument.find('='));
                if (argument.find('=') != std::string::npos) ++values;
            } else {
                ++values;
            }
        }
        throw ConfigError("command line: unexpected arguments: " + (flags.empty() ? std::string("none") : flags) +
                          " and " + std::to_string(values) + " value(s) (values are not shown)");
    }

    std::map<std::string, std::string> file_values;
    std::vector<RegionEndpoint> regions;
    std::vector<std::string> file_models;
    if (!config_path.empty()) read_config_file(config_path, file_values, regions, file_models);

    // value(key): flag or variable if given, else the file's, else nullopt.
    auto value = [&](const std::string& key) -> std::optional<std::string> {
        if (flag_options.at(key)->count() > 0) return flag_values.at(key);
        auto it = file_values.find(key);
        if (it != file_values.end()) return it->second;
        return std::nullopt;
    };

    Config config;
    config.worker_id = value("worker_id").value_or(default_worker_id());
    config.database = value("database").value_or("");
    if (auto v = value("concurrency")) config.concurrency = parse_int("concurrency", *v);
    if (auto v = value("lease")) config.lease_seconds = parse_duration("lease", *v);
    config.heartbeat_seconds = config.lease_seconds / 3;
    if (auto v = value("heartbeat_interval")) config.heartbeat_seconds = parse_duration("heartbeat_interval", *v);
    if (auto v = value("request_timeout")) config.request_timeout_seconds = parse_duration("request_timeout", *v);
    if (auto v = value("connect_timeout")) config.connect_timeout_seconds = parse_duration("connect_timeout", *v);
    if (auto v = value("retry_backoff_base"))
        config.retry_backoff_base_seconds = parse_duration("retry_backoff_base", *v);
    if (auto v = value("retry_backoff_max")) config.retry_backoff_max_seconds = parse_duration("retry_backoff_max", *v);
    if (auto v = value("breaker_threshold")) config.breaker_threshold = parse_int("breaker_threshold", *v);
    if (auto v = value("breaker_cooldown")) config.breaker_cooldown_seconds = parse_duration("breaker_cooldown", *v);
    if (auto v = value("breaker_cooldown_max"))
        config.breaker_cooldown_max_seconds = parse_duration("breaker_cooldown_max", *v);
    if (auto v = value("poll_interval")) config.poll_interval_seconds = parse_duration("poll_interval", *v);
    if (auto v = value("grace_period")) config.grace_period_seconds = parse_duration("grace_period", *v);
    if (auto v = value("reconnect_backoff_base"))
        config.reconnect_backoff_base_seconds = parse_duration("reconnect_backoff_base", *v);
    if (auto v = value("reconnect_backoff_max"))
        config.reconnect_backoff_max_seconds = parse_duration("reconnect_backoff_max", *v);
    if (auto v = value("metrics_listen")) config.metrics_listen = *v;
    if (auto v = value("log_format")) {
        if (*v == "logfmt")
            config.log_format = LogFormat::logfmt;
        else if (*v == "json")
            config.log_format = LogFormat::json;
        else
            throw ConfigError("log_format: must be logfmt or json (got '" + *v + "')");
    }
    if (auto v = value("log_level")) config.log_level = *v;
    if (pooler_option->count() > 0)
        config.pooler_mode = pooler_mode_flag;
    else if (file_values.count("pooler_mode"))
        config.pooler_mode = parse_bool("pooler_mode", file_values["pooler_mode"]);

    // Regions from --region override the file's base_url of the same name and
    // add new ones; --api-key-env and --model-name apply to those regions.
    const std::string default_key_env = value("api_key_env").value_or("");
    std::map<std::string, std::string> flag_model_names;
    for (std::size_t i = 0; i < model_map_flags.size(); ++i)
        flag_model_names.insert(split_assignment("model_name", i, model_map_flags[i]));
    if (region_option->count() > 0) {
        for (std::size_t i = 0; i < region_flags.size(); ++i) {
            auto [name, url] = split_assignment("region", i, region_flags[i]);
            auto it = std::find_if(regions.begin(), regions.end(), [&](const auto& e) { return e.name == name; });
            if (it == regions.end()) {
                RegionEndpoint region;
                region.name = name;
                regions.push_back(region);
                it = std::prev(regions.end());
            }
            it->base_url = url;
            if (it->api_key_env.empty()) it->api_key_env = default_key_env;
            for (const auto& [id, model_name] : flag_model_names) it->model_names.emplace(id, model_name);
        }
    }
    for (auto& r : regions) {
        while (!r.base_url.empty() && r.base_url.back() == '/') r.base_url.pop_back();
    }
    config.regions = std::move(regions);
    config.models = model_option->count() > 0 ? model_flags : file_models;

    validate_config(config);
    for (auto& r : config.regions)
        if (!r.api_key_env.empty()) r.api_key = std::getenv(r.api_key_env.c_str());
    return config;
}

}  // namespace execguard::runner
