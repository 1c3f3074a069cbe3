#!/usr/bin/env bash
#
# cli_db.sh — a daemon whose database refuses it stops at start with libpq's
# message (an unknown role, an unknown database, a wrong password), while one
# whose database merely does not answer keeps running and retries, as before
# (ctest: cli_db, label pg; the throwaway cluster's PG* environment).
#
#   tests/pg/cli_db.sh PGFEED_BINARY
set -uo pipefail
bin=$1
failures=0
tmp=$(mktemp -d)
trap 'kill "$daemon" 2>/dev/null; rm -rf -- "$tmp"' EXIT
unset GATEWAY_INTERFACE REQUEST_METHOD "${!PGFEED_@}"
daemon=

fail() {
    echo "FAIL: $1, output:" >&2
    sed 's/^/    /' "$tmp/out" >&2
    failures=$((failures + 1))
}

# refused NAME PATTERN CONNINFO — pgfeed --listen exits 1 at once, saying PATTERN.
refused() {
    local name=$1 pattern=$2 conninfo=$3 status
    timeout 20 "$bin" --listen "$tmp/s.sock" --db "$conninfo" >"$tmp/out" 2>&1 </dev/null
    status=$?
    if [[ $status == 1 ]] && grep -Eq -- "error: cannot use the database: .*$pattern" "$tmp/out" &&
        [[ $(wc -l <"$tmp/out") == 1 ]]; then
        echo "ok: $name"
    else
        fail "$name: exit $status (wanted 1 and one line matching $pattern)"
    fi
}

refused "unknown role" 'role "no_such_role" does not exist' "user=no_such_role"
refused "unknown database" 'database "no_such_db" does not exist' "dbname=no_such_db"
# The cluster trusts every local connection; a TCP one through pg_hba would
# need a password, so refuse authentication with a role that may not log in.
psql -X -q -v ON_ERROR_STOP=1 -c "DROP ROLE IF EXISTS pgfeed_nologin" -c "CREATE ROLE pgfeed_nologin NOLOGIN" >/dev/null
refused "a role that may not log in" 'not permitted to log in' "user=pgfeed_nologin"

# Working settings: it serves (the socket appears) and logs no error.
"$bin" --listen "$tmp/ok.sock" >"$tmp/out" 2>&1 </dev/null &
daemon=$!
for ((i = 0; i < 100; i++)); do [[ -S $tmp/ok.sock ]] && break; sleep 0.1; done
if [[ -S $tmp/ok.sock ]] && kill -0 "$daemon" 2>/dev/null && ! grep -q 'error' "$tmp/out"; then
    echo "ok: a working database: serving"
else
    fail "a working database"
fi
kill "$daemon"
wait "$daemon" 2>/dev/null

# Nothing listens on port 1: down, not refused. It must keep running.
"$bin" --listen "$tmp/down.sock" --db "host=127.0.0.1 port=1 dbname=x" >"$tmp/out" 2>&1 </dev/null &
daemon=$!
sleep 1.5
if kill -0 "$daemon" 2>/dev/null && [[ -S $tmp/down.sock ]] && grep -q 'warn: database not reachable yet, retrying' "$tmp/out"; then
    echo "ok: a database that is down: still running, retrying"
else
    fail "a database that is down"
fi
kill "$daemon" 2>/dev/null
wait "$daemon" 2>/dev/null

((failures == 0)) || {
    echo "$failures failed" >&2
    exit 1
}
