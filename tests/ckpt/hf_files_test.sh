#!/bin/sh
# hf_files_test.sh E2WORKER CASE -- e2worker on Hugging Face folders, end to
# end: the config.json of checkpoints and exports (source fields kept, the
# rope_scaling forms), and bad weights refused at load with one line naming
# the tensor. A tiny model trained 2 steps is the starting point.
set -u
. "$(dirname "$0")/../lib.sh"
E2W=$1 CASE=$2
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-hf-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_error "what" "pattern" cmd...: non-zero exit, and the last stderr
# line is the one "e2worker: ..." error line, matching pattern.
expect_error() {
    what=$1; pat=$2; shift 2
    "$@" >out.txt 2>err.txt && fail "$what: exit 0"
    [ "$(grep -c '^e2worker: ' err.txt)" -eq 1 ] || { cat err.txt >&2; fail "$what: not one error line"; }
    tail -n 1 err.txt | grep -q -- "$pat" || fail "$what: error does not say '$pat': $(cat err.txt)"
}

write_spec() { # $1 = output dir, $2 = model section
    cat >spec.json <<JSON
{"name": "hf", "model": $2,
 "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": 2, "global_batch": 4, "micro_batch": 2, "lr": 0.003},
 "checkpoint": {"every": 2, "keep_last": 2},
 "eval": {"windows": [32], "max_tokens": 100},
 "output_dir": "$1"}
JSON
}

# base/checkpoints/step_2 -> src/: weights and a config.json (with extra
# fields when $1 = rich), no training state.
make_src() {
    make_data
    write_spec base '{"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
       "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
       "max_position_embeddings": 32, "tie_word_embeddings": '"${2:-false}"'}}'
    "$E2W" run spec.json >run.log 2>&1 || { tail -n 5 run.log >&2; fail "tiny run"; }
    mkdir src && cp base/checkpoints/step_2/model.safetensors base/checkpoints/step_2/config.json src/
    [ "${1:-}" = rich ] || return 0
    $PY - <<'PY' || fail "source config"
import json
c = json.load(open("src/config.json"))
c.update(bos_token_id=1, eos_token_id=[2, 256], pad_token_id=0, rms_norm_eps=1e-05,
         initializer_range=0.02, torch_dtype="bfloat16", transformers_version="4.40.2",
         my_unknown_field={"kept": [1, 2.5, None]})
open("src/config.json", "w").write(json.dumps(c, indent=2))
PY
}

case $CASE in
checkpoint_keeps_source_config)
    # Fine-tuned from src (model.hf_dir): the checkpoint's config.json has
    # every field of src's, the same values and the same text for eps.
    make_src rich
    write_spec tuned '{"hf_dir": "src"}'
    "$E2W" run spec.json >run2.log 2>&1 || { tail -n 5 run2.log >&2; fail "fine-tune"; }
    $PY - <<'PY' || fail "checkpoint config differs from the source"
import json
src = json.load(open("src/config.json"))
out = json.load(open("tuned/checkpoints/step_2/config.json"))
diff = {k: (v, out.get(k)) for k, v in src.items() if out.get(k, "MISSING") != v}
assert not diff, diff
PY
    grep -q '"rms_norm_eps": 1e-05,' tuned/checkpoints/step_2/config.json ||
        fail "eps not printed as 1e-05: $(grep eps tuned/checkpoints/step_2/config.json)"
    ;;
export_keeps_source_config)
    make_src rich
    "$E2W" export --checkpoint src --window 128 --out hf >/dev/null || fail "export"
    $PY - <<'PY' || fail "exported config"
import json
src = json.load(open("src/config.json"))
out = json.load(open("hf/config.json"))
diff = {k: (v, out.get(k)) for k, v in src.items()
        if k not in ("max_position_embeddings", "rope_scaling") and out.get(k, "MISSING") != v}
assert not diff, diff
assert out["max_position_embeddings"] == 128 and out["rope_scaling"] == {"type": "linear", "factor": 4.0}, out
PY
    ;;
export_rope_scaling_forms)
    # Default: {"type", "factor"} (transformers 4.31 .. 5.x); modern:
    # {"rope_type", "factor"}; the factor a float either way.
    make_src
    "$E2W" export --checkpoint src --window 96 --out legacy >/dev/null || fail "export"
    "$E2W" export --checkpoint src --window 96 --out modern --rope-scaling modern >/dev/null ||
        fail "export --rope-scaling modern"
    grep -q '"factor": 3.0' legacy/config.json || fail "factor not a float: $(cat legacy/config.json)"
    $PY - <<'PY' || fail "rope_scaling forms"
import json
assert json.load(open("legacy/config.json"))["rope_scaling"] == {"type": "linear", "factor": 3.0}
assert json.load(open("modern/config.json"))["rope_scaling"] == {"rope_type": "linear", "factor": 3.0}
PY
    expect_error "bad form" "--rope-scaling must be legacy" \
        "$E2W" export --checkpoint src --window 96 --out x --rope-scaling newest
    ;;
nonfinite_weight_is_refused)
    make_src
    $PY - <<'PY' || fail "poisoning a weight"
import json, struct
b = bytearray(open("src/model.safetensors", "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
off = h["model.layers.1.mlp.up_proj.weight"]["data_offsets"][0] + 8 + n + 4 * 5
b[off:off + 4] = struct.pack("<f", float("nan"))
open("src/model.safetensors", "wb").write(b)
PY
    expect_error "NaN weight (eval)" "tensor model.layers.1.mlp.up_proj.weight holds a non-finite value (NaN at element 5)" \
        "$E2W" eval spec.json --model src --out ev.json
    write_spec tuned '{"hf_dir": "src"}'
    expect_error "NaN weight (run)" "model.layers.1.mlp.up_proj.weight" "$E2W" run spec.json
    ;;
tied_head_conflict_is_refused)
    # An untied model's head next to tie_word_embeddings true.
    make_src
    $PY - <<'PY' || fail "config edit"
import json
c = json.load(open("src/config.json"))
c["tie_word_embeddings"] = True
open("src/config.json", "w").write(json.dumps(c))
PY
    expect_error "tie conflict" "lm_head.weight differs from model.embed_tokens.weight" \
        "$E2W" export --checkpoint src --window 64 --out x
    ;;
*) echo "no case $CASE"; exit 2 ;;
esac
echo "ok: $CASE"
