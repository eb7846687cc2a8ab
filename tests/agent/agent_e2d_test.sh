#!/bin/sh
# agent_e2d_test.sh -- the agent end to end: a real e2d and one real
# `e2worker --coordinator` on a unix socket in a temp dir, jobs submitted
# with e2ctl. Usage: agent_e2d_test.sh E2D E2WORKER E2CTL CASE
# Cases:
#   succeeds        a tiny job reaches SUCCEEDED with committed checkpoints,
#                   per-step metrics, evaluation and the rank's log
#   cancel          cancel of a running job: CANCELLED within the grace, the
#                   rank's log stops growing, the worker lives on, idle
#   e2d_restart     e2d killed (-9) and restarted mid-job: the same worker
#                   process reconnects and the job still succeeds
#   worker_sigterm  SIGTERM stops the worker within seconds, exit status 0
#   two_ranks       a 2-rank job (Gloo through e2d's rendezvous) succeeds
#                   and trains the same numbers as the 1-rank job
#   two_ranks_cancel  cancel of a 2-rank job: both ranks stop at the same
#                   step boundary and report CANCELLED within the grace
#   user_error      data gone by the time the rank starts: FAILED as a user
#                   error, never retried; the worker lives on, idle
#   bad_shard_user_error  a training shard that is not a shard (bad magic):
#                   FAILED as a user error at once, never retried
#   bad_eval_shard_before_training  an eval shard with tokens outside the
#                   vocabulary: FAILED as a user error before step 1
#   model_too_big_user_error  a model larger than the worker's memory:
#                   FAILED as a user error, never retried
#   rank_dies       kill -9 of one rank's worker: the other rank's
#                   collective fails at once, it reports FAILED_INFRA and
#                   lives on; the job leaves RUNNING
#   finetune_hf     a job whose model is another job's committed checkpoint
#                   (model.hf_dir) resolves on the worker as `e2worker run`
#                   resolves it and reaches SUCCEEDED
set -u
. "$(dirname "$0")/../lib.sh"
E2D=$1
E2W=$2
E2CTL=$3
CASE=$4
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-agent-e2e-XXXXXX")
SOCK=unix:$TMP/e2d.sock
E2D_PID=
W_PID=
W2_PID=

cleanup() {
    [ -n "$W_PID" ] && kill -9 "$W_PID" 2>/dev/null
    [ -n "$W2_PID" ] && kill -9 "$W2_PID" 2>/dev/null
    [ -n "$E2D_PID" ] && kill -9 "$E2D_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
cd "$TMP" || exit 1

fail() {
    echo "FAIL ($CASE): $*" >&2
    for f in e2d.log worker.err worker2.err; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

start_e2d() {
    "$E2D" --state-dir "$TMP/state" --listen "$SOCK" --heartbeat-timeout "${HB_TIMEOUT:-10}" ${E2D_EXTRA:-} >>e2d.log 2>&1 &
    E2D_PID=$!
    i=0
    while [ ! -S "$TMP/e2d.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    [ -S "$TMP/e2d.sock" ] || fail "e2d did not listen"
}

start_worker() {
    "$E2W" --coordinator "$SOCK" --name agent-test >worker.out 2>worker.err &
    W_PID=$!
}

start_worker2() {
    "$E2W" --coordinator "$SOCK" --name agent-test-2 >worker2.out 2>worker2.err &
    W2_PID=$!
}

ctl() { "$E2CTL" --server "$SOCK" "$@"; }

# jq-like: json_get EXPR < file (d is the parsed document)
json_get() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

job_field() { # job_field JOB EXPR (j is the job)
    ctl status "$1" --json 2>/dev/null | json_get "(lambda j: $2)(d['job'])" 2>/dev/null
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s.
state_is() { [ "$(job_field "$1" "j['state']")" = "$2" ]; }
step_at_least() { s=$(job_field "$1" "j.get('step', 0)"); [ -n "$s" ] && [ "$s" -ge "$2" ]; }

write_spec() { # $1 = steps, $2 = checkpoint every, $3 = eval windows (default 32, 128)
    cat >spec.json <<EOF
{"name": "agent-tiny",
 "model": {"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
   "max_position_embeddings": 32}},
 "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": $1, "global_batch": 4, "micro_batch": 2, "lr": 0.003},
 "checkpoint": {"every": $2, "keep_last": 5},
 "eval": {"windows": [${3:-32, 128}], "max_tokens": 300}}
EOF
}

make_data
[ "$CASE" = rank_dies ] && HB_TIMEOUT=3
# e2d's own memory check (cpu-mem) would refuse that job at submit; this
# case is about the worker finding out.
[ "$CASE" = model_too_big_user_error ] && E2D_EXTRA="--cpu-mem 1000000"
start_e2d
case $CASE in
user_error | bad_shard_user_error | bad_eval_shard_before_training | model_too_big_user_error) ;;
*) start_worker ;;
esac

