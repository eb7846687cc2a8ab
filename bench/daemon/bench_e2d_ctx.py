"""bench_e2d_ctx -- context switches per call in e2d, per thread: runs
bench_e2d (GetJob only) against E2D, samples /proc/PID/task/*/status of
the e2d it starts every 0.25 s, and prints, for the 1 s window with the
most switches (the GetJob phase), voluntary and involuntary switches per
call of each e2d thread (the loop thread is the first "e2d", gRPC's
completion-queue thread the second). Asserts nothing.

Usage: python3 bench/daemon/bench_e2d_ctx.py BENCH_E2D E2D THREADS
           [bench_e2d flags, e.g. --jobs 100]"""

import glob
import os
import re
import subprocess
import sys
import time


def snap(pid):
    r = {}
    for t in glob.glob("/proc/%s/task/*" % pid):
        try:
            comm = open(t + "/comm").read().strip()
            st = open(t + "/status").read()
        except OSError:
            continue
        v = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", st, re.M).group(1))
        n = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", st, re.M).group(1))
        r[int(os.path.basename(t))] = (comm, v, n)
    return r


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    bench, e2d, threads = sys.argv[1:4]
    b = subprocess.Popen([bench, "--e2d", e2d, "--calls", "get", "--threads", threads,
                          "--seconds", "4"] + sys.argv[4:], stdout=subprocess.PIPE, text=True)
    pid = None
    for _ in range(200):
        kids = subprocess.run(["pgrep", "-P", str(b.pid)], stdout=subprocess.PIPE,
                              text=True).stdout.split()
        if kids:
            pid = kids[0]
            break
        time.sleep(0.05)
    snaps = []
    while b.poll() is None:
        snaps.append((time.time(), snap(pid)))
        time.sleep(0.25)
    line = [x for x in b.stdout.read().splitlines() if "threads=" in x][0]
    rate = float(re.search(r"(\d+) calls/s", line).group(1))
    print(line)
    best = None
    for i in range(len(snaps)):
        for j in range(i + 1, len(snaps)):
            if snaps[j][0] - snaps[i][0] >= 1.0:
                a, c = snaps[i][1], snaps[j][1]
                tot = sum(c[k][1] - a[k][1] for k in c if k in a)
                if best is None or tot > best[0]:
                    best = (tot, i, j)
                break
    _, i, j = best
    a, c, dt = snaps[i][1], snaps[j][1], snaps[j][0] - snaps[i][0]
    tv = tn = 0.0
    for k in sorted(c):
        if k not in a:
            continue
        v = (c[k][1] - a[k][1]) / dt / rate
        n = (c[k][2] - a[k][2]) / dt / rate
        tv += v
        tn += n
        if v + n > 0.01:
            print("  %-16s voluntary/call %.2f involuntary/call %.2f" % (c[k][0], v, n))
    print("  %-16s voluntary/call %.2f involuntary/call %.2f" % ("all threads", tv, tn))


if __name__ == "__main__":
    main()
