"""test_e2e -- e2d with real e2worker processes it spawns itself
(--local-workers): a small E² job runs to SUCCEEDED with checkpoints,
metrics, logs and evaluation; a cancelled job leaves no process of it
alive after grace + 5 s (also when a worker ignores the cancel and
SIGTERM); kill -9 of e2d in the middle of a job, then a restart: the job
restarts from its last committed checkpoint and finishes.
Usage: test_e2e.py [case ...] (E2D_BIN and E2WORKER_BIN set)."""

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

from google.protobuf import json_format

import e2dtest as t
from e2dtest import M

HERE = os.path.dirname(os.path.abspath(__file__))


def e2worker():
    path = os.environ.get("E2WORKER_BIN", "")
    assert os.access(path, os.X_OK), "E2WORKER_BIN must name e2worker"
    return path


def make_data(tmp):
    """Byte-level token shards of generated English-like text (seeded)."""
    rng = random.Random(1234)
    words = ("the model reads long context windows and the scale of each "
             "position changes so that the attention learns to work at many "
             "lengths while the data stays the same").split()
    with open(os.path.join(tmp, "corpus.txt"), "w") as f:
        for _ in range(3000):
            f.write(" ".join(rng.choice(words) for _ in range(12)) + ".\n")
    subprocess.run([e2worker(), "prep", "--out", os.path.join(tmp, "tok"),
                    "--val-fraction", "0.1", os.path.join(tmp, "corpus.txt")],
                   check=True, stdout=subprocess.DEVNULL)
    return (os.path.join(tmp, "tok_train_*.bin"),
            os.path.join(tmp, "tok_val_*.bin"))


def job_spec(data, name="e2e", steps=6, every=2, keep_last=2):
    train, val = data
    return json_format.ParseDict({
        "name": name,
        "model": {"config": {"hidden_size": 32, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 64,
                             "vocab_size": 257, "max_position_embeddings": 32}},
        "data": {"train_shards": [train], "eval_shards": [val]},
        "augment": {"train_length": 64, "g_max": 4},
        "train": {"steps": steps, "global_batch": 2, "lr": 1e-3},
        "checkpoint": {"every": every, "keep_last": keep_last},
        "eval": {"windows": [32, 64], "max_tokens": 512},
    }, t.M("JobSpec"))


class Env:
    def __init__(self, *args, worker_bin=None, local=1):
        self.tmp = tempfile.mkdtemp(prefix="e2d_e2e_")
        self.data = make_data(self.tmp)
        self.state = os.path.join(self.tmp, "state")
        self.args = ["--local-workers", str(local), "--worker-bin",
                     worker_bin or e2worker(), "--shutdown-grace", "1"] + list(args)
        self.d = t.Daemon(*self.args, state_dir=self.state)

    def close(self, c):
        c.close()
        rc = self.d.stop()
        log = self.d.log()
        shutil.rmtree(self.tmp, ignore_errors=True)
        assert rc == 0, "e2d exited with %s:\n%s" % (rc, log)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def submit_to_succeeded():
    env = Env()
    c = env.d.start()
    try:
        job = c.call("SubmitJob", spec=job_spec(env.data)).job.id
        j = c.wait_state(job, (t.SUCCEEDED, t.FAILED, t.CANCELLED), timeout=60)
        assert j.state == t.SUCCEEDED, (j.reason, list(j.failure.last_log_lines))
        assert j.step == 6 and j.total_steps == 6
        assert [cp.step for cp in j.checkpoints] == [4, 6]
        for cp in j.checkpoints:
            assert os.path.exists(os.path.join(cp.path, "manifest.json"))
        ck = os.path.join(j.job_dir, "checkpoints")
        assert sorted(os.listdir(ck)) == ["step_4", "step_6"], os.listdir(ck)
        # Points are the steps the heartbeats carried (at least the last).
        m = c.call("GetMetrics", id=job)
        steps = [p.step for p in m.points]
        assert steps == sorted(set(steps)) and steps[-1] == 6, steps
        assert all(p.loss > 0 for p in m.points)
        assert [e.window for e in m.eval] == [32, 64]
        assert "| trained | 64 |" in j.eval_table
        assert os.path.getsize(os.path.join(j.job_dir, "eval.json")) > 0
        logs = b"".join(ch.data for ch in c.stubs["StreamLogs"](
            M("StreamLogsRequest", id=job), timeout=10)).decode()
        assert "step 6/6" in logs, logs
        ws = c.call("ListWorkers").workers
        assert len(ws) == 1 and ws[0].spawned_by_e2d and ws[0].state == t.IDLE
    except BaseException:
        print(env.d.log())
        raise
    finally:
        env.close(c)


