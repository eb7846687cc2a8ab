"""e2dtest -- helpers for e2d's end-to-end tests: start the real e2d binary
on a temporary state directory, talk to it over its real unix socket with
Debian's python3-grpcio, and play workers ("fake workers": real protocol
clients that register, heartbeat and report like e2worker's agent does).

Message classes are built at run time from the .proto files (protoc
--descriptor_set_out), so the tests need no generated stubs. Run with
/usr/bin/python3. Every wait has a deadline; a failed expectation raises
AssertionError with what was seen."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf import descriptor_pb2, message_factory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "proto")


def _load_messages():
    protos = sorted(
        os.path.join("e2/v1", f)
        for f in os.listdir(os.path.join(PROTO_DIR, "e2/v1"))
        if f.endswith(".proto"))
    out = subprocess.run(
        ["protoc", "-I" + PROTO_DIR, "--include_imports",
         "--descriptor_set_out=/dev/stdout"] + protos,
        check=True, stdout=subprocess.PIPE).stdout
    fds = descriptor_pb2.FileDescriptorSet.FromString(out)
    return message_factory.GetMessages(list(fds.file))


MSG = _load_messages()


def M(msg_name, **kw):
    """A new e2.v1 message: M("GetJobRequest", id="j-000001")."""
    return MSG["e2.v1." + msg_name](**kw)


# Job states (coordinator.proto).
PENDING, STARTING, RUNNING, RESTARTING = 1, 2, 3, 4
SUCCEEDED, FAILED, CANCELLING, CANCELLED = 5, 6, 7, 8
STATE_NAMES = {0: "UNSPECIFIED", 1: "PENDING", 2: "STARTING", 3: "RUNNING",
               4: "RESTARTING", 5: "SUCCEEDED", 6: "FAILED", 7: "CANCELLING",
               8: "CANCELLED"}
IDLE, BUSY, LOST = 1, 2, 3
OUT_SUCCEEDED, OUT_FAILED_USER, OUT_FAILED_INFRA, OUT_CANCELLED = 1, 2, 3, 4

# Methods: name -> (service, request type, response type, streaming).
METHODS = {
    "SubmitJob": ("Coordinator", "SubmitJobRequest", "SubmitJobResponse", False),
    "GetJob": ("Coordinator", "GetJobRequest", "GetJobResponse", False),
    "ListJobs": ("Coordinator", "ListJobsRequest", "ListJobsResponse", False),
    "CancelJob": ("Coordinator", "CancelJobRequest", "CancelJobResponse", False),
    "WatchJob": ("Coordinator", "WatchJobRequest", "JobEvent", True),
    "StreamLogs": ("Coordinator", "StreamLogsRequest", "LogChunk", True),
    "ListWorkers": ("Coordinator", "ListWorkersRequest", "ListWorkersResponse", False),
    "GetMetrics": ("Coordinator", "GetMetricsRequest", "GetMetricsResponse", False),
    "RegisterWorker": ("WorkerControl", "RegisterWorkerRequest", "RegisterWorkerResponse", False),
    "Heartbeat": ("WorkerControl", "HeartbeatRequest", "HeartbeatResponse", False),
    "ReportCheckpoint": ("WorkerControl", "ReportCheckpointRequest", "ReportCheckpointResponse", False),
    "RendezvousPut": ("WorkerControl", "RendezvousPutRequest", "RendezvousPutResponse", False),
    "RendezvousGet": ("WorkerControl", "RendezvousGetRequest", "RendezvousGetResponse", False),
    "ReportDone": ("WorkerControl", "ReportDoneRequest", "ReportDoneResponse", False),
}


def e2d_binary():
    path = os.environ.get("E2D_BIN")
    if not path or not os.access(path, os.X_OK):
        sys.exit("E2D_BIN must name the e2d binary (set by ctest)")
    return path


def small_spec(name="t", **over):
    """A valid JobSpec (as a dict for the message constructor): a tiny
    model; the shard path need not exist (e2d validates, workers read)."""
    spec = {
        "name": name,
        "model": {"config": {"hidden_size": 32, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 64,
                             "vocab_size": 256, "max_position_embeddings": 64}},
        "data": {"train_shards": ["/nonexistent/train_*.bin"]},
        "augment": {"train_length": 64},
        "train": {"steps": 10, "global_batch": 4},
        "eval": {"windows": [64]},
    }
    for k, v in over.items():
        spec[k] = v
    return M("JobSpec", **spec)


class _BearerToken(grpc.UnaryUnaryClientInterceptor,
                   grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token):
        self.md = ("authorization", "Bearer " + token)

    def _details(self, d):
        md = list(d.metadata or []) + [self.md]
        return d._replace(metadata=md) if hasattr(d, "_replace") else \
            _CallDetails(d.method, d.timeout, md, d.credentials)

    def intercept_unary_unary(self, cont, details, request):
        return cont(self._details(details), request)

    def intercept_unary_stream(self, cont, details, request):
        return cont(self._details(details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials):
        self.method, self.timeout = method, timeout
        self.metadata, self.credentials = metadata, credentials


class Client:
    """A gRPC client of e2d on its unix socket (with a bearer token when
    given one)."""

    def __init__(self, address, token=None, options=None):
        self.channel = grpc.insecure_channel(address, options=options)
        if token:
            self.channel = grpc.intercept_channel(
                self.channel, _BearerToken(token))
        self.stubs = {}
        for name, (svc, req, resp, stream) in METHODS.items():
            path = "/e2.v1.%s/%s" % (svc, name)
            make = self.channel.unary_stream if stream else self.channel.unary_unary
            self.stubs[name] = make(
                path, request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=MSG["e2.v1." + resp].FromString)

    def call(self, method, timeout=10, **kw):
        req = M(METHODS[method][1], **kw)
        return self.stubs[method](req, timeout=timeout)

    def raw(self, method, body, timeout=10):
        """Sends raw bytes as the request body (for malformed requests)."""
        svc = METHODS[method][0]
        f = self.channel.unary_unary("/e2.v1.%s/%s" % (svc, method),
                                     request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
        return f(body, timeout=timeout)

    def job(self, job_id):
        return self.call("GetJob", id=job_id).job

    def wait_state(self, job_id, states, timeout=20):
        if isinstance(states, int):
            states = (states,)
        deadline = time.time() + timeout
        j = None
        while time.time() < deadline:
            j = self.job(job_id)
            if j.state in states:
                return j
            time.sleep(0.05)
        raise AssertionError("job %s: wanted %s, still %s (%s)" % (
            job_id, [STATE_NAMES[s] for s in states],
            STATE_NAMES.get(j.state if j else 0), j.reason if j else ""))

    def close(self):
        self.channel.close()


class Daemon:
    """The real e2d on a temporary state dir."""

    def __init__(self, *args, state_dir=None, heartbeat_timeout=2.0,
                 listen=None, env=None, token=None):
        self.env = env
        self.token = token
        self.own_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="e2d_test_")
        self.args = list(args) + (["--listen", listen] if listen else [])
        self.heartbeat_timeout = heartbeat_timeout
        self.proc = None
        self.address = listen or "unix:" + os.path.join(self.state_dir,
                                                        "e2d.sock")
        self.log_path = os.path.join(self.state_dir, "e2d.log")

    def start(self):
        sock = os.path.join(self.state_dir, "e2d.sock")
        os.makedirs(self.state_dir, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [e2d_binary(), "--state-dir", self.state_dir,
             "--heartbeat-timeout", str(self.heartbeat_timeout)] + self.args,
            stdout=log, stderr=log,
            env=dict(os.environ, **self.env) if self.env else None)
        log.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("e2d exited with %d:\n%s" % (
                    self.proc.returncode, self.log()))
            if os.path.exists(sock) or not self.address.startswith("unix:"):
                c = Client(self.address, self.token)
                try:
                    c.call("ListWorkers", timeout=2)
                    return c
                except grpc.RpcError:
                    c.close()
            time.sleep(0.05)
        raise AssertionError("e2d did not come up:\n" + self.log())

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("e2d ignored SIGTERM:\n" + self.log())
        return self.proc.returncode

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)


class FakeWorker:
    """A worker driven by the test: registers, heartbeats on demand and
    reports like e2worker's agent."""

    def __init__(self, client, device="cpu", host="testhost"):
        self.c = client
        r = client.call("RegisterWorker", hostname=host, device=device,
                        pid=os.getpid(), version="test")
        self.id = r.worker_id
        self.secret = r.worker_secret
        self.interval = r.heartbeat_interval_ms / 1000.0
        self.assignment = None
        self.commands = []

    def beat(self, state=IDLE, progress=None, logs=()):
        kw = {"worker_id": self.id, "worker_secret": self.secret,
              "state": state, "log_lines": list(logs)}
        if progress:
            kw["progress"] = M("Progress", **progress)
        r = self.c.call("Heartbeat", **kw)
        for cmd in r.commands:
            self.commands.append(cmd)
            if cmd.WhichOneof("kind") == "assignment":
                self.assignment = cmd.assignment
        return list(r.commands)

    def wait_command(self, kind, timeout=10, state=IDLE, progress=None):
        """Heartbeats until a command of `kind` arrives; returns it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for cmd in self.beat(state, progress):
                if cmd.WhichOneof("kind") == kind:
                    return getattr(cmd, kind)
            time.sleep(min(self.interval, 0.1))
        raise AssertionError("worker %s: no %s command within %ss" % (
            self.id, kind, timeout))

    def progress(self, step, loss=1.0, tps=100.0, logs=()):
        a = self.assignment
        return self.beat(BUSY, {"job_id": a.job_id, "attempt": a.attempt,
                                "rank": a.rank, "step": step, "loss": loss,
                                "lr": 1e-4, "tokens_per_second": tps}, logs)

    def done(self, outcome=OUT_SUCCEEDED, exit_code=0, reason="", **kw):
        a = self.assignment
        return self.c.call("ReportDone", worker_id=self.id,
                           worker_secret=self.secret, job_id=a.job_id,
                           attempt=a.attempt, rank=a.rank, outcome=outcome,
                           exit_code=exit_code, reason=reason, **kw)


class keep_beating:
    """with keep_beating(w1, w2): a thread heartbeats the workers every
    0.1 s (BUSY while assigned, else IDLE; commands land in w.commands)
    until the block ends, so that they stay alive however long the block
    takes on a slow machine. Failed calls (e2d down) are retried."""

    def __init__(self, *workers):
        self.workers = workers
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        while not self.stop.is_set():
            for w in self.workers:
                try:
                    w.beat(BUSY if w.assignment else IDLE)
                except (grpc.RpcError, ValueError):
                    pass  # ValueError: the channel was closed meanwhile
            self.stop.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def with_daemon(*args, heartbeat_timeout=2.0, env=None):
    """Decorator: runs the case against a fresh e2d started with ARGS
    (and --shutdown-grace 1; ENV added to its environment), prints its log
    when the case fails, and requires e2d to exit 0."""
    def wrap(fn):
        def run():
            d = Daemon("--shutdown-grace", "1", *args,
                       heartbeat_timeout=heartbeat_timeout, env=env)
            c = d.start()
            try:
                fn(d, c)
            except BaseException:
                print(d.log())
                raise
            finally:
                c.close()
                rc = d.stop()
                log = d.log()
                d.cleanup()
            assert rc == 0, "e2d exited with %s:\n%s" % (rc, log)
        run.__name__ = fn.__name__
        return run
    return wrap


def expect_rpc_error(fn, code, *needles):
    """Runs fn, which must fail with grpc status `code` and a message
    containing every needle. Returns the message."""
    try:
        fn()
    except grpc.RpcError as e:
        msg = e.details() or ""
        assert e.code() == code, "wanted %s, got %s: %s" % (code, e.code(), msg)
        for n in needles:
            assert n in msg, "message %r lacks %r" % (msg, n)
        return msg
    raise AssertionError("call succeeded; wanted %s" % (code,))


def run_cases(cases):
    """Runs the named test functions (argv[1] picks one), each with a fresh
    daemon helper list; prints and exits non-zero on the first failure."""
    names = sys.argv[1:] or [f.__name__ for f in cases]
    byname = {f.__name__: f for f in cases}
    for n in names:
        t0 = time.time()
        byname[n]()
        print("ok %s (%.1f s)" % (n, time.time() - t0), flush=True)
