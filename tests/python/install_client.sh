#!/bin/sh
# install_client.sh SRCDIR VENV -- the python_client_install fixture:
# `pip install` of e2's Python client (python/) into a venv that sees
# Debian's python3-grpcio and python3-protobuf, offline (no build
# isolation, no dependency downloads), built from a copy of python/ and
# proto/ so that the checkout stays clean. Then checks that the installed
# package carries message classes generated from proto/ and that git
# tracks none.
set -eu
SRC=$1 VENV=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV" ||
    fail "python3 -m venv (python3-venv installed? deploy/install-deps.sh --test)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-pyclient-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cp -r "$SRC/python" "$SRC/proto" "$TMP/"
rm -rf "$TMP/python/build" "$TMP/python"/*.egg-info
"$VENV/bin/pip" install --disable-pip-version-check -q --no-build-isolation --no-deps \
    --force-reinstall "$TMP/python" || fail "pip install ./python"
cd "$TMP"
"$VENV/bin/python" - "$VENV" <<'PY' || fail "installed package"
import os, sys
import e2client
pkg = os.path.dirname(e2client.__file__)
assert pkg.startswith(os.path.realpath(sys.argv[1])) or pkg.startswith(sys.argv[1]), pkg
for m in ("job_pb2", "coordinator_pb2", "worker_pb2"):
    assert os.path.exists(os.path.join(pkg, "_pb", "e2", "v1", m + ".py")), m
assert e2client.pb.__name__ == "e2client._pb.e2.v1.coordinator_pb2", e2client.pb.__name__
assert e2client.pb.JobState.Name(5) == "JOB_STATE_SUCCEEDED"
print("ok: e2client installed at", pkg)
PY
if git -C "$SRC" ls-files | grep -q '_pb2\.py$'; then fail "generated _pb2.py files are tracked by git"; fi
