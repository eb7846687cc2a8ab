"""sec_hardening_*: the real e2d binary against hostile submits and a
careless state directory: strings protobuf-c would change silently (NUL,
invalid UTF-8, a labels map with a repeated key), specs over the size
limits, paths outside --data-roots, and the modes of the state directory
and its files. Run with /usr/bin/python3; E2D_BIN names e2d (set by
ctest)."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
import e2dtest as t  # noqa: E402
from e2dtest import M  # noqa: E402

BAD = grpc.StatusCode.INVALID_ARGUMENT


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def submit_body(spec_bytes):
    """A SubmitJobRequest with spec (field 1) given as raw bytes."""
    return b"\x0a" + varint(len(spec_bytes)) + spec_bytes


def spec_bytes(**over):
    return t.small_spec(**over).SerializeToString()


def no_job_stored(c):
    assert len(c.call("ListJobs").jobs) == 0, "a refused spec was stored"


@t.with_daemon()
def spec_string_with_nul_refused(d, c):
    raw = spec_bytes(name="abcdef")
    assert b"abcdef" in raw
    body = submit_body(raw.replace(b"abcdef", b"abc\x00ef"))
    t.expect_rpc_error(lambda: c.raw("SubmitJob", body), BAD,
                       "spec.name", "NUL")
    no_job_stored(c)


@t.with_daemon()
def spec_string_invalid_utf8_refused(d, c):
    raw = spec_bytes()
    path = b"/nonexistent/train_*.bin"
    assert path in raw
    body = submit_body(raw.replace(path, b"/nonexistent/tr\xffin_*.bin"))
    t.expect_rpc_error(lambda: c.raw("SubmitJob", body), BAD,
                       "spec.data.train_shards", "not valid UTF-8")
    # An overlong encoding of '/' is not UTF-8 either.
    body = submit_body(raw.replace(path, b"/nonexistent\xc0\xaftrain*.bin"))
    t.expect_rpc_error(lambda: c.raw("SubmitJob", body), BAD,
                       "not valid UTF-8")
    no_job_stored(c)


@t.with_daemon()
def spec_duplicate_label_keys_refused(d, c):
    entry = b"\x0a\x04team" + b"\x12\x01x"
    raw = spec_bytes() + (b"\x12" + varint(len(entry)) + entry) * 2
    t.expect_rpc_error(lambda: c.raw("SubmitJob", submit_body(raw)), BAD,
                       'spec.labels: duplicate key "team"')
    no_job_stored(c)


@t.with_daemon()
def spec_over_limits_refused(d, c):
    ev = {"windows": [64], "filler_tokens": [1] * 5000}
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(eval=ev)), BAD,
        "spec.eval.filler_tokens must have at most 4096 entries (got 5000)")
    shards = ["/nonexistent/%d/%s.bin" % (i, "x" * 300) for i in range(250)]
    t.expect_rpc_error(
        lambda: c.call("SubmitJob", spec=t.small_spec(
            data={"train_shards": shards})), BAD,
        "over the limit of 65536 bytes")
    no_job_stored(c)


def data_roots_refuse_outside_paths():
    root = tempfile.mkdtemp(prefix="e2_roots_")
    d = t.Daemon("--shutdown-grace", "1", "--data-roots",
                 root + ":/srv/e2-data")
    c = d.start()
    try:
        assert "data roots %s:/srv/e2-data" % root in d.log()
        t.expect_rpc_error(
            lambda: c.call("SubmitJob", spec=t.small_spec()), BAD,
            "spec.data.train_shards[0]", "/nonexistent/train_*.bin",
            "outside the data roots (%s:/srv/e2-data)" % root)
        t.expect_rpc_error(
            lambda: c.call("SubmitJob", spec=t.small_spec(
                data={"train_shards": [root + "/ok.bin"],
                      "eval_shards": [root + "/../etc/passwd"]})), BAD,
            "spec.data.eval_shards[0]")
        os.symlink("/etc", os.path.join(root, "etc"))
        t.expect_rpc_error(
            lambda: c.call("SubmitJob", spec=t.small_spec(
                data={"train_shards": [root + "/etc/pass*"]})), BAD,
            "resolves (through a symbolic link) to a path outside")
        r = c.call("SubmitJob", spec=t.small_spec(
            data={"train_shards": [root + "/t_*.bin"]}))
        assert r.created
    except BaseException:
        print(d.log())
        raise
    finally:
        c.close()
        d.stop()
        d.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def worker_refuses_link_outside_roots():
    """Defence in depth: a shard pattern whose text is inside the roots
    passes SubmitJob, but the file it matches is a link to outside; the
    local worker (given e2d's roots) resolves it before opening and fails
    the job as a user error, without naming the link's target."""
    root = tempfile.mkdtemp(prefix="e2_roots_")
    outside = tempfile.mkdtemp(prefix="e2_outside_")
    secret = os.path.join(outside, "secret-file")
    with open(secret, "wb") as f:
        f.write(b"not for the submitter" * 100)
    os.symlink(secret, os.path.join(root, "t_000.bin"))
    d = t.Daemon("--shutdown-grace", "1", "--data-roots", root,
                 "--local-workers", "1", "--worker-bin",
                 os.environ["E2WORKER_BIN"])
    c = d.start()
    try:
        r = c.call("SubmitJob", spec=t.small_spec(
            data={"train_shards": [root + "/t_*.bin"]}))
        j = c.wait_state(r.job.id, t.FAILED, timeout=40)
        assert "resolves (through a symbolic link) to a path outside the " \
            "data roots" in j.reason, j.reason
        assert outside not in j.reason and "secret" not in j.reason, j.reason
        assert j.user_errors == 1 and j.restarts == 0, (j.user_errors,
                                                        j.restarts)
    except BaseException:
        print(d.log())
        raise
    finally:
        c.close()
        d.stop()
        d.cleanup()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)


