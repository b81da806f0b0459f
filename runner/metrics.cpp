// runner/metrics.cpp
#include "metrics.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/metric_family.h>

#include <cstring>

#include "log.h"

namespace execguard::runner {

namespace {

const char* const kFinishedResults[] = {"completed", "failed", "retry_scheduled", "released", "stale", "cancelled"};
const ErrorClass kErrorClasses[] = {ErrorClass::rate_limit, ErrorClass::server_error, ErrorClass::timeout,
                                    ErrorClass::network,    ErrorClass::permanent,    ErrorClass::response_too_large};
const CircuitBreaker::State kBreakerStates[] = {CircuitBreaker::State::closed, CircuitBreaker::State::open,
                                                CircuitBreaker::State::half_open};

}  // namespace

RunnerMetrics::RunnerMetrics(const Config& config) : registry_(std::make_shared<prometheus::Registry>()) {
    using prometheus::BuildCounter;
    using prometheus::BuildGauge;
    using prometheus::BuildHistogram;
    model_labels_ = config.models;
    model_labels_.push_back("other");
    const auto regions = config.region_names();

    auto& claim_queries = BuildCounter()
                              .Name("execguard_runner_claim_queries_total")
                              .Help("claim_next calls by result (granted: at least one execution)")
                              .Register(*registry_);
    for (const char* r : {"granted", "empty", "error"}) claim_queries_[r] = &claim_queries.Add({{"result", r}});

    auto& claims = BuildCounter()
                       .Name("execguard_runner_claims_total")
                       .Help("Executions granted to this runner, by outcome (first attempt or a retry/rescue)")
                       .Register(*registry_);
    claims_first_ = &claims.Add({{"outcome", "first_attempt"}});
    claims_retry_ = &claims.Add({{"outcome", "later_attempt"}});

    auto& finished = BuildCounter()
                         .Name("execguard_runner_executions_finished_total")
                         .Help("Claimed executions this runner finished, by what the database answered")
                         .Register(*registry_);
    for (const char* r : kFinishedResults) finished_[r] = &finished.Add({{"result", r}});

    auto& durations = BuildHistogram()
                          .Name("execguard_runner_inference_duration_seconds")
                          .Help("Duration of inference requests that got an HTTP response, by region and model")
                          .Register(*registry_);
    const prometheus::Histogram::BucketBoundaries buckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                             5,    10,   30,  60,   120, 300};
    for (const auto& region : regions)
        for (const auto& model : model_labels_)
            durations_[{region, model}] = &durations.Add({{"region", region}, {"model", model}}, buckets);

    auto& errors = BuildCounter()
                       .Name("execguard_runner_inference_errors_total")
                       .Help("Failed inference requests by region and error class")
                       .Register(*registry_);
    for (const auto& region : regions)
        for (auto c : kErrorClasses)
            errors_[{region, to_string(c)}] = &errors.Add({{"region", region}, {"class", to_string(c)}});

    auto& stopped = BuildCounter()
                        .Name("execguard_runner_auto_stopped_total")
                        .Help(
                            "In-flight inference requests aborted because the execution was cancelled or its "
                            "lease was lost")
                        .Register(*registry_);
    for (const char* r : {"cancelled", "lease_lost"}) auto_stopped_[r] = &stopped.Add({{"reason", r}});

    auto& notifications = BuildCounter()
                              .Name("execguard_runner_notifications_total")
                              .Help("Notifications received, by channel (hints only: any role can send them)")
                              .Register(*registry_);
    for (const char* c : {"execguard_work", "execguard_cancel"})
        notifications_[c] = &notifications.Add({{"channel", c}});

    auto& state_checks = BuildCounter()
                             .Name("execguard_runner_execution_state_checks_total")
                             .Help(
                                 "execution_state round trips asking whether calls in flight are still this "
                                 "runner's, by what prompted them")
                             .Register(*registry_);
    for (const char* t : {"notification", "heartbeat"}) state_checks_[t] = &state_checks.Add({{"trigger", t}});

    in_flight_ = &BuildGauge()
                      .Name("execguard_runner_in_flight_executions")
                      .Help("Executions claimed and not yet finished")
                      .Register(*registry_)
                      .Add({});

    auto& breaker = BuildGauge()
                        .Name("execguard_runner_circuit_breaker_state")
                        .Help("1 for the current state of each region's circuit breaker, 0 for the others")
                        .Register(*registry_);
    auto& opens = BuildCounter()
                      .Name("execguard_runner_circuit_breaker_opened_total")
                      .Help("Times a region's circuit breaker opened")
                      .Register(*registry_);
    for (const auto& region : regions) {
        for (auto s : kBreakerStates)
            breaker_state_[{region, to_string(s)}] = &breaker.Add({{"region", region}, {"state", to_string(s)}});
        breaker_opens_[region] = &opens.Add({{"region", region}});
        set_breaker_state(region, CircuitBreaker::State::closed);
    }

