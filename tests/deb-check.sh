#!/usr/bin/env bash
#
# deb-check.sh — installs pgfeed's .deb on a clean Debian (as root; run by
# tests/fresh-debian.sh in an untouched debootstrap root) the way an
# administrator would, and follows a feed through each way the package runs:
#
#   1. apt install ./pgfeed_*.deb: dependencies resolve, the user pgfeed
#      exists, the layout and the man page are there, pgfeed --version works
#   2. Debian's PostgreSQL (its main cluster) and Apache: a2enmod fcgid,
#      a2enconf pgfeed, the Define lines edited, apache2ctl -t, then a long
#      poll through Apache woken by a publish, and an SSE stream
#   3. pgfeed.socket's equivalent: the listening socket the unit describes
#      (ListenStream, SocketGroup, SocketMode) handed to the unit's ExecStart
#      as fd 0, as its User, with its Environment and EnvironmentFile — what
#      systemd does, done by hand because no systemd runs in a chroot; a
#      FastCGI request through it (cgi-fcgi) as www-data
#   4. apt remove: the Apache snippet is disabled and Apache's config still
#      parses
#
#   tests/deb-check.sh PGFEED_DEB
#
# Ports (the root shares the machine's network): PostgreSQL on
# PGFEED_DEMO_PGPORT (55433), Apache on 127.0.0.1:PGFEED_DEMO_PORT (8080).
set -euo pipefail
deb=$(realpath -- "$1")
readonly PGPORT_DEB=${PGFEED_DEMO_PGPORT:-55433}
readonly HTTP_PORT=${PGFEED_DEMO_PORT:-8080}
readonly BASE=http://127.0.0.1:$HTTP_PORT
export DEBIAN_FRONTEND=noninteractive
step() { printf '\n== %s\n' "$*"; }
die() {
    printf 'deb-check.sh: FAIL: %s\n' "$*" >&2
    exit 1
}
daemon=
cleanup() {
    [[ -z $daemon ]] || kill "$daemon" 2>/dev/null || true
    apache2ctl stop 2>/dev/null || true
    [[ -z ${pgver:-} ]] || pg_ctlcluster "$pgver" main stop 2>/dev/null || true
}
trap cleanup EXIT

step "1. apt install $(basename "$deb")"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
dpkg-query -W -f='${Package} ${Version} ${Status}\n' pgfeed
id pgfeed
[[ $(stat -c '%U:%G %a' /etc/pgfeed/pgfeed.env) == "root:pgfeed 640" ]] || die "pgfeed.env is $(stat -c '%U:%G %a' /etc/pgfeed/pgfeed.env)"
for f in /usr/bin/pgfeed /usr/share/pgfeed/sql/install.sql /usr/share/pgfeed/www/pgfeed.js \
    /usr/share/pgfeed/apache/pgfeed-fcgid.conf /etc/apache2/conf-available/pgfeed.conf \
    /usr/lib/systemd/system/pgfeed.socket /usr/lib/systemd/system/pgfeed.service \
    /usr/share/man/man1/pgfeed.1.gz /usr/share/doc/pgfeed/copyright; do
    [[ -e $f ]] || die "missing $f"
done
pgfeed --version
zcat /usr/share/man/man1/pgfeed.1.gz | grep -q -- '^\.B \\-\\-max\\-wait' || die "the man page lists no --max-wait"
grep -q '^License: MIT\|MIT License' /usr/share/doc/pgfeed/copyright || die "no licence in the package"

step "2. Debian's PostgreSQL and Apache, a2enmod fcgid && a2enconf pgfeed"
apt-get install -y -qq --no-install-recommends postgresql apache2 libapache2-mod-fcgid curl libfcgi-bin >/dev/null
pgver=$(ls /etc/postgresql | sort -n | tail -n 1)
pg_conftool "$pgver" main set port "$PGPORT_DEB"
pg_ctlcluster "$pgver" main start
psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT_DEB" "$@"; }
psql_admin -c "CREATE ROLE \"www-data\" LOGIN" -c "CREATE ROLE pgfeed LOGIN" \
    -c "CREATE DATABASE pgfeed OWNER \"www-data\""
runuser -u www-data -- psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$PGPORT_DEB" -d pgfeed \
    -f /usr/share/pgfeed/sql/install.sql >/dev/null
# The daemon's role reads only (README, SQL API).
psql_admin -d pgfeed -c "GRANT USAGE ON SCHEMA pgfeed TO pgfeed" \
    -c "GRANT SELECT ON pgfeed.channel, pgfeed.event TO pgfeed"
publish() {
    runuser -u www-data -- psql -X -q -At -h /var/run/postgresql -p "$PGPORT_DEB" -d pgfeed \
        -c "SELECT pgfeed.publish('orders', 'created', '{\"id\": $1}')"
}

