#!/usr/bin/env bash
#
# cli.sh — pgfeed's command line explains itself (ctest: cli, label unit):
# started by hand it prints a usage and exits 2, on a terminal too; --help
# lists every flag with --help and --version; --version prints the version
# CMake holds; a bad flag or value names the flag; an invalid conninfo stops a
# daemon at start with libpq's message. No database is involved.
#
#   tests/unit/cli.sh PGFEED_BINARY VERSION
set -uo pipefail
bin=$1 version=$2
failures=0
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
# Nothing from the caller's environment may make pgfeed think it is CGI.
unset GATEWAY_INTERFACE REQUEST_METHOD "${!PGFEED_@}"

# expect NAME STATUS PATTERN CMD... — CMD exits STATUS and its stdout+stderr match PATTERN.
expect() {
    local name=$1 status=$2 pattern=$3 got
    shift 3
    timeout 20 "$@" >"$tmp/out" 2>&1 </dev/null
    got=$?
    if [[ $got != "$status" ]] || ! grep -Eq -- "$pattern" "$tmp/out"; then
        echo "FAIL: $name: exit $got (wanted $status), output:" >&2
        sed 's/^/    /' "$tmp/out" >&2
        failures=$((failures + 1))
    else
        echo "ok: $name"
    fi
}

expect "started by hand: usage, exit 2" 2 '^usage: pgfeed ' "$bin"
# script(1) gives pgfeed a terminal as stdin, as when someone types `pgfeed`.
expect "on a terminal: exit 2" 0 '^exit=2' script -qec "$bin; echo exit=\$?" /dev/null
expect "on a terminal: usage" 2 '^usage: pgfeed ' script -qec "$bin" /dev/null
expect "--help lists --help" 0 '^  --help ' "$bin" --help
expect "--help lists --version" 0 '^  --version ' "$bin" --help
expect "--help lists --log-format with its default" 0 '^  --log-format +PGFEED_LOG_FORMAT .*\[text\]' "$bin" --help
expect "-h is --help" 0 '^  --listen ' "$bin" -h
expect "--version" 0 "^pgfeed $version\$" "$bin" --version
expect "-V" 0 "^pgfeed $version\$" "$bin" -V
expect "unknown flag is named" 2 'unknown option "--no-such-flag"' "$bin" --no-such-flag
expect "bad number names the flag" 2 '^pgfeed: --max-wait: expected a whole number' "$bin" --max-wait=soon
expect "bad number from the environment names the variable" 2 '^pgfeed: PGFEED_HEARTBEAT: expected' \
    env PGFEED_HEARTBEAT=-1 "$bin"
expect "bad log level names the flag" 2 '^pgfeed: --log-level: expected error, warn, info or debug, not "loud"' \
    "$bin" --log-level=loud
expect "bad log format names the flag" 2 '^pgfeed: --log-format: expected text, journal or json, not "xml"' \
    "$bin" --log-format xml
expect "missing value names the flag" 2 '^pgfeed: --db needs a value' "$bin" --db
expect "invalid conninfo fails at start with libpq's message" 1 \
    'error: --db: invalid connection option "hostt"' \
    "$bin" --listen "$tmp/s.sock" --db 'hostt=db.example'
expect "unterminated quote in conninfo fails at start" 1 'error: --db: .*quoted string' \
    "$bin" --listen "$tmp/s.sock" --db "host='x"

((failures == 0)) || {
    echo "$failures failed" >&2
    exit 1
}
