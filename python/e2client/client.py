"""e2client.client -- a small typed client of e2d's gRPC API
(e2.v1.Coordinator, proto/e2/v1/coordinator.proto).

Calls return the API's own message classes (e2client.pb: Job, JobEvent,
LogChunk, ...); every gRPC failure is raised as E2Error carrying the gRPC
status code. The method table is read from the service descriptor that the
generated coordinator_pb2 holds, so no gRPC stubs are generated."""
from __future__ import annotations

import json
import os
import stat
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Union

import grpc
from google.protobuf import json_format

from ._load import job_pb, pb

SERVICE = "e2.v1.Coordinator"

# Terminal job states: watch() ends after one of them.
TERMINAL_STATES = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


class E2Error(Exception):
    """A failed call: code is the grpc.StatusCode (NOT_FOUND for an unknown
    job, INVALID_ARGUMENT for a rejected spec, UNAUTHENTICATED or
    PERMISSION_DENIED for tokens, UNAVAILABLE when e2d cannot be reached,
    ...), details e2d's one-line message."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str):
        super().__init__("%s: %s: %s" % (method, code.name, details))
        self.method = method
        self.code = code
        self.details = details


def default_target() -> str:
    """The address e2d and e2ctl use by default: $E2_SERVER, else the unix
    socket in e2d's default state directory."""
    if os.environ.get("E2_SERVER"):
        return os.environ["E2_SERVER"]
    if os.environ.get("E2_STATE_DIR"):
        return "unix:%s/e2d.sock" % os.environ["E2_STATE_DIR"]
    if os.geteuid() == 0 and (os.access("/var/lib/e2", os.W_OK) or
                              os.access("/var/lib", os.W_OK)):
        return "unix:/var/lib/e2/e2d.sock"
    if os.environ.get("XDG_STATE_HOME"):
        return "unix:%s/e2/e2d.sock" % os.environ["XDG_STATE_HOME"]
    return "unix:%s/.local/state/e2/e2d.sock" % os.path.expanduser("~")


def read_token_file(path: str) -> str:
    """The token in a token file, as e2ctl reads it: the first word of the
    first line that is not blank or a # comment. A file that other users
    may read or write is refused, as e2ctl refuses it."""
    path = os.path.expanduser(path)
    st = os.stat(path)
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ValueError("token file %s is accessible by other users (mode %03o): "
                         "chmod 600 %s" % (path, st.st_mode & 0o777, path))
    with open(path) as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith("#"):
                return line.split()[0]
    raise ValueError("%s holds no token" % path)


def parse_spec(spec: Union[job_pb.JobSpec, Mapping[str, Any], str],
               base_dir: Optional[str] = None) -> job_pb.JobSpec:
    """A JobSpec from a message, a dict (the JSON form) or JSON text.
    Relative data shard paths and model.hf_dir are made absolute against
    base_dir when given (e2d runs elsewhere), as e2ctl does with the spec
    file's directory."""
    if isinstance(spec, job_pb.JobSpec):
        msg = job_pb.JobSpec()
        msg.CopyFrom(spec)
    else:
        text = spec if isinstance(spec, str) else json.dumps(spec)
        msg = json_format.Parse(text, job_pb.JobSpec())
    if base_dir is not None:
        def fix(p: str) -> str:
            return p if os.path.isabs(p) else os.path.normpath(os.path.join(base_dir, p))
        if msg.HasField("data"):
            for field in (msg.data.train_shards, msg.data.eval_shards):
                fixed = [fix(p) for p in field]
                del field[:]
                field.extend(fixed)
        if msg.HasField("model") and msg.model.hf_dir:
            msg.model.hf_dir = fix(msg.model.hf_dir)
    return msg


def _state_value(s: Union[int, str]) -> int:
    if isinstance(s, int):
        return s
    name = s.upper()
    if not name.startswith("JOB_STATE_"):
        name = "JOB_STATE_" + name
    return pb.JobState.Value(name)


