#!/usr/bin/env bash
# bench/retention/run.sh: what a purge of old jobs costs the claim path, on
# a STOCK server (EG_CLUSTER_STOCK=1, see bench/backlog/run.sh), in one go
# against one cluster.
#
#   bench/retention/run.sh [--quick]
#
# The database holds OLD_ROWS finished executions (jobs of ROWS_PER_JOB,
# finished 30 days ago; filled by INSERT ... SELECT as submit_job and the
# claims would have left them, which takes seconds instead of an hour) and
# PENDING pending executions (submit_job, jobs of 10,000 questions). CLIENTS
# pgbench clients run claim_next(w, 1) + complete_execution
# (bench/backlog/eg_claim.sql) for SECONDS_PER_RUN s, three times:
#   A1  no purge
#   B   while CALL execguard.purge('1 day', BATCH) deletes the old jobs, with
#       its default pause between batches (as long as each batch took)
#       (started one second before the run; the run reports whether the
#       purge was still going when it ended, since a purge that finishes
#       early would flatter the figure)
#   A2  no purge, after it (the deleted rows' dead versions now in the table)
# and prints B / mean(A1, A2): target >= 0.80. It also prints the purge's
# own rate (executions deleted per second, alone on the server after B's
# run ends, so the figure is the purge's time from start to end).
#
# The exit status is 0 when everything ran and added up, whatever the
# figures: non-zero on a pgbench error, a run that drained the pending
# backlog, a cycle count that differs from the executions completed, old
# executions left after the purge, jobs not left as tombstones, or
# counters that disagree.
#
# Environment: PGHOST/PGPORT/... (else a throwaway stock cluster), OLD_ROWS
# (1000000), ROWS_PER_JOB (10000), PENDING (300000), SECONDS_PER_RUN (20),
# CLIENTS (8), BATCH (10000, purge's max_executions), PAUSE (purge's pause;
# unset: its default), MODE (prepared).
# --quick: OLD_ROWS 100000, PENDING 40000, SECONDS_PER_RUN 4 (the smoke run
# of scripts/test.sh: checks that it all runs, not the figures).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

if [ "${1:-}" = --quick ]; then
    OLD_ROWS=${OLD_ROWS:-100000} PENDING=${PENDING:-40000} SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
fi
OLD_ROWS=${OLD_ROWS:-1000000}
ROWS_PER_JOB=${ROWS_PER_JOB:-10000}
PENDING=${PENDING:-300000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
CLIENTS=${CLIENTS:-8}
BATCH=${BATCH:-10000}
MODE=${MODE:-prepared}

fail() { echo "bench/retention: $*" >&2; exit 1; }

if [ -z "${PGHOST:-}" ] && [ -z "${PGPORT:-}" ]; then
    export EG_CLUSTER_STOCK=1
    bench_cluster retention
else
    bench_cluster retention
    echo "# using the cluster at PGHOST/PGPORT: it may not be stock; its non-default settings:"
    sql -c "SELECT name || ' = ' || setting FROM pg_settings
             WHERE source NOT IN ('default', 'override', 'client') ORDER BY name" | sed 's/^/#   /'
fi
machine_line

sql -c 'TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY'

# The old, finished jobs.
start=$(date +%s.%N)
jobs=$(( (OLD_ROWS + ROWS_PER_JOB - 1) / ROWS_PER_JOB ))
sql <<SQL
INSERT INTO execguard.jobs (job_id, spec, submitted_at)
SELECT 'old-' || j, '{}', now() - interval '31 days' FROM generate_series(1, $jobs) AS j;
INSERT INTO execguard.executions (job_id, model_id, region, question_id, status, attempt, fencing_token,
                                  worker, result, started_at, finished_at)
SELECT 'old-' || (1 + (i - 1) / $ROWS_PER_JOB), 'm', 'r' || (i % 4), 'q' || i, 'completed', 1, 1,
       'w', '{"answer": "Paris"}', now() - interval '30 days', now() - interval '30 days'
  FROM generate_series(1, $OLD_ROWS) AS i;
SQL
echo "filled $OLD_ROWS finished executions in $jobs jobs in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s"

# The pending backlog the claims work on.
start=$(date +%s.%N)
submitted=0 k=0
while [ "$submitted" -lt "$PENDING" ]; do
    k=$((k + 1))
    n=$(( PENDING - submitted < 10000 ? PENDING - submitted : 10000 ))
    created=$(sql -c "SELECT executions_created FROM execguard.submit_job(jsonb_build_object(
        'id', 'live-$k', 'models', '[\"m\"]'::jsonb, 'regions', '[\"r1\"]'::jsonb,
        'questions', (SELECT jsonb_agg('q' || i) FROM generate_series(1, $n) AS i)))")
    [ "$created" = "$n" ] || fail "submit_job of live-$k created $created, not $n"
    submitted=$((submitted + n))
