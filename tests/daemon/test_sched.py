"""test_sched -- e2d's scheduler and fault handling with fake workers (real
WorkerControl clients over the real socket): gang scheduling, priority and
FIFO order, lost worker -> RESTARTING -> rescheduled from the last
committed checkpoint, hang detection, user errors never retried, the
restart budget, cancel, the checkpoint commit with retention, GetJob
after each change (its memo), and rendezvous waits.
Usage: test_sched.py [case ...] (E2D_BIN set)."""

import os
import shutil
import tempfile
import threading
import time

import grpc

import e2dtest as t
from e2dtest import M


def spec2(name="g", workers=2, **over):
    over.setdefault("train", {"steps": 10, "global_batch": 12})
    return t.small_spec(name, num_workers=workers, **over)


@t.with_daemon()
def gang_all_or_nothing(d, c):
    job = c.call("SubmitJob", spec=spec2(workers=3)).job.id
    w1, w2 = t.FakeWorker(c), t.FakeWorker(c)
    gpu = t.FakeWorker(c, device="cuda")
    for _ in range(5):
        for w in (w1, w2, gpu):
            assert not w.beat(), "a partial gang got work"
        time.sleep(0.05)
    assert c.job(job).state == t.PENDING
    w3 = t.FakeWorker(c)
    gang = [w1, w2, w3]
    got = [w.wait_command("assignment") for w in gang]
    assert sorted(a.rank for a in got) == [0, 1, 2]
    assert all(a.world_size == 3 and a.attempt == 1 for a in got)
    assert all(a.spec.name == "g" and a.job_id == job for a in got)
    assert not gpu.beat(), "the cuda worker was given a cpu rank"
    j = c.job(job)
    assert j.state == t.STARTING and len(j.worker_ids) == 3
    # RUNNING only once every rank reported.
    for i, w in enumerate(gang):
        w.progress(1)
        want = t.RUNNING if i == 2 else t.STARTING
        assert c.job(job).state == want
    ws = {w.id: w for w in c.call("ListWorkers").workers}
    assert all(ws[w.id].state == t.BUSY and ws[w.id].job_id == job
               for w in gang)
    assert ws[gpu.id].state == t.IDLE


@t.with_daemon()
def priority_then_fifo(d, c):
    a = c.call("SubmitJob", spec=t.small_spec("a")).job.id
    b = c.call("SubmitJob", spec=t.small_spec("b")).job.id
    hi = c.call("SubmitJob", spec=t.small_spec("hi", priority=5)).job.id
    w = t.FakeWorker(c)
    order = []
    for _ in range(3):
        asg = w.wait_command("assignment")
        order.append(asg.job_id)
        w.progress(10)
        w.done()
        assert c.job(asg.job_id).state == t.SUCCEEDED
    assert order == [hi, a, b], order


def _one_busy_one_idle(c):
    """Two cpu workers, w1 running job `busy`: capacity for a 2-worker job
    exists, but only one worker is idle."""
    busy = c.call("SubmitJob", spec=t.small_spec("busy", priority=9)).job.id
    w1, w2 = t.FakeWorker(c), t.FakeWorker(c)
    assert w1.wait_command("assignment").job_id == busy
    w1.progress(1)
    return busy, w1, w2


@t.with_daemon()
def big_job_blocks_smaller_behind_it(d, c):
    busy, w1, w2 = _one_busy_one_idle(c)
    big = c.call("SubmitJob", spec=spec2("big", workers=2)).job.id
    small = c.call("SubmitJob", spec=t.small_spec("small")).job.id
    for _ in range(5):
        assert not w2.beat()
        time.sleep(0.05)
    # `big` fits the registered workers: no backfilling past it.
    assert c.job(small).state == t.PENDING
    assert c.job(big).state == t.PENDING
    w1.done()
    w1.assignment = None
    assert w1.wait_command("assignment").job_id == big
    assert w2.wait_command("assignment").job_id == big


@t.with_daemon()
def cancelled_head_unblocks_the_queue(d, c):
    """Cancelling the pending job at the head of the queue runs a pass: the
    job behind it starts on the idle worker without any other event."""
    busy, w1, w2 = _one_busy_one_idle(c)
    big = c.call("SubmitJob", spec=spec2("big", workers=2)).job.id
    small = c.call("SubmitJob", spec=t.small_spec("small")).job.id
    with t.keep_beating(w1):
        for _ in range(5):
            assert not w2.beat()
            time.sleep(0.05)
        assert c.job(small).state == t.PENDING
        c.call("CancelJob", id=big)
        assert w2.wait_command("assignment", timeout=15).job_id == small


@t.with_daemon()
def unschedulable_job_is_parked_and_backfilled(d, c):
    """A job that needs more workers than are registered says so in its
    reason and holds up nothing: the job behind it runs."""
    w = t.FakeWorker(c)
    big = c.call("SubmitJob", spec=spec2("big", workers=2)).job.id
    small = c.call("SubmitJob", spec=t.small_spec("small")).job.id
    assert w.wait_command("assignment").job_id == small
    j = c.job(big)
    assert j.state == t.PENDING, j
    assert "unschedulable: needs 2 cpu workers, 1 registered" in j.reason, \
        j.reason
    # A second worker makes it schedulable; it starts once both are idle.
    w.progress(10)
    w.done()
    w.assignment = None
    w2 = t.FakeWorker(c)
    assert w.wait_command("assignment").job_id == big
    assert w2.wait_command("assignment").job_id == big


