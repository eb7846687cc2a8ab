"""test_restart -- kill -9 of e2d, then a restart on the same state dir:
every job is still listed; finished ones are unchanged field for field; a
running job whose worker comes back carries on with its attempt; a running
job whose worker does not come back restarts from its last committed
checkpoint. Also SIGTERM: a graceful stop with exit code 0.
Usage: test_restart.py [case ...] (E2D_BIN set)."""

import os
import time

import e2dtest as t
from e2dtest import M


def _ckpt(c, w, step):
    a = w.assignment
    tmp = os.path.join(a.job_dir, "checkpoints", "step_%d.tmp" % step)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "w.bin"), "wb") as f:
        f.write(b"w" * 64)
    r = c.call("ReportCheckpoint", worker_id=w.id,
               worker_secret=w.secret, job_id=a.job_id,
               attempt=a.attempt, rank=a.rank, step=step,
               files=[M("CheckpointFile", name="w.bin", size=64, sha256="0")])
    assert r.committed
    return r.path


def kill9_then_restart():
    d = t.Daemon("--shutdown-grace", "1", heartbeat_timeout=1.5)
    c = d.start()
    try:
        done = c.call("SubmitJob", spec=t.small_spec("done")).job.id
        w = t.FakeWorker(c)
        w.wait_command("assignment")
        w.progress(10)
        w.done(eval=[M("EvalResult", window=64, loss=1.0, perplexity=2.7)])
        cancelled = c.call("SubmitJob", spec=t.small_spec(
            "x", num_workers=4)).job.id
        assert c.call("CancelJob", id=cancelled).job.state == t.CANCELLED
        back = c.call("SubmitJob", spec=t.small_spec("back")).job.id
        w.assignment = None
        w.wait_command("assignment")
        w.progress(3)
        # w beats on while `gone` is set up: the 1.5 s heartbeat timeout
        # must not end `back` before the kill on a slow machine.
        with t.keep_beating(w):
            gone = c.call("SubmitJob", spec=t.small_spec("gone")).job.id
            g = t.FakeWorker(c)
            g.wait_command("assignment")
            g.progress(4)
            ckpt = _ckpt(c, g, 4)
            pending = c.call("SubmitJob", spec=t.small_spec(
                "wide", num_workers=4)).job.id
            before = {i: c.job(i) for i in (done, cancelled)}
        all_ids = {done, cancelled, back, gone, pending}
        d.kill9()
        c.close()

        c = d.start()
        # `back`'s worker heartbeats again at once (the restarted e2d gives
        # it 1.5 s): same attempt, it finishes.
        w.c = c
        w.progress(5)
        listed = {j.id for j in c.call("ListJobs").jobs}
        assert listed == all_ids, listed
        for i, old in before.items():
            new = c.job(i)
            assert new == old, "job %s changed:\n%s\n---\n%s" % (i, old, new)
        assert c.job(pending).state == t.PENDING
        j = c.job(back)
        assert j.state == t.RUNNING and j.attempt == 1 and j.step == 5, j
        w.progress(10)
        w.done()
        assert c.job(back).state == t.SUCCEEDED
        # `gone`'s worker never returns: restart from step 4 on `w`, which
        # keeps heartbeating meanwhile.
        w.assignment = None
        a = w.wait_command("assignment", timeout=15)
        assert a.job_id == gone and a.attempt == 2, a
        assert a.resume_checkpoint == ckpt and a.start_step == 4
        j = c.job(gone)
        assert j.events[-2].state == t.RESTARTING, j.events
        assert "lost" in j.events[-2].reason
    except BaseException:
        print(d.log())
        raise
    finally:
        c.close()
        rc = d.stop()
        log = d.log()
        d.cleanup()
    assert rc == 0, "e2d exited with %s:\n%s" % (rc, log)


def sigterm_is_graceful():
    d = t.Daemon("--shutdown-grace", "1")
    c = d.start()
    try:
        job = c.call("SubmitJob", spec=t.small_spec()).job.id
        stream = c.stubs["WatchJob"](M("WatchJobRequest", id=job), timeout=20)
        assert next(stream).state == t.PENDING
        t0 = time.time()
        assert d.stop() == 0
        assert time.time() - t0 < 10
        # The open stream ended with UNAVAILABLE, not a hang.
        try:
            list(stream)
            raise AssertionError("stream did not fail")
        except Exception as e:  # grpc.RpcError
            assert "UNAVAILABLE" in str(e.code()), e
        assert "stopped" in d.log()
        c.close()
        c = d.start()
        assert c.job(job).state == t.PENDING
    finally:
        c.close()
        d.stop()
        d.cleanup()


if __name__ == "__main__":
    t.run_cases([kill9_then_restart, sigterm_is_graceful])
