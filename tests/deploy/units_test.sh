#!/bin/sh
# deploy_units: `cmake --install` into a scratch prefix gives units that
# `systemd-analyze verify` accepts without a single warning (their
# ExecStart binaries are the installed ones), and example configs that
# e2d and e2worker accept as shipped and whose misspelt keys they reject
# with file:line. Usage: units_test.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "deploy_units: $*" >&2; exit 1; }

prefix=$tmp/usr
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
units=$prefix/lib/systemd/system
etc=$prefix/etc/e2
for f in "$units/e2d.service" "$units/e2worker@.service" "$etc/e2d.conf" \
         "$etc/worker.conf" "$prefix/lib/sysusers.d/e2.conf" \
         "$prefix/lib/tmpfiles.d/e2.conf"; do
    [ -f "$f" ] || fail "not installed: $f"
done

# A template is verified through an instance of it.
cp "$units/e2worker@.service" "$tmp/e2worker@0.service"
for u in "$units/e2d.service" "$tmp/e2worker@0.service"; do
    out=$(systemd-analyze verify "$u" 2>&1) || fail "verify $u: $out"
    [ -z "$out" ] || fail "verify $u warns: $out"
done

# The sandbox stays as tight as it is now: systemd's exposure score (0-100,
# lower is tighter) of e2d is 17 and of a worker 33, which keeps its devices
# and unfiltered system calls for CUDA and NCCL.
for u in "$units/e2d.service:20" "$tmp/e2worker@0.service:35"; do
    systemd-analyze security --offline=yes --threshold="${u##*:}" "${u%:*}" \
        >"$tmp/security.txt" 2>&1 ||
        fail "${u%:*} is exposed above ${u##*:}: $(tail -n 1 "$tmp/security.txt")"
done

grep -qx "ExecStart=$prefix/bin/e2d --config $etc/e2d.conf" "$units/e2d.service" ||
    fail "e2d.service does not start $prefix/bin/e2d with $etc/e2d.conf"
grep -qx "ExecStart=$prefix/bin/e2worker --config $etc/worker.conf --device cuda --device-index 0" \
    "$units/e2worker@.service" ||
    fail "e2worker@.service does not start $prefix/bin/e2worker with $etc/worker.conf"

# e2d reads its config before --help, so a config it rejects fails here.
out=$("$prefix/bin/e2d" --config "$etc/e2d.conf" --help 2>&1) ||
    fail "e2d rejects the example e2d.conf: $out"
sed 's/^heartbeat-timeout =/heartbeat-timout =/' "$etc/e2d.conf" > "$tmp/bad.conf"
line=$(grep -n '^heartbeat-timout' "$tmp/bad.conf" | cut -d: -f1)
set +e
out=$("$prefix/bin/e2d" --config "$tmp/bad.conf" --help 2>&1)
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "e2d with a misspelt key exits $rc, want 2 (RestartPreventExitStatus)"
case $out in
    *"$tmp/bad.conf:$line:"*heartbeat-timout*) ;;
    *) fail "e2d's error does not name file:line and the key: $out" ;;
esac

# The worker's command line as systemd builds it for e2worker@0; e2worker
# reads --config before --help, so a config it rejects fails here.
exec_line=$(sed -n 's/^ExecStart=//p' "$units/e2worker@.service" | sed "s/%i/0/g")
out=$(env -i sh -c "exec $exec_line --help" 2>&1) ||
    fail "e2worker rejects the unit's command line with worker.conf: $out"
grep -q '^coordinator = ..*' "$etc/worker.conf" ||
    fail "worker.conf sets no coordinator"
# Every key of e2worker's agent mode is documented in worker.conf, and the
# commented examples are accepted once uncommented.
"$prefix/bin/e2worker" --coordinator x --help |
    sed -n 's/^  --\([a-z-]*\) [A-Z].*/\1/p' > "$tmp/keys.txt"
[ -s "$tmp/keys.txt" ] || fail "no flags found in e2worker --coordinator x --help"
while read -r k; do
    [ "$k" = config ] && continue
    grep -Eq "^(# )?$k = " "$etc/worker.conf" || fail "worker.conf does not document $k"
done < "$tmp/keys.txt"
sed 's/^# \([a-zA-Z_.-]* = \)/\1/' "$etc/worker.conf" > "$tmp/all.conf"
out=$("$prefix/bin/e2worker" --config "$tmp/all.conf" --help 2>&1) ||
    fail "e2worker rejects worker.conf's examples uncommented: $out"
sed 's/^coordinator =/coordinater =/' "$etc/worker.conf" > "$tmp/wbad.conf"
line=$(grep -n '^coordinater' "$tmp/wbad.conf" | cut -d: -f1)
set +e
out=$(env -i sh -c "exec $(printf '%s' "$exec_line" | sed "s|$etc/worker.conf|$tmp/wbad.conf|") --help" 2>&1)
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "e2worker with a misspelt key exits $rc, want 2 (RestartPreventExitStatus)"
case $out in
    *"e2worker: $tmp/wbad.conf:$line:"*coordinater*) ;;
    *) fail "e2worker's error does not name file:line and the key: $out" ;;
esac
echo "deploy_units: ok"