# expect_user_failure WHAT NEEDLE: the job FAILED once as a user error (no
# restart), its reason holds NEEDLE, and it stays FAILED.
expect_user_failure() {
    wait_until 30 state_is j-000001 JOB_STATE_FAILED || fail "$1: job did not fail: $(ctl status j-000001)"
    [ "$(job_field j-000001 "(j['user_errors'], j['restarts'], j['failure']['user_error'])")" = "(1, 0, True)" ] ||
        fail "$1: not counted as one user error: $(ctl status j-000001)"
    job_field j-000001 "j['reason']" | grep -q "$2" || fail "$1: reason lacks '$2': $(ctl status j-000001)"
    sleep 1
    state_is j-000001 JOB_STATE_FAILED || fail "$1: a user error was retried"
    kill -0 "$W_PID" 2>/dev/null || fail "$1: the worker process died"
}

case $CASE in
succeeds)
    write_spec 6 2
    ctl submit spec.json --wait >submit.out 2>submit.err || fail "submit --wait exit $?: $(cat submit.err)"
    ctl status j-000001 --json >status.json || fail "status"
    $PY - "$TMP/state/jobs/j-000001" <<'EOF' || fail "job record: $(cat status.json)"
import json, os, sys
jobdir = sys.argv[1]
j = json.load(open("status.json"))["job"]
assert j["state"] == "JOB_STATE_SUCCEEDED", j["state"]
assert j["step"] == 6, j["step"]
steps = [c["step"] for c in j["checkpoints"]]
assert 6 in steps, steps
for s in steps:
    assert os.path.isdir(os.path.join(jobdir, "checkpoints", "step_%d" % s)), s
assert not os.path.exists(os.path.join(jobdir, "checkpoints", "step_6.tmp"))
assert os.path.isfile(os.path.join(jobdir, "eval.json"))
EOF
    ctl metrics j-000001 --json >metrics.json || fail "metrics"
    $PY - <<'EOF' || fail "metrics: $(cat metrics.json)"
import json, math
d = json.load(open("metrics.json"))
pts = d.get("points") or d.get("metrics") or []
steps = [p["step"] for p in pts]
assert steps and steps[-1] == 6, steps
assert all(math.isfinite(p["loss"]) and p["loss"] > 0 for p in pts), pts
ev = d.get("eval") or []
assert [e["window"] for e in ev] == [32, 128], ev
assert all(e["perplexity"] > 1 for e in ev), ev
EOF
    log=state/jobs/j-000001/attempt-1/rank-0.log
    grep -q "step 6/6" "$log" || fail "rank log lacks the last step: $(cat "$log")"
    grep -q "eval final window 128" "$log" || fail "rank log lacks the evaluation"
    ;;
finetune_hf)
    write_spec 2 2
    ctl submit spec.json --wait >/dev/null 2>submit.err || fail "first job: $(cat submit.err)"
    ck="$TMP/state/jobs/j-000001/checkpoints/step_2"
    [ -f "$ck/config.json" ] || fail "no committed HF checkpoint at $ck"
    $PY - "$ck" <<'PYEOF' || fail "spec"
import json, sys
s = json.load(open("spec.json"))
s["name"] = "agent-ft"
s["model"] = {"hf_dir": sys.argv[1]}
json.dump(s, open("spec.json", "w"))
PYEOF
    ctl submit spec.json --wait >/dev/null 2>submit.err ||
        fail "fine-tune from hf_dir: $(cat submit.err); $(ctl status j-000002)"
    state_is j-000002 JOB_STATE_SUCCEEDED || fail "fine-tune: $(ctl status j-000002)"
    log=state/jobs/j-000002/attempt-1/rank-0.log
    grep -q "step 2/2" "$log" || fail "the fine-tune did not train: $(cat "$log")"
    ;;
