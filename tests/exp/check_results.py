#!/usr/bin/python3
"""check_results.py A B -- checks two tiny-mode outputs of the replication
driver (examples/e2-replication): each holds results.json, results.md,
summary.txt and three readable PNG plots, with one row per model and window
and the configured passkey trials; and both runs agree exactly (the
experiment is a pure function of its seeds, whatever the job count)."""
import json
import math
import os
import struct
import sys

EXPECTED = ["base", "e2", "pi", "pose", "pi_long", "none", "e2_no_offset", "e2_no_scale", "e2_no_sink"]
PLOTS = ["perplexity_vs_window.png", "passkey_vs_window.png", "passkey_by_depth.png"]


def fail(msg):
    print(f"exp_smoke: FAIL: {msg}")
    sys.exit(1)


def check_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        fail(f"{path} is not a PNG")
    w, h = struct.unpack(">II", data[16:24])
    if not (300 <= w <= 2000 and 200 <= h <= 2000):
        fail(f"{path}: {w}x{h} pixels is not a readable plot size")
    if len(data) > 200 * 1024:
        fail(f"{path}: {len(data)} bytes, plots must stay under 200 KB")


def check_one(d):
    with open(os.path.join(d, "results.json")) as f:
        res = json.load(f)
    cfg = res["config"]
    L = cfg["L"]
    windows = [L * f for f in cfg["factors"]]
    names = [m["name"] for m in res["models"]]
    if names != EXPECTED:
        fail(f"{d}: models {names}, expected {EXPECTED}")
    for m in res["models"]:
        scaled = {r["window"]: r for r in m["perplexity"] if abs(r["g"] * L - r["window"]) < 1e-9}
        if sorted(scaled) != windows:
            fail(f"{d}: {m['name']} has perplexity at {sorted(scaled)} with g = L'/L, expected {windows}")
        for r in m["perplexity"]:
            if not (math.isfinite(r["perplexity"]) and 1.0 < r["perplexity"] < 257.0 * 4) or r["tokens"] <= 0:
                fail(f"{d}: {m['name']} window {r['window']}: perplexity {r['perplexity']} over {r['tokens']} tokens")
        g1 = sorted(r["window"] for r in m["perplexity"] if r["g"] == 1.0 and r["window"] > L)
        want_g1 = [w for w in windows if w > L] if m["name"] in ("base", "none") else []
        if g1 != want_g1:
            fail(f"{d}: {m['name']} has g = 1 perplexity at {g1}, expected {want_g1}")
        for g in ("gL",) + (("g1",) if want_g1 else ()):
            for w in windows:
                if g == "g1" and w == L:
                    continue
                cells = [p for p in m["passkey"] if p["g"] == g and p["window"] == w]
                buckets = sorted(p["bucket"] for p in cells)
                if buckets != list(range(cfg["depth_buckets"])):
                    fail(f"{d}: {m['name']} passkey {g} window {w}: depth buckets {buckets}")
                trials = sum(p["trials"] for p in cells)
                if trials != cfg["pk_trials"] or any(not 0 <= p["correct"] <= p["trials"] for p in cells):
                    fail(f"{d}: {m['name']} passkey {g} window {w}: {trials} trials, expected {cfg['pk_trials']}")
    with open(os.path.join(d, "results.md")) as f:
        md = f.read()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    n_ppl = len(EXPECTED) + 2  # + g = 1 rows of base and control
    if len(rows) != 2 * n_ppl:
        fail(f"{d}/results.md: {len(rows)} table rows, expected {2 * n_ppl}")
    for ln in rows:
        if ln.count("|") != len(windows) + 3:
            fail(f"{d}/results.md: malformed row: {ln}")
    for p in PLOTS:
        check_png(os.path.join(d, p))
        if f"]({p})" not in md:
            fail(f"{d}/results.md does not show {p}")
    with open(os.path.join(d, "summary.txt")) as f:
        if len(f.read().splitlines()) != len(EXPECTED) + 1:
            fail(f"{d}/summary.txt: expected a header and one line per model")
    return res


def numbers(res):
    return [(m["name"], r["window"], r["g"], r["perplexity"]) for m in res["models"] for r in m["perplexity"]] + \
        [(m["name"], p["g"], p["window"], p["bucket"], p["correct"]) for m in res["models"] for p in m["passkey"]]


def main():
    a, b = check_one(sys.argv[1]), check_one(sys.argv[2])
    if numbers(a) != numbers(b):
        diff = [(x, y) for x, y in zip(numbers(a), numbers(b)) if x != y][:3]
        fail(f"two runs with the same seeds differ: {diff}")
    print(f"exp_smoke: ok ({len(EXPECTED)} models, {len(numbers(a))} figures, identical across runs)")


if __name__ == "__main__":
    main()
