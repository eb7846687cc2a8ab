#!/bin/bash
# ctl_args_test.sh E2CTL CASE: e2ctl's answers to bad command lines and bad
# spec input: one line on stderr starting "e2ctl: ", nothing on stdout, and
# the exit code `e2ctl --help` documents. No server is needed (none is
# reachable at the address used).
set -u
E2CTL=$1
CASE=$2
tmp=$(mktemp -d /tmp/e2-ctl-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export E2_SERVER="unix:$tmp/no-e2d.sock"
printf '{"name": "t", "train": {"steps": 2}}\n' > "$tmp/ok.json"
printf '{"name": "t", "trian": {"steps": 2}}\n' > "$tmp/unknown.json"
printf '{"name": "t", \n' > "$tmp/broken.json"

# expect CODE PATTERN ARGS...: exit code CODE, one stderr line matching PATTERN.
expect() {
  local want=$1 pattern=$2
  shift 2
  "$E2CTL" "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l < "$tmp/err")
  if [ "$rc" != "$want" ] || [ "$lines" != 1 ] || [ -s "$tmp/out" ] ||
     ! grep -qE "^e2ctl: $pattern" "$tmp/err"; then
    echo "FAIL: e2ctl $*: rc=$rc (want $want), stderr lines=$lines:"
    cat "$tmp/err" "$tmp/out"
    exit 1
  fi
  echo "ok: e2ctl $* -> $rc: $(cat "$tmp/err")"
}

case $CASE in
no_command) expect 64 "no command given" ;;
unknown_command) expect 64 "unknown command 'frob'" frob ;;
unknown_option) expect 64 "unknown option '--frob'" list --frob ;;
option_of_other_command) expect 64 "--wait does not apply to 'status'" status j-000001 --wait ;;
missing_argument) expect 64 "submit needs SPEC.json" submit ;;
extra_argument) expect 64 "unexpected argument 'j-2' for status" status j-1 j-2 ;;
missing_value) expect 64 "--grace needs a value" cancel j-1 --grace ;;
bad_grace) expect 64 "--grace must be a non-negative integer \(got '-3'\)" cancel j-1 --grace=-3 ;;
bad_state) expect 64 "--state bogus: not a job state" list --state bogus ;;
bad_label) expect 64 "--label team: expected key=value" list --label team ;;
missing_spec_file) expect 65 ".*nope.json.*" submit "$tmp/nope.json" ;;
broken_spec_json) expect 65 ".*broken.json.*" submit "$tmp/broken.json" ;;
unknown_spec_field) expect 65 ".*trian.*" submit "$tmp/unknown.json" ;;
bad_set_value) expect 65 "--set train.steps=many: .*steps.*" submit "$tmp/ok.json" --set train.steps=many ;;
bad_set_path) expect 65 "--set train.nosuch=1: .*nosuch.*" submit "$tmp/ok.json" --set train.nosuch=1 ;;
bad_set_syntax) expect 65 "--set train.steps: expected path=value" submit "$tmp/ok.json" --set train.steps ;;
unreachable) expect 4 "cannot reach e2d at unix:$tmp/no-e2d.sock" status j-000001 ;;
help)
  "$E2CTL" --help > "$tmp/out" 2>&1 || { echo "FAIL: --help exit $?"; exit 1; }
  for w in submit status list cancel watch logs workers metrics eval version \
           --server --json "Exit codes" " 64 " " 65 "; do
    grep -qe "$w" "$tmp/out" || { echo "FAIL: --help does not mention $w"; exit 1; }
  done
  echo "ok: --help" ;;
version)
  out=$("$E2CTL" version) || { echo "FAIL: version exit $?"; exit 1; }
  [[ $out =~ ^e2ctl\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "FAIL: version printed '$out'"; exit 1; }
  echo "ok: $out" ;;
*) echo "no case $CASE"; exit 2 ;;
esac
