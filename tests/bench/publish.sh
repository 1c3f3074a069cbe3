#!/usr/bin/env bash
#
# publish.sh [ROUNDS] — what a publish costs against a plain INSERT, measured
# with pgbench in one run (run.sh publish calls it).
#
# Starts a throwaway PostgreSQL 15 cluster (tests/pg/cluster.sh, free port,
# pgfeed installed) pinned to CPU 0 and runs pgbench pinned to CPU 1
# (taskset), as a login role that holds only pgfeed_publisher and INSERT on
# one plain table, so every publish goes through the same checks as an
# application's. Each load runs PGFEED_BENCH_SECONDS (default 5) seconds with
# each number of clients in PGFEED_BENCH_CLIENTS (default "1 8"), prepared
# statements, autocommit (one statement = one commit). The loads take turns, ROUNDS times (default
# 5), so each round's figures share the machine's noise, and the report gives
# every load's median commits/s and the median over rounds of load ÷ insert:
#
#   insert          INSERT INTO bench_plain (type, data) VALUES (...): the baseline
#   insert+notify   the same INSERT and a pg_notify with a payload of its own:
#                   what NOTIFY alone costs (the lock every notifying commit of
#                   the cluster shares, from pre-commit to the end of commit)
#   publish-1       SELECT pgfeed.publish('bench', ...): every client on ONE channel
#   publish-N       the same on PGFEED_BENCH_CHANNELS (default 8) channels, by client
#   publish_many-1  pgfeed.publish_many on one channel, PGFEED_BENCH_BATCH (10)
#                   events per call: its figure is events/s, not commits/s
#   quiet-1, quiet-N  publish-1 and publish-N through bench_publish_quiet, a
#                   copy of pgfeed.append without its pg_notify made for this
#                   measurement only: what the NOTIFY lock costs publishers
#   enqueue-1       SELECT pgfeed.enqueue('bench_outbox', ...): every client on
#                   ONE channel, through the outbox, while a real pgfeed daemon
#                   (pinned to CPU 0 with the cluster, --sequence-ms 10) moves the
#                   events into the feed; its figure is events/s sequenced (the
#                   channel's head moved from the start of the load until the
#                   outbox is empty again), not the producers' commits, so a
#                   sequencer that falls behind shows. The daemon runs for this
#                   load only (started before it, stopped after), so neither its
#                   idle calls nor its LISTEN connection touch the other loads.
#
# Then notify_latency (tests/bench/notify_latency.c) measures, with the
# daemon running, statement → NOTIFY seen for pgfeed.publish and for
# pgfeed.enqueue, idle and during an enqueue-1 load; at the end every channel
# must hold exactly 1..head and the outbox must be empty.
#
# It builds pgfeed and the bench tools like run.sh (Release, build-bench/);
# PGFEED_BENCH_PGFEED runs another pgfeed binary.
#
# PGFEED_BENCH_KEEP=1 keeps the temp dir (server log, pgbench scripts).

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
readonly ROOT=$SCRIPT_DIR/../..
# shellcheck source=tests/bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

readonly ROUNDS=${1:-5}
readonly SECONDS_PER_LOAD=${PGFEED_BENCH_SECONDS:-5}
read -r -a CLIENTS <<<"${PGFEED_BENCH_CLIENTS:-1 8}"
readonly CHANNELS=${PGFEED_BENCH_CHANNELS:-8}
readonly BATCH=${PGFEED_BENCH_BATCH:-10}
for n in "$ROUNDS" "$SECONDS_PER_LOAD" "${CLIENTS[@]}" "$CHANNELS" "$BATCH"; do
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1)) || die "rounds, seconds, clients, channels and batch are positive numbers, not '$n'"
done
command -v pgbench >/dev/null || die "pgbench is missing (Debian: postgresql-client)"
readonly SERVER_CPU=(taskset -c 0) BENCH_CPU=(taskset -c 1)
readonly ROLE=pgfeed_bench_publisher
readonly BUILD=${PGFEED_BENCH_BUILD:-$ROOT/build-bench}
bench_build
readonly PGFEED=${PGFEED_BENCH_PGFEED:-$BUILD/fcgi/pgfeed} NOTIFY_LATENCY=$BUILD/bench/notify_latency

