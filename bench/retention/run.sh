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
# (bench/backlog/eg_claim.sql) for 2 x WINDOWS x WINDOW_SECONDS s without a
# break, reporting executions/s every second (pgbench -P 1), while the
# purge is on in every other window: on, the script purges as the
# procedure execguard.purge does (purge_jobs('1 day', BATCH), one batch a
# transaction, resting three times as long as each batch took, or PAUSE),
# off, it
# waits. The figure is the mean rate of the seconds with the purge on over
# the mean of the seconds with it off (the first second of each window
# left out): target >= 0.80. Interleaving second by second keeps the
# machine's drift (other work, autovacuum, the queue's own growth) out of
# the ratio. Then CALL execguard.purge('1 day', BATCH) deletes what is
# left, alone, and the script prints its rate.
#
# The exit status is 0 when everything ran and added up, whatever the
# figures: non-zero on a pgbench error, a run that drained the pending
# backlog, a cycle count that differs from the executions completed, old
# executions left after the purge, jobs not left as tombstones, or
# counters that disagree.
#
# Environment: PGHOST/PGPORT/... (else a throwaway stock cluster), OLD_ROWS
# (1000000), ROWS_PER_JOB (10000), PENDING (300000), WINDOWS (4),
# WINDOW_SECONDS (8), CLIENTS (8), BATCH (10000, purge's max_executions),
# PAUSE (seconds between batches; unset: three times as long as the batch
# took, the procedure's default),
# MODE (prepared).
# --quick: OLD_ROWS 100000, PENDING 150000, WINDOWS 1, WINDOW_SECONDS 4
# (the smoke run of scripts/test.sh: checks that it all runs and adds up,
# not the figures).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

if [ "${1:-}" = --quick ]; then
    OLD_ROWS=${OLD_ROWS:-100000} PENDING=${PENDING:-150000} WINDOWS=${WINDOWS:-1} WINDOW_SECONDS=${WINDOW_SECONDS:-4}
fi
OLD_ROWS=${OLD_ROWS:-1000000}
ROWS_PER_JOB=${ROWS_PER_JOB:-10000}
PENDING=${PENDING:-300000}
WINDOWS=${WINDOWS:-4}
WINDOW_SECONDS=${WINDOW_SECONDS:-8}
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

stats() { sql -c "SELECT $1 FROM execguard.stats"; }
purged_before=$(stats executions_purged)
completed_start=$(completed_before)

# The purge driver: windows off, on, off, on, ... one per WINDOW_SECONDS,
# starting with off; the window numbers it was on go to $on_windows.
total=$((2 * WINDOWS * WINDOW_SECONDS))
progress=$(mktemp) on_windows=$(mktemp)
"$PGBENCH" -n -M "$MODE" -c "$CLIENTS" -j "$CLIENTS" -T "$total" -P 1 \
    -f "$BENCH_ROOT/bench/backlog/eg_claim.sql" >"$progress" 2>&1 &
bench_pid=$!
t0=$(date +%s.%N)
now() { awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN{printf "%.3f", e-s}'; }
batches=0
for ((w = 0; w < 2 * WINDOWS; w++)); do
    end=$(( (w + 1) * WINDOW_SECONDS ))
    if [ $((w % 2)) -eq 1 ]; then
        echo "$w" >>"$on_windows"
        while awk -v n="$(now)" -v e="$end" 'BEGIN{exit !(n < e)}'; do
            b0=$(now)
            sql -c "SELECT executions_deleted FROM execguard.purge_jobs('1 day', $BATCH)" >/dev/null ||
                fail "purge_jobs failed"
            batches=$((batches + 1))
            rest=$(awk -v a="$b0" -v b="$(now)" 'BEGIN{printf "%.3f", 3 * (b-a)}')
            sleep "${PAUSE:-$rest}"
        done
    else
        sleep "$(awk -v n="$(now)" -v e="$end" 'BEGIN{d=e-n; printf "%.3f", (d > 0 ? d : 0)}')"
    fi
done
wait "$bench_pid" || true
grep -q '^tps = ' "$progress" || fail "pgbench failed: $(grep -m1 -E 'ERROR|aborted' "$progress")"
grep -q 'aborted' "$progress" && fail "pgbench clients aborted: $(grep -m1 'ERROR' "$progress")"
# "progress: 5.0 s, 2345.6 tps, ..." -> second, tps; second s is in window
# floor((s - 1) / WINDOW_SECONDS); the first second of a window is skipped.
read -r on off n_on n_off < <(awk -v W="$WINDOW_SECONDS" -v onfile="$on_windows" '
    BEGIN { while ((getline w < onfile) > 0) on[w] = 1 }
    /^progress: / { s = $2 + 0; tps = $4 + 0; w = int((s - 1) / W)
                    if ((s - 1) % W == 0) next
                    if (w in on) { son += tps; non++ } else { soff += tps; noff++ } }
    END { printf "%.1f %.1f %d %d\n", (non ? son / non : 0), (noff ? soff / noff : 0), non, noff }' "$progress")
cycles=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$progress")
completed=$(( $(completed_before) - completed_start ))
[ "$(sql -c "SELECT count(*) FROM execguard.queue")" -gt 0 ] ||
    fail "the run drained the pending backlog ($cycles cycles): raise PENDING"
[ "$completed" = "$cycles" ] || fail "$cycles pgbench cycles but $completed executions completed"
rm -f "$progress" "$on_windows"
echo "claims: $off executions/s with the purge off ($n_off s), $on with it on ($n_on s, $batches batches of $BATCH)"

# The rest of the purge, alone.
left_before=$(sql -c "SELECT count(*) FROM execguard.executions WHERE job_id LIKE 'old-%'")
start=$(date +%s.%N)
sql -c "CALL execguard.purge('1 day', $BATCH)" || fail "CALL execguard.purge failed"
purge_seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')

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

echo "claims while purging: $(ratio "$on" "$off")x of the rate without (target >= 0.80)"
echo "purge alone: $left_before executions in $purge_seconds s ($(awk -v n="$left_before" -v s="$purge_seconds" 'BEGIN{printf "%.0f", (s > 0 ? n/s : 0)}') executions/s, CALL execguard.purge, batches of $BATCH, default pause)"
