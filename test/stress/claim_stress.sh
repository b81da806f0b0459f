#!/usr/bin/env bash
# test/stress/claim_stress.sh: many clients race to claim the same keys.
#
# CLIENTS psql sessions (default 8) each claim every one of KEYS keys
# (default 1000, at most 10,000: one job) exactly once, each in its own
# random order, through execguard.claim_execution, and complete what they
# are granted. Two rounds, one for each way a key comes to exist
# (KEY_SOURCES, default "submitted unsubmitted"):
#   submitted    a submit_job of the KEYS keys first, so every claim races
#                for a pending row: what clients do since 0.6.0;
#   unsubmitted  keys no job submitted, with
#                execguard.claims_require_submitted_job off for the
#                clients' sessions (PGOPTIONS; a superuser setting), so
#                every first claim races to create its key (INSERT ... ON
#                CONFLICT, or its direct-write twin): the create-on-claim
#                path that a superuser can still turn on, and whose race
#                only this test drives.
# After each round:
#   - every key was granted ('claimed') to exactly one client, and no claim
#     had any outcome but claimed, running or completed (no lease expires,
#     no key is 'unknown');
#   - every grant's complete was accepted, and every row is completed with
#     attempt 1 and fencing token 1;
#   - the counters (reset first) add up: claims_claimed = KEYS,
#     claims_running + claims_completed = CLIENTS * KEYS - KEYS,
#     claims_unknown = 0, and they match the outcomes the clients saw.
# Exits non-zero with a message on any violation; prints
# "claim_stress: ok ..." for each round on success.
#
# Connection: the usual PG* variables (PGHOST, PGPORT, PGUSER, PGDATABASE)
# pointing at a database with the extension, on a server that preloads
# execguard (the counters need it), as a superuser (the unsubmitted round
# turns the setting off). stats_reset() is cluster-wide, so run it on a
# cluster nobody else is using. KEEP=1 keeps the jobs' rows.
set -euo pipefail

CLIENTS=${CLIENTS:-8}
KEYS=${KEYS:-1000}
KEY_SOURCES=${KEY_SOURCES:-submitted unsubmitted}
PSQL=${PSQL:-psql}
work=$(mktemp -d "${TMPDIR:-/tmp}/claim_stress.XXXXXX")
trap 'rm -rf "$work"' EXIT

STRESS_NAME=claim_stress
. "$(dirname "$0")/lib.sh"

[ "$CLIENTS" -ge 2 ] || fail "CLIENTS must be at least 2"
[ "$KEYS" -ge 1 ] && [ "$KEYS" -le 10000 ] || fail "KEYS must be 1 to 10000 (one job)"
sql "SELECT 1 FROM pg_extension WHERE extname = 'execguard'" | grep -qx 1 ||
    fail "extension execguard is not installed in this database"

