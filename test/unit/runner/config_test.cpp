// test/unit/runner/config_test.cpp: flags, environment and TOML file merge
// into one Config; every refusal names its field.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "config.h"

namespace execguard::runner {
namespace {

Config load(std::vector<std::string> args) {
    args.insert(args.begin(), "execguard-runner");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return load_config(static_cast<int>(argv.size()), argv.data());
}

// Expects a ConfigError whose message starts with `field`.
void expect_refused(std::vector<std::string> args, const std::string& field) {
    try {
        load(std::move(args));
        FAIL() << "accepted, expected refusal naming " << field;
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()).rfind(field, 0), 0u) << e.what();
    }
}

std::string write_file(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + name;
    std::ofstream(path) << text;
    return path;
}

class ConfigTest : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char* v : {"EXECGUARD_CONCURRENCY", "EXECGUARD_REGIONS", "EXECGUARD_LEASE", "EXECGUARD_CONFIG",
                              "EXECGUARD_TEST_KEY"})
            unsetenv(v);
    }
};

TEST_F(ConfigTest, DefaultsMatchTheIssue) {
    Config c = load({"--region", "us-east=http://localhost:8000"});
    EXPECT_EQ(c.concurrency, 10);
    EXPECT_DOUBLE_EQ(c.lease_seconds, 60);
    EXPECT_DOUBLE_EQ(c.heartbeat_seconds, 20);
    EXPECT_DOUBLE_EQ(c.request_timeout_seconds, 120);
    EXPECT_EQ(c.metrics_listen, "127.0.0.1:9464");
    EXPECT_FALSE(c.worker_id.empty());
    ASSERT_EQ(c.regions.size(), 1u);
    EXPECT_EQ(c.regions[0].name, "us-east");
    EXPECT_EQ(c.regions[0].base_url, "http://localhost:8000");
}

TEST_F(ConfigTest, HeartbeatDefaultsToAThirdOfTheLease) {
    Config c = load({"--region", "r=http://h", "--lease", "3s"});
    EXPECT_DOUBLE_EQ(c.heartbeat_seconds, 1);
}

TEST_F(ConfigTest, EnvironmentIsUsedAndFlagsWin) {
    setenv("EXECGUARD_CONCURRENCY", "4", 1);
    setenv("EXECGUARD_REGIONS", "a=http://a,b=http://b/", 1);
    Config c = load({});
    EXPECT_EQ(c.concurrency, 4);
    ASSERT_EQ(c.regions.size(), 2u);
    EXPECT_EQ(c.regions[1].base_url, "http://b");  // trailing slash trimmed
    c = load({"--concurrency", "7"});
    EXPECT_EQ(c.concurrency, 7);
}

TEST_F(ConfigTest, ARepeatedFlagTakesTheLastValue) {
    Config c = load({"--region", "r=http://h", "--grace-period", "5s", "--grace-period", "0.5s"});
    EXPECT_DOUBLE_EQ(c.grace_period_seconds, 0.5);
}

TEST_F(ConfigTest, TomlFileProvidesRegionsAndFlagsOverrideIt) {
    setenv("EXECGUARD_TEST_KEY", "secret", 1);
    const auto path = write_file("runner_ok.toml", R"(
worker_id = "w1"
concurrency = 3
lease = "30s"
models = ["llama3.2-1b"]
[regions.us-east]
base_url = "http://us"
api_key_env = "EXECGUARD_TEST_KEY"
[regions.us-east.models]
"llama3.2-1b" = "meta-llama/Llama-3.2-1B-Instruct"
)");
    Config c = load({"--config", path, "--concurrency", "5"});
    EXPECT_EQ(c.worker_id, "w1");
    EXPECT_EQ(c.concurrency, 5);
    EXPECT_DOUBLE_EQ(c.lease_seconds, 30);
    ASSERT_EQ(c.regions.size(), 1u);
    EXPECT_EQ(c.regions[0].api_key, "secret");
    EXPECT_EQ(c.regions[0].model_names.at("llama3.2-1b"), "meta-llama/Llama-3.2-1B-Instruct");
    EXPECT_EQ(c.models, std::vector<std::string>{"llama3.2-1b"});
}

TEST_F(ConfigTest, RefusalsNameTheField) {
    expect_refused({}, "regions");
    expect_refused({"--region", "r=ftp://x"}, "regions.r.base_url");
    expect_refused({"--region", "nourl"}, "region");
    expect_refused({"--region", "r=http://h", "--concurrency", "0"}, "concurrency");
    expect_refused({"--region", "r=http://h", "--concurrency", "ten"}, "concurrency");
    expect_refused({"--region", "r=http://h", "--lease", "5x"}, "lease");
    expect_refused({"--region", "r=http://h", "--lease", "6s", "--heartbeat-interval", "6s"}, "heartbeat_interval");
    expect_refused({"--region", "r=http://h", "--metrics-listen", "nohost"}, "metrics_listen");
    expect_refused({"--region", "r=http://h", "--log-format", "xml"}, "log_format");
    expect_refused({"--region", "r=http://h", "--database", "host='unterminated"}, "database");
    expect_refused({"--region", "r=http://h", "--api-key-env", "EXECGUARD_TEST_KEY"}, "regions.r.api_key_env");
    expect_refused({"--region", "r=http://h", "--breaker-cooldown", "10s", "--breaker-cooldown-max", "1s"},
                   "breaker_cooldown_max");
    expect_refused({"--no-such-flag"}, "command line");
}

