// runner/main.cpp: execguard-runner's entry point. Exit codes: 0 clean
// shutdown, 1 runtime failure (e.g. cannot listen for /metrics), 2 bad
// configuration.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "runner.h"

int main(int argc, char** argv) {
    using namespace execguard::runner;  // NOLINT: main is the only user
    Config config;
    try {
        config = load_config(argc, argv);
    } catch (const HelpRequested& help) {
        std::fputs(help.what(), stdout);
        return 0;
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "execguard-runner: configuration refused: %s\n", e.what());
        return 2;
    }
    log::init(config.log_format, config.log_level);
    install_signal_handlers();
    try {
        std::atomic<bool> db_up{false};
        RunnerMetrics metrics(config);
        auto db_stats = std::make_shared<DbStatsCollectable>(config.database, "execguard-runner-metrics",
                                                             // a scrape must not wait long for a dead server
                                                             std::min(config.connect_timeout_seconds, 3.0));
        MetricsServer server(config.metrics_listen, metrics.registry_ptr(), db_stats, &db_up);
        log::info("metrics_listening", {{"address", config.metrics_listen}, {"port", server.bound_port()}});
        Runner runner(config, metrics, db_up);
        return runner.run();
    } catch (const std::exception& e) {
        log::error("fatal", {{"error", e.what()}});
        return 1;
    }
}