@t.with_daemon("--max-workers-per-job", "4", "--cpu-mem", "16")
def submit_refuses_jobs_above_the_limits(d, c):
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=spec2("many", workers=6)),
        grpc.StatusCode.INVALID_ARGUMENT, "spec.num_workers", "6",
        "max-workers-per-job = 4")
    huge = t.small_spec("huge", model={"config": {
        "hidden_size": 65536, "num_hidden_layers": 512,
        "num_attention_heads": 64, "intermediate_size": 262144,
        "vocab_size": 256000, "max_position_embeddings": 4096}})
    t.expect_rpc_error(lambda: c.call("SubmitJob", spec=huge),
                       grpc.StatusCode.INVALID_ARGUMENT, "cpu-mem", "16.00 GB")
    long = t.small_spec("long", augment={"train_length": 1 << 20})
    t.expect_rpc_error(lambda: c.call("SubmitJob", spec=long),
                       grpc.StatusCode.INVALID_ARGUMENT, "cpu-mem")
    assert c.call("SubmitJob", spec=spec2("ok", workers=4)).created


def priority_ceiling_per_role():
    """A submitter's spec.priority is capped (priority-max-submitter); an
    admin's ceiling is its own."""
    tmp = tempfile.mkdtemp(prefix="e2d_prio_")
    tokens = os.path.join(tmp, "tokens")
    sub, adm = "s" * 32, "a" * 32
    fd = os.open(tokens, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, ("%s alice submitter\n%s root admin\n" % (sub, adm)).encode())
    os.close(fd)
    d = t.Daemon("--shutdown-grace", "1", "--token-file", tokens,
                 "--priority-max-submitter", "10", "--priority-max-admin",
                 "50", token=adm)
    c = d.start()
    alice = t.Client(d.address, sub)
    try:
        assert alice.call("SubmitJob", spec=t.small_spec(priority=10)).created
        t.expect_rpc_error(
            lambda: alice.call("SubmitJob", spec=t.small_spec(priority=11)),
            grpc.StatusCode.PERMISSION_DENIED, "spec.priority", "11",
            "role submitter", "priority-max-submitter")
        t.expect_rpc_error(
            lambda: alice.call("SubmitJob",
                               spec=t.small_spec(priority=2**31 - 1)),
            grpc.StatusCode.PERMISSION_DENIED, "spec.priority")
        assert c.call("SubmitJob", spec=t.small_spec(priority=50)).created
        t.expect_rpc_error(
            lambda: c.call("SubmitJob", spec=t.small_spec(priority=51)),
            grpc.StatusCode.PERMISSION_DENIED, "role admin")
    except BaseException:
        print(d.log())
        raise
    finally:
        alice.close()
        c.close()
        rc = d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    assert rc == 0


def _write_ckpt(job_dir, step, rank, payload):
    tmp = os.path.join(job_dir, "checkpoints", "step_%d.tmp" % step)
    os.makedirs(tmp, exist_ok=True)
    name = "rank-%d.bin" % rank
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(payload)
    return M("CheckpointFile", name=name, size=len(payload), sha256="00")


def _report(c, w, step, files):
    a = w.assignment
    return c.call("ReportCheckpoint", worker_id=w.id,
                  worker_secret=w.secret, job_id=a.job_id,
                  attempt=a.attempt, rank=a.rank, step=step, files=files)


@t.with_daemon(heartbeat_timeout=1.0)
def lost_worker_restarts_from_checkpoint(d, c):
    job = c.call("SubmitJob", spec=spec2()).job.id
    w1, w2 = t.FakeWorker(c), t.FakeWorker(c)
    a1, a2 = w1.wait_command("assignment"), w2.wait_command("assignment")
    by_rank = {a1.rank: w1, a2.rank: w2}
    # Both beat until the checkpoint is in (a slow machine may take longer
    # than the 1 s heartbeat timeout over these calls).
    with t.keep_beating(w1, w2):
        for r in (0, 1):
            by_rank[r].progress(2, logs=["rank %d line %d" % (r, i)
                                         for i in range(3)])
        r0 = _report(c, by_rank[0], 2, [_write_ckpt(a1.job_dir, 2, 0, b"x" * 10)])
        assert not r0.committed
        r1 = _report(c, by_rank[1], 2, [_write_ckpt(a1.job_dir, 2, 1, b"y" * 20)])
    assert r1.committed and r1.path.endswith("/checkpoints/step_2")
    assert os.path.exists(os.path.join(r1.path, "manifest.json"))
    assert not os.path.exists(r1.path + ".tmp")
    # Rank 1 goes silent; rank 0 keeps heartbeating.
    lost, alive = by_rank[1], by_rank[0]
    with t.keep_beating(alive):
        j = c.wait_state(job, t.RESTARTING, timeout=10)
    assert j.restarts == 1 and "lost" in j.reason, j.reason
    assert j.failure.rank == 1 and j.failure.worker_id == lost.id
    assert list(j.failure.last_log_lines) == ["rank 1 line %d" % i for i in range(3)]
    alive.beat(t.BUSY)
    kinds = [cmd.WhichOneof("kind") for cmd in alive.commands]
    assert "abort" in kinds, kinds
    ws = {w.id: w for w in c.call("ListWorkers", include_lost=True).workers}
    assert ws[lost.id].state == t.LOST
    # The survivor drains (says IDLE); a new worker joins; attempt 2 resumes.
    alive.assignment = None
    alive.commands.clear()
    w3 = t.FakeWorker(c)
    b1 = alive.wait_command("assignment")
    b3 = w3.wait_command("assignment")
    assert b1.attempt == b3.attempt == 2
    assert b1.resume_checkpoint == r1.path and b1.start_step == 2
    j = c.job(job)
    assert j.state == t.STARTING and j.attempt == 2
    assert [cp.step for cp in j.checkpoints] == [2]
    # A report from the lost worker's old attempt is refused.
    t.expect_rpc_error(lambda: c.call(
        "ReportDone", worker_id=lost.id,
        worker_secret=lost.secret, job_id=job, attempt=1, rank=1,
        outcome=t.OUT_SUCCEEDED), grpc.StatusCode.FAILED_PRECONDITION)


