#!/bin/sh
# dist_test.sh -- distributed data-parallel training end to end: a real e2d
# spawning CPU workers itself (--local-workers 2, Gloo through e2d's
# rendezvous), jobs submitted with e2ctl, faults injected from outside.
# Usage: dist_test.sh E2D E2WORKER E2CTL CASE
# Cases:
#   one_vs_two    the same 20-step job on 1 and on 2 workers: per-step
#                 losses equal within 1e-5 relative; each local worker
#                 got OMP_NUM_THREADS = max(1, cores / 2)
#   one_vs_four   the same on 1 and on 4 workers (global batch 4: each of
#                 the 4 ranks lowers micro_batch 2 to its 1 sequence)
#   kill9         kill -9 of one worker after a committed checkpoint: the
#                 job restarts from it and SUCCEEDS, its final weights
#                 bit-identical to an uninterrupted 2-worker run's
#   kill_in_ckpt  a worker killed while writing checkpoint step_N.tmp: the
#                 half-written folder is never used (the restart resumes
#                 from the committed one before) and is removed
#   sigstop       SIGSTOP of one worker: detected within the heartbeat
#                 timeout, the job restarts and SUCCEEDS
#   hang          rank 0 stuck in a checkpoint write while its worker still
#                 heartbeats: detected within --hang-timeout, the wedged
#                 worker is killed by e2d (it ignores the Abort) and the
#                 job restarts from the last committed checkpoint
#   damaged       a committed checkpoint with a flipped byte: the restarts
#                 refuse it (sha256 against manifest.json), never train
#                 from it, and the job FAILS once its restart budget is spent
#   two_to_one    a 2-worker job interrupted (frozen after a committed
#                 checkpoint, cancelled, killed by e2d at the end of the
#                 grace) and resumed on 1 worker (spec.resume_from): losses
#                 equal to the uninterrupted 2-worker run's within 1e-5
#                 relative
#   zero1         the same 2-worker job with and without train.zero1: the
#                 same losses, final weights and train_state.bin bit for
#                 bit; each rank's logged optimizer memory is its shard's
#                 (the two add up to one plain rank's)
#   zero1_kill9   kill -9 of one worker of a train.zero1 job after a
#                 committed checkpoint: the job restarts from it and
#                 SUCCEEDS with the final weights and optimizer state of an
#                 uninterrupted train.zero1 run, bit for bit
# The elastic cases run three agents the test starts itself (`e2worker
# --coordinator`, as on other hosts; e2d spawns none, so none is replaced
# behind the test's back) and a 3-worker job with global batch 6:
#   elastic_three_to_two
#                 min_workers 2: one agent frozen (SIGSTOP) after a
#                 committed checkpoint is declared LOST, and e2d restarts
#                 the job at once on the two survivors (world size 2) from
#                 that checkpoint; the frozen agent thawed while attempt 2
#                 runs is drained and gets no rank in it; the job SUCCEEDS
#                 with the per-step losses of an uninterrupted 3-worker run
#   elastic_gang_waits
#                 min_workers 3 (the default): after the same loss the job
#                 waits (RESTARTING, unschedulable with 2 workers) and
#                 restarts on all three once the agent is back, SUCCEEDS
set -u
. "$(dirname "$0")/../lib.sh"
E2D=$1
E2W=$2
E2CTL=$3
CASE=$4
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-dist-XXXXXX")
SOCK=unix:$TMP/e2d.sock
HB=4
HANG=600
[ "$CASE" = hang ] && HANG=6
LOCAL=2
[ "$CASE" = one_vs_four ] && LOCAL=4
AGENTS=0
case $CASE in elastic_*) LOCAL=0 AGENTS=3 ;; esac
E2D_PID=
AGENT_PIDS=

