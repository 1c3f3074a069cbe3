#!/usr/bin/env bash
#
# run.sh N MODE [feedbench options] — benchmark one pgfeed daemon behind lighttpd.
# run.sh publish [ROUNDS] — pgfeed.publish ÷ a plain INSERT with pgbench, one
#                channel and several (tests/bench/publish.sh; builds pgfeed for its sequencer).
# run.sh compare [feedbench options] — the same loads against Nchan, pgfeed
#                behind lighttpd and pgfeed behind nginx, in one run; prints
#                pgfeed ÷ Nchan ratios at the end.
#
#   MODE longpoll   N clients hold long polls; 5 rounds of one publish each
#   MODE sse        N SSE streams; 20 events 200 ms apart, then a burst of 20
#   MODE lag        N long polls re-polling at once while 2,000 events/s are
#                   published for 10 s (--rate, --duration, --limit): lag
#                   p50/p99/max, lost/duplicated, pgfeed.read per second
#
# PGFEED_BENCH_PGFEED_ARGS adds pgfeed options (e.g. "--ring-seconds 10
# --ring-bytes 8388608"); PGFEED_BENCH_PGFEED runs another pgfeed binary (an
# older build, for a before/after figure) in place of the one built here.
#
# compare pins the servers, pgfeed and PostgreSQL to CPU 0 and the load
# generator to CPU 1 (taskset), so the two sides do not take each other's core;
# see compare_run below for what it measures. PGFEED_BENCH_SIZES (default
# "1000 8000") sets the long-poll sizes, PGFEED_BENCH_SSE (8000) the streams.
#
# Starts everything itself in a temp dir and stops it again: a throwaway
# PostgreSQL 15 cluster (tests/pg/cluster.sh, free port, pg_stat_statements
# loaded), pgfeed --listen on a Unix socket (connecting as its own role, so
# PostgreSQL can count its statements apart from the bench's), lighttpd with
# tests/bench/lighttpd.conf on a free port, then feedbench (tests/bench/
# feedbench.c), which prints the report. Builds pgfeed and feedbench first
# (Release, in $PGFEED_BENCH_BUILD, default build-bench/). Extra arguments go
# to feedbench (e.g. --rounds 10, --burst 50, --no-baseline).
#
# Run as root or as a user with ulimit -n of at least 2N + 100 (lighttpd holds
# two descriptors per client). PGFEED_BENCH_KEEP=1 keeps the temp dir and logs.
# Not part of the test suite: it takes minutes and wants a quiet machine.

set -euo pipefail

readonly PGFEED_ROLE=pgfeed_bench_app
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
readonly ROOT=$SCRIPT_DIR/../..
readonly BUILD=${PGFEED_BENCH_BUILD:-$ROOT/build-bench}
# shellcheck source=tests/bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

if [[ ${1:-} == publish ]]; then
    shift
    exec "$SCRIPT_DIR/publish.sh" "$@"
elif [[ ${1:-} == compare ]]; then
    readonly MODE=compare
    shift
    read -r -a SIZES <<<"${PGFEED_BENCH_SIZES:-1000 8000}"
    readonly SSE_N=${PGFEED_BENCH_SSE:-8000}
    N=$SSE_N
    for n in "${SIZES[@]}"; do ((n > N)) && N=$n; done
    readonly N
    # Server side on CPU 0, load generator on CPU 1 (everything the servers start inherits it).
    readonly SERVER_CPU=(taskset -c 0) BENCH_CPU=(taskset -c 1)
