#!/usr/bin/env bash
# scripts/build-pg.sh: makes a PostgreSQL of another major version than
# Debian 12's own (15) available, to build and test execguard against it.
#
#   scripts/build-pg.sh 18          PostgreSQL 18 built from Debian's
#                                   postgresql-18 source package (suite sid)
#                                   and installed in $EG_PG_CACHE/18, with
#                                   contrib (pg_stat_statements), pg_regress
#                                   and pg_isolation_regress, and JIT (LLVM 14)
#   scripts/build-pg.sh 17-headers  the server headers and PGXS makefiles of
#                                   PostgreSQL 17 (binary packages from trixie)
#                                   unpacked in $EG_PG_CACHE/17-headers, with a
#                                   generated pg_config: enough to compile the
#                                   extension's objects, not to link or run it
#
# The last line on stdout is the pg_config to use (make PG_CONFIG=...);
# progress goes to stderr, build output to $EG_PG_CACHE/*.log.
#
# Everything lives outside the checkout, below EG_PG_CACHE (default
# /var/cache/execguard-pg), and is reused: a run that finds a finished
# install (its stamp file is written last) only prints the path. An
# interrupted run leaves no stamp, so the next run starts that version over.
#
# The packages come from the Debian archive that this machine's apt sources
# name, through an apt configuration of our own (sources list, lists and
# cache below EG_PG_CACHE/apt-*): the system's apt sources are not touched and
# nothing from trixie or sid is installed into the system. Only the build
# tools come from bookworm, installed like scripts/install-deps.sh does:
# when root, else the apt-get line is printed and the script fails.
#
# Environment:
#   EG_PG_CACHE          where builds are kept (default /var/cache/execguard-pg)
#   EG_PG_LLVM=no        build without JIT (default: with LLVM 14; a configure
#                        that fails with LLVM falls back to no JIT, loudly)
#   EG_DEBIAN_MIRROR     the archive's URI (default: read from apt's sources)
#   EG_PG_SOURCE_SUITE   suite of the source package (default sid)
#   EG_PG_HEADERS_SUITE  suite of the -headers binary packages (default trixie)
set -euo pipefail
umask 022

CACHE=${EG_PG_CACHE:-/var/cache/execguard-pg}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
LLVM_CONFIG_BIN=/usr/bin/llvm-config-14
CLANG_BIN=/usr/bin/clang-14

log() { echo "build-pg: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    echo "usage: $0 MAJOR | MAJOR-headers    (e.g. 18, 17-headers)" >&2
    exit 2
}

# need_packages PKG...: installs the missing bookworm packages when root;
# otherwise prints the apt-get line and fails (as install-deps.sh does).
need_packages() {
    local missing=() package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        log "these Debian packages are needed; run as root:"
        log "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
        exit 1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# debian_mirror: the URI of the Debian archive that the system's apt sources
# use for this release (deb822 .sources files first, then sources.list),
# without a trailing slash.
debian_mirror() {
    if [ -n "${EG_DEBIAN_MIRROR:-}" ]; then
        echo "$EG_DEBIAN_MIRROR"
        return
    fi
    local codename uri=""
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "cannot tell the Debian release from /etc/os-release"
    local sources=(/etc/apt/sources.list.d/*.sources)
    if [ -e "${sources[0]}" ]; then
        # One stanza per record (RS=""): the first with Types 'deb' whose
        # Suites has the release itself (not -security or -updates).
        uri=$(awk -v want="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    key = tolower(line); sub(/:.*/, "", key)
                    sub(/^[^:]*:[ \t]*/, "", line)
                    if (key == "types") types = line
                    else if (key == "uris") uris = line
                    else if (key == "suites") suites = line
                }
                if ((" " types " ") ~ / deb / && (" " suites " ") ~ (" " want " ") && uris != "") {
                    split(uris, u, /[ \t]+/); print u[1]; exit
                }
            }' "${sources[@]}")
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        # One-line style: deb [options] URI SUITE COMPONENT...
        uri=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' /etc/apt/sources.list |
            awk -v want="$codename" '$1 == "deb" && $3 == want { print $2; exit }')
    fi
    [ -n "$uri" ] || die "no '$codename' archive in apt's sources; set EG_DEBIAN_MIRROR"
    echo "${uri%/}"
}

