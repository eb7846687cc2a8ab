"""chaos -- e2d and real e2worker processes under faults, with figures.

Cases (each prints one "chaos <case>:" line of figures, and fails when a
guarantee breaks):
  kill9_storm        kill -9 of e2d in the middle of a submit storm, N
                     times: acknowledged vs. lost vs. duplicated jobs,
                     PRAGMA integrity_check after each restart.
  enospc_state       the state dir on a full file system: submits are
                     refused while it is full, e2d stays up, no
                     acknowledged job is lost, the database stays sound.
  enospc_checkpoint  the job's checkpoint dir fills up mid-training: the
                     failed checkpoint is never committed or resumed from,
                     the attempt fails with the reason and the job resumes
                     from its last committed checkpoint once space is back.
  frozen_worker      SIGSTOP of the worker holding a job: detected within
                     the heartbeat timeout, the job restarts on the other
                     worker from its checkpoint.
  dropped_worker     the worker holding a fresh assignment is killed
                     before it reports a step: the attempt fails within
                     seconds with a reason and the job runs elsewhere.

Run through tests/chaos/run.sh (a private mount namespace, so the small
file systems vanish with the suite however it ends). Usage:
  chaos.py [--full] [case ...]      (E2D_BIN and E2WORKER_BIN set, root)
--full: more kill cycles and submits (the figures of bench/RESULTS.md).
Every wait has a deadline; every process and folder is removed at exit."""

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import e2dtest as t  # noqa: E402
from e2dtest import M  # noqa: E402

FULL = "--full" in sys.argv
CLEANUP = []  # callables run at exit, newest first


def cleanup():
    while CLEANUP:
        try:
            CLEANUP.pop()()
        except Exception as e:  # keep cleaning
            print("chaos: cleanup: %s" % e, file=sys.stderr)


