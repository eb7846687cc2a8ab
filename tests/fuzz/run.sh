#!/bin/sh
# run.sh -- builds the libFuzzer targets of tests/fuzz (clang, build-fuzz/)
# and runs each from its seed corpus, one after the other; prints one line
# per target (executions, outcome) and exits 1 when a target found a crash,
# a leak, a timeout or a sanitizer report (its input is kept under the
# work folder, named in the output).
#
#   tests/fuzz/run.sh                    CI: every target for 20 s
#   tests/fuzz/run.sh --time 600 spec    one target for 10 minutes
#   tests/fuzz/run.sh --runs 10000000    the long campaign (bench/RESULTS.md)
#
# Options: --time S (seconds per target), --runs N (executions per target),
# --work DIR (corpus and crash folder; default a temporary one, removed
# unless something was found), --no-build (use build-fuzz as it is).
# Targets: spec safetensors shard rpc e2d_conf worker_conf token_file.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)

time_s=20
runs=
work=
build=1
while [ $# -gt 0 ]; do
    case "$1" in
    --time) time_s=$2; shift 2 ;;
    --runs) runs=$2; time_s=; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -*) echo "run.sh: unknown option $1 (see the comment at the top)" >&2; exit 2 ;;
    *) break ;;
    esac
done
targets=${*:-spec safetensors shard rpc e2d_conf worker_conf token_file}

if [ "$build" = 1 ]; then
    command -v clang >/dev/null || { echo "run.sh: clang not found: apt-get install clang" >&2; exit 2; }
    cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DE2_FUZZ=ON \
        -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
    cmake --build build-fuzz --target e2_fuzz_all -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
fi

keep=1
if [ -z "$work" ]; then
    work=$(mktemp -d /tmp/e2fuzz-run.XXXXXX)
    keep=0
fi
mkdir -p "$work"

status=0
for t in $targets; do
    bin=$root/build-fuzz/tests/fuzz/fuzz_$t
    [ -x "$bin" ] || { echo "run.sh: $bin missing (build-fuzz, target e2_fuzz_all)" >&2; exit 2; }
    mkdir -p "$work/$t/corpus" "$work/$t/crashes"
    if [ -n "$runs" ]; then limit="-runs=$runs"; else limit="-max_total_time=$time_s"; fi
    log=$work/$t/log
    rc=0
    # New inputs go to the work corpus; the repo's seeds are only read.
    # Leaks are reported by ASan at exit (detect_leaks=1).
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" $limit -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$work/$t/crashes/" \
        "$work/$t/corpus" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ "$rc" = 0 ]; then
        echo "fuzz $t: ${execs:-?} executions, ${cov:-cov: ?}, no crash"
    else
        status=1
        keep=1
        echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} executions; log $log, input in $work/$t/crashes/"
        grep -m3 -E 'ERROR|runtime error|fuzz_[a-z_]*:' "$log" | sed 's/^/    /' || true
    fi
done
[ "$keep" = 1 ] || rm -rf "$work"
exit $status
