#!/usr/bin/env bash
# bench/bigjobs/run.sh: what submit_job of a big job costs, in time and in
# backend memory, against a plain INSERT ... SELECT of the same rows, in one
# run against one cluster.
#
#   bench/bigjobs/run.sh [--quick]
#
# Scenarios (units = questions x models x regions):
#   wide     QUESTIONS questions x 1 model x 1 region
#   fanout   QUESTIONS/10 questions x 5 models x 2 regions
# Each builds its spec into a table first (not timed), then, in a fresh
# session, runs execguard.submit_job(spec) and reads the backend's peak
# resident memory (VmHWM of /proc/<backend pid>/status; the script must run
# as the user that owns the server processes, or root) and its shared part
# (RssShmem: shared_buffers pages the backend touched, bounded by
# shared_buffers, not by the job). The baseline, in another fresh session,
# inserts the same rows (same keys, the same payload built by
# jsonb_build_object, ON CONFLICT DO NOTHING, RETURNING into the queue) with
# a plain INSERT ... SELECT from generate_series into copies of
# execguard.executions and execguard.queue (CREATE TABLE ... LIKE ...
# INCLUDING ALL, plus the queue's foreign key). The tables are emptied,
# vacuumed and checkpointed before each timed statement.
#
# Figures printed: seconds, VmHWM and RssShmem in MB, and the ratio
# baseline seconds / submit_job seconds (target >= 0.5).
# The exit status is 0 when everything ran and the row counts add up,
# whatever the figures.
#
# Environment: PGHOST/PGPORT/... (else a throwaway stock cluster,
# EG_CLUSTER_STOCK=1), QUESTIONS (1000000).
# --quick: QUESTIONS 100000 (the smoke run: checks that it runs and adds
# up, not the figures).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

if [ "${1:-}" = --quick ]; then
    QUESTIONS=${QUESTIONS:-100000}
fi
QUESTIONS=${QUESTIONS:-1000000}

fail() { echo "bench/bigjobs: $*" >&2; exit 1; }

if [ -z "${PGHOST:-}" ] && [ -z "${PGPORT:-}" ]; then
    export EG_CLUSTER_STOCK=1
fi
bench_cluster bigjobs
machine_line

sql <<'SQL'
DROP TABLE IF EXISTS bigjobs_spec, bigjobs_queue, bigjobs_executions;
CREATE TABLE bigjobs_spec (scenario text PRIMARY KEY, spec jsonb, questions int, models text[], regions text[]);
CREATE TABLE bigjobs_executions (LIKE execguard.executions INCLUDING ALL);
CREATE TABLE bigjobs_queue (LIKE execguard.queue INCLUDING ALL,
    FOREIGN KEY (execution_id) REFERENCES bigjobs_executions (execution_id) ON DELETE CASCADE);
SQL

# scenario questions models regions
make_spec() {
    sql -v scenario="$1" -v questions="$2" -v models="$3" -v regions="$4" <<'SQL'
INSERT INTO bigjobs_spec
SELECT :'scenario',
       jsonb_build_object('id', 'bigjobs-' || :'scenario', 'models', to_jsonb(:'models'::text[]),
                          'regions', to_jsonb(:'regions'::text[]),
                          'questions', (SELECT jsonb_agg('question number ' || g ORDER BY g)
                                          FROM generate_series(1, :questions) g)),
       :questions, :'models'::text[], :'regions'::text[];
SQL
}

empty_tables() {
    sql <<'SQL'
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, bigjobs_queue, bigjobs_executions;
VACUUM ANALYZE execguard.queue, execguard.executions, execguard.jobs, bigjobs_queue, bigjobs_executions;
CHECKPOINT;
SQL
}

# timed_session SQL: runs SQL in a fresh session under \timing and prints
# "<ms> <VmHWM kB> <RssShmem kB> <rows line>".
timed_session() {
    local out
    out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -At <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv BIGJOBS_PID :pid
\timing on
$1
\timing off
\! grep -E '^(VmHWM|RssShmem):' /proc/\$BIGJOBS_PID/status | tr -s ' \t' ' '
SQL
) || fail "statement failed: $1"
    local ms hwm shm rows
    ms=$(echo "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1)
    hwm=$(echo "$out" | sed -n 's/^VmHWM: \([0-9]*\) kB/\1/p')
    shm=$(echo "$out" | sed -n 's/^RssShmem: \([0-9]*\) kB/\1/p')
    rows=$(echo "$out" | grep -v -E '^(Time:|VmHWM:|RssShmem:)' | tail -n 1)
    if [ -z "$ms" ] || [ -z "$hwm" ]; then fail "no timing or no VmHWM in: $out"; fi
    echo "$ms $hwm $shm $rows"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
sec() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }

# scenario questions models regions
run_scenario() {
    local scenario=$1 questions=$2 models=$3 regions=$4 units
    make_spec "$scenario" "$questions" "$models" "$regions"
    units=$(sql -c "SELECT questions * cardinality(models) * cardinality(regions) FROM bigjobs_spec WHERE scenario = '$scenario'")

    empty_tables
    read -r eg_ms eg_hwm eg_shm eg_rows < <(timed_session \
        "SELECT executions_created FROM execguard.submit_job((SELECT spec FROM bigjobs_spec WHERE scenario = '$scenario'));")
    [ "$eg_rows" = "$units" ] || fail "$scenario: submit_job created $eg_rows units, expected $units"
    [ "$(sql -c 'SELECT count(*) FROM execguard.queue')" = "$units" ] || fail "$scenario: queue rows differ"

    empty_tables
    read -r base_ms base_hwm base_shm base_rows < <(timed_session "
WITH created AS (
  INSERT INTO bigjobs_executions (job_id, model_id, region, question_id, max_attempts, payload)
  SELECT 'bigjobs-$scenario', m, r, q, 3,
         jsonb_build_object('job_id', 'bigjobs-$scenario', 'model_id', m, 'model_name', m, 'provider', NULL,
                            'region', r, 'question_id', q, 'prompt', q, 'params', NULL)
    FROM bigjobs_spec s, unnest(s.models) m, unnest(s.regions) r,
         LATERAL (SELECT 'question number ' || g AS q FROM generate_series(1, s.questions) g) g
   WHERE s.scenario = '$scenario'
  ON CONFLICT (job_id, model_id, region, question_id) DO NOTHING
  RETURNING execution_id, region, model_id),
queued AS (INSERT INTO bigjobs_queue (execution_id, region, model_id)
           SELECT execution_id, region, model_id FROM created)
SELECT count(*) FROM created;")
    [ "$base_rows" = "$units" ] || fail "$scenario: the baseline inserted $base_rows rows, expected $units"

    printf '%-8s %9s units  submit_job %7ss  VmHWM %6s MB (shared %4s MB)  |  INSERT...SELECT %7ss  VmHWM %6s MB (shared %4s MB)  |  ratio %s\n' \
        "$scenario" "$units" "$(sec "$eg_ms")" "$(mb "$eg_hwm")" "$(mb "$eg_shm")" \
        "$(sec "$base_ms")" "$(mb "$base_hwm")" "$(mb "$base_shm")" "$(ratio "$base_ms" "$eg_ms")"
}

run_scenario wide "$QUESTIONS" '{m1}' '{r1}'
run_scenario fanout "$((QUESTIONS / 10))" '{m1,m2,m3,m4,m5}' '{r1,r2}'
empty_tables
sql -c 'DROP TABLE bigjobs_spec, bigjobs_queue, bigjobs_executions'
