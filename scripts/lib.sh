# scripts/lib.sh: shared by the README commands (sourced, not run).

EG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# A folder for a throwaway cluster: below the checkout (.run/NAME) when the
# server's user can reach it, else a fresh folder under /tmp (a checkout
# inside a private home directory, say).
eg_cluster_dir() {
    local name=$1
    if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$EG_ROOT" 2>/dev/null; then
        echo "$EG_ROOT/.run/$name"
    else
        echo "note: user postgres cannot reach $EG_ROOT; the cluster lives in /tmp instead" >&2
        mktemp -d "/tmp/execguard-$name.XXXXXX"
    fi
}

# Runs a command as the server's user: 'postgres' when we are root
# (PostgreSQL refuses to run as root), else as ourselves.
eg_as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# eg_initdb DIR: a new data directory DIR/data owned by the server's user
# (DIR must exist), UTF-8, trust authentication; initdb's output goes to
# DIR/initdb.log and is shown if it fails.
eg_initdb() {
    local dir=$1
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    eg_as_server_user "${PG_BIN:-/usr/lib/postgresql/15/bin}/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
}

eg_build() {
    make -C "$EG_ROOT" -s -j2 >/dev/null
    make -C "$EG_ROOT" -s install >/dev/null
    cmake -S "$EG_ROOT" -B "$EG_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$EG_ROOT/build" -j2 >/dev/null
}
