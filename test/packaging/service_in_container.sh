#!/usr/bin/env bash
# test/packaging/service_in_container.sh DEB_DIR: the packages on a fresh
# Debian 12 that boots systemd, with the runner started by its unit.
#
# What test/packaging/run.sh cannot do on a machine whose PID 1 is not
# systemd: start execguard-runner.service under its real sandbox
# (ProtectSystem=strict, SystemCallFilter=, no capabilities, ...), with the
# package's user, config file and environment file. This script:
#
#   1. makes a minimal Debian 12 root with debootstrap (cached in
#      /var/tmp/execguard-container/root-base; EG_CONTAINER_FRESH=1 makes it
#      again) and copies it for this run;
#   2. boots it with systemd-nspawn (private network: only loopback);
#   3. inside, apt-get installs postgresql-15 and the two packages from
#      DEB_DIR, preloads execguard, creates the roles of docs/security.md, maps
#      the OS user execguard-runner to the role execguard_runner (peer
#      authentication over the Unix socket, as docs/operations.md suggests),
#      starts a fake inference server, fills in /etc/execguard/runner.toml and
#      /etc/default/execguard-runner, and runs systemctl enable --now;
#   4. checks that the service completes a job's executions once each, that
#      the process has no capabilities, no new privileges and a seccomp
#      filter, that the API key from the environment file reached the
#      provider, that systemctl stop ends it with exit 0, and that a refused
#      configuration (exit 2) is not restarted;
#   5. powers the container off and removes its root.
#
# Needs root, debootstrap and systemd-container (installed when missing), and
# the Debian mirror of /etc/apt/sources.list.d/debian.sources. About 5 minutes
# the first time (debootstrap), 2 after.
set -euo pipefail

deb_dir=$(cd "${1:?usage: $0 DEB_DIR (with postgresql-15-execguard_*.deb and execguard-runner_*.deb)}" && pwd)
EG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=/var/tmp/execguard-container
base=$cache/root-base
started=$SECONDS

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
ls "$deb_dir"/postgresql-15-execguard_*.deb "$deb_dir"/execguard-runner_*.deb >/dev/null

missing=()
for package in debootstrap systemd-container; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$cache"
if [ "${EG_CONTAINER_FRESH:-0}" = 1 ] || [ ! -x "$base/lib/systemd/systemd" ]; then
    rm -rf "$base"
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    echo "debootstrap bookworm from ${mirror:=http://deb.debian.org/debian} (once)"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,apt,ca-certificates \
        bookworm "$base" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log"; exit 1; }
    [ -f /etc/apt/sources.list.d/debian.sources ] &&
        cp /etc/apt/sources.list.d/debian.sources "$base/etc/apt/sources.list.d/" && rm -f "$base/etc/apt/sources.list"
fi