TMP=$(mktemp -d /tmp/pgfeed-publish.XXXXXX)
chmod 755 "$TMP" # the cluster's server user must reach $TMP/pg
PGFEED_PID=
cleanup() {
    local rc=$?
    if [[ -n $PGFEED_PID ]]; then
        kill "$PGFEED_PID" 2>/dev/null || true
        wait "$PGFEED_PID" 2>/dev/null || true
    fi
    "$ROOT/tests/pg/cluster.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
    ((rc == 0)) || { [[ -s $TMP/pg/log ]] && tail -n 20 "$TMP/pg/log" >&2; }
    if [[ ${PGFEED_BENCH_KEEP:-0} == 1 ]]; then echo "publish.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
"${SERVER_CPU[@]}" "$ROOT/tests/pg/cluster.sh" start "$TMP/pg" "$port" >/dev/null
eval "$("$ROOT/tests/pg/cluster.sh" env "$TMP/pg" "$port")"
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE $ROLE LOGIN IN ROLE pgfeed_publisher;
CREATE TABLE public.bench_plain (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL,
    data jsonb NOT NULL,
    time timestamptz NOT NULL DEFAULT clock_timestamp()
);
GRANT USAGE ON SCHEMA public TO $ROLE;
GRANT INSERT, SELECT (id) ON public.bench_plain TO $ROLE; -- SELECT: RETURNING id
SQL
# pgfeed.append's statement without the NOTIFY (a measuring tool, not an API).
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE FUNCTION public.bench_publish_quiet(p_channel text, p_type text, p_data jsonb)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS \$\$
DECLARE
    v_version bigint;
BEGIN
    WITH c AS (UPDATE pgfeed.channel SET head = head + 1 WHERE name = p_channel RETURNING head)
    INSERT INTO pgfeed.event (channel, version, type, data)
    SELECT p_channel, c.head, p_type, p_data FROM c RETURNING version INTO v_version;
    RETURN v_version;
END
\$\$;
ALTER FUNCTION public.bench_publish_quiet(text, text, jsonb) OWNER TO pgfeed_owner;
GRANT EXECUTE ON FUNCTION public.bench_publish_quiet(text, text, jsonb) TO $ROLE;
SELECT pgfeed.publish('bench_quiet', 'bench', '{}');
SELECT pgfeed.publish('bench_quiet' || n, 'bench', '{}') FROM generate_series(0, $CHANNELS - 1) n;
SQL

# One pgbench script per load; :client_id numbers the clients from 0.
readonly DATA="'{\"n\": 1}'"
mkdir "$TMP/scripts"
echo "INSERT INTO public.bench_plain (type, data) VALUES ('bench', $DATA);" >"$TMP/scripts/insert"
echo "WITH i AS (INSERT INTO public.bench_plain (type, data) VALUES ('bench', $DATA) RETURNING id)
      SELECT pg_notify('pgfeed_bench', i.id::text) FROM i;" >"$TMP/scripts/insert+notify"
echo "SELECT pgfeed.publish('bench', 'bench', $DATA);" >"$TMP/scripts/publish-1"
echo "\\set ch :client_id % $CHANNELS
SELECT pgfeed.publish('bench' || :ch, 'bench', $DATA);" >"$TMP/scripts/publish-N"
echo "SELECT public.bench_publish_quiet('bench_quiet', 'bench', $DATA);" >"$TMP/scripts/quiet-1"
echo "\\set ch :client_id % $CHANNELS
SELECT public.bench_publish_quiet('bench_quiet' || :ch, 'bench', $DATA);" >"$TMP/scripts/quiet-N"
echo "SELECT count(*) FROM pgfeed.publish_many('bench_many', 'bench',
      array_fill($DATA::jsonb, ARRAY[$BATCH]));" >"$TMP/scripts/publish_many-1"
echo "SELECT pgfeed.enqueue('bench_outbox', 'bench', $DATA);" >"$TMP/scripts/enqueue-1"
LOADS=(insert insert+notify publish-1 publish-N quiet-1 quiet-N publish_many-1 enqueue-1)
# An older pgfeed (to compare with) has no publish_many or enqueue: measure the rest.
[[ $(psql -XAtc "SELECT to_regprocedure('pgfeed.publish_many(text, text, jsonb[])') IS NOT NULL") == t ]] ||
    LOADS=("${LOADS[@]:0:6}")
[[ $(psql -XAtc "SELECT to_regprocedure('pgfeed.enqueue(text, text, jsonb)') IS NOT NULL") == t ]] ||
    LOADS=("${LOADS[@]/enqueue-1/}")
readonly LOADS

# The sequencer: a real pgfeed daemon on the cluster's CPU, alone on this database.
start_sequencer() {
    "${SERVER_CPU[@]}" "$PGFEED" --listen "$TMP/pgfeed.sock" --sequence-ms 10 --prune-interval 0 \
        --log-level warn 2>>"$TMP/pgfeed.log" &
    PGFEED_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(psql -XAtc "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1885824613 AND objid = 4 AND granted") == 1 ]] && return
        sleep 0.1
    done
    die "pgfeed did not take the sequencer lock (log: $(tail -n 5 "$TMP/pgfeed.log"))"
}
stop_sequencer() {
    kill "$PGFEED_PID"
    wait "$PGFEED_PID" || true
    PGFEED_PID=
}
head_of() { psql -XAtc "SELECT coalesce((SELECT head FROM pgfeed.channel WHERE name = '$1'), 0)"; }
# Waits (up to 15 s) until the sequencer emptied the outbox.
drain() {
    local i
    for ((i = 0; i < 1500; i++)); do
        [[ $(psql -XAtc "SELECT count(*) FROM pgfeed.outbox") == 0 ]] && return
        sleep 0.01
    done
    die "the outbox did not drain within 15 s"
}

