#!/usr/bin/python3
"""report.py -- results.md from the science driver's results.json; every
number in it comes from that JSON.
  report.py RESULTS.json OUT.md"""
import json
import math
import statistics
import sys


def ms(xs, fmt="{:.2f}"):
    if not xs:
        return "—"
    if len(xs) == 1:
        return fmt.format(xs[0])
    sd = fmt.replace("+", "").format(statistics.stdev(xs))
    return f"{fmt.format(statistics.mean(xs))} ± {sd}"


def acc(row):
    c = sum(b["correct"] for b in row["passkey"])
    n = sum(b["trials"] for b in row["passkey"])
    return 100.0 * c / n if n else float("nan")


def arms(res):
    """(arm key, label, [(seed, rows)]): one arm per model name and rule."""
    out = {}
    for m in res["models"]:
        for rule, rows in m["evals"].items():
            key = m["name"] if rule == "own" else f"{m['name']}@{rule}"
            label = m["label"] + ("" if rule == "own" else ", scored at g = L'/L")
            out.setdefault(key, (label, []))[1].append((m["seed"], rows))
    return out


def paired(A, key, w):
    """E² minus arm `key` at window w, per fine-tune seed (an arm with one
    unseeded model, seed 0, pairs with every seed): (Δ perplexity list,
    Δ passkey points list)."""
    e2 = {s: rows for s, rows in A["e2"][1]}
    other = {s: rows for s, rows in A[key][1]}
    dp, da = [], []
    for s in sorted(e2):
        o_rows = other.get(s) or (other.get(0) if len(other) == 1 and 0 in other else None)
        if o_rows is None:
            continue
        re = [r for r in e2[s] if r["window"] == w][0]
        ro = [r for r in o_rows if r["window"] == w][0]
        dp.append(re["perplexity"] - ro["perplexity"])
        da.append(acc(re) - acc(ro))
    return dp, da


def one_sign(xs):
    return len(xs) > 1 and (all(x < 0 for x in xs) or all(x > 0 for x in xs))


def signs(res):
    """{(baseline, window, metric): +1 / -1} for every paired difference
    E² minus baseline whose sign every fine-tune seed shares (metric
    "passkey": +1 = E² retrieves better; "ppl": -1 = E² lower), and only
    for the metrics whose gate passed."""
    A = arms(res)
    g = res["gates"]
    out = {}
    if "e2" not in A:
        return out
    wins = sorted({r["window"] for _, rows in A["e2"][1] for r in rows})
    for key in A:
        if key == "e2":
            continue
        for w in wins:
            dp, da = paired(A, key, w)
            for metric, xs, ok in (("passkey", da, g["retrieval"]), ("ppl", dp, g["perplexity"])):
                if ok and one_sign(xs):
                    out[(key, w, metric)] = 1 if xs[0] > 0 else -1
    return out


def agreement(results):
    """Markdown list of the paired differences whose sign is shared by
    every fine-tune seed of every base in `results` (a list of
    results.json dicts run with the same arms and windows)."""
    sets = [signs(r) for r in results]
    L = results[0]["config"]["L"]
    common = [k for k in sets[0] if all(k in s and s[k] == sets[0][k] for s in sets[1:])]
    o = []
    for key, w, metric in sorted(common, key=lambda k: (k[2], k[0], k[1])):
        sign = sets[0][(key, w, metric)]
        if metric == "passkey":
            what = "retrieves better" if sign > 0 else "retrieves worse"
        else:
            what = "has lower perplexity" if sign < 0 else "has higher perplexity"
        o.append(f"* at {w // L}× L, E² {what} than `{key}`")
    return o


def write(res, out_dir):
    with open(f"{out_dir}/results.md", "w") as f:
        f.write(render(res))


