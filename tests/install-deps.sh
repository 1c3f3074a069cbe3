#!/usr/bin/env bash
#
# install-deps.sh — installs the Debian packages pgfeed needs, only those missing.
#
#   tests/install-deps.sh demo   build + run the demo (PostgreSQL, Apache, mod_fcgid)
#   tests/install-deps.sh pg     build + the unit and pg test layers (no Node)
#   tests/install-deps.sh test   everything the test suite drives as well
#                                (lighttpd, nginx, Chromium, Node, cgi-fcgi, clang-format, dpkg-dev)
#   tests/install-deps.sh bench  the test set plus Nchan, tests/bench/run.sh compare's baseline
#
# Uses apt-get as root, or through sudo. Safe to run again: installed packages
# are skipped, so a machine that has everything runs no apt-get at all.
#
# PostgreSQL: any installed server (/usr/lib/postgresql/N/bin) is used as it
# is; without one, the distribution's default major version is installed
# (package `postgresql`: 15 on Debian 12, 16 on Ubuntu 24.04).
# Node: any node >= 18 on PATH is used; without one, the distribution's own
# nodejs and npm (Node 18 on Debian 12), which the tests support.
set -euo pipefail

# libc6-dev is only a Recommends of gcc, which --no-install-recommends skips:
# without it gcc cannot link (no crt1.o).
build=(cmake gcc libc6-dev make pkg-config libfcgi-dev libpq-dev libjson-c-dev libcmocka-dev libssl-dev)
demo=(apache2 libapache2-mod-fcgid python3 python3-psycopg2 curl)
# clang builds the libFuzzer harnesses (tests/fuzz), whose short runs are part of the suite.
test=(lighttpd nginx-light libfcgi-bin chromium fonts-dejavu-core procps iproute2 dpkg-dev file clang-format
    clang)
bench=(libnginx-mod-nchan util-linux)

# Whether a PostgreSQL server (initdb) of any major version is installed.
have_postgres_server() {
    local initdb
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x $initdb ]] && return 0
    done
    return 1
}

# Whether a node the tests accept (>= 18) and npm are on PATH.
have_node() {
    local major
    command -v npm >/dev/null || return 1
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || return 1
    ((major >= 18))
}

case "${1:-test}" in
pg) wanted=("${build[@]}") ;;
demo) wanted=("${build[@]}" "${demo[@]}") ;;
test) wanted=("${build[@]}" "${demo[@]}" "${test[@]}") ;;
bench) wanted=("${build[@]}" "${demo[@]}" "${test[@]}" "${bench[@]}") ;;
*)
    echo "usage: install-deps.sh demo|pg|test|bench" >&2
    exit 2
    ;;
esac
have_postgres_server || wanted+=(postgresql postgresql-client)
if [[ ${1:-test} == test || ${1:-test} == bench ]] && ! have_node; then
    wanted+=(nodejs npm)
fi

not_installed() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || echo "$pkg"
    done
}

apt_install() {
    echo "install-deps.sh: installing $*" >&2
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || {
            echo "install-deps.sh: run as root, or install: $*" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    # Installing apache2/nginx/lighttpd/postgresql on Debian starts their stock
    # services (ports 80, 5432) when an init system runs; pgfeed's scripts never
    # use those.
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

mapfile -t missing < <(not_installed "${wanted[@]}")
((${#missing[@]} == 0)) || apt_install "${missing[@]}"

# libFuzzer's runtime is only a Recommends of clang's headers: it is the
# libclang-rt-N-dev of whichever clang N the distribution installed.
if [[ " ${wanted[*]} " == *" clang "* ]]; then
    clang_major=$(clang -dumpversion | cut -d. -f1)
    mapfile -t missing < <(not_installed "libclang-rt-$clang_major-dev")
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
fi
