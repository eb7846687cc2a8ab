#!/bin/sh
# The test command of the README and of CI: installs the dependencies (the
# test-only ones too: install-deps.sh --test), builds e2 in build/ (or
# build-sanitize/ with --sanitize: ASan + UBSan) and runs every test with
# ctest.
set -eu
cd "$(dirname "$0")/.."
./deploy/install-deps.sh --test

dir=build
flags="-DCMAKE_BUILD_TYPE=Release"
if [ "${1:-}" = "--sanitize" ]; then
    dir=build-sanitize
    flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DE2_SANITIZE=ON -DE2_CUDA=OFF"
fi
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$dir" $flags >/dev/null
cmake --build "$dir" -j "$jobs"
# The sanitizer pass leaves out the tests labelled network (a real 135M
# model's reference check: ~10 min under ASan); the first pass runs them.
exclude=""
[ "$dir" = build-sanitize ] && exclude="-LE network"
# shellcheck disable=SC2086
ctest --test-dir "$dir" --output-on-failure -j "$jobs" $exclude