# round SOURCE: one race of CLIENTS clients over KEYS keys of a new job.
round() {
    local source=$1 job="stress-$1-$(date +%s)-$$" client_options=
    case $source in
        submitted)
            sql "SELECT executions_created FROM execguard.submit_job(jsonb_build_object(
                    'id', '$job', 'models', jsonb_build_array('stress-model'),
                    'regions', jsonb_build_array('stress-region'),
                    'questions', (SELECT jsonb_agg('k' || lpad(g::text, 5, '0')) FROM generate_series(1, $KEYS) AS g)))" |
                grep -qx "$KEYS" || fail "($source) could not submit $KEYS executions"
            ;;
        unsubmitted)
            # The keys are created by the claims themselves: only with the
            # setting off (on by default since 0.6.0, 'unknown' otherwise).
            client_options="-c execguard.claims_require_submitted_job=off"
            ;;
        *) fail "unknown key source '$source' (KEY_SOURCES: submitted, unsubmitted)" ;;
    esac
    sql "SELECT execguard.stats_reset()" >/dev/null ||
        fail "cannot reset the counters (is execguard in shared_preload_libraries?)"

    # One script per client: every key once, in the client's own random order.
    # A grant is completed at once; every outcome is echoed for the checks.
    rm -f "$work"/client-*
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

    PGOPTIONS="${PGOPTIONS:-} $client_options" run_clients "$CLIENTS"

    cat "$work"/client-*.out >"$work/all.out"
    claims=$(grep -vc '^complete ' "$work/all.out" || true)
    [ "$claims" -eq $((CLIENTS * KEYS)) ] || fail "($source) expected $((CLIENTS * KEYS)) claim outcomes, saw $claims"
    unexpected=$(grep -v '^complete ' "$work/all.out" | grep -Ev '^(claimed|running|completed) ' || true)
    [ -z "$unexpected" ] || fail "($source) unexpected outcomes (no lease may expire here, no key is unknown): $(echo "$unexpected" | head -3 | tr '\n' ';')"

    claimed=$(grep -c '^claimed ' "$work/all.out" || true)
    running=$(grep -c '^running ' "$work/all.out" || true)
    completed=$(grep -c '^completed ' "$work/all.out" || true)
    [ "$claimed" -eq "$KEYS" ] || fail "($source) $claimed claimed grants for $KEYS keys"
    distinct=$(grep '^claimed ' "$work/all.out" | awk '{print $2}' | sort -u | wc -l)
    [ "$distinct" -eq "$KEYS" ] || fail "($source) only $distinct distinct keys were granted (some key granted twice)"
    twice=$(grep '^claimed ' "$work/all.out" | awk '{print $2}' | sort | uniq -d | head -3 | tr '\n' ' ')
    [ -z "$twice" ] || fail "($source) keys granted more than once: $twice"
    accepted=$(grep -c '^complete t ' "$work/all.out" || true)
    refused=$(grep -c '^complete f ' "$work/all.out" || true)
    [ "$accepted" -eq "$KEYS" ] && [ "$refused" -eq 0 ] ||
        fail "($source) completes: $accepted accepted, $refused refused (expected $KEYS and 0)"

    read -r rows done_rows first_grant distinct_q <<<"$(sql "
        SELECT count(*), count(*) FILTER (WHERE status = 'completed'),
               count(*) FILTER (WHERE attempt = 1 AND fencing_token = 1), count(DISTINCT question_id)
          FROM execguard.executions WHERE job_id = '$job'" | tr '|' ' ')"
    [ "$rows" -eq "$KEYS" ] || fail "($source) $rows rows for $KEYS keys"
    [ "$distinct_q" -eq "$KEYS" ] || fail "($source) $distinct_q distinct keys in the table"
    [ "$done_rows" -eq "$KEYS" ] || fail "($source) $done_rows of $KEYS rows completed"
    [ "$first_grant" -eq "$KEYS" ] || fail "($source) $((KEYS - first_grant)) rows were granted more than once"
    queued=$(sql "SELECT count(*) FROM execguard.queue AS q JOIN execguard.executions AS e USING (execution_id)
                  WHERE e.job_id = '$job'")
    [ "$queued" -eq 0 ] || fail "($source) $queued completed executions still in execguard.queue"

    read -r c_claimed c_reclaimed c_running c_completed c_other c_stale c_done c_dup c_unknown <<<"$(sql "
        SELECT claims_claimed, claims_reclaimed, claims_running, claims_completed,
               claims_cancelled + claims_failed + claims_backoff, stale_writes_rejected,
               executions_completed, duplicates_prevented_claim, claims_unknown
          FROM execguard.stats" | tr '|' ' ')"
    [ "$c_claimed" -eq "$KEYS" ] || fail "($source) counter claims_claimed = $c_claimed, expected $KEYS"
    [ "$c_reclaimed" -eq 0 ] || fail "($source) counter claims_reclaimed = $c_reclaimed, expected 0"
    [ $((c_running + c_completed)) -eq $((CLIENTS * KEYS - KEYS)) ] ||
        fail "($source) counters claims_running + claims_completed = $((c_running + c_completed)), expected $((CLIENTS * KEYS - KEYS))"
    [ "$c_running" -eq "$running" ] && [ "$c_completed" -eq "$completed" ] ||
        fail "($source) counters say running $c_running / completed $c_completed, clients saw $running / $completed"
    [ "$c_dup" -eq $((c_running + c_completed)) ] || fail "($source) duplicates_prevented_claim = $c_dup"
    [ "$c_other" -eq 0 ] || fail "($source) cancelled/failed/backoff counters = $c_other, expected 0"
    [ "$c_unknown" -eq 0 ] || fail "($source) claims_unknown = $c_unknown, expected 0"
    [ "$c_stale" -eq 0 ] || fail "($source) stale_writes_rejected = $c_stale, expected 0"
    [ "$c_done" -eq "$KEYS" ] || fail "($source) executions_completed = $c_done, expected $KEYS"

    if [ "${KEEP:-0}" != 1 ]; then
        sql "DELETE FROM execguard.executions WHERE job_id = '$job'; DELETE FROM execguard.jobs WHERE job_id = '$job'" >/dev/null
    fi
    rate=$(echo "$CLIENTS * $KEYS / $elapsed" | bc)
    printf 'claim_stress: ok source=%s clients=%d keys=%d claims=%d claimed=%d running=%d completed=%d completes_accepted=%d seconds=%.2f claims_per_second=%d\n' \
        "$source" "$CLIENTS" "$KEYS" "$claims" "$claimed" "$running" "$completed" "$accepted" "$elapsed" "$rate"
}

for source in $KEY_SOURCES; do
    round "$source"
done
