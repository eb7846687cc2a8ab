#!/bin/sh
# multinode_test.sh -- e2d, three agent hosts and Gloo across a network, on
# one machine: every "host" is a network namespace of its own.
#
#   e2d       namespace e2mn-<pid>-<id>-d    eth0 10.251.7.1/24
#   host-N    namespace e2mn-<pid>-<id>-hN   eth0 10.251.7.1N/24  (N = 1, 2, 3)
#   switch    namespace e2mn-<pid>-<id>-br   bridge br0 joining peers p-d, p-hN
#
# The namespaces, veth pairs and the bridge are this run's own (its pid
# and a random <id>); nothing is added to the root namespace, and the
# addresses exist only inside these namespaces, so no packet leaves the
# machine. e2d listens on TCP with TLS (a CA and certificates made here
# with openssl) and bearer tokens; each host runs `e2worker --coordinator`
# with its own worker token, and a job's ranks talk Gloo over the hosts'
# eth0.
# A host "drops off the network" when its switch port goes down
# (`ip link set p-h3 down` in the switch namespace: its cable is pulled).
#
# Usage (as root): multinode_test.sh E2D E2WORKER E2CTL CASE
# Cases:
#   host_lost_detected_and_resumed_on_survivors
#                 a 3-worker job with min_workers 2; host-3's link goes down
#                 after a committed checkpoint: e2d declares its worker LOST
#                 within the heartbeat timeout, the survivors' ranks are
#                 aborted out of their blocked collectives, and e2d restarts
#                 the job elastically at once on host-1 and host-2 (attempt
#                 2, world size 2) from the last committed checkpoint; it
#                 SUCCEEDS, training on from that step (not step 0)
#   host_link_restored_rejoins
#                 a 3-worker gang job (min_workers 3, the default) and the
#                 same link loss: the survivors go IDLE and the job waits
#                 for a restart (RESTARTING, not FAILED); then the link
#                 comes back: host-3's agent re-registers (ListWorkers shows
#                 it again, not LOST), and the job restarts on all three
#                 hosts from its last committed checkpoint and SUCCEEDS
# Everything is bounded; the namespaces and processes go on any exit.
set -u
. "$(dirname "$0")/../lib.sh"
E2D=$1
E2W=$2
E2CTL=$3
CASE=$4
PY=/usr/bin/python3
HB=4          # e2d --heartbeat-timeout (s)
NET=10.251.7
PORT=7070

if [ "$(id -u)" != 0 ]; then
    echo "FAIL ($CASE): the multinode tests make network namespaces and need root" \
         "(CI runs them as root); run ./tests/run.sh as root" >&2
    exit 1
fi
command -v ip >/dev/null || { echo "FAIL ($CASE): 'ip' (iproute2) not found" >&2; exit 1; }

