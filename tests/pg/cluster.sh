#!/usr/bin/env bash
#
# cluster.sh — a throwaway PostgreSQL cluster for pgfeed's tests and demo.
#
#   cluster.sh start DIR PORT   initdb + start in DIR, create role and database
#                               pgfeed_test, install sql/install.sql into it
#   cluster.sh stop DIR         stop the server in DIR (its files stay for a
#                               post-mortem; the next start wipes them)
#   cluster.sh env DIR PORT     print `export PG...=...` for libpq clients
#   cluster.sh restart DIR      restart the server in DIR (fast shutdown: every
#                               session is disconnected), keeping its data;
#                               returns once it accepts connections again
#   cluster.sh stop-fast DIR    fast shutdown of the server in DIR, keeping its
#                               data, to be brought back by start-again
#   cluster.sh start-again DIR  start the existing cluster in DIR again (no
#                               initdb, no wipe) and wait until it is ready; a
#                               no-op when it already runs
#   cluster.sh version          the server version that start runs
#
# restart, stop-fast and start-again are for tests that take the database away
# from a running pgfeed (tests/e2e/resilience_*.test.mjs); the port is the one
# start wrote into DIR/data/postgresql.conf.
#
# Layout of DIR: data/ (the cluster), socket/ (the Unix socket, reachable by any
# user so a web server running as www-data can connect), log (server log),
# initdb.log. The server listens on 127.0.0.1:PORT and on socket/.s.PGSQL.PORT
# with trust authentication, fsync off: it is for tests only.
#
# initdb and postgres refuse to run as root. Run as root, this script runs the
# server as the system user `pgfeed` (created with useradd --system when it is
# missing) and everything else (psql) as root. Run as anyone else, the server
# runs as that user. The server is the newest major version installed under
# /usr/lib/postgresql (Debian's layout), else pg_config's or PATH's; set
# PGFEED_PG_BINDIR to use another PostgreSQL build. `cluster.sh version`
# prints the one that will run.

set -euo pipefail

readonly SERVER_USER=pgfeed
readonly TEST_ROLE=pgfeed_test
readonly TEST_DB=pgfeed_test
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
readonly INSTALL_SQL=$SCRIPT_DIR/../../sql/install.sql

# Settings from the caller's environment must not redirect our own psql calls.
unset PGSERVICE PGSERVICEFILE PGHOSTADDR PGOPTIONS PGSSLMODE PGTARGETSESSIONATTRS PGDATA

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: cluster.sh start DIR PORT | stop DIR | env DIR PORT | restart DIR | stop-fast DIR | start-again DIR | version" >&2
    exit 2
}

# The directory holding initdb/pg_ctl/postgres. Debian's pg_config belongs to
# libpq-dev and answers /usr/bin, which has psql but no initdb, so the
# versioned directories (newest first) come before it.
find_bindir() {
    local dir newest
    newest=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5nr | head -n 1)
    for dir in "${PGFEED_PG_BINDIR:-}" "$newest" "$(pg_config --bindir 2>/dev/null || true)"; do
        if [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]]; then
            echo "$dir"
            return
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return
    fi
    die "no PostgreSQL server binaries (initdb, pg_ctl) found; install postgresql (tests/install-deps.sh pg) or set PGFEED_PG_BINDIR"
}

check_port() {
    [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1024 && $1 <= 65535)) || die "PORT must be a number from 1024 to 65535, not '$1'"
}

# An absolute, symlink-free path; the directory is created when asked.
absolute_dir() {
    local dir=$1 create=$2
    if [[ $create == yes ]]; then
        mkdir -p -- "$dir" || die "cannot create $dir"
    fi
    if [[ -d $dir ]]; then
        (cd -- "$dir" && pwd -P)
    else
        realpath -m -- "$dir"
    fi
}

# Runs a command as the user that owns (or will own) the server's files.
as_owner() {
    local owner=$1
    shift
    if [[ $(id -un) == "$owner" ]]; then
        "$@"
    else
        runuser -u "$owner" -- "$@"
    fi
}

server_user() {
    if ((EUID == 0)); then
        echo "$SERVER_USER"
    else
        id -un
    fi
}

ensure_server_user() {
    ((EUID == 0)) || return 0
    id -u "$SERVER_USER" >/dev/null 2>&1 && return 0
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "pgfeed test PostgreSQL server" "$SERVER_USER" ||
        die "cannot create system user $SERVER_USER (useradd failed)"
}

