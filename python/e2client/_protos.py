"""Generation of the e2.v1 message classes from e2's .proto files, shared
by the package build (setup.py, into the package) and by an e2client used
straight from a checkout (_load.py, into a temporary directory). No side
effects on import: setup.py loads this file on its own."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROTOS = ("job.proto", "coordinator.proto", "worker.proto")


def find_proto_dir(extra=()):
    """The directory holding e2/v1/*.proto: $E2_PROTO_DIR, the extra
    candidates, the checkout's proto/ next to python/, then where e2's
    .deb installs them."""
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [os.environ.get("E2_PROTO_DIR")] + list(extra) + [
        os.path.join(here, "..", "..", "proto"), "/usr/share/e2/proto",
        "/usr/local/share/e2/proto"]
    for d in cands:
        if d and os.path.exists(os.path.join(d, "e2", "v1", "coordinator.proto")):
            return os.path.abspath(d)
    return None


def _protoc(src, out):
    files = [os.path.join("e2", "v1", f) for f in PROTOS]
    args = ["-I" + src, "--python_out=" + out] + files
    if shutil.which("protoc"):
        r = subprocess.run(["protoc"] + args, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("protoc failed: " + r.stderr.strip())
        return
    try:
        from grpc_tools import protoc
    except ImportError:
        raise RuntimeError("e2client needs protoc (Debian: protobuf-compiler) or "
                           "grpcio-tools to generate the e2.v1 message classes") from None
    if protoc.main(["protoc"] + args) != 0:
        raise RuntimeError("grpc_tools.protoc failed")


def generate(proto_dir, pkg_dir):
    """Writes pkg_dir/e2/v1/{job,coordinator,worker}_pb2.py (pkg_dir,
    pkg_dir/e2 and pkg_dir/e2/v1 become packages), the generated
    cross-file imports (`from e2.v1 import job_pb2`) made relative, so the
    classes live under the caller's package and not as a top-level e2."""
    with tempfile.TemporaryDirectory() as tmp:
        _protoc(proto_dir, tmp)
        dst = os.path.join(pkg_dir, "e2", "v1")
        os.makedirs(dst, exist_ok=True)
        for d in (pkg_dir, os.path.join(pkg_dir, "e2"), dst):
            open(os.path.join(d, "__init__.py"), "a").close()
        for f in PROTOS:
            name = f.replace(".proto", "_pb2.py")
            with open(os.path.join(tmp, "e2", "v1", name)) as fh:
                text = fh.read()
            text = re.sub(r"^from e2\.v1 import", "from . import", text, flags=re.M)
            with open(os.path.join(dst, name), "w") as fh:
                fh.write(text)


if __name__ == "__main__":  # python3 _protos.py PROTO_DIR PKG_DIR
    generate(sys.argv[1], sys.argv[2])
