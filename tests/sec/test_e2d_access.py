"""sec_e2d_*: e2d's access control end to end: the real e2d binary with a
TLS listener (certificates made by gen_certs.sh with openssl, per test),
a token file with one token per role, and Debian's python3-grpcio as the
client. Run with /usr/bin/python3; E2D_BIN names e2d (set by ctest)."""

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
import e2dtest as t  # noqa: E402

CODES = grpc.StatusCode


class Env:
    """A temp dir with a fresh PKI and a token file; starts e2d on it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="e2_sec_")
        self.pki = os.path.join(self.dir, "pki")
        subprocess.run(["sh", os.path.join(HERE, "gen_certs.sh"), self.pki],
                       check=True)
        self.tokens = {name: secrets.token_hex(24) for name in
                       ("root", "alice", "bob", "vera", "worker-1")}
        roles = {"root": "admin", "alice": "submitter", "bob": "submitter",
                 "vera": "viewer", "worker-1": "worker"}
        self.token_file = os.path.join(self.dir, "tokens")
        with open(self.token_file, "w") as f:
            f.write("# test tokens\n")
            for name, tok in self.tokens.items():
                f.write("%s %s %s\n" % (tok, name, roles[name]))
        os.chmod(self.token_file, 0o600)
        self.proc = None
        self.log_path = os.path.join(self.dir, "e2d.log")

    def pem(self, name):
        return os.path.join(self.pki, name)

    def run_e2d(self, *args):
        """Starts e2d; returns the port it listens on (0 for unix:)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [t.e2d_binary(), "--state-dir", os.path.join(self.dir, "state"),
             "--heartbeat-timeout", "5", "--shutdown-grace", "0.5"]
            + list(args),
            stdout=log, stderr=log)
        log.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            m = re.search(r"listening on \S+(?: \(port (\d+)\))?", self.log())
            if m:
                return int(m.group(1) or 0)
            if self.proc.poll() is not None:
                raise AssertionError("e2d exited with %d:\n%s" % (
                    self.proc.returncode, self.log()))
            time.sleep(0.05)
        raise AssertionError("e2d did not come up:\n" + self.log())

    def tls_e2d(self, *extra):
        return self.run_e2d("--listen", "127.0.0.1:0",
                            "--tls-cert", self.pem("server.pem"),
                            "--tls-key", self.pem("server.key"),
                            "--token-file", self.token_file, *extra)

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def e2d_fails(self, *args):
        """Runs e2d expecting it to refuse to start; returns its stderr."""
        r = subprocess.run(
            [t.e2d_binary(), "--state-dir", os.path.join(self.dir, "state")]
            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=20, text=True)
        assert r.returncode != 0, "e2d started: %s" % r.stderr
        return r.stderr

    def close(self):
        """Stops e2d with SIGTERM; unless a failure is already on its way,
        checks that it exited cleanly (no sanitizer report)."""
        clean = True
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                clean = False
        log = self.log() if self.proc else ""
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.proc and sys.exc_info()[0] is None:
            assert clean and self.proc.returncode == 0 and \
                "Sanitizer" not in log, "e2d did not stop cleanly (%s):\n%s" % (
                    self.proc.returncode, log[-4000:])


class Client(t.Client):
    """e2dtest's client over TLS (or plaintext), with a bearer token."""

    def __init__(self, address, env=None, token=None, cert=False):
        if env is None:
            channel = grpc.insecure_channel(address)
        else:
            with open(env.pem("ca.pem"), "rb") as f:
                ca = f.read()
            key = chain = None
            if cert:
                with open(env.pem("client.key"), "rb") as f:
                    key = f.read()
                with open(env.pem("client.pem"), "rb") as f:
                    chain = f.read()
            channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(
                root_certificates=ca, private_key=key, certificate_chain=chain))
        self.md = [("authorization", "Bearer " + token)] if token else None
        t.Client.__init__(self, address)
        self.channel.close()
        self.channel = channel
        self.stubs = {}
        for name, (svc, req, resp, stream) in t.METHODS.items():
            make = channel.unary_stream if stream else channel.unary_unary
            self.stubs[name] = make(
                "/e2.v1.%s/%s" % (svc, name),
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=t.MSG["e2.v1." + resp].FromString)

    def call(self, method, timeout=10, **kw):
        req = t.M(t.METHODS[method][1], **kw)
        return self.stubs[method](req, timeout=timeout, metadata=self.md)


