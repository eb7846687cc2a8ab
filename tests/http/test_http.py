"""e2d's HTTP listener and systemd notifications, against the real e2d.

Each case starts e2d on a temporary state dir with --http-listen on a free
loopback port (port 0; the bound port is read from e2d's log) and talks to
it with raw sockets and http.client. Jobs are submitted with the real e2ctl
over gRPC; jobs with metrics are trained by one local e2worker.

usage: test_http.py CASE   (E2D_BIN, E2CTL_BIN, E2W_BIN in the environment;
ARTIFACT_DIR for the status page's screenshot)
"""
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

E2D = os.environ["E2D_BIN"]
E2CTL = os.environ.get("E2CTL_BIN", "")
E2W = os.environ.get("E2W_BIN", "")
ARTIFACTS = os.environ.get("ARTIFACT_DIR", "")


# e2d's HTTP limits (daemon/src/http.c).
PER_IP_LIMIT = 32       # connections from one address
HEAD_DEADLINE = 10      # s from connecting (or the last reply) to a whole head


def fail(msg):
    raise AssertionError(msg)


class Daemon:
    """An e2d on a temp state dir; stop() sends SIGTERM and waits."""

    def __init__(self, tmp, *flags, env=None):
        self.tmp = tmp
        self.state = os.path.join(tmp, "state")
        os.makedirs(self.state, exist_ok=True)
        self.log_path = os.path.join(tmp, "e2d.log")
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.pop("WATCHDOG_USEC", None)
        e.update(env or {})
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [E2D, "--state-dir", self.state, "--http-listen", "127.0.0.1:0",
             *flags], stdout=self.log, stderr=subprocess.STDOUT, env=e)
        self.port = None
        deadline = time.time() + 15
        while time.time() < deadline and self.port is None:
            m = re.search(r"http on \S+ \(port (\d+)\)", self.read_log())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                fail("e2d exited %d: %s" % (self.proc.returncode,
                                            self.read_log()))
            else:
                time.sleep(0.05)
        if self.port is None:
            fail("e2d did not log its http port: " + self.read_log())
        self.sock = "unix:" + os.path.join(self.state, "e2d.sock")

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # 0 after SIGTERM; a sanitizer build's report makes it non-zero.
        if self.proc.returncode != 0:
            fail("e2d exited %d: %s" % (self.proc.returncode,
                                        self.read_log()[-3000:]))
        return self.proc.returncode

    def get(self, path, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, r.getheader("Content-Type") or "", body

    def get_json(self, path, want=200):
        status, ctype, body = self.get(path)
        if status != want:
            fail("GET %s: %d, want %d: %s" % (path, status, want, body[:300]))
        if not ctype.startswith("application/json"):
            fail("GET %s: Content-Type %s" % (path, ctype))
        return json.loads(body)

    def raw(self, data, read_all=True, half_close=False):
        """Sends bytes on a new connection (then shuts down its sending
        side when half_close); returns what came back until the server
        closed it (or 5 s passed)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not read_all:
                    break
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        return out

    def ctl(self, *args, want=0):
        r = subprocess.run([E2CTL, "--server", self.sock, *args],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != want:
            fail("e2ctl %s: exit %d: %s %s" % (" ".join(args), r.returncode,
                                              r.stdout, r.stderr))
        return r.stdout


def status_of(resp):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    if not m:
        fail("not an HTTP reply: %r" % resp[:200])
    return int(m.group(1))


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')


def parse_metrics(text):
    """Prometheus text format: returns {(name, labels): value}; checks
    that every sample's family was declared by HELP and TYPE first."""
    declared, out = set(), {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4:
                fail("bad comment line: " + line)
            if line.startswith("# TYPE "):
                if parts[3] not in ("gauge", "counter"):
                    fail("bad type: " + line)
                declared.add(parts[2])
            continue
        m = SAMPLE.match(line)
        if not m:
            fail("not a sample line: %r" % line)
        if m.group(1) not in declared:
            fail("sample before its TYPE: " + line)
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(3) or "")))
        v = m.group(4)
        out[(m.group(1), labels)] = float(v) if v not in ("NaN",) else v
    return out