cleanup() {
    for p in $AGENT_PIDS; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
    if [ -n "$E2D_PID" ]; then
        for f in "$TMP"/state/workers/local-*.pid; do
            [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null
        done
        kill -TERM "$E2D_PID" 2>/dev/null
        wait "$E2D_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
cd "$TMP" || exit 1

fail() {
    echo "FAIL ($CASE): $*" >&2
    for f in e2d.log state/workers/local-0.log state/workers/local-1.log agent-1.log agent-2.log \
        agent-3.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 25 "$f" >&2; }
    done
    exit 1
}

ctl() { "$E2CTL" --server "$SOCK" "$@"; }
json_get() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
job_field() { ctl status "$1" --json 2>/dev/null | json_get "(lambda j: $2)(d['job'])" 2>/dev/null; }
state_is() { [ "$(job_field "$1" "j['state']")" = "$2" ]; }
idle_workers() {
    [ "$(ctl workers --json 2>/dev/null | json_get "sum(w['state'] == 'WORKER_STATE_IDLE' for w in d.get('workers', []))")" = "$1" ]
}

start_e2d() {
    "$E2D" --state-dir "$TMP/state" --listen "$SOCK" --local-workers $LOCAL \
        --worker-bin "$E2W" --heartbeat-timeout $HB --hang-timeout $HANG >>e2d.log 2>&1 &
    E2D_PID=$!
    wait_until 10 test -S "$TMP/e2d.sock" || fail "e2d did not listen"
    wait_until 30 idle_workers $LOCAL || fail "the $LOCAL local workers did not register: $(ctl workers)"
    n=1
    while [ $n -le $AGENTS ]; do
        OMP_NUM_THREADS=1 "$E2W" --coordinator "$SOCK" --name "agent-$n" >"agent-$n.out" \
            2>"agent-$n.log" &
        AGENT_PIDS="$AGENT_PIDS $!"
        echo $! >"agent-$n.pid"
        n=$((n + 1))
    done
    wait_until 30 idle_workers $((LOCAL + AGENTS)) || fail "the workers did not register: $(ctl workers)"
}

write_spec() { # $1 = steps, $2 = checkpoint every, $3 = more train fields
    STEPS=$1 EVERY=$2
    cat >spec.json <<EOF
{"name": "dist-tiny",
 "model": {"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
   "max_position_embeddings": 32}},
 "data": {"train_shards": ["$TMP/data_train_*.bin"], "eval_shards": ["$TMP/data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": $1, "global_batch": ${GB:-4}, "micro_batch": 2, "lr": 0.003, "warmup_steps": 2${3:-}},
 "checkpoint": {"every": $2, "keep_last": 10},
 "max_restarts": 2${TOP:-},
 "eval": {"windows": [32], "max_tokens": 64}}
EOF
}

submit() { # submit NUM_WORKERS [--wait]: prints the job id (after its end)
    ctl submit spec.json --set num_workers=$1 --json 2>submit.err >submit.json || return 1
    id=$(json_get "d['job']['id']" <submit.json) || return 1
    if [ "${2:-}" = --wait ]; then
        wait_until 120 state_is "$id" JOB_STATE_SUCCEEDED ||
            { ctl status "$id" >submit.err; return 1; }
    fi
    echo "$id"
}

jobdir() { echo "$TMP/state/jobs/$1"; }

# losses JOB: "step loss" per line, from rank 0's log of each attempt (a
# later attempt's step replaces an earlier one's); the log prints 7
# significant digits, 50x finer than the 1e-5 compared.
losses() {
    $PY - "$(jobdir "$1")" <<'EOF'
import glob, os, re, sys
d = {}
for a in sorted(glob.glob(os.path.join(sys.argv[1], "attempt-*")),
                key=lambda p: int(p.rsplit("-", 1)[1])):
    # A rank killed before its first heartbeat left no log of its attempt.
    if not os.path.exists(os.path.join(a, "rank-0.log")):
        continue
    for l in open(os.path.join(a, "rank-0.log")):
        m = re.match(r"step (\d+)/\d+ \| loss (\S+)", l)
        if m:
            d[int(m.group(1))] = m.group(2)
for s in sorted(d):
    print(s, d[s])
EOF
}

# same_losses A B [FROM]: per-step losses of A and B equal within 1e-5
# relative for every step >= FROM both have (at least one).
same_losses() {
    losses "$1" >la.txt && losses "$2" >lb.txt || fail "losses of $1 / $2"
    $PY - "${3:-1}" <<'EOF' || fail "losses of $1 and $2 differ"
import sys
lo = int(sys.argv[1])
a = dict(map(float, l.split()) for l in open("la.txt") if l.strip())
b = dict(map(float, l.split()) for l in open("lb.txt") if l.strip())
common = sorted(s for s in a if s in b and s >= lo)
assert common, (sorted(a), sorted(b))
for s in common:
    assert abs(a[s] - b[s]) <= 1e-5 * abs(b[s]), "step %d: %r vs %r" % (s, a[s], b[s])
print("%d steps compared, largest relative difference %.3g" % (
    len(common), max(abs(a[s] - b[s]) / abs(b[s]) for s in common)))
EOF
}

# worker_pid INDEX: pid of local worker INDEX
worker_pid() { cat "$TMP/state/workers/local-$1.pid"; }

# kill_when PATH SIGNAL PID...: sends SIGNAL to each PID as soon as PATH
# exists (polled every 2 ms, at most 60 s); fails the test if it never
# does. Returns 3 without signalling when $FINAL exists by then: the job
# outran the poll (a loaded machine) and the caller tries a new job.
kill_when() {
    $PY - "$FINAL" "$@" <<'EOF'
import os, signal, sys, time
final, path, sig = sys.argv[1], sys.argv[2], getattr(signal, "SIG" + sys.argv[3])
end = time.time() + 60
while not os.path.exists(path):
    if time.time() > end:
        sys.exit(1)
    time.sleep(0.002)
if os.path.exists(final):
    sys.exit(3)
for pid in sys.argv[4:]:
    os.kill(int(pid), sig)
EOF
    rc=$?
    [ $rc = 1 ] && fail "$1 never appeared"
    [ $rc = 3 ] && echo "note: the job finished before $1 was seen; another job" >&2
    return $rc
}

# interrupt N PATH SIGNAL WORKER_INDEX...: submits the spec on N workers and
# signals the given local workers once PATH (relative to the job's
# checkpoints/) exists, while it still trains; up to 3 jobs. Sets j.
interrupt() {
    inw=$1 inpath=$2 insig=$3
    shift 3
    for try in 1 2 3; do
        j=$(submit "$inw") || fail "submit: $(cat submit.err)"
        FINAL=$(jobdir "$j")/checkpoints/step_$STEPS
        pids=
        for i in "$@"; do pids="$pids $(worker_pid "$i")"; done
        # shellcheck disable=SC2086
        kill_when "$(jobdir "$j")/checkpoints/$inpath" "$insig" $pids && return 0
        wait_until 60 state_is "$j" JOB_STATE_SUCCEEDED || fail "job $j did not end"
        wait_until 30 idle_workers $LOCAL || fail "workers not idle"
    done
    fail "3 jobs finished before they could be interrupted"
}

started() { s=$(job_field "$1" "j['state']"); [ -n "$s" ] && [ "$s" != JOB_STATE_PENDING ]; }
left_running() { s=$(job_field "$1" "j['state']"); [ -n "$s" ] && [ "$s" != JOB_STATE_RUNNING ]; }

# leaves_running_within JOB TIMEOUT WHAT: e2d ends JOB's attempt (it leaves
# RUNNING) within TIMEOUT + 3 s from now, as WHAT should make it.
leaves_running_within() {
    t0=$(date +%s)
    wait_until $(($2 + 10)) left_running "$1" || fail "$3 not detected within $(($2 + 10)) s"
    dt=$(($(date +%s) - t0))
    [ $dt -le $(($2 + 3)) ] || fail "$3 detected after $dt s (timeout $2 s)"
}

# wedge_ckpt JOB: rank 0 of JOB gets stuck in the middle of a checkpoint.
# It writes model.safetensors, then train_state.bin, each through a
# temporary <name>.tmp.<pid>: a FIFO in place of the state file's blocks
# its open for good. The FIFOs go into step_N.tmp for the first checkpoint
# step N >= 2 * EVERY that no rank has begun (above every step_* folder),
# while both workers are frozen (SIGSTOP), so that a fast machine cannot
# pass step N before they are there. Sets WEDGED=N; returns once
# model.safetensors is in step_N.tmp (rank 0 is in the middle of it).
wedge_ckpt() {
    wck=$(jobdir "$1")/checkpoints
    p0=$(worker_pid 0) p1=$(worker_pid 1)
    kill -STOP "$p0" "$p1" || fail "SIGSTOP of the workers"
    WEDGED=$((2 * EVERY))
    for d in "$wck"/step_*; do
        [ -e "$d" ] || continue
        s=${d##*/step_}
        s=${s%.tmp}
        [ $((s + EVERY)) -gt $WEDGED ] && WEDGED=$((s + EVERY))
    done
    ok=0
    [ $WEDGED -lt "$STEPS" ] && mkdir -p "$wck/step_$WEDGED.tmp" &&
        mkfifo "$wck/step_$WEDGED.tmp/train_state.bin.tmp.$p0" \
               "$wck/step_$WEDGED.tmp/train_state.bin.tmp.$p1" && ok=1
    kill -CONT "$p0" "$p1"
    [ $ok = 1 ] || fail "could not wedge checkpoint step $WEDGED of $STEPS"
    wait_until 30 test -f "$wck/step_$WEDGED.tmp/model.safetensors" ||
        fail "rank 0 never wrote into step_$WEDGED.tmp"
}

events() { job_field "$1" "'\n'.join(e.get('reason', '') for e in j.get('events', []))"; }

# optim_bytes JOB RANK: the optimizer bytes rank RANK of the job's first
# attempt logged at start ("memory: ... optimizer N ...").
optim_bytes() {
    sed -n 's/.*memory: .* optimizer \([0-9]*\).*/\1/p' "$(jobdir "$1")/attempt-1/rank-$2.log" | head -1
}

# same_final A B: the two jobs' last checkpoints hold the same weights and
# training state, byte for byte.
same_final() {
    for f in model.safetensors train_state.bin; do
        cmp "$(jobdir "$1")/checkpoints/step_$STEPS/$f" "$(jobdir "$2")/checkpoints/step_$STEPS/$f" ||
            fail "$f of $1 and $2 differ"
    done
}

# first_step JOB ATTEMPT: the first step rank 0 of ATTEMPT trained
first_step() {
    sed -n 's/^step \([0-9]*\)\/.*/\1/p' "$(jobdir "$1")/attempt-$2/rank-0.log" 2>/dev/null | head -1
}
agent_is() { # NAME STATE (LOST ones too)
    [ "$(ctl workers --all --json 2>/dev/null |
        json_get "[w['state'] for w in d.get('workers', []) if w.get('hostname') == '$1'][-1]" 2>/dev/null)" = "$2" ]
}
attempt_is() { [ "$(job_field "$1" "j['attempt']")" = "$2" ]; }
reason_has() { job_field "$1" "j.get('reason', '')" | grep -qF "$2"; }

# elastic_interrupt: submits the spec on 3 workers and freezes agent-3
# (SIGSTOP) once checkpoint step_5 is committed, while the job trains; up
# to 3 jobs. e2d declares it LOST within the heartbeat timeout. Sets j and
# last (the job's last committed checkpoint step then; an elastic restart
# may have committed more since).
elastic_interrupt() {
    for try in 1 2 3; do
        j=$(submit 3) || fail "submit: $(cat submit.err)"
        FINAL=$(jobdir "$j")/checkpoints/step_$STEPS
        if kill_when "$(jobdir "$j")/checkpoints/step_5" STOP "$(cat agent-3.pid)"; then
            leaves_running_within "$j" $HB "the frozen agent (heartbeat timeout)"
            wait_until 10 agent_is agent-3 WORKER_STATE_LOST || fail "agent-3 not LOST: $(ctl workers --all)"
            last=$(job_field "$j" "max([c['step'] for c in j.get('checkpoints', [])] or [0])")
            [ -n "$last" ] && [ "$last" -ge 5 ] && [ "$last" -lt "$STEPS" ] ||
                fail "last committed checkpoint '$last': $(ctl status "$j")"
            return 0
        fi
        wait_until 60 state_is "$j" JOB_STATE_SUCCEEDED || fail "job $j did not end"
        wait_until 30 idle_workers 3 || fail "workers not idle"
    done
    fail "3 jobs finished before they could be interrupted"
}

make_data
start_e2d

case $CASE in
one_vs_two)
    want=${OMP_NUM_THREADS:-$(($(nproc) / 2))}
    [ "$want" -ge 1 ] || want=1
    tr '\0' '\n' </proc/"$(worker_pid 0)"/environ | grep -qx "OMP_NUM_THREADS=$want" ||
        fail "local worker lacks OMP_NUM_THREADS=$want"
    write_spec 20 0
    j1=$(submit 1 --wait) || fail "1-worker job: $(cat submit.err)"
    j2=$(submit 2 --wait) || fail "2-worker job: $(cat submit.err)"
    [ "$(job_field "$j2" "j['step']")" = 20 ] || fail "2-worker job did not train 20 steps"
    # Both ranks read the files of e2d's shard manifest.
    for r in 0 1; do
        grep -q "data: [0-9]* shard files\{0,1\} of e2d's manifest, sizes checked" \
            "$(jobdir "$j2")/attempt-1/rank-$r.log" || fail "rank $r did not use e2d's shard manifest"
    done
    same_losses "$j1" "$j2"
    ;;
one_vs_four)
    write_spec 20 0
    j1=$(submit 1 --wait) || fail "1-worker job: $(cat submit.err)"
    j4=$(submit 4 --wait) || fail "4-worker job: $(cat submit.err)"
    [ "$(job_field "$j4" "j['step']")" = 20 ] || fail "4-worker job did not train 20 steps"
    grep -q "step 20/20" "$(jobdir "$j4")/attempt-1/rank-3.log" || fail "rank 3 of 4 did not train"
    same_losses "$j1" "$j4"
    ;;
