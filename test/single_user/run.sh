#!/usr/bin/env bash
# test/single_user/run.sh: a single-user backend (postgres --single, what a
# DBA runs to recover from transaction-ID wraparound or a damaged catalog)
# with execguard preloaded makes a tracked claim, reads the counters and
# exits cleanly. Its owner-exit callback must not touch shared memory that
# the single-user process has already detached at exit. The key comes from
# submit_job (a claim of a key no job submitted is refused), and the claim
# asks for owner tracking (track_owner => true; the default is false since
# 0.6.0): a tracked claim is what registers the callback under a
# postmaster, and what extension/pg/owner.cpp must skip here.
#
#   test/single_user/run.sh
#
# Runs as root (the backend as the 'postgres' user) or as the server's user;
# the data directory is .run/single-user-<pid>, removed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/lib.sh"
PG_BIN=${PG_BIN:-$(eg_pg_bin)}

dir=$root/.run/single-user-$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
eg_initdb "$dir"
echo "shared_preload_libraries = 'execguard'" >>"$dir/data/postgresql.conf"

status=0
eg_as_server_user "$PG_BIN/postgres" --single -D "$dir/data" postgres >"$dir/out.log" 2>&1 <<'SQL' || status=$?
CREATE EXTENSION execguard;
SELECT executions_created FROM execguard.submit_job('{"id": "single-user", "models": ["m"], "regions": ["r"], "questions": ["q"]}');
SELECT outcome FROM execguard.claim_execution('single-user', 'm', 'r', 'q', 'dba', track_owner => true);
SELECT owner_pid IS NOT NULL AS tracked FROM execguard.executions WHERE job_id = 'single-user';
SELECT claims_claimed FROM execguard.stats;
SQL

fail() { echo "single-user: $1" >&2; sed 's/^/  /' "$dir/out.log" >&2; exit 1; }
[ "$status" -eq 0 ] || fail "postgres --single exited with status $status"
grep -q 'executions_created = "1"' "$dir/out.log" || fail "submit_job did not create the key"
grep -q 'outcome = "claimed"' "$dir/out.log" || fail "the claim was not granted"
grep -q 'tracked = "t"' "$dir/out.log" || fail "the claim is not tied to the backend (owner_pid not set)"
grep -q 'claims_claimed = "1"' "$dir/out.log" || fail "the counter did not count the claim"
! grep -qE 'ERROR|PANIC|FATAL' "$dir/out.log" || fail "the backend reported an error"
echo "single-user: clean exit after a tracked claim"
