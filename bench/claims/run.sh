#!/usr/bin/env bash
# bench/claims/run.sh: execguard claims against a plain-SQL SKIP LOCKED
# queue (baseline.sql), in one go against one cluster.
#
#   bench/claims/run.sh [--quick]
#
#   (a) claim + complete cycles/s, CLIENTS clients, on a fresh table:
#       single   eg_single.sql   vs base_single.sql  (2 transactions a cycle)
#                                and the same with a constant LIMIT 1 (tuned)
#       batch 10 eg_batch.sql    vs base_batch.sql   (1 statement a cycle)
#       batch 50 eg_batch.sql    vs base_batch.sql
#   (b) the same after CHURN executions were claimed and completed on each
#       side (eg_churn.sql, base_batch.sql, batches of 50), loss vs (a) in %
#   (c) claim_execution with 90% duplicate keys (eg_claim_duplicates.sql),
#       calls/s, DUP_KEYS completed keys; and, interleaved, the floor: a
#       plain SELECT of one key's status (base_key_lookup.sql); with
#       CLIENTS clients, then THROUGHPUT_CLIENTS as in (t). The other 10%
#       create a key never seen, which since 0.6.0 only happens with
#       execguard.claims_require_submitted_job off: these runs turn it off
#       (PGOPTIONS, so the cluster's user must be a superuser) to measure
#       the same create-on-claim path as before, and the phase fails if any
#       claim came back 'unknown' (counted in claims_unknown) instead
#   (t) batch throughput with THROUGHPUT_CLIENTS clients (as many as the
#       machine has cores): the 8 clients of (a) on 2 cores measure
#       contention as much as throughput
# Each figure is the median of ROUNDS runs, execguard and baseline
# interleaved (A, B, A, B, ...). The queue is topped up before every run so
# it never runs dry (a run that drains it is flagged).
#
# Environment: PGHOST/PGPORT/... (else a throwaway cluster),
# SECONDS_PER_RUN (10), ROUNDS (3), CLIENTS (8), MODES ("prepared"; e.g.
# "prepared simple"), BATCH_EG_SCRIPT (eg_batch.sql), CHURN (500000),
# DUP_KEYS (100000), PHASES ("a b c t"), CONFIGS ("single batch10 batch50"),
# THROUGHPUT_CLIENTS (number of cores).
# Every claim passes track_owner => true, as the runner does on its own
# session (the default is false since 0.6.0), so the figures stay
# comparable with those of earlier versions.
# Targets (issue 3): single cycles >= 1.5x baseline; batches >= 20,000
# executions/s; claim_execution at 90% duplicates >= 20,000 calls/s;
# <= 20% loss after churn.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
MODES=${MODES:-prepared}
CHURN=${CHURN:-500000}
DUP_KEYS=${DUP_KEYS:-100000}
PHASES=${PHASES:-a b c t}
THROUGHPUT_CLIENTS=${THROUGHPUT_CLIENTS:-$(nproc)}
CONFIGS=${CONFIGS:-single batch10 batch50}
# eg_churn.sql (claim_next + complete_execution per row, one statement)
# stands in when complete_executions cannot run.
BATCH_EG_SCRIPT=${BATCH_EG_SCRIPT:-eg_batch.sql}
if [ "${1:-}" = --quick ]; then
    SECONDS_PER_RUN=1 ROUNDS=1 CHURN=20000 DUP_KEYS=10000
fi
# Enough pending rows for the fastest side at 60,000 executions/s (42,000
# has been seen with 2 clients and batches of 50).
QUEUE_DEPTH=${QUEUE_DEPTH:-$((60000 * SECONDS_PER_RUN))}

EG=execguard.executions
BASE=bench_baseline_queue.executions

bench_cluster claims
sql -f "$here/baseline.sql"

# execguard's pending rows are counted in its queue, which indexes them.
pending() {
    if [ "$1" = "$EG" ]; then
        sql -c "SELECT count(*) FROM execguard.queue WHERE lease_expires_at IS NULL"
    else
        sql -c "SELECT count(*) FROM $1 WHERE status = 'pending'"
    fi
}
completed() { sql -c "SELECT count(*) FROM $1 WHERE status = 'completed'"; }

top_up() {
    local table n tag
    for table in $EG $BASE; do
        n=$(pending "$table")
        tag=$(date +%s%N)
        if [ "$n" -lt "$QUEUE_DEPTH" ]; then
            sql -c "SELECT bench_baseline_queue.fill('$table', $((QUEUE_DEPTH - n)), '$tag')" >/dev/null
            sql -c "ANALYZE $table"
            if [ "$table" = "$EG" ]; then sql -c "ANALYZE execguard.queue"; fi
        fi
    done
}