@t.with_daemon()
def no_data_roots_warns(d, c):
    assert "warning: no data-roots" in d.log(), d.log()
    assert c.call("SubmitJob", spec=t.small_spec()).created


def run_e2d(state_dir, log_path):
    """Starts e2d on state_dir (which it may create); returns the process
    once its socket answers."""
    log = open(log_path, "ab")
    sock = os.path.join(os.path.dirname(log_path), "e2d.sock")
    p = subprocess.Popen([t.e2d_binary(), "--state-dir", state_dir,
                          "--listen", "unix:" + sock, "--shutdown-grace", "1"],
                         stdout=log, stderr=log)
    log.close()
    deadline = time.time() + 15
    while time.time() < deadline:
        if p.poll() is not None:
            raise AssertionError("e2d exited: " + open(log_path).read())
        if os.path.exists(sock):
            c = t.Client("unix:" + sock)
            try:
                c.call("ListWorkers", timeout=2)
                c.close()
                return p
            except grpc.RpcError:
                c.close()
        time.sleep(0.05)
    p.kill()
    raise AssertionError("e2d did not come up: " + open(log_path).read())


def stop(p):
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def state_dir_created_private():
    top = tempfile.mkdtemp(prefix="e2_perm_")
    try:
        os.chmod(top, 0o755)
        state = os.path.join(top, "new", "state")
        old = os.umask(0o022)
        try:
            p = run_e2d(state, os.path.join(top, "e2d.log"))
        finally:
            os.umask(old)
        stop(p)
        assert mode(state) == 0o750, oct(mode(state))
        for f in ("e2d.db", "e2d.lock"):
            assert mode(os.path.join(state, f)) == 0o600, (f, oct(mode(
                os.path.join(state, f))))
        for f in ("e2d.db-wal", "e2d.db-shm"):
            pth = os.path.join(state, f)
            if os.path.exists(pth):
                assert mode(pth) & 0o077 == 0, (f, oct(mode(pth)))
    finally:
        shutil.rmtree(top, ignore_errors=True)


def state_dir_wide_modes_tightened():
    top = tempfile.mkdtemp(prefix="e2_perm_")
    try:
        state = os.path.join(top, "state")
        os.mkdir(state)
        os.chmod(state, 0o755)
        for f in ("e2d.db", "e2d.lock"):
            open(os.path.join(state, f), "w").close()
            os.chmod(os.path.join(state, f), 0o644)
        log = os.path.join(top, "e2d.log")
        p = run_e2d(state, log)
        stop(p)
        assert mode(state) == 0o750, oct(mode(state))
        for f in ("e2d.db", "e2d.lock"):
            assert mode(os.path.join(state, f)) == 0o600, f
        text = open(log).read()
        assert "was open to other users (mode 755); now 750" in text, text
        assert "e2d.db was readable by others (mode 644); now 600" in text
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    t.run_cases([spec_string_with_nul_refused, spec_string_invalid_utf8_refused,
                 spec_duplicate_label_keys_refused, spec_over_limits_refused,
                 data_roots_refuse_outside_paths,
                 worker_refuses_link_outside_roots, no_data_roots_warns,
                 state_dir_created_private, state_dir_wide_modes_tightened])
