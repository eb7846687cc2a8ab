#!/usr/bin/python3
"""Submit an e2 job through e2d's gRPC API and follow it, from Python.

An example for dashboard authors, on e2's Python client (python/, the
e2client package: `pip install ./python` into a venv, see python/README.md).
Run from an e2 checkout it also works without installing: e2client is then
taken from python/ and its message classes generated from proto/ with
protoc at start-up (Debian's python3-grpcio, python3-protobuf and
protobuf-compiler are all it needs).

    examples/dashboard_submit.py job.json \\
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
import json
import os
import sys

try:
    import e2client
except ImportError:  # an e2 checkout: the client from python/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "python"))
    import e2client

import grpc
from google.protobuf import json_format

from e2client import E2Error, pb

TERMINAL = {pb.JOB_STATE_SUCCEEDED: 0, pb.JOB_STATE_FAILED: 1, pb.JOB_STATE_CANCELLED: 2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="job spec (JSON form of e2.v1.JobSpec)")
    ap.add_argument("--server", default=e2client.default_target(),
                    help="e2d address, unix:/path or host:port")
    ap.add_argument("--request-id", default="",
                    help="idempotency key: a retry returns the same job")
    ap.add_argument("--json", action="store_true",
                    help="print the API's messages as JSON lines")
    ap.add_argument("--token-file", default=os.environ.get("E2_TOKEN_FILE"),
                    help="file whose first word is the bearer token")
    ap.add_argument("--tls-ca", default=os.environ.get("E2_TLS_CA"),
                    help="PEM CA of e2d's certificate: use TLS")
    args = ap.parse_args()

    token_file = args.token_file or None  # E2_TOKEN_FILE="" means none
    if token_file is None and os.path.exists(os.path.expanduser("~/.config/e2/token")):
        token_file = "~/.config/e2/token"
    try:
        client = e2client.Client(args.server, token_file=token_file, tls_ca=args.tls_ca)
    except (OSError, ValueError) as e:
        print("dashboard_submit: %s" % e, file=sys.stderr)
        return 64

    def show(msg):
        print(json.dumps(json_format.MessageToDict(
            msg, preserving_proto_field_name=True)), flush=True)

    with client:
        try:
            resp = client.submit_file(args.spec, request_id=args.request_id)
        except (OSError, json_format.ParseError) as e:
            print("dashboard_submit: %s: %s" % (args.spec, e), file=sys.stderr)
            return 65
        except E2Error as e:
            print("dashboard_submit: %s" % e.details, file=sys.stderr)
            unreachable = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return 4 if e.code in unreachable else 3
        job_id = resp.job.id
        if args.json:
            show(resp)
        else:
            print("%s %s" % (job_id, "submitted" if resp.created else "already submitted"),
                  flush=True)
        state = pb.JOB_STATE_UNSPECIFIED
        try:
            for ev in client.watch(job_id):
                state = ev.state
                if args.json:
                    show(ev)
                elif ev.kind == pb.JOB_EVENT_KIND_PROGRESS:
                    print("%s step %d/%d loss %.4f %.0f tok/s ETA %.0fs" % (
                        job_id, ev.step, ev.total_steps, ev.loss,
                        ev.tokens_per_second, ev.eta_seconds), flush=True)
                else:
                    print("%s %s %s" % (job_id, pb.JobState.Name(state)[len("JOB_STATE_"):],
                                        ev.reason), flush=True)
        except E2Error as e:
            print("dashboard_submit: %s" % e.details, file=sys.stderr)
            unreachable = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return 4 if e.code in unreachable else 3
    return TERMINAL.get(state, 2)


if __name__ == "__main__":
    sys.exit(main())
