#!/usr/bin/env bash
#
# run.sh N MODE [feedbench options] — benchmark one pgfeed daemon behind lighttpd.
#
#   MODE longpoll   N clients hold long polls; 5 rounds of one publish each
#   MODE sse        N SSE streams; 20 events 200 ms apart, then a burst of 20
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

[[ $# -ge 2 ]] || die "usage: run.sh N longpoll|sse [feedbench options]"
readonly N=$1 MODE=$2
shift 2
[[ $N =~ ^[0-9]+$ ]] && ((N >= 1)) || die "N must be a positive number, not '$N'"
[[ $MODE == longpoll || $MODE == sse ]] || die "MODE is longpoll or sse, not '$MODE'"

# ---- build -------------------------------------------------------------------
bench_build
readonly PGFEED=$BUILD/fcgi/pgfeed FEEDBENCH=$BUILD/bench/feedbench

# ---- descriptors ---------------------------------------------------------------
readonly FDS_NEEDED=$((2 * N + 100))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= FDS_NEEDED)) || die "ulimit -n is $(ulimit -n); $N clients need $FDS_NEEDED"
MAX_FDS=$(ulimit -n)

# ---- everything below is stopped again on exit --------------------------------
TMP=$(mktemp -d /tmp/pgfeed-bench.XXXXXX)
chmod 755 "$TMP" # the cluster's server user must reach $TMP/pg
PGFEED_PID='' LIGHTTPD_PID=''
cleanup() {
    local rc=$?
    set +e # stop everything even when one step fails (a killed child's wait returns 143)
    if [[ -n $LIGHTTPD_PID ]]; then
        kill "$LIGHTTPD_PID" 2>/dev/null
        wait "$LIGHTTPD_PID" 2>/dev/null
    fi
    if [[ -n $PGFEED_PID ]]; then
        kill "$PGFEED_PID" 2>/dev/null
        wait "$PGFEED_PID" 2>/dev/null
    fi
    "$ROOT/tests/pg/cluster.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
    if ((rc != 0)); then
        for log in "$TMP/pgfeed.log" "$TMP/lighttpd.error.log"; do
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
bench_postgres "$TMP/pg" "$PGFEED_ROLE"

# ---- pgfeed ------------------------------------------------------------------------
# Long enough waits and stream lifetimes that nothing ends by itself mid-run; no pruning.
PGUSER=$PGFEED_ROLE "$PGFEED" --listen "$TMP/pgfeed.sock" --log-level warn \
    --max-held $((N + 1000)) --max-wait 3600 --sse-lifetime 3600 --prune-interval 0 \
    >"$TMP/pgfeed.log" 2>&1 &
PGFEED_PID=$!

# ---- lighttpd ---------------------------------------------------------------------
HTTP_PORT=$(free_port)
sed -e "s|@DIR@|$TMP|g" -e "s|@PORT@|$HTTP_PORT|g" -e "s|@SOCKET@|$TMP/pgfeed.sock|g" \
    -e "s|@MAX_FDS@|$MAX_FDS|g" -e "s|@MAX_CONNECTIONS@|$((N + 100))|g" \
    "$SCRIPT_DIR/lighttpd.conf" >"$TMP/lighttpd.conf"
for _ in $(seq 300); do [[ -S $TMP/pgfeed.sock ]] && break; sleep 0.1; done
[[ -S $TMP/pgfeed.sock ]] || die "pgfeed did not open $TMP/pgfeed.sock"
lighttpd -D -f "$TMP/lighttpd.conf" >"$TMP/lighttpd.out" 2>&1 &
LIGHTTPD_PID=$!
# A busy machine can take seconds to start lighttpd; a port taken meanwhile ends it at once.
for _ in $(seq 300); do
    kill -0 "$LIGHTTPD_PID" 2>/dev/null || die "lighttpd exited: $(tail -n 5 "$TMP/lighttpd.out" "$TMP/lighttpd.error.log" 2>/dev/null)"
    curl -fs "http://127.0.0.1:$HTTP_PORT/feed/_health" >/dev/null && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/feed/_health" >/dev/null || die "pgfeed is not healthy behind lighttpd"

# ---- the run ------------------------------------------------------------------------
# pgfeed is built from the working tree, which may differ from HEAD: say so.
SOURCE=$(git -C "$ROOT" rev-parse --short HEAD)
[[ -z $(git -C "$ROOT" status --porcelain -- fcgi sql) ]] || SOURCE="$SOURCE + uncommitted changes in fcgi/ or sql/"
echo "run.sh: $(date -u +%FT%TZ), $(nproc) cores, $(uname -r); pgfeed $SOURCE," \
    "lighttpd $(lighttpd -v | sed -n 's|^lighttpd/\([^ ]*\).*|\1|p'), PostgreSQL $(psql -XAtc 'SHOW server_version')"
echo "run.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) before the run; ulimit -n $MAX_FDS; lighttpd max-connections $((N + 100)); pgfeed --max-held $((N + 1000))"
"$FEEDBENCH" --mode "$MODE" --clients "$N" --port "$HTTP_PORT" \
    --pgfeed-pid "$PGFEED_PID" --server-pid "$LIGHTTPD_PID" --pgfeed-role "$PGFEED_ROLE" "$@"