echo "publish.sh: $(date -u +%FT%TZ), $(nproc) cores, $(uname -r), PostgreSQL $(psql -XAtc 'SHOW server_version')," \
    "pgfeed $(git -C "$ROOT" rev-parse --short HEAD)$([[ -z $(git -C "$ROOT" status --porcelain -- sql) ]] || echo ' + uncommitted sql/')"
echo "publish.sh: PostgreSQL on CPU 0, pgbench on CPU 1; ${CLIENTS[*]} clients, prepared, ${SECONDS_PER_LOAD} s per load," \
    "$ROUNDS rounds; publish-N on $CHANNELS channels; publish_many $BATCH events per call;" \
    "cluster settings of tests/pg/cluster.sh (fsync off, synchronous_commit off)"
echo "publish.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"

declare -A TPS # clients/load -> "tps tps ..." by round
for ((round = 1; round <= ROUNDS; round++)); do
    for clients in "${CLIENTS[@]}"; do
        for load in "${LOADS[@]}"; do
            [[ -n $load ]] || continue
            if [[ $load == enqueue-1 ]]; then
                start_sequencer
                head_before=$(head_of bench_outbox)
                started=$(date +%s.%N)
            fi
            out=$("${BENCH_CPU[@]}" pgbench -n -M prepared -U "$ROLE" -c "$clients" -j "$(((clients + 3) / 4))" \
                -T "$SECONDS_PER_LOAD" -f "$TMP/scripts/$load" 2>&1) || die "pgbench ($load): $out"
            tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
            [[ -n $tps ]] || die "no tps from pgbench ($load): $out"
            [[ $load == publish_many-1 ]] && tps=$(awk -v t="$tps" -v b="$BATCH" 'BEGIN { printf "%.1f", t * b }')
            if [[ $load == enqueue-1 ]]; then
                # Events in the feed per second: what the sequencer moved from the start of
                # the load until it caught up (it may lag the producers; they are not counted).
                drain
                ended=$(date +%s.%N)
                moved=$(($(head_of bench_outbox) - head_before))
                echo "round $round, $clients clients: enqueue-1 producers $tps commits/s; $moved events sequenced," \
                    "outbox empty $(awk -v s="$started" -v e="$ended" -v t="$SECONDS_PER_LOAD" 'BEGIN { printf "%.2f", e - s - t }') s after the load"
                tps=$(awk -v m="$moved" -v s="$started" -v e="$ended" 'BEGIN { printf "%.1f", m / (e - s) }')
                stop_sequencer
            fi
            TPS[$clients/$load]+="$tps "
            echo "round $round, $clients clients: $load $tps/s"
        done
    done
done
echo "publish.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) after the run"

# How long an enqueued event takes to reach a listener (pgfeed's LISTEN connection does
# what this one does), against a publish: idle, then during an 8-client enqueue-1 load.
if [[ " ${LOADS[*]} " == *" enqueue-1 "* ]]; then
    start_sequencer
    for mode in publish enqueue; do
        "${BENCH_CPU[@]}" "$NOTIFY_LATENCY" "$mode" 200 20 "bench_latency_$mode" || die "notify_latency $mode failed"
    done
    "${BENCH_CPU[@]}" pgbench -n -M prepared -U "$ROLE" -c 8 -j 2 -T 6 -f "$TMP/scripts/enqueue-1" >/dev/null 2>&1 &
    load_pid=$!
    sleep 0.5
    echo "during an 8-client enqueue-1 load (load average $(cut -d' ' -f1-3 /proc/loadavg)):"
    "${BENCH_CPU[@]}" "$NOTIFY_LATENCY" enqueue 200 20 bench_latency_loaded || die "notify_latency under load failed"
    wait "$load_pid" || die "pgbench (enqueue-1 under the latency probe) failed"
    drain
    stop_sequencer
    echo "publish.sh: the outbox is empty"
fi

# Gapless and in order after all that: versions 1..head, each once, on every channel.
holes=$(psql -XAtc "SELECT count(*) FROM pgfeed.channel c
                     WHERE (SELECT count(*) FROM pgfeed.event e WHERE e.channel = c.name) <> c.head
                        OR (SELECT max(version) FROM pgfeed.event e WHERE e.channel = c.name) <> c.head")
[[ $holes == 0 ]] || die "$holes channels whose versions are not exactly 1..head"

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-8s %-16s %12s %10s   %s\n' clients load 'median /s' '÷ insert' 'per round'
for clients in "${CLIENTS[@]}"; do
    read -r -a base <<<"${TPS[$clients/insert]}"
    for load in "${LOADS[@]}"; do
        [[ -n $load ]] || continue
        read -r -a t <<<"${TPS[$clients/$load]}"
        ratios=()
        for ((i = 0; i < ${#t[@]}; i++)); do ratios+=("$(awk -v a="${t[i]}" -v b="${base[i]}" 'BEGIN { printf "%.3f", a / b }')"); done
        printf '%-8s %-16s %12.0f %9.2f×   %s\n' "$clients" "$load" "$(median <<<"${TPS[$clients/$load]}")" \
            "$(median <<<"${ratios[*]}")" "${TPS[$clients/$load]}"
    done
done
echo "publish.sh: every channel's versions are exactly 1..head (gapless, each once)"
