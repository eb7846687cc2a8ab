#!/usr/bin/python3
"""make_docs.py -- docs/results.md from the committed JSON of the science
experiment: docs/results/science_curve.json (curve.py: the base model's
learning curve and gate measurements) and, when present,
docs/results/science.json (driver.py: gates, fine-tunes, evaluations).
Every number in the page is read from those files.
  make_docs.py [--curve JSON] [--results JSON] [--out docs/results.md]"""
import argparse
import glob
import json
import os

import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def curve_section(c, name):
    cfg = c["config"]
    L = cfg["L"]
    o = [f"## A base model's learning curve (gate measurements; `{name}`)\n",
         f"Command: `{c.get('command', 'examples/e2-science/curve.py')}`; pretraining took "
         f"{c['train_seconds'] / 60:.1f} min on `{c.get('host', '?')}`"
         f"{' (' + c['cpu'] + ')' if c.get('cpu') else ''}.\n",
         f"Model: Llama, vocab 256, hidden {cfg['hidden']}, {cfg['layers']} layers, {cfg['heads']} heads, "
         f"SwiGLU {cfg['inter']}, tied embeddings; window L = {L}; batch {cfg['batch']} × {L} tokens, "
         f"lr {cfg['pre_lr']} cosine; corpus slots (text, passkey, kv, copy) = {cfg['mix']} %; passkey key "
         f"of {cfg['K']} symbol(s) (chance {100 / 10 ** cfg['K']:.0f} %), {cfg['pk_trials']} trials in "
         f"{cfg['buckets']} depth buckets.\n"]
    wins = sorted(c["rows"][0]["ppl_by_window"], key=int)
    nb = len(c["rows"][0]["passkey_buckets"])
    o.append("| step | " + " | ".join(f"ppl @ {w}" for w in wins) + " | " +
             " | ".join(f"passkey bucket {b} (%)" for b in range(nb)) + " |")
    o.append("|---" * (1 + len(wins) + nb) + "|")
    for r in c["rows"]:
        o.append(f"| {r['step']} | " + " | ".join(f"{r['ppl_by_window'][w]:.3f}" for w in wins) + " | " +
                 " | ".join(f"{100 * b['correct'] / b['trials']:.0f}" for b in r["passkey_buckets"]) + " |")
    o.append("")
    return "\n".join(o)


def designs_section(paths):
    """The gate measurements of the corpus designs tried for the base
    (driver.py runs stopped at the gates: docs/results/science_design_*.json)."""
    o = ["## Base designs tried (driver.py stopped at the gates)\n",
         "Each row is a pretraining run of `driver.py` that stopped at the gates; its JSON holds the "
         "full config and command. Slots (text, passkey, kv, copy) in percent; phrases: how many phrases a "
         "text document owns (fewer phrases, more of them recur within L).\n",
         "| JSON | slots | phrases | steps | lr | pretraining (min) | gate 1 | gate 2 |",
         "|---|---|---|---|---|---|---|---|"]
    for path in paths:
        with open(path) as f:
            r = json.load(f)
        c, g = r["config"], r["gates"]
        cells = [line.split(": ", 1)[1] for line in g["lines"]]
        o.append(f"| `{os.path.relpath(path, ROOT)}` | {tuple(c['mix'])} | {c.get('text_phrases', 256)} | "
                 f"{c['pre_steps']} | {c['pre_lr']} | "
                 f"{r.get('pretrain_seconds', 0) / 60:.1f} | {cells[0]} | {cells[1]} |")
    o.append("")
    return "\n".join(o)


def lr_section(runs):
    """The fine-tune learning-rate sweep: `runs` is [(lr, results.json)],
    the same base, arms and seeds at each rate. For every arm and rate:
    mean passkey (%) at each window above L and mean perplexity at L; then
    each arm at its best rate (highest mean passkey over the windows
    above L, chosen on these same evaluations)."""
    cfg = runs[0][1]["config"]
    L = cfg["L"]
    wins = [L * f for f in cfg["factors"] if f > 1]
    table = {}  # arm -> lr -> (passkey means by window, ppl at L, label)
    for lr, res in runs:
        for key, (label, arm_runs) in report.arms(res).items():
            if key in ("ntk", "base"):
                continue
            pk = [sum(report.acc(r) for _, rows in arm_runs for r in rows if r["window"] == w) / len(arm_runs)
                  for w in wins]
            ppl = sum(r["perplexity"] for _, rows in arm_runs for r in rows if r["window"] == L) / len(arm_runs)
            table.setdefault(key, {})[lr] = (pk, ppl, len(arm_runs))
    o = ["## Fine-tune learning rate (base 1; driver.py --set ft_lr=...)\n",
         "Each arm at each rate, mean over its fine-tune seeds: passkey exact match (%) at the windows "
         "above L and perplexity at L. The main tables use 2e-4 for every arm.\n",
         "| arm | lr | n | " + " | ".join(f"passkey {w // L}×" for w in wins) + f" | ppl at L ({L}) |",
         "|---|---|---" + "|---" * len(wins) + "|---|"]
    best = {}
    for key in table:
        for lr in sorted(table[key]):
            pk, ppl, n = table[key][lr]
            o.append(f"| `{key}` | {lr:g} | {n} | " + " | ".join(f"{x:.1f}" for x in pk) + f" | {ppl:.3f} |")
        best[key] = max(table[key], key=lambda lr: sum(table[key][lr][0]))
    o.append("")
    o.append("Each arm at its best rate (the highest mean passkey over the windows above L; the rate is chosen on "
             "the same evaluations it is scored on, which favours every arm alike):\n")
    o.append("| arm | best lr | " + " | ".join(f"passkey {w // L}×" for w in wins) + " |")
    o.append("|---|---" + "|---" * len(wins) + "|")
    for key in table:
        pk = table[key][best[key]][0]
        o.append(f"| `{key}` | {best[key]:g} | " + " | ".join(f"{x:.1f}" for x in pk) + " |")
    o.append("")
    return "\n".join(o)


