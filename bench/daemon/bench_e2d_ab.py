"""bench_e2d_ab -- two e2d binaries compared on a loaded machine: runs
bench_e2d against A and B in turn (A B, then B A, ...) for ROUNDS rounds
and prints, per call and client thread count, the median over the rounds
of calls/s, p50, p99 and e2d CPU per call for each binary, and B/A.
Alternating cancels most of the drift of the machine's load; the CPU per
call is the figure least disturbed by it.

Usage: python3 bench/daemon/bench_e2d_ab.py BENCH_E2D A_E2D B_E2D
           [--rounds N] [bench_e2d flags, e.g. --seconds 3 --calls get]"""

import re
import statistics
import subprocess
import sys

LINE = re.compile(r"^(\w+)\s+threads=(\d+)\s+calls=(\d+)\s+errors=(\d+)\s+"
                  r"(\d+) calls/s\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms\s+"
                  r"e2d CPU\s+([\d.]+) us/call")


def main():
    args = sys.argv[1:]
    rounds = 5
    if "--rounds" in args:
        i = args.index("--rounds")
        rounds = int(args[i + 1])
        del args[i:i + 2]
    bench, a, b, extra = args[0], args[1], args[2], args[3:]
    res = {}  # (call, threads, which) -> list of (rate, p50, p99, cpu)
    print("bench_e2d_ab: %d rounds, A=%s B=%s, bench flags %s" % (
        rounds, a, b, " ".join(extra) or "(none)"), flush=True)
    for r in range(rounds):
        for which in (("A", "B") if r % 2 == 0 else ("B", "A")):
            out = subprocess.run([bench, "--e2d", a if which == "A" else b] + extra,
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            for line in out.splitlines():
                m = LINE.match(line)
                if m:
                    key = (m.group(1), int(m.group(2)), which)
                    res.setdefault(key, []).append(
                        tuple(float(m.group(k)) for k in (5, 6, 7, 8)))
            print("round %d %s done" % (r + 1, which), file=sys.stderr, flush=True)
    print("| call | threads | A calls/s | B calls/s | A p50 ms | B p50 ms | "
          "A p99 ms | B p99 ms | A CPU us/call | B CPU us/call | B/A CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for call, threads in sorted({(k[0], k[1]) for k in res},
                                key=lambda k: (k[0], k[1])):
        med = {w: [statistics.median(v[i] for v in res[(call, threads, w)])
                   for i in range(4)] for w in ("A", "B")}
        ma, mb = med["A"], med["B"]
        print("| %s | %d | %.0f | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f "
              "| %.2f |" % (call, threads, ma[0], mb[0], ma[1], mb[1], ma[2],
                            mb[2], ma[3], mb[3], mb[3] / ma[3] if ma[3] else 0))


if __name__ == "__main__":
    main()
