#!/usr/bin/python3
"""stubborn_worker -- a worker for e2d --local-workers that ignores Cancel
and SIGTERM, so that the test of cancel's last resort (SIGTERM, then
SIGKILL of the process group e2d spawned) has something to kill. It speaks
the real WorkerControl protocol: registers as spawned, heartbeats, and
reports a step every heartbeat once assigned.
Usage (by e2d): stubborn_worker.py --coordinator ADDR"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2dtest as t  # noqa: E402


def main():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    addr = sys.argv[sys.argv.index("--coordinator") + 1]
    c = t.Client(addr)
    r = c.call("RegisterWorker", hostname="stubborn", device="cpu",
               pid=os.getpid(), spawned_by_e2d=True, version="stubborn")
    wid, step, job = r.worker_id, 0, None
    while True:
        kw = {"worker_id": wid, "worker_secret": r.worker_secret,
              "state": t.BUSY if job else t.IDLE}
        if job:
            step += 1
            kw["progress"] = t.M("Progress", job_id=job.job_id,
                                 attempt=job.attempt, rank=job.rank, step=step)
        for cmd in c.call("Heartbeat", **kw).commands:
            if cmd.WhichOneof("kind") == "assignment":
                job = cmd.assignment
        time.sleep(0.1)


if __name__ == "__main__":
    main()