def submit(c, name):
    return c.call("SubmitJob", spec=t.small_spec(name)).job.id


def register(c):
    """Registers a worker; returns the keyword arguments that name it in
    later WorkerControl calls (its id and secret)."""
    r = c.call("RegisterWorker", hostname="h", device="cpu", pid=1,
               version="test")
    return {"worker_id": r.worker_id, "worker_secret": r.worker_secret}


def denied(fn, *needles):
    t.expect_rpc_error(fn, CODES.PERMISSION_DENIED, *needles)


# ---------------------------------------------------------------- cases

def plaintext_client_vs_tls_port_fails():
    env = Env()
    try:
        port = env.tls_e2d()
        addr = "127.0.0.1:%d" % port
        c = Client(addr, token=env.tokens["root"])
        t.expect_rpc_error(lambda: c.call("ListJobs", timeout=5),
                           CODES.UNAVAILABLE)
        ok = Client(addr, env, env.tokens["root"])
        assert len(ok.call("ListJobs").jobs) == 0
    finally:
        env.close()


def tcp_without_tls_needs_insecure():
    env = Env()
    try:
        err = env.e2d_fails("--listen", "127.0.0.1:0")
        assert "TCP without TLS" in err and "--insecure" in err, err
        err = env.e2d_fails("--listen", "127.0.0.1:0", "--tls-cert",
                            env.pem("server.pem"))
        assert "--tls-key" in err, err
        port = env.run_e2d("--listen", "127.0.0.1:0", "--insecure")
        assert "WARNING: --insecure" in env.log(), env.log()
        c = Client("127.0.0.1:%d" % port)
        c.call("ListJobs")
    finally:
        env.close()


def mutual_tls_needs_client_cert():
    env = Env()
    try:
        port = env.tls_e2d("--tls-client-ca", env.pem("ca.pem"))
        addr = "127.0.0.1:%d" % port
        tok = env.tokens["worker-1"]
        c = Client(addr, env, tok)
        t.expect_rpc_error(lambda: register(c), CODES.UNAVAILABLE)
        w = Client(addr, env, tok, cert=True)
        w.call("Heartbeat", state=t.IDLE, **register(w))
    finally:
        env.close()


