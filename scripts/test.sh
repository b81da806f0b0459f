#!/usr/bin/env bash
# scripts/test.sh: the README's test command. From a clean checkout:
# installs what is missing, builds, starts its own throwaway clusters, runs
# every suite, stops the clusters, and ends with "N passed, N failed".
#
# The server versions (see scripts/lib.sh):
#   PG_MAJOR              every suite runs against it (default 15, Debian 12's)
#   EG_ALSO_TEST_MAJORS   the extension's suites (pg_regress and isolation on
#                         both write paths, stress, end-to-end) also run
#                         against these; each is built from Debian's source
#                         package on first use and cached (default 18, or
#                         none when PG_MAJOR is set to something else)
#   EG_COMPILE_MAJORS     the extension is compiled, not run, against these
#                         majors' headers (default 17, as above)
# A suite that is missing, cannot run or runs nothing counts as failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$EG_ROOT"

if [ "$PG_MAJOR" = 15 ]; then
    EG_ALSO_TEST_MAJORS=${EG_ALSO_TEST_MAJORS-18}
    EG_COMPILE_MAJORS=${EG_COMPILE_MAJORS-17}
else
    EG_ALSO_TEST_MAJORS=${EG_ALSO_TEST_MAJORS-}
    EG_COMPILE_MAJORS=${EG_COMPILE_MAJORS-}
fi

passed=0
failed=0
failures=()
log_dir=$EG_ROOT/.run/test-logs
rm -rf "$log_dir"
mkdir -p "$log_dir"
# Suites run against PG_MAJOR carry no prefix; others are named pgNN:suite.
prefix=

record() { # name passed failed
    local name=$prefix$1
    passed=$((passed + $2))
    failed=$((failed + $3))
    [ "$3" -gt 0 ] && failures+=("$name")
    printf '%-34s %4d passed, %d failed\n' "$name" "$2" "$3"
}

# A suite that is one test: its exit status decides.
run_one() { # name command...
    local name=$1 log=$log_dir/$prefix$1.log
    shift
    if "$@" >"$log" 2>&1; then
        record "$name" 1 0
    else
        record "$name" 0 1
        tail -n 25 "$log" | sed "s/^/  [$prefix$name] /"
    fi
}

# A suite that is a script of the checkout: one that is missing or lost its
# run bit fails instead of being skipped.
run_script() { # name script [args...]
    local name=$1 script=$2
    if [ ! -x "$script" ]; then
        record "$name" 0 1
        echo "  [$prefix$name] $script is missing or not executable"
        return
    fi
    shift 2
    run_one "$name" "$script" "$@"
}

# pg_regress and pg_isolation_regress print "test name ... ok" up to 15 and
# "ok N - name" / "not ok N - name" (TAP) from 16 on.
count_regress() { # log: prints "ok bad"
    local ok bad
    ok=$(grep -cE '(\.\.\. ok|^ok [0-9]+ )' "$1")
    bad=$(grep -cE '(\.\.\. (FAILED|failed)|^not ok [0-9]+ )' "$1")
    echo "$ok $bad"
}

# pg_regress and the isolation specs, one test per file; on the direct
# write path, then with execguard.direct_writes off (the SQL statements
# that stand in for the direct writes must behave the same).
run_regress() { # pg_config
    local pg_config=$1 name log options ok bad
    for path in direct sql; do
        name=pg_regress+isolation
        options=${PGOPTIONS:-}
        if [ "$path" = sql ]; then
            name=pg_regress+isolation_sql_path
            options="$options -c execguard.direct_writes=off"
        fi
        log=$log_dir/$prefix$name.log
        PGOPTIONS=$options make -s installcheck SKIP_ISOLATION=1 PG_CONFIG="$pg_config" >"$log" 2>&1
        PGOPTIONS=$options make -s isolationcheck PG_CONFIG="$pg_config" >>"$log" 2>&1
        read -r ok bad < <(count_regress "$log")
        if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then
            bad=1
            tail -n 20 "$log" | sed "s/^/  [$prefix$name] /"
        fi
        record "$name" "$ok" "$bad"
        [ "$bad" -gt 0 ] && grep -E '(\.\.\. (FAILED|failed)|^not ok [0-9]+ )' "$log" | sed 's/^/  /'
        [ "$bad" -gt 0 ] && [ -f regression.diffs ] && cp regression.diffs "$log_dir/$prefix$name.diffs"
    done
}

