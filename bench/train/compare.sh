#!/bin/sh
# compare.sh -- e2's training throughput next to PyTorch's in one run.
#
# Alternates, round after round: bench_train (e2), torch_baseline.py in eager
# mode, and torch_baseline.py under torch.compile, on the same config, batch
# and thread count; prints each run's tokens/s and, per round, e2's rate over
# each torch rate measured beside it, then the median ratios. On a loaded
# machine only these same-round ratios mean anything.
#
# usage: bench/train/compare.sh [rounds (2)] [steps (3)] [micro_batch (4)]
# env:   BUILD (default build), the CMake build directory with bench_train;
#        BASE, optionally a second build directory (e.g. main's): its
#        bench_train runs in every round too, before or after BUILD's in
#        turn, and each round prints BUILD's rate over BASE's;
#        OMP_NUM_THREADS (default 2), used for both sides (and as
#        OPENBLAS_NUM_THREADS); PYTHON, a python with torch (default: the
#        first of python3, /usr/bin/python3 that imports torch).
# Without torch it runs e2 alone and says so. Asserts nothing.
set -eu
rounds=${1:-2}
steps=${2:-3}
mb=${3:-4}
here=$(cd "$(dirname "$0")" && pwd)
bench=${BUILD:-build}/bench/train/bench_train
[ -x "$bench" ] || {
    echo "compare.sh: $bench not found: build first (or set BUILD)" >&2
    exit 2
}
base=""
if [ -n "${BASE:-}" ]; then
    base=$BASE/bench/train/bench_train
    [ -x "$base" ] || {
        echo "compare.sh: $base not found (BASE)" >&2
        exit 2
    }
fi
threads=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"

py=""
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch" >/dev/null 2>&1; then
        py=$p
        break
    fi
done
[ -n "$py" ] || echo "compare.sh: no python with torch found (set PYTHON): e2 only"

rate() { sed -n "s/.*| \([0-9.]*\) tokens\/s |.*/\1/p; s/^torch [a-z]*: \([0-9.]*\) tokens\/s.*/\1/p" "$1" | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else printf "-" }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "compare: $rounds rounds, $steps steps, micro-batch $mb, $threads threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$rounds" ]; do
    if [ -n "$base" ] && [ $((r % 2)) -eq 1 ]; then "$base" "$steps" "$mb" >"$tmp/base" 2>&1; fi
    "$bench" "$steps" "$mb" >"$tmp/e2" 2>&1
    if [ -n "$base" ] && [ $((r % 2)) -eq 0 ]; then "$base" "$steps" "$mb" >"$tmp/base" 2>&1; fi
    e2=$(rate "$tmp/e2")
    eager="" comp=""
    if [ -n "$py" ]; then
        "$py" "$here/torch_baseline.py" --steps "$steps" --micro-batch "$mb" --mode eager >"$tmp/eager" 2>&1 || true
        "$py" "$here/torch_baseline.py" --steps "$steps" --micro-batch "$mb" --mode compile >"$tmp/comp" 2>&1 || true
        eager=$(rate "$tmp/eager")
        comp=$(rate "$tmp/comp")
    fi
    echo "round $r (load $(cut -d' ' -f1 /proc/loadavg)):"
    grep -E "^step|^training / sgemm" "$tmp/e2" | sed 's/^/  e2    /'
    if [ -n "$base" ]; then
        grep -E "^step|^training / sgemm" "$tmp/base" | sed 's/^/  base  /'
        echo "  e2 / base $(ratio "$e2" "$(rate "$tmp/base")")"
        ratio "$e2" "$(rate "$tmp/base")" >>"$tmp/rb"
        echo >>"$tmp/rb"
    fi
    [ -n "$py" ] && grep -hE "^torch " "$tmp/eager" "$tmp/comp" | sed 's/^/  /'
    [ -n "$py" ] && [ -z "$eager" ] && tail -3 "$tmp/eager" | sed 's/^/  eager failed: /'
    echo "  e2 / eager $(ratio "$e2" "$eager"), e2 / compile $(ratio "$e2" "$comp")"
    ratio "$e2" "$eager" >>"$tmp/re"
    echo >>"$tmp/re"
    ratio "$e2" "$comp" >>"$tmp/rc"
    echo >>"$tmp/rc"
    r=$((r + 1))
done
echo "median over rounds: e2 / eager $(grep -v '^-' "$tmp/re" | grep . | median), e2 / compile $(grep -v '^-' "$tmp/rc" | grep . | median)"
[ -z "$base" ] || echo "median over rounds: e2 / base $(grep -v '^-' "$tmp/rb" | grep . | median)"