def render(res):
    cfg = res["config"]
    L = cfg["L"]
    A = arms(res)
    wins = [L * x for x in cfg["factors"]]
    o = []
    g = res["gates"]
    o.append(f"Mode `{res['mode']}`, {res['seconds'] / 60:.1f} min on `{res['host']}`, {res.get('cpu', '?')} "
             f"(started {res['started']}); command `{res.get('command', '?')}`.\n")
    o.append("**Gates** (the base model, before any fine-tune):\n")
    for line in g["lines"]:
        o.append(f"* {line}")
    if not g["retrieval"]:
        o.append("\n**The retrieval gate failed: the passkey numbers below cannot show whether a method extends "
                 "retrieval past L.**")
    if not g["perplexity"]:
        o.append("\n**The perplexity gate failed: the perplexity numbers below cannot show whether a method "
                 "extends context use on text (no perplexity claims are made).**")
    o.append("")
    o.append(f"Retrieval: passkey exact match (%, {cfg['K']} key tokens, {cfg['pk_trials']} trials per window in "
             f"{cfg['buckets']} depth buckets); perplexity: held-out text, the same {cfg['ppl_tokens']} final "
             f"tokens at every window. Mean ± sd over fine-tune seeds.\n")
    hdr = "| method | " + " | ".join(f"{w // L}× ({w})" for w in wins) + " |"
    sep = "|---" * (len(wins) + 1) + "|"
    for title, fn, fmt in (("Passkey exact match (%)", acc, "{:.1f}"), ("Perplexity", lambda r: r["perplexity"], "{:.3f}")):
        o.append(f"### {title}\n")
        o.append(hdr)
        o.append(sep)
        for key, (label, runs) in A.items():
            cells = []
            for w in wins:
                xs = [fn(r) for _, rows in runs for r in rows if r["window"] == w]
                cells.append(ms(xs, fmt))
            o.append(f"| {label} (`{key}`, n={len(runs)}) | " + " | ".join(cells) + " |")
        o.append("")
    # Context use beyond L: does a longer window ever beat the control at L?
    if "none" in A:
        ref = statistics.mean(r["perplexity"] for _, rows in A["none"][1] for r in rows if r["window"] == L)
        o.append("### Does any method turn context beyond L into lower perplexity?\n")
        o.append(f"Each arm's lowest mean perplexity at a window above L, against the control's at L "
                 f"({ref:.3f}); below it means the arm used the extra context.\n")
        o.append("| method | best window > L | its perplexity | minus control at L |")
        o.append("|---|---|---|---|")
        for key, (label, runs) in A.items():
            best = None
            for w in wins:
                if w <= L:
                    continue
                xs = [r["perplexity"] for _, rows in runs for r in rows if r["window"] == w]
                if xs and (best is None or statistics.mean(xs) < best[1]):
                    best = (w, statistics.mean(xs))
            if best:
                o.append(f"| `{key}` | {best[0] // L}× | {best[1]:.3f} | {best[1] - ref:+.3f} |")
        o.append("")
    # Depth buckets.
    o.append("### Passkey exact match by depth bucket (%, mean over seeds)\n")
    nb = cfg["buckets"]
    o.append("| method | window | " + " | ".join(f"bucket {b}" for b in range(nb)) + " |")
    o.append("|---|---" + "|---" * nb + "|")
    for key, (label, runs) in A.items():
        for w in wins:
            cells = []
            for b in range(nb):
                xs = [100.0 * r["passkey"][b]["correct"] / r["passkey"][b]["trials"]
                      for _, rows in runs for r in rows if r["window"] == w and len(r["passkey"]) > b]
                cells.append(ms(xs, "{:.0f}") if xs else "—")
            o.append(f"| `{key}` | {w // L}× | " + " | ".join(cells) + " |")
    o.append("")
    # Paired differences.
    if "e2" in A:
        o.append("### Paired differences, E² minus each baseline (same fine-tune seed)\n")
        o.append("Perplexity difference (negative: E² better) and passkey difference (points; positive: E² "
                 "better). `all seeds` marks a sign shared by every seed; claims below use only those.\n")
        o.append("| baseline | window | Δ perplexity | all seeds | Δ passkey | all seeds |")
        o.append("|---|---|---|---|---|---|")
        claims = []
        for key, (label, runs) in A.items():
            if key == "e2":
                continue
            for w in wins:
                dp, da = paired(A, key, w)
                if not dp:
                    continue
                sp = "yes" if one_sign(dp) else "no"
                sa = "yes" if one_sign(da) else "no"
                o.append(f"| `{key}` | {w // L}× | {ms(dp, '{:+.3f}')} | {sp} | {ms(da, '{:+.1f}')} | {sa} |")
                if sa == "yes" and g["retrieval"]:
                    claims.append(f"at {w // L}× L, E² {'retrieves better' if da[0] > 0 else 'retrieves worse'} than "
                                  f"`{key}` in all {len(da)} seeds ({ms(da, '{:+.1f}')} points)")
                if sp == "yes" and g["perplexity"]:
                    claims.append(f"at {w // L}× L, E² has {'lower' if dp[0] < 0 else 'higher'} perplexity than "
                                  f"`{key}` in all {len(dp)} seeds ({ms(dp, '{:+.3f}')})")
        o.append("")
        o.append("### What all seeds agree on\n")
        if not g["retrieval"]:
            o.append("(No retrieval claims: the base failed the retrieval gate, so passkey differences are noise "
                     "around chance.)\n")
        if not g["perplexity"]:
            o.append("(No perplexity claims: the base failed the perplexity gate.)\n")
        o.extend(f"* {c}" for c in claims) if claims else o.append("* nothing: no difference has one sign in every seed.")
        o.append("")
    return "\n".join(o) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        r = json.load(f)
    with open(sys.argv[2], "w") as f:
        f.write(render(r))