def _three_ranks_with_checkpoint(c, job):
    """Three fake workers take ranks 0-2 of `job` and commit checkpoint
    step 2; returns ({rank: worker}, the checkpoint's path)."""
    ws = [t.FakeWorker(c) for _ in range(3)]
    with t.keep_beating(*ws):
        deadline = time.time() + 10
        while not all(w.assignment for w in ws):
            assert time.time() < deadline, "no assignments: %s" % c.job(job)
            time.sleep(0.05)
        by_rank = {w.assignment.rank: w for w in ws}
        assert sorted(by_rank) == [0, 1, 2]
        assert all(w.assignment.world_size == 3 for w in ws)
        for r in range(3):
            by_rank[r].progress(2)
        for r in range(3):
            rep = _report(c, by_rank[r], 2, [_write_ckpt(
                by_rank[r].assignment.job_dir, 2, r, b"x" * (r + 1))])
    assert rep.committed, rep
    return by_rank, rep.path


def _lose_rank_2(c, job, by_rank):
    """Rank 2's worker goes silent while the others heartbeat: the job
    RESTARTS, the survivors got an Abort and are idle again. Returns
    (lost worker, [survivors by rank])."""
    lost, alive = by_rank[2], [by_rank[0], by_rank[1]]
    with t.keep_beating(*alive):
        j = c.wait_state(job, t.RESTARTING, timeout=10)
    assert "lost" in j.reason and j.failure.rank == 2, j.reason
    for w in alive:
        w.beat(t.BUSY)
        assert "abort" in [cmd.WhichOneof("kind") for cmd in w.commands]
        w.assignment = None
        w.commands.clear()
    return lost, alive


def _wait_assigned(c, job, workers, timeout=10):
    deadline = time.time() + timeout
    while not all(w.assignment for w in workers):
        assert time.time() < deadline, "not all assigned: %s" % c.job(job)
        time.sleep(0.05)


@t.with_daemon(heartbeat_timeout=1.0)
def elastic_restart_on_survivors(d, c):
    """min_workers 2 of 3: a lost worker's job restarts at once on the two
    survivors from the committed checkpoint (world size 2, shown by
    GetJob and the event), the lost worker coming back is drained and gets
    no rank, and the job SUCCEEDS on two ranks."""
    job = c.call("SubmitJob", spec=spec2("el", 3, min_workers=2)).job.id
    by_rank, ckpt = _three_ranks_with_checkpoint(c, job)
    assert c.job(job).world_size == 3
    lost, alive = _lose_rank_2(c, job, by_rank)
    with t.keep_beating(*alive):
        _wait_assigned(c, job, alive)
        a = [w.assignment for w in alive]
        assert sorted(x.rank for x in a) == [0, 1], a
        assert all(x.attempt == 2 and x.world_size == 2 for x in a), a
        assert all(x.resume_checkpoint == ckpt and x.start_step == 2 for x in a), a
        j = c.job(job)
        assert j.attempt == 2 and j.world_size == 2 and j.restarts == 1, j
        ids = {x.rank: w.id for x, w in zip(a, alive)}
        assert list(j.worker_ids) == [ids[0], ids[1]], j.worker_ids
        start = [e for e in j.events if e.state == t.STARTING][-1].reason
        assert "(elastic: world size 2 of num_workers 3, min_workers 2)" in start, start
        assert start.endswith("resuming from checkpoint step 2"), start
        # The lost worker is back, still running its attempt-1 rank: it is
        # told to stop it, goes idle, and gets no rank in attempt 2.
        lost.progress(3)
        assert "abort" in [cmd.WhichOneof("kind") for cmd in lost.commands]
        lost.assignment = None
        lost.commands.clear()
        with t.keep_beating(lost):
            deadline = time.time() + 10
            while True:
                ws = {w.id: w for w in c.call("ListWorkers").workers}
                if lost.id in ws and ws[lost.id].state == t.IDLE:
                    break
                assert time.time() < deadline, ws
                time.sleep(0.05)
            for w in alive:
                w.progress(10)
            for w in alive:
                w.done()
            j = c.wait_state(job, (t.SUCCEEDED, t.FAILED), timeout=10)
        assert not lost.assignment and not lost.commands, lost.commands
    assert j.state == t.SUCCEEDED and j.world_size == 2 and j.attempt == 2, j
    assert "all 2 ranks succeeded" in j.reason, j.reason
    assert "elastic restart: attempt 2 runs on 2 of 3 workers" in d.log()


