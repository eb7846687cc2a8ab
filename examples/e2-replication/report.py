"""report.py -- the replication's markdown table and PNG plots from
results.json (replicate.py writes it; `report.py RESULTS.json [OUT]`
redraws them and prints the table). Plots: perplexity vs window, passkey accuracy vs window,
passkey accuracy by window and depth (one panel per model)."""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter  # noqa: E402

# (colour, marker); "pose" is drawn with hollow, larger markers and a dotted
# line so that it stays visible where it coincides with "pi".
STYLE = {"base": ("black", "o"), "none": ("grey", "v"), "e2": ("tab:red", "s"), "pi": ("tab:blue", "^"),
         "pose": ("tab:green", "D"), "pi_long": ("tab:purple", "P"), "e2_no_offset": ("tab:orange", "x"),
         "e2_no_scale": ("tab:brown", "*"), "e2_no_sink": ("tab:pink", "h")}


def ppl_by_window(m, L):
    """(scaled, g1): {window: perplexity} with g = L'/L, and with g = 1."""
    scaled, g1 = {}, {}
    for r in m["perplexity"]:
        if abs(r["g"] * L - r["window"]) < 1e-6:
            scaled[r["window"]] = r["perplexity"]
        if r["g"] == 1.0:
            g1[r["window"]] = r["perplexity"]
    return scaled, g1


def passkey_by_window(m, g):
    """{window: (correct, trials)} summed over depth buckets."""
    acc = {}
    for p in m["passkey"]:
        if p["g"] != g:
            continue
        c, n = acc.get(p["window"], (0, 0))
        acc[p["window"]] = (c + p["correct"], n + p["trials"])
    return acc


def passkey_grid(m, g, windows, buckets):
    """accuracy[window index][bucket] (None when not evaluated)."""
    grid = [[None] * buckets for _ in windows]
    for p in m["passkey"]:
        if p["g"] == g and p["window"] in windows and p["trials"]:
            grid[windows.index(p["window"])][p["bucket"]] = p["correct"] / p["trials"]
    return grid


def fmt_ppl(x):
    if x is None:
        return "–"
    return f"{x:.2f}" if x < 1000 else f"{x:.3g}"


