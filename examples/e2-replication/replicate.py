#!/usr/bin/python3
"""replicate.py -- a small-scale replication of E²-LLM (arXiv 2401.06951)
with e2worker: pretrain a byte-level Llama at a short window L, fine-tune it
the same way with E², PI, PoSE (chunked skip positions), PI at its target
length and no augmentation, then evaluate every model at 1x..16x L (perplexity on
held-out prose, passkey retrieval by window and depth) and write a markdown
table and PNG plots.

Everything is a pure function of the seeds below: corpus (Debian's
`fortunes` texts, BSD licence, held-out files for evaluation; synthetic
passkey documents mixed in), jobs (e2worker run specs) and evaluation
trials. Usage: see `replicate.py --help` or examples/e2-replication/run.sh.
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

EOT = 256
VOCAB = 257
FORTUNES = "/usr/share/games/fortunes"
# Held-out prose: these files never enter training.
EVAL_FILES = ("literature", "people", "wisdom")

# The passkey prompt. KEY_PRE/KEY_POST are e2worker's built-in texts (they
# surround the hidden key in its passkey evaluation); the others are given
# to it as token ids in the spec (eval.prompt_prefix_tokens, ...).
PK_PREFIX = ""
PK_FILLER = ("The grass grows green. The sky looks blue. The sun shines yellow. Here we go. "
             "There and back again. ")
PK_KEY_PRE = "The pass key is "
PK_KEY_POST = ". Remember it. "
PK_SUFFIX = "\nThe pass key is "

# Sizes per mode. full: the committed experiment (6 minutes on 2 quiet
# cores, 21 under heavy load); tiny: the smoke test (seconds).
MODES = {
    "full": dict(L=128, hidden=96, layers=3, heads=3, inter=256,
                 pre_steps=1000, pre_lr=3e-3, ft_steps=200, ft_lr=1e-3, batch=16,
                 passkey_frac=0.5, digits=5, pk_trials=100, depth_buckets=5,
                 factors=(1, 2, 4, 8, 16), ppl_tokens=8192, corpus_bytes=0),
    "tiny": dict(L=128, hidden=32, layers=2, heads=2, inter=64,
                 pre_steps=4, pre_lr=3e-3, ft_steps=2, ft_lr=1e-3, batch=2,
                 passkey_frac=0.5, digits=5, pk_trials=2, depth_buckets=2,
                 factors=(1, 2), ppl_tokens=256, corpus_bytes=200000),
}

# Fine-tuning methods: (name, label, augment overrides, R in units of L).
METHODS = [
    ("e2", "E² (g_max 20, 4 sinks)", {"method": "e2", "g_max": 20, "n_sink": 4}, 1),
    ("pi", "PI g=8 at R=L", {"method": "pi", "fixed_g": 8, "n_sink": 0}, 1),
    ("pose", "PoSE, 2 chunks, target 8L", {"method": "pose", "pose_chunks": 2, "n_sink": 0}, 1),
    ("pi_long", "PI g=8 at R=8L", {"method": "pi", "fixed_g": 8, "n_sink": 0}, 8),
    ("none", "no augmentation (control)", {"method": "none", "n_sink": 0}, 1),
]
# Ablations of E² (--ablations). "no offset" is E² with
# augment.random_offset = false (g drawn as in E², t = 0); "no scale" is
# E² with one g (g_weights all on g = 8; random t, the 4 sinks).
ABLATIONS = [
    ("e2_no_offset", "E² without offset aug.", {"method": "e2", "g_max": 20, "n_sink": 4, "random_offset": False}, 1),
    ("e2_no_scale", "E² without scale aug. (g=8)",
     {"method": "e2", "g_max": 8, "g_weights": [0] * 7 + [1], "n_sink": 4}, 1),
    ("e2_no_sink", "E² with n_sink = 0", {"method": "e2", "g_max": 20, "n_sink": 0}, 1),
]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- corpus

def write_shard(path, tokens):
    """llm.c token shard: 256 x int32 header (magic 20240520, version 1,
    count), then uint16 tokens."""
    header = [0] * 256
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack(f"<{len(tokens)}H", *tokens))
    os.replace(path + ".tmp", path)


def fill(n):
    """n filler bytes, the filler text repeated from its start (as e2worker)."""
    return [ord(PK_FILLER[i % len(PK_FILLER)]) for i in range(n)]


def enc(s):
    return list(s.encode("latin-1"))


def prompt_fixed_len(digits):
    """Tokens of a passkey document that are not filler (EOT included)."""
    return 1 + len(PK_PREFIX) + len(PK_KEY_PRE) + digits + len(PK_KEY_POST) + len(PK_SUFFIX) + digits


def passkey_doc(rng, L, digits):
    """One training document of exactly L tokens, the layout e2worker's
    passkey evaluation uses: EOT, prefix, filler, "The pass key is KEY.
    Remember it. ", filler, question, KEY. The filler before or after the
    key is sometimes two pieces, each from the filler's start (kept so the
    committed corpus, and with it every result, stays the same)."""
    key = [ord("0") + rng.randrange(10) for _ in range(digits)]
    n_fill = L - prompt_fixed_len(digits)
    before = rng.randrange(n_fill + 1)
    if before > 1 and rng.random() < 0.5:
        cut = rng.randrange(1, before)
        pre = fill(cut) + fill(before - cut)
    else:
        pre = fill(before)
    after = n_fill - before
    if after > 1 and rng.random() < 0.5:
        cut = rng.randrange(1, after)
        post = fill(cut) + fill(after - cut)
    else:
        post = fill(after)
    doc = [EOT] + enc(PK_PREFIX) + pre + enc(PK_KEY_PRE) + key + enc(PK_KEY_POST) + post + enc(PK_SUFFIX) + key
    assert len(doc) == L
    return doc


def synthetic_text(seed, n_bytes):
    """Deterministic English-like sentences, used only when Debian's
    fortunes package is missing (the tiny mode may run without it)."""
    rng = random.Random(seed)
    subj = ["the old man", "a small dog", "the river", "my neighbour", "the machine", "a teacher"]
    verb = ["walks to", "looks at", "thinks about", "remembers", "builds", "follows"]
    obj = ["the market", "a quiet house", "the last train", "an open window", "the garden"]
    out = []
    size = 0
    while size < n_bytes:
        s = f"{rng.choice(subj).capitalize()} {rng.choice(verb)} {rng.choice(obj)}. "
        out.append(s)
        size += len(s)
    return "".join(out)[:n_bytes]


def corpus_docs(cfg):
    """(train documents, eval documents, description), each a byte string."""
    if os.path.isdir(FORTUNES):
        names = sorted(n for n in os.listdir(FORTUNES)
                       if "." not in n and os.path.isfile(os.path.join(FORTUNES, n)))
        docs = {}
        for n in names:
            with open(os.path.join(FORTUNES, n), "rb") as f:
                docs[n] = f.read().replace(b"\n%\n", b"\n\n")
        train = [docs[n] for n in names if n not in EVAL_FILES]
        held = [docs[n] for n in names if n in EVAL_FILES]
        if train and held:
            desc = (f"Debian package `fortunes` ({FORTUNES}, BSD licence): {len(train)} files for "
                    f"training, {', '.join(EVAL_FILES)} held out for evaluation")
            if cfg["corpus_bytes"]:
                train = [b"".join(train)[:cfg["corpus_bytes"]]]
                held = [b"".join(held)[:cfg["corpus_bytes"] // 4]]
            return train, held, desc
    n = cfg["corpus_bytes"] or 3_000_000
    return ([synthetic_text(1, n).encode()], [synthetic_text(2, max(n // 4, 20000)).encode()],
            "synthetic sentences (Debian's `fortunes` package is not installed)")


def build_corpus(cfg, out, seed):
    """Train shard: slots of L tokens (prose cut from the training stream,
    and passkey documents) in a seeded order, so that every training sample
    (a window starting at a multiple of R, R a multiple of L) holds whole
    passkey documents. Eval shard: held-out prose only."""
    L = cfg["L"]
    train_docs, eval_docs, desc = corpus_docs(cfg)
    stream = []
    for d in train_docs:
        stream.append(EOT)
        stream.extend(d)
    prose = [stream[i:i + L] for i in range(0, len(stream) - L + 1, L)]
    frac = cfg["passkey_frac"]
    n_pk = int(round(len(prose) * frac / (1 - frac)))
    rng = random.Random(seed)
    kinds = [0] * len(prose) + [1] * n_pk
    rng.shuffle(kinds)
    tokens, pi = [], 0
    for k in kinds:
        if k:
            tokens.extend(passkey_doc(rng, L, cfg["digits"]))
        else:
            tokens.extend(prose[pi])
            pi += 1
    tokens.append(EOT)
    held = []
    for d in eval_docs:
        held.append(EOT)
        held.extend(d)
    os.makedirs(out, exist_ok=True)
    write_shard(os.path.join(out, "train.bin"), tokens)
    write_shard(os.path.join(out, "eval.bin"), held)
    return dict(description=desc, train_tokens=len(tokens), eval_tokens=len(held),
                prose_slots=len(prose), passkey_docs=n_pk)


# ---------------------------------------------------------------- jobs

def model_config(cfg):
    return {"hidden_size": cfg["hidden"], "num_hidden_layers": cfg["layers"],
            "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["heads"],
            "intermediate_size": cfg["inter"], "vocab_size": VOCAB,
            "max_position_embeddings": cfg["L"], "tie_word_embeddings": True}


def ppl_eval(cfg, with_g1):
    """Perplexity at every window with g = L'/L (and g = 1 beyond L)."""
    L = cfg["L"]
    wins = [L * f for f in cfg["factors"]]
    scales = [float(f) for f in cfg["factors"]]
    if with_g1:
        extra = [w for w in wins if w > L]
        wins += extra
        scales += [1.0] * len(extra)
    return {"windows": wins, "scales": scales, "max_tokens": cfg["ppl_tokens"], "seed": 1}