@t.with_daemon(heartbeat_timeout=4.0)
def elastic_restart_waits_for_its_survivors(d, c):
    """An elastic restart takes the survivors once they have stopped their
    ranks, not the first min_workers idle workers: with a spare idle
    worker and one survivor still stopping its rank, nothing starts; once
    it has stopped, attempt 2 runs on the spare and both survivors (world
    size 3)."""
    job = c.call("SubmitJob", spec=spec2("el", 3, min_workers=2)).job.id
    by_rank, ckpt = _three_ranks_with_checkpoint(c, job)
    spare = t.FakeWorker(c)
    lost, alive = by_rank[2], [by_rank[0], by_rank[1]]
    with t.keep_beating(spare, *alive):
        c.wait_state(job, t.RESTARTING, timeout=20)
        # Survivor 0 stops its rank (says IDLE); survivor 1 still runs it.
        alive[0].assignment = None
        deadline = time.time() + 10
        while {w.id: w.state for w in c.call("ListWorkers").workers}.get(
                alive[0].id) != t.IDLE:
            assert time.time() < deadline, c.call("ListWorkers")
            time.sleep(0.05)
        # Two idle workers (min_workers) for five scheduler passes, well
        # within the 4 s the survivor has to stop: no attempt 2 yet.
        end = time.time() + 0.5
        while time.time() < end:
            assert c.job(job).state == t.RESTARTING, c.job(job)
            time.sleep(0.05)
        assert not spare.assignment and not alive[0].assignment
        alive[1].assignment = None
        _wait_assigned(c, job, alive + [spare])
    a = [w.assignment for w in alive + [spare]]
    assert sorted(x.rank for x in a) == [0, 1, 2], a
    assert all(x.attempt == 2 and x.world_size == 3 for x in a), a
    j = c.job(job)
    assert j.world_size == 3 and lost.id not in j.worker_ids, j


@t.with_daemon(heartbeat_timeout=1.0)
def elastic_restart_leaves_out_a_stopping_worker(d, c):
    """A worker being shut down (systemctl stop: its heartbeats say
    stopping) ends its rank and reports it, so it looks idle until its
    heartbeat timeout: the elastic restart runs on the two others, and it
    gets no rank of any job."""
    job = c.call("SubmitJob", spec=spec2("el", 3, min_workers=2)).job.id
    by_rank, ckpt = _three_ranks_with_checkpoint(c, job)
    stopping, alive = by_rank[2], [by_rank[0], by_rank[1]]
    a = stopping.assignment
    with t.keep_beating(*alive):
        c.call("Heartbeat", worker_id=stopping.id, worker_secret=stopping.secret,
               state=t.BUSY, stopping=True,
               progress=M("Progress", job_id=a.job_id, attempt=a.attempt, rank=a.rank, step=3))
        stopping.done(t.OUT_FAILED_INFRA, exit_code=1, reason="aborted at step 3")
        j = c.wait_state(job, t.RESTARTING, timeout=10)
        assert "rank 2" in j.reason, j.reason
        for w in alive:
            w.assignment = None
        deadline = time.time() + 10
        while not all(w.assignment for w in alive):
            assert time.time() < deadline, c.job(job)
            # Still alive for a moment, idle: it must get no rank.
            assert not [cmd for cmd in stopping.beat(t.IDLE)
                        if cmd.WhichOneof("kind") == "assignment"]
            time.sleep(0.05)
    got = [w.assignment for w in alive]
    assert all(x.attempt == 2 and x.world_size == 2 for x in got), got
    assert sorted(x.rank for x in got) == [0, 1], got
    j = c.job(job)
    assert j.world_size == 2 and stopping.id not in j.worker_ids, j
    assert "worker %s: stopping" % stopping.id in d.log()


@t.with_daemon(heartbeat_timeout=1.0)
def gang_job_waits_for_all_after_a_loss(d, c):
    """min_workers = num_workers (the default): after a loss the job waits
    for three workers, parked as before, and restarts on all three once
    the lost worker is back."""
    job = c.call("SubmitJob", spec=spec2("gang", 3)).job.id
    by_rank, ckpt = _three_ranks_with_checkpoint(c, job)
    lost, alive = _lose_rank_2(c, job, by_rank)
    with t.keep_beating(*alive):
        deadline = time.time() + 10
        while not c.job(job).reason.startswith(
                "unschedulable: needs 3 cpu workers, 2 registered"):
            assert time.time() < deadline, c.job(job)
            time.sleep(0.05)
        assert c.job(job).state == t.RESTARTING
        assert not any(w.assignment for w in alive)
        lost.progress(3)
        lost.assignment = None
        lost.commands.clear()
        with t.keep_beating(lost):
            _wait_assigned(c, job, alive + [lost])
    a = [w.assignment for w in alive + [lost]]
    assert sorted(x.rank for x in a) == [0, 1, 2], a
    assert all(x.attempt == 2 and x.world_size == 3 for x in a), a
    assert all(x.resume_checkpoint == ckpt for x in a), a
    j = c.job(job)
    assert j.world_size == 3 and "elastic" not in j.reason, j