# pytest's closing line; a run without one (pytest crashed, or collected
# nothing) fails.
run_pytest() { # name runner-binary pytest-args...
    local name=$1 runner=$2 log=$log_dir/$prefix$1.log line ok bad
    shift 2
    EXECGUARD_RUNNER_BIN=$runner /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
    line=$(grep -E '^=* *[0-9]+ (passed|failed|errors?)' "$log" | tail -n 1)
    ok=$(echo "$line" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
    bad=$(echo "$line" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s += $1} END {print s + 0}')
    if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then
        bad=1
        tail -n 30 "$log" | sed "s/^/  [$prefix$name] /"
    fi
    record "$name" "$ok" "$bad"
    [ "$bad" -gt 0 ] && grep -E '^(FAILED|ERROR)' "$log" | sed 's/^/  /'
}

# A suite that ends with its own "N passed, N failed" line: each of its
# tests counts. A run without that line, with no tests, or with a non-zero
# exit status but no failure counted, fails.
run_counted() { # name command...
    local name=$1 log=$log_dir/$prefix$1.log status line ok bad
    shift
    "$@" >"$log" 2>&1
    status=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    ok=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p')
    bad=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed$/\1/p')
    ok=${ok:-0} bad=${bad:-0}
    if [ -z "$line" ] || { [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; } || [ $((ok + bad)) -eq 0 ]; then
        bad=$((bad + 1))
        tail -n 25 "$log" | sed "s/^/  [$prefix$name] /"
    fi
    record "$name" "$ok" "$bad"
    [ "$bad" -gt 0 ] && grep -E '^(FAIL|FAILED)[: ]' "$log" | sed 's/^/  /'
}

# ctest's summary line; a run without one fails.
run_ctest() { # name build-dir ctest-args...
    local name=$1 dir=$2 log=$log_dir/$prefix$1.log summary total bad
    shift 2
    ctest --test-dir "$dir" --output-on-failure "$@" >"$log" 2>&1
    summary=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log" | tail -n 1)
    if [ -z "$summary" ]; then
        record "$name" 0 1
        tail -n 20 "$log" | sed "s/^/  [$prefix$name] /"
        return
    fi
    total=$(echo "$summary" | sed -E 's/.* out of ([0-9]+).*/\1/')
    bad=$(echo "$summary" | sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/')
    record "$name" $((total - bad)) "$bad"
    [ "$bad" -gt 0 ] && sed -n '/The following tests FAILED/,$p' "$log" | sed 's/^/  /'
}

# A throwaway cluster of the current PG_MAJOR; its server log is checked
# for crashes when the suites are done.
clusters=()
cleanup() {
    for c in "${clusters[@]}"; do scripts/pgcluster.sh destroy "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
start_cluster() { # name: starts it and sources its env
    local dir
    dir=$(eg_cluster_dir "$1")
    scripts/pgcluster.sh destroy "$dir" >/dev/null 2>&1 || true
    clusters+=("$dir")
    if ! scripts/pgcluster.sh start "$dir" >"$log_dir/$prefix$1-cluster.log" 2>&1; then
        cat "$log_dir/$prefix$1-cluster.log"
        return 1
    fi
    cluster=$dir
    . "$cluster/env"
}
check_server_log() {
    grep -E 'terminated by signal|PANIC' "$cluster/server.log" >"$log_dir/${prefix}crashes.log" 2>/dev/null
    if [ -s "$log_dir/${prefix}crashes.log" ]; then
        record server_log_no_crash 0 1
        sed 's/^/  /' "$log_dir/${prefix}crashes.log"
    else
        record server_log_no_crash 1 0
    fi
}

finish() {
    echo "logs: $log_dir"
    [ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

bash scripts/install-deps.sh || exit 1
if ! eg_build >"$log_dir/build.log" 2>&1; then
    cat "$log_dir/build.log"
    echo "build failed"
    record build 0 1
    finish
fi
pg_config=$(eg_pg_config)

if ! start_cluster test; then
    record cluster_start 0 1
    finish
fi

run_regress "$pg_config"
run_ctest ctest build
run_script claim_stress test/stress/claim_stress.sh
run_script claim_next_stress test/stress/claim_next_stress.sh
run_script hostile_inputs test/hostile/run.sh
run_script single_user_exit test/single_user/run.sh
run_pytest e2e "$EG_ROOT/build/runner/execguard-runner" test/e2e
run_script ops_kit test/ops/run.sh
run_counted backup_restore test/backup/run.sh
# Every SQL example of README.md and docs/, run in order; one test per document.
run_counted docs_examples test/docs/doctest.py
# The worker examples of examples/ (Python, Node, Go) against one job.
run_counted client_examples test/examples/run.sh
# Builds the Debian packages, installs them over this machine's files for a
# minute (then restores those) and runs the demo against them: PG 15 only,
# the major Debian 12 packages.
[ "$PG_MAJOR" = 15 ] && run_script packaging test/packaging/run.sh

# The same unit and end-to-end tests once more against an AddressSanitizer +
# UndefinedBehaviorSanitizer build; every sanitizer report is written to
# $asan_dir, which must stay empty.
asan_dir=$log_dir/sanitizer-reports
mkdir -p "$asan_dir"
if cmake -S . -B build-asan -DEXECGUARD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >"$log_dir/asan-build.log" 2>&1 &&
    cmake --build build-asan -j2 --target core_unit_tests runner_unit_tests execguard-runner >>"$log_dir/asan-build.log" 2>&1; then
    export ASAN_OPTIONS="log_path=$asan_dir/asan:detect_leaks=1:abort_on_error=0"
    export UBSAN_OPTIONS="log_path=$asan_dir/ubsan:print_stacktrace=1"
    run_ctest ctest_sanitized build-asan -E fuzz_short
    run_pytest e2e_sanitized_runner "$EG_ROOT/build-asan/runner/execguard-runner" test/e2e
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

run_script chaos_short test/chaos/run.sh --duration 120
run_script bench_normalize_smoke bench/normalize/run.sh --quick
run_script bench_claims_smoke bench/claims/run.sh --quick
run_script bench_callgrind_smoke bench/callgrind/run.sh --quick
run_script bench_backlog_smoke bench/backlog/run.sh --quick
run_script bench_retention_smoke bench/retention/run.sh --quick
run_script bench_bigjobs_smoke bench/bigjobs/run.sh --quick
run_script clang_format scripts/check-format.sh
check_server_log
scripts/pgcluster.sh destroy "$cluster" >/dev/null 2>&1

# The extension's suites on the other supported majors. The runner and the
# unit tests do not depend on the server's version and ran above.
for major in $EG_ALSO_TEST_MAJORS; do
    prefix="pg$major:"
    if ! PG_MAJOR=$major PG_CONFIG= eg_build >"$log_dir/${prefix}build.log" 2>&1; then
        tail -n 40 "$log_dir/${prefix}build.log"
        record build 0 1
        continue
    fi
    if ! PG_MAJOR=$major PG_CONFIG= start_cluster "test-pg$major"; then
        record cluster_start 0 1
        continue
    fi
    run_regress "$(PG_MAJOR=$major PG_CONFIG= eg_pg_config)"
    run_script claim_stress test/stress/claim_stress.sh
    run_script claim_next_stress test/stress/claim_next_stress.sh
    run_pytest e2e "$EG_ROOT/build/runner/execguard-runner" test/e2e
    check_server_log
    scripts/pgcluster.sh destroy "$cluster" >/dev/null 2>&1
done

# The tree's objects are now another major's: remove them, so that a plain
# "make install" (PG_MAJOR's pg_config) cannot link them into its module.
if [ -n "$EG_ALSO_TEST_MAJORS" ]; then
    make -s clean >/dev/null 2>&1
    rm -f "$EG_ROOT/.run/extension-built-for"
fi

# Compiled against the headers of majors that cannot run here, in a copy of
# the checkout so the objects above stay as they are.
for major in $EG_COMPILE_MAJORS; do
    prefix="pg$major:"
    headers_pg_config=$(scripts/build-pg.sh "$major-headers" 2>"$log_dir/${prefix}headers.log" | tail -n 1)
    if [ -z "$headers_pg_config" ]; then
        record compile_only 0 1
        tail -n 20 "$log_dir/${prefix}headers.log" | sed "s/^/  [${prefix}compile_only] /"
        continue
    fi
    copy=$EG_ROOT/.run/compile-pg$major
    rm -rf "$copy"
    mkdir -p "$copy"
    cp -r Makefile extension "$copy"
    run_one compile_only make -C "$copy" -s -j2 PG_CONFIG="$headers_pg_config" clean objects
    rm -rf "$copy"
done

prefix=
finish
