"""Build step of the e2-client package: generates the e2.v1 message classes
(job_pb2, coordinator_pb2, worker_pb2) from e2's .proto files into the
package being built, e2client/_pb/. Nothing generated is committed.

The .proto files come from $E2_PROTO_DIR, else ../proto next to this folder
(pip builds a local directory in place). The compiler is `protoc` from PATH
(Debian's protobuf-compiler), else grpc_tools.protoc when installed. Only
message classes are generated: the client calls e2d through grpcio's
generic channel methods, its method table read from the service
descriptor, so no gRPC plugin is needed."""
import importlib.util
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "e2client_protos", os.path.join(HERE, "e2client", "_protos.py"))
protos = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protos)


class BuildWithProtos(build_py):
    def run(self):
        super().run()
        src = protos.find_proto_dir([os.path.join(HERE, "..", "proto")])
        if src is None:
            sys.exit("e2-client: e2/v1/coordinator.proto not found: build from an e2 "
                     "checkout (pip install ./python) or set E2_PROTO_DIR to its proto/")
        protos.generate(src, os.path.join(self.build_lib, "e2client", "_pb"))


setup(cmdclass={"build_py": BuildWithProtos})