@t.with_daemon("--hang-timeout", "1")
def hang_is_handled_like_a_lost_worker(d, c):
    job = c.call("SubmitJob", spec=t.small_spec()).job.id
    w = t.FakeWorker(c)
    w.wait_command("assignment")
    deadline = time.time() + 10
    while time.time() < deadline and c.job(job).state != t.RESTARTING:
        w.progress(3)  # alive, but the step never advances
        time.sleep(0.1)
    j = c.job(job)
    assert j.state == t.RESTARTING and "hang" in j.reason, j.reason
    w.beat(t.BUSY)
    assert any(cmd.WhichOneof("kind") == "abort" for cmd in w.commands)


@t.with_daemon()
def user_error_is_not_retried(d, c):
    job = c.call("SubmitJob", spec=t.small_spec()).job.id
    w = t.FakeWorker(c)
    w.wait_command("assignment")
    w.progress(1, logs=["step 1 loss nan"])
    w.done(t.OUT_FAILED_USER, exit_code=3, reason="loss is NaN at step 1")
    j = c.job(job)
    assert j.state == t.FAILED and j.user_errors == 1 and j.restarts == 0
    assert "loss is NaN" in j.reason and "not retried" in j.reason
    f = j.failure
    assert f.user_error and f.exit_code == 3 and f.rank == 0
    assert list(f.last_log_lines) == ["step 1 loss nan"]
    for _ in range(5):
        assert not w.beat()  # idle worker, nothing rescheduled
    assert c.job(job).state == t.FAILED


@t.with_daemon()
def restart_budget_is_finite(d, c):
    job = c.call("SubmitJob", spec=t.small_spec(max_restarts=1)).job.id
    w = t.FakeWorker(c)
    w.wait_command("assignment")
    w.done(t.OUT_FAILED_INFRA, exit_code=137, reason="out of memory")
    j = c.job(job)
    # Re-queued, and at once rescheduled on the now idle worker.
    assert j.restarts == 1 and j.state in (t.RESTARTING, t.STARTING)
    assert t.RESTARTING in [e.state for e in j.events]
    a = w.wait_command("assignment")
    assert a.attempt == 2
    w.done(t.OUT_FAILED_INFRA, exit_code=137, reason="out of memory")
    j = c.job(job)
    assert j.state == t.FAILED and "budget spent (1 of 1)" in j.reason, j.reason
    assert j.failure.exit_code == 137 and not j.failure.user_error


@t.with_daemon()
def cancel_pending_and_running(d, c):
    pending = c.call("SubmitJob", spec=spec2("p", workers=2)).job.id
    j = c.call("CancelJob", id=pending).job
    assert j.state == t.CANCELLED
    # Running: CANCELLING, a Cancel command with the deadline, the rank
    # stops and reports, CANCELLED.
    job = c.call("SubmitJob", spec=t.small_spec()).job.id
    w = t.FakeWorker(c)
    w.wait_command("assignment")
    w.progress(1)
    t0 = time.time()
    j = c.call("CancelJob", id=job, grace_seconds=30).job
    assert j.state == t.CANCELLING
    cancel = w.wait_command("cancel", state=t.BUSY)
    assert cancel.job_id == job and cancel.attempt == 1
    assert abs(cancel.deadline_unix_ms / 1000.0 - (t0 + 30)) < 5
    w.done(t.OUT_CANCELLED, reason="cancelled at step 1")
    j = c.job(job)
    assert j.state == t.CANCELLED, j.reason
    # Cancelling a finished job: FAILED_PRECONDITION, nothing changes.
    t.expect_rpc_error(lambda: c.call("CancelJob", id=job),
                       grpc.StatusCode.FAILED_PRECONDITION, job, "CANCELLED")
    assert c.job(job).state == t.CANCELLED
    # A worker that ignores the cancel: CANCELLED when the grace ends.
    job2 = c.call("SubmitJob", spec=t.small_spec("ignored")).job.id
    w.assignment = None
    w.wait_command("assignment")
    # It keeps heartbeating BUSY: the grace (1 s) ends the job, never the
    # heartbeat timeout (2 s), however slow the machine.
    with t.keep_beating(w):
        c.call("CancelJob", id=job2, grace_seconds=1)
        j = c.wait_state(job2, t.CANCELLED, timeout=5)
    assert "grace period over" in j.reason, j.reason
    assert [e.state for e in j.events][-2:] == [t.CANCELLING, t.CANCELLED]