# A run killed outright (SIGKILL: ctest's timeout) could not clean up;
# its namespaces carry its shell's pid and go once that pid is gone.
for ns in $(ip netns list 2>/dev/null | sed -n 's/^\(e2mn-[0-9]*-[0-9a-f]*-[a-z0-9]*\).*/\1/p'); do
    pid=${ns#e2mn-}
    pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null && continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
done

ID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
P=e2mn-$$-$ID
NSB=$P-br NSD=$P-d
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-multinode-XXXXXX")
PIDS=
E2D_PID=

cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    # Anything else still inside this run's namespaces was started by it.
    for n in d h1 h2 h3 br; do
        for p in $(ip netns pids "$P-$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    wait 2>/dev/null
    for n in d h1 h2 h3 br; do ip netns del "$P-$n" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
cd "$TMP" || exit 1

fail() {
    echo "FAIL ($CASE): $*" >&2
    for f in e2d.log host-1.log host-2.log host-3.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

# ---- the network ----
in_ns() { ns=$1; shift; ip netns exec "$ns" "$@"; }
net_up() {
    ip netns add "$NSB" || return 1
    ip -n "$NSB" link set lo up &&
        ip -n "$NSB" link add br0 type bridge &&
        ip -n "$NSB" link set br0 up || return 1
    for h in d:1 h1:11 h2:12 h3:13; do
        n=${h%%:*} a=${h#*:}
        ip netns add "$P-$n" &&
            ip -n "$P-$n" link set lo up &&
            ip -n "$P-$n" link add eth0 type veth peer name "p-$n" netns "$NSB" &&
            ip -n "$NSB" link set "p-$n" master br0 &&
            ip -n "$NSB" link set "p-$n" up &&
            ip -n "$P-$n" addr add "$NET.$a/24" dev eth0 &&
            ip -n "$P-$n" link set eth0 up || return 1
    done
}

# ---- PKI and tokens ----
pki() {
    mkdir -p pki && (
        cd pki && umask 077 &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout ca.key -out ca.pem -days 2 -subj "/CN=e2 multinode test CA" &&
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout server.key -out server.csr -subj "/CN=e2d" &&
        printf 'subjectAltName=IP:%s.1\n' "$NET" >server.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 2 -extfile server.ext -out server.pem
    ) 2>/dev/null
}
token() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
tokens() {
    (umask 077
     t=$(token) && echo "$t admin-1 admin" >tokens && echo "$t" >admin.token
     for n in 1 2 3; do
         t=$(token) && echo "$t host-$n worker" >>tokens && echo "$t" >host-$n.token
     done)
}

# ---- processes ----
start_e2d() {
    # ip netns exec execs: $! is e2d itself (not a subshell, as with in_ns).
    ip netns exec "$NSD" "$E2D" --state-dir "$TMP/state" --listen "$NET.1:$PORT" \
        --tls-cert pki/server.pem --tls-key pki/server.key --token-file tokens \
        --heartbeat-timeout $HB --hang-timeout 600 >>e2d.log 2>&1 &
    E2D_PID=$!
    PIDS="$PIDS $!"
    wait_until 15 grep -q "listening on" e2d.log || fail "e2d did not listen"
}
start_host() { # N
    ip netns exec "$P-h$1" env OMP_NUM_THREADS=1 "$E2W" --coordinator "$NET.1:$PORT" \
        --tls-ca pki/ca.pem --token-file "host-$1.token" --name "host-$1" \
        --comm-iface eth0 >"host-$1.out" 2>"host-$1.log" &
    PIDS="$PIDS $!"
}

ctl() { in_ns "$NSD" "$E2CTL" --server "$NET.1:$PORT" --tls-ca pki/ca.pem --token-file admin.token "$@"; }
json_get() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
job_field() { ctl status "$1" --json 2>/dev/null | json_get "(lambda j: $2)(d['job'])" 2>/dev/null; }
state_is() { [ "$(job_field "$1" "j['state']")" = "$2" ]; }
# worker_state HOST: that host's worker's state (LOST ones too)
worker_state() {
    ctl workers --all --json 2>/dev/null |
        json_get "[w['state'] for w in d.get('workers', []) if w.get('hostname') == '$1'][-1]" 2>/dev/null
}
worker_is() { [ "$(worker_state "$1")" = "$2" ]; }
worker_not() { s=$(worker_state "$1"); [ -n "$s" ] && [ "$s" != "$2" ]; }
idle_hosts() {
    [ "$(ctl workers --json 2>/dev/null | json_get "sum(w['state'] == 'WORKER_STATE_IDLE' for w in d.get('workers', []))")" = "$1" ]
}
attempt_is() { [ "$(job_field "$1" "j['attempt']")" = "$2" ]; }
last_ckpt() { job_field "$1" "max([c['step'] for c in j.get('checkpoints', [])] or [0])"; }
ckpt_committed() { s=$(last_ckpt "$1"); [ -n "$s" ] && [ "$s" -gt 0 ]; }
events() { job_field "$1" "'\n'.join(e.get('reason', '') for e in j.get('events', []))"; }
left_running() { s=$(job_field "$1" "j['state']"); [ -n "$s" ] && [ "$s" != JOB_STATE_RUNNING ]; }

write_spec() { # STEPS [extra top-level fields]
    STEPS=$1
    cat >spec.json <<EOF
{"name": "multinode-tiny",
 "model": {"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
   "max_position_embeddings": 32}},
 "data": {"train_shards": ["$TMP/data_train_*.bin"], "eval_shards": ["$TMP/data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": $1, "global_batch": 6, "micro_batch": 2, "lr": 0.003, "warmup_steps": 2},
 "checkpoint": {"every": 5, "keep_last": 100},
 "max_restarts": 2${2:-},
 "eval": {"windows": [32], "max_tokens": 64}}
EOF
}
submit() { # NUM_WORKERS: prints the job id
    ctl submit spec.json --set num_workers=$1 --json 2>submit.err >submit.json || return 1
    json_get "d['job']['id']" <submit.json
}
jobdir() { echo "$TMP/state/jobs/$1"; }
# first_step JOB ATTEMPT: the first step a rank 0 log of ATTEMPT trained
first_step() {
    sed -n 's/^step \([0-9]*\)\/.*/\1/p' "$(jobdir "$1")/attempt-$2/rank-0.log" 2>/dev/null | head -1
}

# ---- the common part: a 3-host job that loses host-3 mid-job ----
net_up || fail "could not build the namespaces and the bridge"
pki || fail "openssl could not make the certificates"
tokens || fail "token files"
make_data
start_e2d
for n in 1 2 3; do start_host $n; done
wait_until 30 idle_hosts 3 || fail "the 3 hosts did not register: $(ctl workers)"
for n in 1 2 3; do
    grep -q "registered with $NET.1:$PORT" "host-$n.log" || fail "host-$n did not register over TCP"
done

# Long enough that the link goes down well before the end, even on a fast
# machine: the first checkpoint is at step 5 of 300 (all 60 are kept).
case $CASE in
host_lost_detected_and_resumed_on_survivors) write_spec 300 ', "min_workers": 2' ;;
*) write_spec 300 ;;
esac
j=$(submit 3) || fail "submit: $(cat submit.err)"
wait_until 60 ckpt_committed "$j" || fail "no committed checkpoint: $(ctl status "$j")"
state_is "$j" JOB_STATE_RUNNING || fail "the job is no longer running: $(ctl status "$j")"
for n in 1 2 3; do worker_is host-$n WORKER_STATE_BUSY || fail "host-$n is not in the job: $(ctl workers)"; done
# Gloo's pairs cross the hosts: each rank's comm listens on its eth0 address.
for n in 1 2 3; do
    in_ns "$P-h$n" ss -tn state established 2>/dev/null | grep -q "$NET.1$n:.* $NET.1[123]:" ||
        fail "host-$n has no TCP connection to another host (Gloo): $(in_ns "$P-h$n" ss -tn)"
done

ip -n "$NSB" link set p-h3 down || fail "link down"
t0ms=$(date +%s%3N)
t0=$(date +%s)
wait_until $((HB + 10)) worker_is host-3 WORKER_STATE_LOST || fail "host-3 not LOST within $((HB + 10)) s"
dt=$(($(date +%s) - t0))
[ $dt -le $((HB + 3)) ] || fail "host-3's loss detected after $dt s (heartbeat timeout $HB s)"
echo "host-3 declared LOST $dt s after its link went down (heartbeat timeout $HB s)"
wait_until 5 left_running "$j" || fail "the job still RUNNING after host-3 was lost: $(ctl status "$j")"
events "$j" | grep -q "no heartbeat" || fail "no heartbeat loss recorded: $(events "$j")"
grep -q "worker .*: lost: no heartbeat" e2d.log || fail "e2d's log does not say the worker was lost"

case $CASE in
host_lost_detected_and_resumed_on_survivors)
    # The survivors were blocked in a collective with host-3; e2d's Abort
    # gets them out (long before Gloo's own timeout) and the job restarts
    # on them at once.
    wait_until 30 attempt_is "$j" 2 || fail "no elastic restart on the survivors: $(ctl status "$j")"
    [ "$(job_field "$j" "j['world_size']")" = 2 ] || fail "attempt 2's world size is not 2: $(ctl status "$j")"
    # From the stored events: the loss, and attempt 2's start, after t0.
    at() { job_field "$j" "[int(e['time_unix_ms']) - $t0ms for e in j['events'] if e['state'] == '$1'][-1]"; }
    echo "after the link went down: the job RESTARTING at $(at JOB_STATE_RESTARTING) ms," \
        "attempt 2 STARTING on the survivors at $(at JOB_STATE_STARTING) ms"
    ev=$(events "$j" | grep "^attempt 2 on ")
    echo "$ev" | grep -q "(elastic: world size 2 of num_workers 3, min_workers 2), resuming from checkpoint step [0-9]*$" ||
        fail "attempt 2 is not an elastic restart from a checkpoint: $(events "$j")"
    last=${ev##* }
    [ "$last" -ge 5 ] || fail "attempt 2 resumed from step $last"
    [ "$(job_field "$j" "[c['attempt'] for c in j['checkpoints'] if c['step'] == $last][0]")" = 1 ] ||
        fail "step $last is not a checkpoint attempt 1 committed: $(ctl status "$j")"
    grep -q "elastic restart: attempt 2 runs on 2 of 3 workers" e2d.log || fail "no elastic restart in e2d's log"
    wait_until 150 state_is "$j" JOB_STATE_SUCCEEDED || fail "the job did not succeed: $(ctl status "$j")"
    [ "$(job_field "$j" "j['attempt']")" = 2 ] && [ "$(job_field "$j" "j['restarts']")" = 1 ] &&
        [ "$(job_field "$j" "j['world_size']")" = 2 ] || fail "not one elastic restart: $(ctl status "$j")"
    first=$(first_step "$j" 2)
    [ "$first" = $((last + 1)) ] || fail "attempt 2 started at step '$first', not $((last + 1))"
    grep -q "step $STEPS/$STEPS" "$(jobdir "$j")/attempt-2/rank-1.log" || fail "rank 1 of attempt 2 did not finish"
    [ -e "$(jobdir "$j")/attempt-2/rank-2.log" ] && fail "attempt 2 had a rank 2"
    for n in 1 2; do
        grep -q "assigned $j attempt 2 rank [01]/2" host-$n.log || fail "host-$n had no rank of attempt 2"
    done
    worker_is host-3 WORKER_STATE_LOST || fail "host-3 is not LOST: $(ctl workers --all)"
    echo "restarted elastically on host-1 and host-2 from committed step $last; SUCCEEDED"
    ;;
host_link_restored_rejoins)
    # The survivors were blocked in a collective with host-3; e2d's Abort
    # gets them out (long before Gloo's own timeout) and they go IDLE.
    wait_until 20 worker_is host-1 WORKER_STATE_IDLE || fail "host-1 not IDLE: $(ctl workers --all)"
    wait_until 20 worker_is host-2 WORKER_STATE_IDLE || fail "host-2 not IDLE: $(ctl workers --all)"
    s=$(job_field "$j" "j['state']")
    [ "$s" = JOB_STATE_RESTARTING ] || [ "$s" = JOB_STATE_PENDING ] ||
        fail "the job is $s, not kept for a restart: $(ctl status "$j")"
    last=$(last_ckpt "$j")
    ip -n "$NSB" link set p-h3 up || fail "link up"
    wait_until 30 worker_not host-3 WORKER_STATE_LOST || fail "host-3 did not come back: $(ctl workers --all)"
    grep -q "worker .*: heartbeat again after being lost" e2d.log || fail "e2d's log does not say host-3 is back"
    wait_until 150 state_is "$j" JOB_STATE_SUCCEEDED || fail "the job did not succeed: $(ctl status "$j")"
    [ "$(job_field "$j" "j['restarts']")" = 1 ] || fail "expected one restart: $(ctl status "$j")"
    events "$j" | grep -q "resuming from checkpoint step $last$" ||
        fail "the restart did not resume from step $last: $(events "$j")"
    a=$(job_field "$j" "j['attempt']")
    first=$(first_step "$j" "$a")
    [ "$first" = $((last + 1)) ] || fail "attempt $a started at step '$first', not $((last + 1))"
    grep -q "step $STEPS/$STEPS" "$(jobdir "$j")/attempt-$a/rank-2.log" || fail "rank 2 of attempt $a did not finish"
    echo "host-3 re-registered; the job restarted on 3 hosts from committed step $last and SUCCEEDED"
    ;;
*)
    fail "unknown case"
    ;;
esac

# e2d stops at SIGTERM with status 0, with no sanitizer report anywhere.
kill -TERM "$E2D_PID"
wait "$E2D_PID"
rc=$?
[ $rc = 0 ] || fail "e2d exited with status $rc"
if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" e2d.log host-*.log host-*.out; then
    fail "sanitizer report"
fi
exit 0
