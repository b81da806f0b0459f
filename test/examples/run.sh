#!/usr/bin/env bash
# test/examples/run.sh: runs the three example workers (examples/python,
# examples/node, examples/go) together against a throwaway cluster and the
# fake inference server, and checks with SQL what they did:
#
#   1. exactly once: 48 units, three workers at once (the Go one filtered to
#      two models), until idle: every unit completed once, on its first grant,
#      with its answer, and the fake server saw exactly one call per unit;
#   2. heartbeat: calls of 7 s under a 3 s lease, and a rescuer polling
#      claim_next all the while: the heartbeats keep every claim;
#   3. cancel: cancel_job while every worker is inside a slow call: the calls
#      are aborted, the rows are cancelled, nothing is written after;
#   4. retry: a 429 (with Retry-After) and a 500 on each unit's first call are
#      failed retryably and completed by a later grant after the backoff; a
#      400 fails the unit for good; a Retry-After past fail_execution's
#      limit is capped;
#   5. SIGTERM: a call that ends within the grace period is completed, one
#      that does not is aborted and released (its attempt given back).
#
# The workers connect as a role granted only what docs/security.md grants a
# runner. Exit 0 only when every check passes; the last line says how many
# passed and failed. Needs the Debian packages python3-psycopg, nodejs,
# node-pg, golang-go and golang-github-lib-pq-dev (scripts/install-deps.sh).
# EXAMPLES_KEEP=1 keeps the temporary folder (logs, cluster) for a look.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PY=/usr/bin/python3 # Debian's, which has psycopg 3 (not a pyenv one in PATH)
NODE=/usr/bin/node  # Debian's, which finds node-pg in /usr/share/nodejs

passed=0 failed=0
pids=() fake_pid=""
tmp=$(mktemp -d /tmp/execguard-examples.XXXXXX)
chmod 755 "$tmp" # the postgres user runs the cluster below it

cleanup() {
    local pid
    for pid in "${pids[@]}" $fake_pid; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/pgcluster.sh destroy "$tmp/cluster" >/dev/null 2>&1 || true
    if [ "${EXAMPLES_KEEP:-0}" = 1 ]; then echo "test/examples: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "test/examples: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $1"; }

# --- prerequisites ------------------------------------------------------------
$PY -c 'import psycopg' 2>/dev/null || die "python3-psycopg is missing (scripts/install-deps.sh)"
$NODE -e 'require("pg")' 2>/dev/null || die "node-pg is missing, or $NODE is not Debian's nodejs (scripts/install-deps.sh)"
command -v go >/dev/null || die "golang-go is missing (scripts/install-deps.sh)"
[ -d /usr/share/gocode/src/github.com/lib/pq ] || die "golang-github-lib-pq-dev is missing (scripts/install-deps.sh)"

# Offline, from Debian's package: GOPATH mode finds lib/pq in /usr/share/gocode.
GO111MODULE=off GOPATH="$tmp/gopath:/usr/share/gocode" GOCACHE="$tmp/gocache" \
    go build -o "$tmp/go-worker" examples/go/worker.go || die "examples/go/worker.go does not build"

scripts/pgcluster.sh start "$tmp/cluster" >/dev/null
. "$tmp/cluster/env"
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -U postgres "$@"; }
# The workers' role: exactly the runner's grants of docs/security.md.
q <<'SQL'
CREATE ROLE example_worker LOGIN;
GRANT USAGE ON SCHEMA execguard TO example_worker;
GRANT EXECUTE ON FUNCTION
    execguard.claim_next(text, int, interval, text[], text[], boolean),
    execguard.heartbeat(bigint, bigint, interval),
    execguard.complete_execution(bigint, bigint, jsonb),
    execguard.fail_execution(bigint, bigint, text, boolean, interval),
    execguard.release_execution(bigint, bigint),
    execguard.execution_state(bigint, bigint),
    execguard.queue_summary()
  TO example_worker;
SQL

$PY test/fake_inference/fake_server.py >"$tmp/fake.port" 2>"$tmp/fake.log" &
fake_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/fake.port" ] && break; sleep 0.1; done
FAKE=http://127.0.0.1:$(head -n 1 "$tmp/fake.port")
[ -s "$tmp/fake.port" ] || die "the fake inference server did not start"
control() { curl -sf -X POST -d "$1" "$FAKE/_control" >/dev/null; }
in_progress() { curl -sf "$FAKE/_requests" | $PY -c 'import json,sys; print(json.load(sys.stdin)["in_progress"])'; }