cancel)
    write_spec 100000 0
    ctl submit spec.json >/dev/null || fail "submit"
    wait_until 20 step_at_least j-000001 3 || fail "job did not train"
    ctl cancel j-000001 --grace 10 >/dev/null || fail "cancel"
    t0=$(date +%s)
    wait_until 15 state_is j-000001 JOB_STATE_CANCELLED || fail "not CANCELLED within grace + 5 s"
    [ $(($(date +%s) - t0)) -le 10 ] || fail "cancel took longer than the grace"
    kill -0 "$W_PID" 2>/dev/null || fail "the worker process died"
    log=state/jobs/j-000001/attempt-1/rank-0.log
    grep -q "cancelled at step" "$log" || fail "rank log does not say cancelled: $(tail -3 "$log")"
    n1=$(wc -l <"$log")
    sleep 1.5
    n2=$(wc -l <"$log")
    [ "$n1" = "$n2" ] || fail "the rank log still grows after the cancel ($n1 -> $n2 lines)"
    idle() { [ "$(ctl workers --json | json_get "[w['state'] for w in d['workers']]")" = "['WORKER_STATE_IDLE']" ]; }
    wait_until 5 idle || fail "worker not idle after the cancel: $(ctl workers)"
    grep -q "ended: CANCELLED" worker.err || fail "worker did not report CANCELLED"
    ;;
e2d_restart)
    # Long enough (seconds) that the poll below sees step 3 well before
    # the job could end, even on a fast machine; a checkpoint every 100
    # steps, since 100 fsynced commits take minutes on a loaded disk.
    write_spec 1000 100 32
    ctl submit spec.json >/dev/null || fail "submit"
    wait_until 20 step_at_least j-000001 3 || fail "job did not train"
    # The worker is frozen while e2d is killed, so that the kill lands
    # mid-job however fast the machine trains.
    kill -STOP "$W_PID"
    state_is j-000001 JOB_STATE_RUNNING ||
        { kill -CONT "$W_PID"; fail "the job ended before e2d was killed: $(ctl status j-000001)"; }
    kill -9 "$E2D_PID"
    wait "$E2D_PID" 2>/dev/null
    E2D_PID=
    kill -CONT "$W_PID"
    sleep 1
    kill -0 "$W_PID" 2>/dev/null || fail "the worker died with e2d"
    start_e2d
    wait_until 400 state_is j-000001 JOB_STATE_SUCCEEDED || fail "job did not succeed after the restart: $(ctl status j-000001)"
    kill -0 "$W_PID" 2>/dev/null || fail "the worker process did not survive"
    grep -q "unreachable" worker.err || fail "worker never noticed e2d was gone"
    grep -q "ended: SUCCEEDED" worker.err || fail "worker did not finish its rank"
    [ "$(job_field j-000001 "j['step']")" = 1000 ] || fail "job step is not 1000"
    ;;
worker_sigterm)
    write_spec 100000 0
    ctl submit spec.json >/dev/null || fail "submit"
    wait_until 20 step_at_least j-000001 2 || fail "job did not train"
    kill -TERM "$W_PID"
    gone() { ! kill -0 "$W_PID" 2>/dev/null; }
    wait_until 10 gone || fail "worker still running 10 s after SIGTERM"
    wait "$W_PID"
    rc=$?
    W_PID=
    [ $rc = 0 ] || fail "worker exit status $rc after SIGTERM"
    grep -q "SIGTERM" worker.err || fail "worker did not say why it stopped"
    grep -q "ended: FAILED_INFRA" worker.err || fail "worker did not report its rank as an infrastructure stop"
    ;;
two_ranks)
    start_worker2
    write_spec 6 3
    ctl submit spec.json --set num_workers=2 --wait >/dev/null 2>submit.err || fail "2-rank job: $(cat submit.err)"
    ctl submit spec.json --set num_workers=1 --wait >/dev/null 2>submit.err || fail "1-rank job: $(cat submit.err)"
    for r in 0 1; do
        grep -q "step 6/6" state/jobs/j-000001/attempt-1/rank-$r.log || fail "rank $r log lacks step 6"
    done
    ctl metrics j-000001 --json >m2.json && ctl metrics j-000002 --json >m1.json || fail "metrics"
    $PY - <<'EOF' || fail "2 ranks and 1 rank disagree"
import json
def last(f):
    d = json.load(open(f))
    pts = d.get("points") or d.get("metrics") or []
    return pts[-1], [e["perplexity"] for e in d.get("eval") or []]
(p2, e2), (p1, e1) = last("m2.json"), last("m1.json")
assert p2["step"] == p1["step"] == 6, (p2, p1)
assert abs(p2["loss"] - p1["loss"]) <= 1e-4 * p1["loss"], (p2["loss"], p1["loss"])
assert len(e2) == len(e1) == 2 and all(abs(a - b) <= 1e-3 * b for a, b in zip(e2, e1)), (e2, e1)
EOF
    ;;