kill9)
    write_spec 40 5
    interrupt 2 step_10 KILL 1
    wait_until 60 state_is "$j" JOB_STATE_SUCCEEDED || fail "job did not succeed: $(ctl status "$j")"
    [ "$(job_field "$j" "j['restarts']")" = 1 ] || fail "expected one restart: $(ctl status "$j")"
    ctl status "$j" | grep -q "infrastructure 1 (restarts), user errors 0, cancellations 0" ||
        fail "e2ctl status does not show the fault counts: $(ctl status "$j")"
    events "$j" | grep -q "resuming from checkpoint step" || fail "the restart did not resume from a checkpoint: $(events "$j")"
    ref=$(submit 2 --wait) || fail "uninterrupted job: $(cat submit.err)"
    [ "$(job_field "$ref" "j['restarts']")" = 0 ] || fail "the reference job restarted"
    cmp "$(jobdir "$j")/checkpoints/step_40/model.safetensors" \
        "$(jobdir "$ref")/checkpoints/step_40/model.safetensors" ||
        fail "final weights differ from the uninterrupted run's"
    same_losses "$j" "$ref"
    ;;
kill_in_ckpt)
    write_spec 40 4
    j=$(submit 2) || fail "submit: $(cat submit.err)"
    ck=$(jobdir "$j")/checkpoints
    wait_until 20 started "$j" || fail "job did not start"
    wedge_ckpt "$j"
    ranks=$(ctl workers --json | json_get "' '.join('%s:%s' % (w['pid'], w.get('rank', 0)) for w in d.get('workers', []) if w['state'] == 'WORKER_STATE_BUSY')")
    victim=$(echo "$ranks" | tr ' ' '\n' | grep ':0$' | cut -d: -f1)
    [ -n "$victim" ] || fail "no rank 0 among the busy workers: $ranks"
    kill -9 "$victim"
    wait_until 60 state_is "$j" JOB_STATE_SUCCEEDED || fail "job did not succeed: $(ctl status "$j")"
    events "$j" | grep -q "resuming from checkpoint step $((WEDGED - EVERY))$" ||
        fail "the restart did not resume from step $((WEDGED - EVERY)): $(events "$j")"
    ls "$ck" | grep -q '\.tmp' && fail "a .tmp folder is left: $(ls "$ck")"
    $PY - "$ck/step_$WEDGED/manifest.json" <<'EOF' || fail "step_$WEDGED is not the restart's own"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["attempt"] == 2, m