def e2worker():
    path = os.environ.get("E2WORKER_BIN", "")
    assert os.access(path, os.X_OK), "E2WORKER_BIN must name e2worker"
    return path


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix="e2chaos_%s_" % prefix)
    CLEANUP.append(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def mount_tmpfs(path, size):
    """A tmpfs of `size` bytes at path (the suite runs in its own mount
    namespace: tests/chaos/run.sh)."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size,
                    "chaos", path], check=True)
    CLEANUP.append(lambda: subprocess.run(["umount", "-l", path]))


def resize_tmpfs(path, size):
    subprocess.run(["mount", "-o", "remount,size=%d" % size, path], check=True)


def shrink_tmpfs(path, spare):
    """Shrinks the tmpfs at path to what it uses plus spare bytes; a writer
    may add to it meanwhile (then the size is below the use and the
    remount is refused): measure again and retry."""
    for _ in range(200):
        r = subprocess.run(["mount", "-o", "remount,size=%d" % (
            used_bytes(path) + spare), path], stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            return
        time.sleep(0.01)
    raise AssertionError("chaos: could not shrink %s" % path)


def used_bytes(path):
    s = os.statvfs(path)
    return (s.f_blocks - s.f_bfree) * s.f_frsize


def daemon(*args, state_dir=None, heartbeat_timeout=2.0, log_dir=None):
    d = t.Daemon("--shutdown-grace", "1", *args, state_dir=state_dir,
                 heartbeat_timeout=heartbeat_timeout)
    if log_dir:  # a full state dir must not swallow e2d's log
        d.log_path = os.path.join(log_dir, "e2d.log")
    CLEANUP.append(d.cleanup)
    return d


def integrity(state_dir):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "e2d.db"),
                         uri=True, timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def all_jobs(c):
    jobs, token = [], ""
    while True:
        r = c.call("ListJobs", page_size=1000, page_token=token, timeout=30)
        jobs += list(r.jobs)
        token = r.next_page_token
        if not token:
            return jobs


class Worker:
    """A real `e2worker --coordinator` process (agent mode)."""

    def __init__(self, d, name, tmp):
        self.out = open(os.path.join(tmp, name + ".log"), "ab")
        self.proc = subprocess.Popen(
            [e2worker(), "--coordinator", d.address, "--name", name],
            stdout=self.out, stderr=self.out)
        self.pid = self.proc.pid
        CLEANUP.append(self.kill)

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.kill()
            self.proc.wait(10)
        self.out.close()


def wait_for(what, fn, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("chaos: no %s within %.0f s" % (what, timeout))


def idle_workers(c, n):
    return wait_for("%d idle workers" % n, lambda: len(
        [w for w in c.call("ListWorkers").workers if w.state == t.IDLE]) >= n,
        30)


def train_spec(data, name, steps, every, keep_last=2, max_restarts=3):
    import test_e2e
    s = test_e2e.job_spec(data, name=name, steps=steps, every=every,
                          keep_last=keep_last)
    s.max_restarts = max_restarts
    return s


def make_data(tmp):
    import test_e2e
    make_data.cached = test_e2e.make_data(tmp)
    return make_data.cached


def job_logs(c, job):
    """Every attempt's rank logs (<job dir>/attempt-N/rank-R.log), oldest
    attempt first: StreamLogs serves one attempt."""
    jd = c.job(job).job_dir
    out = []
    atts = sorted((int(n.split("-")[1]), n) for n in os.listdir(jd)
                  if n.startswith("attempt-"))
    for _, n in atts:
        for f in sorted(os.listdir(os.path.join(jd, n))):
            with open(os.path.join(jd, n, f), errors="replace") as fh:
                out.append(fh.read())
    return "\n".join(out)


def ckpt_complete(path):
    """1 when path is a committed checkpoint whose files match its
    manifest (sizes and sha256), else 0."""
    if path.endswith(".tmp"):
        return 0
    try:
        with open(os.path.join(path, "manifest.json")) as f:
            m = json.load(f)
        for e in m["files"]:
            p = os.path.join(path, e["name"])
            if os.path.getsize(p) != e["size"]:
                return 0
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for blk in iter(lambda: f.read(1 << 20), b""):
                    h.update(blk)
            if e["sha256"] != "0" and h.hexdigest() != e["sha256"]:
                return 0
        return 1
    except (OSError, ValueError, KeyError):
        return 0


# ---- kill -9 of e2d under a submit storm ----

def kill9_storm():
    cycles = 100 if FULL else 10
    threads = 4
    tmp = tmpdir("storm")
    d = daemon(state_dir=os.path.join(tmp, "state"))
    c = d.start()
    acked, unacked = set(), set()
    integrity_ok = 0
    lock = threading.Lock()
    spec = t.small_spec("storm")

    def storm(cycle, th, stop):
        client = t.Client(d.address)
        i = 0
        try:
            while not stop.is_set():
                rid = "c%d-t%d-%d" % (cycle, th, i)
                i += 1
                try:
                    client.call("SubmitJob", spec=spec, request_id=rid,
                                timeout=5)
                    with lock:
                        acked.add(rid)
                except grpc.RpcError:
                    with lock:
                        unacked.add(rid)
        finally:
            client.close()

    for cycle in range(cycles):
        stop = threading.Event()
        ths = [threading.Thread(target=storm, args=(cycle, k, stop))
               for k in range(threads)]
        for th in ths:
            th.start()
        before = len(acked)
        # Kill once the storm is under way: a few acknowledged submits,
        # then a random moment.
        wait_for("submits acknowledged", lambda: len(acked) >= before + 5, 30)
        time.sleep(random.uniform(0.0, 0.3))
        c.close()
        d.proc.send_signal(signal.SIGKILL)
        stop.set()  # calls failing on the dead socket are not submits
        d.proc.wait(10)
        for th in ths:
            th.join(30)
        c = d.start()
        if integrity(d.state_dir) == "ok":
            integrity_ok += 1
    jobs = all_jobs(c)
    counts = {}
    for j in jobs:
        counts[j.request_id] = counts.get(j.request_id, 0) + 1
    lost = [r for r in acked if r not in counts]
    dup = [r for r, n in counts.items() if n > 1]
    stored_unacked = len([r for r in unacked if r in counts])
    c.close()
    rc = d.stop()
    print("chaos kill9_storm: %d kill -9 cycles, %d submits acknowledged, "
          "%d lost, %d duplicated, %d unacknowledged (%d of them stored), "
          "integrity_check ok %d/%d" % (
              cycles, len(acked), len(lost), len(dup), len(unacked),
              stored_unacked, integrity_ok, cycles), flush=True)
    assert not lost, "acknowledged but lost: %s" % sorted(lost)[:10]
    assert not dup, "duplicated: %s" % sorted(dup)[:10]
    assert integrity_ok == cycles
    assert rc == 0, "e2d exited with %s" % rc


# ---- ENOSPC on the state dir ----

def enospc_state():
    tmp = tmpdir("enospc_state")
    state = os.path.join(tmp, "state")
    mount_tmpfs(state, (3 if FULL else 2) << 20)
    d = daemon(state_dir=state, log_dir=tmp)
    c = d.start()
    acked, refused, first_refusal = [], 0, ""
    spec = t.small_spec("full")
    i = 0
    # Submit until the disk has refused 20 in a row (bounded).
    streak = 0
    deadline = time.time() + 120
    while streak < 20 and time.time() < deadline:
        rid = "s-%d" % i
        i += 1
        try:
            c.call("SubmitJob", spec=spec, request_id=rid, timeout=10)
            acked.append(rid)
            streak = 0
        except grpc.RpcError as e:
            refused += 1
            streak += 1
            first_refusal = first_refusal or "%s: %s" % (e.code().name,
                                                         e.details())
    alive_full = d.proc.poll() is None
    # Reads still answer on a full disk.
    listed_full = len(all_jobs(c)) if alive_full else -1
    c.close()
    d.kill9()
    ok_full = integrity(state)
    resize_tmpfs(state, 64 << 20)
    c = d.start()
    stored = {j.request_id for j in all_jobs(c)}
    lost = [r for r in acked if r not in stored]
    after = c.call("SubmitJob", spec=spec, request_id="after").job.id
    ok_after = integrity(state)
    c.close()
    rc = d.stop()
    print("chaos enospc_state: %d submits acknowledged, %d refused on the "
          "full disk (first: %s), e2d up while full: %s, %d listed while "
          "full, lost after restart: %d, integrity_check full/after: %s/%s, "
          "submit after space is back: %s" % (
              len(acked), refused, first_refusal[:160],
              "yes" if alive_full else "NO", listed_full, len(lost),
              ok_full, ok_after, after), flush=True)
    assert refused > 0, "the state dir never filled up"
    assert alive_full, "e2d died on a full state dir:\n" + d.log()
    assert "full" in first_refusal or "space" in first_refusal, \
        "the refusal does not say the disk is full: %r" % first_refusal
    assert not lost, "acknowledged but lost: %s" % lost[:10]
    assert ok_full == "ok" and ok_after == "ok"
    assert rc == 0


# ---- ENOSPC on the checkpoint dir ----

def _newer_ckpt(c, job_id, after):
    cps = [cp for cp in c.job(job_id).checkpoints if cp.step > after]
    return cps[-1] if cps else None


def enospc_checkpoint():
    rounds = 4 if FULL else 1
    tmp = tmpdir("enospc_ckpt")
    data = make_data(tmp)
    d = daemon("--hang-timeout", "30", state_dir=os.path.join(tmp, "state"))
    c = d.start()
    steps = 400 if FULL else 40
    # Restarts: one failed attempt per round is the point; on a fast
    # machine an attempt resumed before the test gives the space back can
    # fail on the full disk again, so the budget leaves room for those.
    job = c.call("SubmitJob", spec=train_spec(
        data, "ckfull", steps=steps, every=5, keep_last=2,
        max_restarts=rounds + 20)).job
    ck = os.path.join(job.job_dir, "checkpoints")
    mount_tmpfs(ck, 64 << 20)
    w = Worker(d, "chaos-w1", tmp)
    reasons, shrunk_at, committed_while_full, last = [], [], 0, 0
    one = 0
    for _ in range(rounds):
        # A checkpoint committed by the current attempt shows how big one
        # is; then the disk shrinks to what is used plus half a checkpoint,
        # so the next one cannot be written whole.
        cp = wait_for("a new committed checkpoint",
                      lambda: _newer_ckpt(c, job.id, last), 120, 0.02)
        attempt = cp.attempt
        # The worker trains in-process: frozen while the disk shrinks, a
        # short job cannot finish (or commit its next checkpoint) first.
        os.kill(w.pid, signal.SIGSTOP)
        try:
            one = sum(os.path.getsize(os.path.join(cp.path, f))
                      for f in os.listdir(cp.path))
            shrink_tmpfs(ck, one // 2)
        finally:
            os.kill(w.pid, signal.SIGCONT)
        t0 = time.time()
        before = {x.step for x in c.job(job.id).checkpoints}
        shrunk_at.append(c.job(job.id).step)
        # The attempt that hits the full disk must fail with the reason.
        j = wait_for("the attempt on the full disk to end",
                     lambda: (lambda j: j if j.attempt > attempt or j.state in (
                         t.FAILED, t.SUCCEEDED) else None)(c.job(job.id)),
                     120, 0.05)
        reasons.append(next((r for r in _reasons_since(c, job.id, t0)
                             if "failed" in r), j.reason))
        committed_while_full += len({x.step for x in j.checkpoints} - before)
        last = max([x.step for x in j.checkpoints] or [0])
        # Space is back: the next attempt resumes from the last committed
        # checkpoint.
        resize_tmpfs(ck, 64 << 20)
        if j.state in (t.FAILED, t.SUCCEEDED):
            break
    j = c.wait_state(job.id, (t.SUCCEEDED, t.FAILED, t.CANCELLED), 300)
    logs = job_logs(c, job.id)
    resumed = [line.split("resumed from ", 1)[1].split(" (step")[0]
               for line in logs.splitlines() if "resumed from " in line]
    # A resumed checkpoint may have been pruned by retention since: only a
    # .tmp path, or one still present whose files do not match its
    # manifest, counts as partial.
    partial = [p for p in resumed
               if p.endswith(".tmp") or (os.path.isdir(p) and
                                         not ckpt_complete(p))]
    kept = [cp.path for cp in j.checkpoints]
    incomplete = [p for p in kept if not ckpt_complete(p)]
    nospace = [r for r in reasons if "space" in r.lower()]
    c.close()
    rc = d.stop()
    print("chaos enospc_checkpoint: %d full-disk rounds (checkpoint dir "
          "shrunk at steps %s, one checkpoint %d bytes); failed attempts "
          "naming the full disk: %d/%d (first: %s); checkpoints committed "
          "while full: %d; resumed from %s; partial checkpoints resumed: %d; "
          "kept checkpoints complete: %d/%d; final state %s at step %d/%d" % (
              len(reasons), shrunk_at, one, len(nospace), len(reasons),
              (reasons[0] if reasons else "(none)")[:300],
              committed_while_full,
              [os.path.basename(p) for p in resumed] or "none", len(partial),
              len(kept) - len(incomplete), len(kept),
              t.STATE_NAMES[j.state], j.step, j.total_steps), flush=True)
    assert not partial, "resumed from partial checkpoints: %s" % partial
    assert not incomplete, "committed but incomplete: %s" % incomplete
    assert len(nospace) == len(reasons) == rounds, \
        "failed attempts that do not say the disk is full: %r" % reasons
    assert len(resumed) >= rounds
    assert j.state == t.SUCCEEDED, (j.reason, list(j.failure.last_log_lines))
    assert rc == 0


# ---- a frozen worker ----

def _two_workers_job(tmp, name, steps, every):
    data = make_data(tmp)
    d = daemon("--hang-timeout", "20", state_dir=os.path.join(tmp, "state"),
               heartbeat_timeout=2.0)
    c = d.start()
    workers = [Worker(d, "chaos-a", tmp), Worker(d, "chaos-b", tmp)]
    idle_workers(c, 2)
    job = c.call("SubmitJob", spec=train_spec(
        data, name, steps=steps, every=every)).job
    return d, c, workers, job


def _reasons_since(c, job_id, t0):
    """Reasons of the job's stored transitions from time t0 on."""
    return [e.reason for e in c.job(job_id).events
            if e.time_unix_ms >= int(t0 * 1000)]


def _holder(c, job_id, workers):
    ws = [w for w in c.call("ListWorkers").workers if w.job_id == job_id]
    if not ws:
        return None
    return next((w for w in workers if w.pid == ws[0].pid), None)


def frozen_worker():
    rounds = 3 if FULL else 1
    tmp = tmpdir("frozen")
    d, c, workers, job = _two_workers_job(tmp, "frozen", 100000, 5)
    detects, resumes, reasons = [], [], []
    for r in range(rounds):
        # Freeze the holder once the attempt has committed a checkpoint.
        attempt = c.wait_state(job.id, t.RUNNING, 120).attempt
        wait_for("a checkpoint of attempt %d" % attempt,
                 lambda: [cp for cp in c.job(job.id).checkpoints
                          if cp.attempt == attempt], 120, 0.05)
        held = wait_for("the job's worker",
                        lambda: _holder(c, job.id, workers), 30)
        os.kill(held.pid, signal.SIGSTOP)
        t0 = time.time()
        j = wait_for("the frozen attempt to end",
                     lambda: (lambda j: j if j.attempt > attempt or j.state
                              not in (t.RUNNING, t.STARTING) else None)(
                                  c.job(job.id)), 60, 0.05)
        detects.append(time.time() - t0)
        reasons.append(next((x for x in _reasons_since(c, job.id, t0)
                             if "failed" in x), j.reason))
        j = wait_for("the job to run on the other worker",
                     lambda: (lambda j: j if j.attempt > attempt and j.state ==
                              t.RUNNING else None)(c.job(job.id)), 120, 0.05)
        resumes.append(time.time() - t0)
        other = _holder(c, job.id, workers)
        assert other is not None and other is not held
        # Thawed, the old worker must not take the job back; it becomes
        # the spare of the next round.
        os.kill(held.pid, signal.SIGCONT)
        wait_for("the thawed worker to be idle", lambda: [
            w for w in c.call("ListWorkers").workers
            if w.pid == held.pid and w.state == t.IDLE], 60)
    step = c.job(job.id).step
    wait_for("progress after the last thaw",
             lambda: c.job(job.id).step >= step + 5, 60)
    j = c.job(job.id)
    resumed = [line.split("resumed from ", 1)[1]
               for line in job_logs(c, job.id).splitlines()
               if "resumed from " in line]
    c.call("CancelJob", id=job.id)
    c.wait_state(job.id, t.CANCELLED, 30)
    c.close()
    rc = d.stop()
    print("chaos frozen_worker: %d SIGSTOPs, detected in %s s (heartbeat "
          "timeout 2 s); running again on the other worker after %s s; "
          "first reason: %s; resumed from %s; attempt %d after the last thaw "
          "(expected %d)" % (
              rounds, ", ".join("%.1f" % x for x in detects),
              ", ".join("%.1f" % x for x in resumes), reasons[0],
              [os.path.basename(x) for x in resumed], j.attempt, rounds + 1),
          flush=True)
    assert max(detects) < 15, "a frozen worker was detected only after " \
        "%.1f s" % max(detects)
    assert len(resumed) >= rounds, \
        "a restarted attempt did not resume from a checkpoint"
    assert j.attempt == rounds + 1, "the thawed worker disturbed the job"
    assert rc == 0


# ---- a worker gone between assignment and its first step ----

def dropped_worker():
    rounds = 5 if FULL else 1
    tmp = tmpdir("dropped")
    d, c, workers, job = _two_workers_job(tmp, "dropped", 100000, 0)
    fails, runs, reasons, states = [], [], [], []
    for r in range(rounds):
        if r > 0:
            # A fresh job for a fresh assignment, and a spare worker.
            c.call("CancelJob", id=job.id)
            c.wait_state(job.id, t.CANCELLED, 30)
            workers = [w for w in workers if w.proc.poll() is None]
            workers.append(Worker(d, "chaos-r%d" % r, tmp))
            idle_workers(c, 2)
            job = c.call("SubmitJob", spec=train_spec(
                make_data.cached, "dropped%d" % r, 100000, 0)).job
        # Kill the assigned worker the moment e2d hands it the job.
        held = wait_for("the assignment", lambda: _holder(c, job.id, workers),
                        30, 0.005)
        states.append(t.STATE_NAMES[c.job(job.id).state])
        held.proc.kill()
        t0 = time.time()
        j = wait_for("the attempt to fail",
                     lambda: (lambda j: j if j.attempt >= 2 or j.state not in (
                         t.RUNNING, t.STARTING) else None)(c.job(job.id)), 60,
                     0.05)
        fails.append(time.time() - t0)
        reasons.append(next((x for x in _reasons_since(c, job.id, t0)
                             if "failed" in x), j.reason))
        j = wait_for("the job to run on the other worker",
                     lambda: (lambda j: j if j.attempt >= 2 and j.state ==
                              t.RUNNING else None)(c.job(job.id)), 120, 0.05)
        runs.append(time.time() - t0)
    c.call("CancelJob", id=job.id)
    c.wait_state(job.id, t.CANCELLED, 30)
    c.close()
    rc = d.stop()
    print("chaos dropped_worker: %d workers killed right after their "
          "assignment (job %s); attempt failed after %s s; first reason: %s; "
          "running on the other worker after %s s" % (
              rounds, "/".join(sorted(set(states))),
              ", ".join("%.1f" % x for x in fails), reasons[0],
              ", ".join("%.1f" % x for x in runs)), flush=True)
    assert max(fails) < 15, "a dropped attempt failed only after %.1f s" % (
        max(fails),)
    assert all(reasons)
    assert rc == 0


def undelivered_assignment():
    """A worker that stays connected and heartbeats IDLE but never got
    (or never acts on) its assignment: the reply carrying it was lost."""
    tmp = tmpdir("undelivered")
    data = make_data(tmp)
    d = daemon("--hang-timeout", "20", state_dir=os.path.join(tmp, "state"),
               heartbeat_timeout=2.0)
    c = d.start()
    deaf = t.FakeWorker(c, host="deaf")
    job = c.call("SubmitJob", spec=train_spec(data, "undelivered", 100000,
                                              0)).job
    # Heartbeat until e2d hands the job over, then keep saying IDLE as if
    # that reply never arrived.
    deaf.wait_command("assignment", timeout=30)
    t0 = time.time()
    stop = threading.Event()

    def beat_idle():
        while not stop.is_set():
            try:
                r = deaf.c.call("Heartbeat", worker_id=deaf.id,
                                worker_secret=deaf.secret, state=t.IDLE)
                del r
            except grpc.RpcError:
                pass
            stop.wait(0.2)
    th = threading.Thread(target=beat_idle)
    th.start()
    CLEANUP.append(lambda: (stop.set(), th.join()))
    Worker(d, "chaos-b", tmp)
    try:
        j = wait_for("the undelivered attempt to fail",
                     lambda: (lambda j: j if j.attempt >= 2 or j.state not in (
                         t.RUNNING, t.STARTING) else None)(c.job(job.id)),
                     60, 0.05)
        fail_s = time.time() - t0
        reason = "; ".join(_reasons_since(c, job.id, t0)) or j.reason
        j = wait_for("the job to run on the other worker",
                     lambda: (lambda j: j if j.attempt >= 2 and j.state ==
                              t.RUNNING else None)(c.job(job.id)), 120, 0.05)
        run_s = time.time() - t0
    finally:
        stop.set()
        th.join()
    c.call("CancelJob", id=job.id)
    c.wait_state(job.id, t.CANCELLED, 30)
    c.close()
    rc = d.stop()
    print("chaos undelivered_assignment: the assigned worker heartbeats IDLE; "
          "attempt failed after %.1f s: %s; running on the other worker "
          "after %.1f s" % (fail_s, reason, run_s), flush=True)
    assert fail_s < 15, "the undelivered attempt failed only after %.1f s" % (
        fail_s,)
    assert rc == 0


CASES = [kill9_storm, enospc_state, enospc_checkpoint, frozen_worker,
         dropped_worker, undelivered_assignment]


def main():
    names = [a for a in sys.argv[1:] if not a.startswith("--")]
    byname = {f.__name__: f for f in CASES}
    for n in names:
        if n not in byname:
            sys.exit("chaos: unknown case %s (one of %s)" % (
                n, ", ".join(byname)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failed = 0
    try:
        for n in names or list(byname):
            t0 = time.time()
            try:
                byname[n]()
                print("ok %s (%.1f s)" % (n, time.time() - t0), flush=True)
            except Exception as e:
                failed += 1
                print("FAILED %s (%.1f s): %s" % (n, time.time() - t0, e),
                      flush=True)
            finally:
                cleanup()
    finally:
        cleanup()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