def load(path):
    with open(path) as f:
        return json.load(f)


def agreement_lines(results):
    """report.agreement as markdown lines, or a line saying there is none."""
    lines = report.agreement(results)
    return ("\n".join(lines) if lines else "* nothing: no difference has one sign everywhere.") + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curve", action="append",
                    help="curve.py JSON (repeatable; default docs/results/science_curve*.json)")
    ap.add_argument("--results", default=os.path.join(ROOT, "docs/results/science.json"))
    ap.add_argument("--intro", default=os.path.join(HERE, "results_intro.md"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/results.md"))
    a = ap.parse_args()
    results = os.path.join(ROOT, "docs/results")
    with open(a.intro) as f:
        parts = [f.read()]
    curves = a.curve or sorted(glob.glob(os.path.join(results, "science_curve*.json")))
    for path in curves:
        parts.append(curve_section(load(path), os.path.relpath(path, ROOT)))
    designs = sorted(glob.glob(os.path.join(results, "science_design_*.json")))
    if designs:
        parts.append(designs_section(designs))
    res = load(a.results) if os.path.exists(a.results) else None
    if res:
        parts.append("## The experiment (driver.py)\n")
        parts.append(report.render(res))
    else:
        parts.append("## The experiment (driver.py)\n\nNot run to the end in this session: see the intro.\n")
    base2 = os.path.join(results, "science_base2.json")
    if res and os.path.exists(base2):
        res2 = load(base2)
        parts.append("## The experiment on a second pretraining seed (driver.py --set pre_seed=2)\n")
        parts.append(report.render(res2))
        parts.append("## What every fine-tune seed of both bases agrees on\n")
        parts.append("Paired differences (E² minus the baseline, same fine-tune seed) whose sign is the same in "
                     "all fine-tune seeds on both pretraining seeds; only metrics whose gates passed on both.\n")
        parts.append(agreement_lines([res, res2]))
    # The learning-rate sweep on base 1: the science_lr_*.json runs and the main run.
    sweep = {}
    if res:
        for path in sorted(glob.glob(os.path.join(results, "science_lr_*.json"))):
            r = load(path)
            sweep[r["config"]["ft_lr"]] = r
    if sweep:
        sweep[res["config"]["ft_lr"]] = res
        parts.append(lr_section(sorted(sweep.items(), key=lambda kv: kv[0])))
    for path in sorted(glob.glob(os.path.join(results, "science_base2_lr_*.json"))):
        res2 = load(path)
        lr = res2["config"]["ft_lr"]
        parts.append(f"## Both bases at fine-tune rate {lr:g} (`{os.path.relpath(path, ROOT)}`: base 2; base 1's run "
                     f"is in the sweep above)\n")
        parts.append(report.render(res2))
        if lr in sweep:
            parts.append(f"### What every fine-tune seed of both bases agrees on at rate {lr:g}\n")
            parts.append(agreement_lines([sweep[lr], res2]))
    abls = []
    for name, title in (("science_ablations.json", "base 1"), ("science_ablations_base2.json", "base 2")):
        path = os.path.join(results, name)
        if not os.path.exists(path):
            continue
        abls.append(load(path))
        parts.append(f"## E² ablations, {title} (driver.py --ablations --arms ...; same base, fine-tune data and "
                     f"seeds as its main run)\n")
        parts.append(report.render(abls[-1]))
    if len(abls) == 2:
        parts.append("## What every fine-tune seed of both bases agrees on (ablations)\n")
        parts.append(agreement_lines(abls))
    with open(a.out, "w") as f:
        f.write("\n".join(parts))


if __name__ == "__main__":
    main()
