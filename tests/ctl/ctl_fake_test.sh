#!/bin/bash
# ctl_fake_test.sh E2CTL FAKE SRCDIR CASE: e2ctl (and the Python dashboard
# example) end to end over a unix socket against fake_coordinator, a
# stand-in e2.v1.Coordinator whose jobs succeed, fail or are cancelled by
# spec name (see fake_coordinator.c).
set -u
E2CTL=$1
FAKE=$2
SRC=$3
CASE=$4
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/e2-ctl-fake-XXXXXX)
export E2_SERVER="unix:$tmp/e2d.sock"
"$FAKE" "$E2_SERVER" > "$tmp/fake.out" 2> "$tmp/fake.err" &
fake=$!
cleanup() {
  kill -TERM "$fake" 2> /dev/null
  wait "$fake" 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 400); do
  grep -q ready "$tmp/fake.out" 2> /dev/null && break
  sleep 0.05
done
grep -q ready "$tmp/fake.out" || { echo "FAIL: fake coordinator did not start"; cat "$tmp/fake.err"; exit 1; }

spec() { # spec NAME [EXTRA JSON FIELDS]
  printf '{"name": "%s", "train": {"steps": 4}, "labels": {"team": "%s"}%s}\n' \
    "$1" "${2:-a}" "${3:-}" > "$tmp/$1.json"
  echo "$tmp/$1.json"
}
fail() { echo "FAIL: $*"; echo "--- stdout"; cat "$tmp/out" 2> /dev/null; echo "--- stderr"; cat "$tmp/err" 2> /dev/null; exit 1; }
run() { # run WANT_RC CMD...: stdout in $tmp/out, stderr in $tmp/err
  local want=$1
  shift
  "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  [ "$rc" = "$want" ] || fail "$* exited $rc, want $want"
}
json_get() { # json_get PYTHON-EXPR < json: evaluates EXPR with d = the parsed JSON
  $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

case $CASE in
submit_wait_succeeded)
  run 0 "$E2CTL" submit "$(spec ok)" --wait
  grep -q "^j-000001 submitted (PENDING)" "$tmp/out" || fail "no submitted line"
  grep -q "j-000001 RUNNING: assigned to w-1" "$tmp/out" || fail "no RUNNING line"
  grep -q "j-000001 SUCCEEDED: training and evaluation finished" "$tmp/out" || fail "no SUCCEEDED line"
  ;;
submit_wait_failed)
  run 1 "$E2CTL" submit "$(spec fail)" --wait
  grep -q "FAILED: rank 0 exited with code 2" "$tmp/out" || fail "no FAILED line"
  ;;
submit_wait_cancelled)
  run 2 "$E2CTL" submit "$(spec cancel)" --wait
  grep -q "CANCELLED" "$tmp/out" || fail "no CANCELLED line"
  ;;
server_error_passed_through)
  run 3 "$E2CTL" submit "$(spec ok)" --set augment.g_max=0
  [ "$(cat "$tmp/err")" = "e2ctl: spec.augment.g_max must be in [1, 1024] (got 0)" ] || fail "message not passed through"
  [ -s "$tmp/out" ] && fail "stdout not empty"
  ;;
request_id_idempotent)
  run 0 "$E2CTL" submit "$(spec ok)" --request-id r-1
  grep -q "^j-000001 submitted" "$tmp/out" || fail "first submit"
  run 0 "$E2CTL" submit "$(spec ok)" --request-id r-1
  grep -q "^j-000001 already submitted with request id r-1" "$tmp/out" || fail "second submit made a new job"
  run 0 "$E2CTL" submit "$(spec ok)" --request-id r-2
  grep -q "^j-000002 submitted" "$tmp/out" || fail "other request id"
  ;;
status_json)
  run 0 "$E2CTL" submit "$(spec ok)"
  run 0 "$E2CTL" status j-000001 --json
  [ "$(json_get "d['job']['id'], d['job']['state'], d['job']['spec']['name']" < "$tmp/out")" = \
    "j-000001 JOB_STATE_PENDING ok" ] || fail "status --json"
  run 0 "$E2CTL" status j-000001
  grep -q "^State: *PENDING" "$tmp/out" || fail "human status"
  ;;
status_escapes_control_chars)
  # A label value with C1 controls (U+009B is a one-character CSI on many
  # terminals) reaches the table escaped, never as raw bytes.
  spec ok '\u009b31mred\u0085x' > /dev/null
  run 0 "$E2CTL" submit "$tmp/ok.json"
  run 0 "$E2CTL" status j-000001
  grep -q 'team=\\x9b31mred\\x85x' "$tmp/out" || fail "label not escaped"
  LC_ALL=C grep -q $'\xc2[\x80-\x9f]' "$tmp/out" && fail "raw C1 bytes in the output"
  run 0 "$E2CTL" status j-000001 --json
  [ "$(json_get "d['job']['spec']['labels']['team'] == '\u009b31mred\u0085x'" < "$tmp/out")" = True ] ||
    fail "--json changed the value"
  ;;
status_not_found)
  run 3 "$E2CTL" status j-999999
  [ "$(cat "$tmp/err")" = "e2ctl: job j-999999 not found" ] || fail "NOT_FOUND message"
  ;;
