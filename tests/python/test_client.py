"""python_client_*: e2client (python/, installed into the fixture's venv by
install_client.sh) against the real e2d binary on a temporary state dir;
jobs are run by e2dtest's fake workers (real WorkerControl clients). Run
with the venv's python; argv[1] names the case; E2D_BIN names e2d."""
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "daemon"))
import e2dtest as t  # noqa: E402

import e2client  # noqa: E402
from e2client import E2Error, pb  # noqa: E402

# The installed package, with its build-time generated classes.
assert e2client.pb.__name__ == "e2client._pb.e2.v1.coordinator_pb2", e2client.pb.__name__

CODES = grpc.StatusCode


def spec_dict(name="t", **over):
    """e2dtest's small valid spec as the JSON-form dict a dashboard holds."""
    return json_format.MessageToDict(t.small_spec(name, **over))


def bounded(fn, seconds=30):
    """fn() in a thread; its result, or AssertionError after `seconds`."""
    box = {}

    def run():
        try:
            box["v"] = fn()
        except BaseException as e:  # handed to the caller
            box["e"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), "no result within %d s" % seconds
    if "e" in box:
        raise box["e"]
    return box["v"]


def expect_e2error(fn, code, *needles):
    try:
        fn()
    except E2Error as e:
        assert isinstance(e.code, grpc.StatusCode) and e.code == code, (e.code, code, e.details)
        for n in needles:
            assert n in e.details, "details %r lack %r" % (e.details, n)
        return e
    raise AssertionError("no E2Error; wanted %s" % code)


