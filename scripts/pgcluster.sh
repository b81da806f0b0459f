#!/usr/bin/env bash
# scripts/pgcluster.sh: a throwaway PostgreSQL cluster in a folder of the checkout.
#
#   scripts/pgcluster.sh start DIR     initdb DIR/data (if absent), start on a free
#                                      port with shared_preload_libraries=execguard,
#                                      CREATE EXTENSION execguard, write DIR/env
#   scripts/pgcluster.sh restart DIR   fast restart, same port
#   scripts/pgcluster.sh stop DIR      stop (leaves DIR)
#   scripts/pgcluster.sh destroy DIR   stop and remove DIR
#
# DIR/env holds shell export lines (PGHOST, PGPORT, PGUSER, PGDATABASE) for
# clients. The server is the PG_MAJOR (or PG_CONFIG) of scripts/lib.sh; a
# cluster must be stopped by the same major that started it. PostgreSQL refuses to run as root, so when run as root the server
# runs as the 'postgres' user, which must be able to reach DIR.
#
# EG_CLUSTER_STOCK=1 when a cluster is first started makes it a stock one:
# its postgresql.conf adds to initdb's defaults only the port, listen and
# socket settings, shared_preload_libraries = 'execguard' and a
# log_line_prefix (no pg_stat_statements, fsync, shared_buffers, ...), for
# benchmarks that must see the server as a DBA installs it (bench/backlog).
# Without it the cluster gets the test settings of the start command below.
set -euo pipefail

die() { echo "pgcluster: $*" >&2; exit 1; }

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

free_port() {
    # Ask the kernel for a free port, then make sure nothing answers on it.
    local port
    for _ in $(seq 1 20); do
        port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
        if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|restart|stop|destroy DIR"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
socket=$dir/socket
log=$dir/server.log

# The server's programs: those that created the cluster (DIR/pg_bin), else
# those of PG_MAJOR for a new one (clusters older than DIR/pg_bin were 15).
if [ -s "$dir/pg_bin" ]; then
    PG_BIN=$(cat "$dir/pg_bin")
elif [ "$cmd" = start ]; then
    PG_BIN=$(eg_pg_bin)
else
    PG_BIN=/usr/lib/postgresql/15/bin
fi

case "$cmd" in
start)
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "user 'postgres' is missing (scripts/install-deps.sh installs postgresql-15, which creates it)"
        chown postgres:postgres "$dir"
        runuser -u postgres -- test -x "$dir" ||
            die "user postgres cannot reach $dir; use a checkout below a world-searchable folder"
    fi
    mkdir -p "$socket"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$socket"
    if [ ! -f "$data/PG_VERSION" ]; then
        echo "$PG_BIN" >"$dir/pg_bin"
        PG_BIN=$PG_BIN eg_initdb "$dir" || die "initdb failed"
        port=$(free_port)
        if [ "${EG_CLUSTER_STOCK:-0}" = 1 ]; then
            cat >>"$data/postgresql.conf" <<CONF
# execguard stock cluster (EG_CLUSTER_STOCK=1): initdb's defaults otherwise
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket'
shared_preload_libraries = 'execguard'
log_line_prefix = '%m [%p] '
CONF
        else
            cat >>"$data/postgresql.conf" <<CONF
# execguard test cluster
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket'
shared_preload_libraries = 'execguard,pg_stat_statements'
max_connections = 60
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
log_min_messages = warning
log_line_prefix = '%m [%p] '
CONF
        fi
    fi
    port=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$data/postgresql.conf" | tail -n 1)
    eg_as_server_user "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null ||
        { tail -n 20 "$log" >&2; die "server did not start"; }
    cat >"$dir/env" <<ENV
export PGHOST='$socket'
export PGPORT='$port'
export PGUSER=postgres
export PGDATABASE=postgres
export EXECGUARD_CLUSTER_DIR='$dir'
ENV
    PGHOST=$socket PGPORT=$port "$PG_BIN/psql" -X -q -U postgres -d postgres \
        -c 'CREATE EXTENSION IF NOT EXISTS execguard' >/dev/null
    echo "pgcluster: running on port $port (socket $socket, data $data)"
    ;;
restart)
    eg_as_server_user "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 -m fast restart >/dev/null ||
        { tail -n 20 "$log" >&2; die "server did not restart"; }
    ;;
stop)
    if [ -f "$data/postmaster.pid" ]; then
        eg_as_server_user "$PG_BIN/pg_ctl" -D "$data" -w -t 60 -m fast stop >/dev/null || true
    fi
    ;;
destroy)
    if [ -f "$data/postmaster.pid" ]; then
        eg_as_server_user "$PG_BIN/pg_ctl" -D "$data" -w -t 60 -m immediate stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    die "unknown command '$cmd'"
    ;;
esac
