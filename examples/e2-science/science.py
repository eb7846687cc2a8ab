#!/usr/bin/python3
"""science.py -- shared pieces of the E² science experiment (driver.py):
sizes, the corpus on disk, e2worker job specs, running e2worker.
"""
import json
import os
import shutil
import subprocess
import sys

import corpus

# Sizes per mode. full: the committed experiment; quick: CI (seconds).
MODES = {
    "full": dict(L=64, hidden=128, layers=2, heads=4, inter=256, pre_steps=4000, pre_lr=5e-3,
                 batch=16, pre_docs=50000, ft_docs=4000, mix=(40, 60, 0, 0), K=1, pk_trials=100, buckets=4,
                 factors=(1, 2, 4, 8, 16), ppl_tokens=131072, ppl_stride_div=2,
                 ft_steps=200, ft_seeds=3, ft_lr=2e-4, text_phrases=32, text_zipf=1.0, pre_seed=1),
    "quick": dict(L=64, hidden=32, layers=2, heads=2, inter=64, pre_steps=6, pre_lr=3e-3,
                  batch=2, pre_docs=200, ft_docs=50, mix=(30, 30, 20, 20), K=2, pk_trials=4, buckets=2,
                  factors=(1, 2), ppl_tokens=256, ppl_stride_div=2,
                  ft_steps=2, ft_seeds=2, ft_lr=3e-4, text_phrases=32, text_zipf=1.0, pre_seed=1),
}


def machine():
    """CPU model and its widest vector instruction set (figures differ
    slightly between instruction sets: summation order in the kernels)."""
    model, flags = "?", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "other"
    return f"{model}, {isa}, {os.cpu_count()} cores"


def config(mode, sets):
    cfg = dict(MODES[mode])
    for kv in sets:
        k, _, v = kv.partition("=")
        if k not in cfg:
            sys.exit(f"science: --set {kv}: unknown key '{k}' (one of {', '.join(sorted(cfg))})")
        cfg[k] = type(cfg[k])(v) if not isinstance(cfg[k], tuple) else tuple(int(x) for x in v.split(","))
    return cfg


def mix(cfg):
    """cfg["mix"] (percent of slots: text, passkey, kv, copy) as fractions."""
    t = sum(cfg["mix"])
    return tuple(x / t for x in cfg["mix"])


def build_data(cfg, out):
    """Writes pretraining, fine-tuning and held-out shards; returns paths
    and the passkey prompt (token ids) for e2worker eval."""
    os.makedirs(out, exist_ok=True)
    L = cfg["L"]
    top = L * max(cfg["factors"])
    d = {"dir": out,
         "pre": os.path.join(out, "pre.bin"), "ft": os.path.join(out, "ft.bin"),
         "heldout": os.path.join(out, "heldout.bin"),
         "score_from": top,
         "filler": list(corpus.FILLER),
         "prefix": [corpus.EOT], "suffix": [corpus.QUERY, corpus.KEY], "key_pre": [corpus.KEY],
         "digits": list(range(corpus.DIGIT0, corpus.DIGIT0 + corpus.N_DIGITS))}
    text = dict(n_phrases=cfg["text_phrases"], zipf=cfg["text_zipf"])
    corpus.write_shard(d["pre"], corpus.train_tokens(1, L, cfg["pre_docs"], K=cfg["K"], mix=mix(cfg), **text))
    corpus.write_shard(d["ft"], corpus.train_tokens(2, L, cfg["ft_docs"], K=cfg["K"], mix=mix(cfg), **text))
    n_docs = (top + cfg["ppl_tokens"]) // top + 2
    corpus.write_shard(d["heldout"], corpus.heldout_text(3, n_docs, top, **text))
    return d


def model_config(cfg):
    return {"hidden_size": cfg["hidden"], "num_hidden_layers": cfg["layers"],
            "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["heads"],
            "intermediate_size": cfg["inter"], "vocab_size": corpus.VOCAB,
            "max_position_embeddings": cfg["L"], "tie_word_embeddings": True}


