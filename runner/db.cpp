// runner/db.cpp
#include "db.h"

#include <poll.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "utf8.h"

namespace execguard::runner {

namespace {

std::string quote_array_element(const std::string& value) {
    std::string out = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

// A result as jsonb text. interpret_response already made every string
// storable; the handler is the last guard, so that a byte it missed costs
// a U+FFFD, not an exception out of the work loop.
std::string jsonb_text(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// (execution_id, fencing_token) pairs as the two bigint[] parameters of an
// unnest($1::bigint[], $2::bigint[]) statement.
std::pair<std::string, std::string> grant_arrays(const std::vector<std::pair<std::int64_t, std::int64_t>>& grants) {
    std::vector<std::int64_t> ids, tokens;
    for (const auto& [id, token] : grants) {
        ids.push_back(id);
        tokens.push_back(token);
    }
    return {to_pg_int8_array(ids), to_pg_int8_array(tokens)};
}

}  // namespace

std::string to_pg_text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out += ",";
        out += quote_array_element(values[i]);
    }
    return out + "}";
}

std::string to_pg_int8_array(const std::vector<std::int64_t>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out += ",";
        out += std::to_string(values[i]);
    }
    return out + "}";
}

std::string to_pg_interval(double seconds) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f seconds", seconds);
    return buf;
}

DbConnection::DbConnection(std::string conninfo, std::string application_name)
    : conninfo_(std::move(conninfo)), application_name_(std::move(application_name)) {}

DbConnection::~DbConnection() { disconnect(); }

void DbConnection::disconnect() {
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
}

bool DbConnection::connected() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

int DbConnection::socket() const { return conn_ ? PQsocket(conn_) : -1; }

std::string DbConnection::describe() const {
    if (!conn_) return "";
    std::string out = "host=";
    out += PQhost(conn_) ? PQhost(conn_) : "";
    out += " port=";
    out += PQport(conn_) ? PQport(conn_) : "";
    out += " dbname=";
    out += PQdb(conn_) ? PQdb(conn_) : "";
    out += " user=";
    out += PQuser(conn_) ? PQuser(conn_) : "";
    return out;
}

void DbConnection::connect(double timeout_seconds) {
    disconnect();
    const std::string timeout = std::to_string(std::max(1, static_cast<int>(std::ceil(timeout_seconds))));
    // The user's conninfo is expanded first (expand_dbname), the runner's own
    // keywords after it; libpq reads PG* variables for anything unset.
    const char* keywords[] = {"dbname", "application_name", "connect_timeout", nullptr};
    const char* values[] = {conninfo_.c_str(), application_name_.c_str(), timeout.c_str(), nullptr};
    conn_ = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (conn_ == nullptr) throw DbError("out of memory creating a connection", true);
    if (PQstatus(conn_) != CONNECTION_OK) {
        std::string message = PQerrorMessage(conn_);
        while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
        disconnect();
        throw DbError(message, true);
    }
}

void DbConnection::throw_error(const std::string& what, const PGresult* result) {
    std::string message = result ? PQresultErrorMessage(result) : "";
    if (message.empty() && conn_) message = PQerrorMessage(conn_);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    const bool lost = !connected();
    const char* sqlstate = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    throw DbError(what + ": " + message + (sqlstate ? std::string(" (SQLSTATE ") + sqlstate + ")" : ""), lost);
}

PgResult DbConnection::exec(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
    if (!conn_) throw DbError("not connected", true);
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    PgResult result(
        PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
    const auto status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) throw_error("query failed", result.get());
    return result;
}

void DbConnection::listen(const std::vector<std::string>& channels) {
    for (const auto& channel : channels) {
        char* quoted = PQescapeIdentifier(conn_, channel.c_str(), channel.size());
        if (!quoted) throw_error("LISTEN " + channel, nullptr);
        std::string sql = std::string("LISTEN ") + quoted;
        PQfreemem(quoted);
        exec(sql);
    }
}

std::vector<Notification> DbConnection::consume_notifications() {
    if (!conn_) throw DbError("not connected", true);
    if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) throw_error("connection lost", nullptr);
    std::vector<Notification> out;
    while (PGnotify* n = PQnotifies(conn_)) {
        out.push_back({n->relname ? n->relname : "", n->extra ? n->extra : ""});
        PQfreemem(n);
    }
    return out;
}