@t.with_daemon()
def worker_cannot_act_as_another(d, c):
    """Issue 12 item 1: a worker (any worker-role caller) naming another
    worker's id without that worker's secret is refused: it cannot report
    the job done with a made-up evaluation, nor take its commands, nor
    register under its id."""
    job = c.call("SubmitJob", spec=t.small_spec(
        "victim", train={"steps": 200000, "global_batch": 4})).job.id
    victim, thief = t.FakeWorker(c), t.FakeWorker(c)
    assert victim.wait_command("assignment").job_id == job
    victim.progress(3)
    fake_eval = [M("EvalResult", window=64, loss=0.001, perplexity=1.001)]
    for secret in (thief.secret, "", "0" * 64):
        t.expect_rpc_error(lambda: c.call(
            "ReportDone", worker_id=victim.id, worker_secret=secret,
            job_id=job, attempt=1, rank=0, outcome=t.OUT_SUCCEEDED,
            eval=fake_eval), grpc.StatusCode.PERMISSION_DENIED, victim.id)
        t.expect_rpc_error(lambda: c.call(
            "Heartbeat", worker_id=victim.id, worker_secret=secret,
            state=t.IDLE), grpc.StatusCode.PERMISSION_DENIED)
    t.expect_rpc_error(lambda: c.call(
        "ReportDone", worker_id=victim.id, job_id=job, attempt=1, rank=0,
        outcome=t.OUT_FAILED_USER), grpc.StatusCode.PERMISSION_DENIED,
        "worker_secret is required")
    r = c.call("RegisterWorker", hostname="thief", device="cpu",
               previous_worker_id=victim.id,
               previous_worker_secret=thief.secret)
    assert r.worker_id not in (victim.id, thief.id), r.worker_id
    j = c.job(job)
    assert j.state == t.RUNNING and len(j.eval) == 0, j
    victim.progress(4)
    assert c.job(job).step == 4
    assert "refused: worker_secret is not its secret" in d.log()


@t.with_daemon()
def worker_ids_are_unguessable_and_kept(d, c):
    """Ids are "w-" and 24 random hex digits, secrets 64; a worker that
    registers again with its own id and secret keeps both."""
    import re
    ws = [t.FakeWorker(c) for _ in range(4)]
    for w in ws:
        assert re.fullmatch(r"w-[0-9a-f]{24}", w.id), w.id
        assert re.fullmatch(r"[0-9a-f]{64}", w.secret), w.secret
    assert len({w.id for w in ws}) == 4 and len({w.secret for w in ws}) == 4
    r = c.call("RegisterWorker", hostname="h", device="cpu",
               previous_worker_id=ws[0].id,
               previous_worker_secret=ws[0].secret)
    assert r.worker_id == ws[0].id and r.worker_secret == ws[0].secret
    assert len(c.call("ListWorkers").workers) == 4


def _many_shards(n, name_len=240):
    tmp = tempfile.mkdtemp(prefix="e2d_many_")
    for i in range(n):
        name = ("s%06d_" % i).ljust(name_len, "x") + ".bin"
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(b"\0" * 8)
    return tmp


@t.with_daemon()
def oversized_shard_manifest_fails_at_assignment(d, c):
    """A shard pattern matching so many files that the assignment would
    pass the 2 MiB a worker accepts: the job FAILS at assignment, as a
    user error, with the sizes and the fix; the worker stays free."""
    tmp = _many_shards(9000)
    try:
        job = c.call("SubmitJob", spec=t.small_spec(
            "many", data={"train_shards": [tmp + "/s*.bin"]})).job.id
        w = t.FakeWorker(c)
        j = c.wait_state(job, t.FAILED, timeout=30)
        assert "shard manifest of 9000 files" in j.reason, j.reason
        assert "fewer, larger shards" in j.reason, j.reason
        assert j.failure.user_error and j.restarts == 0, j
        assert not w.beat()
        ws = c.call("ListWorkers").workers
        assert ws[0].state == t.IDLE, ws
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.with_daemon()
def lost_assignment_fails_the_attempt_at_once(d, c):
    """The heartbeat reply with the assignment does not reach the worker
    (larger than its receive limit): its next heartbeat says IDLE, and the
    attempt fails within seconds with that reason, not at the 600 s hang
    timeout."""
    tmp = _many_shards(40)
    small = t.Client(d.address, options=[
        ("grpc.max_receive_message_length", 4096)])
    try:
        job = c.call("SubmitJob", spec=t.small_spec(
            "lost", data={"train_shards": [tmp + "/s*.bin"]})).job.id
        w = t.FakeWorker(small)
        deadline = time.time() + 20
        j = c.job(job)
        while time.time() < deadline and j.attempt < 1 or \
                j.state in (t.PENDING, t.STARTING):
            try:
                w.beat()
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
            j = c.job(job)
            if time.time() > deadline:
                break
            time.sleep(0.05)
        reasons = [e.reason for e in j.events]
        assert any("did not reach worker %s" % w.id in r for r in reasons), \
            (t.STATE_NAMES[j.state], reasons)
    finally:
        small.close()
        shutil.rmtree(tmp, ignore_errors=True)


