#!/bin/sh
# tests/gpu/run.sh -- the CUDA backend's check on a GPU machine, one command
# sized for one device call (~8 minutes): builds e2 for the card in
# build-gpu/, runs gpu_probe, then gpu_check's op-by-op comparison with the
# CPU backend and its 20-step training comparison, then one tiny job through
# `e2worker run` on cpu and cuda (run_spec.sh; all must pass), then the
# figures (bf16 GEMM rate, attention fwd+bwd TFLOP/s, ~1B training tokens/s
# and MFU). Exits non-zero when the build or any check fails; the figures
# are printed either way and never fail the run.
#
#   bash tests/gpu/run.sh            # CMAKE_CUDA_ARCHITECTURES=native
#   E2_CUDA_ARCH=90 bash tests/gpu/run.sh
set -u
cd "$(dirname "$0")/../.."
dir=build-gpu
arch=${E2_CUDA_ARCH:-native}
jobs=$(nproc 2>/dev/null || echo 4)

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
fi

mkdir -p "$dir"
t0=$(date +%s)
if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DE2_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$dir/e2-configure.log" 2>&1; then
    tail -20 "$dir/e2-configure.log"
    echo "run.sh: configure failed (log: $dir/e2-configure.log)"
    exit 1
fi
if ! cmake --build "$dir" --target gpu_check gpu_probe e2worker -j "$jobs" >"$dir/e2-build.log" 2>&1; then
    grep -E "error|Error" "$dir/e2-build.log" | head -30
    echo "run.sh: build failed (log: $dir/e2-build.log)"
    exit 1
fi
echo "run.sh: built for sm $arch in $(( $(date +%s) - t0 )) s"

status=0
stage() { # stage NAME SECONDS ARGS...: one gpu_check part under a time limit
    name=$1 limit=$2
    shift 2
    s=$(date +%s)
    timeout "$limit" "$@"
    rc=$?
    echo "run.sh: $name: exit $rc after $(( $(date +%s) - s )) s"
    [ "$rc" -eq 0 ] || status=1
}
stage probe 30 "$dir/tests/gpu/gpu_probe"
stage ops 120 "$dir/tests/gpu/gpu_check" ops
stage train 60 "$dir/tests/gpu/gpu_check" train
stage e2worker-run 120 sh tests/gpu/run_spec.sh "$PWD/$dir/worker/cli/e2worker"
timeout 240 "$dir/tests/gpu/gpu_check" bench || echo "run.sh: bench did not finish (exit $?)"

if [ "$status" -eq 0 ]; then echo "run.sh: PASS"; else echo "run.sh: FAIL"; fi
exit "$status"
