#!/usr/bin/env bash
# bench/backlog/run.sh: execguard with a large backlog, on a STOCK server,
# against a plain-SQL SKIP LOCKED queue with the equivalent indexes
# (baseline.sql) holding the same rows, in one go against one cluster.
#
#   bench/backlog/run.sh [--quick]
#
# Stock: the throwaway cluster is started with EG_CLUSTER_STOCK=1
# (scripts/pgcluster.sh), so postgresql.conf differs from initdb's only by
# port, listen and socket settings, shared_preload_libraries = 'execguard'
# and log_line_prefix: jit, autovacuum, shared_buffers, fsync,
# synchronous_commit are PostgreSQL's defaults (a tuned server once hid a
# JIT cliff). With PGHOST or PGPORT set it uses that cluster instead, warns
# that it may not be stock and prints its non-default settings. Either way
# it TRUNCATEs execguard's tables.
#
# Scenarios (SCENARIOS, default "a b c d e"); claims are pgbench cycles of
# claim_next(w, 1) + complete_execution (eg_claim*.sql) against a SKIP
# LOCKED UPDATE ... LIMIT 1 + a fenced UPDATE (base_claim*.sql), CLIENTS
# clients, executions/s:
#   (a) ROWS pending executions, one region, one model, unfiltered claims;
#       target >= 1.5x baseline
#   (b) ROWS pending over 4 regions x 3 models (jobs of QUESTIONS_PER_JOB
#       questions, so the regions are interleaved in id order); each client
#       serves one region (regions => ARRAY['r<n>'], 2 clients per region
#       with 8 clients); the baseline reads a partial index on (region, id)
#       of pending rows; target >= 1.5x
#   (c) ROWS pending in 3 regions nobody serves, submitted first, then
#       EXTRA_ROWS in the served region r1; every client serves r1;
#       target >= 1.5x. Then IDLE_CALLS calls, one session, of
#       claim_next('w', 1, regions => '{nobody-serves-this}') (and the
#       baseline's claim of that region), wall clock by psql's \timing:
#       median and max; target: under 5 ms
#   (d) CHURN executions submitted, then claimed and completed by batches
#       of 50 (eg_drain.sql, base_drain.sql, CLIENTS clients) until none is
#       pending, then (a) again on ROWS new ones; target: within 20% of (a)
#   With (a) to (d), every round also runs ceiling.sql (two single-row
#   INSERTs into a table without indexes, each its own transaction): the
#   two-commit ceiling, the most cycles/s a queue doing two synchronous
#   commits per cycle can reach on this server at that moment; the report
#   gives each side's share of it and ceiling / baseline, the highest ratio
#   any build could show against that baseline.
#   (e) submit_job of SUBMIT_UNITS units (10 models x 3 regions, jobs of at
#       most 10,000 questions: the cap) against bench_backlog.insert_job,
#       one plain INSERT ... SELECT of the same units into copies of
#       executions and queue (same columns, indexes, foreign key) and the
#       job row; units/s; target >= 0.5x
# Every execguard claim passes track_owner => true, as the runner does on
# its own session (the default is false since 0.6.0), so the figures stay
# comparable with those of earlier versions.
# Each figure is the median of ROUNDS runs of SECONDS_PER_RUN s, execguard
# and baseline interleaved (A, B, A, B, ...); (e) is timed per round. Both
# sides are filled with the same jobs (submit_job, and the same units by
# INSERT ... SELECT: run.sh checks key, payload and order agree), and the
# served regions are topped up to their first pending count before every
# run (new jobs, each side its own), so neither runs on a shrinking queue.
#
# The exit status is 0 when everything ran, whatever the figures (a
# benchmark reports, it does not assert speed); non-zero when something did
# not run or did not add up: a pgbench error, a run that drained its served
# regions, a pgbench cycle count that differs from the executions
# completed, an execution claimed twice, left running or completed without
# its result, queue rows out of step, counters that disagree, fills or
# submits that created other counts than asked, rows that differ between
# the sides.
#
# Environment: PGHOST/PGPORT/... (else a throwaway stock cluster), ROWS
# (1000000), EXTRA_ROWS (100000), CHURN (1000000), SUBMIT_UNITS (300000),
# SECONDS_PER_RUN (10), ROUNDS (3), CLIENTS (8), MODE (prepared; or simple),
# IDLE_CALLS (20), QUESTIONS_PER_JOB (10000), SCENARIOS ("a b c d e").
# --quick: ROWS=10000 EXTRA_ROWS=10000 CHURN=10000 SUBMIT_UNITS=3000
# SECONDS_PER_RUN=1 ROUNDS=1 IDLE_CALLS=5 unless set: a smoke run (well
# under 2 minutes) whose figures mean nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