EOF
    ;;
sigstop)
    write_spec 40 5
    interrupt 2 step_5 STOP 1
    leaves_running_within "$j" $HB "the frozen worker (heartbeat timeout)"
    wait_until 90 state_is "$j" JOB_STATE_SUCCEEDED || fail "job did not recover: $(ctl status "$j")"
    [ "$(job_field "$j" "j['restarts']")" = 1 ] || fail "expected one restart: $(ctl status "$j")"
    events "$j" | grep -q "no heartbeat" || fail "no heartbeat loss recorded: $(events "$j")"
    ;;
hang)
    write_spec 40 4
    j=$(submit 2) || fail "submit: $(cat submit.err)"
    ck=$(jobdir "$j")/checkpoints
    wait_until 20 started "$j" || fail "job did not start"
    wedge_ckpt "$j"
    leaves_running_within "$j" $HANG "the hang (hang timeout)"
    wait_until 60 state_is "$j" JOB_STATE_SUCCEEDED || fail "job did not recover: $(ctl status "$j")"
    events "$j" | grep -q "hang: no step progress" || fail "no hang recorded: $(events "$j")"
    events "$j" | grep -q "resuming from checkpoint step $((WEDGED - EVERY))$" ||
        fail "the restart did not resume from step $((WEDGED - EVERY)): $(events "$j")"
    grep -q "after its abort; killing it" e2d.log || fail "e2d did not kill the wedged worker"
    ls "$ck" | grep -q '\.tmp' && fail "a .tmp folder is left: $(ls "$ck")"
    ;;