else
    [[ $# -ge 2 ]] || die "usage: run.sh N longpoll|sse [feedbench options] | run.sh compare [options]"
    readonly N=$1 MODE=$2
    shift 2
    [[ $N =~ ^[0-9]+$ ]] && ((N >= 1)) || die "N must be a positive number, not '$N'"
    [[ $MODE == longpoll || $MODE == sse || $MODE == lag ]] || die "MODE is longpoll, sse or lag, not '$MODE'"
    readonly SERVER_CPU=() BENCH_CPU=()
fi

# ---- build -------------------------------------------------------------------
[[ $MODE != compare ]] || "$ROOT/tests/install-deps.sh" bench # Nchan, taskset
bench_build
readonly PGFEED=${PGFEED_BENCH_PGFEED:-$BUILD/fcgi/pgfeed} FEEDBENCH=$BUILD/bench/feedbench
read -r -a PGFEED_ARGS <<<"${PGFEED_BENCH_PGFEED_ARGS:-}"

# ---- descriptors ---------------------------------------------------------------
readonly FDS_NEEDED=$((2 * N + 100))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= FDS_NEEDED)) || die "ulimit -n is $(ulimit -n); $N clients need $FDS_NEEDED"
MAX_FDS=$(ulimit -n)

# nginx started as root runs its workers as nobody; otherwise as the caller.
if ((EUID == 0)); then SOCKET_GROUP=$(id -gn nobody); else SOCKET_GROUP=$(id -gn); fi
readonly SOCKET_GROUP