def roles_allowed_and_refused():
    env = Env()
    try:
        port = env.tls_e2d()
        addr = "127.0.0.1:%d" % port
        tk = env.tokens
        admin, alice, bob = (Client(addr, env, tk[n])
                             for n in ("root", "alice", "bob"))
        viewer, worker = Client(addr, env, tk["vera"]), Client(addr, env, tk["worker-1"])

        # no token, unknown token
        t.expect_rpc_error(lambda: Client(addr, env).call("ListJobs"),
                           CODES.UNAUTHENTICATED, "no bearer token")
        t.expect_rpc_error(
            lambda: Client(addr, env, secrets.token_hex(24)).call("ListJobs"),
            CODES.UNAUTHENTICATED, "unknown bearer token")

        # submitter: submit, read, cancel its own; not another's
        a1 = submit(alice, "a1")
        a2 = submit(alice, "a2")
        b1 = submit(bob, "b1")
        assert alice.call("GetJob", id=b1).job.id == b1
        denied(lambda: bob.call("CancelJob", id=a1),
               "bob (role submitter) may cancel only its own jobs")
        assert alice.job(a1).state == t.PENDING
        alice.call("CancelJob", id=a1)
        alice.wait_state(a1, t.CANCELLED)
        denied(lambda: register(alice), "alice (role submitter) may not call "
               "/e2.v1.WorkerControl/RegisterWorker")

        # viewer: reads only
        assert viewer.call("GetJob", id=a2).job.id == a2
        assert len(viewer.call("ListJobs").jobs) == 3
        viewer.call("ListWorkers")
        denied(lambda: submit(viewer, "v"), "vera (role viewer) may not call "
               "/e2.v1.Coordinator/SubmitJob")
        denied(lambda: viewer.call("CancelJob", id=a2))
        denied(lambda: register(viewer))

        # worker: WorkerControl only
        denied(lambda: submit(worker, "w"), "worker-1 (role worker)")
        denied(lambda: worker.call("GetJob", id=a2))
        worker.call("Heartbeat", state=t.IDLE, **register(worker))

        # admin: everything, also another's cancel
        submit(admin, "r1")
        admin.call("CancelJob", id=b1)
        admin.wait_state(b1, t.CANCELLED)
        admin.call("Heartbeat", state=t.IDLE, **register(admin))
        assert len(admin.call("ListWorkers").workers) == 2

        # refusals are logged, tokens never
        log = env.log()
        assert "refused (PERMISSION_DENIED)" in log, log
        assert "refused (UNAUTHENTICATED)" in log, log
        for name, tok in tk.items():
            assert tok not in log, "token of %s in e2d's log" % name
            assert tok[:12] not in log, "part of %s's token in the log" % name
    finally:
        env.close()


def unix_socket_needs_token_with_token_file():
    env = Env()
    try:
        env.run_e2d("--token-file", env.token_file)
        sock = os.path.join(env.dir, "state", "e2d.sock")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660, oct(
            os.stat(sock).st_mode)
        addr = "unix:" + sock
        t.expect_rpc_error(lambda: Client(addr).call("ListJobs"),
                           CODES.UNAUTHENTICATED)
        c = Client(addr, token=env.tokens["vera"])
        c.call("ListJobs")
        denied(lambda: submit(c, "x"))
    finally:
        env.close()


def unix_socket_without_token_file_is_admin():
    env = Env()
    try:
        env.run_e2d()
        c = Client("unix:" + os.path.join(env.dir, "state", "e2d.sock"))
        j = submit(c, "anon")
        c.call("CancelJob", id=j)
        register(c)
        assert "every caller is admin" in env.log()
    finally:
        env.close()


def readable_token_file_refused():
    env = Env()
    try:
        os.chmod(env.token_file, 0o644)
        err = env.e2d_fails("--token-file", env.token_file)
        assert "chmod 600" in err and env.token_file in err, err
        os.chmod(env.token_file, 0o600)
        with open(env.token_file, "a") as f:
            f.write("%s eve superuser\n" % secrets.token_hex(24))
        err = env.e2d_fails("--token-file", env.token_file)
        assert env.token_file + ":7: role 'superuser'" in err, err
    finally:
        env.close()