def table(res):
    """The markdown table: perplexity and passkey accuracy per model and window."""
    cfg = res["config"]
    L = cfg["L"]
    windows = [L * f for f in cfg["factors"]]
    head = "| model | g | " + " | ".join(f"{w} ({w // L}×)" for w in windows) + " |"
    sep = "|---|---|" + "---|" * len(windows)
    lines = ["Perplexity (bytes, held-out prose; lower is better):", "", head, sep]
    for m in res["models"]:
        scaled, g1 = ppl_by_window(m, L)
        lines.append(f"| {m['label']} | L'/L | " + " | ".join(fmt_ppl(scaled.get(w)) for w in windows) + " |")
        if len(g1) > 1:
            lines.append(f"| {m['label']} | 1 | " + " | ".join(fmt_ppl(g1.get(w)) for w in windows) + " |")
    lines += ["", f"Passkey accuracy ({cfg['digits']}-digit key, all digits right by greedy decoding; "
                  f"trials per window, spread over {cfg['depth_buckets']} depth buckets, in brackets):", "",
              head, sep]
    for m in res["models"]:
        for g, gl in (("gL", "L'/L"), ("g1", "1")):
            acc = passkey_by_window(m, g)
            if not acc:
                continue
            if g == "g1":
                acc[L] = passkey_by_window(m, "gL").get(L, (0, 0))
            cells = []
            for w in windows:
                c, n = acc.get(w, (0, 0))
                cells.append(f"{100.0 * c / n:.0f}% ({n})" if n else "–")
            lines.append(f"| {m['label']} | {gl} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(res):
    """A short version: perplexity and passkey at g = L'/L per model."""
    cfg = res["config"]
    L = cfg["L"]
    windows = [L * f for f in cfg["factors"]]
    lines = ["e2 replication (ppl / passkey %) at L' = " + ", ".join(f"{w // L}x" for w in windows)]
    w0 = max(len(m["name"]) for m in res["models"])
    for m in res["models"]:
        scaled, _ = ppl_by_window(m, L)
        acc = passkey_by_window(m, "gL")
        cells = []
        for w in windows:
            c, n = acc.get(w, (0, 0))
            cells.append(f"{fmt_ppl(scaled.get(w)):>6} / {(100.0 * c / n if n else float('nan')):3.0f}")
        lines.append(f"  {m['name']:<{w0}}  " + "  ".join(cells))
    return "\n".join(lines) + "\n"


def plots(res, out):
    cfg = res["config"]
    L = cfg["L"]
    windows = [L * f for f in cfg["factors"]]
    files = []

    # perplexity vs window
    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=90)
    values = []
    for m in res["models"]:
        col, mk = STYLE.get(m["name"], ("black", "."))
        scaled, g1 = ppl_by_window(m, L)
        values += list(scaled.values()) + list(g1.values())
        ws = [w for w in windows if w in scaled]
        kw = dict(linestyle=":", markerfacecolor="none", markersize=10) if m["name"] == "pose" else {}
        ax.plot(ws, [scaled[w] for w in ws], color=col, marker=mk, label=f"{m['label']}, g = L'/L", **kw)
        if len(g1) > 1:
            ws = [w for w in windows if w in g1]
            ax.plot(ws, [g1[w] for w in ws], color=col, marker=mk, linestyle="--", label=f"{m['label']}, g = 1")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(windows, [f"{w}\n({w // L}×L)" for w in windows])
    ax.set_xlabel("evaluation window L' (tokens = bytes)")
    ax.set_ylabel("perplexity (held-out prose, log scale)")
    ax.set_title(f"Perplexity vs window (original window L = {L})")
    ticks = [t for t in (2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 50, 70, 100, 150, 200, 300)
             if values and min(values) * 0.9 <= t <= max(values) * 1.1]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    files.append("perplexity_vs_window.png")
    fig.savefig(os.path.join(out, files[-1]))
    plt.close(fig)

    # passkey vs window
    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=90)
    for m in res["models"]:
        col, mk = STYLE.get(m["name"], ("black", "."))
        for g, ls, gl in (("gL", "-", "g = L'/L"), ("g1", "--", "g = 1")):
            acc = passkey_by_window(m, g)
            if not acc:
                continue
            if g == "g1":
                acc[L] = passkey_by_window(m, "gL").get(L, (0, 0))
            ws = [w for w in windows if acc.get(w, (0, 0))[1]]
            kw = dict(markerfacecolor="none", markersize=10) if m["name"] == "pose" else {}
            ax.plot(ws, [100.0 * acc[w][0] / acc[w][1] for w in ws], color=col, marker=mk, linestyle=ls,
                    label=f"{m['label']}, {gl}", **kw)
    ax.set_xscale("log", base=2)
    ax.set_xticks(windows, [f"{w}\n({w // L}×L)" for w in windows])
    ax.set_ylim(-3, 103)
    ax.set_xlabel("evaluation window L' (tokens = bytes)")
    ax.set_ylabel("passkey accuracy (%)")
    ax.set_title(f"Passkey retrieval vs window ({cfg['pk_trials']} trials per window)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    files.append("passkey_vs_window.png")
    fig.savefig(os.path.join(out, files[-1]))
    plt.close(fig)

    # passkey by window and depth
    nb = cfg["depth_buckets"]
    ms = res["models"]
    cols = min(4, len(ms))
    rows = math.ceil(len(ms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols + 1.2, 2.5 * rows + 0.6), dpi=80, squeeze=False,
                             layout="constrained")
    im = None
    for i, m in enumerate(ms):
        ax = axes[i // cols][i % cols]
        grid = passkey_grid(m, "gL", windows, nb)
        data = [[(v if v is not None else float("nan")) * 100 for v in row] for row in grid]
        im = ax.imshow(data, vmin=0, vmax=100, cmap="viridis", origin="lower", aspect="auto")
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if v is not None:
                    ax.text(c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if v < 0.6 else "black")
        ax.set_title(m["label"], fontsize=8)
        ax.set_xticks(range(nb), [f"{100 * (b + 0.5) / nb:.0f}" for b in range(nb)], fontsize=7)
        ax.set_yticks(range(len(windows)), [f"{w // L}×" for w in windows], fontsize=7)
        ax.set_xlabel("key depth (% of filler)", fontsize=7)
        if i % cols == 0:
            ax.set_ylabel("window L' (g = L'/L)", fontsize=7)
    for j in range(len(ms), rows * cols):
        axes[j // cols][j % cols].axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="passkey accuracy (%), g = L'/L")
    fig.suptitle("Passkey accuracy by window and depth", fontsize=10)
    files.append("passkey_by_depth.png")
    fig.savefig(os.path.join(out, files[-1]))
    plt.close(fig)
    return files


def write(res, out):
    md = table(res)
    files = plots(res, out)
    cfg = res["config"]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"# e2 replication results ({res['mode']} mode)\n\n")
        f.write(f"Corpus: {res['corpus']['description']}. L = {cfg['L']}, ran in "
                f"{res['seconds'] / 60:.1f} min.\n\n")
        f.write(md)
        f.write("\n" + "\n".join(f"![{p}]({p})" for p in files) + "\n")
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(summary(res))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: report.py RESULTS.json [OUT_DIR]")
    with open(sys.argv[1]) as f:
        r = json.load(f)
    write(r, sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(sys.argv[1])))
    print(table(r), end="")