std::vector<ClaimedExecution> DbConnection::claim_next(const std::string& worker, int max_claims, double lease_seconds,
                                                       const std::vector<std::string>& regions,
                                                       const std::vector<std::string>& models, bool track_owner) {
    std::optional<std::string> models_param;
    if (!models.empty()) models_param = to_pg_text_array(models);
    // track_owner is always given, by name, never left to its default
    // (false since extension 0.6.0): true on the runner's own long-lived
    // session, so that a crashed runner's rows are rescued as soon as its
    // backend exits; false behind a pooler (Config::pooler_mode).
    auto result = exec(
        "SELECT execution_id, fencing_token, attempt, job_id, model_id, region, question_id, payload "
        "FROM execguard.claim_next($1, $2::int, $3::interval, $4::text[], $5::text[], track_owner => $6::boolean)",
        {worker, std::to_string(max_claims), to_pg_interval(lease_seconds), to_pg_text_array(regions), models_param,
         std::string(track_owner ? "true" : "false")});
    std::vector<ClaimedExecution> claimed;
    const int rows = PQntuples(result.get());
    for (int i = 0; i < rows; ++i) {
        ClaimedExecution e;
        e.execution_id = std::stoll(PQgetvalue(result.get(), i, 0));
        e.fencing_token = std::stoll(PQgetvalue(result.get(), i, 1));
        e.attempt = std::stoi(PQgetvalue(result.get(), i, 2));
        e.job_id = PQgetvalue(result.get(), i, 3);
        e.model_id = PQgetvalue(result.get(), i, 4);
        e.region = PQgetvalue(result.get(), i, 5);
        e.question_id = PQgetvalue(result.get(), i, 6);
        e.payload = nlohmann::json::parse(PQgetvalue(result.get(), i, 7), nullptr, false);
        claimed.push_back(std::move(e));
    }
    return claimed;
}

std::vector<HeartbeatResult> DbConnection::heartbeat(const std::vector<std::pair<std::int64_t, std::int64_t>>& held,
                                                     double lease_seconds) {
    auto [ids, tokens] = grant_arrays(held);
    // One statement for all of them; ordered by id so concurrent runners lock
    // rows in the same order.
    auto result = exec(
        "SELECT h.id, execguard.heartbeat(h.id, h.token, $3::interval) "
        "FROM unnest($1::bigint[], $2::bigint[]) AS h(id, token) ORDER BY h.id",
        {ids, tokens, to_pg_interval(lease_seconds)});
    std::vector<HeartbeatResult> out;
    for (int i = 0; i < PQntuples(result.get()); ++i)
        out.push_back({std::stoll(PQgetvalue(result.get(), i, 0)), PQgetvalue(result.get(), i, 1)[0] == 't'});
    return out;
}

std::map<std::int64_t, std::string> DbConnection::execution_states(
    const std::vector<std::pair<std::int64_t, std::int64_t>>& grants) {
    auto [ids, tokens] = grant_arrays(grants);
    auto result = exec(
        "SELECT g.id, execguard.execution_state(g.id, g.token) "
        "FROM unnest($1::bigint[], $2::bigint[]) AS g(id, token)",
        {ids, tokens});
    std::map<std::int64_t, std::string> out;
    for (int i = 0; i < PQntuples(result.get()); ++i)
        if (!PQgetisnull(result.get(), i, 1))
            out[std::stoll(PQgetvalue(result.get(), i, 0))] = PQgetvalue(result.get(), i, 1);
    return out;
}

std::vector<bool> DbConnection::complete_executions(const std::vector<CompletionRequest>& completions) {
    std::vector<std::int64_t> ids, tokens;
    nlohmann::json results = nlohmann::json::array();
    for (const auto& c : completions) {
        ids.push_back(c.execution_id);
        tokens.push_back(c.fencing_token);
        results.push_back(c.result);
    }
    auto result = exec(
        "SELECT c.execution_id, c.accepted FROM execguard.complete_executions($1::bigint[], $2::bigint[], "
        "ARRAY(SELECT r.value FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS r(value, position) "
        "ORDER BY r.position)) AS c",
        {to_pg_int8_array(ids), to_pg_int8_array(tokens), jsonb_text(results)});
    std::vector<bool> accepted(completions.size(), false);
    for (int i = 0; i < PQntuples(result.get()); ++i) {
        const std::int64_t id = std::stoll(PQgetvalue(result.get(), i, 0));
        const bool ok = PQgetvalue(result.get(), i, 1)[0] == 't';
        for (std::size_t k = 0; k < completions.size(); ++k)
            if (completions[k].execution_id == id) accepted[k] = ok;
    }
    return accepted;
}

bool DbConnection::complete_execution(std::int64_t execution_id, std::int64_t fencing_token,
                                      const nlohmann::json& result) {
    auto r = exec("SELECT execguard.complete_execution($1::bigint, $2::bigint, $3::jsonb)",
                  {std::to_string(execution_id), std::to_string(fencing_token), jsonb_text(result)});
    return PQgetvalue(r.get(), 0, 0)[0] == 't';
}

std::string DbConnection::fail_execution(std::int64_t execution_id, std::int64_t fencing_token,
                                         const std::string& error, bool retryable,
                                         std::optional<double> retry_after_seconds) {
    std::optional<std::string> retry_after;
    if (retry_after_seconds) retry_after = to_pg_interval(*retry_after_seconds);
    auto result = exec("SELECT execguard.fail_execution($1::bigint, $2::bigint, $3, $4::boolean, $5::interval)",
                       {std::to_string(execution_id), std::to_string(fencing_token), storable_text(error),
                        std::string(retryable ? "true" : "false"), retry_after});
    return PQgetvalue(result.get(), 0, 0);
}

bool DbConnection::release_execution(std::int64_t execution_id, std::int64_t fencing_token) {
    auto result = exec("SELECT execguard.release_execution($1::bigint, $2::bigint)",
                       {std::to_string(execution_id), std::to_string(fencing_token)});
    return PQgetvalue(result.get(), 0, 0)[0] == 't';
}

}  // namespace execguard::runner