def augment_spec(cfg, aug, r_mult):
    L = cfg["L"]
    a = dict(aug)
    a["train_length"] = L * r_mult
    a["original_window"] = L
    return a


def job_spec(cfg, name, out_dir, data_dir, model, aug, r_mult, steps, lr, seed, ev):
    batch = max(1, cfg["batch"] // r_mult)
    return {
        "name": name,
        "model": model,
        "data": {"train_shards": [os.path.join(data_dir, "train.bin")],
                 "eval_shards": [os.path.join(data_dir, "eval.bin")]},
        "augment": augment_spec(cfg, aug, r_mult),
        "train": {"steps": steps, "global_batch": batch, "micro_batch": batch, "lr": lr,
                  "min_lr": lr / 10, "warmup_steps": max(1, steps // 20), "schedule": "cosine",
                  "seed": seed, "grad_clip": 1.0},
        "checkpoint": {"every": 0, "keep_last": 1},
        "eval": ev,
        "output_dir": out_dir,
        "log_every": max(1, steps // 10),
    }


def e2worker_job(e2worker, spec, threads, command):
    """Writes spec into a fresh output dir, runs `e2worker COMMAND... job.json`
    (the spec's path replaces "{spec}" in command) and returns its eval.json
    rows."""
    out = spec["output_dir"]
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    path = os.path.join(out, "job.json")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    argv = [e2worker] + [path if a == "{spec}" else a for a in command]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
    with open(os.path.join(out, "stderr.txt"), "w") as errf:
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=errf, env=env)
    if p.returncode != 0:
        with open(os.path.join(out, "stderr.txt")) as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{tail}")
    with open(os.path.join(out, "eval.json")) as f:
        return json.load(f)["results"]


def run_job(e2worker, spec, threads):
    """e2worker run on a fresh output dir; returns its eval.json rows."""
    return e2worker_job(e2worker, spec, threads, ["run", "{spec}", "--fresh"])


def final_checkpoint(out_dir):
    ck = os.path.join(out_dir, "checkpoints")
    steps = sorted(int(n[5:]) for n in os.listdir(ck) if n.startswith("step_") and n[5:].isdigit())
    return os.path.join(ck, f"step_{steps[-1]}")


def passkey_spec(cfg, name, out_dir, data_dir, window, scales):
    """Passkey evaluation spec for `e2worker eval`: every scale at `window`,
    cfg["pk_trials"] trials spread evenly over cfg["depth_buckets"] depth
    buckets (eval.passkey_depth_buckets: trial i goes to bucket
    floor(i * B / trials), its key after a uniform number of filler tokens
    within the bucket's share of the window's filler)."""
    K = cfg["digits"]
    ev = {"windows": [window] * len(scales), "scales": scales, "passkey_trials": cfg["pk_trials"],
          "passkey_depth_buckets": cfg["depth_buckets"], "passkey_digits": K, "seed": 1000 + 37 * window,
          "filler_tokens": enc(PK_FILLER), "prompt_prefix_tokens": [EOT] + enc(PK_PREFIX),
          "prompt_suffix_tokens": enc(PK_SUFFIX)}
    return {
        "name": name,
        "data": {"train_shards": [os.path.join(data_dir, "train.bin")]},
        "augment": {"method": "none", "train_length": cfg["L"], "original_window": cfg["L"]},
        "eval": ev,
        "output_dir": out_dir,
    }


def eval_job(e2worker, spec, model_dir, threads):
    """e2worker eval of model_dir with spec's eval section; its eval.json rows."""
    return e2worker_job(e2worker, spec, threads, ["eval", "{spec}", "--model", model_dir])


# ---------------------------------------------------------------- experiment

def passkey_runs(e2worker, cfg, models, work, data_dir, jobs):
    """Passkey accuracy of every model at every window and depth bucket,
    keyed (model, g label, window, bucket) -> (correct, trials)."""
    L = cfg["L"]
    tasks = []
    for m in models:
        for f in cfg["factors"]:
            W = L * f
            scales = [float(f)] + ([1.0] if m["g1"] and f > 1 else [])
            if W < prompt_fixed_len(cfg["digits"]):
                continue
            out = os.path.join(work, "passkey", f"{m['name']}_w{W}")
            tasks.append((m["name"], W, m["hf_dir"], passkey_spec(cfg, f"pk-{m['name']}-{W}", out, data_dir,
                                                                   W, scales)))

    def one(t):
        name, W, model_dir, spec = t
        rows = eval_job(e2worker, spec, model_dir, 1)
        return [((name, "g1" if r["scale"] == 1.0 and W > L else "gL", W, d["bucket"]),
                 (d["correct"], d["trials"])) for r in rows for d in r["passkey_depth"]]

    res = {}
    with ThreadPoolExecutor(jobs) as ex:
        for rows in ex.map(one, tasks):
            for k, v in rows:
                res[k] = v
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--e2worker", required=True, help="path to the e2worker binary")
    ap.add_argument("--out", default="e2-replication-results", help="results folder (table, plots, json)")
    ap.add_argument("--work", default=None, help="job folders (default OUT/work)")
    ap.add_argument("--mode", choices=sorted(MODES), default="full")
    ap.add_argument("--ablations", action="store_true",
                    help="also fine-tune E² without offset aug., without scale aug., with n_sink = 0")
    ap.add_argument("--jobs", type=int, default=2, help="e2worker processes at once (default 2)")
    ap.add_argument("--seed", type=int, default=1, help="corpus and data-order seed (default 1)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a size of the mode (e.g. pre_steps=300)")
    args = ap.parse_args()
    cfg = dict(MODES[args.mode])
    for kv in args.set:
        k, _, v = kv.partition("=")
        if k not in cfg:
            sys.exit(f"replicate: --set {kv}: unknown key '{k}' (one of {', '.join(sorted(cfg))})")
        cfg[k] = type(cfg[k])(v) if not isinstance(cfg[k], tuple) else tuple(int(x) for x in v.split(","))
    e2worker = os.path.abspath(args.e2worker)
    out = os.path.abspath(args.out)
    work = os.path.abspath(args.work or os.path.join(out, "work"))
    os.makedirs(out, exist_ok=True)
    t_start = time.time()
    L = cfg["L"]
    data_dir = os.path.join(work, "data")
    corpus = build_corpus(cfg, data_dir, args.seed)
    log(f"corpus: {corpus['description']}; {corpus['train_tokens']} train tokens "
        f"({corpus['passkey_docs']} passkey documents of {L}), {corpus['eval_tokens']} eval tokens")

    # 1. the base model, pretrained at L with no augmentation.
    log(f"pretraining the base model: {cfg['pre_steps']} steps x {cfg['batch']} x {L} tokens")
    base_dir = os.path.join(work, "base")
    t0 = time.time()
    rows = run_job(e2worker, job_spec(cfg, "base", base_dir, data_dir,
                                      {"config": model_config(cfg), "init_seed": args.seed},
                                      {"method": "none", "n_sink": 0}, 1, cfg["pre_steps"], cfg["pre_lr"],
                                      args.seed, ppl_eval(cfg, True)), 1)
    base_hf = final_checkpoint(base_dir)
    models = [{"name": "base", "label": "base model (no fine-tune)", "hf_dir": base_hf, "g1": True,
               "ppl": rows, "seconds": time.time() - t0}]
    log(f"base model: {time.time() - t0:.0f} s")

    # 2. fine-tunes from the same base: same data, steps and tokens.
    methods = METHODS + (ABLATIONS if args.ablations else [])

    def finetune(m):
        name, label, aug, r_mult = m
        d = os.path.join(work, name)
        t = time.time()
        rows = run_job(e2worker, job_spec(cfg, name, d, data_dir, {"hf_dir": base_hf}, aug, r_mult,
                                          cfg["ft_steps"], cfg["ft_lr"], args.seed + 1,
                                          ppl_eval(cfg, name == "none")), 1)
        log(f"fine-tune {name}: {time.time() - t:.0f} s")
        return {"name": name, "label": label, "hf_dir": final_checkpoint(d), "g1": name == "none",
                "ppl": rows, "seconds": time.time() - t, "augment": augment_spec(cfg, aug, r_mult)}

    log(f"fine-tuning {len(methods)} models: {cfg['ft_steps']} steps x {cfg['batch'] * L} tokens each")
    with ThreadPoolExecutor(args.jobs) as ex:
        models += list(ex.map(finetune, methods))

    # 3. passkey by window and depth.
    log("passkey evaluation")
    t0 = time.time()
    pk = passkey_runs(e2worker, cfg, models, work, data_dir, args.jobs)
    log(f"passkey evaluation: {time.time() - t0:.0f} s")

    results = {"config": cfg, "corpus": corpus, "mode": args.mode, "seed": args.seed,
               "ablations": args.ablations, "seconds": time.time() - t_start, "models": []}
    for m in models:
        ppl = [{"window": r["window"], "g": r["scale"], "perplexity": r["perplexity"], "nll": r["nll"],
                "tokens": r["tokens"]} for r in m["ppl"]]
        pks = [{"g": g, "window": W, "bucket": b, "correct": c, "trials": n}
               for (name, g, W, b), (c, n) in sorted(pk.items()) if name == m["name"]]
        results["models"].append({"name": m["name"], "label": m["label"], "perplexity": ppl,
                                  "passkey": pks, "train_seconds": m["seconds"],
                                  "augment": m.get("augment")})
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    import report
    report.write(results, out)
    log(f"done in {time.time() - t_start:.0f} s: {out}/results.md")
    with open(os.path.join(out, "summary.txt")) as f:
        print(f.read(), end="")


if __name__ == "__main__":
    main()
