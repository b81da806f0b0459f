# test/stress/lib.sh: shared by the stress scripts (source it, do not run it).
# The sourcing script sets STRESS_NAME (its name in messages) and $work
# (a scratch folder holding client-N.sql), and PSQL.

fail() { echo "$STRESS_NAME: FAILED: $*" >&2; exit 1; }
sql() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# run_clients N: runs $work/client-1.sql .. client-N.sql in N concurrent psql
# sessions (output in client-K.out), fails if any of them fails, and sets
# $elapsed to the seconds they took together.
run_clients() {
    local n=$1 start i pids=()
    start=$(date +%s.%N)
    for i in $(seq 1 "$n"); do
        "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -f "$work/client-$i.sql" \
            >"$work/client-$i.out" 2>"$work/client-$i.err" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { cat "$work/client-$((i + 1)).err" >&2; fail "client $((i + 1)) failed"; }
    done
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
}
