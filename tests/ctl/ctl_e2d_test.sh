#!/bin/bash
# ctl_e2d_test.sh E2CTL E2D SRCDIR CASE: e2ctl and the Python dashboard
# example against the real e2d (temp state dir, its default unix socket,
# no workers: jobs stay PENDING until cancelled).
set -u
E2CTL=$1
E2D=$2
SRC=$3
CASE=$4
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/e2-ctl-e2d-XXXXXX)
export E2_STATE_DIR=$tmp/state
unset E2_SERVER
mkdir -p "$E2_STATE_DIR"
"$E2D" --state-dir "$E2_STATE_DIR" > "$tmp/e2d.log" 2>&1 &
e2d=$!
cleanup() {
  kill -TERM "$e2d" 2> /dev/null
  wait "$e2d" 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 200); do
  [ -S "$E2_STATE_DIR/e2d.sock" ] && break
  sleep 0.05
done
[ -S "$E2_STATE_DIR/e2d.sock" ] || { echo "FAIL: e2d did not start"; cat "$tmp/e2d.log"; exit 1; }

cat > "$tmp/job.json" << 'JSON'
{"name": "tiny", "labels": {"team": "a"},
 "model": {"config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "intermediate_size": 128, "vocab_size": 256, "max_position_embeddings": 64}},
 "data": {"train_shards": ["train.bin"]},
 "train": {"steps": 5}}
JSON
fail() { echo "FAIL: $*"; echo "--- stdout"; cat "$tmp/out"; echo "--- stderr"; cat "$tmp/err"; echo "--- e2d"; tail -20 "$tmp/e2d.log"; exit 1; }
run() {
  local want=$1
  shift
  "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  [ "$rc" = "$want" ] || fail "$* exited $rc, want $want"
}
json_get() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

case $CASE in
submit_status_list)
  run 0 "$E2CTL" submit "$tmp/job.json"
  [ "$(cat "$tmp/out")" = "j-000001 submitted (PENDING)" ] || fail "submit output"
  run 0 "$E2CTL" status j-000001 --json
  [ "$(json_get "d['job']['state'], d['job']['spec']['name'], d['job']['spec']['data']['train_shards'][0]" < "$tmp/out")" = \
    "JOB_STATE_PENDING tiny $tmp/train.bin" ] || fail "status --json (relative shard resolved against the spec's folder)"
  run 0 "$E2CTL" list --state pending --label team=a
  grep -q "^j-000001 *tiny *PENDING *0/5" "$tmp/out" || fail "list"
  run 0 "$E2CTL" list --state running --json
  [ "$(json_get "len(d.get('jobs', []))" < "$tmp/out")" = 0 ] || fail "list --state running"
  ;;
request_id_idempotent)
  run 0 "$E2CTL" submit "$tmp/job.json" --request-id same-1
  run 0 "$E2CTL" submit "$tmp/job.json" --request-id same-1
  [ "$(cat "$tmp/out")" = "j-000001 already submitted with request id same-1 (PENDING)" ] || fail "second submit"
  run 0 "$E2CTL" list --json
  [ "$(json_get "len(d['jobs'])" < "$tmp/out")" = 1 ] || fail "one job expected"
  ;;
invalid_spec_rejected)
  run 3 "$E2CTL" submit "$tmp/job.json" --set augment.g_max=0
  [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q "^e2ctl: spec.augment.g_max" "$tmp/err" || fail "field not named"
  ;;
cancel_pending_then_watch)
  run 0 "$E2CTL" submit "$tmp/job.json"
  run 0 "$E2CTL" cancel j-000001 --grace 1
  [ "$(cat "$tmp/out")" = "j-000001 CANCELLED" ] || fail "cancel output"
  run 2 "$E2CTL" watch j-000001
  grep -q "^j-000001 CANCELLED" "$tmp/out" || fail "watch of a cancelled job"
  ;;
interrupted_wait_leaves_job)
  "$E2CTL" submit "$tmp/job.json" --wait > "$tmp/out" 2> "$tmp/err" &
  ctl=$!
  for _ in $(seq 200); do grep -q "PENDING: submitted" "$tmp/out" 2> /dev/null && break; sleep 0.05; done
  kill -INT "$ctl"
  wait "$ctl"
  rc=$?
  [ "$rc" = 130 ] || fail "interrupted --wait exited $rc, want 130"
  grep -q "^e2ctl: stopped following j-000001; it keeps running (e2ctl watch j-000001)" "$tmp/err" || fail "no hint"
  run 0 "$E2CTL" status j-000001 --json
  [ "$(json_get "d['job']['state']" < "$tmp/out")" = JOB_STATE_PENDING ] || fail "job changed"
  ;;
unknown_job)
  run 3 "$E2CTL" status j-000099
  [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q "j-000099" "$tmp/err" || fail "NOT_FOUND line"
  ;;
workers_empty)
  run 0 "$E2CTL" workers
  [ "$(wc -l < "$tmp/out")" = 1 ] || fail "header only expected"
  ;;
python_example_follows_until_cancelled)
  $PY "$SRC/examples/dashboard_submit.py" "$tmp/job.json" > "$tmp/py.out" 2> "$tmp/py.err" &
  py=$!
  for _ in $(seq 200); do grep -q "j-000001 submitted" "$tmp/py.out" 2> /dev/null && break; sleep 0.05; done
  run 0 "$E2CTL" cancel j-000001
  wait "$py"
  rc=$?
  cp "$tmp/py.out" "$tmp/out"
  cp "$tmp/py.err" "$tmp/err"
  [ "$rc" = 2 ] || fail "python example exited $rc, want 2 (CANCELLED)"
  grep -q "^j-000001 CANCELLED" "$tmp/out" || fail "python example did not see CANCELLED"
  ;;
python_example_rejected)
  printf '{"name": "tiny", "augment": {"g_max": 0}}\n' > "$tmp/bad.json"
  run 3 $PY "$SRC/examples/dashboard_submit.py" "$tmp/bad.json"
  grep -q "spec" "$tmp/err" || fail "python example: no message"
  ;;
*) echo "no case $CASE"; exit 2 ;;
esac
echo "ok: $CASE"
