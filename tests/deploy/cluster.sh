#!/bin/sh
# cluster.sh -- e2's .deb on three booted Debian machines: systemd-nspawn
# containers, each running systemd as PID 1, joined by a bridge in network
# namespaces the script makes and removes.
#
#   head    e2d.service (Type=notify, WatchdogSec) listening on 10.252.7.1:7070
#           (TLS, tokens); e2ctl runs there
#   node-N  e2worker@0.service, --device cpu (a drop-in), the coordinator
#           at 10.252.7.1:7070 with a worker token (N = 1, 2, 3); Gloo
#           between the nodes; /var/lib/e2 one shared folder everywhere
#
# Checked under the real systemd of each container: the units start (e2d's
# READY=1 makes it active; its watchdog pings arrive), the sysusers.d and
# tmpfiles.d files made the e2 user and /run/e2 (a tmpfs at boot), the
# three workers register, a 3-worker job with min_workers 2 runs across
# the nodes, `systemctl stop e2worker@0` on node-3 mid-job ends that worker
# cleanly and e2d restarts the job elastically on node-1 and node-2, where
# it SUCCEEDS; `systemctl stop e2d` ends cleanly.
#
# Not part of ctest: it needs root, debootstrap, systemd-nspawn and network
# access to a Debian mirror for the first run (the root is cached), and it
# takes minutes. Usage (as root): tests/deploy/cluster.sh BUILD_DIR
# Environment: E2_CLUSTER_CACHE (default /var/cache/e2-cluster) holds the
# debootstrapped root; E2_CLUSTER_MIRROR (default http://deb.debian.org/debian).
# Everything is bounded in time; containers, namespaces and files go on any
# exit.
set -u
BUILD=$(cd "${1:?usage: cluster.sh BUILD_DIR}" && pwd) || exit 1
CACHE=${E2_CLUSTER_CACHE:-/var/cache/e2-cluster}
MIRROR=${E2_CLUSTER_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
NET=10.252.7
PY=/usr/bin/python3
T_START=$(date +%s)

say() { echo "[$(($(date +%s) - T_START)) s] $*"; }
fail() {
    echo "FAIL (cluster): $*" >&2
    for m in head node-1 node-2 node-3; do
        [ -f "$TMP/$m.console" ] && { echo "--- $m console" >&2; tail -n 15 "$TMP/$m.console" >&2; }
        pid=$(leader "$m" 2>/dev/null) && [ -n "$pid" ] &&
            { echo "--- $m journal" >&2; in_m "$m" journalctl -q --no-pager -n 25 -u 'e2*' >&2; }
    done
    exit 1
}
[ "$(id -u)" = 0 ] || { echo "FAIL (cluster): needs root (network namespaces, systemd-nspawn)" >&2; exit 1; }
for t in debootstrap systemd-nspawn nsenter ip cpack openssl; do
    command -v $t >/dev/null ||
        { echo "FAIL (cluster): $t not found (apt-get install debootstrap systemd-container)" >&2; exit 1; }
done

ID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
P=e2c-$$-$ID
TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/e2-cluster-XXXXXX")
NSPAWN_PIDS=

cleanup() {
    for p in $NSPAWN_PIDS; do kill -TERM "$p" 2>/dev/null; done
    n=0
    for p in $NSPAWN_PIDS; do
        while kill -0 "$p" 2>/dev/null && [ $n -lt 150 ]; do sleep 0.2; n=$((n + 1)); done
        kill -9 "$p" 2>/dev/null
    done
    wait 2>/dev/null
    for n in head node-1 node-2 node-3 br; do ip netns del "$P-$n" 2>/dev/null; done
    umount "$TMP/root/proc" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# wait_until SECONDS CMD...: polls CMD every 0.2 s until it succeeds.
wait_until() {
    limit=$1; shift
    n=0
    while ! "$@"; do
        n=$((n + 1))
        [ $n -gt $((limit * 5)) ] && return 1
        sleep 0.2
    done
}

# ---- the Debian root: debootstrap once (cached), the .deb's dependencies
# from the mirror, then per run a copy with this build's .deb installed ----
base=$CACHE/$SUITE
if [ ! -f "$base/.e2-complete" ]; then
    say "debootstrap $SUITE into $base (first run; cached afterwards)"
    rm -rf "$base" && mkdir -p "$CACHE" || fail "cannot make $base"
    timeout 1800 debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,iproute2,procps,ca-certificates \
        "$SUITE" "$base" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 20 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed ($CACHE/debootstrap.log)"; }
    touch "$base/.e2-complete"
fi

say "cpack -G DEB"
cpack --config "$BUILD/CPackConfig.cmake" -G DEB -B "$TMP/pkg" >"$TMP/cpack.log" 2>&1 ||
    { cat "$TMP/cpack.log" >&2; fail "cpack failed"; }
set -- "$TMP"/pkg/e2_*.deb
deb=$1
[ -f "$deb" ] || fail "cpack made no e2_*.deb"
deps=$(dpkg-deb -f "$deb" Depends)
# The dependencies are installed into the cached root (once per list).
want=$(echo "$deps" | tr -d ' ' | tr ',' '\n' | sed 's/(.*//' | sort | tr '\n' ' ')
if [ "$(cat "$base/.e2-deps" 2>/dev/null)" != "$want" ]; then
    say "apt-get install into the root: $want"
    cp /etc/resolv.conf "$base/etc/resolv.conf" 2>/dev/null
    # shellcheck disable=SC2086
    timeout 1200 chroot "$base" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $want" \
        >"$CACHE/apt.log" 2>&1 || { tail -n 20 "$CACHE/apt.log" >&2; fail "apt-get in the root failed"; }
    chroot "$base" apt-get clean
    echo "$want" >"$base/.e2-deps"
fi
say "copying the root and installing $(basename "$deb")"
cp -a "$base" "$TMP/root" || fail "copy of the root"
# The postinst runs systemd-sysusers and systemd-tmpfiles, which need /proc.
cp "$deb" "$TMP/root/tmp/e2.deb" && mount -t proc proc "$TMP/root/proc" || fail "/proc in the root"
chroot "$TMP/root" dpkg -i /tmp/e2.deb >"$TMP/dpkg.log" 2>&1
rc=$?
umount "$TMP/root/proc"
[ $rc = 0 ] || { cat "$TMP/dpkg.log" >&2; fail "dpkg -i e2.deb in the root"; }
rm -f "$TMP/root/tmp/e2.deb"
# The e2 user that the package's sysusers.d made (the same uid in every
# container: they boot the same root).
E2UID=$(chroot "$TMP/root" id -u e2) || fail "the package made no e2 user"
say "e2 installed; user e2 is uid $E2UID; package $(stat -c %s "$deb") bytes"

# ---- the network: a bridge namespace and one namespace per machine ----
ip netns add "$P-br" && ip -n "$P-br" link set lo up &&
    ip -n "$P-br" link add br0 type bridge && ip -n "$P-br" link set br0 up ||
    fail "bridge namespace"
for h in head:1 node-1:11 node-2:12 node-3:13; do
    n=${h%%:*} a=${h#*:}
    ip netns add "$P-$n" && ip -n "$P-$n" link set lo up &&
        ip -n "$P-$n" link add eth0 type veth peer name "p-$a" netns "$P-br" &&
        ip -n "$P-br" link set "p-$a" master br0 && ip -n "$P-br" link set "p-$a" up &&
        ip -n "$P-$n" addr add "$NET.$a/24" dev eth0 && ip -n "$P-$n" link set eth0 up ||
        fail "namespace of $n"
done

# ---- configuration: PKI, tokens, e2d.conf, worker.conf, the cpu drop-in ----
mkdir -p "$TMP/shared/data" "$TMP/shared/export" "$TMP/conf" && (
    cd "$TMP/conf" && umask 077 &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 2 -subj "/CN=e2 cluster test CA" &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
        -out server.csr -subj "/CN=e2d" &&
    printf 'subjectAltName=IP:%s.1\n' "$NET" >server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem
) >/dev/null 2>&1 || fail "openssl"
tok() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
A=$(tok)
echo "$A admin-1 admin" >"$TMP/conf/tokens"
echo "$A" >"$TMP/conf/admin.token"
for m in node-1 node-2 node-3; do
    W=$(tok)
    echo "$W $m worker" >>"$TMP/conf/tokens"
    echo "$W" >"$TMP/conf/$m.token"
done
cat >"$TMP/conf/e2d.conf" <<EOF
listen = $NET.1:7070
tls-cert = /etc/e2/server.pem
tls-key = /etc/e2/server.key
token-file = /etc/e2/tokens
state-dir = /var/lib/e2
data-roots = /var/lib/e2/data
export-root = /var/lib/e2/export
local-workers = 0
heartbeat-timeout = 10
EOF
for m in node-1 node-2 node-3; do
    cat >"$TMP/conf/$m.worker.conf" <<EOF
coordinator = $NET.1:7070
tls-ca = /etc/e2/ca.pem
token-file = /etc/e2/worker.token
name = $m
comm-iface = eth0
data-roots = /var/lib/e2/data
export-root = /var/lib/e2/export
EOF
done
# CPU nodes: the unit's ExecStart is for a GPU; a drop-in, as docs/deploy.md
# says for CPU-only machines.
cat >"$TMP/conf/cpu.conf" <<EOF
[Service]
Environment=OMP_NUM_THREADS=1
ExecStart=
ExecStart=/usr/bin/e2worker --config /etc/e2/worker.conf --device cpu
EOF
chmod 0640 "$TMP/conf"/*.token "$TMP/conf/tokens" "$TMP/conf/server.key" "$TMP/conf"/*.conf
chown "$E2UID" "$TMP/conf"/*.token "$TMP/conf/tokens" "$TMP/conf/server.key"
chmod 0644 "$TMP/conf/ca.pem" "$TMP/conf/server.pem" "$TMP/conf"/*.conf
# The job folders are one tree every machine mounts at /var/lib/e2 (the
# head's state dir, docs/deploy.md); the training data sits in it.
(cd "$TMP/shared/data" && i=0 && while [ $i -lt 200 ]; do
    echo "The quick brown fox number $i jumps over the lazy dog. A journey of a thousand miles begins with one step."
    i=$((i + 1))
done >text.txt && "$TMP/root/usr/bin/e2worker" prep --out data --val-fraction 0.1 text.txt >/dev/null) ||
    fail "e2worker prep"
chown -R "$E2UID:$E2UID" "$TMP/shared" && chmod 0750 "$TMP/shared"

# ---- boot ----
boot() { # MACHINE BIND-ARGS...
    m=$1; shift
    systemd-nspawn -q -b -D "$TMP/root" --volatile=overlay --register=no --keep-unit \
        --machine="$m" --hostname="$m" --network-namespace-path="/run/netns/$P-$m" \
        --bind="$TMP/shared:/var/lib/e2" --console=passive "$@" >"$TMP/$m.console" 2>&1 &
    NSPAWN_PIDS="$NSPAWN_PIDS $!"
    echo $! >"$TMP/$m.pid"
}
# leader MACHINE: the container's PID 1 as the host sees it
leader() {
    for c in $(cat "/proc/$(cat "$TMP/$1.pid")/task/"*/children 2>/dev/null); do
        [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && { echo "$c"; return 0; }
    done
    return 1
}
in_m() { m=$1; shift; nsenter -t "$(leader "$m")" -m -u -i -n -p -- "$@"; }
booted() { s=$(in_m "$1" systemctl is-system-running 2>/dev/null); [ "$s" = running ] || [ "$s" = degraded ]; }

C=/etc/e2
boot head --bind-ro="$TMP/conf/e2d.conf:$C/e2d.conf" --bind-ro="$TMP/conf/tokens:$C/tokens" \
    --bind-ro="$TMP/conf/server.pem:$C/server.pem" --bind-ro="$TMP/conf/server.key:$C/server.key" \
    --bind-ro="$TMP/conf/ca.pem:$C/ca.pem" --bind-ro="$TMP/conf/admin.token:/root/admin.token"
for m in node-1 node-2 node-3; do
    boot "$m" --bind-ro="$TMP/conf/$m.worker.conf:$C/worker.conf" \
        --bind-ro="$TMP/conf/$m.token:$C/worker.token" --bind-ro="$TMP/conf/ca.pem:$C/ca.pem" \
        --bind-ro="$TMP/conf/cpu.conf:/etc/systemd/system/e2worker@.service.d/cpu.conf"
done
for m in head node-1 node-2 node-3; do
    wait_until 120 leader "$m" >/dev/null || fail "$m did not start systemd"
    wait_until 120 booted "$m" || fail "$m did not finish booting: $(in_m "$m" systemctl --failed --no-legend)"
    say "$m booted: systemd $(in_m "$m" systemctl --version | head -1 | cut -d' ' -f2), $(in_m "$m" systemctl is-system-running)"
done

# ---- sysusers.d and tmpfiles.d at boot: /run is a fresh tmpfs ----
for m in head node-1 node-2 node-3; do
    u=$(in_m "$m" id -u e2) && [ "$u" = "$E2UID" ] || fail "$m: no e2 user ($u)"
    got=$(in_m "$m" stat -c '%U %a' /run/e2) && [ "$got" = "e2 750" ] ||
        fail "$m: /run/e2 is '$got', want 'e2 750' (tmpfiles.d at boot)"
done
say "sysusers.d: user e2 (uid $E2UID); tmpfiles.d: /run/e2 e2 0750 on every machine after boot"

# ---- e2d.service: Type=notify, watchdog ----
in_m head systemctl start e2d.service || fail "systemctl start e2d: $(in_m head systemctl status e2d --no-pager)"
show() { in_m "$1" systemctl show "$2" -p "$3" --value; }
[ "$(show head e2d.service ActiveState)/$(show head e2d.service SubState)" = active/running ] ||
    fail "e2d.service is not active: $(in_m head systemctl status e2d --no-pager)"
say "e2d.service: Type=$(show head e2d.service Type), active/running once READY=1 came;" \
    "WatchdogUSec=$(show head e2d.service WatchdogUSec), MainPID $(show head e2d.service MainPID) as $(in_m head ps -o user= -p "$(show head e2d.service MainPID)")"
wd0=$(show head e2d.service WatchdogTimestampMonotonic)

ctl() { in_m head e2ctl --server $NET.1:7070 --tls-ca /etc/e2/ca.pem --token-file /root/admin.token "$@"; }
for m in node-1 node-2 node-3; do
    in_m "$m" systemctl start e2worker@0.service || fail "systemctl start e2worker@0 on $m"
done
idle3() { [ "$(ctl workers 2>/dev/null | grep -c ' IDLE ')" = 3 ]; }
wait_until 60 idle3 || fail "the three workers did not register: $(ctl workers)"
say "the three workers registered over TLS:"
ctl workers

# ---- a 3-worker elastic job across the nodes; node-3's worker stopped ----
cat >"$TMP/shared/spec.json" <<EOF
{"name": "cluster-tiny", "num_workers": 3, "min_workers": 2,
 "model": {"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
   "max_position_embeddings": 32}},
 "data": {"train_shards": ["/var/lib/e2/data/data_train_*.bin"],
          "eval_shards": ["/var/lib/e2/data/data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": 3000, "global_batch": 6, "micro_batch": 2, "lr": 0.003, "warmup_steps": 2},
 "checkpoint": {"every": 100, "keep_last": 2},
 "eval": {"windows": [32], "max_tokens": 64}}
EOF
j=$(ctl submit /var/lib/e2/spec.json --json | $PY -c "import json,sys; print(json.load(sys.stdin)['job']['id'])") ||
    fail "submit"
field() { ctl status "$j" --json 2>/dev/null | $PY -c "import json,sys; j=json.load(sys.stdin)['job']; print($1)"; }
state() { field "j['state']"; }
done_() { s=$(state); [ "$s" = JOB_STATE_SUCCEEDED ] || [ "$s" = JOB_STATE_FAILED ]; }
ckpt() { [ "$(field "len(j.get('checkpoints', []))")" -gt 0 ] 2>/dev/null; }
wait_until 120 ckpt || fail "job $j committed no checkpoint: $(ctl status "$j")"
[ "$(state)" = JOB_STATE_RUNNING ] || fail "job $j is not running: $(ctl status "$j")"
say "job $j RUNNING on 3 nodes with a committed checkpoint; systemctl stop e2worker@0 on node-3"
in_m node-3 systemctl stop e2worker@0.service || fail "systemctl stop e2worker@0 on node-3"
r=$(show node-3 e2worker@0.service Result)
[ "$r" = success ] || fail "e2worker@0 on node-3 stopped with result $r"
say "e2worker@0 on node-3 stopped: Result=$r"
wait_until 300 done_ || fail "job $j did not end: $(ctl status "$j")"
[ "$(state)" = JOB_STATE_SUCCEEDED ] || fail "job $j: $(ctl status "$j")"
[ "$(field "j['world_size']")" = 2 ] || fail "job $j's last attempt is not on 2 workers: $(ctl status "$j")"
ctl status "$j" | grep -q "(elastic: world size 2 of num_workers 3, min_workers 2), resuming from checkpoint step" ||
    fail "no elastic restart from a checkpoint: $(ctl status "$j")"
say "job $j SUCCEEDED after an elastic restart on node-1 and node-2:"
ctl status "$j" | grep -v "^  step " | sed -e '/^Events:/,$!d' -e 's/^/  /'
ctl status "$j" | sed -n '1,9p'
a=$(field "j['attempt']")
[ "$a" = 2 ] || fail "the elastic restart took until attempt $a: $(ctl status "$j")"
for m in node-1 node-2; do
    in_m "$m" journalctl -q --no-pager -u e2worker@0 | grep -q "assigned $j attempt $a rank [01]/2" ||
        fail "$m's journal does not show a rank of attempt $a"
done
in_m node-3 journalctl -q --no-pager -u e2worker@0 | grep -q "assigned $j attempt $a " &&
    fail "node-3's stopped worker has a rank of attempt $a"
ctl workers --all

# Its watchdog pings reach systemd (one every WatchdogSec/2 = 15 s).
pinged() { wd=$(show head e2d.service WatchdogTimestampMonotonic); [ "$wd" -gt "$wd0" ]; }
wait_until 40 pinged || fail "no WATCHDOG=1 reached systemd within 40 s"
[ "$(show head e2d.service NRestarts)" = 0 ] || fail "e2d.service restarted"
say "e2d.service watchdog: a ping $(((wd - wd0) / 1000)) ms after the start's timestamp, NRestarts 0"
in_m head systemctl stop e2d.service || fail "systemctl stop e2d"
[ "$(show head e2d.service Result)" = success ] || fail "e2d.service stopped with $(show head e2d.service Result)"
say "e2d.service stopped: Result=success"
say "ok"
exit 0