def _cancel_and_check(env, c, grace):
    job = c.call("SubmitJob", spec=job_spec(env.data, "long", steps=100000,
                                            every=0)).job.id
    c.wait_state(job, t.RUNNING, timeout=30)
    holders = [w for w in c.call("ListWorkers").workers if w.job_id == job]
    assert len(holders) == 1
    pid = holders[0].pid
    t0 = time.time()
    c.call("CancelJob", id=job, grace_seconds=grace)
    j = c.wait_state(job, t.CANCELLED, timeout=grace + 10)
    time.sleep(max(0.0, t0 + grace + 5 - time.time()))
    # Grace + 5 s: no process runs the job any more.
    ws = c.call("ListWorkers", include_lost=True).workers
    assert not [w for w in ws if w.job_id == job and w.state == t.BUSY], ws
    running = alive(pid) and any(w.pid == pid and w.state == t.BUSY for w in ws)
    assert not running, "pid %d still runs job %s" % (pid, job)
    return j, pid


def cancel_leaves_no_process():
    env = Env()
    c = env.d.start()
    try:
        j, pid = _cancel_and_check(env, c, grace=3)
        assert "every rank stopped" in j.reason, j.reason
    except BaseException:
        print(env.d.log())
        raise
    finally:
        env.close(c)


def cancel_kills_a_stubborn_worker():
    env = Env(worker_bin=os.path.join(HERE, "stubborn_worker.py"))
    c = env.d.start()
    try:
        j, pid = _cancel_and_check(env, c, grace=1)
        assert "terminated" in j.reason, j.reason
        assert not alive(pid), "stubborn pid %d survived SIGKILL" % pid
    except BaseException:
        print(env.d.log())
        raise
    finally:
        env.close(c)


def cancelled_only_once_processes_are_gone():
    """A rank that ignores the cancel and SIGTERM: the job stays CANCELLING
    until SIGKILL has taken its process, and is CANCELLED only then."""
    env = Env(worker_bin=os.path.join(HERE, "stubborn_worker.py"))
    c = env.d.start()
    try:
        job = c.call("SubmitJob", spec=job_spec(env.data, "long", steps=100000,
                                                every=0)).job.id
        c.wait_state(job, t.RUNNING, timeout=30)
        pid = [w.pid for w in c.call("ListWorkers").workers
               if w.job_id == job][0]
        c.call("CancelJob", id=job, grace_seconds=1)
        deadline = time.time() + 30
        while time.time() < deadline:
            j = c.job(job)
            if j.state == t.CANCELLED:
                assert not alive(pid), "CANCELLED while pid %d runs" % pid
                break
            time.sleep(0.02)
        assert j.state == t.CANCELLED, j
        assert "processes have exited" in j.reason, j.reason
    except BaseException:
        print(env.d.log())
        raise
    finally:
        env.close(c)


