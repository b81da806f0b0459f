# bench/lib.sh: shared by bench/*/run.sh (source it, do not run it).
#
# Cluster: uses the one named by PGHOST/PGPORT (and PGUSER/PGDATABASE) when
# PGHOST or PGPORT is set; otherwise starts a throwaway cluster with
# scripts/pgcluster.sh in .run/bench-<name>-<pid> and destroys it on exit.
# The cluster must preload execguard (shared_preload_libraries).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBENCH=${PGBENCH:-$(command -v pgbench || echo /usr/lib/postgresql/15/bin/pgbench)}
PSQL=${PSQL:-$(command -v psql || echo /usr/lib/postgresql/15/bin/psql)}
OWN_CLUSTER=
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

bench_cluster() {
    local name=$1
    if [ -z "${PGHOST:-}" ] && [ -z "${PGPORT:-}" ]; then
        OWN_CLUSTER=$BENCH_ROOT/.run/bench-$name-$$
        "$BENCH_ROOT/scripts/pgcluster.sh" start "$OWN_CLUSTER" >/dev/null
        # shellcheck disable=SC1091
        . "$OWN_CLUSTER/env"
        trap '"$BENCH_ROOT/scripts/pgcluster.sh" destroy "$OWN_CLUSTER"' EXIT
    fi
    "$PSQL" -Xq -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS execguard' >/dev/null
}

sql() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# pgbench_tps MODE CLIENTS SECONDS SCRIPT [pgbench args...]: prints the tps.
pgbench_tps() {
    local mode=$1 clients=$2 seconds=$3 script=$4 out
    shift 4
    out=$("$PGBENCH" -n -M "$mode" -c "$clients" -j "$clients" -T "$seconds" -f "$script" "$@" 2>&1) || true
    if echo "$out" | grep -q 'aborted' || ! echo "$out" | grep -q '^tps = '; then
        echo "bench: pgbench failed on $(basename "$script"): $(echo "$out" | grep -m1 -o 'ERROR: .*')" >&2
        return 1
    fi
    echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }

machine_line() {
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(sql -c 'SELECT version()' | cut -d, -f1)," \
        "load $(cut -d' ' -f1-3 /proc/loadavg)"
}