conf=/etc/apache2/conf-available/pgfeed.conf
sed -i "s/^Define PGFEED_DB_PORT .*/Define PGFEED_DB_PORT $PGPORT_DEB/" "$conf"
echo "Listen 127.0.0.1:$HTTP_PORT" >/etc/apache2/ports.conf
sed -i "s/<VirtualHost \*:80>/<VirtualHost 127.0.0.1:$HTTP_PORT>/" /etc/apache2/sites-available/000-default.conf
a2enmod -q fcgid
a2enconf -q pgfeed
apache2ctl -t
# Nothing of pgfeed's settings in Apache's environment (envvars is untouched).
! grep -q 'PG' /etc/apache2/envvars || die "/etc/apache2/envvars mentions PG"
apache2ctl start
for ((i = 0; i < 50; i++)); do curl -s -o /dev/null "$BASE/" && break; sleep 0.2; done
curl -sS -i "$BASE/feed/_health" | tee /tmp/health | head -n 1
grep -q '"database":"up"' /tmp/health || die "GET /feed/_health: $(cat /tmp/health)"
publish 1 >/dev/null
# A long poll after version 1, woken by the publish of version 2.
curl -sS -i "$BASE/feed/orders?since=1&wait=20" >/tmp/longpoll &
poll=$!
sleep 1
publish 2 >/dev/null
wait "$poll"
head -n 1 /tmp/longpoll
grep -q '"version":2' /tmp/longpoll || die "the long poll did not get version 2: $(cat /tmp/longpoll)"
echo "long poll through Apache + mod_fcgid: woken with version 2"
curl -sS -N --max-time 3 "$BASE/feed/orders?since=0" -H 'Accept: text/event-stream' >/tmp/sse 2>/dev/null || true
grep -q '^id: 2$' /tmp/sse || die "the SSE stream did not carry id 2: $(cat /tmp/sse)"
echo "SSE through Apache + mod_fcgid: ids $(grep '^id:' /tmp/sse | tr '\n' ' ')"
grep -E 'pgfeed\[[0-9]+\]' /var/log/apache2/error.log | tail -n 2 || true

step "3. pgfeed.socket + pgfeed.service, as systemd would run them"
unit_value() { sed -n "s/^$2=//p" "/usr/lib/systemd/system/$1" | tail -n 1; }
socket_path=$(unit_value pgfeed.socket ListenStream)
socket_group=$(unit_value pgfeed.socket SocketGroup)
socket_mode=$(unit_value pgfeed.socket SocketMode)
exec_start=$(unit_value pgfeed.service ExecStart)
service_user=$(unit_value pgfeed.service User)
service_env=$(unit_value pgfeed.service Environment)
env_file=$(unit_value pgfeed.service EnvironmentFile)
env_file=${env_file#-}
[[ $(unit_value pgfeed.service StandardInput) == socket ]] || die "pgfeed.service does not take the socket as fd 0"
echo "socket $socket_path ($socket_group, $socket_mode) -> $exec_start as $service_user"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /usr/lib/systemd/system/pgfeed.socket /usr/lib/systemd/system/pgfeed.service 2>&1 |
        grep -v -e 'Failed to connect to bus' -e "Command 'man " || true
fi
sed -i "s|^PGFEED_DB=.*|PGFEED_DB=host=/var/run/postgresql port=$PGPORT_DEB dbname=pgfeed user=pgfeed|" "$env_file"
mkdir -p -m 0755 "$(dirname "$socket_path")"
rm -f -- "$socket_path"
# perl (Essential in Debian) binds the socket, as systemd does, and execs the
# service with it on fd 0, with the unit's user and environment.
mapfile -t file_env < <(grep -E '^[A-Z_][A-Z0-9_]*=' "$env_file")
env -i PATH=/usr/bin:/bin "$service_env" "${file_env[@]}" \
    perl -MIO::Socket::UNIX -MPOSIX -e '
        my ($path, $group, $mode, $user, @cmd) = @ARGV;
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $path, Listen => 1024) or die "bind $path: $!";
        chown 0, scalar(getgrnam($group)), $path or die "chown: $!";
        chmod oct($mode), $path or die "chmod: $!";
        POSIX::dup2(fileno($s), 0) or die "dup2: $!";
        my ($uid, $gid) = (getpwnam($user))[2, 3];
        POSIX::setgid($gid) or die "setgid: $!";
        $) = "$gid $gid";
        POSIX::setuid($uid) or die "setuid: $!";
        exec @cmd or die "exec: $!";
    ' "$socket_path" "$socket_group" "$socket_mode" "$service_user" $exec_start 2>/tmp/daemon.log &
daemon=$!
sleep 1
kill -0 "$daemon" 2>/dev/null || die "the daemon exited: $(cat /tmp/daemon.log)"
fcgi_get() { # PATH_INFO QUERY
    runuser -u www-data -- env -i SCRIPT_NAME=/feed PATH_INFO="$1" QUERY_STRING="$2" REQUEST_METHOD=GET \
        SERVER_PROTOCOL=HTTP/1.1 cgi-fcgi -bind -connect "$socket_path"
}
fcgi_get /orders since=2\&wait=20 >/tmp/fcgi &
poll=$!
sleep 1
publish 3 >/dev/null
wait "$poll"
grep -q '"version":3' /tmp/fcgi || die "the socket-activated daemon did not wake with version 3: $(cat /tmp/fcgi)"
echo "long poll through the socket (as www-data): woken with version 3"
echo "daemon log (journal format):"
sed 's/^/  /' /tmp/daemon.log
kill "$daemon"
wait "$daemon" || true
daemon=

step "4. apt remove pgfeed"
apt-get remove -y -qq pgfeed >/dev/null
[[ ! -e /etc/apache2/conf-enabled/pgfeed.conf ]] || die "pgfeed.conf is still enabled after remove"
apache2ctl -t

echo
echo "deb-check.sh: PASS: apt install, Apache (a2enconf pgfeed) long poll + SSE, socket unit long poll, apt remove"
