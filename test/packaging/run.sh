#!/usr/bin/env bash
# test/packaging/run.sh: builds the Debian packages, installs them on this
# machine, runs the demo's steps against the installed files, and purges
# them again. Exits 0 when every check passed; ends with "N passed, N failed".
#
#   test/packaging/run.sh              packages of the commit checked out (HEAD)
#   test/packaging/run.sh --worktree   packages of the working tree as it is
#                                      (tracked and untracked files, not ignored ones)
#   EG_PKG_CONTAINER=1 test/packaging/run.sh
#                                      also boot a fresh Debian 12 container
#                                      with systemd and run the runner as its
#                                      service there (service_in_container.sh;
#                                      debootstrap once, about 5 minutes, then
#                                      about 1.5)
#   EG_PKG_CHECK=1 test/packaging/run.sh
#                                      also build and run the C++ unit tests
#                                      inside the package build (debian/rules
#                                      does unless DEB_BUILD_OPTIONS=nocheck;
#                                      scripts/test.sh runs them anyway)
#
# Needs root (apt-get, dpkg, a system user). Installs what it needs to build
# (debian/control's Build-Depends, dpkg-dev, systemd for systemd-analyze) on
# top of scripts/install-deps.sh's packages, and leaves those installed.
#
# What it touches, and how the machine is left as it was:
#   - The build runs in a copy of the checkout under /tmp; the checkout's own
#     build folders are untouched. Logs go to .run/packaging-logs/.
#   - postgresql-15-execguard installs /usr/lib/postgresql/15/lib/execguard.so
#     and the extension's SQL and control files, the same paths that
#     "make install" writes. Before installing, every file the two packages
#     hold that already exists is copied aside; after the purge the copies are
#     put back. A file that someone replaced while the test ran (a "make
#     install" in another shell) is kept as they left it, not the copy, and
#     the test fails, since it may have tested their files instead of the
#     package's.
#   - Refuses to run if either package is already installed (or left as
#     config files): its purge at the end would remove that installation.
#   - A throwaway cluster in .run/pkg-test (scripts/pgcluster.sh, as user
#     postgres), destroyed at the end.
#   - The purge removes the system user execguard-runner and its state
#     directory (debian/execguard-runner.postrm).
set -euo pipefail

EG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$EG_ROOT"
# The package is for Debian 12's PostgreSQL 15, whatever the caller's
# scripts use.
export PG_MAJOR=15
unset PG_CONFIG PG_BIN

source_mode=head
case "${1:-}" in
"") ;;
--worktree) source_mode=worktree ;;
*) echo "usage: $0 [--worktree]" >&2; exit 2 ;;
esac

PACKAGES=(postgresql-15-execguard execguard-runner)
PG_LIB=/usr/lib/postgresql/15/lib
PG_EXT=/usr/share/postgresql/15/extension
UNIT=/lib/systemd/system/execguard-runner.service
started=$SECONDS
passed=0
failed=0