def dead_local_worker_is_replaced():
    env = Env(worker_bin=os.path.join(HERE, "stubborn_worker.py"))
    c = env.d.start()
    try:
        job = c.call("SubmitJob", spec=job_spec(env.data, "victim")).job.id
        c.wait_state(job, t.RUNNING, timeout=30)
        pid = [w.pid for w in c.call("ListWorkers").workers][0]
        os.kill(pid, signal.SIGKILL)
        # The exit ends the attempt at once (no heartbeat timeout), with
        # the signal recorded; the respawned worker takes attempt 2.
        deadline = time.time() + 20
        while time.time() < deadline:
            j = c.job(job)
            if j.attempt == 2 and j.state == t.RUNNING:
                break
            time.sleep(0.05)
        assert j.attempt == 2 and j.state == t.RUNNING, j
        assert j.restarts == 1 and j.failure.signal == 9, j.failure
        assert "killed by signal 9" in [e for e in j.events
                                        if e.state == t.RESTARTING][0].reason
        ws = c.call("ListWorkers", include_lost=True).workers
        new = [w for w in ws if w.state == t.BUSY]
        assert len(new) == 1 and new[0].pid != pid and new[0].spawned_by_e2d
        assert [w.state for w in ws if w.pid == pid] == [t.LOST]
        assert not alive(pid)
    except BaseException:
        print(env.d.log())
        raise
    finally:
        env.close(c)


def kill9_mid_job_restarts_from_checkpoint():
    env = Env()
    c = env.d.start()
    try:
        # The worker is frozen (SIGSTOP) as soon as the step-20 checkpoint
        # is committed, so the kill below always lands mid-job however fast
        # the machine, and the 80 steps left stay short under sanitizers.
        job = c.call("SubmitJob", spec=job_spec(
            env.data, "resume", steps=100, every=10, keep_last=3)).job.id
        deadline = time.time() + 60
        while time.time() < deadline:
            holders = [w for w in c.call("ListWorkers").workers
                       if w.job_id == job]
            if holders:
                break
            time.sleep(0.05)
        assert holders, "no worker took the job: %s" % c.job(job)
        old_pid = holders[0].pid
        step20 = os.path.join(c.job(job).job_dir, "checkpoints", "step_20")
        while not os.path.exists(step20):
            assert time.time() < deadline, "no step-20 checkpoint: %s" % c.job(job)
            time.sleep(0.002)
        os.kill(old_pid, signal.SIGSTOP)
        j = c.job(job)
        assert j.state == t.RUNNING, j
        assert 20 <= j.checkpoints[-1].step < 100, j.checkpoints
        env.d.kill9()
        c.close()
        c = env.d.start()
        assert not alive(old_pid), "the old local worker survived e2d's restart"
        j = c.wait_state(job, (t.SUCCEEDED, t.FAILED), timeout=90)
        assert j.state == t.SUCCEEDED, (j.reason, list(j.failure.last_log_lines))
        assert j.attempt == 2 and j.restarts == 0, j
        restart = [e for e in j.events if e.state == t.RESTARTING]
        assert restart and "e2d restarted" in restart[0].reason
        resumed = [e for e in j.events if e.state == t.STARTING][-1].reason
        assert "resuming from checkpoint step" in resumed, resumed
        step = int(resumed.rsplit(" ", 1)[1])
        assert step >= 20
        # One timeline: attempt 1 up to the checkpoint, attempt 2 after it.
        pts = c.call("GetMetrics", id=job).points
        steps = [p.step for p in pts]
        assert steps == sorted(set(steps)) and steps[-1] == 100, steps
        assert all(p.attempt == 2 for p in pts if p.step > step), pts
        assert all(p.attempt == 1 for p in pts if p.step < step), pts
    except BaseException:
        print(env.d.log())
        raise
    finally:
        env.close(c)


if __name__ == "__main__":
    t.run_cases([submit_to_succeeded, cancel_leaves_no_process,
                 cancel_kills_a_stubborn_worker,
                 cancelled_only_once_processes_are_gone,
                 dead_local_worker_is_replaced,
                 kill9_mid_job_restarts_from_checkpoint])
