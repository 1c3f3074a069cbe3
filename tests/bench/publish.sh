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

TMP=$(mktemp -d /tmp/pgfeed-publish.XXXXXX)
chmod 755 "$TMP" # the cluster's server user must reach $TMP/pg
cleanup() {
    local rc=$?
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
LOADS=(insert insert+notify publish-1 publish-N quiet-1 quiet-N publish_many-1)
# An older pgfeed (to compare with) has no publish_many: measure the rest.
[[ $(psql -XAtc "SELECT to_regprocedure('pgfeed.publish_many(text, text, jsonb[])') IS NOT NULL") == t ]] ||
    LOADS=("${LOADS[@]:0:6}")
readonly LOADS

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
            out=$("${BENCH_CPU[@]}" pgbench -n -M prepared -U "$ROLE" -c "$clients" -j "$(((clients + 3) / 4))" \
                -T "$SECONDS_PER_LOAD" -f "$TMP/scripts/$load" 2>&1) || die "pgbench ($load): $out"
            tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
            [[ -n $tps ]] || die "no tps from pgbench ($load): $out"
            [[ $load == publish_many-1 ]] && tps=$(awk -v t="$tps" -v b="$BATCH" 'BEGIN { printf "%.1f", t * b }')
            TPS[$clients/$load]+="$tps "
            echo "round $round, $clients clients: $load $tps/s"
        done
    done
done
echo "publish.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) after the run"

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
        read -r -a t <<<"${TPS[$clients/$load]}"
        ratios=()
        for ((i = 0; i < ${#t[@]}; i++)); do ratios+=("$(awk -v a="${t[i]}" -v b="${base[i]}" 'BEGIN { printf "%.3f", a / b }')"); done
        printf '%-8s %-16s %12.0f %9.2f×   %s\n' "$clients" "$load" "$(median <<<"${TPS[$clients/$load]}")" \
            "$(median <<<"${ratios[*]}")" "${TPS[$clients/$load]}"
    done
done
echo "publish.sh: every channel's versions are exactly 1..head (gapless, each once)"
