"""bench_big_spec -- GetJob and ListJobs latency of e2d for one job whose
spec is large (eval.filler_tokens), to see what a reply costs when the
stored spec is big. Prints the config and the median of 20 calls of each.
Usage: /usr/bin/python3 bench/daemon/bench_big_spec.py E2D_BINARY [TOKENS]"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "daemon"))
os.environ["E2D_BIN"] = os.path.abspath(sys.argv[1])
import e2dtest as t  # noqa: E402


def median_ms(fn, n=20):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    d = t.Daemon("--shutdown-grace", "1")
    c = d.start()
    try:
        spec = t.small_spec("big", eval={
            "windows": [64], "filler_tokens": [i % 200 for i in range(tokens)]})
        job = c.call("SubmitJob", spec=spec, timeout=60).job.id
        get = median_ms(lambda: c.call("GetJob", id=job, timeout=60))
        lst = median_ms(lambda: c.call("ListJobs", timeout=60))
        print("e2d=%s filler_tokens=%d spec_bytes=%d GetJob_median_ms=%.1f "
              "ListJobs_median_ms=%.1f" % (sys.argv[1], tokens, spec.ByteSize(),
                                           get, lst))
    finally:
        c.close()
        d.stop()
        d.cleanup()


if __name__ == "__main__":
    main()