@t.with_daemon()
def submit_request_id_is_idempotent(d, c):
    cl = e2client.Client(d.address)
    a = cl.submit(spec_dict("idem"), request_id="dash-1")
    b = cl.submit(json.dumps(spec_dict("idem")), request_id="dash-1")
    assert a.created and not b.created, (a.created, b.created)
    assert a.job.id == b.job.id and a.job.request_id == "dash-1"
    assert a.job.state == pb.JOB_STATE_PENDING
    other = cl.submit(spec_dict("idem"))
    assert other.created and other.job.id != a.job.id
    # A spec file: relative shard paths are relative to the file.
    tmp = tempfile.mkdtemp()
    try:
        spec = spec_dict("file")
        spec["data"]["train_shards"] = ["shards/train_*.bin"]
        path = os.path.join(tmp, "job.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        job = cl.submit_file(path, request_id="dash-2").job
        assert list(cl.get(job.id).spec.data.train_shards) == [
            os.path.join(tmp, "shards/train_*.bin")], cl.get(job.id).spec.data
    finally:
        shutil.rmtree(tmp)
    cl.close()


@t.with_daemon()
def get_and_list_filter(d, c):
    with e2client.Client(d.address) as cl:
        ids = [cl.submit(spec_dict("j%d" % i, labels={"team": "a" if i % 2 else "b"})).job.id
               for i in range(4)]
        cl.cancel(ids[0])
        t.Client.wait_state(c, ids[0], t.CANCELLED)
        job = cl.get(ids[1])
        assert isinstance(job, pb.Job) and job.spec.name == "j1" and job.events
        assert [j.id for j in cl.list()] == ids[::-1]  # newest first
        assert [j.id for j in cl.list(states=["pending"])] == ids[:0:-1]
        assert [j.id for j in cl.list(states=[pb.JOB_STATE_CANCELLED])] == [ids[0]]
        assert [j.id for j in cl.list(labels={"team": "a"})] == [ids[3], ids[1]]
        assert [j.id for j in cl.list(states=["JOB_STATE_PENDING"], labels={"team": "b"})] == [ids[2]]


@t.with_daemon()
def watch_iterates_to_the_terminal_state(d, c):
    with e2client.Client(d.address) as cl:
        job = cl.submit(spec_dict("watched")).job.id
        it = cl.watch(job)
        first = bounded(lambda: next(it))
        assert first.kind == pb.JOB_EVENT_KIND_SNAPSHOT and first.state == pb.JOB_STATE_PENDING
        w = t.FakeWorker(c)
        w.wait_command("assignment")
        w.progress(1, loss=3.5)
        w.progress(2, loss=3.0)
        w.done()
        rest = bounded(lambda: list(it))  # ends by itself at SUCCEEDED
        kinds = [(e.kind, e.state) for e in rest if e.kind == pb.JOB_EVENT_KIND_TRANSITION]
        assert [s for _, s in kinds] == [pb.JOB_STATE_STARTING, pb.JOB_STATE_RUNNING,
                                         pb.JOB_STATE_SUCCEEDED], kinds
        prog = [e for e in rest if e.kind == pb.JOB_EVENT_KIND_PROGRESS]
        assert [p.step for p in prog] == [1, 2] and prog[-1].loss == 3.0
        assert rest[-1].state == pb.JOB_STATE_SUCCEEDED
        # A finished job: the snapshot, then the end.
        again = bounded(lambda: list(cl.watch(job)))
        assert len(again) == 1 and again[0].state == pb.JOB_STATE_SUCCEEDED


@t.with_daemon()
def cancel_returns_the_job(d, c):
    with e2client.Client(d.address) as cl:
        job = cl.submit(spec_dict("c")).job.id
        got = cl.cancel(job, grace_seconds=5)
        assert isinstance(got, pb.Job) and got.id == job
        assert got.state in (pb.JOB_STATE_CANCELLING, pb.JOB_STATE_CANCELLED), got.state
        assert t.Client.wait_state(c, job, t.CANCELLED).cancellations == 1
        # A running job: its worker is told to stop within the grace.
        job = cl.submit(spec_dict("r")).job.id
        w = t.FakeWorker(c)
        w.wait_command("assignment")
        w.progress(1)
        before = time.time()
        assert cl.cancel(job, grace_seconds=7).state == pb.JOB_STATE_CANCELLING
        stop = w.wait_command("cancel", state=t.BUSY)
        # The grace reached e2d: the stop deadline is about 7 s away.
        left = stop.deadline_unix_ms / 1000.0 - before
        assert 5 < left < 9 + (time.time() - before), left


@t.with_daemon()
def logs_iterate_whole_lines(d, c):
    with e2client.Client(d.address) as cl:
        job = cl.submit(spec_dict("logs")).job.id
        w = t.FakeWorker(c)
        w.wait_command("assignment")
        w.progress(1, logs=["step 1 loss 3.5"])
        w.progress(2, logs=["step 2 loss 3.0"])
        follow = cl.logs(job, follow=True)
        w.done(log_lines=["bye"])
        text = bounded(lambda: b"".join(ch.data for ch in follow).decode())
        assert text == "step 1 loss 3.5\nstep 2 loss 3.0\nbye\n", repr(text)
        chunks = bounded(lambda: list(cl.logs(job, rank=0)))
        assert all(isinstance(ch, pb.LogChunk) and ch.rank == 0 and ch.attempt == 1
                   for ch in chunks), chunks
        assert b"".join(ch.data for ch in chunks).endswith(b"bye\n")


@t.with_daemon()
def errors_carry_the_grpc_code(d, c):
    with e2client.Client(d.address) as cl:
        e = expect_e2error(lambda: cl.get("j-999999"), CODES.NOT_FOUND, "j-999999")
        assert e.method == "GetJob" and "NOT_FOUND" in str(e)
        bad = spec_dict("bad")
        bad["augment"]["g_max"] = 0
        expect_e2error(lambda: cl.submit(bad), CODES.INVALID_ARGUMENT, "g_max")
        expect_e2error(lambda: list(cl.watch("j-999999")), CODES.NOT_FOUND)
        expect_e2error(lambda: list(cl.logs("j-999999")), CODES.NOT_FOUND)
    gone = e2client.Client("unix:%s/nowhere.sock" % d.state_dir, timeout=3)
    expect_e2error(gone.list, CODES.UNAVAILABLE)
    gone.close()
    try:
        e2client.parse_spec('{"name": "x", "no_such_field": 1}')
        raise AssertionError("unknown spec field accepted")
    except json_format.ParseError as e:
        assert "no_such_field" in str(e)


def _tls_e2d(tmp, *extra):
    """e2d on 127.0.0.1:<free port> with TLS and tokens; (proc, port)."""
    log_path = os.path.join(tmp, "e2d-%d.log" % len(os.listdir(tmp)))
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [t.e2d_binary(), "--state-dir", os.path.join(tmp, "state"), "--shutdown-grace", "0.5",
         "--listen", "127.0.0.1:0", "--tls-cert", os.path.join(tmp, "pki", "server.pem"),
         "--tls-key", os.path.join(tmp, "pki", "server.key"),
         "--token-file", os.path.join(tmp, "tokens")] + list(extra), stdout=log, stderr=log)
    log.close()
    deadline = time.time() + 15
    while time.time() < deadline:
        with open(log_path, errors="replace") as f:
            m = re.search(r"listening on \S+ \(port (\d+)\)", f.read())
        if m:
            return proc, int(m.group(1))
        assert proc.poll() is None, open(log_path).read()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("e2d did not come up: " + open(log_path).read())


