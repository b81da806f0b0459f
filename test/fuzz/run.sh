#!/usr/bin/env bash
# test/fuzz/run.sh: build the libFuzzer targets of the PostgreSQL-free core
# (ASan + UBSan + libFuzzer, clang++) in build-fuzz/, replay the seed corpus
# and the regression cases in test/fuzz/corpus/<target>/, then fuzz each
# target for its share of the time budget.
#
#   test/fuzz/run.sh                       20 s in total (the CTest entry)
#   test/fuzz/run.sh --seconds 600         the long run: 600 s in total
#   test/fuzz/run.sh --target fuzz_plan_job --seconds 60
#
# --seconds N is the total budget, split evenly between the selected
# targets. New inputs found go to build-fuzz/work/<target>/ (kept between
# runs, never into the checked-in corpus); a crash, leak, timeout or
# invariant violation leaves its input in build-fuzz/artifacts/ and makes
# the script exit non-zero. Prints executions per target.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${EXECGUARD_FUZZ_BUILD:-$root/build-fuzz}
seconds=20
targets=(fuzz_normalize_models fuzz_plan_job fuzz_canonical_key_part)
selected=()

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --target) selected+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "fuzz: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#selected[@]} -gt 0 ] && targets=("${selected[@]}")
case "$seconds" in ''|*[!0-9]*) echo "fuzz: --seconds needs a whole number" >&2; exit 2 ;; esac

cxx=${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14 || true)}
[ -n "$cxx" ] || { echo "fuzz: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root/test/fuzz" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j2 >"$build/build.log" 2>&1 || { tail -n 40 "$build/build.log"; echo "fuzz: build failed" >&2; exit 1; }

per_target=$(( seconds / ${#targets[@]} ))
[ "$per_target" -ge 1 ] || per_target=1
mkdir -p "$build/artifacts" "$build/logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
total_execs=0
for target in "${targets[@]}"; do
    bin=$build/$target
    seeds=$root/test/fuzz/corpus/$target
    work=$build/work/$target
    log=$build/logs/$target.log
    [ -x "$bin" ] || { echo "fuzz: no such target $target" >&2; exit 2; }
    mkdir -p "$work"

    # 1. Every seed and regression case, once: these must all pass.
    if ! "$bin" -runs=0 -artifact_prefix="$build/artifacts/replay-$target-" "$seeds" >"$log.replay" 2>&1 ||
        ! "$bin" -artifact_prefix="$build/artifacts/replay-$target-" "$seeds"/* >>"$log.replay" 2>&1; then
        echo "fuzz: $target FAILED on a checked-in corpus file:"
        grep -a -E "INVARIANT VIOLATED|ERROR: |SUMMARY|Running: " "$log.replay" | tail -n 6 | cut -c1-400
        failed=1
        continue
    fi

    # 2. Fuzz for this target's share of the budget.
    status=0
    "$bin" -max_total_time="$per_target" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$root/test/fuzz/json.dict" -artifact_prefix="$build/artifacts/$target-" \
        "$work" "$seeds" >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    execs=${execs:-0}
    total_execs=$((total_execs + execs))
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target FAILED after $execs executions (log $log):"
        grep -a -E "INVARIANT VIOLATED|ERROR: |SUMMARY|Test unit written" "$log" | tail -n 6 | cut -c1-400
        echo "      reproduce: $bin <artifact>; minimise: $bin -minimize_crash=1 -runs=10000 <artifact>"
        failed=1
    else
        echo "fuzz: $target $execs executions in ${per_target} s, corpus $(ls "$work" | wc -l) new + $(ls "$seeds" | wc -l) seeds, ok"
    fi
done

echo "fuzz: $total_execs executions in total; $([ $failed -eq 0 ] && echo "0 failures" || echo "FAILURES")"
exit $failed