# ---- everything below is stopped again on exit --------------------------------
TMP=$(mktemp -d /tmp/pgfeed-bench.XXXXXX)
chmod 755 "$TMP" # the cluster's server user must reach $TMP/pg
PGFEED_PID='' LIGHTTPD_PID=''
STARTED=() # pids of every server started below, stopped in reverse order
cleanup() {
    local rc=$?
    set +e # stop everything even when one step fails (a killed child's wait returns 143)
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        kill "${STARTED[i]}" 2>/dev/null
        wait "${STARTED[i]}" 2>/dev/null
    done
    "$ROOT/tests/pg/cluster.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
    if ((rc != 0)); then
        for log in "$TMP"/pgfeed*.log "$TMP/lighttpd.error.log" "$TMP"/nginx-*/error.log; do
            [[ -s $log ]] && { echo "---- last lines of $log" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    if [[ ${PGFEED_BENCH_KEEP:-0} == 1 ]]; then
        echo "run.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- PostgreSQL ------------------------------------------------------------------
bench_postgres "$TMP/pg" "$PGFEED_ROLE" "${SERVER_CPU[@]}"
# Its backends' CPU (the publishes, pgfeed's reads) is counted with the servers'.
POSTMASTER_PID=$(head -n 1 "$TMP/pg/data/postmaster.pid")
readonly POSTMASTER_PID

# ---- servers: each start_* sets its pid variable and adds it to STARTED -----------

# start_pgfeed NAME [pgfeed options]: a pgfeed daemon on $TMP/NAME.sock; sets PGFEED_PID.
start_pgfeed() {
    local name=$1
    shift
    # Long enough waits and stream lifetimes that nothing ends by itself mid-run; no pruning.
    # Reads are denied by default: the bench's channels are open to anyone. The socket is
    # 0660: nginx's workers (nobody when started as root) reach it through its group. No
    # sequencer (nothing here enqueues, and its statements would count as the feed's),
    # unless PGFEED_BENCH_PGFEED is a build from before it.
    local no_sequencer=()
    [[ $("$PGFEED" --help 2>&1) == *--sequence-ms* ]] && no_sequencer=(--sequence-ms 0)
    PGUSER=$PGFEED_ROLE "${SERVER_CPU[@]}" "$PGFEED" --listen "$TMP/$name.sock" --log-level warn \
        --max-held $((N + 1000)) --max-wait 3600 --sse-lifetime 3600 --prune-interval 0 \
        "${no_sequencer[@]}" --allow '*' --socket-group "$SOCKET_GROUP" "${PGFEED_ARGS[@]}" "$@" >"$TMP/$name.log" 2>&1 &
    PGFEED_PID=$!
    STARTED+=("$PGFEED_PID")
    for _ in $(seq 300); do [[ -S $TMP/$name.sock ]] && break; sleep 0.1; done
    [[ -S $TMP/$name.sock ]] || die "pgfeed did not open $TMP/$name.sock"
}

# wait_http NAME PID URL: until URL answers 2xx, or the server exited.
wait_http() {
    local name=$1 pid=$2 url=$3
    # A busy machine can take seconds to start a server; a port taken meanwhile ends it at once.
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -n 5 "$TMP"/*.out 2>/dev/null)"
        curl -fs "$url" >/dev/null && return
        sleep 0.1
    done
    curl -fsS "$url" >/dev/null || die "$url does not answer"
}

# start_lighttpd SOCKET: tests/bench/lighttpd.conf in front of SOCKET; sets LIGHTTPD_PID, LIGHTTPD_PORT.
start_lighttpd() {
    LIGHTTPD_PORT=$(free_port)
    sed -e "s|@DIR@|$TMP|g" -e "s|@PORT@|$LIGHTTPD_PORT|g" -e "s|@SOCKET@|$1|g" \
        -e "s|@MAX_FDS@|$MAX_FDS|g" -e "s|@MAX_CONNECTIONS@|$((N + 100))|g" \
        "$SCRIPT_DIR/lighttpd.conf" >"$TMP/lighttpd.conf"
    "${SERVER_CPU[@]}" lighttpd -D -f "$TMP/lighttpd.conf" >"$TMP/lighttpd.out" 2>&1 &
    LIGHTTPD_PID=$!
    STARTED+=("$LIGHTTPD_PID")
    wait_http lighttpd "$LIGHTTPD_PID" "http://127.0.0.1:$LIGHTTPD_PORT/feed/_health"
}

# start_nginx NAME TEMPLATE [SOCKET]: nginx (one worker) with tests/bench/TEMPLATE;
# sets NGINX_PORT and NGINX_WORKER (the worker's pid: where the work and memory are).
# PGFEED_BENCH_KEEPALIVE: nginx's idle FastCGI connections per worker (default N + 100).
start_nginx() {
    local name=$1 template=$2 socket=${3:-} dir=$TMP/nginx-$1
    mkdir -p "$dir"
    NGINX_PORT=$(free_port)
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@SOCKET@|$socket|g" \
        -e "s|@MAX_FDS@|$MAX_FDS|g" -e "s|@HTDOCS@|$TMP/htdocs|g" -e "s|@ROOT@|$ROOT|g" \
        -e "s|@KEEPALIVE@|${PGFEED_BENCH_KEEPALIVE:-$((N + 100))}|g" \
        "$SCRIPT_DIR/$template" >"$dir/nginx.conf"
    "${SERVER_CPU[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$TMP/$name.out" 2>&1 &
    local master=$!
    STARTED+=("$master")
    wait_http "nginx ($name)" "$master" "http://127.0.0.1:$NGINX_PORT/static/x.txt"
    NGINX_WORKER=$(pgrep -P "$master" | head -n 1)
    [[ -n $NGINX_WORKER ]] || die "no nginx worker under $master"
}

describe_run() {
    # pgfeed is built from the working tree, which may differ from HEAD: say so.
    local source
    source=$(git -C "$ROOT" rev-parse --short HEAD)
    [[ -z $(git -C "$ROOT" status --porcelain -- fcgi sql) ]] || source="$source + uncommitted changes in fcgi/ or sql/"
    echo "run.sh: $(date -u +%FT%TZ), $(nproc) cores, $(uname -r); pgfeed $source," \
        "lighttpd $(lighttpd -v | sed -n 's|^lighttpd/\([^ ]*\).*|\1|p'), $(nginx -v 2>&1 | sed 's|.*: ||')," \
        "nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?'), PostgreSQL $(psql -XAtc 'SHOW server_version')"
    echo "run.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) before the run; ulimit -n $MAX_FDS; $PGFEED --max-held $((N + 1000)) ${PGFEED_ARGS[*]}"
}

mkdir -p "$TMP/htdocs/static"
echo "a static file: the same server's own 304 is the floor for a conditional poll" >"$TMP/htdocs/static/x.txt"
ln -s htdocs/static "$TMP/static" # lighttpd's document root is $TMP

if [[ $MODE != compare ]]; then
    start_pgfeed pgfeed
    start_lighttpd "$TMP/pgfeed.sock"
    describe_run
    "$FEEDBENCH" --mode "$MODE" --clients "$N" --port "$LIGHTTPD_PORT" --postgres-pid "$POSTMASTER_PID" \
        --pgfeed-pid "$PGFEED_PID" --server-pid "$LIGHTTPD_PID" --pgfeed-role "$PGFEED_ROLE" "$@"
    exit 0
fi

# ---- compare: Nchan, pgfeed behind lighttpd, pgfeed behind nginx, one run ---------
# Each front server gets its own pgfeed daemon, so memory growth is one front's.
start_pgfeed pgfeed-lighttpd
LPG_PID=$PGFEED_PID LPG_SOCK=$TMP/pgfeed-lighttpd.sock
start_pgfeed pgfeed-nginx
NPG_PID=$PGFEED_PID NPG_SOCK=$TMP/pgfeed-nginx.sock
start_pgfeed pgfeed-cache --cache-public '*'
CPG_PID=$PGFEED_PID CPG_SOCK=$TMP/pgfeed-cache.sock
start_lighttpd "$LPG_SOCK"
start_nginx pgfeed nginx-pgfeed.conf "$NPG_SOCK"
NGINX_PGFEED_PORT=$NGINX_PORT NGINX_PGFEED_WORKER=$NGINX_WORKER
start_nginx cache nginx-pgfeed-cache.conf "$CPG_SOCK"
NGINX_CACHE_PORT=$NGINX_PORT NGINX_CACHE_WORKER=$NGINX_WORKER
start_nginx nchan nginx-nchan.conf
NCHAN_PORT=$NGINX_PORT NCHAN_WORKER=$NGINX_WORKER
describe_run
echo "run.sh: servers, pgfeed and PostgreSQL on CPU 0, feedbench on CPU 1; pids: lighttpd $LIGHTTPD_PID" \
    "(pgfeed $LPG_PID), nginx worker $NGINX_PGFEED_WORKER (pgfeed $NPG_PID)," \
    "nginx+cache worker $NGINX_CACHE_WORKER (pgfeed $CPG_PID), nchan nginx worker $NCHAN_WORKER"

RESULTS=$TMP/results
: >"$RESULTS"
# bench LABEL feedbench-args...: one measurement; its RESULT line goes to $RESULTS.
bench() {
    local label=$1
    shift
    # --cpu 0: how busy the servers' core was over each window, whoever ran there.
    "${BENCH_CPU[@]}" "$FEEDBENCH" --label "$label" --no-baseline --cpu 0 --postgres-pid "$POSTMASTER_PID" "$@" | tee -a "$TMP/bench.out" |
        grep '^RESULT' | tee -a "$RESULTS"
}
channel=0
# target LABEL MODE N: the same load against one of the three; every run its own channel.
target() {
    local label=$1 mode=$2 n=$3
    shift 3
    channel=$((channel + 1))
    case $label in
    nchan) bench "$label" --target nchan --mode "$mode" --clients "$n" --port "$NCHAN_PORT" \
        --prefix /sub --pub-prefix /pub --pgfeed-pid 0 --server-pid "$NCHAN_WORKER" --server-name nchan --channel "c$channel" "$@" ;;
    lighttpd) bench "$label" --mode "$mode" --clients "$n" --port "$LIGHTTPD_PORT" \
        --pgfeed-pid "$LPG_PID" --server-pid "$LIGHTTPD_PID" --pgfeed-role "$PGFEED_ROLE" --channel "c$channel" "$@" ;;
    nginx) bench "$label" --mode "$mode" --clients "$n" --port "$NGINX_PGFEED_PORT" \
        --pgfeed-pid "$NPG_PID" --server-pid "$NGINX_PGFEED_WORKER" --server-name nginx --pgfeed-role "$PGFEED_ROLE" --channel "c$channel" "$@" ;;
    # The shared cache collapses the clients' identical polls: pgfeed holds one per URL.
    nginx-cache) bench "$label" --mode "$mode" --clients "$n" --port "$NGINX_CACHE_PORT" --collapsed \
        --pgfeed-pid "$CPG_PID" --server-pid "$NGINX_CACHE_WORKER" --server-name nginx --pgfeed-role "$PGFEED_ROLE" --channel "c$channel" "$@" ;;
    esac
}

# PGFEED_BENCH_LOADS picks loads (default all: "longpoll sse 304"), to iterate on one.
loads=" ${PGFEED_BENCH_LOADS:-longpoll sse 304} "
# Interleaved: the measurements of one load follow each other, so they share the noise.
if [[ $loads == *" longpoll "* ]]; then
    for n in "${SIZES[@]}"; do
        for t in nchan lighttpd nginx nginx-cache; do target "$t" longpoll "$n" "$@"; done
    done
fi
if [[ $loads == *" sse "* ]]; then
    for t in nchan lighttpd nginx; do target "$t" sse "$SSE_N" --interval-ms 50 --burst 0 "$@"; done
fi
if [[ $loads != *" 304 "* ]]; then
    "$SCRIPT_DIR/ratios.awk" "$RESULTS"
    exit 0
fi

# µs of server (+ pgfeed) CPU per 304, against the same server's static-file 304.
# repeat PORT WORKER PGFEED_PID LABEL PATH HEADER...
repeat() {
    local port=$1 worker=$2 pgfeed_pid=$3 label=$4 path=$5
    shift 5
    local headers=()
    for h in "$@"; do headers+=(--header "$h"); done
    bench "$label" --mode repeat --clients 20 --requests 60000 --port "$port" --server-pid "$worker" \
        --pgfeed-pid "$pgfeed_pid" --path "$path" "${headers[@]}"
}
etag_of() { curl -fsSI "$1" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p'; }
psql -XAtq -c "SELECT pgfeed.publish('poll304', 'bench', '{}')" >/dev/null
head=$(psql -XAtc "SELECT head FROM pgfeed.channel WHERE name = 'poll304'")
repeat "$LIGHTTPD_PORT" "$LIGHTTPD_PID" "$LPG_PID" lighttpd-304 "/feed/poll304?since=$head" "If-None-Match: \"$head\""
repeat "$LIGHTTPD_PORT" "$LIGHTTPD_PID" 0 lighttpd-static-304 /static/x.txt \
    "If-None-Match: $(etag_of "http://127.0.0.1:$LIGHTTPD_PORT/static/x.txt")"
repeat "$NGINX_PGFEED_PORT" "$NGINX_PGFEED_WORKER" "$NPG_PID" nginx-304 "/feed/poll304?since=$head" "If-None-Match: \"$head\""
repeat "$NGINX_PGFEED_PORT" "$NGINX_PGFEED_WORKER" 0 nginx-static-304 /static/x.txt \
    "If-None-Match: $(etag_of "http://127.0.0.1:$NGINX_PGFEED_PORT/static/x.txt")"
# Nchan's conditional poll: its interval-poll location, with the cursor of the channel's message.
curl -fsS -X POST "http://127.0.0.1:$NCHAN_PORT/pub/poll304" -d '{"version":1}' >/dev/null
nchan_headers=$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$NCHAN_PORT/poll/poll304" | tr -d '\r')
# Through the shipped cache config nginx answers the conditional poll from its cached 200
# (kept 1 s: pgfeed is asked about once a second); its static 304 is nginx-static-304.
repeat "$NGINX_CACHE_PORT" "$NGINX_CACHE_WORKER" "$CPG_PID" nginx-cache-304 "/feed/poll304?since=$head" "If-None-Match: \"$head\""
repeat "$NCHAN_PORT" "$NCHAN_WORKER" 0 nchan-304 /poll/poll304 \
    "If-Modified-Since: $(sed -n 's/^Last-Modified: //p' <<<"$nchan_headers")" \
    "If-None-Match: $(sed -n 's/^Etag: //p' <<<"$nchan_headers")"
repeat "$NCHAN_PORT" "$NCHAN_WORKER" 0 nchan-static-304 /static/x.txt \
    "If-None-Match: $(etag_of "http://127.0.0.1:$NCHAN_PORT/static/x.txt")"

echo "run.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) after the run"
"$SCRIPT_DIR/ratios.awk" "$RESULTS"
