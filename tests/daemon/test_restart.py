"""test_restart -- kill -9 of e2d, then a restart on the same state dir:
every job is still listed; finished ones are unchanged field for field; a
running job whose worker comes back carries on with its attempt; a running
job whose worker does not come back restarts from its last committed
checkpoint. Also SIGTERM: a graceful stop with exit code 0. And the
heartbeat path's group commit: a heartbeat's progress and a ReportDone are
visible at once and durable when acknowledged (kill -9 right after the
replies loses none of them, nor a checkpoint or state; SIGTERM keeps them).
Usage: test_restart.py [case ...] (E2D_BIN set)."""

import os
import threading
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


def _watch_until(stream, pred, what):
    for e in stream:
        if pred(e):
            return e
    raise AssertionError("WatchJob ended before " + what)


def progress_is_visible_and_durable_at_once():
    """Two ranks: rank 1's progress moves no job step and the job stays
    STARTING until rank 0 reports too; each rank-0 heartbeat's step, loss
    and metric point show in the very next GetJob, GetMetrics and WatchJob
    event; kill -9 right after a heartbeat's reply loses neither that
    point nor the checkpoint nor the state, and SIGTERM right after one
    keeps it too; a ReportDone acknowledged just before kill -9 stays."""
    d = t.Daemon("--shutdown-grace", "1", heartbeat_timeout=5)
    c = d.start()
    try:
        job = c.call("SubmitJob", spec=t.small_spec(
            "p", num_workers=2)).job.id
        stream = c.stubs["WatchJob"](M("WatchJobRequest", id=job),
                                     timeout=30)
        assert next(stream).state == t.PENDING
        ws = [t.FakeWorker(c), t.FakeWorker(c)]
        for w in ws:
            w.wait_command("assignment")
        w0, w1 = sorted(ws, key=lambda w: w.assignment.rank)
        assert (w0.assignment.rank, w1.assignment.rank) == (0, 1)
        w1.progress(1, loss=9.0)
        j = c.job(job)
        assert j.state == t.STARTING and j.step == 0, j
        w0.progress(1, loss=2.5)
        j = c.job(job)
        assert j.state == t.RUNNING and j.step == 1 and j.loss == 2.5, j
        w0.progress(2, loss=2.25, tps=300.0)
        j = c.job(job)
        assert j.step == 2 and j.loss == 2.25, j
        # tokens/s is the sum over the ranks (rank 1 said 100).
        assert j.tokens_per_second == 400.0, j
        e = _watch_until(stream, lambda e: e.kind == 3 and e.step == 2,
                         "the step 2 progress event")
        assert e.loss == 2.25 and e.state == t.RUNNING, e
        w1.progress(5, loss=7.0)
        assert c.job(job).step == 2
        assert [p.step for p in c.call("GetMetrics", id=job).points] == [1, 2]
        path = None
        for w in (w1, w0):
            r = c.call("ReportCheckpoint", worker_id=w.id,
                       worker_secret=w.secret, job_id=job,
                       attempt=1, rank=w.assignment.rank, step=2,
                       files=[_ckpt_file(w.assignment, 2)])
            path = r.path if r.committed else path
        assert path
        w0.progress(3, loss=2.0)
        d.kill9()
        c.close()

        c = d.start()
        j = c.job(job)
        assert j.state == t.RUNNING and j.attempt == 1, j
        assert j.step == 3 and j.loss == 2.0, j
        assert [cp.step for cp in j.checkpoints] == [2], j.checkpoints
        assert [p.step for p in c.call("GetMetrics", id=job).points] == [1, 2, 3]
        for w in (w0, w1):
            w.c = c
        w1.progress(5)
        w0.progress(4, loss=1.5)
        assert d.stop() == 0
        c.close()

        c = d.start()
        for w in (w0, w1):
            w.c = c
        j = c.job(job)
        assert j.state == t.RUNNING and j.step == 4 and j.loss == 1.5, j
        assert [p.step for p in c.call("GetMetrics", id=job).points] == [1, 2, 3, 4]
        w0.done()
        w1.done()
        d.kill9()
        c.close()

        c = d.start()
        j = c.job(job)
        assert j.state == t.SUCCEEDED and j.step == 4, j
        assert [e.state for e in j.events] == [
            t.PENDING, t.STARTING, t.RUNNING, t.SUCCEEDED], j.events
    except BaseException:
        print(d.log())
        raise
    finally:
        c.close()
        rc = d.stop()
        d.cleanup()
    assert rc == 0


def _ckpt_file(a, step):
    tmp = os.path.join(a.job_dir, "checkpoints", "step_%d.tmp" % step)
    os.makedirs(tmp, exist_ok=True)
    name = "rank-%d.bin" % a.rank
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(b"c" * 16)
    return M("CheckpointFile", name=name, size=16, sha256="00")


def concurrent_reports_survive_kill9():
    """16 single-rank jobs whose workers report from 16 threads at once
    (so that calls share a loop turn and its one commit): every progress
    point acknowledged before a kill -9 is there after the restart, and
    so is every acknowledged ReportDone."""
    n = 16
    d = t.Daemon("--shutdown-grace", "1", heartbeat_timeout=10)
    c = d.start()
    try:
        jobs = [c.call("SubmitJob", spec=t.small_spec("c%d" % i)).job.id
                for i in range(n)]
        ws = [t.FakeWorker(c) for _ in range(n)]
        for w in ws:
            w.wait_command("assignment")
        assert sorted(w.assignment.job_id for w in ws) == sorted(jobs)
        errors = []

        def each(fn):
            start = threading.Barrier(n)

            def run(w):
                try:
                    start.wait()
                    fn(w)
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)
            th = [threading.Thread(target=run, args=(w,)) for w in ws]
            for x in th:
                x.start()
            for x in th:
                x.join()
            assert not errors, errors

        def steps(w):
            for s in range(1, 6):
                w.progress(s, loss=10.0 - s)
        each(steps)
        d.kill9()
        c.close()
        c = d.start()
        for w in ws:
            w.c = c
        for w in ws:
            j = c.job(w.assignment.job_id)
            assert j.state == t.RUNNING and j.step == 5 and j.loss == 5.0, j
            pts = c.call("GetMetrics", id=j.id).points
            assert [p.step for p in pts] == [1, 2, 3, 4, 5], pts
        each(lambda w: w.done())
        d.kill9()
        c.close()
        c = d.start()
        for i in jobs:
            j = c.job(i)
            assert j.state == t.SUCCEEDED and j.step == 5, j
        idle = [x for x in c.call("ListWorkers").workers]
        assert len(idle) == n and all(x.state == t.IDLE for x in idle), idle
    except BaseException:
        print(d.log())
        raise
    finally:
        c.close()
        rc = d.stop()
        d.cleanup()
    assert rc == 0


if __name__ == "__main__":
    t.run_cases([kill9_then_restart, sigterm_is_graceful,
                 progress_is_visible_and_durable_at_once,
                 concurrent_reports_survive_kill9])
