#!/usr/bin/env bash
#
# install-deps.sh — installs the Debian packages pgfeed needs, only those missing.
#
#   tests/install-deps.sh demo   build + run the demo (PostgreSQL, Apache, mod_fcgid)
#   tests/install-deps.sh test   everything the test suite drives as well
#                                (lighttpd, nginx, Chromium, Node, cgi-fcgi, clang-format)
#   tests/install-deps.sh bench  the test set plus Nchan, tests/bench/run.sh compare's baseline
#
# Uses apt-get as root, or through sudo. Safe to run again: installed packages
# are skipped, so a machine that has everything runs no apt-get at all.
set -euo pipefail

build=(cmake gcc make pkg-config libfcgi-dev libpq-dev libjson-c-dev libcmocka-dev)
demo=(postgresql-15 postgresql-client-15 apache2 libapache2-mod-fcgid python3 python3-psycopg2 curl)
test=(lighttpd nginx-light libfcgi-bin chromium nodejs npm fonts-dejavu-core procps iproute2 clang-format)
bench=(libnginx-mod-nchan util-linux)

case "${1:-test}" in
demo) wanted=("${build[@]}" "${demo[@]}") ;;
test) wanted=("${build[@]}" "${demo[@]}" "${test[@]}") ;;
bench) wanted=("${build[@]}" "${demo[@]}" "${test[@]}" "${bench[@]}") ;;
*) echo "usage: install-deps.sh demo|test|bench" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    # nodejs from another repository (e.g. NodeSource) already brings npm.
    if [[ $pkg == npm ]] && command -v npm >/dev/null; then continue; fi
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

echo "install-deps.sh: installing ${missing[*]}" >&2
sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || {
        echo "install-deps.sh: run as root, or install: ${missing[*]}" >&2
        exit 1
    }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# Installing apache2/nginx/lighttpd on Debian starts their stock services on
# port 80 when an init system runs; pgfeed's scripts never use those.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