# apt_private NAME SOURCES-LINE: sets APT, the apt-get command line with an
# apt configuration of our own below $CACHE/apt-NAME (its sources list, lists
# and cache; one per target, so that two targets can be prepared at once),
# and downloads that source's index files. apt verifies them with the
# system's Debian keyring and checks each download against their hashes.
APT=()
apt_private() {
    local dir=$CACHE/apt-$1
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    cat >"$dir/sources.list" <<EOF
# Written by execguard's scripts/build-pg.sh; used only by its own apt-get calls.
$2
EOF
    # Sandbox::User=root: the downloads land in folders that apt's '_apt'
    # user cannot write; this says so instead of warning about it.
    APT=(apt-get -q
        -o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
        -o APT::Sandbox::User=root)
    log "updating the package index: $2"
    "${APT[@]}" update >>"$LOG" 2>&1 || fail "apt-get update"
}

# run STEP CMD...: runs CMD with its output appended to the log.
run() {
    local step=$1
    shift
    echo "=== $step: $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || fail "$step"
}

fail() {
    log "$1 failed; the end of $LOG:"
    tail -n 40 "$LOG" >&2
    exit 1
}

# lock NAME: one run at a time per target (a second waits for the first).
lock() {
    exec 9>"$CACHE/$1.lock"
    flock 9
}

# check_reachable DIR: the clusters run as 'postgres', which must be able to
# read and run what is below DIR.
check_reachable() {
    if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 &&
        ! runuser -u postgres -- test -x "$1"; then
        log "warning: user postgres cannot reach $1 (a parent folder is closed); choose another EG_PG_CACHE"
    fi
}

# build_server MAJOR: configure, make and install postgresql-MAJOR.
build_server() {
    local major=$1 prefix=$CACHE/$1
    local stamp=$prefix/.build-complete
    if [ -x "$prefix/bin/pg_config" ] && [ -f "$stamp" ]; then
        echo "$prefix/bin/pg_config"
        return
    fi
    mkdir -p "$CACHE"
    lock "$major"
    if [ -x "$prefix/bin/pg_config" ] && [ -f "$stamp" ]; then # built while we waited
        echo "$prefix/bin/pg_config"
        return
    fi

    LOG=$CACHE/build-$major.log
    : >"$LOG"
    log "building PostgreSQL $major into $prefix (log: $LOG)"
    local started=$SECONDS llvm=${EG_PG_LLVM:-yes}
    local packages=(build-essential bison flex libreadline-dev zlib1g-dev bzip2 xz-utils)
    [ "$llvm" = yes ] && packages+=(llvm-14-dev clang-14)
    need_packages "${packages[@]}"
    local mirror
    mirror=$(debian_mirror)
    apt_private "$major" "deb-src [signed-by=$KEYRING] $mirror ${EG_PG_SOURCE_SUITE:-sid} main"

    # A fresh work folder; those of interrupted runs go first.
    rm -rf "$CACHE/work-$major".*
    local work
    work=$(mktemp -d "$CACHE/work-$major.XXXXXX")
    log "downloading the postgresql-$major source package"
    (cd "$work" && run "apt-get source" "${APT[@]}" source --download-only "postgresql-$major")
    local tarballs=("$work"/postgresql-"${major}"_*.orig.tar.*)
    [ -f "${tarballs[0]}" ] || fail "finding the upstream tarball in $work"
    run "unpacking ${tarballs[0]##*/}" tar -xf "${tarballs[0]}" -C "$work"
    local src
    src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name "postgresql-$major*" | head -n 1)
    [ -n "$src" ] || fail "finding the unpacked source"
    local version=${src##*/postgresql-}

    # Upstream sources only (Debian's patches are packaging matters). No ICU:
    # the clusters use the C.UTF-8 locale and libicu-dev is not needed.
    local configure=(./configure --prefix="$prefix" --without-icu)
    log "configuring $version"
    if [ "$llvm" = yes ]; then
        # PostgreSQL 18 needs LLVM >= 14: bookworm's llvm-14 is just enough.
        local with_llvm=(--with-llvm LLVM_CONFIG="$LLVM_CONFIG_BIN" CLANG="$CLANG_BIN")
        echo "=== configure: ${configure[*]} ${with_llvm[*]}" >>"$LOG"
        if (cd "$src" && "${configure[@]}" "${with_llvm[@]}" >>"$LOG" 2>&1); then
            configure+=("${with_llvm[@]}")
        else
            log "WARNING: configure --with-llvm failed (see $LOG); building WITHOUT JIT"
            llvm=no
            make -C "$src" distclean >>"$LOG" 2>&1 || true
        fi
    fi
    if [ "$llvm" != yes ]; then
        configure+=(--without-llvm)
        (cd "$src" && run configure "${configure[@]}")
    fi
    grep -E '^configure: using (llvm|compiler)' "$LOG" >&2 || true

    local jobs
    jobs=$(nproc)
    log "compiling (make -j$jobs: the server with pg_regress and pg_isolation_regress, then contrib)"
    run "make" make -C "$src" -j"$jobs"
    run "make contrib" make -C "$src/contrib" -j"$jobs"

    # Install over nothing: whatever an interrupted run left goes first.
    log "installing"
    rm -rf "$prefix"
    run "make install" make -C "$src" install
    run "make install contrib" make -C "$src/contrib" install
    # PGXS looks for the test drivers below its own folder, $(dir $(PGXS))
    # ../../src/test/{regress/pg_regress,isolation/pg_isolation_regress}.
    # The top-level install puts them there already; these make sure of it.
    run "make install regress" make -C "$src/src/test/regress" install
    run "make install isolation" make -C "$src/src/test/isolation" install
    chmod -R a+rX "$prefix"
    check_reachable "$prefix/bin"

    rm -rf "$work"
    local seconds=$((SECONDS - started))
    cat >"$stamp" <<EOF
version=$version
llvm=$llvm
configure=${configure[*]}
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
seconds=$seconds
EOF
    log "PostgreSQL $version installed in $prefix in $((seconds / 60))m$((seconds % 60))s (JIT: $llvm)"
    echo "$prefix/bin/pg_config"
}

