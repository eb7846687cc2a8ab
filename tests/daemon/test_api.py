"""test_api -- e2.v1.Coordinator against the real e2d over its unix socket:
SubmitJob validation names the field, request_id idempotency, ListJobs
filters and pages, GetJob history, WatchJob and StreamLogs streams,
GetMetrics, and the daemon's flags and config file errors.
Usage: test_api.py [case ...] (E2D_BIN names the binary)."""

import datetime
import os
import subprocess
import tempfile
import time

import grpc

import e2dtest as t
from e2dtest import M


@t.with_daemon()
def submit_validation(d, c):
    bad = grpc.StatusCode.INVALID_ARGUMENT
    # Empty body: no spec at all.
    t.expect_rpc_error(lambda: c.raw("SubmitJob", b""), bad, "spec is required")
    # An empty spec message: the first required field is named.
    t.expect_rpc_error(lambda: c.call("SubmitJob", spec=M("JobSpec")), bad,
                       "spec.name")
    # Out-of-range values name the field and the range.
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(num_workers=0)), bad,
        "spec.num_workers", "0")
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(
            augment={"g_max": 5000, "train_length": 64})), bad,
        "spec.augment.g_max")
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(
            train={"steps": 10, "global_batch": 4, "lr": -1.0})), bad,
        "spec.train.lr")
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(num_workers=2, min_workers=3)),
        bad, "spec.min_workers must be in [1, 2] (got 3)")
    # Unknown enumerated strings.
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(device="tpu")), bad,
        "spec.device")
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(
            augment={"method": "yarn", "train_length": 64})), bad,
        "spec.augment.method")
    # A malformed body is refused before any handler.
    t.expect_rpc_error(lambda: c.raw("SubmitJob", b"\x0a\xff\xff"), bad)
    # request_id syntax.
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(), request_id="a b"),
        bad, "request_id")
    # Nothing was stored by any of them.
    assert len(c.call("ListJobs").jobs) == 0


@t.with_daemon()
def request_id_idempotent(d, c):
    r1 = c.call("SubmitJob", spec=t.small_spec("first"), request_id="req-1")
    r2 = c.call("SubmitJob", spec=t.small_spec("first"), request_id="req-1")
    assert r1.created and not r2.created
    assert r1.job.id == r2.job.id
    assert r2.job.spec.name == "first"
    assert r2.job.request_id == "req-1"
    r3 = c.call("SubmitJob", spec=t.small_spec("third"), request_id="req-2")
    assert r3.created and r3.job.id != r1.job.id
    jobs = c.call("ListJobs").jobs
    assert sorted(j.id for j in jobs) == sorted([r1.job.id, r3.job.id])
    # The job directory holds the spec as submitted.
    spec_path = os.path.join(r1.job.job_dir, "spec.json")
    with open(spec_path) as f:
        assert '"first"' in f.read()


@t.with_daemon()
def request_id_reused_with_another_spec(d, c):
    """A request_id sent again with a different spec is ALREADY_EXISTS,
    naming the job the first request created; nothing new is stored."""
    r1 = c.call("SubmitJob", spec=t.small_spec("first"), request_id="req-1")
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec("second"),
                       request_id="req-1"),
        grpc.StatusCode.ALREADY_EXISTS, "req-1", r1.job.id)
    jobs = c.call("ListJobs").jobs
    assert [j.id for j in jobs] == [r1.job.id]
    assert jobs[0].spec.name == "first"


@t.with_daemon()
def worker_hostname_is_escaped_in_the_log(d, c):
    """A hostname with ESC, CSI (C1) and a newline reaches e2d's log (and
    ListWorkers) as \\xNN escapes: no terminal control, no forged line."""
    evil = "node\x1b[31mred\nFORGED e2d: job j-1 SUCCEEDED\u009bX\u00e9"
    w = t.FakeWorker(c, host=evil)
    deadline = time.time() + 10
    while w.id not in d.log() and time.time() < deadline:
        time.sleep(0.05)
    log = d.log()
    assert "registered" in log and w.id in log, log
    assert "\x1b" not in log and "\x9b" not in log, repr(log)
    assert not any(l.startswith("FORGED") for l in log.splitlines()), log
    assert "node\\x1b[31mred\\x0aFORGED" in log, repr(log)
    host = [x.hostname for x in c.call("ListWorkers").workers][0]
    assert "\x1b" not in host and "\n" not in host, repr(host)
    assert "\u009b" not in host and host.endswith("\\x9bX\u00e9"), repr(host)


