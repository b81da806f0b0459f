// runner/db.h: the runner's libpq layer.
//
// A DbConnection is used by one thread at a time (the caller holds a lock
// when it is shared); every PGresult is owned by a PgResult (unique_ptr
// with PQclear). The typed calls mirror the execguard SQL API and throw
// DbError; DbError::connection_lost() tells a dropped connection (reconnect
// and try again later) from an SQL error (whose message ends with its
// SQLSTATE).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <libpq-fe.h>

namespace execguard::runner {

struct PgResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

class DbError : public std::runtime_error {
public:
    DbError(const std::string& message, bool connection_lost)
        : std::runtime_error(message), connection_lost_(connection_lost) {}
    bool connection_lost() const { return connection_lost_; }

private:
    bool connection_lost_;
};

struct ClaimedExecution {
    std::int64_t execution_id = 0;
    std::int64_t fencing_token = 0;
    int attempt = 0;
    std::string job_id;
    std::string model_id;
    std::string region;
    std::string question_id;
    nlohmann::json payload;
};

struct HeartbeatResult {
    std::int64_t execution_id;
    bool still_held;
};

struct CompletionRequest {
    std::int64_t execution_id;
    std::int64_t fencing_token;
    nlohmann::json result;
};

struct Notification {
    std::string channel;
    std::string payload;
};

// Text of a PostgreSQL array literal, e.g. {"us-east","eu-west"}.
std::string to_pg_text_array(const std::vector<std::string>& values);
std::string to_pg_int8_array(const std::vector<std::int64_t>& values);
std::string to_pg_interval(double seconds);

class DbConnection {
public:
    // conninfo "" means libpq's defaults (PG* variables). application_name is
    // set so the runner's sessions are visible in pg_stat_activity.
    DbConnection(std::string conninfo, std::string application_name);
    ~DbConnection();
    DbConnection(const DbConnection&) = delete;
    DbConnection& operator=(const DbConnection&) = delete;

    void connect(double timeout_seconds);  // throws DbError
    void disconnect();
    bool connected() const;
    int socket() const;
    // Where it is connected, for logs (host, port, database, user; no password).
    std::string describe() const;

    PgResult exec(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});

    void listen(const std::vector<std::string>& channels);
    // Reads what has arrived on the socket; throws DbError when it is gone.
    std::vector<Notification> consume_notifications();

    std::vector<ClaimedExecution> claim_next(const std::string& worker, int max_claims, double lease_seconds,
                                             const std::vector<std::string>& regions,
                                             const std::vector<std::string>& models, bool track_owner);
    std::vector<HeartbeatResult> heartbeat(const std::vector<std::pair<std::int64_t, std::int64_t>>& held,
                                           double lease_seconds);
    // execguard.execution_state of each (execution_id, fencing_token): the
    // status while the token is the newest grant, "stale" once granted
    // again; ids without a row are left out.
    std::map<std::int64_t, std::string> execution_states(
        const std::vector<std::pair<std::int64_t, std::int64_t>>& grants);
    // Returns, per input, whether the completion was accepted.
    std::vector<bool> complete_executions(const std::vector<CompletionRequest>& completions);
    bool complete_execution(std::int64_t execution_id, std::int64_t fencing_token, const nlohmann::json& result);
    // 'retry_scheduled', 'failed' or 'stale'. `error` is made storable
    // (valid UTF-8, no NUL) here, whatever its source.
    std::string fail_execution(std::int64_t execution_id, std::int64_t fencing_token, const std::string& error,
                               bool retryable, std::optional<double> retry_after_seconds);
    bool release_execution(std::int64_t execution_id, std::int64_t fencing_token);

private:
    [[noreturn]] void throw_error(const std::string& what, const PGresult* result);

    std::string conninfo_;
    std::string application_name_;
    PGconn* conn_ = nullptr;
};

}  // namespace execguard::runner
