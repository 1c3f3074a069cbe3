# lib.sh — what the bench scripts (run.sh, fcgid.sh) share; sourced, not run.

die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# A port no socket uses yet (a race with other servers is possible but rare). Below the
# kernel's ephemeral range: a port from 20000-40000 was often some client connection's
# own (8,000 of them in a run; other sessions' too), and nginx's bind() then failed.
free_port() {
    local port low
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    ((low > 21000)) || low=40000 # an unusual range: the old choice
    while :; do
        port=$((20000 + RANDOM % (low - 20000)))
        if [[ -z $(ss -Htan "sport = :$port") ]]; then
            echo "$port"
            return
        fi
    done
}

pg_bindir() {
    local dir
    for dir in "${PGFEED_PG_BINDIR:-}" /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)"; do
        if [[ -n $dir && -x $dir/pg_ctl ]]; then
            echo "$dir"
            return
        fi
    done
    die "no pg_ctl found; set PGFEED_PG_BINDIR"
}

# Builds pgfeed and feedbench (Release) in $BUILD; log in $BUILD/bench-build.log.
bench_build() {
    mkdir -p "$BUILD"
    {
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
        cmake --build "$BUILD" -j2 --target pgfeed pgfeed-relay
        cmake -S "$SCRIPT_DIR" -B "$BUILD/bench" -DCMAKE_BUILD_TYPE=Release
        cmake --build "$BUILD/bench" -j2
    } >"$BUILD/bench-build.log" 2>&1 || {
        tail -n 30 "$BUILD/bench-build.log" >&2
        die "build failed (log: $BUILD/bench-build.log)"
    }
}

# bench_postgres DIR ROLE [PREFIX...] — a throwaway cluster in DIR on a free port with
# pg_stat_statements (it loads only at server start) and a role for pgfeed
# alone, so PostgreSQL counts pgfeed's statements apart from the bench's.
# PREFIX (e.g. taskset -c 0) runs the server. Exports the PG* variables of libpq clients.
bench_postgres() {
    local dir=$1 role=$2 port
    port=$(free_port)
    "${@:3}" "$ROOT/tests/pg/cluster.sh" start "$dir" "$port" >/dev/null
    echo "shared_preload_libraries = 'pg_stat_statements'" >>"$dir/data/postgresql.conf"
    "${@:3}" runuser -u "$(stat -c %U "$dir/data")" -- "$(pg_bindir)/pg_ctl" -D "$dir/data" \
        -l "$dir/log" -w -t 60 restart >/dev/null
    eval "$("$ROOT/tests/pg/cluster.sh" env "$dir" "$port")"
    psql -X -q -v ON_ERROR_STOP=1 \
        -c "CREATE EXTENSION pg_stat_statements" \
        -c "CREATE ROLE $role LOGIN SUPERUSER" >/dev/null
}
