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

eg_build() {
    make -C "$EG_ROOT" -s -j2 >/dev/null
    make -C "$EG_ROOT" -s install >/dev/null
    cmake -S "$EG_ROOT" -B "$EG_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$EG_ROOT/build" -j2 >/dev/null
}
