#!/usr/bin/env bash
# bench/callgrind/run.sh: instructions per claim cycle, counted by callgrind
# in a single-user backend: repeatable to the instruction whatever else the
# machine is doing, where the pgbench figures of bench/claims move by 20%
# from run to run. It compares, in one go:
#
#   V sql     claims as SQL statements (execguard.direct_writes = off)
#   V direct  direct writes (the default)
#
# where V is the current schema version (default_version in
# extension/execguard.control; 0.6.0 at the time of writing).
#
# The library works only with its own schema version, so an older schema
# is measured with the library of its release (the figures for 0.1.0 to
# 0.3.0 in docs/benchmarks.md): CONFIGS="0.3.0:on" with that release's
# library installed.
#
# on four loops (loop_*.sql, each with setup_<loop>.sql if there is one,
# else setup_pending.sql, and the settings of session_<loop>.sql if there
# is one, run once before the loop):
#   single     claim_next(1) + complete_execution of what it granted
#   batch10    claim_next(10) + complete_executions, one statement
#   duplicate  claim_execution of a key that is already completed
#   new        claim_execution of a key never seen (created running): since
#              0.6.0 only with execguard.claims_require_submitted_job off
#              (session_new.sql), else the claim is refused ('unknown') and
#              creates nothing; a loop whose claims come back 'unknown'
#              fails, so the refusal is never measured in its place
# Every claim passes track_owner => true, as the runner does on its own
# session (the default became false in 0.6.0), so the loops measure the
# same owner-tracked path as the figures of earlier versions.
#
#   bench/callgrind/run.sh [--quick]
#
# Each figure is (instructions of 2N iterations - instructions of N) / N,
# so start-up and the first-call costs (plan preparation, the first rescue
# pass) cancel out. Simple query protocol: the loops' own parse and plan are
# included, the same for every configuration. A single backend has no
# concurrency, so index churn is cleaner here than under load: read these
# as the CPU cost of one call, and bench/claims for throughput.
#
# Environment: ITERATIONS (N, default 200; --quick: 5), CONFIGS, LOOPS.
# Needs valgrind and the server binaries; runs as root (the backend as the
# 'postgres' user) or as the server's user, in .run/callgrind-<pid>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib.sh"

ITERATIONS=${ITERATIONS:-200}
# The current schema (the control file's default_version) on both paths.
current=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$root/extension/execguard.control")
CONFIGS=${CONFIGS:-"$current:off $current:on"}
LOOPS=${LOOPS:-"single batch10 duplicate new"}
[ "${1:-}" = --quick ] && ITERATIONS=5
PG_BIN=${PG_BIN:-$(eg_pg_bin)}
command -v valgrind >/dev/null || { echo "bench: valgrind is not installed" >&2; exit 1; }

dir=$root/.run/callgrind-$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
eg_initdb "$dir"
cat >>"$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'execguard'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
autovacuum = off
CONF

# single-user backend reading one statement per line from stdin
backend() { eg_as_server_user "$@" "$PG_BIN/postgres" --single -D "$dir/data" postgres; }

# instructions VERSION DIRECT LOOP COUNT: total instructions of COUNT iterations
instructions() {
    local version=$1 direct=$2 loop=$3 count=$4 script=$dir/loop.sql out=$dir/callgrind.out setup=pending
    [ -f "$here/setup_$loop.sql" ] && setup=$loop
    { echo "DROP EXTENSION IF EXISTS execguard CASCADE;"
      echo "DROP SCHEMA IF EXISTS execguard CASCADE;"
      echo "CREATE EXTENSION execguard VERSION '$version';"
      # enough pending rows for every iteration's batch, whatever the count
      grep -v '^--' "$here/setup_$setup.sql" | sed "s/@ROWS@/$((20 * count + 1000))/"; } |
        backend >"$dir/setup.out" 2>&1
    if grep -q ERROR "$dir/setup.out"; then grep ERROR "$dir/setup.out" >&2; exit 1; fi
    { echo "SET execguard.direct_writes = $direct;"
      # one rescue pass, in the first call; then the busy path
      echo "SET execguard.rescue_interval = '1min';"
      if [ -f "$here/session_$loop.sql" ]; then grep -v '^--' "$here/session_$loop.sql"; fi
      for _ in $(seq "$count"); do grep -v '^--' "$here/loop_$loop.sql"; done; } >"$script"
    [ "$(id -u)" = 0 ] && chown postgres "$script"
    rm -f "$out"
    backend valgrind --tool=callgrind --callgrind-out-file="$out" <"$script" >"$dir/loop.out" 2>"$dir/valgrind.log"
    # The backend writes its results to stdout and its messages (an ERROR
    # among them) to stderr, with valgrind's own lines.
    if grep -qE '(ERROR|FATAL|PANIC):  ' "$dir/valgrind.log" "$dir/loop.out"; then
        grep -hm3 -E '(ERROR|FATAL|PANIC):  ' "$dir/valgrind.log" "$dir/loop.out" >&2
        exit 1
    fi
    if grep -q '"unknown"' "$dir/loop.out"; then
        echo "bench: loop $loop: claims returned 'unknown' (a key no job submitted): not the path it measures" >&2
        exit 1
    fi
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$dir/valgrind.log"
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $("$PG_BIN/postgres" --version), $(valgrind --version), $ITERATIONS iterations"
printf '%-10s' loop
for config in $CONFIGS; do printf ' %14s' "${config%%:*} $( [ "${config#*:}" = on ] && echo direct || echo sql)"; done
echo "   (instructions per iteration)"
for loop in $LOOPS; do
    printf '%-10s' "$loop"
    first=
    for config in $CONFIGS; do
        a=$(instructions "${config%%:*}" "${config#*:}" "$loop" "$ITERATIONS")
        b=$(instructions "${config%%:*}" "${config#*:}" "$loop" $((2 * ITERATIONS)))
        per=$(( (b - a) / ITERATIONS ))
        [ -z "$first" ] && first=$per
        printf ' %14s' "$per ($(awk -v p="$per" -v f="$first" 'BEGIN { printf "%.2f", p / f }'))"
    done
    echo
done
echo "# (x.xx): against the first configuration"
