// runner/runner.h: the work loop.
//
// One thread (the caller of run()) owns the work connection: LISTEN,
// claim_next, heartbeats, completions, failures and releases all go
// through it, so the process never holds more than two connections (this
// one and the metrics scrape's) whatever the concurrency. Inference calls
// run on the HttpClient's thread; their completions come back through a
// queue and a wake-up pipe.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backoff.h"
#include "config.h"
#include "db.h"
#include "hint_gate.h"
#include "http_client.h"
#include "inference.h"
#include "metrics.h"

namespace execguard::runner {

// Installs SIGTERM/SIGINT/SIGHUP handlers (and ignores SIGPIPE). The
// handlers only count the signal and write to the runner's wake-up pipe.
void install_signal_handlers();

class Runner {
public:
    Runner(const Config& config, RunnerMetrics& metrics, std::atomic<bool>& db_up);
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    // Runs until a shutdown signal has been handled; returns the exit code.
    int run();

private:
    enum class StopReason { cancelled, lease_lost, shutdown };

    struct InFlight {
        ClaimedExecution claim;
        const RegionEndpoint* endpoint = nullptr;
        std::string model_sent;
        TimePoint next_heartbeat;
        bool probe = false;             // the single call a half-open breaker lets through
        int connection_generation = 0;  // which work connection claimed it
    };

    struct PendingWrite {
        enum class Kind { complete, fail, release } kind;
        ClaimedExecution claim;  // payload dropped; ids and labels for logs
        nlohmann::json result;
        std::string error;
        ErrorClass error_class = ErrorClass::none;
        bool retryable = false;
        std::optional<double> retry_after_seconds;
    };

    void wake();
    void handle_signals(TimePoint now);
    void try_connect(TimePoint now);
    void handle_db_error(const DbError& e, const char* during);
    // Reads the notifications that arrived; they only feed the hint gates.
    void process_notifications();
    // After an execguard_cancel hint (coalesced by cancel_hints_), asks the
    // database about every call in flight and stops those no longer ours.
    void check_states_on_hint(TimePoint now);
    // One execution_state round trip for these calls (execution id ->
    // transfer id); stops each call the database no longer leaves to this
    // runner, a cancelled one as cancelled, anything else as a lost lease.
    // `refused_by_heartbeat`: a heartbeat already refused them all, so each
    // stops whatever the answer (unknown counts as a lost lease). Otherwise
    // a call stops only on the database's word: still running under our
    // token, or no answer, and it carries on.
    void stop_calls_no_longer_ours(const std::map<std::int64_t, std::uint64_t>& transfer_of, bool refused_by_heartbeat);
    void process_http_completions(TimePoint now);
    void flush_writes();
    // One complete_executions round trip for up to 200 queued completions;
    // false when none was queued.
    bool write_completion_batch();
    void send_heartbeats(TimePoint now);
    // A free slot, and no call of an earlier connection in flight (see
    // connection_generation_): what claim() needs before it asks.
    bool may_claim() const;
    void claim(TimePoint now);
    void start_execution(ClaimedExecution claim, bool probe, TimePoint now);
    // claim_next for these regions, counted; nullopt after a query error that
    // left the connection up (logged). A lost connection throws.
    std::optional<std::vector<ClaimedExecution>> claim_for(int max_claims, const std::vector<std::string>& regions);
    void stop_in_flight(std::uint64_t transfer_id, StopReason reason);
    void update_breakers(TimePoint now);
    void wait(TimePoint now);
    void log_state(const char* event);

    const Config& config_;
    RunnerMetrics& metrics_;
    std::atomic<bool>& db_up_;
    DbConnection db_;
    HttpClient http_;
    int wake_pipe_[2] = {-1, -1};

    std::mutex completions_mutex_;
    std::vector<HttpCompletion> completions_;  // filled by the HTTP thread

    std::map<std::uint64_t, InFlight> in_flight_;  // by transfer id
    std::uint64_t next_transfer_id_ = 0;
    std::deque<PendingWrite> pending_writes_;

    std::map<std::string, CircuitBreaker> breakers_;
    std::map<std::string, CircuitBreaker::State> breaker_reported_;
    std::map<std::string, TimePoint> next_probe_claim_;
    ExponentialBackoff retry_backoff_;
    ExponentialBackoff reconnect_backoff_;

    // Notifications are hints (see hint_gate.h): at most one claim_next and
    // one execution_state check per spacing, whatever arrives.
    HintGate work_hints_;
    HintGate cancel_hints_;
    bool claim_wanted_ = true;
    TimePoint next_poll_{};
    int reconnect_failures_ = 0;
    TimePoint next_reconnect_{};
    bool ever_connected_ = false;
    // Bumped on every (re)connection. claim_next rescues running rows whose
    // owner backend is gone, and after a reconnection that includes our own
    // in-flight rows (their owner is our old session); so no claiming while
    // executions claimed on an earlier connection are still in flight.
    int connection_generation_ = 0;

    int stop_signals_seen_ = 0;
    int hup_signals_seen_ = 0;
    bool shutting_down_ = false;
    TimePoint shutdown_deadline_{};
};

}  // namespace execguard::runner
