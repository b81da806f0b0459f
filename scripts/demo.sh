#!/usr/bin/env bash
# scripts/demo.sh: the README's demo command. Builds execguard, starts a
# throwaway PostgreSQL 15 cluster in .run/demo, and replays the reference
# incident: a job listing four model entries (two of them duplicates) for
# one region must run exactly two model calls, once each.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$EG_ROOT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash scripts/install-deps.sh
step "Building the extension and the runner"
eg_build

cluster=$(eg_cluster_dir demo)
scripts/pgcluster.sh destroy "$cluster" >/dev/null 2>&1 || true
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/pgcluster.sh destroy "$cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT
step "Starting a throwaway cluster"
scripts/pgcluster.sh start "$cluster"
. "$cluster/env"
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

SPEC='{"id": "dedup-test-1759234649",
       "benchmark": {"input": {"type": "prompt", "data": {"prompt": "What is 2+2?"}}},
       "constraints": {"regions": ["us-east"]},
       "metadata": {"models": ["llama3.2-1b", "qwen2.5-1.5b", "llama3.2-1b", "qwen2.5-1.5b"]}}'

step "normalize_models(): 4 entries in"
sql -c "SELECT jsonb_pretty(execguard.normalize_models('[\"llama3.2-1b\",\"qwen2.5-1.5b\",\"llama3.2-1b\",\"qwen2.5-1.5b\"]', '{us-east}'))"

step "submit_job(): the job from the field report"
sql -c "SELECT * FROM execguard.submit_job('$SPEC')"
step "Submitting the same job again (a redelivered queue message) creates nothing"
sql -c "SELECT * FROM execguard.submit_job('$SPEC')"
step "The executions table: 2 rows, not 4"
sql -c "SELECT execution_id, job_id, model_id, region, status FROM execguard.executions ORDER BY execution_id"

step "Two workers race the auto-stop check for the same unit: one wins"
# Each psql call is a short session that ends at once, so these claims opt out
# of owner tracking (as a client behind a transaction-mode pooler would) and
# rely on the lease; a tracked claim whose session ended is rescued at once.
sql -c "SELECT 'worker-a' AS worker, * FROM execguard.claim_execution('dedup-test-1759234649', 'llama3.2-1b', 'us-east', '', 'worker-a', track_owner => false)"
sql -c "SELECT 'worker-b' AS worker, * FROM execguard.claim_execution('dedup-test-1759234649', 'LLAMA3.2-1B', 'us-east', '', 'worker-b', track_owner => false)"
sql -c "SELECT claims_claimed, duplicates_prevented_claim, duplicates_prevented_normalization FROM execguard.stats"