two_ranks_cancel)
    start_worker2
    write_spec 100000 0
    ctl submit spec.json --set num_workers=2 >/dev/null || fail "submit"
    wait_until 30 step_at_least j-000001 2 || fail "job did not train"
    ctl cancel j-000001 --grace 10 >/dev/null || fail "cancel"
    wait_until 15 state_is j-000001 JOB_STATE_CANCELLED || fail "not CANCELLED within grace + 5 s"
    for f in worker.err worker2.err; do
        grep -q "ended: CANCELLED" $f || fail "$f: rank did not report CANCELLED"
    done
    s0=$(grep -o "cancelled at step [0-9]*" state/jobs/j-000001/attempt-1/rank-0.log)
    s1=$(grep -o "cancelled at step [0-9]*" state/jobs/j-000001/attempt-1/rank-1.log)
    [ -n "$s0" ] && [ "$s0" = "$s1" ] || fail "ranks stopped at different steps: '$s0' / '$s1'"
    ;;
user_error)
    write_spec 6 0
    ctl submit spec.json >/dev/null || fail "submit"
    mkdir gone && mv data_train_*.bin gone/
    start_worker
    wait_until 20 state_is j-000001 JOB_STATE_FAILED || fail "job did not fail: $(ctl status j-000001)"
    [ "$(job_field j-000001 "(j['user_errors'], j['restarts'], j['failure']['user_error'])")" = "(1, 0, True)" ] ||
        fail "not counted as one user error: $(ctl status j-000001)"
    job_field j-000001 "j['reason']" | grep -q "train_shards" || fail "reason does not name the field"
    sleep 1
    state_is j-000001 JOB_STATE_FAILED || fail "a user error was retried"
    kill -0 "$W_PID" 2>/dev/null || fail "the worker process died"
    ;;
bad_shard_user_error)
    write_spec 6 0
    ctl submit spec.json >/dev/null || fail "submit"
    for f in data_train_*.bin; do printf 'ACBA not a token shard %01100d' 0 >"$f"; done
    start_worker
    expect_user_failure "bad shard" "bad magic"
    job_field j-000001 "j['reason']" | grep -q "1094861633" && fail "the reason echoes the file's bytes"
    ;;
bad_eval_shard_before_training)
    write_spec 100000 0
    ctl submit spec.json >/dev/null || fail "submit"
    # One token (65535) outside vocab_size 257, in a valid uint16 shard.
    for f in data_val_*.bin; do
        $PY -c "import struct,sys; open(sys.argv[1],'wb').write(struct.pack('<256i',20240520,1,4,*[0]*253)+struct.pack('<4H',1,2,65535,3))" "$f"
    done
    start_worker
    expect_user_failure "bad eval shard" "outside the model's vocabulary"
    [ "$(job_field j-000001 "j.get('step', 0)")" = 0 ] || fail "training ran before the eval shards were checked"
    ;;
model_too_big_user_error)
    write_spec 6 0
    # ~60 TB of parameters (under e2d's --cpu-mem above): the worker's
    # allocation fails at once.
    $PY - <<'PYEOF' || fail "spec"
import json
s = json.load(open("spec.json"))
s["model"]["config"].update(hidden_size=65536, num_hidden_layers=64, num_attention_heads=512,
                            num_key_value_heads=512, intermediate_size=1048576)
json.dump(s, open("spec.json", "w"))
PYEOF
    ctl submit spec.json >/dev/null || fail "submit"
    start_worker
    expect_user_failure "model too big" "does not fit this worker's memory"
    ;;
rank_dies)
    start_worker2
    write_spec 100000 0
    ctl submit spec.json --set num_workers=2 >/dev/null || fail "submit"
    wait_until 30 step_at_least j-000001 2 || fail "job did not train"
    if grep -q "rank 1/2" worker2.err; then
        victim=$W2_PID survivor=$W_PID log=worker.err
    else
        victim=$W_PID survivor=$W2_PID log=worker2.err
    fi
    kill -9 "$victim"
    t0=$(date +%s)
    ended() { grep -q "ended: FAILED_INFRA" "$log"; }
    wait_until 15 ended || fail "the surviving rank did not stop"
    [ $(($(date +%s) - t0)) -le 10 ] || fail "the surviving rank took more than 10 s to stop"
    kill -0 "$survivor" 2>/dev/null || fail "the surviving worker process died"
    left() { s=$(job_field j-000001 "j['state']"); [ -n "$s" ] && [ "$s" != JOB_STATE_RUNNING ]; }
    wait_until 15 left || fail "job still RUNNING after losing a rank"
    ;;
*)
    fail "unknown case"
    ;;
esac
exit 0
