#!/usr/bin/env bash
#
# fresh-debian.sh — proves the README on a fresh Debian 12: builds a Debian 12
# root with debootstrap (the base system, nothing more), copies this checkout
# into it as root's, and runs there, as a new user would:
#
#   demo   www/demo.sh, then GET /feed/orders through its Apache, then --stop
#   test   tests/run (every layer, then the ASan + UBSan pass)
#   deb    builds the .deb there (cpack), installs it with apt into a second,
#          untouched copy of the base root, and runs tests/deb-check.sh in it
#
#   tests/fresh-debian.sh [STEP ...]     default: demo test deb
#
# Settings (environment):
#   PGFEED_FRESH_DIR     /var/tmp/pgfeed-fresh   work directory: base/ (the
#                        debootstrap result, made once and reused; delete it to
#                        start over), root/ and deb-root/ (fresh copies of base/
#                        per run), the logs and report.txt
#   PGFEED_FRESH_MIRROR  http://deb.debian.org/debian
#   PGFEED_DEMO_PORT, PGFEED_DEMO_PGPORT, PGFEED_TEST_PGPORT   passed into the
#                        root: it shares this machine's network, so pick ports
#                        nobody else uses
#   PGFEED_FRESH_CA      the site's own certificate authorities, for a network
#                        that intercepts TLS (the npm registry): every .crt in
#                        /usr/local/share/ca-certificates by default. The root
#                        gets them through NODE_EXTRA_CA_CERTS only; nothing
#                        else in it changes.
#
# Needs root, debootstrap and Debian's archive (the tests also reach the npm
# registry). Not part of CI: it takes 20-40 minutes. Inside the root no
# service is started by package installs (policy-rc.d says 101, as in any
# chroot), so the stock PostgreSQL and Apache never take ports 5432 and 80.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly REPO
readonly WORK=${PGFEED_FRESH_DIR:-/var/tmp/pgfeed-fresh}
readonly MIRROR=${PGFEED_FRESH_MIRROR:-http://deb.debian.org/debian}
readonly DEMO_PORT=${PGFEED_DEMO_PORT:-8080}
readonly DEMO_PGPORT=${PGFEED_DEMO_PGPORT:-55433}
readonly TEST_PGPORT=${PGFEED_TEST_PGPORT:-25432}
readonly SITE_CA_DIR=${PGFEED_FRESH_CA:-/usr/local/share/ca-certificates}
readonly CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'fresh-debian.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}
report() { printf '%s\n' "$*" | tee -a "$WORK/report.txt" >&2; }

((EUID == 0)) || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "no debootstrap: apt-get install debootstrap"

MOUNTED=()
# Mounts what programs in the root expect (/proc, /sys, /dev, /dev/pts,
# /dev/shm for Chromium) and a resolver.
enter_prepare() {
    local root=$1
    mount -t proc proc "$root/proc" && MOUNTED+=("$root/proc")
    mount -t sysfs sysfs "$root/sys" && MOUNTED+=("$root/sys")
    mount --bind /dev "$root/dev" && MOUNTED+=("$root/dev")
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" && MOUNTED+=("$root/dev/pts")
    mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm" && MOUNTED+=("$root/dev/shm")
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    cat /dev/null "$SITE_CA_DIR"/*.crt >"$root/etc/pgfeed-fresh-site-ca.pem" 2>/dev/null || true
}

unmount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" || true
    done
    MOUNTED=()
}

# Removes a root of an earlier run, refusing while anything is mounted in it
# (a bound /dev would otherwise lose its nodes).
remove_root() {
    local root=$1
    [[ -e $root ]] || return 0
    if findmnt -rn -o TARGET | grep -q -F -- "$root/"; then
        die "something is still mounted under $root; unmount it first"
    fi
    rm -rf --one-file-system -- "$root"
}

# Runs a bash script inside ROOT as root, with a login-like clean environment.
in_root() {
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i HOME=/root PATH="$CLEAN_PATH" LANG=C.UTF-8 TERM=dumb \
        PGFEED_DEMO_PORT="$DEMO_PORT" PGFEED_DEMO_PGPORT="$DEMO_PGPORT" \
        PGFEED_TEST_PGPORT="$TEST_PGPORT" NODE_EXTRA_CA_CERTS=/etc/pgfeed-fresh-site-ca.pem /bin/bash -euo pipefail -c "$@"
}

make_base() {
    [[ -f $WORK/base/etc/debian_version ]] && return 0
    say "debootstrap bookworm into $WORK/base (once; later runs copy it)"
    rm -rf --one-file-system -- "$WORK/base.tmp"
    debootstrap bookworm "$WORK/base.tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        die "debootstrap failed (see $WORK/debootstrap.log)"
    # What Debian's installer writes: the release, its updates and security.
    cat >"$WORK/base.tmp/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    mv -- "$WORK/base.tmp" "$WORK/base"
}

# A fresh copy of the base root at DIR, with no service starts.
fresh_root() {
    local root=$1
    remove_root "$root"
    cp -a -- "$WORK/base" "$root"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 -- "$root/usr/sbin/policy-rc.d"
}

# The checkout as a clone would have it (tracked and new, unignored files).
copy_checkout() {
    local dest=$1
    mkdir -p -- "$dest"
    git -C "$REPO" ls-files -z --cached --others --exclude-standard |
        (cd "$REPO" && xargs -0 tar -cf - --no-recursion --ignore-failed-read) | tar -xf - -C "$dest"
}

step_demo() {
    local t0=$SECONDS
    say "demo: www/demo.sh in the fresh root (installs its packages: several minutes)"
    if in_root "$ROOT" "
        cd /root/pgfeed
        www/demo.sh >/root/demo.log 2>&1 &
        demo=\$!
        for ((i = 0; i < 1200; i++)); do
            grep -q 'pgfeed demo:' /root/demo.log && break
            kill -0 \$demo 2>/dev/null || { cat /root/demo.log; exit 1; }
            sleep 1
        done
        grep -q 'pgfeed demo:' /root/demo.log || { cat /root/demo.log; exit 1; }
        curl -sS -i http://127.0.0.1:$DEMO_PORT/feed/orders >/root/demo-feed.txt
        www/demo.sh --stop
        wait \$demo
        head -n 1 /root/demo-feed.txt | grep -q ' 200'
        grep -q '\"channel\":\"orders\"' /root/demo-feed.txt
    "; then
        report "demo: PASS in $((SECONDS - t0)) s: www/demo.sh served GET /feed/orders: $(head -n 1 "$ROOT/root/demo-feed.txt" | tr -d '\r')"
    else
        report "demo: FAIL after $((SECONDS - t0)) s (log: $WORK/demo.log)"
        FAILED=1
    fi
    cp -f -- "$ROOT/root/demo.log" "$WORK/demo.log" 2>/dev/null || true
}

step_test() {
    local t0=$SECONDS
    say "test: tests/run in the fresh root (installs its packages, runs everything: 20+ minutes)"
    if in_root "$ROOT" "cd /root/pgfeed && tests/run >/root/tests-run.log 2>&1"; then
        report "test: PASS in $((SECONDS - t0)) s"
    else
        report "test: FAIL after $((SECONDS - t0)) s (log: $WORK/tests-run.log)"
        FAILED=1
    fi
    cp -f -- "$ROOT/root/tests-run.log" "$WORK/tests-run.log" 2>/dev/null || true
    grep -E '^tests/run:|tests passed|tests failed|Total Test time|\*\*\*Failed|\(Failed\)|\(Timeout\)' \
        "$WORK/tests-run.log" | sed 's/^/  /' | tee -a "$WORK/report.txt" >&2 || true
}

step_deb() {
    local t0=$SECONDS deb
    say "deb: cpack in the build root, then apt install into an untouched root"
    if ! in_root "$ROOT" "
        cd /root/pgfeed
        tests/install-deps.sh demo >/root/deb-build.log 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev file >>/root/deb-build.log 2>&1
        cmake -S . -B build/deb -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX=/usr >>/root/deb-build.log 2>&1
        cmake --build build/deb -j\$(nproc) >>/root/deb-build.log 2>&1
        (cd build/deb && cpack -G DEB) >>/root/deb-build.log 2>&1
    "; then
        cp -f -- "$ROOT/root/deb-build.log" "$WORK/deb-build.log" || true
        report "deb: FAIL: the package did not build (log: $WORK/deb-build.log)"
        FAILED=1
        return
    fi
    deb=$(cd "$ROOT/root/pgfeed/build/deb" && ls pgfeed_*.deb | head -n 1)
    cp -f -- "$ROOT/root/pgfeed/build/deb/$deb" "$WORK/$deb"
    unmount_all
    fresh_root "$WORK/deb-root"
    enter_prepare "$WORK/deb-root"
    cp -- "$WORK/$deb" "$WORK/deb-root/root/$deb"
    cp -- "$REPO/tests/deb-check.sh" "$WORK/deb-root/root/deb-check.sh"
    if in_root "$WORK/deb-root" "/root/deb-check.sh /root/$deb >/root/deb-check.log 2>&1"; then
        report "deb: PASS in $((SECONDS - t0)) s: $deb installed into a clean root; $(tail -n 1 "$WORK/deb-root/root/deb-check.log")"
    else
        report "deb: FAIL after $((SECONDS - t0)) s (log: $WORK/deb-check.log)"
        FAILED=1
    fi
    cp -f -- "$WORK/deb-root/root/deb-check.log" "$WORK/deb-check.log" || true
}

main() {
    local steps=("$@") step
    ((${#steps[@]})) || steps=(demo test deb)
    for step in "${steps[@]}"; do
        [[ $step =~ ^(demo|test|deb)$ ]] || die "unknown step $step (demo, test, deb)"
    done
    mkdir -p -- "$WORK"
    : >"$WORK/report.txt"
    trap unmount_all EXIT
    make_base
    ROOT=$WORK/root
    fresh_root "$ROOT"
    copy_checkout "$ROOT/root/pgfeed"
    enter_prepare "$ROOT"
    report "fresh Debian $(cat "$ROOT/etc/debian_version") root from debootstrap ($(chroot "$ROOT" dpkg-query -f '.' -W | wc -c) packages), checkout $(git -C "$REPO" describe --always --dirty)"
    FAILED=0
    for step in "${steps[@]}"; do
        "step_$step"
    done
    report "report: $WORK/report.txt"
    exit "$FAILED"
}

main "$@"
