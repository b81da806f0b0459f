# scripts/lib.sh: shared by the README commands (sourced, not run).

EG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The PostgreSQL major version the scripts build against and run: Debian
# 12's own 15 unless PG_MAJOR says otherwise. Another major is built from
# Debian's source package by scripts/build-pg.sh, once, and kept outside the
# checkout. PG_CONFIG, when set, names the server outright.
PG_MAJOR=${PG_MAJOR:-15}

# eg_pg_config: the pg_config of the server to build against and run.
eg_pg_config() {
    if [ -n "${PG_CONFIG:-}" ]; then
        echo "$PG_CONFIG"
    elif [ -x "/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" ]; then
        echo "/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
    else
        "$EG_ROOT/scripts/build-pg.sh" "$PG_MAJOR" | tail -n 1
    fi
}

# eg_pg_bin: the folder of that server's programs (initdb, pg_ctl, psql).
eg_pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        echo "$PG_BIN"
    else
        "$(eg_pg_config)" --bindir
    fi
}

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
    eg_as_server_user "$(eg_pg_bin)/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
}

eg_build() {
    local pg_config
    pg_config=$(eg_pg_config)
    # Objects compiled against another major's headers must not be linked
    # into this module: .run/extension-built-for names the server of the
    # last build, and a build for another one starts clean.
    mkdir -p "$EG_ROOT/.run"
    if [ "$(cat "$EG_ROOT/.run/extension-built-for" 2>/dev/null)" != "$pg_config" ]; then
        make -C "$EG_ROOT" -s clean PG_CONFIG="$pg_config" >/dev/null
        echo "$pg_config" >"$EG_ROOT/.run/extension-built-for"
    fi
    make -C "$EG_ROOT" -s -j2 PG_CONFIG="$pg_config" >/dev/null
    make -C "$EG_ROOT" -s install PG_CONFIG="$pg_config" >/dev/null
    cmake -S "$EG_ROOT" -B "$EG_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$EG_ROOT/build" -j2 >/dev/null
}
