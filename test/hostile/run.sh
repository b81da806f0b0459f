#!/usr/bin/env bash
# test/hostile/run.sh: hostile inputs against a running cluster with the
# execguard extension (PG* environment variables; the server log is found
# through EXECGUARD_CLUSTER_DIR, as scripts/pgcluster.sh writes it to
# DIR/env, or passed with --server-log FILE). See test/hostile/hostile.py.
#
#   scripts/pgcluster.sh start .run/hostile && . .run/hostile/env && test/hostile/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/hostile.py" "$@"
