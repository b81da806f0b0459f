// runner/metrics.h: Prometheus metrics and the /metrics + /healthz server.
//
// Runner-side families are built once at start-up with one child per value
// of each (small, fixed) label set; the hot path only touches references.
// Database-side values are read from execguard.stats and
// execguard.queue_summary() at scrape time by DbStatsCollectable, through
// the runner's second (and last) database connection.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backoff.h"
#include "config.h"
#include "db.h"
#include "inference.h"

namespace execguard::runner {

class RunnerMetrics {
public:
    explicit RunnerMetrics(const Config& config);

    prometheus::Registry& registry() { return *registry_; }
    std::shared_ptr<prometheus::Registry> registry_ptr() { return registry_; }

    // The model label: a configured model id, else "other".
    const std::string& model_label(const std::string& model_id) const;

    void claim_query(const char* result);  // granted, empty, error
    void claimed(bool retry_attempt);
    void finished(const char* result);  // completed, failed, retry_scheduled, released, stale, cancelled
    void inference_duration(const std::string& region, const std::string& model_id, double seconds);
    void inference_error(const std::string& region, ErrorClass error_class);
    void auto_stopped(const char* reason);   // cancelled, lease_lost
    void notification(const char* channel);  // execguard_work, execguard_cancel
    void state_check(const char* trigger);   // notification, heartbeat
    void set_in_flight(double value) { in_flight_->Set(value); }
    void set_breaker_state(const std::string& region, CircuitBreaker::State state);
    void breaker_opened(const std::string& region);
    void set_db_connected(bool up) { db_connected_->Set(up ? 1 : 0); }
    void db_reconnected() { db_reconnects_->Increment(); }

private:
    std::shared_ptr<prometheus::Registry> registry_;
    std::vector<std::string> model_labels_;  // configured models + "other"
    std::map<std::string, prometheus::Counter*> claim_queries_;
    prometheus::Counter* claims_first_ = nullptr;
    prometheus::Counter* claims_retry_ = nullptr;
    std::map<std::string, prometheus::Counter*> finished_;
    std::map<std::pair<std::string, std::string>, prometheus::Histogram*> durations_;
    std::map<std::pair<std::string, std::string>, prometheus::Counter*> errors_;
    std::map<std::string, prometheus::Counter*> auto_stopped_;
    std::map<std::string, prometheus::Counter*> notifications_;
    std::map<std::string, prometheus::Counter*> state_checks_;
    prometheus::Gauge* in_flight_ = nullptr;
    std::map<std::pair<std::string, std::string>, prometheus::Gauge*> breaker_state_;
    std::map<std::string, prometheus::Counter*> breaker_opens_;
    prometheus::Gauge* db_connected_ = nullptr;
    prometheus::Counter* db_reconnects_ = nullptr;
};

// Reads the database's counters at scrape time (never copied into Counters,
// so they stay exactly what execguard.stats says, resets included).
class DbStatsCollectable : public prometheus::Collectable {
public:
    DbStatsCollectable(std::string conninfo, std::string application_name, double connect_timeout_seconds);
    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    mutable std::mutex mutex_;  // the connection is used by one scrape at a time
    mutable DbConnection connection_;
    double connect_timeout_seconds_;
};

// /metrics (prometheus-cpp Exposer) and /healthz (a civetweb callback: 200
// while `db_up` is true, else 503).
class MetricsServer {
public:
    // Throws std::runtime_error with a clear message when it cannot listen.
    MetricsServer(const std::string& listen_address, std::shared_ptr<prometheus::Registry> registry,
                  std::shared_ptr<DbStatsCollectable> db_stats, const std::atomic<bool>* db_up);
    ~MetricsServer();
    int bound_port() const;

private:
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::shared_ptr<prometheus::Registry> registry_;
    std::shared_ptr<DbStatsCollectable> db_stats_;
};

}  // namespace execguard::runner
