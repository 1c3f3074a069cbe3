#!/usr/bin/env bash
#
# fcgid.sh N [feedbench options] — benchmark held long polls through Apache
# httpd + mod_fcgid with apache/pgfeed-fcgid.conf unchanged: N relays, one hub.
#
# Starts in a temp dir, and stops again: a throwaway PostgreSQL 15 cluster
# (max_connections left at its default 100, pg_stat_statements loaded, pgfeed
# connecting as its own role), Apache with tests/e2e/conf/apache.conf around
# the shipped snippet (run as www-data when started as root, like the e2e
# tests), then feedbench in long-poll mode with a burst ramp, which reports
# how long the hub took to hold all N, the publish→delivery latency and the
# statements per publish. Around opening the N clients feedbench runs this
# script as `fcgid.sh memory before|held N`, which prints RSS and PSS
# (smaps_rollup) of Apache's processes, the relays and the hub, and
# pgfeed's PostgreSQL connections, per held request.
#
# Extra arguments go to feedbench (default here: --rounds 5 --ramp 100000).
# PGFEED_BENCH_KEEP=1 keeps the temp dir and logs. Not part of the test suite.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd -P) # mod_fcgid matches FcgidCmdOptions by the exact path
readonly ROOT
readonly BUILD=${PGFEED_BENCH_BUILD:-$ROOT/build-bench}
readonly PGFEED_ROLE=pgfeed_bench_app APP_NAME=pgfeed_bench
# shellcheck source=tests/bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# ---- `fcgid.sh memory before|held N`, run by feedbench ---------------------------
# Sums Rss and Pss of a list of pids from /proc/PID/smaps_rollup: "n rss pss" in kB.
sum_memory() {
    local pid n=0 rss=0 pss=0 r p
    for pid in "$@"; do
        [[ -r /proc/$pid/smaps_rollup ]] || continue
        r=$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup")
        p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
        [[ -n $r && -n $p ]] || continue
        n=$((n + 1)) rss=$((rss + r)) pss=$((pss + p))
    done
    echo "$n $rss $pss"
}

