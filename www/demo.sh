#!/usr/bin/env bash
#
# demo.sh — the pgfeed demo in one command: live orders from PostgreSQL in a
# browser, over Apache + mod_fcgid.
#
#   www/demo.sh          install what is missing (tests/install-deps.sh demo),
#                        build pgfeed (build/demo), start a throwaway PostgreSQL
#                        and Apache on 127.0.0.1:8080, print the URL, and stay
#                        in the foreground until Ctrl-C stops everything
#   www/demo.sh --stop   stop a demo that still runs (another terminal, a
#                        killed shell); starting the demo does this first anyway
#
# Settings (environment):
#   PGFEED_DEMO_HOST    127.0.0.1   IPv4 address Apache listens on (0.0.0.0: all)
#   PGFEED_DEMO_PORT    8080        its port
#   PGFEED_DEMO_PGPORT  55433       port of the throwaway PostgreSQL (127.0.0.1)
#   PGFEED_DEMO_USER    www-data    as root: the user Apache and pgfeed run as
#
# What runs: PostgreSQL from tests/pg/cluster.sh in .pgfeed-demo/pg (its data
# is wiped on every start; as root the server runs as system user pgfeed), with
# pgfeed's schema and www/demo/schema.sql (table demo.orders, tracked to feed
# channel `orders`). Apache from www/demo/apache.conf: the page (www/), its
# backend /demo/orders (www/demo/orders.py, CGI) and /feed through
# apache/pgfeed-fcgid.conf, included unchanged. Logs: .pgfeed-demo/apache/.
#
# No server runs as root. As root, Apache (and the pgfeed processes mod_fcgid
# spawns) start as PGFEED_DEMO_USER; when that user cannot read the checkout
# (e.g. under /root), the page and the binary are copied to a directory in
# /tmp that it can, and .pgfeed-demo/pg and .pgfeed-demo/apache point there.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly REPO
readonly STATE=$REPO/.pgfeed-demo
readonly HOST=${PGFEED_DEMO_HOST:-127.0.0.1}
readonly PORT=${PGFEED_DEMO_PORT:-8080}
readonly PGPORT_DEMO=${PGFEED_DEMO_PGPORT:-55433}
readonly CLUSTER_SH=$REPO/tests/pg/cluster.sh
readonly BUILD=$REPO/build/demo
readonly MODULES=${APACHE_MODULES_DIR:-/usr/lib/apache2/modules}
readonly CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'demo.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

