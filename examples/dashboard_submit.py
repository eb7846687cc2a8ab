#!/usr/bin/python3
"""Submit an e2 job through e2d's gRPC API and follow it, from Python.

An example for dashboard authors: it uses only Debian's python3-grpcio and
python3-protobuf plus `protoc` (protobuf-compiler) and e2's .proto files,
which are the public contract. The message classes are generated at start-up
into a temporary directory (protoc --python_out); the calls go through
grpc's generic channel methods, so no grpc_tools plugin is needed.

    /usr/bin/python3 examples/dashboard_submit.py job.json \
        [--server unix:/path/e2d.sock | host:port] [--request-id ID] [--json]
        [--token-file PATH] [--tls-ca FILE]

With tokens (docs/security.md) each call carries `authorization: Bearer
<token>`, the token read like e2ctl does: --token-file, $E2_TOKEN_FILE, else
~/.config/e2/token when it exists. --tls-ca (or $E2_TLS_CA) makes the
channel TLS, for e2d on host:port.

Exit status like `e2ctl submit --wait`: 0 SUCCEEDED, 1 FAILED, 2 CANCELLED
(or the stream ended early), 3 e2d rejected the request, 4 e2d unreachable.
"""
import argparse
import atexit
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIRS = [os.path.join(HERE, "..", "proto"), "/usr/share/e2/proto",
              "/usr/local/share/e2/proto"]
TERMINAL = {"JOB_STATE_SUCCEEDED": 0, "JOB_STATE_FAILED": 1,
            "JOB_STATE_CANCELLED": 2}


def load_protos(proto_dir):
    """Generate e2/v1/*_pb2.py with protoc and import them: returns the
    job and coordinator modules."""
    out = tempfile.mkdtemp(prefix="e2-pb2-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    files = [os.path.join("e2", "v1", f) for f in
             ("job.proto", "coordinator.proto", "worker.proto")]
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out] + files,
                   check=True)
    sys.path.insert(0, out)
    return (importlib.import_module("e2.v1.job_pb2"),
            importlib.import_module("e2.v1.coordinator_pb2"))


def default_server():
    """The address e2ctl and e2d use by default (unix socket in the state dir)."""
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


def resolve_paths(spec, base):
    """Relative shard paths and model.hf_dir are relative to the spec file,
    as with e2ctl (e2d may run in another directory)."""
    def fix(p):
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
    if spec.HasField("data"):
        for field in (spec.data.train_shards, spec.data.eval_shards):
            fixed = [fix(p) for p in field]
            del field[:]
            field.extend(fixed)
    if spec.HasField("model") and spec.model.hf_dir:
        spec.model.hf_dir = fix(spec.model.hf_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="job spec (JSON form of e2.v1.JobSpec)")
    ap.add_argument("--server", default=default_server(),
                    help="e2d address, unix:/path or host:port")
    ap.add_argument("--request-id", default="",
                    help="idempotency key: a retry returns the same job")
    ap.add_argument("--proto-dir", default=None,
                    help="directory holding e2/v1/*.proto")
    ap.add_argument("--json", action="store_true",
                    help="print the API's messages as JSON lines")
    ap.add_argument("--token-file", default=os.environ.get("E2_TOKEN_FILE"),
                    help="file whose first word is the bearer token")
    ap.add_argument("--tls-ca", default=os.environ.get("E2_TLS_CA"),
                    help="PEM CA of e2d's certificate: use TLS")
    args = ap.parse_args()

    proto_dir = args.proto_dir or next(
        (d for d in PROTO_DIRS
         if os.path.exists(os.path.join(d, "e2", "v1", "coordinator.proto"))), None)
    if proto_dir is None:
        sys.exit("dashboard_submit: e2/v1/*.proto not found: give --proto-dir")
    job_pb, pb = load_protos(proto_dir)

    try:
        with open(args.spec) as f:
            spec = json_format.Parse(f.read(), job_pb.JobSpec())
    except (OSError, json_format.ParseError) as e:
        print("dashboard_submit: %s: %s" % (args.spec, e), file=sys.stderr)
        return 65
    resolve_paths(spec, os.path.dirname(os.path.abspath(args.spec)))

    metadata = None
    token_file = args.token_file or os.path.expanduser("~/.config/e2/token")
    if args.token_file or os.path.exists(token_file):
        try:
            with open(token_file) as f:
                words = [ln.split()[0] for ln in f
                         if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as e:
            print("dashboard_submit: %s" % e, file=sys.stderr)
            return 64
        if not words:
            print("dashboard_submit: %s holds no token" % token_file,
                  file=sys.stderr)
            return 64
        metadata = [("authorization", "Bearer " + words[0])]
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(args.server, creds)
    else:
        channel = grpc.insecure_channel(args.server)
    submit = channel.unary_unary(
        "/e2.v1.Coordinator/SubmitJob",
        request_serializer=pb.SubmitJobRequest.SerializeToString,
        response_deserializer=pb.SubmitJobResponse.FromString)
    watch = channel.unary_stream(
        "/e2.v1.Coordinator/WatchJob",
        request_serializer=pb.WatchJobRequest.SerializeToString,
        response_deserializer=pb.JobEvent.FromString)

    def show(msg):
        print(json.dumps(json_format.MessageToDict(
            msg, preserving_proto_field_name=True)), flush=True)

    try:
        resp = submit(pb.SubmitJobRequest(spec=spec, request_id=args.request_id),
                      timeout=30, metadata=metadata)
        job_id = resp.job.id
        if args.json:
            show(resp)
        else:
            print("%s %s" % (job_id, "submitted" if resp.created
                             else "already submitted"), flush=True)
        state = "JOB_STATE_UNSPECIFIED"
        for ev in watch(pb.WatchJobRequest(id=job_id), metadata=metadata):
            state = pb.JobState.Name(ev.state)
            if args.json:
                show(ev)
            elif ev.kind == pb.JOB_EVENT_KIND_PROGRESS:
                print("%s step %d/%d loss %.4f %.0f tok/s ETA %.0fs" % (
                    job_id, ev.step, ev.total_steps, ev.loss,
                    ev.tokens_per_second, ev.eta_seconds), flush=True)
            else:
                print("%s %s %s" % (job_id, state[len("JOB_STATE_"):],
                                    ev.reason), flush=True)
    except grpc.RpcError as e:
        print("dashboard_submit: %s" % e.details(), file=sys.stderr)
        unreachable = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        return 4 if e.code() in unreachable else 3
    return TERMINAL.get(state, 2)


if __name__ == "__main__":
    sys.exit(main())
