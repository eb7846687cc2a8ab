#!/bin/sh
# deploy_deb: `cpack -G DEB` builds the package; `dpkg --root` installs it
# into a scratch root, running its postinst there (DPKG_ROOT): the files sit
# in the usual places, the e2 user and its directories exist, the configs
# are conffiles, and no unit is enabled. Usage: deb_test.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "deploy_deb: $*" >&2; exit 1; }

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/pkg" \
    >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log" >&2; fail "cpack failed"; }
set -- "$tmp"/pkg/e2_*.deb
[ -f "$1" ] || fail "cpack made no e2_*.deb"
deb=$1

deps=$(dpkg-deb -f "$deb" Depends)
for d in systemd libgrpc29 libsqlite3-0 libuv1 libopenblas0 libmicrohttpd12 libssl3; do
    echo "$deps" | tr -d ' ' | tr ',' '\n' | grep -qx "$d" ||
        fail "Depends lacks $d: $deps"
done
dpkg-deb -I "$deb" postinst >/dev/null || fail "no postinst"

root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: > "$root/var/lib/dpkg/status"
dpkg --root="$root" --force-script-chrootless --force-depends --force-not-root \
    --log=/dev/null -i "$deb" >"$tmp/dpkg.log" 2>&1 ||
    { cat "$tmp/dpkg.log" >&2; fail "dpkg -i into a scratch root failed"; }

for f in usr/bin/e2d usr/bin/e2worker usr/bin/e2ctl \
         usr/lib/systemd/system/e2d.service \
         usr/lib/systemd/system/e2worker@.service \
         usr/lib/sysusers.d/e2.conf usr/lib/tmpfiles.d/e2.conf \
         etc/e2/e2d.conf etc/e2/worker.conf \
         usr/share/e2/proto/e2/v1/job.proto \
         usr/share/e2/proto/e2/v1/coordinator.proto \
         usr/share/e2/proto/e2/v1/worker.proto \
         usr/share/doc/e2/deploy.md; do
    [ -f "$root/$f" ] || fail "missing /$f"
done
for f in usr/bin/e2d usr/bin/e2worker usr/bin/e2ctl; do
    [ -x "$root/$f" ] || fail "/$f is not executable"
done
grep -qx 'ExecStart=/usr/bin/e2d --config /etc/e2/e2d.conf' \
    "$root/usr/lib/systemd/system/e2d.service" ||
    fail "e2d.service does not run /usr/bin/e2d --config /etc/e2/e2d.conf"
grep -qx 'ExecStart=/usr/bin/e2worker --config /etc/e2/worker.conf --device cuda --device-index 0' \
    "$root/usr/lib/systemd/system/e2worker@.service" ||
    fail "e2worker@.service does not run /usr/bin/e2worker --config /etc/e2/worker.conf"
for c in /etc/e2/e2d.conf /etc/e2/worker.conf; do
    grep -qx "$c" "$root/var/lib/dpkg/info/e2.conffiles" ||
        fail "$c is not a conffile"
done

# postinst: the system user and its directories, owned by it, mode 0750.
uid=$(awk -F: '$1 == "e2" { print $3 }' "$root/etc/passwd")
[ -n "$uid" ] || fail "postinst created no e2 user"
[ "$uid" -lt 1000 ] || fail "e2 is not a system user (uid $uid)"
awk -F: '$1 == "e2"' "$root/etc/group" | grep -q . || fail "no e2 group"
for d in var/lib/e2 run/e2; do
    [ -d "$root/$d" ] || fail "postinst created no /$d"
    got=$(stat -c '%u %a' "$root/$d")
    [ "$got" = "$uid 750" ] || fail "/$d is '$got' (uid mode), want '$uid 750'"
done

# Enables nothing: no unit linked into any .wants folder.
if [ -d "$root/etc/systemd" ]; then
    wants=$(find "$root/etc/systemd" -name '*.wants' -o -name 'e2*' | head -n 5)
    [ -z "$wants" ] || fail "the package enabled units: $wants"
fi
echo "deploy_deb: ok ($(stat -c %s "$deb") bytes)"