fresh() {
    sql -c "TRUNCATE execguard.queue, $EG, $BASE" -c "SELECT execguard.stats_reset()" >/dev/null
}

# run_side MODE TABLE SCRIPT BATCH [CLIENTS]: executions/s of one run.
# The tuned single-claim baseline is base_single.sql with the constant
# LIMIT 1, derived here so the two cannot drift apart.
tuned_single() { sed 's/LIMIT :batch$/LIMIT 1/' "$here/base_single.sql"; }

# Executions/s is tps x batch while the queue lasts. A run that drains it
# goes on with empty cycles, which tps x batch would count as full ones: its
# figure is then the executions it completed over the run's length instead
# (a lower bound), and a warning says so.
run_side() {
    local mode=$1 table=$2 script=$3 batch=$4 clients=${5:-$CLIENTS} tps done_before
    done_before=$(completed "$table")
    if [ "$script" = tuned ]; then
        tps=$(pgbench_tps "$mode" "$clients" "$SECONDS_PER_RUN" <(tuned_single) -D batch="$batch") || { echo 0; return; }
    else
        tps=$(pgbench_tps "$mode" "$clients" "$SECONDS_PER_RUN" "$here/$script" -D batch="$batch") || { echo 0; return; }
    fi
    if [ "$(pending "$table")" -gt 0 ]; then
        awk -v t="$tps" -v b="$batch" 'BEGIN { printf "%.0f", t * b }'
    else
        echo "warning: $table ran dry during $script; counted completed executions instead (raise QUEUE_DEPTH)" >&2
        awk -v n="$(( $(completed "$table") - done_before ))" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%.0f", n / s }'
    fi
}

declare -A RESULT
cycle_phase() {
    local phase=$1 mode=$2 config batch eg_script base_script eg base tuned r t round
    for config in $CONFIGS; do
        case $config in
            single) config=single:1 ;; batch10) config=batch10:10 ;; batch50) config=batch50:50 ;;
            *) echo "unknown config $config" >&2; exit 2 ;;
        esac
        batch=${config#*:}
        if [ "$batch" = 1 ]; then eg_script=eg_single.sql base_script=base_single.sql
        else eg_script=$BATCH_EG_SCRIPT base_script=base_batch.sql; fi
        [ "$phase" = a ] && { fresh; }
        eg=() base=() tuned=()
        for round in $(seq "$ROUNDS"); do
            top_up
            eg+=("$(run_side "$mode" $EG $eg_script "$batch")")
            # The two baselines share a table: they take turns going first.
            if [ "$batch" = 1 ] && [ $((round % 2)) = 0 ]; then
                tuned+=("$(run_side "$mode" $BASE tuned 1)")
            fi
            base+=("$(run_side "$mode" $BASE $base_script "$batch")")
            if [ "$batch" = 1 ] && [ $((round % 2)) = 1 ]; then
                tuned+=("$(run_side "$mode" $BASE tuned 1)")
            fi
        done
        RESULT[$phase,$mode,${config%%:*},eg]=$(median "${eg[@]}")
        RESULT[$phase,$mode,${config%%:*},base]=$(median "${base[@]}")
        r=$(ratio "${RESULT[$phase,$mode,${config%%:*},eg]}" "${RESULT[$phase,$mode,${config%%:*},base]}")
        printf '(%s) %-8s %-7s execguard %7s exec/s  baseline %7s exec/s  ratio %5sx  runs eg [%s] base [%s]\n' \
            "$phase" "$mode" "${config%%:*}" "${RESULT[$phase,$mode,${config%%:*},eg]}" \
            "${RESULT[$phase,$mode,${config%%:*},base]}" "$r" "${eg[*]}" "${base[*]}"
        if [ "$batch" = 1 ]; then
            t=$(median "${tuned[@]}")
            printf '(%s) %-8s %-7s execguard %7s exec/s  tuned    %7s exec/s  ratio %5sx  runs tuned [%s] (baseline with LIMIT 1 constant)\n' \
                "$phase" "$mode" "${config%%:*}" "${RESULT[$phase,$mode,${config%%:*},eg]}" "$t" \
                "$(ratio "${RESULT[$phase,$mode,${config%%:*},eg]}" "$t")" "${tuned[*]}"
        fi
    done
}

churn() {
    local per_client=$(( (CHURN + 50 * CLIENTS - 1) / (50 * CLIENTS) )) start
    fresh
    sql -c "SELECT bench_baseline_queue.fill('$EG', $CHURN, 'churn')" \
        -c "SELECT bench_baseline_queue.fill('$BASE', $CHURN, 'churn')" -c "ANALYZE" >/dev/null
    start=$(date +%s)
    "$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -t "$per_client" -D batch=50 -f "$here/eg_churn.sql" >/dev/null 2>&1
    "$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -t "$per_client" -D batch=50 -f "$here/base_batch.sql" >/dev/null 2>&1
    echo "(b) churned in $(( $(date +%s) - start )) s: execguard $(sql -c "SELECT count(*) FROM $EG WHERE status = 'completed'") completed," \
        "baseline $(sql -c "SELECT count(*) FROM $BASE WHERE status = 'completed'") completed"
}

