#!/usr/bin/env bash
# test/chaos/repro_reused_connection_retry.sh: reproduces the duplicate model
# call found by the chaos harness (invariant "calls"): when the inference
# server drops a reused keep-alive connection without answering, the runner's
# HTTP client (libcurl) re-sends the same POST on a fresh connection on its
# own, with the same Idempotency-Key: two model calls for one grant.
# Uses test/fake_inference/fake_server.py (mode "close") and one runner.
# Needs PG* variables (e.g. `. DIR/env` after scripts/pgcluster.sh start DIR).
# Exit 0 = not reproduced (fixed), 1 = reproduced.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${EXECGUARD_RUNNER_BIN:-$repo/build/runner/execguard-runner}
tmp=$(mktemp -d)
region=repro$$
trap 'kill $(cat "$tmp"/pids 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT
/usr/bin/python3 "$repo/test/fake_inference/fake_server.py" --port 0 >"$tmp/port" &
echo $! >>"$tmp/pids"
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
base=http://127.0.0.1:$(head -n1 "$tmp/port")
"$bin" --worker-id repro --metrics-listen 127.0.0.1:0 --concurrency 1 --poll-interval 0.2s \
    --region "$region=$base/$region" >"$tmp/runner.log" 2>&1 &
echo $! >>"$tmp/pids"
submit() {  # job id
    psql -X -q -At -c "SELECT executions_created FROM execguard.submit_job('{\"id\":\"$1\",\"models\":[\"m\"],\"regions\":[\"$region\"],\"questions\":[\"q\"]}')" >/dev/null
}
wait_done() {  # job id
    for _ in $(seq 100); do
        s=$(psql -X -At -c "SELECT status FROM execguard.executions WHERE job_id='$1'")
        case "$s" in completed|failed) echo "$s"; return;; esac
        sleep 0.1
    done
    echo "timeout"
}
submit "$region-a"; echo "job a (opens the keep-alive connection): $(wait_done "$region-a")"
curl -s -X POST "$base/_control" -d '{"region":"'"$region"'","mode":"close","count":1}' >/dev/null
submit "$region-b"; echo "job b (server drops the reused connection once): $(wait_done "$region-b")"
psql -X -At -F ' ' -c "SELECT 'row: execution', execution_id, 'attempt', attempt, 'status', status FROM execguard.executions WHERE job_id='$region-b'"
curl -s "$base/_requests" | /usr/bin/python3 -c '
import json, sys
reqs = json.load(sys.stdin)["requests"]
for r in reqs:
    print("request seq %d Idempotency-Key %s outcome %s" % (r["seq"], r["idempotency_key"], r["outcome"]))
keys = [r["idempotency_key"] for r in reqs]
dup = sorted({k for k in keys if keys.count(k) > 1})
print("REPRODUCED: the same grant was sent %d times: %s" % (keys.count(dup[0]), dup[0]) if dup else "not reproduced")
sys.exit(1 if dup else 0)'