usage() {
    sed -n '3,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- stopping (also what makes a re-run start clean) ----

# Stops the Apache of a previous run: its whole process group (httpd, its
# children, the pgfeed processes of mod_fcgid, CGI scripts), found through
# the group id saved at start and checked against the command line, so that
# nothing else is ever signalled.
stop_apache() {
    local dir=$1 pgid members i
    [[ -r $dir/httpd.pgid ]] || return 0
    pgid=$(<"$dir/httpd.pgid")
    [[ $pgid =~ ^[0-9]+$ ]] || return 0
    ours_alive "$pgid" "$dir" || {
        rm -f -- "$dir/httpd.pgid"
        return 0
    }
    # Tells a demo.sh waiting in the foreground that this stop is deliberate.
    touch -- "$dir/stopping"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        members=$(group_members "$pgid")
        [[ -z $members ]] && break
        sleep 0.1
    done
    if [[ -n $(group_members "$pgid") ]]; then
        kill -KILL -- "-$pgid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f -- "$dir/httpd.pgid"
}

# The pids in process group PGID, from /proc (procps may be missing).
group_members() {
    local pgid=$1 f stat pgrp
    for f in /proc/[0-9]*/stat; do
        { stat=$(<"$f"); } 2>/dev/null || continue
        # comm may hold spaces and parentheses: fields follow the last ") ".
        read -r _ _ pgrp _ <<<"${stat##*) }"
        if [[ $pgrp == "$pgid" ]]; then
            f=${f#/proc/}
            echo "${f%/stat}"
        fi
    done
}

# Whether process group PGID still has a member that is our httpd (its command
# line names our ServerRoot) or a pgfeed it spawned.
ours_alive() {
    local pgid=$1 dir=$2 pid cmd
    for pid in $(group_members "$pgid"); do
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        if [[ $cmd == *"DEMO_ROOT $dir"* || $cmd == *"DEMO_ROOT \"$dir\""* || $cmd == */pgfeed* ]]; then
            return 0
        fi
    done
    return 1
}

# Stops whatever a previous run left: Apache, PostgreSQL, and the /tmp copy
# made for an unprivileged user. Quiet when nothing runs.
stop_all() {
    local runtime
    [[ -d $STATE ]] || return 0
    if [[ -f $STATE/apache/httpd.pgid ]]; then
        say "stopping the demo's Apache (and its pgfeed processes)"
        stop_apache "$(cd "$STATE/apache" && pwd -P)"
    fi
    if [[ -f $STATE/pg/data/postmaster.pid ]]; then
        say "stopping the demo's PostgreSQL"
        "$CLUSTER_SH" stop "$STATE/pg" >/dev/null || say "PostgreSQL in $STATE/pg did not stop"
    fi
    if [[ -f $STATE/runtime ]]; then
        runtime=$(<"$STATE/runtime")
        # Only ever a directory this script made with mktemp.
        if [[ $runtime == /tmp/pgfeed-demo.* && -d $runtime && ! -L $runtime && -O $runtime ]]; then
            rm -rf -- "$runtime"
        fi
        rm -f -- "$STATE/runtime" "$STATE/pg" "$STATE/apache"
    fi
}

# ---- starting ----

build_pgfeed() {
    mkdir -p -- "$BUILD"
    say "building pgfeed (cmake, Release) in build/demo"
    if ! { cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
        cmake --build "$BUILD" --target pgfeed -j"$(nproc)"; } >"$BUILD/demo-build.log" 2>&1; then
        tail -n 40 -- "$BUILD/demo-build.log" >&2
        die "the build failed (full log: $BUILD/demo-build.log)"
    fi
    [[ -x $BUILD/fcgi/pgfeed ]] || die "the build did not produce $BUILD/fcgi/pgfeed"
}

# Runs a command as the server user (the caller itself when not root).
as_user() {
    if [[ -n ${RUN_UID:-} ]]; then
        setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --init-groups -- "$@"
    else
        "$@"
    fi
}

# Chooses who runs the servers and where their files live (RUN), copying the
# page, the configs and the binary when the checkout is closed to that user.
prepare_runtime() {
    RUN=$STATE
    WWW=$REPO/www
    BIN=$BUILD/fcgi/pgfeed
    SNIPPET=$REPO/apache/pgfeed-fcgid.conf
    RUN_UID='' RUN_GID='' RUN_USER=$(id -un)
    if ((EUID == 0)); then
        RUN_USER=${PGFEED_DEMO_USER:-www-data}
        RUN_UID=$(id -u "$RUN_USER" 2>/dev/null) || die "no user $RUN_USER to run Apache as (set PGFEED_DEMO_USER)"
        RUN_GID=$(id -g "$RUN_USER")
        ((RUN_UID != 0)) || die "PGFEED_DEMO_USER must not be root"
    fi
    mkdir -p -- "$STATE"
    chmod 755 -- "$STATE"
    if ! as_user test -x "$STATE" -a -r "$WWW/index.html" -a -r "$WWW/demo/apache.conf" -a -x "$BIN" -a -r "$SNIPPET"; then
        RUN=$(mktemp -d /tmp/pgfeed-demo.XXXXXXXX)
        chmod 755 -- "$RUN"
        printf '%s\n' "$RUN" >"$STATE/runtime"
        say "user $RUN_USER cannot read $REPO: serving a copy from $RUN"
        cp -a -- "$REPO/www" "$RUN/www"
        mkdir -- "$RUN/bin" "$RUN/conf"
        cp -- "$BIN" "$RUN/bin/pgfeed"
        cp -- "$SNIPPET" "$RUN/conf/pgfeed-fcgid.conf"
        WWW=$RUN/www
        BIN=$RUN/bin/pgfeed
        SNIPPET=$RUN/conf/pgfeed-fcgid.conf
        ln -sfn -- "$RUN/pg" "$STATE/pg"
        ln -sfn -- "$RUN/apache" "$STATE/apache"
        as_user test -r "$WWW/index.html" -a -x "$BIN" -a -r "$SNIPPET" || die "user $RUN_USER cannot read $RUN either"
    fi
}

port_busy() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

start_postgres() {
    "$CLUSTER_SH" start "$RUN/pg" "$PGPORT_DEMO" >/dev/null || die "PostgreSQL did not start (port $PGPORT_DEMO: set PGFEED_DEMO_PGPORT to use another)"
    eval "$("$CLUSTER_SH" env "$RUN/pg" "$PGPORT_DEMO")"
    psql -X -q -v ON_ERROR_STOP=1 -f "$REPO/www/demo/schema.sql" >/dev/null || die "loading www/demo/schema.sql failed"
    say "$("$CLUSTER_SH" version) is up (127.0.0.1:$PGPORT_DEMO, data in .pgfeed-demo/pg), demo.orders tracked to channel orders"
}

start_apache() {
    local dir=$RUN/apache apache
    apache=$(command -v apache2 || command -v httpd || true)
    [[ -n $apache ]] || apache=/usr/sbin/apache2
    [[ -x $apache ]] || die "no apache2 binary; run tests/install-deps.sh demo"
    [[ -e $MODULES/mod_fcgid.so ]] || die "no mod_fcgid in $MODULES; install libapache2-mod-fcgid"
    rm -rf -- "$dir"
    mkdir -p -- "$dir/fcgid"
    [[ -z $RUN_UID ]] || chown -R "$RUN_UID:$RUN_GID" -- "$dir"

    local -a defines=(
        DEMO_ROOT "$dir" DEMO_LISTEN "$HOST:$PORT" DEMO_MODULES "$MODULES" DEMO_WWW "$WWW"
        DEMO_SNIPPET "$SNIPPET" PGFEED_BIN "$BIN"
        PGHOST "$PGHOST" PGPORT "$PGPORT" PGUSER "$PGUSER" PGDATABASE "$PGDATABASE"
    )
    local -a args=(-DFOREGROUND -f "$WWW/demo/apache.conf")
    local i
    for ((i = 0; i < ${#defines[@]}; i += 2)); do
        args+=(-C "Define ${defines[i]} \"${defines[i + 1]}\"")
    done
    # Its own session (so the terminal's Ctrl-C reaches only this script, which
    # then stops httpd in order), a clean environment, the server user.
    local -a user=()
    [[ -z $RUN_UID ]] || user=(setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --init-groups --)
    env -i PATH="$CLEAN_PATH" LANG=C.UTF-8 \
        setsid "${user[@]}" "$apache" "${args[@]}" </dev/null >"$dir/stdout.log" 2>&1 &
    APACHE_PID=$!
    echo "$APACHE_PID" >"$dir/httpd.pgid"

    local tries
    for ((tries = 0; tries < 100; tries++)); do
        if ! kill -0 "$APACHE_PID" 2>/dev/null; then
            show_logs
            die "Apache exited at start (logs above)"
        fi
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$(client_host)/" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.2
    done
    show_logs
    die "Apache did not answer on $HOST:$PORT within 20 s"
}

# Where to connect to reach Apache: HOST, or loopback when it listens on all.
connect_host() {
    case $HOST in
    0.0.0.0 | '*') echo 127.0.0.1 ;;
    *) echo "$HOST" ;;
    esac
}

client_host() {
    echo "$(connect_host):$PORT"
}

show_logs() {
    local f
    for f in "$RUN/apache/stdout.log" "$RUN/apache/error.log"; do
        [[ -s $f ]] || continue
        echo "---- $f ----" >&2
        tail -n 30 -- "$f" >&2
    done
}

# Checks the three parts through Apache, as the page will use them.
check_stack() {
    local base code
    base="http://$(client_host)"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/feed/_health" || true)
    [[ $code == 200 ]] || {
        show_logs
        die "GET /feed/_health answered $code, not 200 (logs above)"
    }
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/demo/orders" || true)
    [[ $code == 200 ]] || {
        show_logs
        die "GET /demo/orders answered $code, not 200 (logs above)"
    }
}

banner() {
    local base repo=.
    base="http://$(client_host)"
    [[ $PWD == "$REPO" ]] || repo=$REPO
    cat <<EOF

  pgfeed demo: $base/

  Open it in two windows and place orders: every change to demo.orders shows
  in both at once, whoever made it. From a terminal:

    # the feed as JSON (its ETag is the cursor), then live as Server-Sent Events
    curl -si $base/feed/orders
    curl -sN $base/feed/orders -H 'Accept: text/event-stream'

    # place an order through the page's backend
    curl -si $base/demo/orders -H 'Content-Type: application/json' -d '{"item": "Espresso", "quantity": 2}'

    # or change the table in SQL and watch the page
    eval "\$($repo/tests/pg/cluster.sh env $repo/.pgfeed-demo/pg $PGPORT_DEMO)"
    psql -c "UPDATE demo.orders SET quantity = quantity + 1 WHERE id = 1"

  Logs: $repo/.pgfeed-demo/apache/error.log (Apache, pgfeed, the CGI), access.log
  and $repo/.pgfeed-demo/pg/log. Ctrl-C stops the demo.

EOF
}

STOPPING=0
# shellcheck disable=SC2317  # run by the EXIT trap
on_exit() {
    local status=$?
    ((STOPPING == 0)) || return
    STOPPING=1
    trap '' INT TERM HUP
    if [[ -n ${APACHE_PID:-} ]]; then
        say "stopping Apache and pgfeed"
        stop_apache "$RUN/apache"
    fi
    if [[ -n ${PG_STARTED:-} ]]; then
        say "stopping PostgreSQL"
        "$CLUSTER_SH" stop "$RUN/pg" >/dev/null || say "PostgreSQL did not stop; run www/demo.sh --stop"
    fi
    exit "$status"
}

main() {
    case ${1:-} in
    '') ;;
    --stop)
        stop_all
        exit 0
        ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
    [[ $PORT =~ ^[0-9]+$ ]] || die "PGFEED_DEMO_PORT must be a number"

    stop_all
    "$REPO/tests/install-deps.sh" demo
    build_pgfeed
    prepare_runtime
    if port_busy "$(connect_host)" "$PORT"; then
        die "something already listens on $HOST:$PORT; set PGFEED_DEMO_PORT to use another port"
    fi

    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    PG_STARTED=1
    start_postgres
    start_apache
    check_stack
    banner

    # In the foreground until Ctrl-C (the trap stops everything) or until
    # httpd exits by itself.
    while kill -0 "$APACHE_PID" 2>/dev/null; do
        wait "$APACHE_PID" || true
    done
    if [[ -e $RUN/apache/stopping ]]; then
        say "stopped from elsewhere (www/demo.sh --stop)"
        exit 0
    fi
    show_logs
    die "Apache exited (logs above)"
}

main "$@"
