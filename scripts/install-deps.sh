#!/usr/bin/env bash
# scripts/install-deps.sh: the Debian 12 packages execguard needs to build,
# test and demo. Installs the missing ones when run as root; otherwise
# prints the exact apt-get line and fails. With PG_MAJOR set to another
# major than Debian 12's 15, also builds that server (scripts/build-pg.sh,
# cached outside the checkout); 15 stays installed for its client programs
# and the server's user.
set -euo pipefail

BUILD_PACKAGES="build-essential cmake pkg-config postgresql-15 postgresql-server-dev-15 postgresql-client-15 libpq-dev"
EXTENSION_PACKAGES="nlohmann-json3-dev"
RUNNER_PACKAGES="libcurl4-openssl-dev prometheus-cpp-dev libcli11-dev libtoml11-dev libspdlog-dev libfmt-dev libcivetweb-dev"
TEST_PACKAGES="valgrind pgbouncer libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev llvm-14 clang-format prometheus python3 python3-pytest python3-psycopg2 curl procps iproute2 util-linux"
# The client examples (examples/, test/examples/run.sh): psycopg 3, Debian's
# nodejs with node-pg (no npm), Go with lib/pq (built offline, GOPATH mode).
EXAMPLES_PACKAGES="python3-psycopg nodejs node-pg golang-go golang-github-lib-pq-dev"

missing=()
for package in $BUILD_PACKAGES $EXTENSION_PACKAGES $RUNNER_PACKAGES $TEST_PACKAGES $EXAMPLES_PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
# node-pg needs a nodejs that satisfies "nodejs:any" (Multi-Arch: allowed), as
# Debian's does. NodeSource's (20, with npm), found on some machines, does not,
# and apt then refuses node-pg: it is replaced by Debian's (18), a downgrade.
foreign_nodejs=0
if dpkg-query -W -f='${Status}' nodejs 2>/dev/null | grep -q 'install ok installed' &&
    [ "$(dpkg-query -W -f='${Multi-Arch}' nodejs)" != allowed ]; then
    foreign_nodejs=1
fi
if [ ${#missing[@]} -gt 0 ] || [ $foreign_nodejs = 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "execguard needs these Debian packages; run as root:" >&2
        echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
        [ $foreign_nodejs = 0 ] || echo "and Debian's nodejs in place of $(dpkg-query -W -f='${Version}' nodejs) (apt-get install --allow-downgrades nodejs=VERSION)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    downgrade=()
    if [ $foreign_nodejs = 1 ]; then
        # The newest version Debian's archive offers (madison lists newest first).
        version=$(apt-cache madison nodejs | awk -F'|' '$3 ~ /debian/ { gsub(/ /, "", $2); print $2; exit }')
        [ -n "$version" ] || { echo "install-deps: no nodejs in Debian's archive" >&2; exit 1; }
        missing+=("nodejs=$version")
        downgrade=(--allow-downgrades)
    fi
    echo "install-deps: installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${downgrade[@]}" "${missing[@]}" >/dev/null
fi

if [ "${PG_MAJOR:-15}" != 15 ] && [ -z "${PG_CONFIG:-}" ]; then
    "$(dirname "$0")/build-pg.sh" "$PG_MAJOR" >/dev/null
fi