@t.with_daemon()
def replies_carry_the_stored_spec_without_parsing(d, c):
    """GetJob, ListJobs and CancelJob send the spec as stored in packed
    form: the JSON copy is never parsed for a reply (here it is made
    unparsable behind e2d's back, and every reply still has the spec)."""
    import sqlite3
    spec = t.small_spec("packed", labels={"k": "v"})
    job = c.call("SubmitJob", spec=spec).job
    assert job.spec == spec, job.spec
    db = sqlite3.connect(os.path.join(d.state_dir, "e2d.db"), timeout=10)
    db.execute("UPDATE jobs SET spec = '{not json' WHERE id = ?", (job.id,))
    db.commit()
    db.close()
    assert c.job(job.id).spec == spec
    assert c.call("ListJobs").jobs[0].spec == spec
    assert c.call("CancelJob", id=job.id).job.spec == spec


@t.with_daemon()
def list_pages_stop_at_the_byte_limit(d, c):
    """A ListJobs page stays under 2 MiB whatever page_size asks for, so
    that `e2ctl list` never exceeds a client's 4 MiB message limit; the
    tokens still walk every job once."""
    filler = [i % 200 for i in range(3000)]
    ids = set()
    for i in range(400):
        ids.add(c.call("SubmitJob", spec=t.small_spec(
            "big%d" % i, eval={"windows": [64], "filler_tokens": filler})
        ).job.id)
    seen, token, pages = [], "", 0
    while True:
        r = c.call("ListJobs", page_size=1000, page_token=token)
        assert r.ByteSize() <= 2 << 20, r.ByteSize()
        seen += [j.id for j in r.jobs]
        pages += 1
        token = r.next_page_token
        if not token:
            break
    assert pages >= 2, pages
    assert len(seen) == len(set(seen)) and set(seen) == ids, len(seen)


@t.with_daemon()
def concurrent_submits(d, c):
    """Concurrent SubmitJobs share commits (group commit): each reply names
    a stored job, ids are distinct, and one request_id still makes one
    job even when its copies arrive together."""
    import concurrent.futures as cf
    def submit(i):
        rid = "same" if i % 2 else "r%d" % i
        name = "same" if i % 2 else "c%d" % i
        r = c.call("SubmitJob", spec=t.small_spec(name), request_id=rid)
        return rid, r.job.id, r.created
    with cf.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(submit, range(64)))
    same = {jid for rid, jid, _ in got if rid == "same"}
    assert len(same) == 1, same
    assert sum(1 for rid, _, created in got if rid == "same" and created) == 1
    others = [jid for rid, jid, _ in got if rid != "same"]
    assert len(set(others)) == 32 and not (set(others) & same)
    listed = {j.id for j in c.call("ListJobs", page_size=1000).jobs}
    assert listed == set(others) | same
    # Durable: a kill -9 right now loses none of them.
    d.kill9()
    c2 = d.start()
    try:
        assert {j.id for j in c2.call("ListJobs", page_size=1000).jobs} == listed
    finally:
        c2.close()


@t.with_daemon()
def list_filters_and_pages(d, c):
    ids = []
    for i in range(7):
        spec = t.small_spec("j%d" % i, labels={"team": "a" if i % 2 else "b"})
        ids.append(c.call("SubmitJob", spec=spec).job.id)
    c.call("CancelJob", id=ids[3])
    # Newest first, in pages of 3 with tokens.
    seen, token = [], ""
    while True:
        r = c.call("ListJobs", page_size=3, page_token=token)
        seen += [j.id for j in r.jobs]
        token = r.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids)), seen
    a = [j.id for j in c.call("ListJobs", labels=["team=a"]).jobs]
    assert a == [ids[5], ids[3], ids[1]], a
    cancelled = c.call("ListJobs", states=[t.CANCELLED]).jobs
    assert [j.id for j in cancelled] == [ids[3]]
    both = c.call("ListJobs", states=[t.PENDING], labels=["team=a"]).jobs
    assert [j.id for j in both] == [ids[5], ids[1]]
    bad = grpc.StatusCode.INVALID_ARGUMENT
    t.expect_rpc_error(lambda: c.call("ListJobs", labels=["team"]), bad,
                       "labels[0]")
    t.expect_rpc_error(lambda: c.call("ListJobs", page_size=5000), bad,
                       "page_size")
    t.expect_rpc_error(lambda: c.call("ListJobs", page_token="zz"), bad,
                       "page_token")
    t.expect_rpc_error(lambda: c.call("GetJob", id="j-999999"),
                       grpc.StatusCode.NOT_FOUND, "j-999999")