damaged)
    write_spec 40 4
    interrupt 2 step_8 STOP 0 1
    ck=$(jobdir "$j")/checkpoints
    # The restarts resume from e2d's last committed checkpoint: step_8, or
    # a later one when the workers outran the poll before they froze.
    last=$(job_field "$j" "j['checkpoints'][-1]['step']")
    [ -n "$last" ] && [ "$last" -ge 8 ] && [ "$last" -lt "$STEPS" ] ||
        fail "last committed checkpoint '$last': $(ctl status "$j")"
    # One byte of its weights flipped (size unchanged), then both workers
    # killed: every restart must refuse to load it.
    $PY - "$ck/step_$last/model.safetensors" <<'EOF' || fail "corrupt"
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1, 2)
    b = f.read(1)
    f.seek(-1, 2)
    f.write(bytes([b[0] ^ 0x40]))
EOF
    kill -9 "$(worker_pid 0)" "$(worker_pid 1)"
    wait_until 90 state_is "$j" JOB_STATE_FAILED || fail "job did not fail: $(ctl status "$j")"
    # Every rank checks the files; whichever reports first ends the attempt,
    # so the refusal is in some rank's log of attempt 2 or in the job's
    # failure reason.
    { cat "$(jobdir "$j")"/attempt-2/rank-*.log 2>/dev/null; ctl status "$j"; } |
        grep -q "model.safetensors does not match its checksum" ||
        fail "attempt 2 did not refuse the damaged checkpoint: $(ctl status "$j")"
    grep -q "step $((last + 1))/" "$(jobdir "$j")"/attempt-[2-9]/rank-*.log &&
        fail "a rank trained on from the damaged checkpoint"
    ;;
