#!/bin/sh
# hf_compat_test.sh E2WORKER CACHE_DIR TRANSFORMERS_VERSION MODE
# An e2 export loaded by transformers TRANSFORMERS_VERSION from PyPI, in a
# throwaway venv cached under CACHE_DIR (created on first use; a venv whose
# install did not finish is made again).
#   MODE model:  the venv sees Debian's CPU-only python3-torch
#                (--system-site-packages); AutoConfig, then
#                AutoModelForCausalLM, and its logits against e2's.
#   MODE config: no torch (PyPI's torch wheels pull GBs of CUDA libraries,
#                and Debian's torch 1.13 is older than transformers 5
#                accepts); AutoConfig, the weights read with
#                safetensors.numpy against the config transformers parsed,
#                and the logits of a numpy forward driven by that config
#                against e2's.
# The e2 side: a tiny model trained 2 steps, its checkpoint's config.json
# given token ids, pad, eps 1e-05 and unknown fields, trained 2 more steps
# from there (model.hf_dir), exported for 4x its window.
# PyPI unreachable fails the test, unless E2_COMPAT_OFFLINE=skip (then it
# exits 77, which ctest reports as skipped).
set -u
. "$(dirname "$0")/../lib.sh"
E2W=$1 CACHE=$2 VER=$3 MODE=$4
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }

venv=$CACHE/venv-transformers-$VER-$MODE
if [ ! -f "$venv/.e2-ready" ]; then
    rm -rf "$venv"
    mkdir -p "$CACHE"
    site=""
    pkgs="transformers==$VER safetensors numpy"
    if [ "$MODE" = model ]; then
        site=--system-site-packages
        # numpy and torch from Debian; transformers' own requirements from PyPI.
        pkgs="transformers==$VER safetensors"
        /usr/bin/python3 -c "import torch" 2>/dev/null ||
            fail "Debian's python3-torch is missing (deploy/install-deps.sh --test)"
    fi
    /usr/bin/python3 -m venv $site "$venv" || fail "python3 -m venv (python3-venv installed?)"
    echo "hf_compat: pip install $pkgs into $venv"
    if ! "$venv/bin/pip" install --disable-pip-version-check -q $pkgs >"$CACHE/pip-$VER-$MODE.log" 2>&1; then
        tail -n 5 "$CACHE/pip-$VER-$MODE.log" >&2
        rm -rf "$venv"
        if [ "${E2_COMPAT_OFFLINE:-}" = skip ]; then
            echo "hf_compat: PyPI unreachable and E2_COMPAT_OFFLINE=skip: skipped"
            exit 77
        fi
        fail "pip could not install $pkgs from PyPI (set E2_COMPAT_OFFLINE=skip to skip this test offline)"
    fi
    touch "$venv/.e2-ready"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-compat-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
make_data
write_spec() { # $1 = output dir, $2 = model section
    cat >spec.json <<JSON
{"name": "compat", "model": $2,
 "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
 "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
 "train": {"steps": 2, "global_batch": 4, "micro_batch": 2, "lr": 0.003},
 "checkpoint": {"every": 2, "keep_last": 2},
 "eval": {"windows": [32], "max_tokens": 100, "passkey_trials": 0},
 "output_dir": "$1"}
JSON
}
write_spec base '{"config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 257,
   "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000}}'
"$E2W" run spec.json >run1.log 2>&1 || { tail -n 5 run1.log >&2; fail "first run"; }
# The source model a user brings: token ids, pad, unknown fields.
/usr/bin/python3 - <<'PY' || fail "editing the source config"
import json, shutil
shutil.copytree("base/checkpoints/step_2", "src")
c = json.load(open("src/config.json"))
c.update(bos_token_id=1, eos_token_id=[2, 256], pad_token_id=0, rms_norm_eps=1e-05,
         initializer_range=0.02, my_unknown_field={"kept": [1, 2.5]})
json.dump(c, open("src/config.json", "w"), indent=2)
PY
rm -f src/train_state.bin
write_spec tuned '{"hf_dir": "src"}'
"$E2W" run spec.json >run2.log 2>&1 || { tail -n 5 run2.log >&2; fail "fine-tune from src"; }
"$E2W" export --checkpoint tuned/checkpoints/step_2 --window 128 --out hf >/dev/null || fail "export"
"$E2W" inspect --model hf --tokens data_val_000000.bin --batch 1 --seq 24 --out e2.safetensors \
    >/dev/null || fail "inspect"
# The same tokens at scale 1: the comparison must tell the factor apart.
"$E2W" inspect --model hf --tokens data_val_000000.bin --batch 1 --seq 24 --scale 1 \
    --out e2_scale1.safetensors >/dev/null || fail "inspect at scale 1"
"$venv/bin/python" "$HERE/hf_load.py" "$MODE" hf e2.safetensors data_val_000000.bin 24 4.0 128 \
    e2_scale1.safetensors