    db_connected_ = &BuildGauge()
                         .Name("execguard_runner_db_connected")
                         .Help("1 while the work connection to PostgreSQL is up")
                         .Register(*registry_)
                         .Add({});
    db_reconnects_ = &BuildCounter()
                          .Name("execguard_runner_db_reconnects_total")
                          .Help("Successful reconnections of the work connection after it was lost")
                          .Register(*registry_)
                          .Add({});
}

const std::string& RunnerMetrics::model_label(const std::string& model_id) const {
    for (std::size_t i = 0; i + 1 < model_labels_.size(); ++i)
        if (model_labels_[i] == model_id) return model_labels_[i];
    return model_labels_.back();
}

void RunnerMetrics::claim_query(const char* result) { claim_queries_.at(result)->Increment(); }
void RunnerMetrics::claimed(bool retry_attempt) { (retry_attempt ? claims_retry_ : claims_first_)->Increment(); }
void RunnerMetrics::finished(const char* result) { finished_.at(result)->Increment(); }

void RunnerMetrics::inference_duration(const std::string& region, const std::string& model_id, double seconds) {
    auto it = durations_.find({region, model_label(model_id)});
    if (it != durations_.end()) it->second->Observe(seconds);
}

void RunnerMetrics::inference_error(const std::string& region, ErrorClass error_class) {
    auto it = errors_.find({region, to_string(error_class)});
    if (it != errors_.end()) it->second->Increment();
}

void RunnerMetrics::auto_stopped(const char* reason) { auto_stopped_.at(reason)->Increment(); }
void RunnerMetrics::notification(const char* channel) { notifications_.at(channel)->Increment(); }
void RunnerMetrics::state_check(const char* trigger) { state_checks_.at(trigger)->Increment(); }

void RunnerMetrics::set_breaker_state(const std::string& region, CircuitBreaker::State state) {
    for (auto s : kBreakerStates) {
        auto it = breaker_state_.find({region, to_string(s)});
        if (it != breaker_state_.end()) it->second->Set(s == state ? 1 : 0);
    }
}

void RunnerMetrics::breaker_opened(const std::string& region) {
    auto it = breaker_opens_.find(region);
    if (it != breaker_opens_.end()) it->second->Increment();
}

// --- database side -------------------------------------------------------

DbStatsCollectable::DbStatsCollectable(std::string conninfo, std::string application_name,
                                       double connect_timeout_seconds)
    : connection_(std::move(conninfo), std::move(application_name)),
      connect_timeout_seconds_(connect_timeout_seconds) {}

namespace {

prometheus::MetricFamily family(const std::string& name, const std::string& help, prometheus::MetricType type) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    return f;
}

void add_sample(prometheus::MetricFamily& f, std::vector<prometheus::ClientMetric::Label> labels, double value) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    if (f.type == prometheus::MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    f.metric.push_back(std::move(m));
}

}  // namespace