@t.with_daemon()
def watch_and_logs(d, c):
    job = c.call("SubmitJob", spec=t.small_spec()).job.id
    stream = c.stubs["WatchJob"](M("WatchJobRequest", id=job), timeout=20)
    first = next(stream)
    assert first.kind == 1 and first.state == t.PENDING  # SNAPSHOT
    w = t.FakeWorker(c)
    w.wait_command("assignment")
    w.progress(1, loss=3.5, logs=["step 1 loss 3.5"])
    w.progress(2, loss=3.0, logs=["step 2 loss 3.0"])
    follow = c.stubs["StreamLogs"](
        M("StreamLogsRequest", id=job, follow=True), timeout=20)
    w.done(log_lines=["bye"])
    events = list(stream)
    states = [e.state for e in events if e.kind == 2]
    assert states == [t.STARTING, t.RUNNING, t.SUCCEEDED], states
    progress = [e for e in events if e.kind == 3]
    assert [p.step for p in progress] == [1, 2]
    assert progress[-1].loss == 3.0
    text = b"".join(ch.data for ch in follow).decode()
    assert text == "step 1 loss 3.5\nstep 2 loss 3.0\nbye\n", repr(text)
    # Watching a finished job: one snapshot, then the end.
    again = list(c.stubs["WatchJob"](M("WatchJobRequest", id=job), timeout=5))
    assert len(again) == 1 and again[0].state == t.SUCCEEDED
    # Offsets and ranks.
    tail = list(c.stubs["StreamLogs"](
        M("StreamLogsRequest", id=job, offset=16), timeout=5))
    assert b"".join(ch.data for ch in tail) == b"step 2 loss 3.0\nbye\n"
    t.expect_rpc_error(
        lambda: list(c.stubs["StreamLogs"](
            M("StreamLogsRequest", id=job, rank=3), timeout=5)),
        grpc.StatusCode.INVALID_ARGUMENT, "rank")


@t.with_daemon()
def metrics_and_events(d, c):
    job = c.call("SubmitJob", spec=t.small_spec()).job.id
    w = t.FakeWorker(c)
    w.wait_command("assignment")
    for s in range(1, 6):
        w.progress(s, loss=5.0 - s, tps=1000.0 + s)
    ev = [M("EvalResult", window=64, scale=1.0, loss=1.5, perplexity=4.48,
            tokens=1000),
          M("EvalResult", window=256, scale=4.0, loss=2.5, perplexity=12.18,
            tokens=1000)]
    w.done(eval=ev, eval_json='{"ok": true}')
    m = c.call("GetMetrics", id=job)
    assert [p.step for p in m.points] == [1, 2, 3, 4, 5]
    assert m.points[2].loss == 2.0 and m.points[4].tokens_per_second == 1005.0
    assert [e.window for e in m.eval] == [64, 256]
    assert [p.step for p in c.call("GetMetrics", id=job, since_step=3).points] == [4, 5]
    j = c.job(job)
    assert j.state == t.SUCCEEDED and j.step == 5 and j.loss == 0.0
    assert "| trained | 256 |" in j.eval_table, j.eval_table
    assert [e.state for e in j.events] == [t.PENDING, t.STARTING, t.RUNNING,
                                           t.SUCCEEDED]
    assert j.finished_unix_ms >= j.started_unix_ms > 0
    with open(os.path.join(j.job_dir, "metrics.jsonl")) as f:
        lines = f.read().splitlines()
    assert len(lines) == 5 and '"step":3' in lines[2]
    with open(os.path.join(j.job_dir, "eval.json")) as f:
        assert f.read() == '{"ok": true}'


def _e2d(*args, env=None):
    return subprocess.run([t.e2d_binary()] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=20)


