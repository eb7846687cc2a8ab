#!/bin/sh
# cli_test.sh -- e2worker driven as a user would: `run` end to end on a tiny
# spec (files written, resume, --fresh), `eval` of a run's checkpoint
# (same numbers as the run's own eval, passkey depth buckets), `inspect`,
# `export`, and malformed
# spec / shard / checkpoint / model giving one clear line and a non-zero
# exit. Usage: cli_test.sh E2WORKER CASE
set -u
. "$(dirname "$0")/../lib.sh"
E2W=$1
CASE=$2
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-cli-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_error "what" "pattern" cmd...: non-zero exit and exactly one error
# line ("e2worker: ...", the last line on stderr; progress may precede it)
# matching pattern.
expect_error() {
    what=$1; pat=$2; shift 2
    "$@" >out.txt 2>err.txt && fail "$what: exit 0"
    [ "$(grep -c '^e2worker: ' err.txt)" -eq 1 ] || { cat err.txt >&2; fail "$what: not one error line"; }
    tail -n 1 err.txt | grep -q '^e2worker: ' || fail "$what: error is not the last line: $(cat err.txt)"
    grep '^e2worker: ' err.txt | grep -qi -- "$pat" || fail "$what: error does not mention '$pat': $(cat err.txt)"
}

write_spec() { # $1 = steps, $2 = output dir
    cat >spec.json <<EOF
{"name": "tiny",
 "model": {"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
   "max_position_embeddings": 32}},
 "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": $1, "global_batch": 4, "micro_batch": 2, "lr": 0.003},
 "checkpoint": {"every": 2, "keep_last": 5},
 "eval": {"windows": [32, 256], "max_tokens": 300, "passkey_trials": 1, "passkey_digits": 2},
 "output_dir": "$2"}
EOF
}

case $CASE in
run_end_to_end)
    make_data
    write_spec 4 out
    "$E2W" run spec.json >stdout.txt 2>stderr.txt || { cat stderr.txt >&2; fail "run exit"; }
    for f in spec.json log metrics.jsonl eval.json eval.md \
             checkpoints/step_2/model.safetensors checkpoints/step_4/config.json \
             checkpoints/step_4/train_state.bin; do
        [ -f "out/$f" ] || fail "out/$f missing"
    done
    [ "$(wc -l <out/metrics.jsonl)" -eq 4 ] || fail "metrics.jsonl has $(wc -l <out/metrics.jsonl) lines, want 4"
    grep -q '| final | 256 | 8 |' stdout.txt || fail "no result table for window 256 at scale 8: $(cat stdout.txt)"
    $PY - <<'EOF' || fail "eval.json"
import json, math
r = json.load(open("out/eval.json"))["results"]
assert [x["window"] for x in r] == [32, 256], r
assert all(x["tokens"] == 300 and math.isfinite(x["perplexity"]) for x in r), r
assert r[1]["passkey_trials"] == 1, r
s = json.load(open("out/spec.json"))
assert s["train"]["micro_batch"] == 2 and s["augment"]["original_window"] == 32, s
EOF
    [ -d out/checkpoints/step_4.tmp ] && fail "step_4.tmp left behind"
    # A longer run resumes from step 4 and appends only the new steps.
    "$E2W" run spec.json --set train.steps=6 >stdout2.txt 2>stderr2.txt && fail "resume with another spec accepted"
    grep -q "another spec" stderr2.txt || fail "spec change not explained: $(cat stderr2.txt)"
    "$E2W" run spec.json >stdout2.txt 2>stderr2.txt || { cat stderr2.txt >&2; fail "rerun"; }
    grep -q "resumed from .*step_4" stderr2.txt || fail "rerun did not resume: $(cat stderr2.txt)"
    [ "$(wc -l <out/metrics.jsonl)" -eq 4 ] || fail "a finished run trained again"
    expect_error "--fresh" "fresh" "$E2W" run spec.json --fresh
    ;;
bad_spec)
    make_data
    printf '{"name": "x", "train": {"steps": 3,}}' >bad.json
    expect_error "malformed JSON" "line" "$E2W" run bad.json
    write_spec 2 out
    sed 's/"g_max"/"gmax"/' spec.json >unknown.json
    expect_error "unknown field" "gmax" "$E2W" run unknown.json
    expect_error "bad --set" "train.lr" "$E2W" run spec.json --set train.lr=-1
    expect_error "missing spec" "nope.json" "$E2W" run nope.json
    expect_error "no spec" "SPEC" "$E2W" run
    ;;
