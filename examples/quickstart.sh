#!/bin/sh
# quickstart.sh -- the README's main job, on one machine with no GPU:
#   1. installs the Debian packages e2 needs and builds it (Release, build/);
#   2. turns the text of Debian's `fortunes` package into byte-level token
#      shards (train + held-out);
#   3. starts e2d with local CPU workers (the embedded default);
#   4. submits a small E² job with e2ctl and follows it: a tiny Llama trained
#      at window L = 128 with random RoPE scale g in {1..8} and offset t per
#      sample, 4 attention sinks;
#   5. trains a control beside it (the same job with no augmentation: same
#      data, steps and tokens) and prints both evaluation tables: perplexity
#      at 1x, 4x and 8x the training window, each with g = L'/L, from one
#      set of weights per job.
# Everything lands in $E2_QUICKSTART_DIR (default ./e2-quickstart); run it
# again and it starts a fresh job. Takes a few minutes on 2 cores.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=${E2_QUICKSTART_DIR:-$root/e2-quickstart}
steps=${E2_QUICKSTART_STEPS:-200}

./deploy/install-deps.sh
echo "quickstart: building e2 in build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target e2d e2worker e2ctl >/dev/null
E2D=$root/build/daemon/src/e2d
E2W=$root/build/worker/cli/e2worker
E2CTL=$root/build/ctl/e2ctl

rm -rf "$work"
mkdir -p "$work/data"
export E2_STATE_DIR="$work/state"
unset E2_SERVER

# The fortunes text (BSD licence, Debian package `fortunes`), one document
# per file; the .dat indexes and .u8 duplicates are not text to learn.
texts=$(find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.*' | sort)
"$E2W" prep --out "$work/data/fortunes" --val-fraction 0.05 $texts

cat >"$work/job.json" <<'JSON'
{
  "name": "quickstart-e2",
  "labels": {"example": "quickstart"},
  "model": {
    "config": {"hidden_size": 128, "num_hidden_layers": 4,
               "num_attention_heads": 4, "num_key_value_heads": 2,
               "intermediate_size": 352, "vocab_size": 257,
               "max_position_embeddings": 128, "rope_theta": 10000}
  },
  "data": {"train_shards": ["data/fortunes_train_*.bin"],
           "eval_shards": ["data/fortunes_val_*.bin"]},
  "augment": {"method": "e2", "g_max": 8, "n_sink": 4, "train_length": 128},
  "train": {"steps": 200, "global_batch": 16, "micro_batch": 8,
            "lr": 0.003, "min_lr": 0.0003, "warmup_steps": 20,
            "schedule": "cosine", "weight_decay": 0.1, "seed": 1},
  "checkpoint": {"every": 50, "keep_last": 2},
  "eval": {"windows": [128, 512, 1024], "max_tokens": 16384}
}
JSON

echo "quickstart: starting e2d with 2 local CPU workers (state in $E2_STATE_DIR)"
"$E2D" --local-workers 2 --worker-bin "$E2W" >"$work/e2d.log" 2>&1 &
e2d=$!
trap 'kill -TERM $e2d 2>/dev/null; wait $e2d 2>/dev/null' EXIT INT TERM
i=0
until [ -S "$E2_STATE_DIR/e2d.sock" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $e2d 2>/dev/null; then
        echo "quickstart: e2d did not start; its log:" >&2
        cat "$work/e2d.log" >&2
        exit 1
    fi
    sleep 0.1
done

# The control: the same job without augmentation (g = 1, t = 0, no sinks).
"$E2CTL" submit "$work/job.json" --set train.steps="$steps" --set name=quickstart-control \
    --set augment.method=none --set augment.n_sink=0 >/dev/null
"$E2CTL" submit "$work/job.json" --set train.steps="$steps" --wait
ids=$("$E2CTL" list --json | /usr/bin/python3 -c '
import json, sys
jobs = json.load(sys.stdin)["jobs"]
name = lambda j: j.get("name") or j.get("spec", {}).get("name", "")
by = {name(j): j["id"] for j in jobs}
print(by["quickstart-e2"], by["quickstart-control"])')
job=${ids% *}
control=${ids#* }
"$E2CTL" watch "$control" >/dev/null
echo
echo "quickstart: $job (E²) evaluation, one set of weights, g = L'/L (L = 128):"
"$E2CTL" eval "$job"
echo
echo "quickstart: $control (control: same steps and tokens, no augmentation), g = L'/L:"
"$E2CTL" eval "$control"
echo
echo "quickstart: job directories $E2_STATE_DIR/jobs/$job and .../$control"
echo "  (checkpoints/, metrics.jsonl, eval.json; e2ctl status $job for more)"