COMMAND_LINE="bench/backlog/run.sh${1:+ $1}"
if [ "${1:-}" = --quick ]; then
    : "${ROWS:=10000}" "${EXTRA_ROWS:=10000}" "${CHURN:=10000}" "${SUBMIT_UNITS:=3000}"
    : "${SECONDS_PER_RUN:=1}" "${ROUNDS:=1}" "${IDLE_CALLS:=5}"
elif [ -n "${1:-}" ]; then
    echo "usage: $0 [--quick]" >&2
    exit 2
fi
ROWS=${ROWS:-1000000}
EXTRA_ROWS=${EXTRA_ROWS:-100000}
CHURN=${CHURN:-1000000}
SUBMIT_UNITS=${SUBMIT_UNITS:-300000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
MODE=${MODE:-prepared}
IDLE_CALLS=${IDLE_CALLS:-20}
QUESTIONS_PER_JOB=${QUESTIONS_PER_JOB:-10000}
SCENARIOS=${SCENARIOS:-a b c d e}
KNOBS="ROWS=$ROWS EXTRA_ROWS=$EXTRA_ROWS CHURN=$CHURN SUBMIT_UNITS=$SUBMIT_UNITS SECONDS_PER_RUN=$SECONDS_PER_RUN"
KNOBS+=" ROUNDS=$ROUNDS CLIENTS=$CLIENTS MODE=$MODE IDLE_CALLS=$IDLE_CALLS QUESTIONS_PER_JOB=$QUESTIONS_PER_JOB"
KNOBS+=" SCENARIOS=\"$SCENARIOS\""
STARTED=$(date +%s)

EG=execguard.executions
BASE=bench_backlog.executions

if [ -n "${PGHOST:-}" ] || [ -n "${PGPORT:-}" ]; then
    echo "warning: PGHOST/PGPORT set: using that cluster, which may not be a stock one (its non-default settings follow)" >&2
fi
export EG_CLUSTER_STOCK=1
bench_cluster backlog
sql -f "$here/baseline.sql"

FAILURES=()
fail() {
    echo "bench: FAILED: $*" >&2
    FAILURES+=("$*")
}

table_of() { if [ "$1" = execguard ]; then echo $EG; else echo $BASE; fi; }
csv() { echo "$*" | tr ' ' ','; }
words() { echo "$*" | wc -w; }
now_ns() { date +%s%N; }
seconds_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

fresh() {
    sql -c "TRUNCATE execguard.queue, execguard.executions, execguard.jobs RESTART IDENTITY" \
        -c "TRUNCATE $BASE RESTART IDENTITY" -c "SELECT execguard.stats_reset()" >/dev/null
}

# fill SIDE TAG "MODELS" "REGIONS" UNITS: jobs bench-TAG-1, -2, ... of at
# most QUESTIONS_PER_JOB questions over MODELS x REGIONS, UNITS units
# rounded up to a whole number of questions, one transaction per job (as
# submitters send them); FILLED is the number of executions created.
fill() {
    local side=$1 tag=$2 models=$3 regions=$4 units=$5 per questions q=1 k=0 n expected
    per=$(($(words "$models") * $(words "$regions")))
    questions=$(((units + per - 1) / per))
    expected=$((questions * per))
    FILLED=$(
        while [ "$q" -le "$questions" ]; do
            n=$((questions - q + 1))
            [ "$n" -gt "$QUESTIONS_PER_JOB" ] && n=$QUESTIONS_PER_JOB
            k=$((k + 1))
            echo "SELECT bench_backlog.fill_job('$side', 'bench-$tag-$k', '{$(csv "$models")}', '{$(csv "$regions")}', $q, $n);"
            q=$((q + n))
        done | sql -f - | awk '{ s += $1 } END { print s + 0 }'
    )
    if [ "$FILLED" != "$expected" ]; then
        fail "$side: jobs $tag created $FILLED executions, expected $expected"
    fi
}

FILL_SEQ=0
# fill_both SCENARIO "MODELS" "REGIONS" UNITS: the same jobs on both sides.
fill_both() {
    local scen=$1 models=$2 regions=$3 units=$4 side start
    FILL_SEQ=$((FILL_SEQ + 1))
    for side in execguard baseline; do
        start=$(now_ns)
        fill "$side" "$scen$FILL_SEQ" "$models" "$regions" "$units"
        echo "($scen) filled $side: $FILLED executions ($(words "$models") models x $(words "$regions") regions) in $(seconds_since "$start") s"
    done
    settle
}

settle() { sql -c "ANALYZE $EG" -c "ANALYZE execguard.queue" -c "ANALYZE $BASE" -c "CHECKPOINT"; }

# The two sides hold the same executions: same keys, payloads and ids.
same_rows() {
    local scen=$1
    # shellcheck disable=SC2046
    set -- $(sql -c "SELECT count(*) FILTER (WHERE e.payload IS DISTINCT FROM b.payload OR e.max_attempts IS DISTINCT FROM b.max_attempts),
                          count(*) FILTER (WHERE e.execution_id IS DISTINCT FROM b.execution_id)
                     FROM $EG AS e FULL JOIN $BASE AS b USING (job_id, model_id, region, question_id)" | tr '|' ' ')
    if [ "$1" != 0 ]; then
        fail "($scen) $1 executions differ between execguard and the baseline (key, payload or max_attempts)"
        sql -c "SELECT 'example: execguard ' || e.payload::text || ' baseline ' || b.payload::text
                  FROM $EG AS e FULL JOIN $BASE AS b USING (job_id, model_id, region, question_id)
                 WHERE e.payload IS DISTINCT FROM b.payload LIMIT 1" >&2
    elif [ "$2" != 0 ]; then
        echo "warning: ($scen) $2 executions have other ids on the two sides (same rows, another order)" >&2
    fi
}

# state SIDE: one read of the side's executions; COMPLETED, and PENDING[r]
# for each served region r.
declare -A PENDING
COMPLETED=0
state() {
    local side=$1 r n c
    COMPLETED=0
    for r in $SERVED_REGIONS; do PENDING[$r]=0; done
    while IFS='|' read -r r n c; do
        COMPLETED=$((COMPLETED + c))
        if [[ " $SERVED_REGIONS " == *" $r "* ]]; then PENDING[$r]=$n; fi
    done < <(sql -c "SELECT region, count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'completed')
                       FROM $(table_of "$side") GROUP BY region")
}

# serve "MODELS" "REGIONS": the served regions, their models, and their
# pending counts now, which top_up restores before every run.
declare -A TARGET
SERVED_REGIONS='' SERVED_MODELS=''
serve() {
    local side r
    SERVED_MODELS=$1 SERVED_REGIONS=$2
    for side in execguard baseline; do
        state "$side"
        for r in $SERVED_REGIONS; do TARGET[$side,$r]=${PENDING[$r]}; done
    done
}

# top_up SIDE SCENARIO: new jobs for each served region below its target;
# leaves the side's state read.
top_up() {
    local side=$1 scen=$2 r filled=
    state "$side"
    for r in $SERVED_REGIONS; do
        if [ "${PENDING[$r]}" -lt "${TARGET[$side,$r]}" ]; then
            FILL_SEQ=$((FILL_SEQ + 1))
            fill "$side" "$scen$FILL_SEQ" "$SERVED_MODELS" "$r" $((TARGET[$side,$r] - PENDING[$r]))
            filled=1
        fi
    done
    if [ -n "$filled" ]; then state "$side"; fi
}

# run_side SIDE SCRIPT NREGIONS: one pgbench run right after top_up SIDE;
# RUN_TPS is its cycles/s (executions/s), 0 when it failed. Every cycle
# must have completed one execution, and every served region must still
# have pending ones.
RUN_TPS=0
run_side() {
    local side=$1 script=$2 nregions=$3 out tps cycles before=$COMPLETED r
    RUN_TPS=0
    out=$("$PGBENCH" -n -M "$MODE" -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" \
        -D nregions="$nregions" -f "$here/$script" 2>&1) || true
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
    cycles=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    if echo "$out" | grep -q 'aborted' || [ -z "$tps" ] || [ -z "$cycles" ]; then
        fail "$side: pgbench $script: $(echo "$out" | grep -m1 -E 'ERROR|error|aborted' || echo "$out" | tail -n 1)"
        return
    fi
    state "$side"
    if [ $((COMPLETED - before)) != "$cycles" ]; then
        fail "$side: $script ran $cycles cycles but $((COMPLETED - before)) executions were completed"
    fi
    for r in $SERVED_REGIONS; do
        if [ "${PENDING[$r]}" = 0 ]; then
            fail "$side: $script drained region $r (raise its rows or lower SECONDS_PER_RUN)"
        fi
    done
    RUN_TPS=$(awk -v t="$tps" 'BEGIN { printf "%.0f", t }')
}

# Every execution claimed was completed exactly once, nothing is left
# running, the queue holds exactly the pending executions, and execguard's
# counters agree (reset at the scenario's start).
verify() {
    local scen=$1 problems
    problems=$(sql -c "
        SELECT concat_ws('; ',
                 CASE WHEN e.running > 0 THEN e.running || ' executions left running' END,
                 CASE WHEN e.other > 0 THEN e.other || ' executions failed or cancelled' END,
                 CASE WHEN e.bad_done > 0 THEN e.bad_done || ' completed executions claimed more than once or without their result' END,
                 CASE WHEN e.bad_pending > 0 THEN e.bad_pending || ' pending executions with an attempt' END,
                 CASE WHEN q.n <> e.pending THEN format('%s queue rows for %s pending executions', q.n, e.pending) END,
                 CASE WHEN s.claims_claimed + s.claims_reclaimed <> e.done
                      THEN format('counters: %s claims, %s executions completed', s.claims_claimed + s.claims_reclaimed, e.done) END,
                 CASE WHEN s.executions_completed <> e.done
                      THEN format('counters: %s completions, %s executions completed', s.executions_completed, e.done) END,
                 CASE WHEN s.stale_writes_rejected > 0 THEN s.stale_writes_rejected || ' completions refused' END)
          FROM (SELECT count(*) FILTER (WHERE status = 'running') AS running,
                       count(*) FILTER (WHERE status NOT IN ('pending', 'running', 'completed')) AS other,
                       count(*) FILTER (WHERE status = 'completed') AS done,
                       count(*) FILTER (WHERE status = 'completed' AND (attempt <> 1 OR fencing_token <> 1 OR result IS NULL)) AS bad_done,
                       count(*) FILTER (WHERE status = 'pending' AND (attempt <> 0 OR fencing_token <> 0)) AS bad_pending,
                       count(*) FILTER (WHERE status = 'pending') AS pending
                  FROM $EG) AS e,
               (SELECT count(*) AS n FROM execguard.queue) AS q,
               execguard.stats AS s")
    [ -z "$problems" ] || fail "($scen) execguard: $problems"
    problems=$(sql -c "
        SELECT concat_ws('; ',
                 CASE WHEN running > 0 THEN running || ' executions left running' END,
                 CASE WHEN other > 0 THEN other || ' executions failed or cancelled' END,
                 CASE WHEN bad_done > 0 THEN bad_done || ' completed executions claimed more than once or without their result' END,
                 CASE WHEN bad_pending > 0 THEN bad_pending || ' pending executions with an attempt' END)
          FROM (SELECT count(*) FILTER (WHERE status = 'running') AS running,
                       count(*) FILTER (WHERE status NOT IN ('pending', 'running', 'completed')) AS other,
                       count(*) FILTER (WHERE status = 'completed' AND (attempt <> 1 OR fencing_token <> 1 OR result IS NULL)) AS bad_done,
                       count(*) FILTER (WHERE status = 'pending' AND (attempt <> 0 OR fencing_token <> 0)) AS bad_pending
                  FROM $BASE) AS b")
    [ -z "$problems" ] || fail "($scen) baseline: $problems"
}

# run_ceiling: one pgbench run of ceiling.sql (two synchronous commits of a
# single-row INSERT per cycle, same clients and mode); RUN_TPS as run_side.
run_ceiling() {
    local out tps
    RUN_TPS=0
    sql -c "TRUNCATE bench_backlog.ceiling" >/dev/null
    out=$("$PGBENCH" -n -M "$MODE" -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" -f "$here/ceiling.sql" 2>&1) || true
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
    if echo "$out" | grep -q 'aborted' || [ -z "$tps" ]; then
        fail "ceiling: pgbench ceiling.sql: $(echo "$out" | grep -m1 -E 'ERROR|error|aborted' || echo "$out" | tail -n 1)"
        return
    fi
    RUN_TPS=$(awk -v t="$tps" 'BEGIN { printf "%.0f", t }')
}

declare -A RESULT
# claims SCENARIO EG_SCRIPT BASE_SCRIPT NREGIONS [ceiling]: ROUNDS
# interleaved runs (execguard, baseline, and with "ceiling" the two-commit
# ceiling, ceiling.sql).
claims() {
    local scen=$1 eg_script=$2 base_script=$3 nregions=$4 with_ceiling=${5:-} eg=() base=() ceil=()
    for _ in $(seq "$ROUNDS"); do
        top_up execguard "$scen"
        run_side execguard "$eg_script" "$nregions"
        eg+=("$RUN_TPS")
        top_up baseline "$scen"
        run_side baseline "$base_script" "$nregions"
        base+=("$RUN_TPS")
        if [ -n "$with_ceiling" ]; then
            run_ceiling
            ceil+=("$RUN_TPS")
        fi
    done
    RESULT[$scen,eg]=$(printf '%.0f' "$(median "${eg[@]}")")
    RESULT[$scen,base]=$(printf '%.0f' "$(median "${base[@]}")")
    printf '(%s) execguard %7s exec/s  baseline %7s exec/s  ratio %5sx  runs eg [%s] base [%s]\n' \
        "$scen" "${RESULT[$scen,eg]}" "${RESULT[$scen,base]}" \
        "$(ratio "${RESULT[$scen,eg]}" "${RESULT[$scen,base]}")" "${eg[*]}" "${base[*]}"
    if [ -n "$with_ceiling" ]; then
        RESULT[$scen,ceil]=$(printf '%.0f' "$(median "${ceil[@]}")")
        printf '(%s) two-commit ceiling %7s cycles/s: execguard at %s of it, baseline at %s; ceiling / baseline %sx  runs [%s]\n' \
            "$scen" "${RESULT[$scen,ceil]}" "$(ratio "${RESULT[$scen,eg]}" "${RESULT[$scen,ceil]}")" \
            "$(ratio "${RESULT[$scen,base]}" "${RESULT[$scen,ceil]}")" \
            "$(ratio "${RESULT[$scen,ceil]}" "${RESULT[$scen,base]}")" "${ceil[*]}"
    fi
}

# idle_probe SIDE: IDLE_CALLS claims with a region filter nobody serves, in
# one session, each its own transaction; IDLE_MEDIAN and IDLE_MAX in ms,
# and apart from them IDLE_FIRST, the session's first call (cold caches and
# plans in a new backend), and IDLE_MAX_REST, the slowest of the others.
IDLE_MEDIAN=- IDLE_MAX=- IDLE_FIRST=- IDLE_MAX_REST=-
idle_probe() {
    local side=$1 stmt out times claimed
    if [ "$side" = execguard ]; then
        stmt="SELECT count(*) FROM execguard.claim_next('bench-idle', 1, regions => '{nobody-serves-this}', track_owner => true);"
    else
        stmt="WITH c AS (UPDATE $BASE AS e
                            SET status = 'running', attempt = e.attempt + 1, fencing_token = e.fencing_token + 1,
                                worker = 'bench-idle', lease_expires_at = now() + interval '60 seconds',
                                not_before = NULL, started_at = now(), finished_at = NULL
                          WHERE e.execution_id IN (SELECT q.execution_id FROM $BASE AS q
                                                    WHERE q.status = 'pending' AND q.region = ANY ('{nobody-serves-this}')
                                                      AND (q.not_before IS NULL OR q.not_before <= now())
                                                    ORDER BY q.region, q.execution_id LIMIT 1 FOR UPDATE SKIP LOCKED)
                         RETURNING 1)
              SELECT count(*) FROM c;"
    fi
    out=$({ printf '%s\n' '\timing on'; for _ in $(seq "$IDLE_CALLS"); do echo "$stmt"; done; } | sql -f -)
    claimed=$(echo "$out" | grep -v '^Time: ' | awk '{ s += $1 } END { print s + 0 }')
    times=$(echo "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
    if [ "$claimed" != 0 ] || [ "$(echo "$times" | grep -c .)" != "$IDLE_CALLS" ]; then
        fail "$side: the claims of a region nobody serves claimed $claimed executions or were not all timed"
        IDLE_MEDIAN=- IDLE_MAX=- IDLE_FIRST=- IDLE_MAX_REST=-
        return
    fi
    # shellcheck disable=SC2086
    IDLE_MEDIAN=$(printf '%.2f' "$(median $times)")
    IDLE_MAX=$(printf '%.2f' "$(echo "$times" | sort -g | tail -n 1)")
    IDLE_FIRST=$(printf '%.2f' "$(echo "$times" | head -n 1)")
    IDLE_MAX_REST=$(echo "$times" | tail -n +2 | sort -g | tail -n 1)
    [ -z "$IDLE_MAX_REST" ] || IDLE_MAX_REST=$(printf '%.2f' "$IDLE_MAX_REST")
    : "${IDLE_MAX_REST:=-}"
}

# drain SIDE SCRIPT: batches of 50 until nothing is pending.
drain() {
    local side=$1 script=$2 left tries=0 per_client out
    left=$(sql -c "SELECT count(*) FROM $(table_of "$side") WHERE status = 'pending'")
    while [ "$left" -gt 0 ] && [ "$tries" -lt 5 ]; do
        per_client=$(((left + 50 * CLIENTS - 1) / (50 * CLIENTS)))
        out=$("$PGBENCH" -n -M "$MODE" -c "$CLIENTS" -j "$CLIENTS" -t "$per_client" -f "$here/$script" 2>&1) || true
        if echo "$out" | grep -q 'aborted' || ! echo "$out" | grep -q '^tps = '; then
            fail "$side: pgbench $script: $(echo "$out" | grep -m1 -E 'ERROR|error|aborted' || echo "$out" | tail -n 1)"
            return
        fi
        left=$(sql -c "SELECT count(*) FROM $(table_of "$side") WHERE status = 'pending'")
        tries=$((tries + 1))
    done
    [ "$left" = 0 ] || fail "$side: $left executions still pending after the churn"
}

scenario_a() {
    fresh
    fill_both a "m1" "r1" "$ROWS"
    same_rows a
    serve "m1" "r1"
    claims a eg_claim.sql base_claim.sql 1 ceiling
    verify a
}

scenario_b() {
    fresh
    fill_both b "m1 m2 m3" "r1 r2 r3 r4" "$ROWS"
    same_rows b
    serve "m1 m2 m3" "r1 r2 r3 r4"
    claims b eg_claim_region.sql base_claim_region.sql 4 ceiling
    verify b
}

scenario_c() {
    fresh
    fill_both c "m1" "unserved-1 unserved-2 unserved-3" "$ROWS"
    fill_both c "m1" "r1" "$EXTRA_ROWS"
    same_rows c
    serve "m1" "r1"
    claims c eg_claim_region.sql base_claim_region.sql 1 ceiling
    idle_probe execguard
    RESULT[c_idle,eg]=$IDLE_MEDIAN RESULT[c_idle,eg_max]=$IDLE_MAX
    RESULT[c_idle,eg_first]=$IDLE_FIRST RESULT[c_idle,eg_rest]=$IDLE_MAX_REST
    idle_probe baseline
    RESULT[c_idle,base]=$IDLE_MEDIAN RESULT[c_idle,base_max]=$IDLE_MAX
    RESULT[c_idle,base_first]=$IDLE_FIRST RESULT[c_idle,base_rest]=$IDLE_MAX_REST
    printf '(c) a claim of a region nobody serves, %s calls in one session: execguard median %s ms, max %s ms (first call %s ms, slowest of the others %s ms); baseline median %s ms, max %s ms (first %s ms, others %s ms)\n' \
        "$IDLE_CALLS" "${RESULT[c_idle,eg]}" "${RESULT[c_idle,eg_max]}" "${RESULT[c_idle,eg_first]}" "${RESULT[c_idle,eg_rest]}" \
        "${RESULT[c_idle,base]}" "${RESULT[c_idle,base_max]}" "${RESULT[c_idle,base_first]}" "${RESULT[c_idle,base_rest]}"
    verify c
}

scenario_d() {
    local start side script
    fresh
    fill_both d "m1" "r1" "$CHURN"
    for side in execguard baseline; do
        if [ "$side" = execguard ]; then script=eg_drain.sql; else script=base_drain.sql; fi
        start=$(now_ns)
        drain "$side" "$script"
        state "$side"
        echo "(d) churned $side: $COMPLETED executions claimed and completed by batches of 50 in $(seconds_since "$start") s"
    done
    verify d
    fill_both d "m1" "r1" "$ROWS"
    serve "m1" "r1"
    claims d eg_claim.sql base_claim.sql 1 ceiling
    verify d
}

scenario_e() {
    local questions jobs k q n start eg_sql base_sql eg=() base=() created
    questions=$(((SUBMIT_UNITS + 29) / 30))
    sql -c "TRUNCATE bench_backlog.e_specs"
    k=0 q=1
    while [ "$q" -le "$questions" ]; do
        n=$((questions - q + 1))
        [ "$n" -gt 10000 ] && n=10000
        k=$((k + 1))
        sql -c "INSERT INTO bench_backlog.e_specs
                SELECT $k, bench_backlog.spec('bench-e-$k', '{m1,m2,m3,m4,m5,m6,m7,m8,m9,m10}', '{r1,r2,r3}', $q, $n)"
        q=$((q + n))
    done
    jobs=$k
    # The statements as a client sends them, each spec a literal: a spec
    # read from a table column would be a TOASTed value, which the
    # baseline's SQL would fetch and decompress again for every unit.
    eg_sql=$(sql -c "SELECT format('SELECT executions_created FROM execguard.submit_job(%L::jsonb);', spec::text)
                       FROM bench_backlog.e_specs ORDER BY k")
    base_sql=$(sql -c "SELECT format('SELECT bench_backlog.insert_job(%L::jsonb);', spec::text)
                         FROM bench_backlog.e_specs ORDER BY k")
    for _ in $(seq "$ROUNDS"); do
        fresh
        sql -c "TRUNCATE bench_backlog.e_queue, bench_backlog.e_executions, bench_backlog.e_jobs RESTART IDENTITY" -c CHECKPOINT
        start=$(now_ns)
        created=$(printf '%s\n' "$eg_sql" | sql -f - | awk '{ s += $1 } END { print s + 0 }')
        eg+=("$(awk -v n="$created" -v s="$(seconds_since "$start")" 'BEGIN { printf "%.0f", n / s }')")
        [ "$created" = $((questions * 30)) ] || fail "(e) submit_job created $created executions, expected $((questions * 30))"
        sql -c CHECKPOINT
        start=$(now_ns)
        created=$(printf '%s\n' "$base_sql" | sql -f - | awk '{ s += $1 } END { print s + 0 }')
        base+=("$(awk -v n="$created" -v s="$(seconds_since "$start")" 'BEGIN { printf "%.0f", n / s }')")
        [ "$created" = $((questions * 30)) ] || fail "(e) the baseline inserted $created executions, expected $((questions * 30))"
    done
    # The last round's rows: the same on both sides, each queued once.
    n=$(sql -c "SELECT count(*) FROM $EG AS e FULL JOIN bench_backlog.e_executions AS b USING (job_id, model_id, region, question_id)
                 WHERE e.payload IS DISTINCT FROM b.payload OR e.execution_id IS DISTINCT FROM b.execution_id")
    [ "$n" = 0 ] || fail "(e) $n executions differ between submit_job and the baseline's INSERT ... SELECT"
    n=$(sql -c "SELECT (SELECT count(*) FROM execguard.queue) - (SELECT count(*) FROM $EG)
                     + (SELECT count(*) FROM bench_backlog.e_queue) - (SELECT count(*) FROM bench_backlog.e_executions)")
    [ "$n" = 0 ] || fail "(e) queue rows and executions differ in number"
    RESULT[e,eg]=$(printf '%.0f' "$(median "${eg[@]}")")
    RESULT[e,base]=$(printf '%.0f' "$(median "${base[@]}")")
    printf '(e) %s units in %s jobs: submit_job %7s units/s  INSERT ... SELECT %7s units/s  ratio %5sx  runs eg [%s] base [%s]\n' \
        $((questions * 30)) "$jobs" "${RESULT[e,eg]}" "${RESULT[e,base]}" \
        "$(ratio "${RESULT[e,eg]}" "${RESULT[e,base]}")" "${eg[*]}" "${base[*]}"
}

machine_line
echo "# command: $KNOBS $COMMAND_LINE"
echo "# jit = $(sql -c 'SHOW jit'); server settings not at their default (pg_settings, source <> 'default',"
echo "# leaving out those set by the client or fixed at startup, source 'client' and 'override'):"
sql -c "SELECT '#   ' || name || ' = ' || current_setting(name) || '  (' || source || ')'
                 FROM pg_settings WHERE source NOT IN ('default', 'client', 'override') ORDER BY name"
echo "# pgbench -n -M $MODE -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_RUN, $ROUNDS interleaved rounds, medians"
for scen in $SCENARIOS; do
    case $scen in
        a | b | c | d | e) "scenario_$scen" ;;
        *) echo "unknown scenario $scen" >&2; exit 2 ;;
    esac
done

# The table.
met() { if [ "$1" = - ]; then echo -; elif awk -v v="$1" -v t="$2" "BEGIN { exit !(v $3 t) }"; then echo yes; else echo no; fi; }
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
claim_row() {
    local scen=$1 what=$2 r
    [ -n "${RESULT[$scen,eg]:-}" ] || return 0
    r=$(ratio "${RESULT[$scen,eg]}" "${RESULT[$scen,base]}")
    row "($scen) $what" "${RESULT[$scen,eg]}/s" "${RESULT[$scen,base]}/s" "${r}x" ">= 1.5x" "$(met "$r" 1.5 '>=')"
}
# ceiling_row SCENARIO: the two-commit ceiling measured with it, and the
# highest ratio any queue with two synchronous commits per cycle could have
# reached against that baseline.
ceiling_row() {
    local scen=$1
    [ -n "${RESULT[$scen,ceil]:-}" ] || return 0
    row "($scen) two-commit ceiling (ceiling.sql): ${RESULT[$scen,ceil]}/s" \
        "$(ratio "${RESULT[$scen,eg]}" "${RESULT[$scen,ceil]}") of it" "$(ratio "${RESULT[$scen,base]}" "${RESULT[$scen,ceil]}") of it" \
        "$(ratio "${RESULT[$scen,ceil]}" "${RESULT[$scen,base]}")x at most" - -
}
echo
echo "# $KNOBS $COMMAND_LINE   ($(( $(date +%s) - STARTED )) s)"
row scenario execguard baseline ratio target met?
row --- --- --- --- --- ---
claim_row a "$ROWS pending, 1 region, claim_next(w, 1) + complete"
ceiling_row a
claim_row b "$ROWS pending, 4 regions x 3 models, 2 clients per region"
ceiling_row b
claim_row c "$ROWS pending nobody serves + $EXTRA_ROWS served, filtered"
ceiling_row c
if [ -n "${RESULT[c_idle,eg]:-}" ]; then
    row "(c) claim_next of a region nobody serves, median (max; first call, slowest other) of $IDLE_CALLS" \
        "${RESULT[c_idle,eg]} ms (${RESULT[c_idle,eg_max]}; ${RESULT[c_idle,eg_first]}, ${RESULT[c_idle,eg_rest]})" \
        "${RESULT[c_idle,base]} ms (${RESULT[c_idle,base_max]}; ${RESULT[c_idle,base_first]}, ${RESULT[c_idle,base_rest]})" \
        - "< 5 ms" "$(met "${RESULT[c_idle,eg]}" 5 '<')"
fi
claim_row d "(a) after $CHURN executions of churn"
ceiling_row d
if [ -n "${RESULT[d,eg]:-}" ] && [ -n "${RESULT[a,eg]:-}" ]; then
    loss_eg=$(awk -v a="${RESULT[a,eg]}" -v d="${RESULT[d,eg]}" 'BEGIN { if (a > 0) printf "%+.0f", 100 * (d - a) / a; else print "-" }')
    loss_base=$(awk -v a="${RESULT[a,base]}" -v d="${RESULT[d,base]}" 'BEGIN { if (a > 0) printf "%+.0f", 100 * (d - a) / a; else print "-" }')
    row "(d) change from (a)" "${loss_eg}%" "${loss_base}%" - ">= -20%" "$(met "$loss_eg" -20 '>=')"
fi
if [ -n "${RESULT[e,eg]:-}" ]; then
    r=$(ratio "${RESULT[e,eg]}" "${RESULT[e,base]}")
    row "(e) submit_job of $SUBMIT_UNITS units vs INSERT ... SELECT" "${RESULT[e,eg]} units/s" "${RESULT[e,base]} units/s" \
        "${r}x" ">= 0.5x" "$(met "$r" 0.5 '>=')"
fi
if [ ${#FAILURES[@]} -gt 0 ]; then
    echo
    echo "bench: ${#FAILURES[@]} problem(s); the figures above are not to be trusted:"
    printf '  %s\n' "${FAILURES[@]}"
    exit 1
fi