set_override_reaches_server)
  run 0 "$E2CTL" submit "$(spec ok)" --set train.steps=7 --set labels.team=z
  run 0 "$E2CTL" status j-000001 --json
  [ "$(json_get "d['job']['spec']['train']['steps'], d['job']['total_steps'], d['job']['spec']['labels']['team']" < "$tmp/out")" = "7 7 z" ] ||
    fail "--set did not reach the server"
  ;;
list_filters)
  run 0 "$E2CTL" submit "$(spec one a)"
  run 0 "$E2CTL" submit "$(spec two b)"
  run 0 "$E2CTL" submit "$(spec three a)" --wait
  run 0 "$E2CTL" list --json
  [ "$(json_get "' '.join(j['id'] for j in d['jobs'])" < "$tmp/out")" = "j-000003 j-000002 j-000001" ] || fail "list order"
  run 0 "$E2CTL" list --label team=a --json
  [ "$(json_get "' '.join(j['id'] for j in d['jobs'])" < "$tmp/out")" = "j-000003 j-000001" ] || fail "label filter"
  run 0 "$E2CTL" list --state succeeded
  [ "$(wc -l < "$tmp/out")" = 2 ] && grep -q "^j-000003 *three *SUCCEEDED" "$tmp/out" || fail "state filter"
  ;;
cancel_pending)
  run 0 "$E2CTL" submit "$(spec ok)"
  run 0 "$E2CTL" cancel j-000001 --grace 5
  [ "$(cat "$tmp/out")" = "j-000001 CANCELLED" ] || fail "cancel output"
  run 3 "$E2CTL" cancel j-000404
  ;;
logs_prefix_ranks)
  run 0 "$E2CTL" submit "$(spec ok a ', "num_workers": 2')"
  run 0 "$E2CTL" logs j-000001
  [ "$(cat "$tmp/out")" = "$(printf '[rank 0] rank 0 line 1\n[rank 0] rank 0 line 2\n[rank 1] rank 1 line 1\n[rank 1] rank 1 line 2')" ] || fail "logs of all ranks"
  run 0 "$E2CTL" logs j-000001 --rank 1
  [ "$(cat "$tmp/out")" = "$(printf 'rank 1 line 1\nrank 1 line 2')" ] || fail "logs --rank 1"
  ;;
workers)
  run 0 "$E2CTL" workers
  grep -q "^w-1 *fakehost *cpu:0 *IDLE" "$tmp/out" || fail "workers table"
  run 0 "$E2CTL" workers --json
  [ "$(json_get "d['workers'][0]['pid']" < "$tmp/out")" = 4242 ] || fail "workers --json"
  ;;
metrics)
  run 0 "$E2CTL" submit "$(spec ok)"
  run 0 "$E2CTL" metrics j-000001
  [ "$(grep -c '^ *[0-9]' "$tmp/out")" = 3 ] || fail "metrics rows"
  run 0 "$E2CTL" metrics j-000001 --json
  [ "$(json_get "[p['loss'] for p in d['points']]" < "$tmp/out")" = "[4.0, 3.0, 2.0]" ] || fail "metrics --json"
  ;;
eval)
  run 0 "$E2CTL" submit "$(spec ok)"
  run 3 "$E2CTL" eval j-000001
  grep -q "has no evaluation results (state PENDING)" "$tmp/err" || fail "eval before the end"
  run 0 "$E2CTL" watch j-000001
  run 0 "$E2CTL" eval j-000001
  grep -q "^| 256 | 11.25 |" "$tmp/out" || fail "eval table"
  ;;
watch_json)
  run 0 "$E2CTL" submit "$(spec ok)"
  run 0 "$E2CTL" watch j-000001 --json
  # SNAPSHOT, RUNNING, 4 progress events, SUCCEEDED: one JSON object per line
  [ "$(wc -l < "$tmp/out")" = 7 ] || fail "event count"
  [ "$($PY -c "import json,sys; print(','.join(json.loads(l)['kind'][15:] for l in sys.stdin))" < "$tmp/out")" = \
    "SNAPSHOT,TRANSITION,PROGRESS,PROGRESS,PROGRESS,PROGRESS,TRANSITION" ] || fail "event kinds"
  ;;
dashboard_example_succeeded)
  run 0 $PY "$SRC/examples/dashboard_submit.py" "$(spec ok)" --request-id py-1
  grep -q "^j-000001 submitted" "$tmp/out" || fail "python submit"
  grep -q "^j-000001 step 4/4 loss" "$tmp/out" || fail "python progress"
  grep -q "^j-000001 SUCCEEDED" "$tmp/out" || fail "python final state"
  run 0 "$E2CTL" status j-000001 --json
  [ "$(json_get "d['job']['request_id'], d['job']['spec']['name']" < "$tmp/out")" = "py-1 ok" ] || fail "spec/request id sent by python"
  ;;
dashboard_example_failed)
  run 1 $PY "$SRC/examples/dashboard_submit.py" "$(spec fail)"
  grep -q "^j-000001 FAILED rank 0 exited with code 2" "$tmp/out" || fail "python FAILED"
  ;;
dashboard_example_rejected)
  printf '{"name": "ok", "augment": {"g_max": 0}}\n' > "$tmp/bad.json"
  run 3 $PY "$SRC/examples/dashboard_submit.py" "$tmp/bad.json"
  grep -q "spec.augment.g_max must be in \[1, 1024\] (got 0)" "$tmp/err" || fail "python rejected message"
  ;;
*) echo "no case $CASE"; exit 2 ;;
esac
echo "ok: $CASE"