# --- helpers ------------------------------------------------------------------
# start_workers SCENARIO [VAR=VALUE...]: the three workers, in the background.
start_workers() {
    local scenario=$1
    shift
    local common=(PGUSER=example_worker PGSSLMODE=disable "EXECGUARD_EXAMPLE_BASE_URL=$FAKE/{region}" "$@")
    pids=()
    env "${common[@]}" EXECGUARD_WORKER_ID=ex-python $PY examples/python/worker.py >"$tmp/$scenario-python.log" 2>&1 &
    pids+=($!)
    # The Node worker gets its database as a URL (TCP), the others from PG* (socket).
    env "${common[@]}" EXECGUARD_WORKER_ID=ex-node "EXECGUARD_DSN=postgresql://example_worker@127.0.0.1:$PGPORT/$PGDATABASE" \
        $NODE examples/node/worker.js >"$tmp/$scenario-node.log" 2>&1 &
    pids+=($!)
    env "${common[@]}" EXECGUARD_WORKER_ID=ex-go EXECGUARD_MODELS="${GO_MODELS:-}" \
        "$tmp/go-worker" >"$tmp/$scenario-go.log" 2>&1 &
    pids+=($!)
}

# wait_workers SCENARIO SECONDS: each worker must exit 0 within SECONDS.
wait_workers() {
    local scenario=$1 deadline=$((SECONDS + $2)) i lang rc
    local langs=(python node go)
    for i in 0 1 2; do
        lang=${langs[$i]}
        while kill -0 "${pids[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            not_ok "$scenario: the $lang worker exits within $2 s"
        fi
        rc=0
        wait "${pids[$i]}" || rc=$?
        if [ $rc = 0 ]; then ok "$scenario: the $lang worker exits 0"; else
            not_ok "$scenario: the $lang worker exits 0 (exit $rc); its log:"
            tail -n 15 "$tmp/$scenario-$lang.log" | sed 's/^/    /'
        fi
    done
    pids=()
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_until() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        [ $SECONDS -lt $deadline ] || { not_ok "timed out waiting for $what"; return 1; }
        sleep 0.1
    done
}
calls_in_flight() { [ "$(in_progress)" = "$1" ]; }

# check DESCRIPTION SQL: SQL returns what is wrong; no rows means the check holds.
check() {
    local out
    if ! out=$(q -c "$2" 2>&1); then
        not_ok "$1 (the query failed)"
        echo "$out" | sed 's/^/    /'
    elif [ -n "$out" ]; then
        not_ok "$1; found:"
        echo "$out" | head -n 20 | sed 's/^/    /'
    else
        ok "$1"
    fi
}