bad_shard)
    make_data
    write_spec 2 out
    printf 'this is not a token shard at all, just text that is long enough' >data_train_000000.bin
    expect_error "bad shard" "data_train_000000.bin" "$E2W" run spec.json
    ;;
bad_vocab)
    make_data
    write_spec 2 out
    sed 's/"vocab_size": 257/"vocab_size": 100/' spec.json >small.json
    expect_error "token >= vocab" "vocab" "$E2W" run small.json
    ;;
bad_checkpoint)
    make_data
    write_spec 2 out
    "$E2W" run spec.json >/dev/null 2>&1 || fail "first run"
    printf 'garbage' >out/checkpoints/step_2/train_state.bin
    expect_error "corrupt training state" "train_state.bin" "$E2W" run spec.json
    ;;
inspect)
    make_data
    write_spec 2 out
    "$E2W" run spec.json >/dev/null 2>&1 || fail "run"
    "$E2W" inspect --model out/checkpoints/step_2 --tokens data_train_000000.bin --batch 2 --seq 8 \
        --scale 2 --offset 3 --sinks 1 --out ins.safetensors >/dev/null || fail "inspect exit"
    $PY - <<'EOF' || fail "inspect output"
import json, struct
b = open("ins.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
assert h["logits"]["shape"] == [2, 8, 257], h["logits"]
assert h["loss"]["shape"] == [], h["loss"]
grads = [k for k in h if k.startswith("grad.")]
assert len(grads) == 2 + 9 * 2 + 1, len(grads)
assert h["grad.model.layers.1.self_attn.k_proj.weight"]["shape"] == [16, 32]
off = h["loss"]["data_offsets"]
loss = struct.unpack("<f", b[8 + n + off[0]:8 + n + off[1]])[0]
assert 0 < loss < 20, loss
EOF
    expect_error "missing model" "nowhere" "$E2W" inspect --model nowhere --tokens data_train_000000.bin \
        --batch 1 --seq 4 --out x.safetensors
    mkdir broken && cp out/checkpoints/step_2/config.json broken/ && printf 'xx' >broken/model.safetensors
    expect_error "broken weights" "model.safetensors" "$E2W" inspect --model broken \
        --tokens data_train_000000.bin --batch 1 --seq 4 --out x.safetensors
    expect_error "too few tokens" "tokens" "$E2W" inspect --model out/checkpoints/step_2 \
        --tokens data_val_000000.bin --batch 500 --seq 64 --out x.safetensors
    expect_error "bad --batch" "batch" "$E2W" inspect --model out/checkpoints/step_2 \
        --tokens data_val_000000.bin --batch zero --seq 4 --out x.safetensors
    ;;
export)
    make_data
    write_spec 2 out
    "$E2W" run spec.json >/dev/null 2>&1 || fail "run"
    "$E2W" export --checkpoint out/checkpoints/step_2 --window 256 --out hf256 >/dev/null || fail "export"
    $PY - <<'EOF' || fail "exported config"
import json
c = json.load(open("hf256/config.json"))
rs = c["rope_scaling"]
assert rs.get("rope_type", rs.get("type")) == "linear" and rs["factor"] == 8, rs
assert c["max_position_embeddings"] == 256, c
EOF
    cmp hf256/model.safetensors out/checkpoints/step_2/model.safetensors || fail "exported weights differ"
    # inspect reads the exported factor as its default scale.
    a=$("$E2W" inspect --model hf256 --tokens data_train_000000.bin --batch 1 --seq 16 --out a.st) || fail "inspect hf256"
    b=$("$E2W" inspect --model out/checkpoints/step_2 --tokens data_train_000000.bin --batch 1 --seq 16 \
        --scale 8 --out b.st) || fail "inspect step_2"
    c=$("$E2W" inspect --model out/checkpoints/step_2 --tokens data_train_000000.bin --batch 1 --seq 16 \
        --out c.st) || fail "inspect step_2 at scale 1"
    [ "${a%%,*}" = "${b%%,*}" ] || fail "exported model at its factor: $a vs $b"
    [ "${a%%,*}" != "${c%%,*}" ] || fail "scale 8 and scale 1 give the same loss: $a"
    expect_error "window below L" "window" "$E2W" export --checkpoint out/checkpoints/step_2 --window 8 --out x
    ;;