def e2ctl_tls_and_token_file():
    env = Env()
    try:
        port = env.tls_e2d()
        home = os.path.join(env.dir, "home")
        os.makedirs(os.path.join(home, ".config", "e2"))
        user_tok = os.path.join(home, ".config", "e2", "token")
        with open(user_tok, "w") as f:
            f.write(env.tokens["vera"] + "\n")
        os.chmod(user_tok, 0o600)
        alice_tok = os.path.join(env.dir, "alice.token")
        with open(alice_tok, "w") as f:
            f.write(env.tokens["alice"] + " alice submitter\n")
        os.chmod(alice_tok, 0o600)
        spec = os.path.join(env.dir, "spec.json")
        with open(spec, "w") as f:
            json.dump({
                "name": "ctl",
                "model": {"config": {"hidden_size": 32,
                                     "num_hidden_layers": 1,
                                     "num_attention_heads": 2,
                                     "intermediate_size": 64,
                                     "vocab_size": 256,
                                     "max_position_embeddings": 64}},
                "data": {"train_shards": ["/nonexistent/train_*.bin"]},
                "augment": {"train_length": 64},
                "train": {"steps": 10, "global_batch": 4},
                "eval": {"windows": [64]}}, f)
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("E2_") and k != "XDG_CONFIG_HOME"}
        base.update(HOME=home, E2_SERVER="127.0.0.1:%d" % port)

        def ctl(*args, **env_over):
            e = dict(base, **env_over)
            return subprocess.run([os.environ["E2CTL_BIN"]] + list(args),
                                  env=e, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  timeout=30)

        ca = env.pem("ca.pem")
        # plaintext e2ctl against the TLS port: unreachable
        r = ctl("list")
        assert r.returncode == 4, (r.returncode, r.stderr)
        # TLS via --tls-ca and via E2_TLS_CA; ~/.config/e2/token (viewer)
        r = ctl("--tls-ca", ca, "list")
        assert r.returncode == 0, r.stderr
        r = ctl("submit", spec, E2_TLS_CA=ca)
        assert r.returncode == 3 and "vera (role viewer) may not call" in \
            r.stderr, (r.returncode, r.stderr)
        # E2_TOKEN_FILE (a line copied from e2d's file) beats the default
        r = ctl("submit", spec, E2_TLS_CA=ca, E2_TOKEN_FILE=alice_tok)
        assert r.returncode == 0, r.stderr
        # a token file others can read is refused before connecting
        os.chmod(alice_tok, 0o644)
        r = ctl("--token-file", alice_tok, "--tls-ca", ca, "list")
        assert r.returncode == 64 and "chmod 600" in r.stderr, r.stderr
        # no token file at all: UNAUTHENTICATED
        os.remove(user_tok)
        r = ctl("--tls-ca", ca, "list")
        assert r.returncode == 3 and "no bearer token" in r.stderr, r.stderr
    finally:
        env.close()


def worker_agent_over_mutual_tls_with_token():
    env = Env()
    agent = None
    try:
        port = env.tls_e2d("--tls-client-ca", env.pem("ca.pem"))
        tok = os.path.join(env.dir, "worker.token")
        with open(tok, "w") as f:
            f.write(env.tokens["worker-1"] + "\n")
        os.chmod(tok, 0o600)
        agent_log = open(os.path.join(env.dir, "agent.log"), "wb")
        agent = subprocess.Popen(
            [os.environ["E2WORKER_BIN"], "--coordinator", "127.0.0.1:%d" % port,
             "--tls-ca", env.pem("ca.pem"), "--tls-cert", env.pem("client.pem"),
             "--tls-key", env.pem("client.key")],
            env=dict(os.environ, E2_TOKEN_FILE=tok), stdout=agent_log,
            stderr=agent_log)
        agent_log.close()
        admin = Client("127.0.0.1:%d" % port, env, env.tokens["root"],
                       cert=True)
        deadline = time.time() + 20
        while not admin.call("ListWorkers").workers:
            assert time.time() < deadline, "agent never registered:\n" + \
                open(os.path.join(env.dir, "agent.log")).read()
            assert agent.poll() is None, "agent exited:\n" + \
                open(os.path.join(env.dir, "agent.log")).read()
            time.sleep(0.1)
        assert env.tokens["worker-1"] not in env.log()
    finally:
        if agent and agent.poll() is None:
            agent.terminate()
            agent.wait(20)
        env.close()