done
echo "submitted $PENDING pending executions in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s"
sql -c 'ANALYZE'

completed_before() { sql -c "SELECT count(*) FROM execguard.executions WHERE job_id LIKE 'live-%' AND status = 'completed'"; }

# run NAME: one pgbench run of claim + complete; sets TPS (executions/s).
# Each pgbench cycle completes one execution: the counts must agree.
run() {
    local name=$1 before after pending cycles
    before=$(completed_before)
    TPS=$(pgbench_tps "$MODE" "$CLIENTS" "$SECONDS_PER_RUN" "$BENCH_ROOT/bench/backlog/eg_claim.sql") ||
        fail "$name: pgbench failed"
    after=$(completed_before)
    pending=$(sql -c "SELECT count(*) FROM execguard.queue")
    [ "$pending" -gt 0 ] || fail "$name drained the pending backlog: raise PENDING"
    cycles=$(awk -v t="$TPS" -v s="$SECONDS_PER_RUN" 'BEGIN{printf "%.0f", t*s}')
    awk -v c="$cycles" -v n="$((after - before))" 'BEGIN{exit !(n >= 0.9*c && n <= 1.1*c + 8)}' ||
        fail "$name: about $cycles pgbench cycles but $((after - before)) executions completed"
    echo "$name: $TPS executions/s ($((after - before)) completed, $pending still queued)"
}

stats() { sql -c "SELECT $1 FROM execguard.stats"; }
purged_before=$(stats executions_purged)

run "A1 no purge"
a1=$TPS

purge_log=$(mktemp)
start=$(date +%s.%N)
"$PSQL" -X -q -v ON_ERROR_STOP=1 -c "CALL execguard.purge('1 day', $BATCH${PAUSE:+, pause => '$PAUSE'})" >"$purge_log" 2>&1 &
purge_pid=$!
sleep 1
run "B  during purge"
b=$TPS
if kill -0 "$purge_pid" 2>/dev/null; then
    during="the purge was still running when the run ended"
else
    during="WARNING: the purge ended before the run did (raise OLD_ROWS): the figure is flattered"
fi
wait "$purge_pid" || fail "purge failed: $(cat "$purge_log")"
purge_seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
rm -f "$purge_log"

run "A2 no purge, after it"
a2=$TPS

# What the purge must have done: every old execution gone, every old job a
# finished tombstone, nothing live touched, the counter moved by as much.
left=$(sql -c "SELECT count(*) FROM execguard.executions WHERE job_id LIKE 'old-%'")
[ "$left" = 0 ] || fail "$left old executions left after the purge"
tombstones=$(sql -c "SELECT count(*) FROM execguard.jobs WHERE job_id LIKE 'old-%' AND purge_finished_at IS NOT NULL")
[ "$tombstones" = "$jobs" ] || fail "$tombstones of $jobs old jobs left as finished tombstones"
live_purged=$(sql -c "SELECT count(*) FROM execguard.jobs WHERE job_id LIKE 'live-%' AND purged_at IS NOT NULL")
[ "$live_purged" = 0 ] || fail "$live_purged live jobs purged"
purged=$(( $(stats executions_purged) - purged_before ))
[ "$purged" = "$OLD_ROWS" ] || fail "executions_purged moved by $purged, not $OLD_ROWS"
twice=$(sql -c "SELECT count(*) FROM execguard.executions WHERE job_id LIKE 'live-%' AND status = 'completed' AND (attempt <> 1 OR result IS NULL)")
[ "$twice" = 0 ] || fail "$twice live executions completed on a second attempt or without a result"

baseline=$(awk -v a="$a1" -v b="$a2" 'BEGIN{printf "%.1f", (a + b) / 2}')
echo "claims during the purge: $(ratio "$b" "$baseline")x of the runs without (target >= 0.80); $during"
echo "purge: $OLD_ROWS executions in $jobs jobs in $purge_seconds s ($(awk -v n="$OLD_ROWS" -v s="$purge_seconds" 'BEGIN{printf "%.0f", n/s}') executions/s, batches of $BATCH) beside $CLIENTS claiming clients"
