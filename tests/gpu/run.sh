#!/bin/sh
# tests/gpu/run.sh -- the CUDA backend's check on a GPU machine, one command
# sized for one device call (at most 600 s; ~5-7 minutes when all is well):
#
#   env      the card, the driver, where cuBLASLt and NCCL were found, and
#            that every binary's libraries resolve (ldd)
#   probe    gpu_probe: the backend is complete
#   ops-*    gpu_check ops GROUP, one process per group (gpu_check list), so
#            that a CUDA fault ends only its group; a group that crashes is
#            run once more with E2_CUDA_SYNC=1 to name the faulting kernel
#   train    gpu_check train: 20 AdamW steps on both backends, curves agree
#   e2worker run_spec.sh: one tiny job through `e2worker run`, cpu and cuda
#   nccl     nccl_check: a 1-rank NCCL communicator, collectives, the
#            gradient reducer's buckets, teardown
#   bench    gpu_check bench: GEMM, attention, ~1B training (figures only)
#
# Every stage has a time limit, and each limit is cut to what is left of
# E2_GPU_BUDGET (default 540 s) so the whole run ends inside one 600 s call.
# E2_GPU_STAGES="ops-attn train" (shell patterns) runs only the stages
# named, plus env: for a second run after a fix.
# Exits 0 when every check passed (the figures never fail the run).
#
#   bash tests/gpu/run.sh --prebuilt build-gpu-carry/e2-gpu.tar.xz
#       binaries built here by tests/gpu/bundle.sh (a .tar.xz, or the folder
#       it unpacks to); the device's own cuBLASLt and NCCL are looked up in
#       the system folders and in the python3 site-packages' nvidia/*/lib
#   bash tests/gpu/run.sh                 # builds in build-gpu/ first
#       (needs e2's C dependencies on the GPU machine; E2_CUDA_ARCH=90)
#
# Output: the console, and under $OUT/gpu-run (else build-gpu/run): run.log
# (everything), one log per stage, figures.json (gpu_check bench) and
# result.json {"pass", "device", "stages": [{"name", "rc", "seconds"}],
# "figures": ...}.
set -u
cd "$(dirname "$0")/../.."
root=$PWD
t_start=$(date +%s)
budget=${E2_GPU_BUDGET:-540}

prebuilt=""
if [ "${1:-}" = "--prebuilt" ]; then
    prebuilt=${2:?"usage: run.sh [--prebuilt BUNDLE.tar.xz|DIR]"}
fi

logdir=${OUT:+$OUT/gpu-run}
logdir=${logdir:-$root/build-gpu/run}
mkdir -p "$logdir"
# Everything also goes to run.log (the console may be cut).
if [ -z "${E2_GPU_RUN_TEED:-}" ]; then
    rm -f "$logdir/.rc"
    E2_GPU_RUN_TEED=1 sh "$root/tests/gpu/run.sh" "$@" 2>&1 | tee "$logdir/run.log"
    exit "$(cat "$logdir/.rc" 2>/dev/null || echo 1)"
fi

# A previous run's stage logs and results (run.log is this run's).
find "$logdir" -maxdepth 1 \( -name '*.log' ! -name run.log -o -name '*.json' \) -exec rm -f {} +

stages=""   # JSON objects, comma-separated
status=0
unpack=""
finish() {
    [ -n "$unpack" ] && rm -rf "$unpack"
    if [ "$status" -eq 0 ]; then pass=true; echo "run.sh: PASS"; else pass=false; echo "run.sh: FAIL"; fi
    echo "run.sh: $(( $(date +%s) - t_start )) s in all; logs and result.json in $logdir"
    {
        printf '{"pass": %s, "device": "%s", "seconds": %d,\n "stages": [%s],\n "figures": ' \
            "$pass" "$(echo "${device:-unknown}" | tr -d '"\\')" "$(( $(date +%s) - t_start ))" "$stages"
        if [ -s "$logdir/figures.json" ]; then cat "$logdir/figures.json"; else echo "null"; fi
        echo "}"
    } >"$logdir/result.json"
    echo "$status" >"$logdir/.rc"
    exit "$status"
}

