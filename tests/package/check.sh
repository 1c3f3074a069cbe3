#!/usr/bin/env bash
#
# check.sh — what an administrator gets (ctest: package_layout, package_deb;
# label package):
#   layout BUILD_DIR VERSION   `cmake --install` of BUILD_DIR into a scratch
#                              DESTDIR lays out bin, share/pgfeed/{sql,www,apache},
#                              the man page, systemd units and the /etc files;
#                              the man page names exactly the options
#                              `pgfeed --help` prints and renders without warnings
#   deb SOURCE_DIR WORK_DIR VERSION   cpack builds pgfeed_VERSION_ARCH.deb (prefix
#                              /usr) with dpkg-shlibdeps dependencies, the layout,
#                              conffiles, maintainer scripts and the licence, and
#                              refuses a tree configured for another prefix
# Installing the .deb into a clean system is tests/deb-check.sh (run by
# tests/fresh-debian.sh): it needs a root of its own.
set -euo pipefail
failures=0
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what" >&2
        failures=$((failures + 1))
    fi
}
contains() { grep -Fxq -- "$2" <<<"$1"; }

layout() {
    local build=$1 version=$2 dest prefix sysconf f
    dest=$(mktemp -d)
    trap 'rm -rf -- "$dest"' RETURN
    DESTDIR=$dest cmake --install "$build" >/dev/null
    prefix=$dest$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
    # GNUInstallDirs: PREFIX/etc, except /etc for the prefix /usr.
    sysconf=$prefix/etc
    [[ $prefix != "$dest/usr" ]] || sysconf=$dest/etc
    for f in bin/pgfeed share/pgfeed/sql/install.sql share/pgfeed/sql/migrations/0001_tables.sql \
        share/pgfeed/www/pgfeed.js share/pgfeed/www/pgfeed.d.ts share/pgfeed/apache/pgfeed-fcgid.conf \
        share/pgfeed/apache/pgfeed-proxy-fcgi.conf share/pgfeed/apache/nginx-pgfeed.conf \
        share/pgfeed/apache/lighttpd-pgfeed.conf share/man/man1/pgfeed.1.gz \
        lib/systemd/system/pgfeed.socket lib/systemd/system/pgfeed.service share/doc/pgfeed/LICENSE; do
        check "installs $f" test -e "$prefix/$f"
    done
    check "installs etc/apache2/conf-available/pgfeed.conf" test -e "$sysconf/apache2/conf-available/pgfeed.conf"
    check "installs etc/pgfeed/pgfeed.env, mode 0640" test "$(stat -c %a "$sysconf/pgfeed/pgfeed.env" 2>/dev/null)" = 640
    # Every file install.sql pulls in with \ir is installed beside it.
    local inc
    while read -r inc; do
        check "installs sql/$inc (\\ir from install.sql)" test -e "$prefix/share/pgfeed/sql/$inc"
    done < <(sed -n 's/^\\ir //p' "$prefix/share/pgfeed/sql/install.sql")
    check "the units run the installed binary" grep -qx "ExecStart=${prefix#"$dest"}/bin/pgfeed" "$prefix/lib/systemd/system/pgfeed.service"
    check "the Apache snippet includes the installed fcgid snippet" \
        grep -qx "Include ${prefix#"$dest"}/share/pgfeed/apache/pgfeed-fcgid.conf" "$sysconf/apache2/conf-available/pgfeed.conf"

    local help man
    help=$("$prefix/bin/pgfeed" --help | sed -n 's/^  --\([a-z-]*\) .*/\1/p' | sort)
    man=$(zcat "$prefix/share/man/man1/pgfeed.1.gz" | sed -n 's/^\.B[R]* \\-\\-\([a-z\\-]*\).*/\1/p' | sed 's/\\-/-/g; s/ .*//' | sort -u)
    check "the man page lists exactly the options of --help" test "$help" = "$man"
    [[ $help == "$man" ]] || diff <(echo "$help") <(echo "$man") >&2 || true
    check "the man page carries the version" grep -q "pgfeed $version" <(zcat "$prefix/share/man/man1/pgfeed.1.gz")
    if command -v man >/dev/null; then
        local warnings
        warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$prefix/share/man/man1/pgfeed.1.gz" 2>&1 >/dev/null || echo "man failed")
        check "the man page renders without warnings${warnings:+: $warnings}" test -z "$warnings"
    fi
}

deb() {
    local src=$1 work=$2 version=$3 arch file fields files
    rm -rf -- "$work"
    cmake -S "$src" -B "$work" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
    cmake --build "$work" -j"$(nproc)" >/dev/null
    (cd "$work" && cpack -G DEB >cpack.log 2>&1) || {
        cat "$work/cpack.log" >&2
        echo "FAIL: cpack" >&2
        exit 1
    }
    arch=$(dpkg --print-architecture)
    file=$work/pgfeed_${version}_$arch.deb
    check "cpack made pgfeed_${version}_$arch.deb" test -f "$file"
    fields=$(dpkg-deb -f "$file" Package Version Architecture Depends)
    echo "$fields"
    local dep
    for dep in 'libc6 (' 'libpq5 (' 'libfcgi0ldbl (' 'libjson-c5 (' 'adduser'; do
        check "Depends names $dep (dpkg-shlibdeps)" grep -qF "$dep" <<<"$fields"
    done
    files=$(dpkg-deb -c "$file" | awk '{print $6}' | sed 's|^\./|/|')
    for f in /usr/bin/pgfeed /usr/share/pgfeed/sql/install.sql /usr/share/pgfeed/www/pgfeed.js \
        /usr/share/pgfeed/apache/pgfeed-fcgid.conf /usr/share/man/man1/pgfeed.1.gz \
        /usr/lib/systemd/system/pgfeed.socket /usr/lib/systemd/system/pgfeed.service \
        /etc/apache2/conf-available/pgfeed.conf /etc/pgfeed/pgfeed.env /usr/share/doc/pgfeed/copyright; do
        check "the package holds $f" contains "$files" "$f"
    done
    local control
    control=$(mktemp -d)
    dpkg-deb -e "$file" "$control"
    check "conffiles: the Apache snippet and the daemon's settings" \
        test "$(sort "$control/conffiles")" = "$(printf '%s\n' /etc/apache2/conf-available/pgfeed.conf /etc/pgfeed/pgfeed.env)"
    check "postinst creates the user pgfeed" grep -q 'adduser --system' "$control/postinst"
    rm -rf -- "$control"
    check "the package states its licence" grep -q 'MIT License' <(dpkg-deb --fsys-tarfile "$file" | tar -xOf - ./usr/share/doc/pgfeed/copyright)
    # Its conffiles and units name /etc and /usr: another prefix must not package.
    cmake -DCMAKE_INSTALL_PREFIX=/usr/local "$work" >/dev/null
    check "cpack refuses a tree configured for /usr/local" \
        bash -c "cd '$work' && ! cpack -G DEB >cpack-refused.log 2>&1 && grep -q 'CMAKE_INSTALL_PREFIX=/usr' cpack-refused.log"
}

case ${1:-} in
layout) layout "$2" "$3" ;;
deb) deb "$2" "$3" "$4" ;;
*)
    echo "usage: check.sh layout BUILD_DIR VERSION | deb SOURCE_DIR WORK_DIR VERSION" >&2
    exit 2
    ;;
esac
((failures == 0)) || {
    echo "$failures failed" >&2
    exit 1
}
