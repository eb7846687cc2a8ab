#!/usr/bin/python3
"""curve.py -- the learning curve of a retrieval pretraining design: trains
the base model with checkpoints every --every steps, then scores every
checkpoint's passkey exact match at L by depth bucket and the held-out
perplexity at windows L/8..L (same final tokens). Writes OUT/curve.json.
  curve.py --e2worker BIN --out DIR [--steps N] [--every N] [--set k=v]"""
import argparse
import json
import os
import sys
import time

import corpus
import science


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--e2worker", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    cfg = science.config("full", a.set)
    cfg["pre_steps"] = a.steps
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    data = science.build_data(cfg, os.path.join(out, "data"))
    t0 = time.time()
    spec = science.pretrain_spec(cfg, os.path.join(out, "base"), data, seed=1)
    spec["checkpoint"] = {"every": a.every, "keep_last": 100}
    science.run_job(os.path.abspath(a.e2worker), spec, a.threads)
    t_train = time.time() - t0
    ck = os.path.join(out, "base", "checkpoints")
    steps = sorted(int(n[5:]) for n in os.listdir(ck) if n.startswith("step_") and n[5:].isdigit())
    rows = []
    for s in steps:
        r = science.score_base(os.path.abspath(a.e2worker), cfg, os.path.join(ck, f"step_{s}"), data,
                               os.path.join(out, f"eval_{s}"), a.threads)
        r["step"] = s
        rows.append(r)
        print(json.dumps(r), flush=True)
    with open(os.path.join(out, "curve.json"), "w") as f:
        json.dump({"config": cfg, "train_seconds": t_train, "rows": rows, "host": os.uname().machine,
                   "cpu": science.machine(), "command": "examples/e2-science/curve.py " + " ".join(sys.argv[1:])},
                  f, indent=1)


if __name__ == "__main__":
    main()
