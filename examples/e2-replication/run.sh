#!/bin/sh
# run.sh -- the E²-LLM small-scale replication in one command: builds
# e2worker (Release, in BUILD_DIR, default ./build-replication) unless
# E2WORKER names one, then runs replicate.py with Debian's python3.
#   examples/e2-replication/run.sh [--mode full|tiny] [--ablations]
#                                  [--out DIR] [--jobs N] [--set key=value]
# Results: DIR/results.md (table), DIR/*.png, DIR/results.json,
# DIR/summary.txt (default DIR: ./e2-replication-results).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${E2WORKER:-}" ]; then
    build=${BUILD_DIR:-$root/build-replication}
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" --target e2worker -j2 >/dev/null
    E2WORKER=$build/worker/cli/e2worker
fi
exec /usr/bin/python3 "$here/replicate.py" --e2worker "$E2WORKER" "$@"