TEST_F(ConfigTest, TomlRefusalsNameTheKey) {
    expect_refused({"--config", write_file("bad1.toml", "concurency = 3\n")}, "concurency");
    expect_refused({"--config", write_file("bad2.toml", "[regions.x]\nbase_url = 3\n")}, "regions.x.base_url");
    expect_refused({"--config", write_file("bad3.toml", "[regions.x]\nbase_url = \"http://x\"\nurl = \"y\"\n")},
                   "regions.x.url");
    expect_refused({"--config", write_file("bad4.toml", "this is not toml")}, "config");
    expect_refused({"--config", "/nonexistent/runner.toml"}, "config");
}

// Expects a ConfigError naming `field` that does not contain `secret`.
void expect_refused_without(std::vector<std::string> args, const std::string& field, const std::string& secret) {
    try {
        load(std::move(args));
        FAIL() << "accepted, expected refusal naming " << field;
    } catch (const ConfigError& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind(field, 0), 0u) << message;
        EXPECT_EQ(message.find(secret), std::string::npos) << message;
    }
}

TEST_F(ConfigTest, RefusalsNeverPrintASecret) {
    // libpq quotes the token it cannot parse.
    expect_refused_without({"--region", "r=http://h", "--database", "postgresql://u:S3cret%zzPW@h/db"}, "database",
                           "S3cret");
    // An unquoted password with a space: libpq names the word after it.
    expect_refused_without({"--region", "r=http://h", "--database", "host=h password=S3cret PWtail"}, "database",
                           "PWtail");
    // A key given where the variable's name belongs.
    expect_refused_without({"--region", "r=http://h", "--api-key-env", "sk-live-S3cretKey"}, "regions.r.api_key_env",
                           "S3cretKey");
    // A URL with credentials and a wrong scheme; an entry that is not NAME=URL.
    expect_refused_without({"--region", "r=ftp://u:S3cret@h"}, "regions.r.base_url", "S3cret");
    expect_refused_without({"--region", "u:S3cret@h"}, "region[0]", "S3cret");
    // A key typed after a flag that does not exist.
    expect_refused_without({"--region", "r=http://h", "--api-key", "sk-S3cretKey"}, "command line", "S3cret");
    expect_refused_without({"--region", "r=http://h", "--api-key=sk-S3cretKey"}, "command line", "S3cret");
}

TEST_F(ConfigTest, ATomlSyntaxErrorNamesTheLineButDoesNotPrintIt) {
    const std::string path =
        write_file("secret.toml", "worker_id = \"a\"\ndatabase = \"postgres://u:S3cretPW@h/db\nconcurrency = 3\n");
    expect_refused_without({"--config", path}, "config", "S3cret");
    try {
        load({"--config", path});
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
}

TEST_F(ConfigTest, ConninfoErrorsKeepWhatIsNotSecret) {
    try {
        load({"--region", "r=http://h", "--database", "host=h password"});
        FAIL();
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("missing \"=\""), std::string::npos) << e.what();
    }
}

TEST_F(ConfigTest, AMetricsPortTooLongForANumberIsRefusedNotACrash) {
    expect_refused({"--region", "r=http://h", "--metrics-listen", "127.0.0.1:99999999999999999999"}, "metrics_listen");
}

TEST_F(ConfigTest, HelpListsEveryOption) {
    try {
        load({"--help"});
        FAIL() << "--help did not ask for help";
    } catch (const HelpRequested& help) {
        const std::string text = help.what();
        for (const char* flag : {"--config",
                                 "--worker-id",
                                 "--database",
                                 "--region",
                                 "--model",
                                 "--model-name",
                                 "--api-key-env",
                                 "--concurrency",
                                 "--lease",
                                 "--heartbeat-interval",
                                 "--request-timeout",
                                 "--connect-timeout",
                                 "--retry-backoff-base",
                                 "--retry-backoff-max",
                                 "--breaker-threshold",
                                 "--breaker-cooldown",
                                 "--breaker-cooldown-max",
                                 "--poll-interval",
                                 "--grace-period",
                                 "--reconnect-backoff-base",
                                 "--reconnect-backoff-max",
                                 "--metrics-listen",
                                 "--log-format",
                                 "--log-level",
                                 "--pooler-mode",
                                 "SIGTERM",
                                 "SIGHUP"})
            EXPECT_NE(text.find(flag), std::string::npos) << flag;
    }
}

TEST(ParseDuration, AcceptsUnitsAndBareSeconds) {
    EXPECT_DOUBLE_EQ(parse_duration("f", "250ms"), 0.25);
    EXPECT_DOUBLE_EQ(parse_duration("f", "2s"), 2);
    EXPECT_DOUBLE_EQ(parse_duration("f", "1.5m"), 90);
    EXPECT_DOUBLE_EQ(parse_duration("f", "1h"), 3600);
    EXPECT_DOUBLE_EQ(parse_duration("f", "7"), 7);
    EXPECT_THROW(parse_duration("f", ""), ConfigError);
    EXPECT_THROW(parse_duration("f", "-1s"), ConfigError);
    EXPECT_THROW(parse_duration("f", "1d"), ConfigError);
}

}  // namespace
}  // namespace execguard::runner
