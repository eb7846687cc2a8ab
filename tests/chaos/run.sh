#!/bin/sh
# run.sh -- the chaos suite (chaos.py) in a private mount namespace, so the
# small file systems it mounts vanish with it, however it ends.
#   tests/chaos/run.sh [--full] [case ...]
# E2D_BIN and E2WORKER_BIN default to build/'s binaries. Needs root (mount).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
: "${E2D_BIN:=$root/build/daemon/src/e2d}"
: "${E2WORKER_BIN:=$root/build/worker/cli/e2worker}"
export E2D_BIN E2WORKER_BIN PYTHONDONTWRITEBYTECODE=1
if [ "$(id -u)" != 0 ]; then
    echo "chaos: needs root (it mounts small tmpfs file systems)" >&2
    exit 2
fi
exec unshare --mount --propagation private /usr/bin/python3 "$here/chaos.py" "$@"
