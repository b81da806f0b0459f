#!/usr/bin/env bash
# scripts/demo.sh: the README's demo command. Builds execguard, starts a
# throwaway PostgreSQL cluster in .run/demo (15, or PG_MAJOR: see
# scripts/lib.sh), and replays the reference incident: a job listing four
# model entries (two of them duplicates) for one region must run exactly two
# model calls, once each.
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

step "Starting the fake OpenAI-compatible server and one execguard-runner"
# The fake server stands in for vLLM / llama.cpp / Ollama (no model weights
# here); it records every request it receives, so we can count model calls.
logs=$cluster/demo-logs
mkdir -p "$logs"
/usr/bin/python3 test/fake_inference/fake_server.py --port 0 >"$logs/fake.port" 2>"$logs/fake.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$logs/fake.port" ] && break; sleep 0.1; done
fake=http://127.0.0.1:$(head -n 1 "$logs/fake.port")
build/runner/execguard-runner --worker-id demo-runner --metrics-listen 127.0.0.1:0 \
    --region "us-east=$fake/us-east" --poll-interval 1s >"$logs/runner.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'event=metrics_listening' "$logs/runner.log" && break; sleep 0.1; done
metrics_port=$(sed -n 's/.*event=metrics_listening.*port=\([0-9]*\).*/\1/p' "$logs/runner.log" | head -n 1)
echo "fake inference server: $fake   runner metrics: http://127.0.0.1:$metrics_port/metrics"

step "The runner claims and executes the 2 executions, once each"
for _ in $(seq 300); do
    done_count=$(psql -X -At -c "SELECT count(*) FROM execguard.executions WHERE job_id = 'dedup-test-1759234649' AND status = 'completed'")
    [ "$done_count" = 2 ] && break
    sleep 0.1
done
sql -c "SELECT execution_id, model_id, region, status, attempt, worker, result->>'text' AS answer
          FROM execguard.executions ORDER BY execution_id"
calls=$(curl -fsS "$fake/_requests" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
echo "model calls received by the inference server: $calls (4 model entries in the job)"

step "A redelivered message and a racing worker change nothing"
sql -c "SELECT * FROM execguard.submit_job('$SPEC')"
sql -c "SELECT 'late-worker' AS worker, * FROM execguard.claim_execution('dedup-test-1759234649', 'LLAMA3.2-1B', 'us-east', '', 'late-worker', track_owner => false)"
calls=$(curl -fsS "$fake/_requests" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
echo "model calls now: $calls"

step "Counters (execguard.stats) and a /metrics excerpt"
sql -c "SELECT claims_claimed, duplicates_prevented_claim, duplicates_prevented_normalization,
               stale_writes_rejected, executions_completed FROM execguard.stats"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" |
    grep -E '^execguard_(runner_claims_total|runner_executions_finished_total\{result="completed"|db_duplicates_prevented_total|runner_inference_duration_seconds_count|db_executions\{)' || true
echo
echo "demo: 4 model entries in, 2 executions, $calls model calls, each result written once."
