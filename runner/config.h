// runner/config.h: the runner's configuration and how it is loaded.
//
// Precedence, highest first: command-line flag, EXECGUARD_* environment
// variable, TOML config file (--config), built-in default. Every value is
// validated before the runner starts; a bad value is refused with a
// ConfigError whose message starts with the name of the field.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace execguard::runner {

// A refused configuration; what() names the field ("lease: ...").
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// --help or --version was asked for: print text and exit 0.
class HelpRequested : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class LogFormat { logfmt, json };

// One region's inference endpoint (OpenAI-compatible chat completions).
struct RegionEndpoint {
    std::string name;
    std::string base_url;     // requests go to {base_url}/v1/chat/completions
    std::string api_key_env;  // name of the variable holding the key, or ""
    std::string api_key;      // resolved at load time; never logged
    // execution model_id -> model name sent in the request's "model" field.
    std::map<std::string, std::string> model_names;
};

struct Config {
    std::string worker_id;  // default: host name + "-" + pid
    std::string database;   // libpq conninfo or URI; "" = libpq's PG* variables
    std::vector<RegionEndpoint> regions;
    // Models this runner claims; empty = any model. Also the only values
    // the "model" metric label takes (anything else is "other").
    std::vector<std::string> models;
    int concurrency = 10;
    double lease_seconds = 60;
    double heartbeat_seconds = 20;  // default: a third of the lease
    double request_timeout_seconds = 120;
    double connect_timeout_seconds = 10;
    double retry_backoff_base_seconds = 1;
    double retry_backoff_max_seconds = 300;
    int breaker_threshold = 3;
    double breaker_cooldown_seconds = 5;
    double breaker_cooldown_max_seconds = 300;
    double poll_interval_seconds = 5;
    double grace_period_seconds = 30;
    double reconnect_backoff_base_seconds = 0.5;
    double reconnect_backoff_max_seconds = 30;
    std::string metrics_listen = "127.0.0.1:9464";
    LogFormat log_format = LogFormat::logfmt;
    std::string log_level = "info";
    bool pooler_mode = false;  // claim_next(track_owner => false)

    const RegionEndpoint* find_region(const std::string& name) const;
    std::vector<std::string> region_names() const;
};

// Parses a duration: "250ms", "2s", "1.5m", "1h" or a bare number of
// seconds. Throws ConfigError naming `field` when it is not one.
double parse_duration(const std::string& field, const std::string& text);

// Loads the configuration from argv, the environment and the optional
// config file. Throws HelpRequested (with the text to print) or ConfigError.
Config load_config(int argc, const char* const* argv);

// Validates a fully merged Config (also used by load_config); throws
// ConfigError naming the first bad field.
void validate_config(const Config& config);

}  // namespace execguard::runner
