#!/usr/bin/env bash
# test/ops/run.sh: checks of the operations kit in deploy/ (docs/operations.md,
# "Testing the kit"). Exit 0 when every check passes.
#
#   1. promtool: check the rules and the example configuration, run the rule
#      unit tests;
#   2. test/ops/check_static.py: the dashboard's structure and PromQL syntax,
#      the alerts' runbook links;
#   3. test/ops/test_live_prometheus.py: two runners doing real work, a real
#      Prometheus scraping them and evaluating the rules, and every panel,
#      record and alert expression queried through its HTTP API.
#
# Step 3 uses the cluster in PG* when PGPORT is set, else starts and destroys
# its own (scripts/pgcluster.sh), and the runner in EXECGUARD_RUNNER_BIN
# (default build/runner/execguard-runner). Needs the Debian packages
# prometheus (promtool and prometheus), python3-pytest and python3-psycopg2.
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n== %s\n' "$*"; }
fail() { echo "test/ops: $*" >&2; exit 1; }

for tool in promtool prometheus; do
    command -v "$tool" >/dev/null || fail "$tool not found (Debian package 'prometheus')"
done
export EXECGUARD_RUNNER_BIN=${EXECGUARD_RUNNER_BIN:-$PWD/build/runner/execguard-runner}
[ -x "$EXECGUARD_RUNNER_BIN" ] || fail "no runner at $EXECGUARD_RUNNER_BIN (build it, or set EXECGUARD_RUNNER_BIN)"

step "promtool check rules"
promtool check rules deploy/prometheus/execguard.rules.yml

step "promtool check config (deploy/prometheus/prometheus.example.yml)"
promtool check config deploy/prometheus/prometheus.example.yml

step "promtool test rules"
promtool test rules deploy/prometheus/tests/*.yml

step "dashboard and runbooks, without a server"
/usr/bin/python3 test/ops/check_static.py

step "live: runners, a real Prometheus, every panel and rule expression"
# pytest exits non-zero when it collects no test, so a lost test file fails.
/usr/bin/python3 -m pytest -q -s -p no:cacheprovider test/ops/test_live_prometheus.py

echo
echo "test/ops: all checks passed"