left() { echo $(( budget - ($(date +%s) - t_start) )); }

# stage NAME LIMIT [--figures] CMD...: runs CMD under min(LIMIT, what is
# left - 5) seconds, its output to the console and to NAME.log; a failure
# fails the run unless --figures.
stage() {
    name=$1 limit=$2 s=$(date +%s)
    shift 2
    counts=1
    if [ "$1" = "--figures" ]; then counts=0; shift; fi
    if [ -n "${E2_GPU_STAGES:-}" ] && [ "$name" != env ]; then
        want=0
        set -f # the patterns are for stage names, not files
        for p in $E2_GPU_STAGES; do
            # shellcheck disable=SC2254 # $p is a pattern
            case $name in $p) want=1 ;; esac
        done
        set +f
        [ "$want" -eq 1 ] || { rc=0; return 0; }
    fi
    l=$(( $(left) - 5 ))
    [ "$l" -lt "$limit" ] && limit=$l
    if [ "$limit" -lt 5 ]; then
        echo "run.sh: $name: skipped, the time budget is spent"
        rc=124
    else
        echo "run.sh: == $name (limit $limit s)"
        timeout -k 5 "$limit" "$@" >"$logdir/$name.log" 2>&1
        rc=$?
        cat "$logdir/$name.log"
        echo "run.sh: $name: exit $rc after $(( $(date +%s) - s )) s$([ "$rc" -eq 124 ] && echo ' (time limit)')"
    fi
    stages="$stages${stages:+, }{\"name\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - s ))}"
    if [ "$rc" -ne 0 ] && [ "$counts" -eq 1 ]; then status=1; fi
    return "$rc"
}

if command -v nvidia-smi >/dev/null 2>&1; then
    device=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | head -1)
    echo "run.sh: device: $device"
fi