std::vector<prometheus::MetricFamily> DbStatsCollectable::Collect() const {
    using prometheus::MetricType;
    std::lock_guard<std::mutex> lock(mutex_);
    auto up = family("execguard_db_up", "1 when the last scrape could read execguard.stats", MetricType::Gauge);
    try {
        if (!connection_.connected()) {
            connection_.connect(connect_timeout_seconds_);
            // A scrape must never hang on a locked or slow server.
            connection_.exec("SET statement_timeout = '5s'");
        }
        auto stats = connection_.exec("SELECT * FROM execguard.stats");
        auto queue = connection_.exec("SELECT status, executions, oldest_age_seconds FROM execguard.queue_summary()");
        PGresult* s = stats.get();
        auto col = [&](const char* name) -> double {
            const int c = PQfnumber(s, name);
            if (c < 0 || PQntuples(s) < 1 || PQgetisnull(s, 0, c)) return 0;
            return std::stod(PQgetvalue(s, 0, c));
        };

        std::vector<prometheus::MetricFamily> out;
        auto dup = family("execguard_db_duplicates_prevented_total",
                          "Duplicate executions stopped by the database, by layer", MetricType::Counter);
        add_sample(dup, {{"layer", "claim"}}, col("duplicates_prevented_claim"));
        add_sample(dup, {{"layer", "normalization"}}, col("duplicates_prevented_normalization"));
        out.push_back(std::move(dup));

        auto stale = family("execguard_db_stale_writes_rejected_total",
                            "Heartbeats and writes refused because the fencing token was stale", MetricType::Counter);
        add_sample(stale, {}, col("stale_writes_rejected"));
        out.push_back(std::move(stale));

        // Extension 0.6.0: refusals because the execution was cancelled under
        // the writer's grant, no longer counted as stale writes.
        auto after_cancel =
            family("execguard_db_writes_after_cancel_total",
                   "Heartbeats and writes refused because the execution was cancelled", MetricType::Counter);
        add_sample(after_cancel, {}, col("writes_after_cancel"));
        out.push_back(std::move(after_cancel));

        auto rescued = family("execguard_db_leases_rescued_total",
                              "Running executions taken over by claim_next, by reason", MetricType::Counter);
        add_sample(rescued, {{"reason", "expired"}}, col("leases_rescued_expired"));
        add_sample(rescued, {{"reason", "owner_gone"}}, col("leases_rescued_owner_gone"));
        out.push_back(std::move(rescued));

        auto claims =
            family("execguard_db_claims_total", "Claim attempts by outcome, all clients", MetricType::Counter);
        // "unknown" (keys no job submitted) since extension 0.6.0; 0 before.
        for (const char* o :
             {"claimed", "reclaimed", "running", "completed", "cancelled", "failed", "backoff", "unknown"})
            add_sample(claims, {{"outcome", o}}, col((std::string("claims_") + o).c_str()));
        out.push_back(std::move(claims));

        auto finished = family("execguard_db_executions_finished_total",
                               "Execution state changes by the workers' calls, all clients", MetricType::Counter);
        add_sample(finished, {{"result", "completed"}}, col("executions_completed"));
        add_sample(finished, {{"result", "failed"}}, col("executions_failed"));
        add_sample(finished, {{"result", "cancelled"}}, col("executions_cancelled"));
        add_sample(finished, {{"result", "released"}}, col("executions_released"));
        add_sample(finished, {{"result", "retry_scheduled"}}, col("retries_scheduled"));
        out.push_back(std::move(finished));

        auto jobs = family("execguard_db_jobs_submitted_total", "Jobs submitted", MetricType::Counter);
        add_sample(jobs, {}, col("jobs_submitted"));
        out.push_back(std::move(jobs));

        auto purged = family("execguard_db_executions_purged_total",
                             "Executions of finished jobs deleted by purge_jobs (retention)", MetricType::Counter);
        add_sample(purged, {}, col("executions_purged"));
        out.push_back(std::move(purged));

        auto by_status = family("execguard_db_executions", "Executions by status", MetricType::Gauge);
        auto oldest = family("execguard_db_oldest_pending_age_seconds",
                             "Age of the oldest pending execution (0 when none)", MetricType::Gauge);
        double oldest_pending = 0;
        for (int i = 0; i < PQntuples(queue.get()); ++i) {
            const std::string status = PQgetvalue(queue.get(), i, 0);
            static const char* const known[] = {"pending", "running", "completed", "failed", "cancelled"};
            if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return status == k; }) ==
                std::end(known))
                continue;
            add_sample(by_status, {{"status", status}}, std::stod(PQgetvalue(queue.get(), i, 1)));
            if (status == "pending") oldest_pending = std::stod(PQgetvalue(queue.get(), i, 2));
        }
        add_sample(oldest, {}, oldest_pending);
        out.push_back(std::move(by_status));
        out.push_back(std::move(oldest));

        add_sample(up, {}, 1);
        out.push_back(std::move(up));
        return out;
    } catch (const std::exception& e) {
        log::warn("metrics_db_read_failed", {{"error", e.what()}});
        connection_.disconnect();
        add_sample(up, {}, 0);
        return {up};
    }
}

// --- HTTP server -----------------------------------------------------------

namespace {

// civetweb callbacks are plain function pointers; the one process-wide
// server publishes its health flag here.
std::atomic<const std::atomic<bool>*> g_db_up{nullptr};

int handle_begin_request(struct mg_connection* conn) {
    const mg_request_info* info = mg_get_request_info(conn);
    if (info == nullptr || info->local_uri == nullptr || std::strcmp(info->local_uri, "/healthz") != 0) return 0;
    const std::atomic<bool>* up = g_db_up.load();
    const bool healthy = up != nullptr && up->load();
    const char* body = healthy ? "ok\n" : "database unavailable\n";
    mg_printf(conn, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
              healthy ? 200 : 503, healthy ? "OK" : "Service Unavailable", std::strlen(body), body);
    return healthy ? 200 : 503;
}

}  // namespace

MetricsServer::MetricsServer(const std::string& listen_address, std::shared_ptr<prometheus::Registry> registry,
                             std::shared_ptr<DbStatsCollectable> db_stats, const std::atomic<bool>* db_up)
    : registry_(std::move(registry)), db_stats_(std::move(db_stats)) {
    g_db_up = db_up;
    static CivetCallbacks callbacks;  // zeroed by its constructor; civetweb copies it
    callbacks.begin_request = handle_begin_request;
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(listen_address, 2, &callbacks);
    } catch (const std::exception& e) {
        throw std::runtime_error("cannot listen on " + listen_address + " for /metrics: " + e.what());
    }
    exposer_->RegisterCollectable(registry_);
    exposer_->RegisterCollectable(db_stats_);
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::bound_port() const {
    auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

}  // namespace execguard::runner
