#!/usr/bin/env bash
# test/chaos/run.sh [--duration SECONDS] [--runners N] [--seed S] [--drain SECONDS] [--logdir DIR]
#
# The chaos harness (issue 5, part 3): see test/chaos/chaos.py and the
# "Chaos runs" section of docs/reliability.md. Uses the cluster given by PG*
# variables and EXECGUARD_CLUSTER_DIR (restarted during the run with
# scripts/pgcluster.sh restart); when neither PGPORT nor EXECGUARD_CLUSTER_DIR is
# set, starts its own cluster in .run/chaos-$$ and destroys it at the end.
# Runner binary: EXECGUARD_RUNNER_BIN (default build/runner/execguard-runner).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
own_dir=

cleanup() {
    local rc=$?
    if [ -n "${child:-}" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    if [ -n "$own_dir" ]; then
        "$repo/scripts/pgcluster.sh" destroy "$own_dir" >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if [ -z "${PGPORT:-}" ] && [ -n "${EXECGUARD_CLUSTER_DIR:-}" ] && [ -f "$EXECGUARD_CLUSTER_DIR/env" ]; then
    # shellcheck disable=SC1091
    . "$EXECGUARD_CLUSTER_DIR/env"
fi
if [ -z "${PGPORT:-}" ]; then
    own_dir=$repo/.run/chaos-$$
    mkdir -p "$repo/.run"
    "$repo/scripts/pgcluster.sh" start "$own_dir" >/dev/null
    # shellcheck disable=SC1091
    . "$own_dir/env"
    export EXECGUARD_CHAOS_OWN_CLUSTER=1
    echo "chaos: started a throwaway cluster in $own_dir (port $PGPORT)"
fi
export PGHOST PGPORT PGUSER PGDATABASE
[ -n "${EXECGUARD_CLUSTER_DIR:-}" ] && export EXECGUARD_CLUSTER_DIR

/usr/bin/python3 "$repo/test/chaos/chaos.py" "$@" &
child=$!
set +e
wait "$child"
rc=$?
set -e
child=
exit "$rc"