step() { printf '\n== %s  (%ds)\n' "$*" $((SECONDS - started)); }
ok() { passed=$((passed + 1)); echo "ok    $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
# check DESCRIPTION COMMAND...: one check, by the command's exit status.
check() {
    local description=$1
    shift
    if "$@"; then ok "$description"; else bad "$description"; fi
}
# The end: the closing line, and the exit status.
finish() {
    echo
    echo "packaging: $((SECONDS - started))s; logs in $logs"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
die() {
    bad "$*"
    exit 1
}
# logged LOG COMMAND...: the command's output goes to LOG, not the report.
logged() {
    local log=$1
    shift
    "$@" >>"$log" 2>&1
}
# "${as_service_user[@]}" COMMAND...: as the unit runs the runner: its
# user and group, no supplementary groups, no new privileges, no
# capabilities. setpriv and env exec, so $! of a command started with & is
# the runner itself (a shell function would put a subshell between them).
as_service_user=(setpriv --reuid=execguard-runner --regid=execguard-runner --clear-groups --no-new-privs
    --inh-caps=-all --bounding-set=-all env HOME=/var/lib/execguard-runner)

if [ "$(id -u)" != 0 ]; then
    echo "test/packaging/run.sh installs packages and creates a system user: run it as root" >&2
    exit 1
fi

logs=$EG_ROOT/.run/packaging-logs
rm -rf "$logs"
mkdir -p "$logs"
tmp=$(mktemp -d /tmp/execguard-pkg.XXXXXX)
src=$tmp/src
backup=$tmp/backup
mkdir -p "$src" "$backup"

installed_by_us=0
pids=()
cluster=
cleanup() {
    local status=$?
    set +e
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "$cluster" ]; then
        "$src/scripts/pgcluster.sh" destroy "$cluster" >/dev/null 2>&1
    fi
    if [ "$installed_by_us" = 1 ]; then
        restore_machine || status=1
    fi
    rm -rf "$tmp"
    if [ "$status" != 0 ] && [ "$failed" -eq 0 ]; then
        bad "stopped early (exit status $status)"
    fi
    finish
    exit $?
}
trap cleanup EXIT

# Purges the packages and puts back the files that were there before.
restore_machine() {
    step "Purging the packages and restoring the files they replaced"
    local package path replaced=0
    # A packaged file whose content is no longer the package's was replaced
    # by someone else while the test ran: that version is what goes back.
    for package in "${PACKAGES[@]}"; do
        [ -f "/var/lib/dpkg/info/$package.md5sums" ] || continue
        while read -r sum path; do
            path=/$path
            if [ -f "$path" ] && [ "$(md5sum <"$path" | cut -d' ' -f1)" != "$sum" ]; then
                echo "  $path was replaced during the test; keeping that version"
                mkdir -p "$backup$(dirname "$path")"
                cp -a "$path" "$backup$path"
                replaced=$((replaced + 1))
            fi
        done <"/var/lib/dpkg/info/$package.md5sums"
    done
    check "packaged files were not replaced by someone else during the test ($replaced replaced)" test "$replaced" = 0
    check "dpkg --purge ${PACKAGES[*]}" logged "$logs/purge.log" dpkg --purge "${PACKAGES[@]}"
    if [ -n "$(ls -A "$backup")" ]; then
        check "files that were there before are back" cp -a "$backup/." /
    fi
    if [ -s "$tmp/before.sha256" ]; then
        check "restored files are identical to those before the test" \
            sha256sum --quiet -c "$tmp/before.sha256"
    fi
    check "no package left installed or as config files" not_installed_at_all
    check "the purge removed the system user and its group" \
        bash -c '! getent passwd execguard-runner >/dev/null && ! getent group execguard-runner >/dev/null' 
}

not_installed_at_all() {
    local package status
    for package in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
        if [ -n "$status" ] && [ "$status" != not-installed ]; then
            echo "  $package is in dpkg state '$status'"
            return 1
        fi
    done
}

step "Refusing to touch an existing installation"
not_installed_at_all ||
    die "a package above is installed; this test installs and purges its own build (dpkg --purge it first)"
if getent passwd execguard-runner >/dev/null; then
    die "user execguard-runner exists without the package (left from an interrupted run? deluser --system execguard-runner)"
fi
ok "neither package is installed, no user execguard-runner"

step "Dependencies"
bash scripts/install-deps.sh >"$logs/install-deps.log" 2>&1 || { cat "$logs/install-deps.log"; die "scripts/install-deps.sh"; }
export DEBIAN_FRONTEND=noninteractive
tools=()
for package in dpkg-dev systemd python3 curl; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || tools+=("$package")
done

step "Copying the checkout ($source_mode) to $src"
if [ "$source_mode" = head ]; then
    git -C "$EG_ROOT" archive HEAD | tar -x -C "$src"
    echo "commit $(git -C "$EG_ROOT" rev-parse --short HEAD)"
else
    git -C "$EG_ROOT" ls-files -z -co --exclude-standard |
        tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -x -C "$src"
fi
[ -f "$src/debian/control" ] || die "no debian/control in the copy"

# Build-Depends come from debian/control itself, so a package missing from
# the list fails the build on a fresh machine rather than passing here.
if [ ${#tools[@]} -gt 0 ] || ! (cd "$src" && dpkg-checkbuilddeps) >/dev/null 2>&1; then
    echo "installing ${tools[*]} and debian/control's Build-Depends"
    apt-get update -qq
    [ ${#tools[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${tools[@]}" >>"$logs/apt.log" 2>&1
    apt-get build-dep -y -qq --no-install-recommends "$src" >>"$logs/apt.log" 2>&1 ||
        { tail -n 20 "$logs/apt.log"; die "apt-get build-dep"; }
fi
check "the Build-Depends of debian/control are installed" bash -c "cd '$src' && dpkg-checkbuilddeps"

step "Version and metadata"
extversion=$(sed -n 's/^EXTVERSION = //p' "$src/Makefile")
default_version=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$src/extension/execguard.control")
debian_version=$(cd "$src" && dpkg-parsechangelog -S Version)
echo "Makefile EXTVERSION $extversion, control default_version $default_version, debian/changelog $debian_version"
check "control file's default_version is the Makefile's EXTVERSION" test "$default_version" = "$extversion"
check "debian/changelog's upstream version is EXTVERSION" test "${debian_version%-*}" = "$extversion"
check "META.json validator self-test" python3 "$src/test/packaging/validate_meta.py" --self-test
check "META.json is valid against the PGXN Meta Spec" python3 "$src/test/packaging/validate_meta.py" "$src/META.json"
check "META.json's versions and files match the extension" python3 - "$src" "$extversion" <<'PY'
import json, os, sys
src, version = sys.argv[1], sys.argv[2]
meta = json.load(open(os.path.join(src, "META.json")))
ext = meta["provides"]["execguard"]
problems = [p for p in (
    meta["version"] != version and f"version {meta['version']} is not {version}",
    ext["version"] != version and f"provides.execguard.version {ext['version']} is not {version}",
    *(not os.path.exists(os.path.join(src, ext[k])) and f"{k} {ext[k]} does not exist" for k in ("file", "docfile")),
) if p]
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
check "debian/control is up to date with control.in and pgversions" \
    bash -c "cd '$src' && cp debian/control '$tmp/control.committed' && pg_buildext updatecontrol && cmp -s debian/control '$tmp/control.committed'"

step "Building the packages (dpkg-buildpackage -b)"
build_options="parallel=$(nproc)"
[ "${EG_PKG_CHECK:-0}" = 1 ] || build_options="nocheck $build_options"
build_started=$SECONDS
if (cd "$src" && DEB_BUILD_OPTIONS=$build_options dpkg-buildpackage -b -us -uc) >"$logs/build.log" 2>&1; then
    ok "dpkg-buildpackage -b, DEB_BUILD_OPTIONS='$build_options' ($((SECONDS - build_started))s)"
else
    tail -n 40 "$logs/build.log"
    die "dpkg-buildpackage failed (log: $logs/build.log)"
fi
arch=$(dpkg --print-architecture)
deb_ext=$tmp/postgresql-15-execguard_${debian_version}_$arch.deb
deb_runner=$tmp/execguard-runner_${debian_version}_$arch.deb
ls -l "$tmp"/*.deb | sed 's/^/  /'
[ -f "$deb_ext" ] && [ -f "$deb_runner" ] || die "expected $deb_ext and $deb_runner"

if [ "${EG_PKG_CONTAINER:-0}" = 1 ]; then
    step "The service on a fresh Debian 12 booted with systemd (test/packaging/service_in_container.sh)"
    if "$src/test/packaging/service_in_container.sh" "$tmp" >"$logs/container.log" 2>&1; then
        ok "$(grep -E '^[0-9]+ passed' "$logs/container.log" | tail -n 1) in the container"
    else
        grep -E '^(FAIL|ok)' "$logs/container.log" | sed 's/^/  /'
        tail -n 5 "$logs/container.log" | sed 's/^/  /'
        bad "the service in a container (log: $logs/container.log)"
    fi
fi

step "Package contents (dpkg-deb -c)"
dpkg-deb -c "$deb_ext" >"$tmp/ext.contents"
dpkg-deb -c "$deb_runner" >"$tmp/runner.contents"
has() { # contents-file mode-prefix path
    awk -v mode="$2" -v path=".$3" '$6 == path && index($1, mode) == 1 { found = 1 } END { exit !found }' "$1"
}
check "extension: $PG_LIB/execguard.so" has "$tmp/ext.contents" -rw-r--r-- "$PG_LIB/execguard.so"
check "extension: execguard.control" has "$tmp/ext.contents" -rw-r--r-- "$PG_EXT/execguard.control"
sql_scripts=0
for script in "$src"/extension/execguard--*.sql; do
    sql_scripts=$((sql_scripts + 1))
    check "extension: $(basename "$script")" has "$tmp/ext.contents" -rw-r--r-- "$PG_EXT/$(basename "$script")"
done
check "extension: no file outside the server's folders and its docs" \
    bash -c "awk '\$1 !~ /^d/ {print \$6}' '$tmp/ext.contents' | grep -vE '^\./usr/(lib/postgresql/15/lib|share/postgresql/15/extension|share/doc/postgresql-15-execguard)/' | (! grep .)"
check "runner: /usr/bin/execguard-runner" has "$tmp/runner.contents" -rwxr-xr-x /usr/bin/execguard-runner
check "runner: the systemd unit" has "$tmp/runner.contents" -rw-r--r-- "$UNIT"
check "runner: /etc/execguard/runner.toml" has "$tmp/runner.contents" -rw-r--r-- /etc/execguard/runner.toml
check "runner: /etc/default/execguard-runner, mode 0600" has "$tmp/runner.contents" -rw------- /etc/default/execguard-runner
check "runner: docs runner.md (named by the unit's Documentation=)" \
    has "$tmp/runner.contents" -rw-r--r-- /usr/share/doc/execguard-runner/runner.md
check "runner: upstream changelog" has "$tmp/runner.contents" -rw-r--r-- /usr/share/doc/execguard-runner/changelog.gz
dpkg-deb --ctrl-tarfile "$deb_runner" | tar -xO ./conffiles >"$tmp/conffiles"
check "runner: both files in /etc are conffiles" \
    bash -c "grep -qx /etc/execguard/runner.toml '$tmp/conffiles' && grep -qx /etc/default/execguard-runner '$tmp/conffiles'"
check "extension: depends on postgresql-15" bash -c "dpkg-deb -f '$deb_ext' Depends | grep -q 'postgresql-15'"

step "Copying aside the files the packages will replace"
: >"$tmp/before.sha256"
while read -r path; do
    if [ -e "$path" ] || [ -L "$path" ]; then
        mkdir -p "$backup$(dirname "$path")"
        cp -a "$path" "$backup$path"
        sha256sum "$path" >>"$tmp/before.sha256"
        echo "  kept $path"
    fi
done < <(cat "$tmp/ext.contents" "$tmp/runner.contents" | awk '$1 !~ /^d/ {print substr($6, 2)}')
echo "$(wc -l <"$tmp/before.sha256") file(s) kept"

step "Installing the packages (apt-get install ./*.deb)"
installed_by_us=1
if apt-get install -y --no-install-recommends "$deb_ext" "$deb_runner" >"$logs/install.log" 2>&1; then
    ok "apt-get install of both packages"
else
    tail -n 20 "$logs/install.log"
    die "apt-get install failed"
fi
check "dpkg --verify: installed files are the packages'" bash -c "! dpkg --verify ${PACKAGES[*]} | grep ."
for package in "${PACKAGES[@]}"; do dpkg -L "$package" >"$tmp/$package.list"; done
for path in "$PG_LIB/execguard.so" "$PG_EXT/execguard.control"; do
    check "dpkg -L postgresql-15-execguard: $path" grep -qx "$path" "$tmp/postgresql-15-execguard.list"
done
check "dpkg -L postgresql-15-execguard: $sql_scripts SQL scripts" \
    test "$(grep -c "^$PG_EXT/execguard--.*\.sql$" "$tmp/postgresql-15-execguard.list")" = "$sql_scripts"
for path in /usr/bin/execguard-runner "$UNIT" /etc/execguard/runner.toml /etc/default/execguard-runner; do
    check "dpkg -L execguard-runner: $path" grep -qx "$path" "$tmp/execguard-runner.list"
done
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd execguard-runner || true)
check "system user execguard-runner (uid ${uid:-none} < 1000, home ${home:-none}, shell ${shell:-none})" \
    bash -c "[ -n '$uid' ] && [ '$uid' -lt 1000 ] && [ '$home' = /var/lib/execguard-runner ] && [ '$shell' = /usr/sbin/nologin ]"
check "group execguard-runner" logged "$logs/install.log" getent group execguard-runner
check "/etc/default/execguard-runner is 0600 root:root" \
    test "$(stat -c '%a %U:%G' /etc/default/execguard-runner)" = "600 root:root"
check "the unit is installed but not enabled" \
    bash -c "[ \"\$(systemctl is-enabled execguard-runner.service 2>/dev/null)\" = disabled ]"

step "systemd-analyze on the installed unit"
if systemd-analyze verify "$UNIT" >"$logs/verify.log" 2>&1 && ! grep -q . "$logs/verify.log"; then
    ok "systemd-analyze verify $UNIT: no complaint"
else
    sed 's/^/  /' "$logs/verify.log"
    bad "systemd-analyze verify $UNIT"
fi
systemd-analyze security --offline=yes "$UNIT" >"$logs/security.log" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for execguard-runner.service: \([0-9.]*\).*/\1/p' "$logs/security.log")
echo "  $(grep 'Overall exposure' "$logs/security.log")"
check "systemd-analyze security: exposure ${exposure:-?} is at most 2.0" \
    python3 -c "import sys; sys.exit(0 if '$exposure' and float('$exposure') <= 2.0 else 1)"
# The runner's defaults, as its --help states them (seconds).
help_default() { # flag
    # awk reads to the end: exiting early would SIGPIPE --help (pipefail).
    /usr/bin/execguard-runner --help | awk -v flag="$1" '
        index($0, flag " ") { found = 1 }
        found && !done && match($0, /\[default: [0-9.]+s\]/) { print substr($0, RSTART + 10, RLENGTH - 12); done = 1 }'
}
grace=$(help_default --grace-period)
connect=$(help_default --connect-timeout)
if [ -z "$grace" ] || [ -z "$connect" ]; then
    bad "reading --grace-period and --connect-timeout defaults from --help"
    grace=1000 connect=1000
fi
stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$UNIT")
# After SIGTERM: the grace period, then (database unreachable) one more
# grace period + 5s for the result writes, and a connection attempt under
# way may add the connect timeout.
needed=$(( ${grace%.*} * 2 + 5 + ${connect%.*} ))
echo "  runner defaults: grace period ${grace}s, connect timeout ${connect}s; worst-case stop ${needed}s; unit TimeoutStopSec=${stop_timeout}s"
check "TimeoutStopSec (${stop_timeout}s) exceeds the runner's worst-case stop (${needed}s) with a margin of 10s or more" \
    test "${stop_timeout:-0}" -ge $((needed + 10))

step "The installed runner and its example configuration"
check "/usr/bin/execguard-runner --help" bash -c "/usr/bin/execguard-runner --help >/dev/null"
set +e
"${as_service_user[@]}" /usr/bin/execguard-runner --config /etc/execguard/runner.toml >"$logs/runner-default-config.log" 2>&1
rc=$?
set -e
sed 's/^/  /' "$logs/runner-default-config.log"
check "the shipped runner.toml parses and is refused only for want of a region (exit $rc, expected 2)" \
    bash -c "[ $rc = 2 ] && grep -qi region '$logs/runner-default-config.log' && ! grep -qi 'cannot read\|unknown key' '$logs/runner-default-config.log'"
# Every example line uncommented must be a configuration the runner takes.
sed -E 's/^# (([a-z_]+|"[^"]*") = .*|\[.*\])$/\1/' /etc/execguard/runner.toml >"$tmp/runner-example.toml"
chmod 644 "$tmp/runner-example.toml"
chmod 755 "$tmp"
"${as_service_user[@]}" env US_EAST_API_KEY=unused /usr/bin/execguard-runner \
    --config "$tmp/runner-example.toml" --metrics-listen 127.0.0.1:0 >"$logs/runner-example-config.log" 2>&1 &
example_pid=$!
pids+=("$example_pid")
for _ in $(seq 50); do grep -q 'event=runner_started' "$logs/runner-example-config.log" && break; sleep 0.1; done
if kill -0 "$example_pid" 2>/dev/null && grep -q 'event=runner_started' "$logs/runner-example-config.log"; then
    ok "runner.toml with every example line uncommented is accepted (runner started)"
    kill -TERM "$example_pid"
    set +e
    wait "$example_pid"
    rc=$?
    set -e
    check "... and stops with exit 0 on SIGTERM (exit $rc)" test "$rc" = 0
else
    sed 's/^/  /' "$logs/runner-example-config.log"
    bad "runner.toml with every example line uncommented is accepted"
fi

step "A throwaway cluster with the packaged extension"
cluster=$EG_ROOT/.run/pkg-test
if ! runuser -u postgres -- test -x "$EG_ROOT"; then
    cluster=$(mktemp -d /tmp/execguard-pkg-test.XXXXXX)
    chmod 755 "$cluster"
fi
"$src/scripts/pgcluster.sh" destroy "$cluster" >/dev/null 2>&1 || true
"$src/scripts/pgcluster.sh" start "$cluster" >"$logs/cluster.log" 2>&1 || { cat "$logs/cluster.log"; die "cluster start"; }
. "$cluster/env"
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
value() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
check "CREATE EXTENSION execguard (from the package) is at $extversion" \
    test "$(value "SELECT extversion FROM pg_extension WHERE extname = 'execguard'")" = "$extversion"
check "the server preloads execguard" bash -c "psql -X -At -c 'SHOW shared_preload_libraries' | grep -qw execguard"
check "the server's library folder is the package's ($PG_LIB)" \
    test "$(value "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")" = "$PG_LIB"
expected_versions=$(ls "$src"/extension/execguard--*.sql | sed -E 's/.*execguard--([0-9.]+)(--([0-9.]+))?\.sql$/\1\n\3/' | grep . | sort -uV | paste -sd,)
check "every version is available: $expected_versions" \
    test "$(value "SELECT string_agg(version, ',' ORDER BY string_to_array(version, '.')::int[]) FROM pg_available_extension_versions WHERE name = 'execguard'")" = "$expected_versions"
value "CREATE DATABASE pkg_upgrade" >/dev/null
psql -X -q -d pkg_upgrade -v ON_ERROR_STOP=1 -c "CREATE EXTENSION execguard VERSION '0.1.0'" -c "ALTER EXTENSION execguard UPDATE" >"$logs/upgrade.log" 2>&1 || cat "$logs/upgrade.log"
check "0.1.0 updates through the packaged scripts to $extversion" \
    test "$(psql -X -At -d pkg_upgrade -c "SELECT extversion FROM pg_extension WHERE extname = 'execguard'")" = "$extversion"

step "The demo's steps against the installed files"
SPEC='{"id": "dedup-test-1759234649",
       "benchmark": {"input": {"type": "prompt", "data": {"prompt": "What is 2+2?"}}},
       "constraints": {"regions": ["us-east"]},
       "metadata": {"models": ["llama3.2-1b", "qwen2.5-1.5b", "llama3.2-1b", "qwen2.5-1.5b"]}}'
check "normalize_models(): 4 entries in, 2 out" \
    test "$(value "SELECT jsonb_array_length(execguard.normalize_models('[\"llama3.2-1b\",\"qwen2.5-1.5b\",\"llama3.2-1b\",\"qwen2.5-1.5b\"]', '{us-east}'))")" = 2
check "submit_job(): 2 executions created, 2 duplicates removed" \
    test "$(value "SELECT executions_created || ',' || duplicates_removed FROM execguard.submit_job('$SPEC')")" = 2,2
check "the same job again creates nothing" \
    test "$(value "SELECT executions_created FROM execguard.submit_job('$SPEC')")" = 0

/usr/bin/python3 "$src/test/fake_inference/fake_server.py" --port 0 >"$tmp/fake.port" 2>"$logs/fake.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/fake.port" ] && break; sleep 0.1; done
fake=http://127.0.0.1:$(head -n 1 "$tmp/fake.port")
# As the service runs it: the package's binary, as the package's user.
"${as_service_user[@]}" env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" PGDATABASE="$PGDATABASE" \
    /usr/bin/execguard-runner --worker-id pkg-runner --metrics-listen 127.0.0.1:0 \
    --region "us-east=$fake/us-east" --poll-interval 1s >"$logs/runner.log" 2>&1 &
runner_pid=$!
pids+=("$runner_pid")
for _ in $(seq 100); do grep -q 'event=metrics_listening' "$logs/runner.log" && break; sleep 0.1; done
metrics_port=$(sed -n 's/.*event=metrics_listening.*port=\([0-9]*\).*/\1/p' "$logs/runner.log" | head -n 1)
completed=0
for _ in $(seq 300); do
    completed=$(value "SELECT count(*) FROM execguard.executions WHERE job_id = 'dedup-test-1759234649' AND status = 'completed' AND worker = 'pkg-runner'")
    [ "$completed" = 2 ] && break
    sleep 0.1
done
sql -c "SELECT execution_id, model_id, region, status, attempt, worker, result->>'text' AS answer FROM execguard.executions ORDER BY execution_id"
check "the installed runner completed both executions" test "$completed" = 2
calls() { curl -fsS "$fake/_requests" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'; }
check "2 model calls for 4 model entries" test "$(calls)" = 2
check "a redelivered message creates nothing" \
    test "$(value "SELECT executions_created FROM execguard.submit_job('$SPEC')")" = 0
check "a late worker's claim is refused: completed" \
    test "$(value "SELECT outcome FROM execguard.claim_execution('dedup-test-1759234649', 'LLAMA3.2-1B', 'us-east', '', 'late-worker', track_owner => false)")" = completed
check "still 2 model calls" test "$(calls)" = 2
check "the runner's /metrics: 2 completed" \
    bash -c "curl -fsS http://127.0.0.1:${metrics_port:-0}/metrics | grep -qE '^execguard_runner_executions_finished_total\{result=\"completed\"\} 2(\.0)?$'"
check "the runner's /healthz: 200" curl -fsS -o /dev/null "http://127.0.0.1:${metrics_port:-0}/healthz"
stop_started=$SECONDS
kill -TERM "$runner_pid"
set +e
wait "$runner_pid"
rc=$?
set -e
check "SIGTERM: the runner stops with exit 0 (exit $rc, in $((SECONDS - stop_started))s)" test "$rc" = 0
check "the server log has no crash" bash -c "! grep -E 'terminated by signal|PANIC' '$cluster/server.log'"