class Client:
    """A connection to one e2d.

        with Client("unix:/var/lib/e2/e2d.sock") as c:
            job = c.submit({"name": "demo", ...}, request_id="demo-1").job
            for ev in c.watch(job.id):
                print(ev.state, ev.step, ev.loss)

    target: "unix:/path" or "host:port" (default: default_target()).
    token / token_file: bearer token sent with every call (token_file read
    as e2ctl reads it). tls_ca: PEM file of the CA that signed e2d's
    certificate (TLS on); tls_cert + tls_key: client certificate for mutual
    TLS. timeout: seconds per unary call (streams have none)."""

    def __init__(self, target: Optional[str] = None, *, token: Optional[str] = None,
                 token_file: Optional[str] = None, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 timeout: float = 30.0):
        self.target = target or default_target()
        self.timeout = timeout
        if token is not None and token_file is not None:
            raise ValueError("give token or token_file, not both")
        if token_file is not None:
            token = read_token_file(token_file)
        self._metadata = [("authorization", "Bearer " + token)] if token else None
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if tls_ca or tls_cert:
            def read(p: Optional[str]) -> Optional[bytes]:
                if p is None:
                    return None
                with open(p, "rb") as f:
                    return f.read()
            creds = grpc.ssl_channel_credentials(root_certificates=read(tls_ca),
                                                 private_key=read(tls_key),
                                                 certificate_chain=read(tls_cert))
            self._channel = grpc.secure_channel(self.target, creds)
        else:
            self._channel = grpc.insecure_channel(self.target)
        self._methods = {}
        service = pb.DESCRIPTOR.services_by_name["Coordinator"]
        for m in service.methods:
            req, resp = getattr(pb, m.input_type.name), getattr(pb, m.output_type.name)
            path = "/%s/%s" % (SERVICE, m.name)
            make = self._channel.unary_stream if m.server_streaming else self._channel.unary_unary
            self._methods[m.name] = make(path, request_serializer=req.SerializeToString,
                                         response_deserializer=resp.FromString)

    # -- plumbing --

    def _call(self, method: str, request):
        try:
            return self._methods[method](request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise E2Error(method, e.code(), e.details() or "") from None

    def _stream(self, method: str, request) -> Iterator:
        it = self._methods[method](request, metadata=self._metadata)
        try:
            for msg in it:
                yield msg
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and it.cancelled():
                return
            raise E2Error(method, e.code(), e.details() or "") from None
        finally:
            it.cancel()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the API --

    def submit(self, spec: Union[job_pb.JobSpec, Mapping[str, Any], str],
               request_id: str = "", base_dir: Optional[str] = None) -> pb.SubmitJobResponse:
        """Submits a job (JobSpec, its JSON form as a dict, or JSON text).
        request_id makes a retry return the same job (response.created is
        then False). base_dir: see parse_spec."""
        req = pb.SubmitJobRequest(spec=parse_spec(spec, base_dir), request_id=request_id)
        return self._call("SubmitJob", req)

    def submit_file(self, path: str, request_id: str = "") -> pb.SubmitJobResponse:
        """Submits the spec in a JSON file; relative paths in it are
        relative to the file, as with e2ctl submit."""
        with open(path) as f:
            text = f.read()
        return self.submit(text, request_id, base_dir=os.path.dirname(os.path.abspath(path)))

    def get(self, job_id: str) -> pb.Job:
        """One job with its events, checkpoints, failure and evaluation."""
        return self._call("GetJob", pb.GetJobRequest(id=job_id)).job

    def list(self, states: Sequence[Union[int, str]] = (),
             labels: Optional[Mapping[str, str]] = None) -> List[pb.Job]:
        """Jobs, newest first, all pages; states as JobState values or names
        ("running", "JOB_STATE_FAILED"); labels must all match."""
        req = pb.ListJobsRequest(states=[_state_value(s) for s in states],
                                 labels=["%s=%s" % kv for kv in (labels or {}).items()],
                                 page_size=1000)
        jobs: List[pb.Job] = []
        while True:
            resp = self._call("ListJobs", req)
            jobs.extend(resp.jobs)
            if not resp.next_page_token:
                return jobs
            req.page_token = resp.next_page_token

    def watch(self, job_id: str) -> Iterator[pb.JobEvent]:
        """The job's events: a SNAPSHOT first, then TRANSITIONs and PROGRESS,
        until a terminal state (the iterator then ends). Closing the
        iterator early cancels the stream."""
        for ev in self._stream("WatchJob", pb.WatchJobRequest(id=job_id)):
            yield ev
            if ev.state in TERMINAL_STATES and ev.kind != pb.JOB_EVENT_KIND_PROGRESS:
                return

    def cancel(self, job_id: str, grace_seconds: Optional[int] = None) -> pb.Job:
        """Asks the job to stop; its workers get grace_seconds (e2d's default
        30) to stop at a step boundary. Returns the job as it is then."""
        req = pb.CancelJobRequest(id=job_id)
        if grace_seconds is not None:
            req.grace_seconds = grace_seconds
        return self._call("CancelJob", req).job

    def logs(self, job_id: str, *, follow: bool = False, attempt: int = 0,
             rank: int = -1) -> Iterator[pb.LogChunk]:
        """The training log of an attempt (0: the latest), all ranks (-1) or
        one, as chunks of whole lines; follow keeps streaming until the
        attempt ends."""
        req = pb.StreamLogsRequest(id=job_id, attempt=attempt, rank=rank, follow=follow)
        return self._stream("StreamLogs", req)

    def workers(self) -> List[Any]:
        """The registered workers."""
        return list(self._call("ListWorkers", pb.ListWorkersRequest()).workers)