finetune_hf)
    make_data
    write_spec 2 out
    "$E2W" run spec.json >/dev/null 2>&1 || fail "run"
    cat >ft.json <<'EOF'
{"name": "ft", "model": {"hf_dir": "out/checkpoints/step_2"},
 "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4},
 "train": {"steps": 2, "global_batch": 2, "micro_batch": 1, "lr": 0.001},
 "eval": {"windows": [64], "max_tokens": 200, "eval_base": true}, "output_dir": "ft"}
EOF
    "$E2W" run ft.json >stdout.txt 2>stderr.txt || { cat stderr.txt >&2; fail "fine-tune from hf_dir"; }
    grep -q '| base | 64 | 2 |' stdout.txt || fail "no base row: $(cat stdout.txt)"
    grep -q '| final | 64 | 2 |' stdout.txt || fail "no final row: $(cat stdout.txt)"
    $PY - <<'EOF' || fail "fine-tune spec"
import json
s = json.load(open("ft/spec.json"))
assert s["augment"]["original_window"] == 32 and "config" not in s["model"], s
EOF
    ;;
resume_from)
    # A second run that starts from the first one's step-2 checkpoint
    # (spec.resume_from) ends with the first run's step-4 weights, bit for
    # bit; its own checkpoint then wins over resume_from on a rerun.
    make_data
    write_spec 4 a
    "$E2W" run spec.json >/dev/null 2>err.txt || { cat err.txt >&2; fail "first run"; }
    "$E2W" run spec.json --set output_dir=b --set "resume_from=$TMP/a/checkpoints/step_2" \
        >/dev/null 2>err.txt || { cat err.txt >&2; fail "resumed run"; }
    grep -q "resumed from $TMP/a/checkpoints/step_2 (step 2)" err.txt || fail "no resume line: $(cat err.txt)"
    [ "$(wc -l <b/metrics.jsonl)" -eq 2 ] || fail "b trained $(wc -l <b/metrics.jsonl) steps, want 2"
    cmp a/checkpoints/step_4/model.safetensors b/checkpoints/step_4/model.safetensors ||
        fail "resumed weights differ from the uninterrupted run"
    cmp a/checkpoints/step_4/train_state.bin b/checkpoints/step_4/train_state.bin ||
        fail "resumed optimizer state differs"
    "$E2W" run spec.json --set output_dir=b --set "resume_from=$TMP/a/checkpoints/step_2" \
        >/dev/null 2>err.txt || { cat err.txt >&2; fail "rerun"; }
    grep -q "resumed from b/checkpoints/step_4 (step 4)" err.txt || fail "rerun did not use its own checkpoint: $(cat err.txt)"
    expect_error "resume_from a missing checkpoint" "no_such" \
        "$E2W" run spec.json --set output_dir=c --set "resume_from=$TMP/no_such/step_2"
    ;;
interrupt)
    make_data
    write_spec 100000 out
    "$E2W" run spec.json >stdout.txt 2>stderr.txt &
    pid=$!
    n=0
    while [ ! -s out/metrics.jsonl ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
    [ -s out/metrics.jsonl ] || { kill -9 $pid; fail "no step within 60 s"; }
    kill -INT $pid
    wait $pid
    rc=$?
    [ $rc -eq 130 ] || fail "exit status $rc after SIGINT, want 130"
    grep -q "stopped by a signal at step" stderr.txt || fail "no stop message: $(cat stderr.txt)"
    step=$(sed -n 's/.*stopped by a signal at step \([0-9]*\).*/\1/p' stderr.txt)
    [ -f "out/checkpoints/step_$step/train_state.bin" ] || fail "no checkpoint of step $step"
    ;;
eval_checkpoint)
    # eval of a run's final checkpoint repeats the run's own evaluation
    # number for number (same code path, same weights), depth buckets
    # included; bad --model / buckets give one error line.
    make_data
    write_spec 4 out
    "$PY" - <<'EOF'