def train_section(steps, batch, lr, seed):
    return {"steps": steps, "global_batch": batch, "micro_batch": batch, "lr": lr, "min_lr": lr / 10,
            "warmup_steps": max(1, steps // 20), "schedule": "cosine", "seed": seed, "grad_clip": 1.0}


def pretrain_spec(cfg, out_dir, data, seed):
    L = cfg["L"]
    return {"name": "base", "model": {"config": model_config(cfg), "init_seed": seed},
            "data": {"train_shards": [data["pre"]]},
            "augment": {"method": "none", "n_sink": 0, "train_length": L, "original_window": L},
            "train": train_section(cfg["pre_steps"], cfg["batch"], cfg["pre_lr"], seed),
            "checkpoint": {"every": 0, "keep_last": 1}, "output_dir": out_dir,
            "log_every": max(1, cfg["pre_steps"] // 20)}


def finetune_spec(cfg, name, out_dir, data, base_dir, aug, r_mult, seed):
    """A fine-tune from the base: R = r_mult * L, global batch / r_mult
    sequences, so every method sees the same tokens per step."""
    L = cfg["L"]
    a = dict(aug)
    a.update({"train_length": L * r_mult, "original_window": L})
    b = max(1, cfg["batch"] // r_mult)
    return {"name": name, "model": {"hf_dir": base_dir}, "data": {"train_shards": [data["ft"]]},
            "augment": a, "train": train_section(cfg["ft_steps"], b, cfg["ft_lr"], seed),
            "checkpoint": {"every": 0, "keep_last": 1}, "output_dir": out_dir,
            "log_every": max(1, cfg["ft_steps"] // 10)}


def passkey_eval(cfg, data, windows, scales, seed):
    return {"windows": windows, "scales": scales, "passkey_trials": cfg["pk_trials"],
            "passkey_depth_buckets": cfg["buckets"], "passkey_digits": cfg["K"], "seed": seed,
            "filler_tokens": data["filler"], "prompt_prefix_tokens": data["prefix"],
            "prompt_suffix_tokens": data["suffix"], "digit_tokens": data["digits"],
            "key_pre_tokens": data["key_pre"]}


def ppl_eval(cfg, data, windows, scales, stride=None):
    """Perplexity on the same held-out tokens (from index score_from) at
    every window; stride None = window / 2 per window."""
    ev = {"windows": windows, "scales": scales, "max_tokens": cfg["ppl_tokens"],
          "score_from": data["score_from"]}
    if stride:
        ev["stride"] = stride
    return ev


def eval_spec(name, out_dir, data, ev, heldout):
    s = {"name": name, "data": {"train_shards": [data["pre"]]},
         "augment": {"method": "none", "n_sink": 0}, "eval": ev, "output_dir": out_dir}
    if heldout:
        s["data"]["eval_shards"] = [data["heldout"]]
    return s


DEVICE = {"name": "cpu"}  # driver.py --device


def e2worker_job(e2worker, spec, threads, command):
    """Writes spec into a fresh output dir, runs `e2worker COMMAND...`
    ("{spec}" replaced by the spec's path) and returns its eval.json rows
    (or [] when it wrote none)."""
    out = spec["output_dir"]
    spec = dict(spec, device=DEVICE["name"])
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    path = os.path.join(out, "job.json")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    argv = [e2worker] + [path if a == "{spec}" else a for a in command]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    with open(os.path.join(out, "stderr.txt"), "w") as errf:
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=errf, env=env)
    if p.returncode != 0:
        with open(os.path.join(out, "stderr.txt")) as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{tail}")
    ej = os.path.join(out, "eval.json")
    if not os.path.exists(ej):
        return []
    with open(ej) as f:
        return json.load(f)["results"]


def run_job(e2worker, spec, threads):
    return e2worker_job(e2worker, spec, threads, ["run", "{spec}", "--fresh"])


def eval_job(e2worker, spec, model_dir, threads):
    return e2worker_job(e2worker, spec, threads, ["eval", "{spec}", "--model", model_dir])


def final_checkpoint(out_dir):
    ck = os.path.join(out_dir, "checkpoints")
    steps = sorted(int(n[5:]) for n in os.listdir(ck) if n.startswith("step_") and n[5:].isdigit())
    return os.path.join(ck, f"step_{steps[-1]}")


def buckets(row):
    return [{"bucket": b["bucket"], "depth": b["depth"], "correct": b["correct"], "trials": b["trials"]}
            for b in row.get("passkey_depth", [])]


def score_base(e2worker, cfg, model_dir, data, out_dir, threads):
    """The two gates' measurements: passkey exact match at L by depth bucket,
    and held-out perplexity at windows L/8, L/4, L/2, L (same tokens)."""
    L = cfg["L"]
    wins = [L // 8, L // 4, L // 2, L]
    ev = ppl_eval(cfg, data, wins, [1.0] * len(wins), None)
    rows = eval_job(e2worker, eval_spec("base-ppl", out_dir + "-ppl", data, ev, True), model_dir, threads)
    ppl = {r["window"]: r["perplexity"] for r in rows}
    rows = eval_job(e2worker, eval_spec("base-pk", out_dir + "-pk", data,
                                        passkey_eval(cfg, data, [L], [1.0], 7), False), model_dir, threads)
    return {"ppl_by_window": ppl, "passkey_buckets": buckets(rows[0]),
            "passkey_accuracy": rows[0]["passkey_accuracy"]}
