#!/bin/bash
# ctl_e2d_run_test.sh E2CTL E2D E2WORKER SRCDIR CASE: real jobs through the
# whole control plane: e2d with one local CPU worker (e2worker agent mode)
# on a temp state dir, a tiny Llama on generated text, driven by e2ctl and
# by the Python dashboard example.
set -u
E2CTL=$1
E2D=$2
E2W=$3
SRC=$4
CASE=$5
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/e2-ctl-run-XXXXXX)
export E2_STATE_DIR=$tmp/state
unset E2_SERVER
mkdir -p "$E2_STATE_DIR"
cd "$tmp" || exit 1
for i in $(seq 200); do
  echo "The quick brown fox number $i jumps over the lazy dog. A journey of a thousand miles begins with one step."
done > text.txt
"$E2W" prep --out data --val-fraction 0.1 text.txt > /dev/null || { echo "FAIL: prep"; exit 1; }
spec() { # spec STEPS
  cat << JSON
{"name": "tiny",
 "model": {"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
   "max_position_embeddings": 32}},
 "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": $1, "global_batch": 4, "micro_batch": 2, "lr": 0.003},
 "checkpoint": {"every": 2, "keep_last": 5},
 "eval": {"windows": [32, 128], "max_tokens": 300}}
JSON
}
spec 4 > job.json
spec 100000 > long.json

"$E2D" --local-workers 1 --worker-bin "$E2W" > e2d.log 2>&1 &
e2d=$!
cleanup() {
  kill -TERM "$e2d" 2> /dev/null
  wait "$e2d" 2> /dev/null
  cd / && rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 200); do
  [ -S "$E2_STATE_DIR/e2d.sock" ] && break
  sleep 0.05
done

fail() { echo "FAIL: $*"; echo "--- stdout"; cat out; echo "--- stderr"; cat err; echo "--- e2d"; tail -20 e2d.log; exit 1; }
run() {
  local want=$1
  shift
  timeout 60 "$@" > out 2> err
  local rc=$?
  [ "$rc" = "$want" ] || fail "$* exited $rc, want $want"
}
json_get() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

case $CASE in
submit_wait_succeeded)
  run 0 "$E2CTL" submit job.json --wait
  grep -q "^j-000001 SUCCEEDED" out || fail "no SUCCEEDED line"
  run 0 "$E2CTL" status j-000001 --json
  [ "$(json_get "d['job']['state'], d['job']['step'], [c['step'] for c in d['job']['checkpoints']]" < out)" = \
    "JOB_STATE_SUCCEEDED 4 [2, 4]" ] || fail "status: state, step, checkpoints"
  run 0 "$E2CTL" metrics j-000001 --json
  [ "$(json_get "max(p['step'] for p in d['points'])" < out)" = 4 ] || fail "metrics"
  run 0 "$E2CTL" eval j-000001
  grep -q "| *128 *|" out || fail "eval table without window 128"
  run 0 "$E2CTL" logs j-000001
  grep -q "step 4/4" out || fail "logs"
  ;;
python_example_succeeded)
  run 0 $PY "$SRC/examples/dashboard_submit.py" job.json
  grep -q "^j-000001 submitted" out || fail "python submit"
  grep -q "^j-000001 SUCCEEDED" out || fail "python final state"
  ;;
cancel_running)
  run 0 "$E2CTL" submit long.json
  for _ in $(seq 300); do
    "$E2CTL" status j-000001 --json 2> /dev/null | grep -q JOB_STATE_RUNNING && break
    sleep 0.1
  done
  timeout 60 "$E2CTL" logs j-000001 -f > follow.out 2> follow.err &
  follower=$!
  run 0 "$E2CTL" cancel j-000001 --grace 2
  run 2 "$E2CTL" watch j-000001
  grep -q "^j-000001 CANCELLED" out || fail "watch did not end CANCELLED"
  wait "$follower"
  rc=$?
  cp follow.out out
  cp follow.err err
  [ "$rc" = 0 ] || fail "logs -f exited $rc after the attempt ended"
  grep -q "^step 1/100000" out || fail "logs -f showed no training line"
  ;;
*) echo "no case $CASE"; exit 2 ;;
esac
echo "ok: $CASE"
