"""The generated e2.v1 modules: from the package when it was built and
installed (pip install ./python generates e2client/_pb), else generated now
from the .proto files into a temporary directory (e2client used straight
from a checkout, as examples/dashboard_submit.py does)."""
import atexit
import importlib
import os
import shutil
import sys
import tempfile

try:
    from ._pb.e2.v1 import coordinator_pb2, job_pb2  # noqa: F401
except ImportError:
    from . import _protos

    _src = _protos.find_proto_dir()
    if _src is None:
        raise ImportError("e2client: no generated message classes (install the "
                          "package: pip install ./python) and no e2/v1/*.proto to "
                          "generate them from (set E2_PROTO_DIR)") from None
    _tmp = tempfile.mkdtemp(prefix="e2client-pb-")
    atexit.register(shutil.rmtree, _tmp, ignore_errors=True)
    _protos.generate(_src, os.path.join(_tmp, "_e2client_pb"))
    sys.path.insert(0, _tmp)
    coordinator_pb2 = importlib.import_module("_e2client_pb.e2.v1.coordinator_pb2")
    job_pb2 = importlib.import_module("_e2client_pb.e2.v1.job_pb2")
    sys.path.remove(_tmp)

pb = coordinator_pb2
job_pb = job_pb2
