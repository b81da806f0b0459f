#!/usr/bin/env bash
# test/stress/claim_stress.sh: many clients race to claim the same keys.
#
# CLIENTS psql sessions (default 8) each claim every one of KEYS keys
# (default 1000) exactly once, each in its own random order, through
# execguard.claim_execution, and complete what they are granted. Afterwards:
#   - every key was granted ('claimed') to exactly one client, and no claim
#     had any outcome but claimed, running or completed (no lease expires);
#   - every grant's complete was accepted, and every row is completed with
#     attempt 1 and fencing token 1;
#   - the counters (reset first) add up: claims_claimed = KEYS,
#     claims_running + claims_completed = CLIENTS * KEYS - KEYS, and they
#     match the outcomes the clients saw.
# Exits non-zero with a message on any violation; prints
# "claim_stress: ok ..." on success.
#
# Connection: the usual PG* variables (PGHOST, PGPORT, PGUSER, PGDATABASE)
# pointing at a database with the extension, on a server that preloads
# execguard (the counters need it). stats_reset() is cluster-wide, so run it
# on a cluster nobody else is using. KEEP=1 keeps the job's rows.
set -euo pipefail

CLIENTS=${CLIENTS:-8}
KEYS=${KEYS:-1000}
PSQL=${PSQL:-psql}
job="stress-$(date +%s)-$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/claim_stress.XXXXXX")
trap 'rm -rf "$work"' EXIT

STRESS_NAME=claim_stress
. "$(dirname "$0")/lib.sh"

[ "$CLIENTS" -ge 2 ] || fail "CLIENTS must be at least 2"
sql "SELECT 1 FROM pg_extension WHERE extname = 'execguard'" | grep -qx 1 ||
    fail "extension execguard is not installed in this database"
sql "SELECT execguard.stats_reset()" >/dev/null ||
    fail "cannot reset the counters (is execguard in shared_preload_libraries?)"

# One script per client: every key once, in the client's own random order.
# A grant is completed at once; every outcome is echoed for the checks.
for client in $(seq 1 "$CLIENTS"); do
    seq -f 'k%05g' 1 "$KEYS" | shuf | awk -v job="$job" -v client="$client" '{
        printf "SELECT outcome, execution_id, coalesce(fencing_token, 0) AS token, outcome IN (%s, %s) AS granted\n", "\047claimed\047", "\047reclaimed\047"
        printf "  FROM execguard.claim_execution(\047%s\047, \047stress-model\047, \047stress-region\047, \047%s\047, \047client-%s\047) \\gset\n", job, $1, client
        printf "\\echo :outcome %s\n", $1
        printf "\\if :granted\n"
        printf "SELECT execguard.complete_execution(:execution_id, :token, \047{\"client\": %s}\047) AS accepted \\gset\n", client
        printf "\\echo complete :accepted %s\n", $1
        printf "\\endif\n"
    }' >"$work/client-$client.sql"
done

run_clients "$CLIENTS"

cat "$work"/client-*.out >"$work/all.out"
claims=$(grep -vc '^complete ' "$work/all.out" || true)
[ "$claims" -eq $((CLIENTS * KEYS)) ] || fail "expected $((CLIENTS * KEYS)) claim outcomes, saw $claims"
unexpected=$(grep -v '^complete ' "$work/all.out" | grep -Ev '^(claimed|running|completed) ' || true)
[ -z "$unexpected" ] || fail "unexpected outcomes (no lease may expire here): $(echo "$unexpected" | head -3 | tr '\n' ';')"

claimed=$(grep -c '^claimed ' "$work/all.out" || true)
running=$(grep -c '^running ' "$work/all.out" || true)
completed=$(grep -c '^completed ' "$work/all.out" || true)
[ "$claimed" -eq "$KEYS" ] || fail "$claimed claimed grants for $KEYS keys"
distinct=$(grep '^claimed ' "$work/all.out" | awk '{print $2}' | sort -u | wc -l)
[ "$distinct" -eq "$KEYS" ] || fail "only $distinct distinct keys were granted (some key granted twice)"
twice=$(grep '^claimed ' "$work/all.out" | awk '{print $2}' | sort | uniq -d | head -3 | tr '\n' ' ')
[ -z "$twice" ] || fail "keys granted more than once: $twice"
accepted=$(grep -c '^complete t ' "$work/all.out" || true)
refused=$(grep -c '^complete f ' "$work/all.out" || true)
[ "$accepted" -eq "$KEYS" ] && [ "$refused" -eq 0 ] ||
    fail "completes: $accepted accepted, $refused refused (expected $KEYS and 0)"

read -r rows done_rows first_grant distinct_q <<<"$(sql "
    SELECT count(*), count(*) FILTER (WHERE status = 'completed'),
           count(*) FILTER (WHERE attempt = 1 AND fencing_token = 1), count(DISTINCT question_id)
      FROM execguard.executions WHERE job_id = '$job'" | tr '|' ' ')"
[ "$rows" -eq "$KEYS" ] || fail "$rows rows for $KEYS keys"
[ "$distinct_q" -eq "$KEYS" ] || fail "$distinct_q distinct keys in the table"
[ "$done_rows" -eq "$KEYS" ] || fail "$done_rows of $KEYS rows completed"
[ "$first_grant" -eq "$KEYS" ] || fail "$((KEYS - first_grant)) rows were granted more than once"
queued=$(sql "SELECT count(*) FROM execguard.queue AS q JOIN execguard.executions AS e USING (execution_id)
              WHERE e.job_id = '$job'")
[ "$queued" -eq 0 ] || fail "$queued completed executions still in execguard.queue"

read -r c_claimed c_reclaimed c_running c_completed c_other c_stale c_done c_dup <<<"$(sql "
    SELECT claims_claimed, claims_reclaimed, claims_running, claims_completed,
           claims_cancelled + claims_failed + claims_backoff, stale_writes_rejected,
           executions_completed, duplicates_prevented_claim
      FROM execguard.stats" | tr '|' ' ')"
[ "$c_claimed" -eq "$KEYS" ] || fail "counter claims_claimed = $c_claimed, expected $KEYS"
[ "$c_reclaimed" -eq 0 ] || fail "counter claims_reclaimed = $c_reclaimed, expected 0"
[ $((c_running + c_completed)) -eq $((CLIENTS * KEYS - KEYS)) ] ||
    fail "counters claims_running + claims_completed = $((c_running + c_completed)), expected $((CLIENTS * KEYS - KEYS))"
[ "$c_running" -eq "$running" ] && [ "$c_completed" -eq "$completed" ] ||
    fail "counters say running $c_running / completed $c_completed, clients saw $running / $completed"
[ "$c_dup" -eq $((c_running + c_completed)) ] || fail "duplicates_prevented_claim = $c_dup"
[ "$c_other" -eq 0 ] || fail "cancelled/failed/backoff counters = $c_other, expected 0"
[ "$c_stale" -eq 0 ] || fail "stale_writes_rejected = $c_stale, expected 0"
[ "$c_done" -eq "$KEYS" ] || fail "executions_completed = $c_done, expected $KEYS"

if [ "${KEEP:-0}" != 1 ]; then
    sql "DELETE FROM execguard.executions WHERE job_id = '$job'" >/dev/null
fi
rate=$(echo "$CLIENTS * $KEYS / $elapsed" | bc)
printf 'claim_stress: ok clients=%d keys=%d claims=%d claimed=%d running=%d completed=%d completes_accepted=%d seconds=%.2f claims_per_second=%d\n' \
    "$CLIENTS" "$KEYS" "$claims" "$claimed" "$running" "$completed" "$accepted" "$elapsed" "$rate"