@t.with_daemon()
def cancel_of_a_finished_job_fails(d, c):
    """coordinator.proto: cancelling a finished job is FAILED_PRECONDITION."""
    job = c.call("SubmitJob", spec=t.small_spec()).job.id
    w = t.FakeWorker(c)
    w.wait_command("assignment")
    w.progress(10)
    w.done()
    assert c.job(job).state == t.SUCCEEDED
    t.expect_rpc_error(lambda: c.call("CancelJob", id=job),
                       grpc.StatusCode.FAILED_PRECONDITION,
                       "job %s is already SUCCEEDED" % job)
    j = c.job(job)
    assert j.state == t.SUCCEEDED and j.cancellations == 0, j


@t.with_daemon()
def checkpoint_commit_and_retention(d, c):
    spec = t.small_spec(checkpoint={"every": 2, "keep_last": 2})
    job = c.call("SubmitJob", spec=spec).job.id
    w = t.FakeWorker(c)
    a = w.wait_command("assignment")
    for step in (2, 4, 6):
        r = _report(c, w, step, [_write_ckpt(a.job_dir, step, 0, b"z" * step)])
        assert r.committed
    ck = os.path.join(a.job_dir, "checkpoints")
    assert sorted(os.listdir(ck)) == ["step_4", "step_6"]
    j = c.job(job)
    assert [cp.step for cp in j.checkpoints] == [4, 6]
    assert all(cp.attempt == 1 for cp in j.checkpoints)
    with open(os.path.join(ck, "step_6", "manifest.json")) as f:
        text = f.read()
    assert '"step": 6' in text and '"rank-0.bin"' in text
    # A file whose size differs from the report is not committed.
    f = _write_ckpt(a.job_dir, 8, 0, b"short")
    f.size = 99
    t.expect_rpc_error(lambda: _report(c, w, 8, [f]),
                       grpc.StatusCode.FAILED_PRECONDITION, "99")
    assert [cp.step for cp in c.job(job).checkpoints] == [4, 6]
    # The next attempt starts clean (no stale .tmp) and resumes from 6.
    w.done(t.OUT_FAILED_INFRA, reason="device lost")
    w.assignment = None
    b = w.wait_command("assignment")
    assert b.attempt == 2 and b.start_step == 6
    assert b.resume_checkpoint.endswith("step_6")
    assert sorted(os.listdir(ck)) == ["step_4", "step_6"]


def _get_twice(c, job):
    """GetJob twice: after a change the first reply is built from the rows
    (and kept as the job's memo), the second comes from the memo; both
    must be the same Job. The scheduler may change the job between the two
    calls (e.g. a restart starts once its shard manifest is expanded off
    the loop): then the later reply must be newer, and the pair is read
    again; a memo that differs from the rows differs every time."""
    for _ in range(20):
        first, again = c.job(job), c.job(job)
        if first == again:
            return first
        assert again.updated_unix_ms >= first.updated_unix_ms, (first, again)
    assert first == again, (first, again)
    return first


@t.with_daemon()
def get_job_follows_every_change(d, c):
    """GetJob answers an unchanged job from a memo of its packed reply;
    every change (transition, progress, checkpoint, failure, run, cancel)
    shows in the next GetJob, the same as a reply built from the rows."""
    spec = t.small_spec(checkpoint={"every": 2, "keep_last": 2})
    job = c.call("SubmitJob", spec=spec).job.id
    # Two ranks: with one worker it stays PENDING throughout.
    other = c.call("SubmitJob", spec=spec2("other")).job.id
    j = _get_twice(c, job)
    assert j.state == t.PENDING and not j.worker_ids and j.spec.name == "t"
    assert _get_twice(c, other).spec.name == "other"
    n_events = len(j.events)
    w = t.FakeWorker(c)
    a = w.wait_command("assignment")
    assert a.job_id == job
    j = _get_twice(c, job)
    assert j.state == t.STARTING and list(j.worker_ids) == [w.id], j
    assert len(j.events) == n_events + 1 and j.events[-1].state == t.STARTING
    w.progress(2, loss=0.5)
    j = _get_twice(c, job)
    assert j.state == t.RUNNING and j.step == 2 and abs(j.loss - 0.5) < 1e-6, j
    r = _report(c, w, 2, [_write_ckpt(a.job_dir, 2, 0, b"c" * 4)])
    assert r.committed
    assert [cp.step for cp in _get_twice(c, job).checkpoints] == [2]
    # A failed attempt: the failure and the restart show at once (the
    # next pass may already have started attempt 2 on the idle worker).
    w.done(t.OUT_FAILED_INFRA, exit_code=137, reason="device lost")
    j = _get_twice(c, job)
    assert j.state in (t.RESTARTING, t.STARTING) and j.restarts == 1, j
    assert j.failure.exit_code == 137 and j.failure.worker_id == w.id, j
    w.assignment = None
    b = w.wait_command("assignment")
    assert b.attempt == 2
    j = _get_twice(c, job)
    assert j.attempt == 2 and list(j.worker_ids) == [w.id], j
    # Cancel: CANCELLING, then CANCELLED once the rank reports.
    c.call("CancelJob", id=job, grace_seconds=30)
    j = _get_twice(c, job)
    assert j.state == t.CANCELLING and j.cancellations == 1, j
    w.done(t.OUT_CANCELLED, reason="cancelled")
    j = _get_twice(c, job)
    assert j.state == t.CANCELLED and not j.worker_ids, j
    assert [e.state for e in j.events][-2:] == [t.CANCELLING, t.CANCELLED]
    # The other job never changed, and an unknown id is still NOT_FOUND.
    assert _get_twice(c, other).state == t.PENDING
    t.expect_rpc_error(lambda: c.job("j-999999"), grpc.StatusCode.NOT_FOUND,
                       "j-999999")


