#!/bin/sh
# e2d holds no code from worker/ or kernels/: no global symbol that one of
# their libraries defines is defined in the e2d binary (issue 13: the
# daemon's planner is common/plan; configure's e2_forbid_links checks the
# CMake graph, this checks what was actually linked).
# usage: e2d_links_no_worker_code.sh E2D LIB.a...
set -u
e2d=$1
shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for lib in "$@"; do
    nm -g --defined-only "$lib" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBR]/ { print $3 }'
done | sort -u >"$dir/worker"
nm --defined-only "$e2d" | awk 'NF == 3 { print $3 }' | sort -u >"$dir/e2d"
if [ ! -s "$dir/worker" ] || ! grep -qx main "$dir/e2d"; then
    echo "FAIL: nm read no symbols (worker libraries: $(wc -l <"$dir/worker"), e2d without main)"
    exit 1
fi
comm -12 "$dir/worker" "$dir/e2d" >"$dir/both"
if [ -s "$dir/both" ]; then
    echo "FAIL: e2d links worker/ or kernels/ code: $(head -20 "$dir/both" | tr '\n' ' ')"
    exit 1
fi
echo "ok: none of $(wc -l <"$dir/worker") worker/kernels symbols in e2d"
