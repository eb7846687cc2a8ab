#!/bin/sh
# run.sh -- the E² science experiment in one command: builds e2worker
# (Release, in BUILD_DIR, default ./build-science) unless E2WORKER names
# one, then runs driver.py with Debian's python3 and regenerates the report.
#   examples/e2-science/run.sh [--quick] [--ablations] [--out DIR] [--jobs N]
#                              [--ignore-gates] [--set key=value]
# Results: DIR/results.json, DIR/results.md (default DIR: ./e2-science-results).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${E2WORKER:-}" ]; then
    build=${BUILD_DIR:-$root/build-science}
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" --target e2worker -j2 >/dev/null
    E2WORKER=$build/worker/cli/e2worker
fi
exec /usr/bin/python3 "$here/driver.py" --e2worker "$E2WORKER" "$@"