# fetch_headers MAJOR: unpacks postgresql-server-dev-MAJOR (server headers)
# and postgresql-client-MAJOR (in trixie's 17 it holds PGXS: the makefiles,
# pg_regress, pg_config) and writes a pg_config script for them: the real
# pg_config is built for the suite's newer C library and may not run here.
fetch_headers() {
    local major=$1 dir=$CACHE/$1-headers
    local stamp=$dir/.complete
    if [ -x "$dir/bin/pg_config" ] && [ -f "$stamp" ]; then
        echo "$dir/bin/pg_config"
        return
    fi
    mkdir -p "$CACHE"
    lock "$major-headers"
    if [ -x "$dir/bin/pg_config" ] && [ -f "$stamp" ]; then
        echo "$dir/bin/pg_config"
        return
    fi

    LOG=$CACHE/$major-headers.log
    : >"$LOG"
    log "fetching the PostgreSQL $major headers into $dir (log: $LOG)"
    need_packages build-essential
    local mirror
    mirror=$(debian_mirror)
    apt_private "$major-headers" "deb [signed-by=$KEYRING] $mirror ${EG_PG_HEADERS_SUITE:-trixie} main"
    rm -rf "$dir"
    mkdir -p "$dir/debs" "$dir/root" "$dir/bin"
    (cd "$dir/debs" && run "apt-get download" "${APT[@]}" download \
        "postgresql-server-dev-$major" "postgresql-client-$major")
    local deb
    for deb in "$dir"/debs/*.deb; do
        run "unpacking ${deb##*/}" dpkg-deb -x "$deb" "$dir/root"
    done

    local root=$dir/root
    local pkglibdir=$root/usr/lib/postgresql/$major/lib
    local includedir=$root/usr/include/postgresql
    local global=$pkglibdir/pgxs/src/Makefile.global
    local header=$includedir/$major/server/pg_config.h
    [ -f "$global" ] || fail "finding PGXS ($global)"
    [ -f "$header" ] || fail "finding the server headers ($header)"

    # The suite's compiler is newer than bookworm's g++ 12, which rejects
    # -fexcess-precision=standard for C++ ("sorry, unimplemented").
    if ! echo 'int main() {}' | g++ -fexcess-precision=standard -x c++ -c -o /dev/null - 2>/dev/null; then
        log "note: g++ rejects -fexcess-precision=standard for C++; removed from CXXFLAGS in $global"
        sed -i -E '/^(BITCODE_)?CXXFLAGS =/s/ -fexcess-precision=standard//' "$global"
    fi

    # mk_value NAME: NAME's value in Makefile.global, less references to
    # other make variables ($(LDFLAGS_INTERNAL) in LDFLAGS, say).
    mk_value() {
        sed -n -E "s/^$1[[:space:]]*\\+?=[[:space:]]*//p" "$global" | head -n 1 |
            sed -E -e 's/\$\([^)]*\)//g' -e 's/^ +//' -e 's/ +$//'
    }
    local version configure_args
    version=$(sed -n -E 's/^#define PG_VERSION "(.*)"$/\1/p' "$header")
    configure_args=$(sed -n -E 's/^#define CONFIGURE_ARGS "(.*)"$/\1/p' "$header")
    {
        echo '#!/bin/sh'
        echo "# pg_config for the PostgreSQL $major headers in $root,"
        echo '# written by execguard scripts/build-pg.sh: the real one may not run here.'
        echo '# It answers what PGXS (Makefile.global) and pg_config users ask.'
        printf 'BINDIR=%q\n' "$root/usr/lib/postgresql/$major/bin"
        printf 'DOCDIR=%q\n' "$root/usr/share/doc/postgresql-doc-$major"
        printf 'HTMLDIR=%q\n' "$root/usr/share/doc/postgresql-doc-$major"
        printf 'INCLUDEDIR=%q\n' "$includedir"
        printf 'PKGINCLUDEDIR=%q\n' "$includedir"
        printf 'INCLUDEDIR_SERVER=%q\n' "$includedir/$major/server"
        printf 'LIBDIR=%q\n' "$root/usr/lib/x86_64-linux-gnu"
        printf 'PKGLIBDIR=%q\n' "$pkglibdir"
        printf 'LOCALEDIR=%q\n' "$root/usr/share/locale"
        printf 'MANDIR=%q\n' "$root/usr/share/postgresql/$major/man"
        printf 'SHAREDIR=%q\n' "$root/usr/share/postgresql/$major"
        printf 'SYSCONFDIR=%q\n' "$root/etc/postgresql-common"
        printf 'PGXS=%q\n' "$pkglibdir/pgxs/src/makefiles/pgxs.mk"
        printf 'CONFIGURE=%q\n' "$configure_args"
        printf 'CC=%q\n' "$(mk_value CC)"
        printf 'CPPFLAGS=%q\n' "$(mk_value CPPFLAGS)"
        printf 'CFLAGS=%q\n' "$(mk_value CFLAGS)"
        printf 'CFLAGS_SL=%q\n' "$(mk_value CFLAGS_SL)"
        printf 'LDFLAGS=%q\n' "$(mk_value LDFLAGS)"
        printf 'LDFLAGS_EX=%q\n' "$(mk_value LDFLAGS_EX)"
        printf 'LDFLAGS_SL=%q\n' "$(mk_value LDFLAGS_SL)"
        printf 'LIBS=%q\n' "$(mk_value LIBS)"
        printf 'VERSION=%q\n' "PostgreSQL $version"
        cat <<'EOF'
show() {
    case $1 in
    --bindir) echo "$BINDIR" ;;
    --docdir) echo "$DOCDIR" ;;
    --htmldir) echo "$HTMLDIR" ;;
    --includedir) echo "$INCLUDEDIR" ;;
    --pkgincludedir) echo "$PKGINCLUDEDIR" ;;
    --includedir-server) echo "$INCLUDEDIR_SERVER" ;;
    --libdir) echo "$LIBDIR" ;;
    --pkglibdir) echo "$PKGLIBDIR" ;;
    --localedir) echo "$LOCALEDIR" ;;
    --mandir) echo "$MANDIR" ;;
    --sharedir) echo "$SHAREDIR" ;;
    --sysconfdir) echo "$SYSCONFDIR" ;;
    --pgxs) echo "$PGXS" ;;
    --configure) echo "$CONFIGURE" ;;
    --cc) echo "$CC" ;;
    --cppflags) echo "$CPPFLAGS" ;;
    --cflags) echo "$CFLAGS" ;;
    --cflags_sl) echo "$CFLAGS_SL" ;;
    --ldflags) echo "$LDFLAGS" ;;
    --ldflags_ex) echo "$LDFLAGS_EX" ;;
    --ldflags_sl) echo "$LDFLAGS_SL" ;;
    --libs) echo "$LIBS" ;;
    --version) echo "$VERSION" ;;
    *) echo "pg_config: invalid argument: $1" >&2; exit 1 ;;
    esac
}
if [ $# -eq 0 ]; then
    for option in --bindir --docdir --htmldir --includedir --pkgincludedir \
        --includedir-server --libdir --pkglibdir --localedir --mandir \
        --sharedir --sysconfdir --pgxs --configure --cc --cppflags --cflags \
        --cflags_sl --ldflags --ldflags_ex --ldflags_sl --libs --version; do
        name=$(echo "${option#--}" | tr 'a-z-' 'A-Z_')
        echo "$name = $(show "$option")"
    done
    exit 0
fi
for option in "$@"; do
    show "$option"
done
EOF
    } >"$dir/bin/pg_config"
    chmod 755 "$dir/bin/pg_config"
    chmod -R a+rX "$dir"
    echo "version=$version" >"$stamp"
    log "PostgreSQL $version headers: $includedir/$major/server"
    log "compile-only: the binaries there are built for a newer C library and may not run here"
    echo "$dir/bin/pg_config"
}

[ $# -eq 1 ] || usage
if [[ $1 =~ ^[0-9]+$ ]]; then
    build_server "$1"
elif [[ $1 =~ ^([0-9]+)-headers$ ]]; then
    fetch_headers "${BASH_REMATCH[1]}"
else
    usage
fi
