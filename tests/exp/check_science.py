#!/usr/bin/python3
"""check_science.py A B -- two quick runs of examples/e2-science/driver.py:
results.json has the gates, every method x seed, NTK and the base, each
with a row per window carrying perplexity and passkey buckets; PI and the
control also scored at g = L'/L; results.md has its tables; and the two
runs (different process counts) give the same numbers."""
import copy
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../examples/e2-science"))
import report  # noqa: E402

EXPECTED = {"e2", "pi_short", "pi_long", "pose", "none", "ntk", "base"}


def load(d):
    with open(os.path.join(d, "results.json")) as f:
        r = json.load(f)
    with open(os.path.join(d, "results.md")) as f:
        md = f.read()
    return r, md


def numbers(r):
    out = {}
    for m in r["models"]:
        for rule, rows in m["evals"].items():
            for row in rows:
                out[(m["name"], m["seed"], rule, row["window"])] = (
                    row["perplexity"], tuple((b["correct"], b["trials"]) for b in row["passkey"]))
    return out


def check_agreement():
    """report.agreement keeps a paired difference only when every seed of
    every base has the same sign, and only for a metric whose gate passed."""
    def row(w, ppl, correct):
        return {"window": w, "perplexity": ppl, "passkey": [{"correct": correct, "trials": 10}]}

    def model(name, seed, ppl, correct):
        return {"name": name, "label": name, "seed": seed,
                "evals": {"own": [row(64, 7.0, 10), row(128, ppl, correct)]}}

    res = {"config": {"L": 64, "factors": [1, 2]}, "gates": {"retrieval": True, "perplexity": True},
           "models": [model("e2", 1, 8.0, 9), model("e2", 2, 8.1, 8),
                      model("none", 1, 9.0, 5), model("none", 2, 9.5, 6)]}
    lines = report.agreement([res, copy.deepcopy(res)])
    assert lines == ["* at 2× L, E² retrieves better than `none`",
                     "* at 2× L, E² has lower perplexity than `none`"], lines
    flipped = copy.deepcopy(res)
    flipped["models"][3]["evals"]["own"][1]["passkey"][0]["correct"] = 9  # seed 2: E² 8 < control 9
    lines = report.agreement([res, flipped])
    assert lines == ["* at 2× L, E² has lower perplexity than `none`"], lines
    gated = copy.deepcopy(res)
    gated["gates"]["perplexity"] = False
    lines = report.agreement([res, gated])
    assert lines == ["* at 2× L, E² retrieves better than `none`"], lines


def main():
    check_agreement()
    a, md_a = load(sys.argv[1])
    b, _ = load(sys.argv[2])
    names = {m["name"] for m in a["models"]}
    assert names == EXPECTED, f"arms {sorted(names)} != {sorted(EXPECTED)}"
    assert set(a["gates"]) >= {"retrieval", "perplexity", "lines", "base"}, a["gates"].keys()
    L = a["config"]["L"]
    wins = {L * f for f in a["config"]["factors"]}
    for m in a["models"]:
        if m["name"] in ("pi_short", "pi_long", "none"):
            assert "g_LprimeL" in m["evals"], f"{m['name']} not scored at g = L'/L"
        for rule, rows in m["evals"].items():
            assert {r["window"] for r in rows} == wins, (m["name"], rule)
            for r in rows:
                assert r["tokens"] > 0 and r["perplexity"] > 0 and r["passkey"], (m["name"], r)
    seeds = {m["seed"] for m in a["models"] if m["name"] == "e2"}
    assert len(seeds) == a["config"]["ft_seeds"], seeds
    ntk = [m for m in a["models"] if m["name"] == "ntk"][0]["evals"]["own"]
    assert any(r["theta"] > 10000 for r in ntk if r["window"] > L), "NTK did not change rope_theta beyond L"
    for h in ("Passkey exact match", "Perplexity", "Paired differences", "Gates"):
        assert h in md_a, f"results.md lacks {h}"
    na, nb = numbers(a), numbers(b)
    assert na == nb, "the two runs differ: " + str([k for k in na if na[k] != nb.get(k)][:5])
    print(f"check_science: {len(na)} rows, same in both runs")


if __name__ == "__main__":
    main()
