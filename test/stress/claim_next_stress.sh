#!/usr/bin/env bash
# test/stress/claim_next_stress.sh: many workers drain one queue at once.
#
# A job of ROWS pending executions (default 10000) under a model no other
# test uses; CLIENTS psql sessions (default 8) pull from it with claim_next
# (batches of 1 to BATCH rows, default 10, restricted to that model) and
# finish what they are granted in the same statement: odd clients with one
# complete_executions call per batch, even clients with a heartbeat and a
# complete_execution per row. Rows held by a concurrent statement are
# skipped, which is what this drives: claim_next's busy path (direct
# writes) and its rescue passes under contention. Afterwards:
#   - every execution was granted exactly once and completed once: every
#     completion was accepted, each id appears once, every row is completed
#     with attempt 1 and fencing token 1, and its result names the client
#     whose grant it was;
#   - the counters (reset first) add up: claims_claimed and
#     executions_completed = ROWS, no rescue, no stale write.
# Exits non-zero with a message on any violation; prints
# "claim_next_stress: ok ..." on success.
#
# Connection: the usual PG* variables, a database with the extension, on a
# server that preloads execguard (the counters need it). stats_reset() is
# cluster-wide, so run it on a cluster nobody else is using. KEEP=1 keeps
# the job's rows.
set -euo pipefail

CLIENTS=${CLIENTS:-8}
ROWS=${ROWS:-10000}
BATCH=${BATCH:-10}
PSQL=${PSQL:-psql}
job="next-stress-$(date +%s)-$$"
model="next-stress-model-$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/claim_next_stress.XXXXXX")
trap 'rm -rf "$work"' EXIT

STRESS_NAME=claim_next_stress
. "$(dirname "$0")/lib.sh"

[ "$CLIENTS" -ge 2 ] || fail "CLIENTS must be at least 2"
sql "SELECT 1 FROM pg_extension WHERE extname = 'execguard'" | grep -qx 1 ||
    fail "extension execguard is not installed in this database"
sql "SELECT executions_created FROM execguard.submit_job(jsonb_build_object(
        'id', '$job', 'models', jsonb_build_array('$model'), 'regions', jsonb_build_array('stress-region'),
        'questions', (SELECT jsonb_agg('q' || g) FROM generate_series(1, $ROWS) AS g)))" | grep -qx "$ROWS" ||
    fail "could not submit $ROWS executions"
sql "SELECT execguard.stats_reset()" >/dev/null ||
    fail "cannot reset the counters (is execguard in shared_preload_libraries?)"

# Each client repeats one statement until a call grants it nothing, which
# happens only when every row left is held by another client's statement
# (and will be completed by it) or none is left: claim_next skips rows held
# elsewhere and rows never become pending again here. (Each client may run
# up to twice its share of statements at one row each; together they can
# always drain the queue.) A statement prints one "id|accepted" line per row
# it was granted.
for client in $(seq 1 "$CLIENTS"); do
    size="(1 + floor(random() * $BATCH))::int"
    if [ $((client % 2)) = 1 ]; then
        statement="WITH c AS (SELECT execution_id, fencing_token FROM execguard.claim_next('client-$client', $size, models => '{$model}')),
                 a AS (SELECT coalesce(array_agg(execution_id), '{}') AS ids, coalesce(array_agg(fencing_token), '{}') AS tokens,
                              coalesce(array_agg(jsonb_build_object('client', $client)), '{}') AS results FROM c),
                 d AS (SELECT d.* FROM a, execguard.complete_executions(a.ids, a.tokens, a.results) AS d)
                 SELECT coalesce(string_agg(execution_id || '|' || CASE WHEN accepted THEN 't' ELSE 'f' END, E'\\n'), '') AS lines,
                        count(*) > 0 AS got FROM d \\gset"
    else
        statement="SELECT coalesce(string_agg(execution_id || '|' || CASE WHEN accepted THEN 't' ELSE 'f' END, E'\\n'), '') AS lines,
                        count(*) > 0 AS got
                   FROM (SELECT execution_id,
                                CASE WHEN execguard.heartbeat(execution_id, fencing_token)
                                     THEN execguard.complete_execution(execution_id, fencing_token, jsonb_build_object('client', $client))
                                     ELSE false END AS accepted
                           FROM execguard.claim_next('client-$client', $size, models => '{$model}')) AS d \\gset"
    fi
    {
        echo '\set more true'
        for _ in $(seq $((2 * ROWS / CLIENTS + 10))); do
            printf '\\if :more\n%s\n\\if :got\n\\echo :lines\n\\else\n\\set more false\n\\endif\n\\endif\n' "$statement"
        done
    } >"$work/client-$client.sql"
done

run_clients "$CLIENTS"

cat "$work"/client-*.out >"$work/all.out"
granted=$(wc -l <"$work/all.out")
[ "$granted" -eq "$ROWS" ] || fail "$granted grants for $ROWS executions"
distinct=$(cut -d'|' -f1 "$work/all.out" | sort -u | wc -l)
[ "$distinct" -eq "$ROWS" ] || fail "only $distinct distinct executions granted (some granted twice)"
refused=$(grep -vc '|t$' "$work/all.out" || true)
[ "$refused" -eq 0 ] || fail "$refused completions refused: $(grep -v '|t$' "$work/all.out" | head -3 | tr '\n' ' ')"

read -r rows done_rows first_grant own_result <<<"$(sql "
    SELECT count(*), count(*) FILTER (WHERE status = 'completed'),
           count(*) FILTER (WHERE attempt = 1 AND fencing_token = 1),
           count(*) FILTER (WHERE 'client-' || (result ->> 'client') = worker)
      FROM execguard.executions WHERE job_id = '$job'" | tr '|' ' ')"
[ "$rows" -eq "$ROWS" ] || fail "$rows rows for $ROWS executions"
[ "$done_rows" -eq "$ROWS" ] || fail "$done_rows of $ROWS rows completed"
[ "$first_grant" -eq "$ROWS" ] || fail "$((ROWS - first_grant)) rows were granted more than once"
[ "$own_result" -eq "$ROWS" ] || fail "$((ROWS - own_result)) results were stored by another client than the grantee"
queued=$(sql "SELECT count(*) FROM execguard.queue AS q JOIN execguard.executions AS e USING (execution_id)
              WHERE e.job_id = '$job'")
[ "$queued" -eq 0 ] || fail "$queued completed executions still in execguard.queue"

read -r c_claimed c_reclaimed c_stale c_done <<<"$(sql "
    SELECT claims_claimed, claims_reclaimed, stale_writes_rejected, executions_completed
      FROM execguard.stats" | tr '|' ' ')"
[ "$c_claimed" -eq "$ROWS" ] || fail "counter claims_claimed = $c_claimed, expected $ROWS"
[ "$c_reclaimed" -eq 0 ] || fail "counter claims_reclaimed = $c_reclaimed, expected 0"
[ "$c_stale" -eq 0 ] || fail "stale_writes_rejected = $c_stale, expected 0"
[ "$c_done" -eq "$ROWS" ] || fail "executions_completed = $c_done, expected $ROWS"

if [ "${KEEP:-0}" != 1 ]; then
    sql "DELETE FROM execguard.executions WHERE job_id = '$job'; DELETE FROM execguard.jobs WHERE job_id = '$job'" >/dev/null
fi
printf 'claim_next_stress: ok clients=%d rows=%d granted=%d seconds=%.2f executions_per_second=%d\n' \
    "$CLIENTS" "$ROWS" "$granted" "$elapsed" "$(echo "$ROWS / $elapsed" | bc)"