def _stop(proc):
    proc.terminate()
    assert proc.wait(20) == 0


def tls_and_token_options():
    tmp = tempfile.mkdtemp(prefix="e2client_tls_")
    procs = []
    try:
        pki = os.path.join(tmp, "pki")
        subprocess.run(["sh", os.path.join(ROOT, "tests", "sec", "gen_certs.sh"), pki], check=True)
        ca = os.path.join(pki, "ca.pem")
        tok = {"root": secrets.token_hex(24), "vera": secrets.token_hex(24)}
        with open(os.path.join(tmp, "tokens"), "w") as f:
            f.write("%s root admin\n%s vera viewer\n" % (tok["root"], tok["vera"]))
        os.chmod(os.path.join(tmp, "tokens"), 0o600)
        mine = os.path.join(tmp, "root.token")
        with open(mine, "w") as f:
            f.write("# my token\n\n  %s  trailing words\n" % tok["root"])
        os.chmod(mine, 0o600)
        proc, port = _tls_e2d(tmp)
        procs.append(proc)
        addr = "127.0.0.1:%d" % port
        with e2client.Client(addr, tls_ca=ca, token=tok["root"]) as cl:
            job = cl.submit(spec_dict("tls")).job.id
        with e2client.Client(addr, tls_ca=ca, token_file=mine) as cl:
            assert [j.id for j in cl.list()] == [job]
        with e2client.Client(addr, tls_ca=ca) as cl:
            expect_e2error(cl.list, CODES.UNAUTHENTICATED, "no bearer token")
        with e2client.Client(addr, tls_ca=ca, token=tok["vera"]) as cl:
            assert cl.get(job).id == job
            expect_e2error(lambda: cl.cancel(job), CODES.PERMISSION_DENIED)
        with e2client.Client(addr, token=tok["root"], timeout=5) as cl:  # plaintext to TLS
            expect_e2error(cl.list, CODES.UNAVAILABLE)
        os.chmod(mine, 0o644)
        try:
            e2client.Client(addr, tls_ca=ca, token_file=mine)
            raise AssertionError("a world-readable token file was accepted")
        except ValueError as e:
            assert "chmod 600" in str(e), e
        _stop(procs.pop())
        # Mutual TLS: e2d asks for a client certificate signed by its CA.
        proc, port = _tls_e2d(tmp, "--tls-client-ca", ca)
        procs.append(proc)
        addr = "127.0.0.1:%d" % port
        with e2client.Client(addr, tls_ca=ca, token=tok["root"],
                             tls_cert=os.path.join(pki, "client.pem"),
                             tls_key=os.path.join(pki, "client.key")) as cl:
            assert [j.id for j in cl.list()] == [job]
        with e2client.Client(addr, tls_ca=ca, token=tok["root"], timeout=5) as cl:
            expect_e2error(cl.list, CODES.UNAVAILABLE)
        _stop(procs.pop())
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@t.with_daemon()
def dashboard_example_runs_on_the_installed_client(d, c):
    tmp = tempfile.mkdtemp()
    try:
        spec = os.path.join(tmp, "job.json")
        with open(spec, "w") as f:
            json.dump(spec_dict("dash"), f)
        proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "examples", "dashboard_submit.py"), spec,
             "--server", d.address, "--request-id", "ex-1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, HOME=tmp, E2_TOKEN_FILE=""))
        w = t.FakeWorker(c)
        w.wait_command("assignment", timeout=30)
        w.progress(3, loss=2.25)
        w.done()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, (proc.returncode, out, err)
        job = c.call("ListJobs").jobs[0]
        assert job.request_id == "ex-1"
        lines = out.splitlines()
        assert lines[0] == "%s submitted" % job.id, lines
        assert any(re.match(r"%s step 3/10 loss 2\.2500 " % job.id, ln) for ln in lines), lines
        assert lines[-1].startswith("%s SUCCEEDED" % job.id), lines
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    t.run_cases([submit_request_id_is_idempotent, get_and_list_filter,
                 watch_iterates_to_the_terminal_state, cancel_returns_the_job,
                 logs_iterate_whole_lines, errors_carry_the_grpc_code, tls_and_token_options,
                 dashboard_example_runs_on_the_installed_client])