machine_line
echo "# pgbench -n -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_RUN, $ROUNDS interleaved rounds, medians; modes: $MODES"
for mode in $MODES; do
    case " $PHASES " in *" a "*) cycle_phase a "$mode" ;; esac
done
if [[ " $PHASES " == *" b "* ]]; then
    churn
    for mode in $MODES; do
        cycle_phase b "$mode"
        if [[ " $PHASES " == *" a "* ]]; then
            for config in $CONFIGS; do
                awk -v m="$mode" -v c="$config" -v a="${RESULT[a,$mode,$config,eg]}" -v b="${RESULT[b,$mode,$config,eg]}" \
                    -v x="${RESULT[a,$mode,$config,base]}" -v y="${RESULT[b,$mode,$config,base]}" \
                    'function loss(p, q) { return p > 0 ? sprintf("%+.0f%%", 100 * (q - p) / p) : "n/a" }
                     BEGIN { printf "(b) %-8s %-7s change after churn: execguard %s  baseline %s  (target: no worse than -20%%)\n", m, c, loss(a, b), loss(x, y) }'
            done
        fi
    done
fi
if [[ " $PHASES " == *" t "* ]]; then
    for mode in $MODES; do
        for batch in 10 50; do
            fresh
            eg=() base=()
            for _ in $(seq "$ROUNDS"); do
                top_up
                eg+=("$(run_side "$mode" $EG $BATCH_EG_SCRIPT "$batch" "$THROUGHPUT_CLIENTS")")
                base+=("$(run_side "$mode" $BASE base_batch.sql "$batch" "$THROUGHPUT_CLIENTS")")
            done
            e=$(median "${eg[@]}") b=$(median "${base[@]}")
            printf '(t) %-8s batch%-3s %s clients: execguard %7s exec/s  baseline %7s exec/s  ratio %5sx  (target >= 20000)  runs eg [%s] base [%s]\n' \
                "$mode" "$batch" "$THROUGHPUT_CLIENTS" "$e" "$b" "$(ratio "$e" "$b")" "${eg[*]}" "${base[*]}"
        done
    done
fi
if [[ " $PHASES " == *" c "* ]]; then
    fresh
    sql -c "INSERT INTO $EG (job_id, model_id, region, question_id, status, attempt, fencing_token, finished_at, started_at)
            SELECT 'bench-dup', 'llama3.2-1b', 'us-east', 'q' || g, 'completed', 1, 1, now(), now()
              FROM generate_series(1, $DUP_KEYS) AS g" -c "ANALYZE $EG" >/dev/null
    for mode in $MODES; do
        for clients in $(printf '%s\n' "$CLIENTS" "$THROUGHPUT_CLIENTS" | awk '!seen[$0]++'); do
            runs=()
            floor=()
            for _ in $(seq "$ROUNDS"); do
                runs+=("$(PGOPTIONS="$PGOPTIONS -c execguard.claims_require_submitted_job=off" \
                    pgbench_tps "$mode" "$clients" "$SECONDS_PER_RUN" "$here/eg_claim_duplicates.sql" -D keys="$DUP_KEYS" || echo 0)")
                floor+=("$(pgbench_tps "$mode" "$clients" "$SECONDS_PER_RUN" "$here/base_key_lookup.sql" -D keys="$DUP_KEYS" || echo 0)")
            done
            printf '(c) %-8s %s clients: claim_execution, 90%% duplicates: %.0f calls/s (target >= 20000)  runs [%s]\n' \
                "$mode" "$clients" "$(median "${runs[@]}")" "${runs[*]}"
            printf '(c) %-8s %s clients: floor, a plain SELECT of one key'"'"'s status: %.0f calls/s  runs [%s]\n' \
                "$mode" "$clients" "$(median "${floor[@]}")" "${floor[*]}"
        done
    done
    sql -c "SELECT 'outcomes: ' || string_agg(k || '=' || v, ' ') FROM (VALUES ('claimed', (SELECT claims_claimed FROM execguard.stats)), ('completed', (SELECT claims_completed FROM execguard.stats)), ('unknown', (SELECT claims_unknown FROM execguard.stats))) AS o(k, v)"
    unknown=$(sql -c "SELECT claims_unknown FROM execguard.stats")
    if [ "$unknown" != 0 ]; then
        echo "bench: (c) $unknown claims came back 'unknown': the new keys were refused, not created (is execguard.claims_require_submitted_job off for the runs?)" >&2
        exit 1
    fi
fi