# ---- the binaries ----
if [ -n "$prebuilt" ]; then
    case $prebuilt in /*) ;; *) prebuilt=$root/$prebuilt ;; esac
    if [ -f "$prebuilt" ]; then
        unpack=$(mktemp -d "${TMPDIR:-/tmp}/e2-gpu-XXXXXX")
        tar -C "$unpack" -xJf "$prebuilt" || { echo "run.sh: cannot unpack $prebuilt"; status=1; finish; }
        bundle=$unpack/e2-gpu
    else
        bundle=$prebuilt
    fi
    [ -x "$bundle/bin/gpu_check" ] || { echo "run.sh: $bundle/bin/gpu_check missing"; status=1; finish; }
    cat "$bundle/MANIFEST" 2>/dev/null | head -6
    bin=$bundle/bin
    e2worker=$bin/e2worker
    # The device's cuBLASLt and NCCL: system folders, the CUDA toolkit, and
    # the wheels PyTorch brought (site-packages/nvidia/*/lib).
    dirs="/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib"
    for d in /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/x86_64-linux/lib; do
        [ -d "$d" ] && dirs="$dirs $d"
    done
    py=$(command -v python3 || true)
    if [ -n "$py" ]; then
        for sp in $("$py" -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null); do
            for d in "$sp"/nvidia/*/lib "$sp"/nvidia/*/*/lib; do [ -d "$d" ] && dirs="$dirs $d"; done
        done
    fi
    need=$(sed -n 's/^device must provide: //p' "$bundle/MANIFEST" 2>/dev/null)
    [ -n "$need" ] || need="libcublasLt.so.13 libnccl.so.2"
    ldp=$bundle/lib
    for lib in $need; do
        [ "$lib" = "libcuda.so.1" ] && continue # the driver: the loader finds it
        found=""
        for d in $dirs; do
            if [ -e "$d/$lib" ]; then found=$d; break; fi
        done
        if [ -n "$found" ]; then
            echo "run.sh: $lib from $found"
            case ":$ldp:" in *":$found:"*) ;; *) ldp=$ldp:$found ;; esac
        else
            echo "run.sh: $lib not found in: $dirs"
        fi
    done
    # run_spec.sh runs python3 with the device's own libraries, not the
    # bundle's (libz, libssl, ...).
    export E2_GPU_PREBUILT=1 E2_GPU_SYSTEM_LDP="${LD_LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH="$ldp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # What those libraries need in turn (a wheel's cuBLASLt may want its
    # siblings): every name ldd still misses, from the same folders.
    for lib in $(for f in "$bin"/*; do ldd "$f"; done 2>/dev/null |
                 awk '$2 == "=>" && $3 == "not" {print $1}' | sort -u); do
        for d in $dirs; do
            if [ -e "$d/$lib" ]; then
                echo "run.sh: $lib (needed in turn) from $d"
                export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
                break
            fi
        done
    done
    # This machine's libstdc++ is kept aside: used only when the device's is
    # older than what the bundle was built against.
    if for f in "$bin"/*; do ldd "$f"; done 2>&1 | grep -q 'GLIBCXX\|CXXABI'; then
        echo "run.sh: the device's libstdc++ is too old: using the bundle's"
        export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$bundle/lib-fallback"
    fi
    echo "run.sh: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
else
    dir=build-gpu
    arch=${E2_CUDA_ARCH:-native}
    jobs=$(nproc 2>/dev/null || echo 4)
    mkdir -p "$dir"
    t0=$(date +%s)
    if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DE2_CUDA=ON -DE2_NATIVE=OFF \
            -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$logdir/configure.log" 2>&1; then
        tail -20 "$logdir/configure.log"
        echo "run.sh: configure failed (log: $logdir/configure.log)"
        status=1
        finish
    fi
    if ! cmake --build "$dir" --target gpu_check gpu_probe nccl_check e2worker -j "$jobs" \
            >"$logdir/build.log" 2>&1; then
        grep -E "error|Error" "$logdir/build.log" | head -30
        echo "run.sh: build failed (log: $logdir/build.log)"
        status=1
        finish
    fi
    echo "run.sh: built for sm $arch in $(( $(date +%s) - t0 )) s"
    bin=$root/$dir/bin
    mkdir -p "$bin"
    for f in tests/gpu/gpu_probe tests/gpu/gpu_check tests/gpu/nccl_check worker/cli/e2worker; do
        ln -sf "$root/$dir/$f" "$bin/"
    done
    e2worker=$bin/e2worker
fi

# Every library resolves: a missing one is named here, not as a cryptic
# failure of the first stage.
env_check='bad=0
for f in "$1"/*; do
    if ldd "$f" | grep -E "not found"; then echo "  ^ $f"; bad=1; fi
done
[ "$bad" -eq 0 ] && echo "every library of $(ls "$1" | tr "\n" " ")resolves"
nvidia-smi 2>/dev/null | head -15
exit "$bad"'
stage env 15 sh -c "$env_check" env "$bin"

stage probe 20 "$bin/gpu_probe"
groups=$("$bin/gpu_check" list 2>/dev/null)
[ -n "$groups" ] || { echo "run.sh: gpu_check list printed nothing"; status=1; }
for g in $groups; do
    if ! stage "ops-$g" 20 "$bin/gpu_check" ops "$g"; then
        # A crash (signal, or the backend's abort on a CUDA error): once
        # more with a sync after every launch, to name the kernel.
        if [ "$rc" -ge 128 ] || grep -q "e2 cuda:" "$logdir/ops-$g.log"; then
            stage "ops-$g-sync" 20 --figures env E2_CUDA_SYNC=1 "$bin/gpu_check" ops "$g"
        fi
    fi
done
stage train 60 "$bin/gpu_check" train
stage e2worker-run 90 sh tests/gpu/run_spec.sh "$e2worker"
stage nccl 30 "$bin/nccl_check"
stage bench 150 --figures "$bin/gpu_check" bench "$logdir/figures.json"
finish
