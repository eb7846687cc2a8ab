"""bench_py_clients -- GetJob through Python grpcio clients, the way a
dashboard or script talks to e2d: the real e2d on a temporary state dir
(unix socket), a store of JOBS jobs, then for 1, 8 and 32 client processes
(each its own channel, started before the clock runs) every client calls
GetJob on the stored jobs in turn for SECONDS. Prints the configuration,
calls/s, p50 and p99 latency and e2d's CPU time per call (utime + stime
from /proc/PID/stat). Asserts nothing.

Usage: /usr/bin/python3 bench/daemon/bench_py_clients.py E2D_BINARY
           [--seconds S] [--clients 1,8,32] [--jobs N]
(Debian's python3-grpcio and python3-protobuf; protoc on PATH.)"""

import argparse
import multiprocessing as mp
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "daemon"))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(address, jobs, first, ready, start, seconds, out):
    import e2dtest as t
    c = t.Client(address)
    c.call("GetJob", id=jobs[first])  # connected and warm
    ready.put(1)
    start.wait()
    lat, i, n = [], first, len(jobs)
    begin = time.perf_counter()
    end = begin + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        c.call("GetJob", id=jobs[i])
        lat.append(time.perf_counter() - t0)
        i = (i + 1) % n
    c.close()
    out.put((begin, time.perf_counter(), lat))


def run(d, jobs, clients, seconds):
    ctx = mp.get_context("spawn")
    ready, out, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=client, args=(
        d.address, jobs, k * len(jobs) // clients, ready, start, seconds, out))
        for k in range(clients)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    cpu0 = cpu_s(d.proc.pid)
    start.set()
    time.sleep(seconds)
    cpu1 = cpu_s(d.proc.pid)
    lat, begin, end = [], [], []
    for _ in procs:
        b, e, v = out.get(timeout=seconds + 120)
        begin.append(b)
        end.append(e)
        lat += v
    dt = max(end) - min(begin)  # perf_counter is CLOCK_MONOTONIC: one clock
    for p in procs:
        p.join()
    lat.sort()
    n = len(lat)
    print("GetJob    clients=%-2d calls=%-6d %7.0f calls/s  p50 %7.3f ms  "
          "p99 %8.3f ms  e2d CPU %6.1f us/call" % (
              clients, n, n / dt, lat[n // 2] * 1e3,
              lat[int((n - 1) * 0.99)] * 1e3, (cpu1 - cpu0) / n * 1e6),
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("e2d")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--jobs", type=int, default=1000)
    a = ap.parse_args()
    os.environ["E2D_BIN"] = os.path.abspath(a.e2d)
    import e2dtest as t
    d = t.Daemon("--shutdown-grace", "1")
    c = d.start()
    try:
        spec = t.small_spec("bench")
        jobs = [None] * a.jobs

        def fill(k):
            for i in range(k, a.jobs, 8):
                jobs[i] = c.call("SubmitJob", spec=spec, timeout=60).job.id
        ths = [threading.Thread(target=fill, args=(k,)) for k in range(8)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        print("bench_py_clients: e2d %s, unix socket, %d stored jobs (GetJob "
              "names each in turn), %.1f s per figure, client processes %s "
              "(grpcio %s, one channel each), %d CPUs" % (
                  a.e2d, a.jobs, a.seconds, a.clients,
                  __import__("grpc").__version__, os.cpu_count()),
              flush=True)
        for n in (int(x) for x in a.clients.split(",")):
            run(d, jobs, n, a.seconds)
    finally:
        c.close()
        d.stop()
        d.cleanup()


if __name__ == "__main__":
    main()
