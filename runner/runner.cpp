// runner/runner.cpp
#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <set>

#include "log.h"

namespace execguard::runner {

namespace {

// An event about one execution: job, model, region, execution id and
// attempt, then the event's own fields.
void log_execution(log::Level level, const char* name, const ClaimedExecution& claim, log::Fields extra = {}) {
    log::Fields fields{{"job", claim.job_id},
                       {"model", claim.model_id},
                       {"region", claim.region},
                       {"execution_id", claim.execution_id},
                       {"attempt", claim.attempt}};
    fields.insert(fields.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    log::event(level, name, fields);
}

// Written only by the signal handlers, read by the work loop.
volatile std::sig_atomic_t g_stop_signals = 0;
volatile std::sig_atomic_t g_hup_signals = 0;
volatile std::sig_atomic_t g_wake_fd = -1;

extern "C" void on_signal(int signo) {
    const int saved_errno = errno;
    if (signo == SIGHUP)
        g_hup_signals = g_hup_signals + 1;
    else
        g_stop_signals = g_stop_signals + 1;
    if (g_wake_fd >= 0) {
        const char byte = 's';
        [[maybe_unused]] ssize_t n = ::write(g_wake_fd, &byte, 1);
    }
    errno = saved_errno;
}

const char* const kWorkChannel = "execguard_work";
const char* const kCancelChannel = "execguard_cancel";

// The spacing of the hint gates: under a flood of notifications, at most
// ten claim_next and ten execution_state round trips a second come of them,
// and a real cancellation waits at most this long behind the flood. A
// single notification is acted on at once.
constexpr double kHintSpacingSeconds = 0.1;

}  // namespace

void install_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGHUP, &action, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

Runner::Runner(const Config& config, RunnerMetrics& metrics, std::atomic<bool>& db_up)
    : config_(config),
      metrics_(metrics),
      db_up_(db_up),
      db_(config.database, "execguard-runner"),
      http_([this](HttpCompletion done) {
          {
              std::lock_guard<std::mutex> lock(completions_mutex_);
              completions_.push_back(std::move(done));
          }
          wake();
      }),
      retry_backoff_(config.retry_backoff_base_seconds, config.retry_backoff_max_seconds),
      reconnect_backoff_(config.reconnect_backoff_base_seconds, config.reconnect_backoff_max_seconds),
      work_hints_(kHintSpacingSeconds),
      cancel_hints_(kHintSpacingSeconds) {
    if (pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    g_wake_fd = wake_pipe_[1];
    for (const auto& r : config_.regions) {
        breakers_.emplace(r.name, CircuitBreaker(config_.breaker_threshold, config_.breaker_cooldown_seconds,
                                                 config_.breaker_cooldown_max_seconds));
        breaker_reported_[r.name] = CircuitBreaker::State::closed;
    }
}

Runner::~Runner() {
    http_.stop();
    g_wake_fd = -1;
    close(wake_pipe_[0]);
    close(wake_pipe_[1]);
}

void Runner::wake() {
    const char byte = 'w';
    [[maybe_unused]] ssize_t n = ::write(wake_pipe_[1], &byte, 1);
}

void Runner::log_state(const char* event) {
    nlohmann::json breakers = nlohmann::json::object();
    for (auto& [region, breaker] : breakers_) breakers[region] = to_string(breaker.state(Clock::now()));
    log::info(event, {{"in_flight", in_flight_.size()},
                      {"pending_writes", pending_writes_.size()},
                      {"db_connected", db_.connected()},
                      {"shutting_down", shutting_down_},
                      {"breakers", breakers.dump()}});
}

void Runner::handle_signals(TimePoint now) {
    const int stops = g_stop_signals;
    const int hups = g_hup_signals;
    if (hups != hup_signals_seen_) {
        hup_signals_seen_ = hups;
        log_state("sighup_state");  // SIGHUP does not reload: restart to change the config
    }
    if (stops == stop_signals_seen_) return;
    stop_signals_seen_ = stops;
    if (!shutting_down_) {
        shutting_down_ = true;
        shutdown_deadline_ = now + seconds_to_duration(config_.grace_period_seconds);
        log::info("shutdown_started",
                  {{"in_flight", in_flight_.size()}, {"grace_period_s", config_.grace_period_seconds}});
    } else {
        shutdown_deadline_ = now;
        log::info("shutdown_hurried", {{"in_flight", in_flight_.size()}});
    }
}

void Runner::try_connect(TimePoint now) {
    try {
        db_.connect(config_.connect_timeout_seconds);
        // Through a transaction-mode pooler a LISTEN lands on whichever server
        // backend ran it and stays there for other clients, while the pooler
        // drops the notifications that reach an idle server connection. There
        // the poll interval finds new work and the heartbeat finds cancels.
        if (!config_.pooler_mode) db_.listen({kWorkChannel, kCancelChannel});
    } catch (const DbError& e) {
        db_.disconnect();
        ++reconnect_failures_;
        const double delay = reconnect_backoff_.delay(reconnect_failures_);
        next_reconnect_ = now + seconds_to_duration(delay);
        log::warn("db_connect_failed", {{"error", e.what()}, {"retry_in_s", delay}});
        return;
    }
    if (ever_connected_) metrics_.db_reconnected();
    log::info(ever_connected_ ? "db_reconnected" : "db_connected", {{"server", db_.describe()}});
    ever_connected_ = true;
    ++connection_generation_;
    reconnect_failures_ = 0;
    db_up_ = true;
    metrics_.set_db_connected(true);
    // Anything may have changed while away: look for work, and renew every
    // lease we still hold before claiming, so our own in-flight rows are not
    // taken for abandoned ones.
    claim_wanted_ = true;
    for (auto& [id, f] : in_flight_) f.next_heartbeat = now;
}

void Runner::handle_db_error(const DbError& e, const char* during) {
    if (e.connection_lost() || !db_.connected()) {
        db_.disconnect();
        db_up_ = false;
        metrics_.set_db_connected(false);
        next_reconnect_ = Clock::now();
        log::warn("db_connection_lost", {{"during", during}, {"error", e.what()}, {"in_flight", in_flight_.size()}});
    } else {
        log::error("db_error", {{"during", during}, {"error", e.what()}});
    }
}

void Runner::process_notifications() {
    // Any role that can log in can send either notification, with any
    // payload: PostgreSQL has no privilege for NOTIFY. So the payload is
    // never read, and a notification only says "look": execguard_work that
    // there may be work to claim, execguard_cancel that a call in flight may
    // no longer be ours, which only the database can tell
    // (check_states_on_hint).
    for (const auto& n : db_.consume_notifications()) {
        if (n.channel == kWorkChannel) {
            metrics_.notification(kWorkChannel);
            work_hints_.hint();
        } else if (n.channel == kCancelChannel) {
            metrics_.notification(kCancelChannel);
            cancel_hints_.hint();
        }
    }
}

void Runner::check_states_on_hint(TimePoint now) {
    if (in_flight_.empty()) {
        cancel_hints_.drop();  // nothing to stop
        return;
    }
    if (!cancel_hints_.take(now)) return;
    std::map<std::int64_t, std::uint64_t> transfer_of;
    for (const auto& [tid, f] : in_flight_) transfer_of[f.claim.execution_id] = tid;
    stop_calls_no_longer_ours(transfer_of, /*refused_by_heartbeat=*/false);
}

void Runner::stop_calls_no_longer_ours(const std::map<std::int64_t, std::uint64_t>& transfer_of,
                                       bool refused_by_heartbeat) {
    std::vector<std::pair<std::int64_t, std::int64_t>> grants;
    for (const auto& [id, tid] : transfer_of) {
        auto it = in_flight_.find(tid);
        if (it != in_flight_.end()) grants.emplace_back(id, it->second.claim.fencing_token);
    }
    if (grants.empty()) return;
    metrics_.state_check(refused_by_heartbeat ? "heartbeat" : "notification");
    std::map<std::int64_t, std::string> states;
    bool answered = false;
    std::optional<DbError> lost;
    try {
        states = db_.execution_states(grants);
        answered = true;
    } catch (const DbError& e) {
        if (e.connection_lost() || !db_.connected()) lost = e;
        log::warn("db_error", {{"during", "execution_state"}, {"error", e.what()}});
    }
    // A refused heartbeat means "stop", not why. A cancellation whose
    // notification never came (pooler mode, or one missed across a
    // reconnect) is an expected stop; a grant taken over means this runner
    // lost its lease. Unknown (a failed lookup, or an extension older than
    // 0.3.0) counts as a lost lease: the work stops either way. After a
    // hint, with no answer, nothing stops: the next heartbeat still will.
    if (answered || refused_by_heartbeat) {
        for (const auto& [id, token] : grants) {
            const auto state = states.find(id);
            // Running under our token: nobody cancelled it or took it over.
            if (!refused_by_heartbeat && state != states.end() && state->second == "running") continue;
            const bool cancelled = state != states.end() && state->second == "cancelled";
            stop_in_flight(transfer_of.at(id), cancelled ? StopReason::cancelled : StopReason::lease_lost);
        }
    }
    if (lost) throw *lost;
}

void Runner::stop_in_flight(std::uint64_t transfer_id, StopReason reason) {
    auto it = in_flight_.find(transfer_id);
    if (it == in_flight_.end()) return;
    http_.abort(transfer_id);  // its late completion finds no entry and is dropped
    InFlight f = std::move(it->second);
    in_flight_.erase(it);
    switch (reason) {
        case StopReason::cancelled:
            metrics_.auto_stopped("cancelled");
            metrics_.finished("cancelled");
            log_execution(log::Level::info, "auto_stopped", f.claim, {{"reason", "cancelled"}});
            break;
        case StopReason::lease_lost:
            metrics_.auto_stopped("lease_lost");
            metrics_.finished("stale");
            log_execution(log::Level::warn, "auto_stopped", f.claim, {{"reason", "lease_lost"}});
            break;
        case StopReason::shutdown: {
            PendingWrite w{
                PendingWrite::Kind::release, std::move(f.claim), {}, {}, ErrorClass::none, false, std::nullopt};
            w.claim.payload = nullptr;
            pending_writes_.push_back(std::move(w));
            break;
        }
    }
    if (f.probe) next_probe_claim_[f.claim.region] = Clock::now();
}

void Runner::process_http_completions(TimePoint now) {
    std::vector<HttpCompletion> done;
    {
        std::lock_guard<std::mutex> lock(completions_mutex_);
        done.swap(completions_);
    }
    for (auto& c : done) {
        auto it = in_flight_.find(c.id);
        if (it == in_flight_.end()) continue;  // stopped earlier
        InFlight f = std::move(it->second);
        in_flight_.erase(it);
        f.claim.payload = nullptr;
        const std::string& region = f.claim.region;
        InferenceResult r;
        try {
            r = interpret_response(c.outcome);
        } catch (const std::exception& e) {
            // interpret_response is written not to throw on anything a
            // provider sends; if it ever does, this execution fails (and
            // says why) instead of the whole runner and every call in flight.
            r = InferenceResult{};
            r.error_class = ErrorClass::permanent;
            r.error_message = std::string("the response could not be interpreted: ") + e.what();
        }
        if (c.outcome.transport == TransportError::none)
            metrics_.inference_duration(region, f.claim.model_id, c.outcome.latency_seconds);
        CircuitBreaker& breaker = breakers_.at(region);
        PendingWrite w{PendingWrite::Kind::complete, f.claim, {}, {}, r.error_class, false, std::nullopt};
        if (r.error_class == ErrorClass::none) {
            breaker.record_success();
            w.result = std::move(r.result);
            w.result["attempt"] = f.claim.attempt;
            w.result["worker"] = config_.worker_id;
            w.result["model_sent"] = f.model_sent;
        } else {
            metrics_.inference_error(region, r.error_class);
            if (r.error_class == ErrorClass::rate_limit) {
                const int opened_before = breaker.times_opened();
                breaker.record_rate_limited(now, r.retry_after_seconds.value_or(0));
                if (breaker.times_opened() != opened_before) {
                    metrics_.breaker_opened(region);
                    log::warn("circuit_breaker_opened", {{"region", region},
                                                         {"cooldown_s", breaker.current_cooldown_seconds()},
                                                         {"times_opened", breaker.times_opened()}});
                }
            }
            w.kind = PendingWrite::Kind::fail;
            w.error = std::string(to_string(r.error_class)) + ": " + r.error_message;
            w.retryable = is_retryable(r.error_class);
            if (w.retryable)
                w.retry_after_seconds =
                    r.retry_after_seconds.value_or(retry_backoff_.delay(std::max(1, f.claim.attempt)));
            if (r.error_class == ErrorClass::rate_limit && breaker.state(now) == CircuitBreaker::State::open) {
                // Keep this execution out of the next half-open probe: the probe
                // then takes a different execution each time, so a long storm
                // spreads single attempts instead of exhausting one execution.
                const double until_probe = std::chrono::duration<double>(breaker.open_until() - now).count();
                w.retry_after_seconds =
                    std::max(*w.retry_after_seconds, until_probe + 2 * breaker.current_cooldown_seconds());
            }
            log_execution(log::Level::warn, "inference_failed", f.claim,
                          {{"class", to_string(r.error_class)}, {"error", r.error_message}});
        }
        if (f.probe) next_probe_claim_[region] = now;
        pending_writes_.push_back(std::move(w));
    }
}

bool Runner::write_completion_batch() {
    std::vector<CompletionRequest> batch;
    std::vector<std::size_t> positions;
    for (std::size_t i = 0; i < pending_writes_.size() && batch.size() < 200; ++i) {
        const auto& w = pending_writes_[i];
        if (w.kind != PendingWrite::Kind::complete) continue;
        batch.push_back({w.claim.execution_id, w.claim.fencing_token, w.result});
        positions.push_back(i);
    }
    if (batch.empty()) return false;
    std::vector<bool> accepted;
    // Per batch position: why the database refused that result, if it did.
    std::vector<std::optional<std::string>> refused(batch.size());
    try {
        accepted = db_.complete_executions(batch);
    } catch (const DbError& e) {
        if (e.connection_lost() || !db_.connected()) throw;
        // The batch function failed as SQL: complete one by one instead, so
        // a result is never dropped for want of the batch form.
        log::warn("db_error",
                  {{"during", "complete_executions"}, {"error", e.what()}, {"fallback", "complete_execution"}});
        accepted.clear();
        for (std::size_t k = 0; k < batch.size(); ++k) {
            const auto& c = batch[k];
            try {
                accepted.push_back(db_.complete_execution(c.execution_id, c.fencing_token, c.result));
            } catch (const DbError& e2) {
                if (e2.connection_lost() || !db_.connected()) throw;
                log::error("db_error",
                           {{"during", "complete_execution"}, {"execution_id", c.execution_id}, {"error", e2.what()}});
                accepted.push_back(false);
                refused[k] = e2.what();
            }
        }
    }
    std::vector<std::size_t> written;  // positions done with
    for (std::size_t k = 0; k < batch.size(); ++k) {
        auto& w = pending_writes_[positions[k]];
        if (refused[k]) {
            // The database will not store this result (a trigger, a
            // constraint, or a value the runner failed to make storable).
            // Dropping it would leave the row running until its lease
            // ends and run the model again, silently and paid for; so
            // the execution fails, not retryable, with the reason.
            log_execution(log::Level::error, "result_refused", w.claim, {{"error", *refused[k]}});
            w.kind = PendingWrite::Kind::fail;
            w.error_class = ErrorClass::result_refused;
            w.error = std::string(to_string(ErrorClass::result_refused)) +
                      ": the database refused the result: " + *refused[k];
            w.retryable = false;
            w.retry_after_seconds = std::nullopt;
            w.result = nullptr;
            continue;  // written below, with the other failures
        }
        metrics_.finished(accepted[k] ? "completed" : "stale");
        if (accepted[k])
            log_execution(log::Level::info, "execution_completed", w.claim);
        else
            log_execution(log::Level::warn, "completion_refused", w.claim);
        written.push_back(positions[k]);
    }
    for (auto it = written.rbegin(); it != written.rend(); ++it)
        pending_writes_.erase(pending_writes_.begin() + static_cast<std::ptrdiff_t>(*it));
    return true;
}

void Runner::flush_writes() {
    // Completions first, up to 200 per round trip, until none is queued:
    // claim() runs next, and claim_next would take back (owner gone, lease
    // over) an execution whose result is still waiting here. Then failures
    // and releases, one by one. A write leaves the queue only once the
    // database has answered, so a dropped connection re-sends it after
    // reconnecting (the fencing token makes that safe).
    while (write_completion_batch()) {
    }
    // Every completion was written above; one is never dropped here unwritten.
    for (auto it = pending_writes_.begin(); it != pending_writes_.end();) {
        auto& w = *it;
        if (w.kind == PendingWrite::Kind::complete) {
            ++it;
            continue;
        }
        try {
            if (w.kind == PendingWrite::Kind::fail) {
                const std::string outcome = db_.fail_execution(w.claim.execution_id, w.claim.fencing_token, w.error,
                                                               w.retryable, w.retry_after_seconds);
                const char* result = outcome == "retry_scheduled" ? "retry_scheduled"
                                     : outcome == "failed"        ? "failed"
                                                                  : "stale";
                metrics_.finished(result);
                log_execution(log::Level::info, "execution_failed", w.claim,
                              {{"outcome", outcome},
                               {"class", to_string(w.error_class)},
                               {"retry_after_s",
                                w.retry_after_seconds ? nlohmann::json(*w.retry_after_seconds) : nlohmann::json()}});
            } else if (w.kind == PendingWrite::Kind::release) {
                const bool released = db_.release_execution(w.claim.execution_id, w.claim.fencing_token);
                metrics_.finished(released ? "released" : "stale");
                log_execution(log::Level::info, "execution_released", w.claim, {{"accepted", released}});
            }
        } catch (const DbError& e) {
            if (e.connection_lost() || !db_.connected()) throw;
            log::error("db_error", {{"during", "write"}, {"execution_id", w.claim.execution_id}, {"error", e.what()}});
        }
        it = pending_writes_.erase(it);
    }
}

void Runner::send_heartbeats(TimePoint now) {
    std::vector<std::pair<std::int64_t, std::int64_t>> due;
    std::map<std::int64_t, std::uint64_t> transfer_of;
    // Renew everything due within the next quarter period in the same round
    // trip, so heartbeats bunch into few statements.
    const auto horizon = now + seconds_to_duration(config_.heartbeat_seconds / 4);
    for (const auto& [tid, f] : in_flight_) {
        if (f.next_heartbeat > horizon) continue;
        due.emplace_back(f.claim.execution_id, f.claim.fencing_token);
        transfer_of[f.claim.execution_id] = tid;
    }
    if (due.empty()) return;
    std::vector<HeartbeatResult> results;
    try {
        results = db_.heartbeat(due, config_.lease_seconds);
    } catch (const DbError& e) {
        if (e.connection_lost() || !db_.connected()) throw;
        log::error("db_error", {{"during", "heartbeat"}, {"error", e.what()}});
        for (auto& [tid, f] : in_flight_) f.next_heartbeat = std::max(f.next_heartbeat, now + seconds_to_duration(1));
        return;
    }
    const auto next = now + seconds_to_duration(config_.heartbeat_seconds);
    std::map<std::int64_t, std::uint64_t> refused;
    for (const auto& r : results) {
        auto t = transfer_of.find(r.execution_id);
        if (t == transfer_of.end()) continue;
        auto it = in_flight_.find(t->second);
        if (it == in_flight_.end()) continue;
        if (r.still_held)
            it->second.next_heartbeat = next;
        else
            refused.emplace(r.execution_id, t->second);
    }
    if (!refused.empty()) stop_calls_no_longer_ours(refused, /*refused_by_heartbeat=*/true);
}

bool Runner::may_claim() const {
    if (static_cast<int>(in_flight_.size()) >= config_.concurrency) return false;
    if (!config_.pooler_mode) {
        for (const auto& [tid, f] : in_flight_)
            if (f.connection_generation != connection_generation_) return false;  // see connection_generation_
    }
    return true;
}

void Runner::claim(TimePoint now) {
    if (!may_claim()) return;
    const int free_slots = config_.concurrency - static_cast<int>(in_flight_.size());
    if (work_hints_.take(now)) claim_wanted_ = true;
    const bool poll_due = claim_wanted_ || now >= next_poll_;

    std::vector<std::string> closed_regions;
    std::vector<std::string> probe_regions;
    std::set<std::string> probing;
    for (const auto& [tid, f] : in_flight_)
        if (f.probe) probing.insert(f.claim.region);
    for (auto& [region, breaker] : breakers_) {
        const auto state = breaker.state(now);
        if (state == CircuitBreaker::State::closed)
            closed_regions.push_back(region);
        else if (state == CircuitBreaker::State::half_open && !probing.count(region) &&
                 now >= next_probe_claim_[region])
            probe_regions.push_back(region);
    }

    if (poll_due) {
        claim_wanted_ = false;
        next_poll_ = now + seconds_to_duration(config_.poll_interval_seconds);
        if (!closed_regions.empty()) {
            auto claimed = claim_for(free_slots, closed_regions);
            if (!claimed) return;
            // A full batch suggests more is due: claim again as soon as a slot frees.
            if (static_cast<int>(claimed->size()) == free_slots) claim_wanted_ = true;
            for (auto& c : *claimed) start_execution(std::move(c), false, now);
        }
    }
    for (const auto& region : probe_regions) {
        if (config_.concurrency - static_cast<int>(in_flight_.size()) <= 0) break;
        auto claimed = claim_for(1, {region});
        if (!claimed) return;
        // Nothing due for this region: look again at the next poll.
        next_probe_claim_[region] = now + seconds_to_duration(config_.poll_interval_seconds);
        for (auto& c : *claimed) {
            log::info("circuit_breaker_probe", {{"region", region}, {"execution_id", c.execution_id}});
            start_execution(std::move(c), true, now);
        }
    }
}

std::optional<std::vector<ClaimedExecution>> Runner::claim_for(int max_claims,
                                                               const std::vector<std::string>& regions) {
    std::vector<ClaimedExecution> claimed;
    try {
        claimed = db_.claim_next(config_.worker_id, max_claims, config_.lease_seconds, regions, config_.models,
                                 !config_.pooler_mode);
    } catch (const DbError& e) {
        metrics_.claim_query("error");
        if (e.connection_lost() || !db_.connected()) throw;
        log::error("db_error", {{"during", "claim_next"}, {"error", e.what()}});
        return std::nullopt;
    }
    metrics_.claim_query(claimed.empty() ? "empty" : "granted");
    return claimed;
}

void Runner::start_execution(ClaimedExecution claim, bool probe, TimePoint now) {
    metrics_.claimed(claim.attempt > 1);
    const RegionEndpoint* endpoint = config_.find_region(claim.region);
    if (endpoint == nullptr) {
        // claim_next was asked for our regions only; never run elsewhere.
        log::error("claimed_unknown_region",
                   {{"job", claim.job_id}, {"region", claim.region}, {"execution_id", claim.execution_id}});
        pending_writes_.push_back({PendingWrite::Kind::release, std::move(claim), {}, {}, ErrorClass::none, false, {}});
        return;
    }
    InferenceRequest request;
    try {
        request = build_request(*endpoint, claim.payload);
    } catch (const std::exception& e) {
        log::error("bad_payload", {{"job", claim.job_id}, {"execution_id", claim.execution_id}, {"error", e.what()}});
        PendingWrite w{PendingWrite::Kind::fail,
                       std::move(claim),
                       {},
                       std::string("permanent: ") + e.what(),
                       ErrorClass::permanent,
                       false,
                       std::nullopt};
        pending_writes_.push_back(std::move(w));
        return;
    }
    HttpTransfer transfer;
    transfer.id = ++next_transfer_id_;
    transfer.url = request.url;
    transfer.body = std::move(request.body);
    transfer.timeout_seconds = config_.request_timeout_seconds;
    transfer.connect_timeout_seconds = config_.connect_timeout_seconds;
    transfer.headers = {
        "Content-Type: application/json", "Accept: application/json", "Expect:",
        // Unique per attempt; lets a provider (and the tests) see
        // that no request is ever sent twice.
        "Idempotency-Key: execguard-" + std::to_string(claim.execution_id) + "-" + std::to_string(claim.fencing_token),
        "X-Execguard-Worker: " + config_.worker_id};
    if (!endpoint->api_key.empty()) transfer.headers.push_back("Authorization: Bearer " + endpoint->api_key);
    log_execution(log::Level::info, "execution_started", claim, {{"probe", probe}});
    InFlight f;
    f.endpoint = endpoint;
    f.model_sent = request.model_sent;
    f.next_heartbeat = now + seconds_to_duration(config_.heartbeat_seconds);
    f.probe = probe;
    f.connection_generation = connection_generation_;
    f.claim = std::move(claim);
    in_flight_.emplace(transfer.id, std::move(f));
    http_.submit(std::move(transfer));
}

void Runner::update_breakers(TimePoint now) {
    for (auto& [region, breaker] : breakers_) {
        const auto state = breaker.state(now);
        auto& reported = breaker_reported_[region];
        if (state == reported) continue;
        reported = state;
        metrics_.set_breaker_state(region, state);
        log::info("circuit_breaker_state", {{"region", region}, {"state", to_string(state)}});
    }
    metrics_.set_in_flight(static_cast<double>(in_flight_.size()));
}

void Runner::wait(TimePoint now) {
    TimePoint until = now + std::chrono::seconds(1);
    for (const auto& [tid, f] : in_flight_) until = std::min(until, f.next_heartbeat);
    if (db_.connected()) {
        // Only what claim() would act on: a wake-up for a claim that must
        // wait (a claim wanted, or a poll due, while calls of an earlier
        // connection are in flight) would spin until they end.
        if (!shutting_down_ && may_claim()) {
            until = std::min(until, claim_wanted_ ? now : next_poll_);
            if (work_hints_.pending()) until = std::min(until, work_hints_.due());
            for (auto& [region, breaker] : breakers_)
                if (breaker.state(now) == CircuitBreaker::State::open) until = std::min(until, breaker.open_until());
            for (const auto& [region, when] : next_probe_claim_)
                if (breakers_.at(region).state(now) == CircuitBreaker::State::half_open) until = std::min(until, when);
        }
        if (!pending_writes_.empty()) until = now;
        if (cancel_hints_.pending() && !in_flight_.empty()) until = std::min(until, cancel_hints_.due());
    } else {
        until = std::min(until, next_reconnect_);
    }
    if (shutting_down_) until = std::min(until, shutdown_deadline_);
    int timeout_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count());
    timeout_ms = std::max(0, timeout_ms);

    pollfd fds[2] = {{wake_pipe_[0], POLLIN, 0}, {db_.socket(), POLLIN, 0}};
    const nfds_t count = db_.connected() && fds[1].fd >= 0 ? 2 : 1;
    if (::poll(fds, count, timeout_ms) > 0 && (fds[0].revents & POLLIN)) {
        char buf[256];
        while (::read(wake_pipe_[0], buf, sizeof buf) > 0) {
        }
    }
}

int Runner::run() {
    http_.start();
    log::info("runner_started", {{"worker", config_.worker_id},
                                 {"concurrency", config_.concurrency},
                                 {"regions", nlohmann::json(config_.region_names()).dump()},
                                 {"lease_s", config_.lease_seconds},
                                 {"pooler_mode", config_.pooler_mode},
                                 {"notifications", config_.pooler_mode ? "off" : "on"}});
    int exit_code = 0;
    while (true) {
        TimePoint now = Clock::now();
        handle_signals(now);
        if (!db_.connected() && now >= next_reconnect_) try_connect(now);
        process_http_completions(now);
        if (db_.connected()) {
            const char* step = "notifications";
            try {
                process_notifications();
                step = "execution_state";
                check_states_on_hint(now);
                step = "write";
                flush_writes();
                step = "heartbeat";
                send_heartbeats(now);
                if (!shutting_down_) {
                    step = "claim";
                    claim(now);
                }
                step = "notifications";
                process_notifications();
            } catch (const DbError& e) {
                handle_db_error(e, step);
            }
        }
        update_breakers(now);

        if (shutting_down_) {
            now = Clock::now();
            if (now >= shutdown_deadline_ && !in_flight_.empty()) {
                log::info("grace_period_over", {{"releasing", in_flight_.size()}});
                std::vector<std::uint64_t> remaining;
                for (const auto& [tid, f] : in_flight_) remaining.push_back(tid);
                for (auto tid : remaining) stop_in_flight(tid, StopReason::shutdown);
                continue;  // write the releases now
            }
            if (in_flight_.empty() && pending_writes_.empty()) break;
            // The database is unreachable and would not take our writes: stop
            // waiting after a second grace period; leases expire and other
            // runners rescue the rows.
            if (in_flight_.empty() &&
                now >= shutdown_deadline_ + seconds_to_duration(config_.grace_period_seconds + 5)) {
                log::error("shutdown_writes_lost", {{"pending_writes", pending_writes_.size()}});
                exit_code = 1;
                break;
            }
        }
        wait(now);
    }
    http_.stop();
    db_.disconnect();
    db_up_ = false;
    log::info("runner_stopped", {{"exit_code", exit_code}});
    return exit_code;
}

}  // namespace execguard::runner