two_to_one)
    write_spec 20 5
    ref=$(submit 2 --wait) || fail "uninterrupted job: $(cat submit.err)"
    # Both workers frozen right after the step 10 commit, then cancelled:
    # the grace runs out and e2d kills them (SIGTERM, then SIGKILL).
    interrupt 2 step_10 STOP 0 1
    ctl cancel "$j" --grace 1 >/dev/null || fail "cancel"
    wait_until 20 state_is "$j" JOB_STATE_CANCELLED || fail "not CANCELLED: $(ctl status "$j")"
    ctl status "$j" | grep -q "infrastructure 0 (restarts), user errors 0, cancellations 1" ||
        fail "e2ctl status does not show the cancellation: $(ctl status "$j")"
    wait_until 30 idle_workers 2 || fail "the local workers were not replaced: $(ctl workers)"
    last=$(ls "$(jobdir "$j")/checkpoints" | grep -v tmp | sed 's/step_//' | sort -n | tail -1)
    $PY - "$(jobdir "$j")/checkpoints/step_$last" <<'EOF' || fail "spec with resume_from"
import json, sys
s = json.load(open("spec.json"))
s["resume_from"] = sys.argv[1]
json.dump(s, open("spec.json", "w"))
EOF
    j1=$(submit 1 --wait) || fail "resumed 1-worker job: $(cat submit.err)"
    [ "$(job_field "$j1" "j['step']")" = 20 ] || fail "resumed job did not reach step 20"
    first=$(losses "$j1" | head -1 | cut -d' ' -f1)
    [ "$first" = $((last + 1)) ] || fail "resumed job started at step $first, not $((last + 1))"
    same_losses "$j1" "$ref" "$first"
    ;;