import json
s = json.load(open("spec.json"))
s["eval"].update({"passkey_trials": 6, "passkey_depth_buckets": 3})
json.dump(s, open("spec.json", "w"))
EOF
    "$E2W" run spec.json >/dev/null 2>stderr.txt || { cat stderr.txt >&2; fail "run exit"; }
    "$E2W" eval spec.json --model out/checkpoints/step_4 --out ck.json >stdout.txt 2>stderr.txt \
        || { cat stderr.txt >&2; fail "eval exit"; }
    [ -f ck.md ] || fail "ck.md missing"
    grep -q "| eval | 256 |" stdout.txt || fail "no table on stdout: $(cat stdout.txt)"
    [ "$(ls out/checkpoints | tr '\n' ' ')" = "step_2 step_4 " ] || fail "eval touched checkpoints: $(ls out/checkpoints)"
    "$E2W" eval spec.json --model out/checkpoints/step_4 --set output_dir=ev2 >/dev/null 2>stderr.txt \
        || { cat stderr.txt >&2; fail "eval to output_dir"; }
    [ -f ev2/eval.json ] && [ -f ev2/eval.md ] || fail "eval.json/eval.md not in output_dir"
    "$PY" - <<'EOF' || fail "eval numbers differ from the run's"
import json
run = json.load(open("out/eval.json"))["results"]
ev = json.load(open("ck.json"))["results"]
ev2 = json.load(open("ev2/eval.json"))["results"]
assert len(run) == len(ev) == len(ev2) == 2, (run, ev)
keys = ["window", "scale", "stride", "tokens", "nll", "perplexity", "passkey_trials", "passkey_correct",
        "passkey_depth"]
for a, b, c in zip(run, ev, ev2):
    assert a["model"] == "final" and b["model"] == "eval", (a, b)
    assert a["tokens"] > 0 and a["passkey_trials"] == (6 if a["window"] == 256 else 0), a
    for k in keys:
        assert a[k] == b[k] == c[k], (k, a[k], b[k], c[k])
    d = a["passkey_depth"]
    if a["window"] == 32:
        assert d == [], d
        continue
    assert [x["bucket"] for x in d] == [0, 1, 2] and [x["trials"] for x in d] == [2, 2, 2], d
    assert sum(x["correct"] for x in d) == a["passkey_correct"], d
    assert d[0]["filler_before"][0] == 0 and d[0]["depth"][0] == 0 and d[-1]["depth"][1] == 1, d
    for x, y in zip(d, d[1:]):
        assert y["filler_before"][0] == x["filler_before"][1] + 1 and y["depth"][0] == x["depth"][1], d
EOF
    expect_error "missing model dir" "--model" "$E2W" eval spec.json --model nowhere
    mkdir empty
    expect_error "model dir without config.json" "config.json" "$E2W" eval spec.json --model empty
    expect_error "no --model" "--model" "$E2W" eval spec.json
    expect_error "more buckets than trials" "passkey_depth_buckets" \
        "$E2W" eval spec.json --model out/checkpoints/step_4 --set eval.passkey_depth_buckets=7
    ;;
usage)
    "$E2W" --help | grep -q "run SPEC.json" || fail "--help"
    "$E2W" version | grep -q "^e2worker [0-9]" || fail "version"
    "$E2W" frobnicate >/dev/null 2>err.txt && fail "unknown command accepted"
    grep -q "unknown command" err.txt || fail "unknown command message"
    ;;
omp_wait_policy)
    # e2worker sleeps its OpenMP threads between regions unless the user
    # chose a policy: a worker dialling a socket nobody serves keeps
    # retrying, so its environment can be read while it lives.
    policy_of() { # $1 = pid: the OMP_WAIT_POLICY of its current image
        tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep '^OMP_WAIT_POLICY=' | cut -d= -f2
    }
    for want in PASSIVE ACTIVE; do
        if [ $want = PASSIVE ]; then
            env -u OMP_WAIT_POLICY "$E2W" --coordinator "unix:$TMP/none.sock" >/dev/null 2>&1 &
        else
            OMP_WAIT_POLICY=ACTIVE "$E2W" --coordinator "unix:$TMP/none.sock" >/dev/null 2>&1 &
        fi
        pid=$!
        wait_until 30 sh -c "[ \"\$(tr '\\0' '\\n' </proc/$pid/environ | grep -c '^OMP_WAIT_POLICY=')\" = 1 ]"
        got=$(policy_of $pid)
        kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
        [ "$got" = $want ] || fail "OMP_WAIT_POLICY is '$got', want $want"
    done
    ;;
*)
    fail "no case $CASE"
    ;;
esac
exit 0
