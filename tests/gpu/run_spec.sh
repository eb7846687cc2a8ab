#!/bin/sh
# run_spec.sh -- the model runs unchanged with "device": "cuda": the same
# tiny job (E² augmentation, micro-batches, checkpoints, evaluation) through
# `e2worker run` on cpu and on cuda; both must finish with finite losses and
# eval.json, and the cuda loss curve must stay within 5% of the cpu one at
# every step. Usage: run_spec.sh E2WORKER
set -u
E2W=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") # absolute: the job runs in a scratch dir
# python3 from PATH: on the GPU machine that is the PyTorch one, and
# /usr/bin/python3 may not exist there.
PY=$(command -v python3) || { echo "run_spec: python3 not found on PATH"; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-gpu-run-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 143' TERM INT # run.sh's time limit: the EXIT trap still cleans up
cd "$TMP" || exit 1
i=0
while [ $i -lt 400 ]; do
    echo "The quick brown fox number $i jumps over the lazy dog. A journey of a thousand miles begins with one step."
    i=$((i + 1))
done >text.txt
"$E2W" prep --out data --val-fraction 0.1 text.txt >/dev/null || { echo "run_spec: prep failed"; exit 1; }
for dev in cpu cuda; do
    cat >spec_$dev.json <<SPEC
{"name": "gpu-$dev", "device": "$dev",
 "model": {"config": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
   "num_key_value_heads": 1, "intermediate_size": 256, "vocab_size": 257,
   "max_position_embeddings": 128}},
 "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
 "augment": {"train_length": 128, "g_max": 4, "n_sink": 4},
 "train": {"steps": 8, "global_batch": 4, "micro_batch": 2, "lr": 0.002},
 "checkpoint": {"every": 4, "keep_last": 2},
 "eval": {"windows": [128, 512], "max_tokens": 2000},
 "output_dir": "out_$dev"}
SPEC
    if ! "$E2W" run spec_$dev.json >stdout_$dev.txt 2>stderr_$dev.txt; then
        tail -5 stderr_$dev.txt
        echo "run_spec: e2worker run on $dev failed"
        exit 1
    fi
done
# Under run.sh --prebuilt, LD_LIBRARY_PATH starts with the bundle's
# libraries: python3 gets the device's own.
[ -n "${E2_GPU_PREBUILT:-}" ] && export LD_LIBRARY_PATH="${E2_GPU_SYSTEM_LDP:-}"
$PY - <<'PYEOF'
import json, math, sys
def losses(d):
    return [json.loads(l)["loss"] for l in open(f"out_{d}/metrics.jsonl")]
c, g = losses("cpu"), losses("cuda")
ok = len(c) == len(g) == 8 and all(math.isfinite(x) for x in c + g)
worst = max(abs(a - b) / abs(a) for a, b in zip(c, g)) if ok else float("inf")
ok = ok and worst <= 0.05
for d in ("cpu", "cuda"):
    r = json.load(open(f"out_{d}/eval.json"))["results"]
    ok = ok and all(math.isfinite(x["perplexity"]) for x in r)
    print(f"  e2worker run {d:4s}: losses " + " ".join(f"{x:.4f}" for x in (c if d == "cpu" else g))
          + " | ppl " + " ".join(f"{x['window']}:{x['perplexity']:.3f}" for x in r))
print(f"  worst step loss rel.diff cuda vs cpu {worst:.2e} (tol 5e-02)  {'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PYEOF