zero1)
    write_spec 20 10
    plain=$(submit 2 --wait) || fail "plain job: $(cat submit.err)"
    write_spec 20 10 ', "zero1": true'
    z=$(submit 2 --wait) || fail "zero1 job: $(cat submit.err)"
    same_final "$plain" "$z"
    losses "$plain" >lp.txt && losses "$z" >lz.txt || fail "losses"
    [ "$(wc -l <lz.txt)" = 20 ] || fail "the zero1 job logged $(wc -l <lz.txt) steps"
    cmp lp.txt lz.txt || fail "per-step losses differ with zero1: $(diff lp.txt lz.txt | head -4)"
    grep -q "ZeRO-1: this rank's shard" "$(jobdir "$z")/attempt-1/rank-1.log" ||
        fail "rank 1 does not report a ZeRO-1 shard"
    p0=$(optim_bytes "$plain" 0) p1=$(optim_bytes "$plain" 1)
    z0=$(optim_bytes "$z" 0) z1=$(optim_bytes "$z" 1)
    [ -n "$p0" ] && [ -n "$z0" ] && [ -n "$z1" ] || fail "no memory line: '$p0' '$z0' '$z1'"
    [ "$p0" = "$p1" ] && [ $((z0 + z1)) = "$p0" ] && [ "$z0" -lt "$p0" ] && [ "$z1" -lt "$p0" ] ||
        fail "optimizer bytes: plain $p0 $p1, zero1 $z0 $z1 (want two shards adding up to $p0)"
    ;;