@t.with_daemon()
def rendezvous_waits_for_the_key(d, c):
    job = c.call("SubmitJob", spec=spec2()).job.id
    w1, w2 = t.FakeWorker(c), t.FakeWorker(c)
    a1, a2 = w1.wait_command("assignment"), w2.wait_command("assignment")
    got = {}

    def getter():
        t0 = time.time()
        got["r"] = c.call("RendezvousGet", worker_id=w2.id,
                          worker_secret=w2.secret, job_id=job,
                          attempt=a2.attempt, key="nccl-id", wait_ms=10000)
        got["dt"] = time.time() - t0

    th = threading.Thread(target=getter)
    th.start()
    time.sleep(0.3)
    # Still waiting: it returns only once the key is put (its call may
    # reach e2d late on a loaded machine, so its own time says nothing).
    assert th.is_alive(), "RendezvousGet returned before the put: %r" % got
    c.call("RendezvousPut", worker_id=w1.id,
           worker_secret=w1.secret, job_id=job, attempt=a1.attempt,
           key="nccl-id", value=b"\x01\x02secret")
    th.join(10)
    assert got["r"].found and got["r"].value == b"\x01\x02secret"
    assert got["dt"] < 5, got["dt"]
    t0 = time.time()
    r = c.call("RendezvousGet", worker_id=w2.id,
               worker_secret=w2.secret, job_id=job, attempt=1,
               key="absent", wait_ms=300)
    assert not r.found and 0.25 < time.time() - t0 < 3
    r = c.call("RendezvousGet", worker_id=w2.id,
               worker_secret=w2.secret, job_id=job, attempt=1,
               key="nccl-id")
    assert r.found
    t.expect_rpc_error(lambda: c.call(
        "RendezvousGet", worker_id=w2.id,
        worker_secret=w2.secret, job_id=job, attempt=7, key="k"),
        grpc.StatusCode.FAILED_PRECONDITION)
    t.expect_rpc_error(lambda: c.call(
        "Heartbeat", worker_id="w-999999"), grpc.StatusCode.NOT_FOUND)


@t.with_daemon()
def assignment_carries_the_shard_manifest(d, c):
    # Absolute patterns e2d can see: every rank gets the same expanded,
    # sorted file list with sizes. A relative pattern (or one that matches
    # nothing here): no manifest, the ranks expand the patterns themselves.
    tmp = tempfile.mkdtemp(prefix="e2d_shards_")
    try:
        files = {"b_train_1.bin": 700, "a_train_0.bin": 300, "b_train_0.bin": 512}
        for name, size in files.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(b"\0" * size)
        pats = [os.path.join(tmp, "b_train_*.bin"), os.path.join(tmp, "a_train_0.bin")]
        job = c.call("SubmitJob", spec=spec2(data={"train_shards": pats})).job.id
        w1, w2 = t.FakeWorker(c), t.FakeWorker(c)
        got = [w.wait_command("assignment") for w in (w1, w2)]
        want = [(os.path.join(tmp, n), files[n])
                for n in ("b_train_0.bin", "b_train_1.bin", "a_train_0.bin")]
        for a in got:
            assert a.job_id == job
            assert [(s.path, s.bytes) for s in a.train_shards] == want, a.train_shards
        c.call("CancelJob", id=job, grace_seconds=0)
        for pats in (["data/train_*.bin"], [os.path.join(tmp, "none_*.bin")]):
            job = c.call("SubmitJob", spec=t.small_spec(
                "rel", data={"train_shards": pats})).job.id
            w = t.FakeWorker(c)
            a = w.wait_command("assignment")
            assert a.job_id == job and len(a.train_shards) == 0, a.train_shards
            c.call("CancelJob", id=job, grace_seconds=0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    t.run_cases([gang_all_or_nothing, priority_then_fifo,
                 big_job_blocks_smaller_behind_it,
                 cancelled_head_unblocks_the_queue,
                 unschedulable_job_is_parked_and_backfilled,
                 submit_refuses_jobs_above_the_limits,
                 priority_ceiling_per_role, cancel_of_a_finished_job_fails,
                 worker_cannot_act_as_another,
                 worker_ids_are_unguessable_and_kept,
                 oversized_shard_manifest_fails_at_assignment,
                 lost_assignment_fails_the_attempt_at_once,
                 lost_worker_restarts_from_checkpoint,
                 elastic_restart_on_survivors,
                 elastic_restart_waits_for_its_survivors,
                 elastic_restart_leaves_out_a_stopping_worker,
                 gang_job_waits_for_all_after_a_loss,
                 hang_is_handled_like_a_lost_worker,
                 user_error_is_not_retried, restart_budget_is_finite,
                 cancel_pending_and_running, checkpoint_commit_and_retention,
                 get_job_follows_every_change, rendezvous_waits_for_the_key,
                 assignment_carries_the_shard_manifest])