def local_workers_get_a_worker_token():
    env = Env()
    try:
        env.run_e2d("--token-file", env.token_file, "--local-workers", "1",
                    "--worker-bin", os.environ["E2WORKER_BIN"])
        state = os.path.join(env.dir, "state")
        admin = Client("unix:" + os.path.join(state, "e2d.sock"),
                       token=env.tokens["root"])
        deadline = time.time() + 20
        while not admin.call("ListWorkers").workers:
            assert time.time() < deadline, "local worker never registered:\n" \
                + env.log()
            time.sleep(0.1)
        tok_path = os.path.join(state, "local-worker.token")
        assert stat.S_IMODE(os.stat(tok_path).st_mode) == 0o600
        with open(tok_path) as f:
            tok = f.read().strip()
        assert len(tok) == 64 and tok not in env.log()
        # the worker token opens WorkerControl only
        w = Client("unix:" + os.path.join(state, "e2d.sock"), token=tok)
        denied(lambda: w.call("ListJobs"), "e2d-local-workers (role worker)")
    finally:
        env.close()


def python_example_with_tls_and_token():
    env = Env()
    try:
        port = env.tls_e2d()
        tok = os.path.join(env.dir, "alice.token")
        with open(tok, "w") as f:
            f.write(env.tokens["alice"] + "\n")
        os.chmod(tok, 0o600)
        spec = os.path.join(env.dir, "spec.json")
        with open(spec, "w") as f:
            f.write(json_format.MessageToJson(t.small_spec("py")))
        example = os.path.join(os.path.dirname(os.path.dirname(HERE)),
                               "examples", "dashboard_submit.py")
        proc = subprocess.Popen(
            ["/usr/bin/python3", example, spec, "--server",
             "127.0.0.1:%d" % port, "--tls-ca", env.pem("ca.pem"),
             "--token-file", tok],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        admin = Client("127.0.0.1:%d" % port, env, env.tokens["root"])
        deadline = time.time() + 30
        while not admin.call("ListJobs").jobs:
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the example submitted nothing"
            time.sleep(0.1)
        job = admin.call("ListJobs").jobs[0].id
        admin.call("CancelJob", id=job)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and "CANCELLED" in out, (out, err)
        # no token: the example cannot submit (exit 3, e2d refused)
        r = subprocess.run(
            ["/usr/bin/python3", example, spec, "--server",
             "127.0.0.1:%d" % port, "--tls-ca", env.pem("ca.pem")],
            env=dict(os.environ, HOME=env.dir, E2_TOKEN_FILE=""),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=30)
        assert r.returncode == 3 and "no bearer token" in r.stderr, r.stderr
    finally:
        env.close()


def http_listener_checks_tokens():
    import urllib.error
    import urllib.request
    env = Env()
    try:
        env.run_e2d("--token-file", env.token_file, "--http-listen",
                    "127.0.0.1:0")
        m = re.search(r"http on \S+ \(port (\d+)\)", env.log())
        assert m, env.log()
        base = "http://127.0.0.1:%s" % m.group(1)

        def get(path, token=None):
            req = urllib.request.Request(base + path)
            if token:
                req.add_header("Authorization", "Bearer " + token)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert get("/healthz") == 200
        assert get("/api/v1/jobs") == 401
        assert get("/metrics") == 401
        assert get("/api/v1/jobs", secrets.token_hex(24)) == 401
        assert get("/api/v1/jobs", env.tokens["worker-1"]) == 403
        assert get("/api/v1/jobs", env.tokens["vera"]) == 200
        assert get("/metrics", env.tokens["vera"]) == 200
        for tok in env.tokens.values():
            assert tok not in env.log()
    finally:
        env.close()


if __name__ == "__main__":
    t.run_cases([plaintext_client_vs_tls_port_fails,
                 tcp_without_tls_needs_insecure,
                 mutual_tls_needs_client_cert,
                 roles_allowed_and_refused,
                 unix_socket_needs_token_with_token_file,
                 unix_socket_without_token_file_is_admin,
                 readable_token_file_refused,
                 e2ctl_tls_and_token_file,
                 http_listener_checks_tokens,
                 python_example_with_tls_and_token,
                 worker_agent_over_mutual_tls_with_token,
                 local_workers_get_a_worker_token])
