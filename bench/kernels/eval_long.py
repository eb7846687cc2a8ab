#!/usr/bin/env python3
"""eval_long.py -- evaluation speed at 8x and 16x the training window, where
the CPU backend's flash attention forward sets the pace.

A small Llama (hidden 512, 4 layers, 8 heads, 4 kv heads, head dim 64, FFN
1408, byte vocabulary 257, window 512) is initialised by a one-step run on
generated text; then `e2worker eval` scores held-out text at windows of
4096 and 8192 tokens (max_tokens = 2 windows, no passkey). Each given
e2worker binary runs in turn, `reps` times, so that binaries built from two
commits meet the same machine load. Prints per run the scored tokens, wall
and CPU seconds (user + sys of the child), tokens per wall second and per
CPU second; then the median per binary and window. Asserts nothing.

usage: eval_long.py E2WORKER [E2WORKER ...] [--reps N (default 2)]
Thread counts follow OMP_NUM_THREADS / OPENBLAS_NUM_THREADS as given.
"""
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

WINDOW = 512
EVAL_WINDOWS = (8 * WINDOW, 16 * WINDOW)


def spec(windows, max_tokens, out):
    return {
        "name": "eval-long",
        "model": {"config": {"hidden_size": 512, "num_hidden_layers": 4,
                             "num_attention_heads": 8, "num_key_value_heads": 4,
                             "intermediate_size": 1408, "vocab_size": 257,
                             "max_position_embeddings": WINDOW}},
        "data": {"train_shards": ["data_train_*.bin"], "eval_shards": ["data_val_*.bin"]},
        "augment": {"train_length": 64, "g_max": 4, "n_sink": 2},
        "train": {"steps": 1, "global_batch": 2, "micro_batch": 2, "lr": 0.003},
        "checkpoint": {"every": 1, "keep_last": 1},
        "eval": {"windows": windows, "max_tokens": max_tokens, "passkey_trials": 0},
        "output_dir": out,
    }


def run(cmd, cwd):
    """Runs cmd; returns (stdout, wall s, child CPU s)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit("eval_long: %s failed:\n%s" % (" ".join(cmd), p.stderr))
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return p.stdout, wall, cpu


def main():
    args = sys.argv[1:]
    reps = 2
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i:i + 2]
    if not args or reps < 1:
        sys.exit(__doc__)
    bins = [os.path.abspath(b) for b in args]
    tmp = tempfile.mkdtemp(prefix="e2-bench-eval-long-")
    try:
        rng = random.Random(1)
        words = ("the quick brown fox jumps over lazy dog a journey of thousand miles "
                 "begins with one step and so on until end").split()
        with open(os.path.join(tmp, "text.txt"), "w") as f:
            for i in range(20000):
                f.write(" ".join(rng.choice(words) for _ in range(12)) + " %d.\n" % i)
        run([bins[0], "prep", "--out", "data", "--val-fraction", "0.5", "text.txt"], tmp)
        with open(os.path.join(tmp, "init.json"), "w") as f:
            json.dump(spec([WINDOW], WINDOW, "init"), f)
        run([bins[0], "run", "init.json"], tmp)
        model = os.path.join(tmp, "init", "checkpoints", "step_1")
        for w in EVAL_WINDOWS:
            with open(os.path.join(tmp, "eval%d.json" % w), "w") as f:
                json.dump(spec([w], 2 * w, "ev%d" % w), f)
        print("eval_long: hidden 512, 4 layers, 8 heads, 4 kv heads, D 64, window %d; "
              "OMP_NUM_THREADS=%s OPENBLAS_NUM_THREADS=%s" %
              (WINDOW, os.environ.get("OMP_NUM_THREADS", "-"),
               os.environ.get("OPENBLAS_NUM_THREADS", "-")))
        print("%-40s %6s %7s %8s %8s %9s %11s" % ("e2worker", "window", "tokens", "wall s",
                                                 "cpu s", "tok/s", "tok/cpu-s"))
        res = {}
        for _ in range(reps):
            for w in EVAL_WINDOWS:
                for b in bins:
                    out, wall, cpu = run([b, "eval", "eval%d.json" % w, "--model", model,
                                          "--out", "r.json"], tmp)
                    row = [l for l in out.splitlines() if l.startswith("| eval |")][0]
                    tokens = int(row.split("|")[5])
                    print("%-40s %6d %7d %8.2f %8.2f %9.1f %11.1f" %
                          (b[-40:], w, tokens, wall, cpu, tokens / wall, tokens / cpu))
                    res.setdefault((b, w), []).append((tokens / wall, tokens / cpu))
        print("medians:")
        for w in EVAL_WINDOWS:
            for b in bins:
                v = res[(b, w)]
                print("%-40s %6d  tok/s %8.1f  tok/cpu-s %8.1f" %
                      (b[-40:], w, statistics.median(x[0] for x in v),
                       statistics.median(x[1] for x in v)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
