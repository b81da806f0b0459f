#!/usr/bin/env bash
# scripts/test.sh: the README's test command. From a clean checkout:
# installs what is missing, builds, starts its own throwaway cluster, runs
# every suite, stops the cluster, and ends with "N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$EG_ROOT"

passed=0
failed=0
failures=()
log_dir=$EG_ROOT/.run/test-logs
rm -rf "$log_dir"
mkdir -p "$log_dir"

record() { # name passed failed
    passed=$((passed + $2))
    failed=$((failed + $3))
    [ "$3" -gt 0 ] && failures+=("$1")
    printf '%-28s %4d passed, %d failed\n' "$1" "$2" "$3"
}

# A suite that is one test: its exit status decides.
run_one() { # name command...
    local name=$1
    shift
    if "$@" >"$log_dir/$name.log" 2>&1; then
        record "$name" 1 0
    else
        record "$name" 0 1
        tail -n 25 "$log_dir/$name.log" | sed "s/^/  [$name] /"
    fi
}

bash scripts/install-deps.sh || exit 1
if ! eg_build >"$log_dir/build.log" 2>&1; then
    cat "$log_dir/build.log"
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

cluster=$(eg_cluster_dir test)
scripts/pgcluster.sh destroy "$cluster" >/dev/null 2>&1 || true
cleanup() { scripts/pgcluster.sh destroy "$cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT
scripts/pgcluster.sh start "$cluster" || { echo "0 passed, 1 failed"; exit 1; }
. "$cluster/env"

# pg_regress and isolation specs: one test per file.
make -s installcheck SKIP_ISOLATION=1 >"$log_dir/installcheck.log" 2>&1
make -s isolationcheck >>"$log_dir/installcheck.log" 2>&1
ok=$(grep -cE '\.\.\. ok' "$log_dir/installcheck.log")
bad=$(grep -cE '\.\.\. (FAILED|failed)' "$log_dir/installcheck.log")
record pg_regress+isolation "$ok" "$bad"
[ "$bad" -gt 0 ] && grep -E '\.\.\. (FAILED|failed)' "$log_dir/installcheck.log" | sed 's/^/  /'
if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then
    record installcheck-ran 0 1
    tail -n 20 "$log_dir/installcheck.log"
fi

# The same files with execguard.direct_writes off: the SQL statements that
# stand in for the direct writes (tables with triggers) must behave the same.
PGOPTIONS="${PGOPTIONS:-} -c execguard.direct_writes=off" make -s installcheck SKIP_ISOLATION=1 \
    >"$log_dir/installcheck-sql-path.log" 2>&1
PGOPTIONS="${PGOPTIONS:-} -c execguard.direct_writes=off" make -s isolationcheck \
    >>"$log_dir/installcheck-sql-path.log" 2>&1
ok=$(grep -cE '\.\.\. ok' "$log_dir/installcheck-sql-path.log")
bad=$(grep -cE '\.\.\. (FAILED|failed)' "$log_dir/installcheck-sql-path.log")
[ "$ok" -eq 0 ] && [ "$bad" -eq 0 ] && bad=1
record pg_regress+isolation_sql_path "$ok" "$bad"
[ "$bad" -gt 0 ] && grep -E '\.\.\. (FAILED|failed)' "$log_dir/installcheck-sql-path.log" | sed 's/^/  /'

# C++ unit tests (and the short fuzz run) through CTest.
ctest --test-dir build --output-on-failure >"$log_dir/ctest.log" 2>&1
summary=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log_dir/ctest.log" | tail -n 1)
total=$(echo "$summary" | sed -E 's/.* out of ([0-9]+).*/\1/')
bad=$(echo "$summary" | sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/')
if [ -n "$summary" ]; then
    record ctest $((total - bad)) "$bad"
    [ "$bad" -gt 0 ] && sed -n '/The following tests FAILED/,$p' "$log_dir/ctest.log" | sed 's/^/  /'
else
    record ctest 0 1
    tail -n 20 "$log_dir/ctest.log"
fi

# Suites that need the live server.
[ -x test/stress/claim_stress.sh ] && run_one claim_stress test/stress/claim_stress.sh
[ -x test/stress/claim_next_stress.sh ] && run_one claim_next_stress test/stress/claim_next_stress.sh
[ -x test/hostile/run.sh ] && run_one hostile_inputs test/hostile/run.sh
[ -x test/single_user/run.sh ] && run_one single_user_exit test/single_user/run.sh

if [ -d test/e2e ]; then
    EXECGUARD_RUNNER_BIN=$EG_ROOT/build/runner/execguard-runner \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider test/e2e >"$log_dir/e2e.log" 2>&1
    line=$(grep -E '[0-9]+ (passed|failed)' "$log_dir/e2e.log" | tail -n 1)
    e2e_ok=$(echo "$line" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
    e2e_bad=$(echo "$line" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s += $1} END {print s + 0}')
    if [ -z "$line" ]; then
        e2e_bad=1
        tail -n 30 "$log_dir/e2e.log"
    fi
    record e2e "$e2e_ok" "$e2e_bad"
    [ "$e2e_bad" -gt 0 ] && grep -E '^(FAILED|ERROR)' "$log_dir/e2e.log" | sed 's/^/  /'
fi

# The same unit and end-to-end tests once more against an AddressSanitizer +
# UndefinedBehaviorSanitizer build; every sanitizer report is written to
# $asan_dir, which must stay empty.
asan_dir=$log_dir/sanitizer-reports
mkdir -p "$asan_dir"
if cmake -S . -B build-asan -DEXECGUARD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >"$log_dir/asan-build.log" 2>&1 &&
    cmake --build build-asan -j2 --target core_unit_tests runner_unit_tests execguard-runner >>"$log_dir/asan-build.log" 2>&1; then
    export ASAN_OPTIONS="log_path=$asan_dir/asan:detect_leaks=1:abort_on_error=0"
    export UBSAN_OPTIONS="log_path=$asan_dir/ubsan:print_stacktrace=1"
    ctest --test-dir build-asan -E fuzz_short >"$log_dir/ctest-asan.log" 2>&1
    summary=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log_dir/ctest-asan.log" | tail -n 1)
    total=$(echo "$summary" | sed -E 's/.* out of ([0-9]+).*/\1/')
    bad=$(echo "$summary" | sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/')
    [ -n "$summary" ] && record ctest_sanitized $((total - bad)) "$bad" || record ctest_sanitized 0 1
    EXECGUARD_RUNNER_BIN=$EG_ROOT/build-asan/runner/execguard-runner \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider test/e2e >"$log_dir/e2e-asan.log" 2>&1
    line=$(grep -E '[0-9]+ (passed|failed)' "$log_dir/e2e-asan.log" | tail -n 1)
    record e2e_sanitized_runner "$(echo "$line" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')" \
        "$(echo "$line" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s += $1} END {print s + 0}')"
    unset ASAN_OPTIONS UBSAN_OPTIONS
    if [ -n "$(ls -A "$asan_dir")" ]; then
        record sanitizer_reports_none 0 1
        head -n 40 "$asan_dir"/* | sed 's/^/  /'
    else
        record sanitizer_reports_none 1 0
    fi
else
    record sanitizer_build 0 1
    tail -n 20 "$log_dir/asan-build.log"
fi

[ -x test/chaos/run.sh ] && run_one chaos_short test/chaos/run.sh --duration 120
[ -x bench/normalize/run.sh ] && run_one bench_normalize_smoke bench/normalize/run.sh --quick
[ -x bench/claims/run.sh ] && run_one bench_claims_smoke bench/claims/run.sh --quick
[ -x bench/callgrind/run.sh ] && run_one bench_callgrind_smoke bench/callgrind/run.sh --quick
[ -x scripts/check-format.sh ] && run_one clang_format scripts/check-format.sh

grep -E 'terminated by signal|PANIC' "$cluster/server.log" >"$log_dir/crashes.log" 2>/dev/null
if [ -s "$log_dir/crashes.log" ]; then
    record server_log_no_crash 0 1
    sed 's/^/  /' "$log_dir/crashes.log"
else
    record server_log_no_crash 1 0
fi

echo "logs: $log_dir"
[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