def tiny_spec(path, steps):
    spec = {
        "name": "tiny-http",
        "model": {"config": {"hidden_size": 32, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "num_key_value_heads": 2,
                             "intermediate_size": 48, "vocab_size": 257,
                             "max_position_embeddings": 32}},
        "data": {"train_shards": ["data_train_*.bin"],
                 "eval_shards": ["data_val_*.bin"]},
        "augment": {"train_length": 16, "g_max": 4, "n_sink": 2},
        "train": {"steps": steps, "global_batch": 4, "micro_batch": 2,
                  "lr": 0.003},
        "checkpoint": {"every": 2, "keep_last": 3},
        "eval": {"windows": [32], "max_tokens": 200},
    }
    with open(path, "w") as f:
        json.dump(spec, f)


def prep_data(tmp):
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        for i in range(200):
            f.write("The quick brown fox number %d jumps over the lazy dog. "
                    "A journey of a thousand miles begins with one step.\n" % i)
    subprocess.run([E2W, "prep", "--out", "data", "--val-fraction", "0.1",
                    text], cwd=tmp, check=True, capture_output=True)


def running_job(tmp, d, min_step=3):
    """Submits a long tiny job and waits until it reported min_step steps,
    e2d holds at least 3 metric points (a heartbeat carries the newest step
    only, so points can be fewer than steps) and a checkpoint is
    committed. Returns its id."""
    prep_data(tmp)
    tiny_spec(os.path.join(tmp, "long.json"), 100000)
    out = d.ctl("submit", os.path.join(tmp, "long.json"), "--json")
    job = json.loads(out)["job"]["id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        j = d.get_json("/api/v1/jobs/" + job)["job"]
        if j.get("step", 0) >= min_step and j.get("checkpoints") and \
           len(d.get_json("/api/v1/jobs/%s/metrics" % job)
               .get("points", [])) >= 3:
            return job
        if j["state"] in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
            fail("job ended: %s" % j)
        time.sleep(0.2)
    fail("job did not reach step %d with a checkpoint: %s" % (min_step, j))


# ---- cases ----

def case_healthz_and_metrics_format(tmp):
    d = Daemon(tmp)
    try:
        status, ctype, body = d.get("/healthz")
        if status != 200 or body != b"ok\n":
            fail("healthz: %d %r" % (status, body))
        status, ctype, body = d.get("/metrics")
        if status != 200 or not ctype.startswith("text/plain; version=0.0.4"):
            fail("metrics: %d %s" % (status, ctype))
        m = parse_metrics(body.decode())
        for st in ("PENDING", "STARTING", "RUNNING", "RESTARTING", "SUCCEEDED",
                   "FAILED", "CANCELLING", "CANCELLED"):
            if m.get(("e2_jobs", (("state", st),))) != 0:
                fail("e2_jobs{state=%s} not 0 on an empty e2d" % st)
        for st in ("IDLE", "BUSY", "LOST"):
            if m.get(("e2_workers", (("state", st),))) != 0:
                fail("e2_workers{state=%s} missing" % st)
        if m.get(("e2_up", ())) != 1:
            fail("e2_up is not 1")
        status, _, body = d.get("/metrics", "HEAD")
        if status != 200 or body:
            fail("HEAD /metrics: %d with %d body bytes" % (status, len(body)))
    finally:
        d.stop()


def case_json_api_mirrors_grpc(tmp):
    d = Daemon(tmp)
    try:
        tiny_spec(os.path.join(tmp, "job.json"), 4)
        grpc = json.loads(d.ctl("submit", os.path.join(tmp, "job.json"),
                                "--set", "labels.team=nlp", "--json"))["job"]
        job = grpc["id"]
        via_ctl = json.loads(d.ctl("status", job, "--json"))["job"]
        via_http = d.get_json("/api/v1/jobs/" + job)["job"]
        for k in ("id", "spec", "state", "created_unix_ms", "job_dir",
                  "events", "total_steps"):
            if via_http.get(k) != via_ctl.get(k):
                fail("GetJob %s: http %r != grpc %r" % (k, via_http.get(k),
                                                       via_ctl.get(k)))
        if via_http["state"] != "JOB_STATE_PENDING":
            fail("state without workers: " + via_http["state"])
        jobs = d.get_json("/api/v1/jobs")["jobs"]
        if [j["id"] for j in jobs] != [job]:
            fail("ListJobs: %r" % jobs)
        if d.get_json("/api/v1/jobs?state=RUNNING").get("jobs"):
            fail("state=RUNNING lists the pending job")
        if len(d.get_json("/api/v1/jobs?state=pending&label=team%3Dnlp")
               .get("jobs", [])) != 1:
            fail("state=pending&label=team=nlp does not list the job")
        if d.get_json("/api/v1/jobs?label=team=cv").get("jobs"):
            fail("label=team=cv lists the job")
        e = d.get_json("/api/v1/jobs?state=BOGUS", 400)["error"]
        if e["code"] != "INVALID_ARGUMENT" or "state" not in e["message"]:
            fail("bad state: %r" % e)
        e = d.get_json("/api/v1/jobs?page_size=5000", 400)["error"]
        if "page_size" not in e["message"]:
            fail("page_size over the limit: %r" % e)
        e = d.get_json("/api/v1/jobs?colour=red", 400)["error"]
        if "colour" not in e["message"]:
            fail("unknown parameter: %r" % e)
        e = d.get_json("/api/v1/jobs/j-999999", 404)["error"]
        if e["code"] != "NOT_FOUND" or "j-999999" not in e["message"]:
            fail("unknown job: %r" % e)
        mx = d.get_json("/api/v1/jobs/%s/metrics" % job)
        if mx.get("points"):
            fail("metrics of a job that never ran: %r" % mx)
        d.get_json("/api/v1/jobs/%s/metrics?since_step=x" % job, 400)
        d.get_json("/api/v1/nothing", 404)
        m = parse_metrics(d.get("/metrics")[2].decode())
        if m.get(("e2_jobs", (("state", "PENDING"),))) != 1:
            fail("e2_jobs{state=PENDING} is not 1 after a submit")
    finally:
        d.stop()


def case_bad_requests_get_4xx_and_e2d_keeps_serving(tmp):
    d = Daemon(tmp)
    try:
        # A request line libmicrohttpd cannot split (no target) is
        # closed without a reply (None), or answered 400.
        checks = [
            (b"garbage\r\n\r\n", (400, None)),
            (b"GET /healthz\r\n\r\n", 400),
            (b"GET /healthz HTTP/9.9\r\n\r\n", 505),
            (b"GET healthz HTTP/1.1\r\n\r\n", 400),
            (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", 400),
            # A NUL byte ends the target there: /heal is no page.
            (b"GET /heal\x00thz HTTP/1.1\r\n\r\n", (400, 404)),
            (b"GET /api/v1/jobs/%zz HTTP/1.1\r\n\r\n", 400),
            (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
             431),
            (b"POST /api/v1/jobs HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
             413),
            (b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
             413),
            (b"DELETE /api/v1/jobs/j-000001 HTTP/1.1\r\n\r\n", 405),
            (b"GET /nothing-here HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
            (b"GET /../../etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n",
             404),
            (b"GET /.hidden.html HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
        ]
        for req, want in checks:
            want = want if isinstance(want, tuple) else (want,)
            resp = d.raw(req, read_all=False)
            got = status_of(resp) if resp or None not in want else None
            if got not in want:
                fail("%r: %s, want %s: %r" % (req[:60], got, want, resp[:300]))
            if got and not resp.split(b"\r\n\r\n", 1)[1].strip():
                fail("%r: no message in the body" % req[:60])
        # Random bytes: any 4xx (or 505), or closed without a reply; never
        # a crash.
        import random
        rnd = random.Random(7)
        for _ in range(30):
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
            resp = d.raw(junk + b"\r\n\r\n", read_all=False)
            if resp and not (400 <= status_of(resp) < 500 or
                             status_of(resp) == 505):
                fail("junk %r: %r" % (junk[:40], resp[:100]))
        # Two pipelined requests on one keep-alive connection, both answered.
        resp = d.raw(b"GET /healthz HTTP/1.1\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        if resp.count(b"HTTP/1.1 200 OK") != 2:
            fail("pipelined: %r" % resp)
        # A client that shuts down its side after the request still gets
        # the reply; HTTP/1.0 closes after one reply.
        resp = d.raw(b"GET /healthz HTTP/1.1\r\n\r\n", half_close=True)
        if not resp.startswith(b"HTTP/1.1 200 OK") or b"ok\n" not in resp:
            fail("half-closed client: %r" % resp)
        resp = d.raw(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        if status_of(resp) != 200 or b"Connection: close" not in resp:
            fail("HTTP/1.0: %r" % resp)
        # A flood of idle connections from one address (127.0.0.3, which
        # holds no connection from the checks above): the ones past the
        # per-address limit are closed at once, and e2d still serves once
        # they are gone. Closes are counted as they come until 48 are in
        # (a loaded e2d may take seconds to accept all 80), then 0.3 s
        # more for any extra one.
        socks = [socket.create_connection(("127.0.0.1", d.port),
                                          source_address=("127.0.0.3", 0))
                 for _ in range(80)]
        refused, waiting, want = 0, list(socks), 80 - PER_IP_LIMIT
        deadline = time.time() + 10
        while time.time() < deadline:
            ready = select.select(waiting, [], [],
                                  0.3 if refused >= want else 0.1)[0]
            for s in ready:
                waiting.remove(s)
                try:
                    got = s.recv(100)
                except ConnectionResetError:
                    got = b""
                if not got:
                    refused += 1
            if not ready and refused >= want:
                break
        for s in socks:
            s.close()
        if refused != want:
            fail("%d of 80 connections refused, want %d" % (refused, want))
        time.sleep(0.2)
        if d.get("/healthz")[0] != 200 or d.proc.poll() is not None:
            fail("e2d stopped serving")
    finally:
        d.stop()


def case_live_job_gauges_and_metrics_api(tmp):
    d = Daemon(tmp, "--local-workers", "1", "--worker-bin", E2W)
    try:
        job = running_job(tmp, d)
        m = parse_metrics(d.get("/metrics")[2].decode())
        lab = (("job", job),)
        for name in ("e2_job_step", "e2_job_loss", "e2_job_tokens_per_second",
                     "e2_job_restarts", "e2_job_checkpoint_age_seconds",
                     "e2_job_total_steps", "e2_job_attempt"):
            if (name, lab) not in m:
                fail("%s{job=%s} missing" % (name, job))
        if m[("e2_job_step", lab)] < 3 or m[("e2_job_total_steps", lab)] != 100000:
            fail("step gauges: %r" % m)
        if not 0 < m[("e2_job_loss", lab)] < 20:
            fail("loss gauge %r" % m[("e2_job_loss", lab)])
        if m[("e2_job_tokens_per_second", lab)] <= 0:
            fail("tokens/s gauge not positive")
        if not 0 <= m[("e2_job_checkpoint_age_seconds", lab)] < 60:
            fail("checkpoint age %r" % m[("e2_job_checkpoint_age_seconds", lab)])
        if m[("e2_job_restarts", lab)] != 0:
            fail("restarts gauge")
        if m.get(("e2_jobs", (("state", "RUNNING"),))) != 1:
            fail("e2_jobs{state=RUNNING} is not 1")
        if m.get(("e2_workers", (("state", "BUSY"),))) != 1:
            fail("e2_workers{state=BUSY} is not 1")
        pts = d.get_json("/api/v1/jobs/%s/metrics" % job)["points"]
        steps = [p["step"] for p in pts]
        if len(pts) < 3 or steps != sorted(steps) or \
           any(not p["loss"] > 0 or not p["tokens_per_second"] > 0 for p in pts):
            fail("metric points: %r" % pts[:5])
        later = d.get_json("/api/v1/jobs/%s/metrics?since_step=%d"
                           % (job, steps[1]))["points"]
        if not later or min(p["step"] for p in later) <= steps[1]:
            fail("since_step: %r" % later[:3])
        d.ctl("cancel", job, "--grace", "2")
    finally:
        d.stop()


def case_status_page_in_chromium(tmp):
    chromium = shutil.which("chromium")
    if not chromium:
        fail("chromium not found: apt-get install chromium "
             "(deploy/install-deps.sh)")
    d = Daemon(tmp, "--local-workers", "1", "--worker-bin", E2W)
    try:
        job = running_job(tmp, d, min_step=6)
        status, ctype, page = d.get("/")
        if status != 200 or not ctype.startswith("text/html"):
            fail("/: %d %s" % (status, ctype))
        for f in ("app.js", "style.css"):
            if d.get("/" + f)[0] != 200:
                fail("/%s not served" % f)
        url = "http://127.0.0.1:%d/#%s" % (d.port, job)
        common = [chromium, "--headless", "--disable-gpu", "--no-sandbox",
                  "--no-first-run", "--disable-dev-shm-usage",
                  "--user-data-dir=" + os.path.join(tmp, "chrome"),
                  "--virtual-time-budget=8000", "--window-size=1280,1000"]
        r = subprocess.run(common + ["--dump-dom", url], capture_output=True,
                           text=True, timeout=90)
        dom = r.stdout
        if r.returncode != 0 or "</html>" not in dom:
            fail("chromium --dump-dom: exit %d: %s" % (r.returncode,
                                                       r.stderr[-2000:]))
        if '<tr data-job="%s"' % job not in dom:
            fail("jobs table without %s" % job)
        loss = re.search(r'id="chart-loss".*?</svg>', dom, re.S)
        npts = len(re.findall(r'class="point"', loss.group(0))) if loss else 0
        if npts < 3:
            fail("loss chart has %d points" % npts)
        tps = re.search(r'id="chart-tps".*?</svg>', dom, re.S)
        if not tps or len(re.findall(r'class="point"', tps.group(0))) < 3:
            fail("tokens/s chart without points")
        if "none committed yet" in dom or "/checkpoints/step_" not in dom:
            fail("checkpoints table empty")
        if ARTIFACTS:
            os.makedirs(ARTIFACTS, exist_ok=True)
            shot = os.path.join(ARTIFACTS, "status_page.png")
            if os.path.exists(shot):
                os.remove(shot)
            r = subprocess.run(common + ["--screenshot=" + shot, url],
                               capture_output=True, text=True, timeout=90)
            if r.returncode != 0 or not os.path.exists(shot) or \
               os.path.getsize(shot) < 10000:
                fail("screenshot: exit %d: %s" % (r.returncode,
                                                  r.stderr[-2000:]))
        d.ctl("cancel", job, "--grace", "2")
    finally:
        d.stop()


def case_tokens_guard_api_and_metrics(tmp):
    tokens = os.path.join(tmp, "tokens")
    with open(tokens, "w") as f:
        f.write("viewer-token-0123456789 ana viewer\n"
                "worker-token-0123456789 node1 worker\n")
    os.chmod(tokens, 0o600)

    def get(d, path, token=None):
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("GET", path, headers={"Authorization": "Bearer " + token}
                  if token else {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, r.getheader("WWW-Authenticate"), body

    d = Daemon(tmp, "--token-file", tokens)
    try:
        for path in ("/healthz", "/", "/app.js"):
            if get(d, path)[0] != 200:
                fail("%s needs no token" % path)
        for path in ("/api/v1/jobs", "/api/v1/jobs/j-000001",
                     "/api/v1/jobs/j-000001/metrics", "/metrics"):
            status, challenge, body = get(d, path)
            if status != 401 or not challenge or \
               not challenge.startswith("Bearer"):
                fail("%s without a token: %d %r" % (path, status, challenge))
            if get(d, path, "wrong-token-0123456789")[0] != 401:
                fail("%s with an unknown token is not 401" % path)
            if get(d, path, "worker-token-0123456789")[0] != 403:
                fail("%s with a worker token is not 403" % path)
        if get(d, "/api/v1/jobs", "viewer-token-0123456789")[0] != 200 or \
           get(d, "/metrics", "viewer-token-0123456789")[0] != 200:
            fail("a viewer token is refused")
        if get(d, "/api/v1/jobs/j-000001", "viewer-token-0123456789")[0] != 404:
            fail("viewer: an unknown job is not 404")
    finally:
        d.stop()
    d = Daemon(tmp, "--token-file", tokens, "--http-metrics-public", "yes")
    try:
        if get(d, "/metrics")[0] != 200:
            fail("--http-metrics-public yes: /metrics needs a token")
        if get(d, "/api/v1/jobs")[0] != 401:
            fail("--http-metrics-public yes opened the API")
    finally:
        d.stop()


def notify_socket(tmp):
    path = os.path.join(tmp, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    return s, path


def case_sd_notify_ready_watchdog_stopping(tmp):
    s, path = notify_socket(tmp)
    d = Daemon(tmp, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    try:
        msgs = []
        first = s.recv(4096).decode()
        # READY=1 comes once both listeners are up and the state is loaded.
        if "READY=1" not in first.split("\n"):
            fail("first notification: %r" % first)
        if not os.path.exists(os.path.join(d.state, "e2d.sock")):
            fail("READY=1 before the gRPC socket exists")
        if "MAINPID=%d" % d.proc.pid not in first:
            fail("no MAINPID: %r" % first)
        t0 = time.time()
        while time.time() - t0 < 2.0:
            msgs.append(s.recv(4096).decode())
        dogs = [m for m in msgs if m == "WATCHDOG=1"]
        # Every half of 0.4 s: about 10 in 2 s; at least 5 leaves a second
        # of stalls to a slow (sanitizer, loaded) build.
        if len(dogs) < 5:
            fail("%d WATCHDOG=1 in 2 s with WATCHDOG_USEC=400000: %r"
                 % (len(dogs), msgs))
        d.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline:
            m = s.recv(4096).decode()
            if "STOPPING=1" in m.split("\n"):
                break
        else:
            fail("no STOPPING=1 at SIGTERM")
    finally:
        d.stop()


def case_sd_notify_without_watchdog_sends_only_ready(tmp):
    s, path = notify_socket(tmp)
    d = Daemon(tmp, env={"NOTIFY_SOCKET": path})
    try:
        if "READY=1" not in s.recv(4096).decode().split("\n"):
            fail("no READY=1")
        s.settimeout(0.6)
        try:
            fail("unexpected notification: %r" % s.recv(4096))
        except socket.timeout:
            pass
    finally:
        d.stop()


def case_bad_settings_are_refused(tmp):
    for flags, words in (
            (["--http-listen", "localhost"], "http-listen must be host:port"),
            (["--http-listen", "example.org:80"], "not an IP address"),
            (["--http-metrics-public", "maybe"], "yes or no"),
            (["--http-listen", "0.0.0.0:0"], "plaintext")):
        args = [E2D, "--state-dir", os.path.join(tmp, "s")] + flags
        if "--http-listen" not in flags:
            args += ["--http-listen", "127.0.0.1:0"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        if r.returncode == 0 or words not in r.stderr:
            fail("%s: exit %d, stderr %r" % (flags, r.returncode, r.stderr))
    # A port taken by another listener: e2d says so and exits.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    r = subprocess.run([E2D, "--state-dir", os.path.join(tmp, "s2"),
                        "--http-listen", "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=20)
    busy.close()
    if r.returncode == 0 or "http-listen 127.0.0.1:%d" % port not in r.stderr:
        fail("busy port: exit %d, stderr %r" % (r.returncode, r.stderr))
    # Any address with --insecure (a fenced network).
    d = Daemon(os.path.join(tmp, "open"), "--http-listen", "0.0.0.0:0",
               "--insecure")
    try:
        if d.get("/healthz")[0] != 200:
            fail("0.0.0.0 with --insecure does not serve")
    finally:
        d.stop()


def slow_conn(port, src):
    """A connection from address src that starts a request head and never
    ends it; None when it could not connect."""
    s = socket.socket()
    try:
        s.bind((src, 0))
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        s.setblocking(False)
        return s
    except OSError:
        s.close()
        return None


def closed_by_peer(s):
    """True when the server closed s (end of stream or reset)."""
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def case_slowloris_leaves_healthz_answering(tmp):
    # 70 connections from another address (127.0.0.2) trickle their
    # request heads a byte every 2 s, and reconnect when e2d drops them,
    # for 2.5 head deadlines. /healthz from 127.0.0.1 must keep answering
    # 200 within 5 s the whole time.
    d = Daemon(tmp)
    try:
        conns = [slow_conn(d.port, "127.0.0.2") for _ in range(70)]
        if sum(c is not None for c in conns) < 60:
            fail("could not open the slow connections")
        end = time.time() + 2.5 * HEAD_DEADLINE
        next_tick, answers, worst, reconnects = time.time() + 2, 0, 0.0, 0
        while time.time() < end:
            if time.time() >= next_tick:
                next_tick += 2
                for i, c in enumerate(conns):
                    if c is not None and closed_by_peer(c):
                        c.close()
                        c = None
                    if c is None:
                        conns[i] = slow_conn(d.port, "127.0.0.2")
                        reconnects += 1
                        continue
                    try:
                        c.send(b"a")
                    except OSError:
                        c.close()
                        conns[i] = None
            t0 = time.time()
            try:
                status = d.get("/healthz")[0]
            except (OSError, http.client.HTTPException) as e:
                fail("/healthz failed after %d answers under slowloris: %r"
                     % (answers, e))
            took = time.time() - t0
            if status != 200 or took > 5:
                fail("/healthz: %d after %.1f s under slowloris" % (status,
                                                                   took))
            answers += 1
            worst = max(worst, took)
            time.sleep(0.5)
        for c in conns:
            if c is not None:
                c.close()
        print("healthz: %d answers, slowest %.3f s; %d reconnects"
              % (answers, worst, reconnects))
    finally:
        d.stop()


def case_trickled_request_head_is_cut_at_deadline(tmp):
    # A byte a second keeps an idle timer from ever firing; the absolute
    # head deadline closes the connection anyway.
    d = Daemon(tmp)
    try:
        c = slow_conn(d.port, "127.0.0.1")
        t0 = time.time()
        while not closed_by_peer(c):
            if time.time() - t0 > HEAD_DEADLINE + 10:
                fail("a trickled request head still open after %.0f s "
                     "(head deadline %d s)" % (time.time() - t0,
                                               HEAD_DEADLINE))
            try:
                c.send(b"a")
            except OSError:
                break
            select.select([c], [], [], 1.0)
        c.close()
        if d.get("/healthz")[0] != 200:
            fail("e2d stopped serving")
    finally:
        d.stop()


def case_conflicting_content_length_and_transfer_encoding_get_400(tmp):
    # Request smuggling: a head whose body length two parsers could read
    # differently gets 400, the connection is closed, and the request
    # hidden behind it is never answered.
    d = Daemon(tmp)
    try:
        hidden = b"GET /api/v1/jobs HTTP/1.1\r\nHost: e2d\r\n\r\n"
        for framing in (b"Content-Length: 4\r\nTransfer-Encoding: chunked",
                        b"Transfer-Encoding: chunked\r\nContent-Length: 4",
                        b"Content-Length: 0\r\nContent-Length: 47"):
            req = (b"GET /healthz HTTP/1.1\r\nHost: e2d\r\n" + framing +
                   b"\r\n\r\n0\r\n\r\n" + hidden)
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(req)
            resp = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    resp += chunk
            except socket.timeout:
                fail("%r: connection left open after the reply: %r"
                     % (framing, resp[:300]))
            except ConnectionResetError:
                pass
            s.close()
            if status_of(resp) != 400:
                fail("%r: %r, want 400" % (framing, resp[:300]))
            if resp.count(b"HTTP/1.") != 1:
                fail("%r: the hidden request was answered: %r"
                     % (framing, resp))
        if d.get("/healthz")[0] != 200:
            fail("e2d stopped serving")
    finally:
        d.stop()


def case_failed_http_listen_exits_with_one_error(tmp):
    # A port in use, and a public address without --insecure: e2d exits 1
    # with one error line naming --http-listen; no abort, no socket file
    # left in the state dir, and the next e2d starts there.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        for name, addr in (("busy", "127.0.0.1:%d" % port),
                           ("public", "0.0.0.0:0")):
            state = os.path.join(tmp, name)
            r = subprocess.run([E2D, "--state-dir", state, "--http-listen",
                                addr], capture_output=True, text=True,
                               timeout=30)
            # e2d's log lines start with a timestamp; its error does not.
            errors = [l for l in r.stderr.splitlines()
                      if l.startswith("e2d: ")]
            if r.returncode != 1 or len(errors) != 1 or \
               "http-listen " + addr not in errors[0]:
                fail("%s: exit %d, stderr %r" % (addr, r.returncode,
                                                 r.stderr[-2000:]))
            left = [f for f in os.listdir(state) if f.endswith(".sock")]
            if left:
                fail("%s: socket file left behind: %s" % (addr, left))
    finally:
        busy.close()
    d = Daemon(tmp)
    try:
        if d.get("/healthz")[0] != 200:
            fail("e2d does not serve after the refused starts")
    finally:
        d.stop()


def main():
    case = sys.argv[1]
    fn = globals().get("case_" + case)
    if not fn:
        print("unknown case " + case)
        return 2
    tmp = tempfile.mkdtemp(prefix="e2-http-")
    try:
        fn(tmp)
    except AssertionError as e:
        print("FAIL %s: %s" % (case, e))
        log = os.path.join(tmp, "e2d.log")
        if os.path.exists(log):
            print("--- e2d log (tail)")
            print(open(log).read()[-3000:])
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok " + case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