# Every descendant of pid $1.
descendants() {
    local queue=("$1") pid child
    while ((${#queue[@]})); do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        for child in $(ps -o pid= --ppid "$pid"); do
            echo "$child"
            queue+=("$child")
        done
    done
}

if [[ ${1:-} == memory ]]; then
    when=$2 n=$3
    pgfeed=$(readlink -f "$PGFEED_BENCH_BIN")
    apache=("$PGFEED_BENCH_APACHE_PID") relays=()
    for pid in $(descendants "$PGFEED_BENCH_APACHE_PID"); do
        exe=$(readlink -f "/proc/$pid/exe" 2>/dev/null || true)
        if [[ $exe == "$pgfeed" || $exe == "${pgfeed%/*}/pgfeed-relay" ]]; then relays+=("$pid"); else apache+=("$pid"); fi
    done
    mapfile -t hub < <(pgrep -f -- "--listen $PGFEED_BENCH_HUB_DIR/" || true)
    read -r an ar ap < <(sum_memory "${apache[@]}")
    read -r rn rr rp < <(sum_memory "${relays[@]}")
    read -r hn hr hp < <(sum_memory "${hub[@]}")
    conns=$(psql -XAtc "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$APP_NAME'")
    printf '  memory %-6s apache %d procs RSS %d kB PSS %d kB; relays %d RSS %d kB PSS %d kB; hub %d RSS %d kB PSS %d kB; pgfeed PostgreSQL connections %s\n' \
        "$when" "$an" "$ar" "$ap" "$rn" "$rr" "$rp" "$hn" "$hr" "$hp" "$conns"
    state=$PGFEED_BENCH_TMP/memory.$n
    if [[ $when == before ]]; then
        echo "$ar $ap $rr $rp $hr $hp" >"$state"
    elif [[ -r $state ]]; then
        read -r ar0 ap0 rr0 rp0 hr0 hp0 <"$state"
        awk -v n="$n" -v a="$((ar - ar0))" -v b="$((ap - ap0))" -v c="$((rr - rr0))" -v d="$((rp - rp0))" \
            -v e="$((hr - hr0))" -v f="$((hp - hp0))" -v rn="$rn" -v rp="$rp" 'BEGIN {
            printf "  per held request (held - before) / %d: apache RSS %.1f kB PSS %.1f kB; relays RSS %.1f kB PSS %.1f kB; hub RSS %.2f kB PSS %.2f kB; total PSS %.1f kB\n", n, a/n, b/n, c/n, d/n, e/n, f/n, (b+d+f)/n
            if (rn > 0) printf "  PSS per relay process (all %d relays): %.1f kB\n", rn, rp/rn }'
    fi
    exit 0
fi

[[ $# -ge 1 ]] || die "usage: fcgid.sh N [feedbench options]"
readonly N=$1
shift
[[ $N =~ ^[0-9]+$ ]] && ((N >= 1)) || die "N must be a positive number, not '$N'"

bench_build
readonly PGFEED=$BUILD/fcgi/pgfeed FEEDBENCH=$BUILD/bench/feedbench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
((N + 200 < $(ulimit -n))) || die "ulimit -n is $(ulimit -n); the hub needs more than $N + 200"

TMP=$(mktemp -d /tmp/pgfeed-bench-fcgid.XXXXXX)
chmod 755 "$TMP"
APACHE_PID=''
cleanup() {
    local rc=$?
    set +e
    if [[ -n $APACHE_PID ]]; then
        kill "$APACHE_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$APACHE_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    # The hub outlives Apache by design (it leaves when idle); this run's must not.
    pkill -TERM -f -- "--listen $TMP/hub/" 2>/dev/null
    sleep 0.5
    "$ROOT/tests/pg/cluster.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
    if ((rc != 0)) && [[ -s $TMP/error.log ]]; then
        echo "---- last lines of $TMP/error.log" >&2
        tail -n 20 "$TMP/error.log" >&2
    fi
    if [[ ${PGFEED_BENCH_KEEP:-0} == 1 ]]; then echo "fcgid.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_postgres "$TMP/pg" "$PGFEED_ROLE"

# ---- Apache + mod_fcgid -------------------------------------------------------------
RUN_AS=()
if ((EUID == 0)); then
    RUN_AS=(setpriv --reuid=www-data --regid=www-data --init-groups)
    mkdir -p "$TMP/apache"
    chown www-data:www-data "$TMP/apache"
    chmod o+x "$BUILD" "$BUILD/fcgi"
else
    mkdir -p "$TMP/apache"
fi
A=$TMP/apache
mkdir -p "$A/htdocs" "$A/fcgid" && chown -R --reference="$A" "$A"
HTTP_PORT=$(free_port)
PGFEED_BIN=$PGFEED PGUSER=$PGFEED_ROLE "${RUN_AS[@]}" /usr/sbin/apache2 -DFOREGROUND \
    -f "$ROOT/tests/e2e/conf/apache.conf" -D E2E_FCGID \
    -C "Define E2E_ROOT $A" -C "Define E2E_PORT $HTTP_PORT" \
    -C "Define E2E_MODULES /usr/lib/apache2/modules" \
    -C "Define E2E_SNIPPET $ROOT/apache/pgfeed-fcgid.conf" \
    -C "Define PGFEED_HUB_DIR $A/hub" -C "Define PGFEED_APP_NAME $APP_NAME" \
    -C "Define PGFEED_MAX_WAIT 3600" -C "Define PGFEED_IO_TIMEOUT 3700" \
    -C "Define PGFEED_LOG_LEVEL warn" >"$TMP/apache.out" 2>&1 &
APACHE_PID=$!
for _ in $(seq 300); do
    kill -0 "$APACHE_PID" 2>/dev/null || die "apache exited: $(tail -n 5 "$TMP/apache.out" "$A/error.log" 2>/dev/null)"
    curl -fs "http://127.0.0.1:$HTTP_PORT/feed/_health" >/dev/null && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/feed/_health" >/dev/null || die "pgfeed is not healthy behind Apache"
HUB_PID=$(pgrep -f -- "--listen $A/hub/" | head -n 1)
[[ -n $HUB_PID ]] || die "no hub started"

echo "fcgid.sh: $(date -u +%FT%TZ), $(nproc) cores, $(uname -r); pgfeed $(git -C "$ROOT" rev-parse --short HEAD)," \
    "$(/usr/sbin/apache2 -v | sed -n 's|^Server version: ||p'), mod_fcgid $(dpkg-query -W -f '${Version}' libapache2-mod-fcgid 2>/dev/null)," \
    "PostgreSQL $(psql -XAtc 'SHOW server_version') (max_connections $(psql -XAtc 'SHOW max_connections'))"
echo "fcgid.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) before the run; hub pid $HUB_PID, apache pid $APACHE_PID"
export PGFEED_BENCH_BIN=$PGFEED PGFEED_BENCH_APACHE_PID=$APACHE_PID PGFEED_BENCH_HUB_DIR=$A/hub PGFEED_BENCH_TMP=$TMP
"$FEEDBENCH" --mode longpoll --clients "$N" --port "$HTTP_PORT" --wait 3000 \
    --pgfeed-pid "$HUB_PID" --server-pid "$APACHE_PID" --server-name apache \
    --pgfeed-role "$PGFEED_ROLE" --memory-cmd "$SCRIPT_DIR/fcgid.sh memory" \
    --rounds 5 --ramp 100000 "$@"
echo "fcgid.sh: pgfeed PostgreSQL connections at the end: $(psql -XAtc "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$APP_NAME'")"