elastic_three_to_two)
    # Long enough that attempt 2 still trains when agent-3 is thawed.
    GB=6 TOP=', "min_workers": 2'
    write_spec 300 5
    ref=$(submit 3 --wait) || fail "uninterrupted 3-worker job: $(cat submit.err)"
    elastic_interrupt
    wait_until 30 attempt_is "$j" 2 || fail "no attempt 2: $(ctl status "$j")"
    # The lost agent comes back while attempt 2 runs: drained, no rank.
    kill -CONT "$(cat agent-3.pid)"
    s=$(job_field "$j" "j['state']")
    [ "$s" = JOB_STATE_STARTING ] || [ "$s" = JOB_STATE_RUNNING ] ||
        fail "attempt 2 is $s when agent-3 comes back: $(ctl status "$j")"
    [ "$(job_field "$j" "j['world_size']")" = 2 ] || fail "world size not 2: $(ctl status "$j")"
    # The step it resumed from: the newest attempt 1 committed (attempt 2
    # may have committed more by now).
    ev=$(events "$j" | grep "^attempt 2 on ")
    echo "$ev" | grep -q "(elastic: world size 2 of num_workers 3, min_workers 2), resuming from checkpoint step [0-9]*$" ||
        fail "attempt 2 is not an elastic restart from a checkpoint: $(events "$j")"
    last=${ev##* }
    [ "$last" -ge 5 ] && [ "$last" -lt 300 ] || fail "attempt 2 resumed from step $last"
    grep -q "elastic restart: attempt 2 runs on 2 of 3 workers" e2d.log || fail "no elastic restart in e2d's log"
    ctl status "$j" | grep -q "Attempt:    2 on 2 of 3 workers" || fail "e2ctl status: $(ctl status "$j")"
    wait_until 30 agent_is agent-3 WORKER_STATE_IDLE || fail "agent-3 not back and idle: $(ctl workers --all)"
    grep -q "heartbeat again after being lost" e2d.log || fail "e2d's log does not say agent-3 is back"
    wait_until 120 state_is "$j" JOB_STATE_SUCCEEDED || fail "job did not succeed: $(ctl status "$j")"
    [ "$(job_field "$j" "j['attempt']")" = 2 ] && [ "$(job_field "$j" "j['restarts']")" = 1 ] &&
        [ "$(job_field "$j" "j['world_size']")" = 2 ] || fail "not one elastic restart: $(ctl status "$j")"
    [ -e "$(jobdir "$j")/attempt-2/rank-2.log" ] && fail "attempt 2 had a rank 2"
    grep -q "assigned $j attempt 2" agent-3.log && fail "agent-3 was given a rank of attempt 2"
    first=$(first_step "$j" 2)
    [ "$first" = $((last + 1)) ] || fail "attempt 2 started at step '$first', not $((last + 1))"
    same_losses "$j" "$ref"
    ;;
elastic_gang_waits)
    GB=6
    write_spec 40 5
    elastic_interrupt
    wait_until 20 reason_has "$j" "unschedulable: needs 3 cpu workers, 2 registered" ||
        fail "not waiting for 3 workers: $(ctl status "$j")"
    wait_until 20 idle_workers 2 || fail "the survivors are not idle: $(ctl workers)"
    state_is "$j" JOB_STATE_RESTARTING && [ "$(job_field "$j" "j['attempt']")" = 1 ] ||
        fail "the job did not wait: $(ctl status "$j")"
    kill -CONT "$(cat agent-3.pid)"
    wait_until 120 state_is "$j" JOB_STATE_SUCCEEDED || fail "job did not succeed: $(ctl status "$j")"
    [ "$(job_field "$j" "j['attempt']")" = 2 ] && [ "$(job_field "$j" "j['world_size']")" = 3 ] ||
        fail "not restarted on 3: $(ctl status "$j")"
    events "$j" | grep -q "resuming from checkpoint step $last$" ||
        fail "the restart did not resume from step $last: $(events "$j")"
    grep -q "step $STEPS/$STEPS" "$(jobdir "$j")/attempt-2/rank-2.log" || fail "rank 2 of attempt 2 did not finish"
    ;;
zero1_kill9)
    write_spec 40 5 ', "zero1": true'
    interrupt 2 step_10 KILL 1
    wait_until 60 state_is "$j" JOB_STATE_SUCCEEDED || fail "job did not succeed: $(ctl status "$j")"
    [ "$(job_field "$j" "j['restarts']")" = 1 ] || fail "expected one restart: $(ctl status "$j")"
    events "$j" | grep -q "resuming from checkpoint step" || fail "the restart did not resume from a checkpoint: $(events "$j")"
    ref=$(submit 2 --wait) || fail "uninterrupted job: $(cat submit.err)"
    [ "$(job_field "$ref" "j['restarts']")" = 0 ] || fail "the reference job restarted"
    same_final "$j" "$ref"
    same_losses "$j" "$ref"
    ;;
*)
    fail "unknown case"
    ;;
esac
# e2d stops its workers at SIGTERM; it must exit 0 and nothing may carry a
# sanitizer report (the ASan+UBSan build runs these tests too).
kill -TERM "$E2D_PID"
wait "$E2D_PID"
rc=$?
E2D_PID=
[ $rc = 0 ] || fail "e2d exited with status $rc"
if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" e2d.log state/workers/*.log \
    agent-*.log 2>/dev/null; then
    fail "sanitizer report"
fi
exit 0