# load_requests: the fake server's request log as the table requests.
load_requests() {
    curl -sf "$FAKE/_requests" >"$tmp/requests.json"
    q <<SQL
SET client_min_messages = warning;
\set log \`cat $tmp/requests.json\`
DROP TABLE IF EXISTS requests;
CREATE TABLE requests AS
SELECT (r->>'seq')::int AS seq, r->>'region' AS region, r->>'model' AS model, r->>'prompt' AS prompt,
       r->>'idempotency_key' AS idempotency_key, r->>'worker' AS worker, r->>'mode' AS mode,
       r->>'outcome' AS outcome, (r->>'received_at')::float8 AS received_at
  FROM jsonb_array_elements(:'log'::jsonb->'requests') AS r;
SQL
}

# new_scenario: earlier jobs cancelled (a failed scenario may leave work that
# would keep the next one's idle workers waiting), counters and the fake
# server's settings and request log reset.
new_scenario() {
    q -c "SELECT execguard.cancel_job(job_id) FROM execguard.jobs WHERE cancelled_at IS NULL" >/dev/null
    q -c "SELECT execguard.stats_reset()" >/dev/null
    control '{"reset": true}'
}

# stats_are SCENARIO 'col = n AND ...': the counters since the scenario's stats_reset.
stats_are() { check "$1: counters $2" "SELECT s.* FROM execguard.stats s WHERE NOT ($2)"; }

# The calls of one job's executions (joined on what the worker sends).
CALLS="SELECT e.*, r.seq, r.mode, r.outcome, r.idempotency_key, r.worker AS sent_by, r.received_at
         FROM execguard.executions e
         JOIN requests r ON r.region = e.region AND r.model = e.model_id AND r.prompt = e.payload->>'prompt'"

# --- 1. exactly once ------------------------------------------------------------
echo "# 1. exactly once: 3 models x 2 regions x 8 questions, three workers at once"
new_scenario
control '{"latency": 1}'
q -c "SELECT * FROM execguard.submit_job('{\"id\": \"ex-once\", \"models\": [\"m-a\", \"m-b\", \"m-c\"],
        \"regions\": [\"r-east\", \"r-west\"], \"params\": {\"temperature\": 0, \"max_tokens\": 16},
        \"questions\": [\"q1\", \"q2\", \"q3\", \"q4\", \"q5\", \"q6\", \"q7\", \"q8\"]}')" >/dev/null
GO_MODELS=m-a,M-B start_workers once EXECGUARD_EXIT_WHEN_IDLE=1
# Slow first calls until each worker is in one, so that each has work
# however slowly it starts; then quick ones.
wait_until 30 "three calls in flight" calls_in_flight 3 || true
control '{"latency": 0.05}'
wait_workers once 90
load_requests
check "once: 48 executions, all completed" \
    "SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM execguard.executions
      WHERE job_id = 'ex-once' HAVING count(*) <> 48 OR count(*) FILTER (WHERE status = 'completed') <> 48"
check "once: every unit completed on its first grant (attempt 1, fencing token 1)" \
    "SELECT execution_id, attempt, fencing_token FROM execguard.executions
      WHERE job_id = 'ex-once' AND (attempt <> 1 OR fencing_token <> 1)"
check "once: every result is the answer to its own prompt, stored by the worker that holds the row" \
    "SELECT execution_id, worker, result FROM execguard.executions WHERE job_id = 'ex-once'
      AND (result->>'text' IS DISTINCT FROM 'fake answer to: ' || (payload->>'prompt')
           OR result->>'worker' IS DISTINCT FROM worker OR error IS NOT NULL)"
check "once: each of the three workers completed some units" \
    "SELECT w FROM unnest('{ex-python,ex-node,ex-go}'::text[]) w
      WHERE NOT EXISTS (SELECT FROM execguard.executions WHERE job_id = 'ex-once' AND worker = w)"
check "once: the Go worker, filtered to m-a and M-B, took only those models" \
    "SELECT execution_id, model_id FROM execguard.executions
      WHERE job_id = 'ex-once' AND worker = 'ex-go' AND model_id NOT IN ('m-a', 'm-b')"
check "once: the fake server received exactly one call per unit, from its holder, with its grant's key" \
    "SELECT execution_id, count(seq), min(sent_by), min(idempotency_key) FROM ($CALLS) c
      WHERE job_id = 'ex-once' GROUP BY execution_id, worker, fencing_token
     HAVING count(seq) <> 1 OR min(sent_by) <> worker
         OR min(idempotency_key) <> format('execguard-%s-%s', execution_id, fencing_token)"
check "once: no call outside the job's units (48 calls in all)" \
    "SELECT count(*) FROM requests HAVING count(*) <> 48"
stats_are once "claims_claimed = 48 AND claims_reclaimed = 0 AND executions_completed = 48 AND stale_writes_rejected = 0"

# --- 2. heartbeat ------------------------------------------------------------------
echo "# 2. heartbeats keep a call longer than the lease from being rescued"
new_scenario
control '{"latency": 7}'
q -c "SELECT * FROM execguard.submit_job('{\"id\": \"ex-heartbeat\", \"models\": [\"m-a\", \"m-b\", \"m-c\"],
        \"regions\": [\"r-east\"], \"questions\": [\"q1\"]}')" >/dev/null
start_workers heartbeat EXECGUARD_EXIT_WHEN_IDLE=1 EXECGUARD_LEASE_SECONDS=3
if wait_until 30 "three calls in flight" calls_in_flight 3; then
    # A rescuer: claim_next takes over any running execution whose lease ran out.
    for _ in $(seq 1 25); do
        q -c "SELECT execution_id FROM execguard.claim_next('rescuer', 10, '1 minute', track_owner => false)" >>"$tmp/rescued"
        sleep 0.3
    done
fi
wait_workers heartbeat 30
if [ -s "$tmp/rescued" ]; then not_ok "heartbeat: a rescuer polling for 7 s took over nothing"; else
    ok "heartbeat: a rescuer polling for 7 s took over nothing"; fi
check "heartbeat: the 3 calls of 7 s with a 3 s lease completed on their first grant" \
    "SELECT count(*), array_agg(status || ' ' || attempt || ' ' || fencing_token) FROM execguard.executions
      WHERE job_id = 'ex-heartbeat' HAVING count(*) <> 3 OR bool_or(status <> 'completed' OR fencing_token <> 1)"
stats_are heartbeat "claims_claimed = 3 AND claims_reclaimed = 0 AND executions_completed = 3 AND stale_writes_rejected = 0"

# --- 3. cancel --------------------------------------------------------------------
echo "# 3. cancel_job while every worker is inside a slow call"
new_scenario
control '{"latency": 60}'
q -c "SELECT * FROM execguard.submit_job('{\"id\": \"ex-cancel\", \"models\": [\"m-a\", \"m-b\", \"m-c\"],
        \"regions\": [\"r-east\"], \"questions\": [\"q1\", \"q2\"]}')" >/dev/null
start_workers cancel EXECGUARD_EXIT_WHEN_IDLE=1 EXECGUARD_LEASE_SECONDS=3
if wait_until 30 "three calls in flight" calls_in_flight 3; then
    q -c "SELECT execguard.cancel_job('ex-cancel')" >/dev/null
fi
wait_workers cancel 20 # heartbeats every second: far less than the 60 s calls
load_requests
check "cancel: all 6 executions cancelled, no result stored" \
    "SELECT execution_id, status, result FROM execguard.executions
      WHERE job_id = 'ex-cancel' AND (status <> 'cancelled' OR result IS NOT NULL)"
check "cancel: three calls, each aborted by its worker (the server saw the client go away)" \
    "SELECT count(*), array_agg(outcome) FROM requests
     HAVING count(*) <> 3 OR bool_or(outcome <> 'client_aborted')"
stats_are cancel "executions_cancelled = 6 AND executions_completed = 0 AND stale_writes_rejected = 0 AND writes_after_cancel = 3" # 3 heartbeats refused as cancelled (not stale), no write after
for lang in python node go; do
    if grep -q "stopped id=.* reason=cancelled" "$tmp/cancel-$lang.log"; then
        ok "cancel: the $lang worker learnt from execution_state that the job was cancelled"
    else
        not_ok "cancel: the $lang worker learnt from execution_state that the job was cancelled"
    fi
done

# --- 4. retry ---------------------------------------------------------------------
echo "# 4. a 429 and a 500 on each unit's first call are retried; a 400 is not"
new_scenario
control '{"region": "r-429", "mode": "429", "retry_after": 1, "count": 2}'
control '{"region": "r-500", "mode": "500", "count": 2}'
control '{"region": "r-400", "mode": "raw", "status": 400, "body": "{\"error\": \"bad request\"}", "count": 2}'
q -c "SELECT * FROM execguard.submit_job('{\"id\": \"ex-retry\", \"questions\": [\"q1\", \"q2\"],
        \"models\": [{\"id\": \"m-a\", \"regions\": [\"r-429\", \"r-500\"]}, {\"id\": \"m-z\", \"regions\": [\"r-400\"]}]}')" >/dev/null
start_workers retry EXECGUARD_EXIT_WHEN_IDLE=1
wait_workers retry 60
load_requests
check "retry: the 429 and 500 units completed on their second grant, with their answer and no error left" \
    "SELECT execution_id, region, status, attempt, fencing_token, error FROM execguard.executions
      WHERE job_id = 'ex-retry' AND region IN ('r-429', 'r-500')
        AND (status <> 'completed' OR attempt <> 2 OR fencing_token <> 2 OR error IS NOT NULL
             OR result->>'text' IS DISTINCT FROM 'fake answer to: ' || (payload->>'prompt'))"
check "retry: each of them was called twice, first failing (grant 1), then answered (grant 2)" \
    "SELECT execution_id, array_agg(mode || ' ' || idempotency_key ORDER BY seq) FROM ($CALLS) c
      WHERE job_id = 'ex-retry' AND region IN ('r-429', 'r-500') GROUP BY execution_id, region
     HAVING array_agg(mode || ' ' || idempotency_key ORDER BY seq) <> ARRAY[
            substr(region, 3) || ' execguard-' || execution_id || '-1', 'ok execguard-' || execution_id || '-2']"
check "retry: the second call came after the backoff (Retry-After: 1 s; execguard's own: at least 1 s)" \
    "SELECT execution_id, max(received_at) - min(received_at) AS gap FROM ($CALLS) c
      WHERE job_id = 'ex-retry' AND region IN ('r-429', 'r-500') GROUP BY execution_id
     HAVING max(received_at) - min(received_at) < 0.9"
check "retry: the 400 units failed for good after one call, error class permanent" \
    "SELECT execution_id, status, attempt, error, count(seq) FROM ($CALLS) c
      WHERE job_id = 'ex-retry' AND region = 'r-400' GROUP BY execution_id, status, attempt, error
     HAVING status <> 'failed' OR attempt <> 1 OR error NOT LIKE 'permanent: HTTP 400%' OR count(seq) <> 1"
stats_are retry "claims_claimed = 10 AND retries_scheduled = 4 AND executions_failed = 2 AND executions_completed = 4 AND stale_writes_rejected = 0"

new_scenario # each worker holds one unit when the 429 comes: all three answer it
control '{"latency": 4, "mode": "429", "retry_after": "99999999999999999999", "count": 3}'
q -c "SELECT * FROM execguard.submit_job('{\"id\": \"ex-retry-after\", \"models\": [\"m-a\", \"m-b\", \"m-c\"],
        \"regions\": [\"r-east\"], \"questions\": [\"q1\"]}')" >/dev/null
start_workers retry-after EXECGUARD_EXIT_WHEN_IDLE=1
wait_until 30 "three calls in flight" calls_in_flight 3 || true
rows_backing_off() {
    [ "$(q -c "SELECT count(*) FROM execguard.executions WHERE job_id = 'ex-retry-after'
                  AND status = 'pending' AND error IS NOT NULL")" = 3 ]
}
wait_until 30 "three failed calls" rows_backing_off || true
check "retry: a Retry-After of 10^20 s is capped at a day (fail_execution refuses over 30 days)" \
    "SELECT execution_id, status, attempt, not_before - now() AS wait, error FROM execguard.executions
      WHERE job_id = 'ex-retry-after' AND (status <> 'pending' OR attempt <> 1 OR error NOT LIKE 'rate_limit: HTTP 429%'
            OR not_before NOT BETWEEN now() + interval '23 hours' AND now() + interval '25 hours')"
q -c "SELECT execguard.cancel_job('ex-retry-after')" >/dev/null
wait_workers retry-after 20 # they survived the 429 and go idle once the job is cancelled

# --- 5. SIGTERM ---------------------------------------------------------------------
echo "# 5. SIGTERM: finish the call within the grace period, else release it"
signal_workers() { local pid; for pid in "${pids[@]}"; do kill -TERM "$pid"; done; }
new_scenario
control '{"latency": 2}'
q -c "SELECT * FROM execguard.submit_job('{\"id\": \"ex-term-finish\", \"models\": [\"m-a\"], \"regions\": [\"r-east\"],
        \"questions\": [\"q1\", \"q2\", \"q3\", \"q4\", \"q5\", \"q6\"]}')" >/dev/null
start_workers term-finish EXECGUARD_GRACE_SECONDS=30
wait_until 30 "three calls in flight" calls_in_flight 3 && signal_workers
wait_workers term-finish 20 # they exit: they claimed nothing more (no --exit-when-idle here)
load_requests
check "SIGTERM, 2 s calls, 30 s grace: each unit called (3 at least) was completed" \
    "SELECT count(*), array_agg(e.status) FROM requests r
       LEFT JOIN execguard.executions e ON e.job_id = 'ex-term-finish' AND r.prompt = e.payload->>'prompt'
     HAVING count(*) < 3 OR bool_or(e.status IS DISTINCT FROM 'completed' OR r.outcome <> 'ok')"
check "SIGTERM, 2 s calls, 30 s grace: each unit not called is still pending, never granted" \
    "SELECT execution_id, status, attempt FROM execguard.executions e WHERE job_id = 'ex-term-finish'
        AND NOT EXISTS (SELECT FROM requests r WHERE r.prompt = e.payload->>'prompt')
        AND (status <> 'pending' OR attempt <> 0)"

new_scenario
control '{"latency": 60}'
q -c "SELECT * FROM execguard.submit_job('{\"id\": \"ex-term-release\", \"models\": [\"m-a\"], \"regions\": [\"r-east\"],
        \"questions\": [\"q1\", \"q2\", \"q3\", \"q4\", \"q5\", \"q6\"]}')" >/dev/null
start_workers term-release EXECGUARD_GRACE_SECONDS=1
wait_until 30 "three calls in flight" calls_in_flight 3 && signal_workers
wait_workers term-release 20
load_requests
check "SIGTERM, 60 s calls, 1 s grace: the 3 claimed units released (pending, attempt given back)" \
    "SELECT status, attempt, fencing_token, count(*) FROM execguard.executions WHERE job_id = 'ex-term-release' GROUP BY 1, 2, 3
     EXCEPT SELECT * FROM (VALUES ('pending', 0, 1, 3), ('pending', 0, 0, 3)) v(s, a, t, n)"
check "SIGTERM, 60 s calls, 1 s grace: the 3 calls were aborted" \
    "SELECT count(*), array_agg(outcome) FROM requests HAVING count(*) <> 3 OR bool_or(outcome <> 'client_aborted')"
stats_are SIGTERM "executions_released = 3 AND stale_writes_rejected = 0"

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