root=$(mktemp -d /var/tmp/execguard-container/run.XXXXXX)
machine=eg-pkg-$$
leader=
nspawn_pid=
cleanup() {
    local status=$?
    set +e
    if [ -n "$leader" ]; then
        nsenter --target "$leader" -m -u -i -n -p -C -- systemctl poweroff >/dev/null 2>&1
    fi
    if [ -n "$nspawn_pid" ]; then
        for _ in $(seq 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
        kill "$nspawn_pid" 2>/dev/null
        wait "$nspawn_pid" 2>/dev/null
    fi
    rm -rf "$root"
    echo "service_in_container: $((SECONDS - started))s"
    exit $status
}
trap cleanup EXIT

cp -a "$base/." "$root/"
mkdir -p "$root/pkg"
cp "$deb_dir"/postgresql-15-execguard_*.deb "$deb_dir"/execguard-runner_*.deb "$root/pkg/"
rm -f "$root"/pkg/*dbgsym*
cp "$EG_ROOT/test/fake_inference/fake_server.py" "$root/pkg/"
echo "$machine" >"$root/etc/hostname"

# The booted container has a private network (loopback only, so its
# server and ports meet nothing of the host's): its packages are downloaded
# first, by a container that shares the host's network and runs no init.
echo "downloading postgresql-15 and the packages' dependencies into the container"
systemd-nspawn -q --register=no --keep-unit -D "$root" --pipe /bin/sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only --no-install-recommends postgresql-15 python3 curl procps /pkg/*.deb' \
    >"$cache/download.log" 2>&1 || { tail -n 20 "$cache/download.log"; exit 1; }

echo "booting the container"
systemd-nspawn -q --register=no --keep-unit --private-network -D "$root" -M "$machine" -b \
    >"$cache/boot.log" 2>&1 </dev/null &
nspawn_pid=$!
# The container's init: the child of systemd-nspawn that is systemd.
for _ in $(seq 100); do
    leader=$(ps -o pid=,comm= --ppid "$nspawn_pid" 2>/dev/null | awk '$2 == "systemd" {print $1}' || true)
    [ -n "$leader" ] && break
    sleep 0.2
done
[ -n "$leader" ] || { tail -n 20 "$cache/boot.log"; echo "the container did not start"; exit 1; }
# Its namespaces (no user namespace: nspawn runs it as root without one).
inside() { nsenter --target "$leader" -m -u -i -n -p -C -- "$@"; }
for _ in $(seq 120); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) break ;; esac
    sleep 0.5
done
echo "container booted: $state"

inside /bin/bash -s <<'INSIDE'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

apt-get install -y -qq --no-install-recommends postgresql-15 python3 curl procps /pkg/*.deb >/var/log/eg-apt.log 2>&1 ||
    { tail -n 20 /var/log/eg-apt.log; exit 1; }
ok "apt-get install postgresql-15 and the two packages on a fresh Debian 12"

echo "shared_preload_libraries = 'execguard'" >/etc/postgresql/15/main/conf.d/execguard.conf
cat >/etc/postgresql/15/main/pg_ident.conf <<'EOF'
eg execguard-runner execguard_runner
EOF
sed -i '0,/^local/s//local   bench   execguard_runner   peer map=eg\n&/' /etc/postgresql/15/main/pg_hba.conf
systemctl restart postgresql@15-main
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE DATABASE bench;
\c bench
CREATE EXTENSION execguard;
CREATE ROLE execguard_runner LOGIN;
GRANT USAGE ON SCHEMA execguard TO execguard_runner;
GRANT EXECUTE ON FUNCTION
    execguard.claim_execution(text, text, text, text, text, interval, boolean),
    execguard.claim_next(text, int, interval, text[], text[], boolean),
    execguard.heartbeat(bigint, bigint, interval),
    execguard.complete_execution(bigint, bigint, jsonb),
    execguard.complete_executions(bigint[], bigint[], jsonb[]),
    execguard.fail_execution(bigint, bigint, text, boolean, interval),
    execguard.release_execution(bigint, bigint),
    execguard.execution_state(bigint, bigint)
  TO execguard_runner;
GRANT EXECUTE ON FUNCTION execguard.stats_raw(), execguard.queue_summary() TO execguard_runner;
GRANT SELECT ON execguard.stats TO execguard_runner;
SELECT * FROM execguard.submit_job('{"id": "svc-job",
  "benchmark": {"input": {"type": "prompt", "data": {"prompt": "What is 2+2?"}}},
  "constraints": {"regions": ["us-east"]},
  "metadata": {"models": ["llama3.2-1b", "qwen2.5-1.5b", "llama3.2-1b", "qwen2.5-1.5b"]}}');
SQL
ok "postgresql-15 preloads the packaged execguard; roles of docs/security.md"

cd /pkg
python3 fake_server.py --port 0 >/run/fake.port 2>/var/log/fake.log &
for _ in $(seq 100); do [ -s /run/fake.port ] && break; sleep 0.1; done
fake=http://127.0.0.1:$(head -n 1 /run/fake.port)

cat >/etc/execguard/runner.toml <<EOF
database = "host=/var/run/postgresql dbname=bench user=execguard_runner"
worker_id = "svc-runner"
poll_interval = "1s"
models = ["llama3.2-1b", "qwen2.5-1.5b"]

[regions.us-east]
base_url = "$fake/us-east"
api_key_env = "US_EAST_API_KEY"
EOF
echo "US_EAST_API_KEY=key-from-the-environment-file" >/etc/default/execguard-runner
mkdir -p /home/someone && echo private >/home/someone/file
systemctl enable --now execguard-runner.service >/dev/null 2>&1
check "systemctl enable --now execguard-runner" systemctl is-active --quiet execguard-runner.service

completed=0
for _ in $(seq 150); do
    completed=$(runuser -u postgres -- psql -X -At -d bench -c "SELECT count(*) FROM execguard.executions WHERE job_id = 'svc-job' AND status = 'completed' AND worker = 'svc-runner'")
    [ "$completed" = 2 ] && break
    sleep 0.2
done
check "the service completed both executions ($completed of 2)" test "$completed" = 2
calls=$(curl -fsS "$fake/_requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
check "2 model calls for 4 model entries ($calls)" test "$calls" = 2
# The runner refuses to start when a variable that api_key_env names is
# unset, and the fake server records whether a bearer token came.
check "the API key from /etc/default/execguard-runner went out as a bearer token" \
    bash -c "curl -fsS '$fake/_requests' | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"requests\"]; sys.exit(0 if r and all(x[\"authorization\"] for x in r) else 1)'"
check "/healthz of the service: 200" curl -fsS -o /dev/null http://127.0.0.1:9464/healthz

pid=$(systemctl show -p MainPID --value execguard-runner.service)
status=/proc/$pid/status
echo "  runner pid $pid: $(grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "$status" | tr -s '\t ' ' ' | paste -sd';')"
check "runs as execguard-runner" test "$(stat -c %U "/proc/$pid")" = execguard-runner
check "no effective or bounding capabilities" \
    bash -c "grep -q '^CapEff:\s*0000000000000000' $status && grep -q '^CapBnd:\s*0000000000000000' $status"
check "no new privileges" grep -q '^NoNewPrivs:\s*1' "$status"
check "a seccomp filter" grep -q '^Seccomp:\s*2' "$status"
check "/usr and /etc are read-only in its mount namespace (ProtectSystem=strict)" \
    bash -c "! nsenter --target $pid --mount -- touch /usr/eg-probe 2>/dev/null && ! nsenter --target $pid --mount -- touch /etc/eg-probe 2>/dev/null"
check "/home is out of its sight (ProtectHome=yes)" \
    bash -c "! nsenter --target $pid --mount -- cat /home/someone/file >/dev/null 2>&1"
check "its state directory was created" test "$(stat -c '%U %a' /var/lib/execguard-runner)" = "execguard-runner 700"

systemctl stop execguard-runner.service
check "systemctl stop: exit 0 (ExecMainStatus=$(systemctl show -p ExecMainStatus --value execguard-runner.service), Result=$(systemctl show -p Result --value execguard-runner.service))" \
    bash -c "[ \"\$(systemctl show -p ExecMainStatus --value execguard-runner.service)\" = 0 ] && [ \"\$(systemctl show -p Result --value execguard-runner.service)\" = success ]"
check "the journal has the runner's own stop line" \
    bash -c "journalctl -u execguard-runner.service --no-pager | grep -q 'event=runner_stopped'"

echo "unknown_key = 1" >>/etc/execguard/runner.toml
systemctl reset-failed execguard-runner.service 2>/dev/null || true
systemctl start execguard-runner.service || true
sleep 8
check "a refused configuration: exit 2, not restarted (NRestarts=$(systemctl show -p NRestarts --value execguard-runner.service))" \
    bash -c "[ \"\$(systemctl show -p ExecMainStatus --value execguard-runner.service)\" = 2 ] && [ \"\$(systemctl show -p NRestarts --value execguard-runner.service)\" = 0 ] && ! systemctl is-active --quiet execguard-runner.service"
journalctl -u execguard-runner.service --no-pager | tail -n 4 | sed 's/^/  /'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
INSIDE