postmaster_pid() {
    local pidfile=$1/data/postmaster.pid
    [[ -r $pidfile ]] && head -n 1 "$pidfile"
}

# Stops the server in DIR if one runs there; returns 1 if it is still alive.
stop_server() {
    local dir=$1 bindir pid owner
    pid=$(postmaster_pid "$dir") || return 0
    bindir=$(find_bindir)
    owner=$(stat -c %U "$dir/data")
    if kill -0 "$pid" 2>/dev/null; then
        as_owner "$owner" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_owner "$owner" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
            true
    fi
    if kill -0 "$pid" 2>/dev/null && [[ $(postmaster_pid "$dir" || true) == "$pid" ]]; then
        return 1
    fi
    rm -f -- "$dir/data/postmaster.pid"
}

# Succeeds if something accepts TCP connections on 127.0.0.1:PORT.
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

show_log() {
    local file=$1
    [[ -s $file ]] || return 0
    echo "---- last lines of $file ----" >&2
    tail -n 30 -- "$file" >&2
}

cmd_start() {
    local dir port bindir owner socket
    [[ $# -eq 2 ]] || usage
    port=$2
    check_port "$port"
    [[ -f $INSTALL_SQL ]] || die "cannot find $INSTALL_SQL"
    dir=$(absolute_dir "$1" yes)
    socket=$dir/socket
    # sun_path holds 107 bytes; PostgreSQL refuses longer socket paths.
    ((${#socket} + 16 < 108)) || die "DIR is too long for a Unix socket path: $socket"
    bindir=$(find_bindir)
    ensure_server_user
    owner=$(server_user)

    stop_server "$dir" || die "a server still runs in $dir and did not stop; stop it by hand"
    rm -rf -- "$dir/data" "$dir/socket" "$dir/log" "$dir/initdb.log"
    if port_busy "$port"; then
        die "port $port on 127.0.0.1 is in use by another server; pick another port (for ctest: -DPGFEED_TEST_PGPORT=N)"
    fi

    chmod 755 -- "$dir"
    as_owner "$owner" test -x "$dir" ||
        die "user $owner cannot reach $dir: every parent directory needs the x permission for others"
    mkdir -m 700 -- "$dir/data"
    mkdir -m 755 -- "$dir/socket"
    touch -- "$dir/log" "$dir/initdb.log"
    chown "$owner:" -- "$dir/data" "$dir/socket" "$dir/log" "$dir/initdb.log"

    # pg_ctl and initdb look at the working directory; the caller's may be
    # closed to the server user (root's home).
    cd -- "$dir"
    if ! as_owner "$owner" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync --no-instructions >"$dir/initdb.log" 2>&1; then
        show_log "$dir/initdb.log"
        die "initdb failed in $dir/data"
    fi
    # The socket directory path goes into a quoted setting: double any quote.
    local socket_quoted=${socket//"'"/"''"}
    cat >>"$dir/data/postgresql.conf" <<EOF

# ---- throwaway test cluster (tests/pg/cluster.sh) ----
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$socket_quoted'
unix_socket_permissions = 0777
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_error_statement = error
EOF
    if ! as_owner "$owner" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null; then
        show_log "$dir/log"
        die "the server in $dir did not start"
    fi
    local tries=0
    until "$bindir/pg_isready" -q -h "$socket" -p "$port" -d postgres -U postgres; do
        ((++tries < 60)) || {
            show_log "$dir/log"
            die "the server in $dir does not accept connections"
        }
        sleep 0.5
    done

    if ! psql -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE $TEST_ROLE SUPERUSER LOGIN" \
        -c "CREATE DATABASE $TEST_DB OWNER $TEST_ROLE" >/dev/null; then
        die "cannot create role and database $TEST_DB"
    fi
    if ! psql -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -U "$TEST_ROLE" -d "$TEST_DB" \
        -f "$INSTALL_SQL" >/dev/null; then
        die "installing $INSTALL_SQL failed"
    fi
    echo "cluster.sh: PostgreSQL ready in $dir (socket $socket, 127.0.0.1:$port, server user $owner)"
}

cmd_stop() {
    local dir
    [[ $# -eq 1 ]] || usage
    dir=$(absolute_dir "$1" no)
    if [[ -z $(postmaster_pid "$dir" || true) ]]; then
        echo "cluster.sh: no server in $dir"
        return 0
    fi
    stop_server "$dir" || die "the server in $dir did not stop"
    echo "cluster.sh: stopped the server in $dir"
}

cmd_env() {
    local dir
    [[ $# -eq 2 ]] || usage
    check_port "$2"
    dir=$(absolute_dir "$1" no)
    printf 'export PGHOST=%q PGPORT=%q PGUSER=%q PGDATABASE=%q\n' "$dir/socket" "$2" "$TEST_ROLE" "$TEST_DB"
}

# The port start configured for the cluster in DIR (the last `port =` line wins,
# as it does for PostgreSQL).
cluster_port() {
    local conf=$1/data/postgresql.conf port
    [[ -r $conf ]] || die "no cluster in $1 (missing $conf); create one with: cluster.sh start DIR PORT"
    port=$(sed -n 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$conf" | tail -n 1)
    [[ -n $port ]] || die "no port setting in $conf"
    echo "$port"
}

# An existing cluster's DIR, absolute; dies when DIR holds none.
existing_cluster() {
    local dir
    dir=$(absolute_dir "$1" no)
    [[ -f $dir/data/PG_VERSION ]] || die "no cluster in $dir (missing data/PG_VERSION); create one with: cluster.sh start DIR PORT"
    echo "$dir"
}

server_running() {
    local pid
    pid=$(postmaster_pid "$1") || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# Waits until the server in DIR accepts connections on its socket.
wait_ready() {
    local dir=$1 port=$2 bindir=$3 tries=0
    until "$bindir/pg_isready" -q -h "$dir/socket" -p "$port" -d postgres -U postgres; do
        ((++tries < 120)) || {
            show_log "$dir/log"
            die "the server in $dir does not accept connections"
        }
        sleep 0.1
    done
}

cmd_restart() {
    local dir port bindir owner
    [[ $# -eq 1 ]] || usage
    dir=$(existing_cluster "$1")
    port=$(cluster_port "$dir")
    bindir=$(find_bindir)
    owner=$(stat -c %U "$dir/data")
    cd -- "$dir"
    # -m fast: sessions (pgfeed's LISTEN connection among them) are terminated,
    # open transactions roll back; committed data stays.
    if ! as_owner "$owner" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w -t 60 restart >/dev/null; then
        show_log "$dir/log"
        die "the server in $dir did not restart"
    fi
    wait_ready "$dir" "$port" "$bindir"
    echo "cluster.sh: restarted the server in $dir (127.0.0.1:$port)"
}

cmd_stop_fast() {
    local dir bindir owner
    [[ $# -eq 1 ]] || usage
    dir=$(existing_cluster "$1")
    server_running "$dir" || die "no server runs in $dir"
    bindir=$(find_bindir)
    owner=$(stat -c %U "$dir/data")
    cd -- "$dir"
    if ! as_owner "$owner" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null; then
        show_log "$dir/log"
        die "the server in $dir did not stop"
    fi
    echo "cluster.sh: stopped the server in $dir (data kept; bring it back with start-again)"
}

cmd_start_again() {
    local dir port bindir owner
    [[ $# -eq 1 ]] || usage
    dir=$(existing_cluster "$1")
    port=$(cluster_port "$dir")
    bindir=$(find_bindir)
    if server_running "$dir"; then
        wait_ready "$dir" "$port" "$bindir"
        echo "cluster.sh: the server in $dir already runs"
        return 0
    fi
    if port_busy "$port"; then
        die "port $port on 127.0.0.1 is in use by another server; cannot start the cluster in $dir again"
    fi
    owner=$(stat -c %U "$dir/data")
    cd -- "$dir"
    if ! as_owner "$owner" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null; then
        show_log "$dir/log"
        die "the server in $dir did not start again"
    fi
    wait_ready "$dir" "$port" "$bindir"
    echo "cluster.sh: started the server in $dir again (127.0.0.1:$port)"
}

[[ $# -ge 1 ]] || usage
command=$1
shift
case $command in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
env) cmd_env "$@" ;;
restart) cmd_restart "$@" ;;
stop-fast) cmd_stop_fast "$@" ;;
start-again) cmd_start_again "$@" ;;
version) "$(find_bindir)/postgres" --version ;;
*) usage ;;
esac