def flags_and_config():
    r = _e2d("--help")
    assert r.returncode == 0
    for flag in ("--listen", "--state-dir", "--local-workers", "--worker-bin",
                 "--heartbeat-timeout", "--hang-timeout", "--config"):
        assert flag in r.stdout, flag
    r = _e2d("--heartbeat-timeout", "-3")
    assert r.returncode == 2 and "heartbeat-timeout" in r.stderr, r.stderr
    r = _e2d("--no-such-flag", "1")
    assert r.returncode == 2 and "no-such-flag" in r.stderr, r.stderr
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "e2d.conf")
        with open(conf, "w") as f:
            f.write("# comment\nstate-dir = %s\n\nlocal-workers = many\n" % tmp)
        r = _e2d("--config", conf)
        assert r.returncode == 2, r.stderr
        assert "%s:4:" % conf in r.stderr and "local-workers" in r.stderr, r.stderr
        with open(conf, "w") as f:
            f.write("colour = blue\n")
        r = _e2d("--config", conf)
        assert r.returncode == 2 and "%s:1: colour" % conf in r.stderr, r.stderr
        # A good file is used: the state dir and socket come from it.
        sd = os.path.join(tmp, "state")
        with open(conf, "w") as f:
            f.write("state-dir = %s\nheartbeat-timeout = 3\n" % sd)
        d = t.Daemon("--config", conf, state_dir=sd)
        c = d.start()
        r = c.call("RegisterWorker", hostname="h", device="cpu")
        assert r.heartbeat_timeout_ms == 2000  # the flag (2 s) wins
        c.close()
        assert d.stop() == 0
        assert os.path.exists(os.path.join(sd, "e2d.db"))
        # E2_STATE_DIR is the default state dir.
        env = dict(os.environ, E2_STATE_DIR=os.path.join(tmp, "envstate"))
        p = subprocess.Popen([t.e2d_binary()], env=env, stderr=subprocess.PIPE,
                             text=True)
        sock = os.path.join(tmp, "envstate", "e2d.sock")
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        assert os.path.exists(sock), "no socket under E2_STATE_DIR"
        # A second e2d on the same state dir refuses to start.
        r = _e2d(env=env)
        assert r.returncode == 1 and "another e2d" in r.stderr, r.stderr
        p.terminate()
        assert p.wait(20) == 0


def local_workers_restart_with_backoff():
    r = _e2d("--state-dir", tempfile.mkdtemp(prefix="e2d_test_"),
             "--local-workers", "1", "--worker-bin", "/nonexistent/e2worker")
    assert r.returncode == 1 and "--worker-bin" in r.stderr, r.stderr
    # A worker binary that dies at once is restarted, with growing pauses.
    d = t.Daemon("--shutdown-grace", "1", "--local-workers", "2",
                 "--worker-bin", "/bin/false")
    c = d.start()

    def exits(log, i):
        # "<ISO time> e2d: local worker I (pid P) exited with code 1"
        return [datetime.datetime.strptime(l.split(" ")[0], "%Y-%m-%dT%H:%M:%S.%fZ")
                for l in log.splitlines() if ("local worker %d (pid" % i) in l]
    try:
        deadline = time.time() + 20
        while time.time() < deadline and \
                min(len(exits(d.log(), i)) for i in (0, 1)) < 3:
            time.sleep(0.1)
        log = d.log()
        for i in (0, 1):
            e = exits(log, i)
            # Pauses of 0.5 s, then 1 s (a timer never fires early), not a
            # loop of restarts: the third exit comes at least 1.5 s after
            # the first, and the next not before 2 s more.
            assert len(e) in (3, 4), (i, len(e), log)
            gaps = [(b - a).total_seconds() for a, b in zip(e, e[1:])]
            assert gaps[0] >= 0.45 and gaps[1] >= 0.95, (i, gaps, log)
            assert len(e) == 3 or gaps[2] >= 1.95, (i, gaps, log)
        assert "exited with code 1" in log
        assert len(c.call("ListJobs").jobs) == 0  # still serving
        wlog = os.path.join(d.state_dir, "workers", "local-0.log")
        assert os.path.exists(wlog)
    finally:
        c.close()
        rc = d.stop()
        d.cleanup()
    assert rc == 0


def tcp_listen():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = t.Daemon("--shutdown-grace", "1", "--insecure",
                 listen="127.0.0.1:%d" % port)
    c = d.start()
    try:
        job = c.call("SubmitJob", spec=t.small_spec()).job
        assert c.job(job.id).state == t.PENDING
        assert not os.path.exists(os.path.join(d.state_dir, "e2d.sock"))
        # A second daemon cannot take the same port (no SO_REUSEPORT).
        with tempfile.TemporaryDirectory() as other:
            r = _e2d("--state-dir", other, "--insecure", "--listen",
                     "127.0.0.1:%d" % port)
        assert r.returncode == 1 and "127.0.0.1:%d" % port in r.stderr, r.stderr
    finally:
        c.close()
        rc = d.stop()
        d.cleanup()
    assert rc == 0


if __name__ == "__main__":
    t.run_cases([submit_validation, request_id_idempotent,
                 request_id_reused_with_another_spec,
                 worker_hostname_is_escaped_in_the_log,
                 replies_carry_the_stored_spec_without_parsing,
                 list_pages_stop_at_the_byte_limit, concurrent_submits,
                 list_filters_and_pages, watch_and_logs, metrics_and_events,
                 flags_and_config, local_workers_restart_with_backoff,
                 tcp_listen])
