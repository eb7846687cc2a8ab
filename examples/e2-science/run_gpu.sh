#!/bin/sh
# run_gpu.sh -- the science experiment at a size a CPU session cannot
# afford, on one CUDA GPU (bf16 backend): a wider, longer-trained base
# (L = 128, 4 layers, d = 256, 12000 pretraining steps), 5 fine-tune seeds
# and the ablations. Needs e2worker built with CUDA (E2_CUDA=ON) in
# BUILD_DIR (default ./build-gpu). Jobs run one at a time (one GPU).
#   examples/e2-science/run_gpu.sh [--out DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build-gpu}
if [ -z "${E2WORKER:-}" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DE2_CUDA=ON >/dev/null
    cmake --build "$build" --target e2worker -j"$(nproc)" >/dev/null
    E2WORKER=$build/worker/cli/e2worker
fi
exec /usr/bin/python3 "$here/driver.py" --e2worker "$E2WORKER" --device cuda --jobs 1 --ablations \
    --set L=128 --set hidden=256 --set layers=4 --set heads=8 --set inter=768 \
    --set pre_steps=12000 --set pre_docs=240000 --set ft_docs=16000 --set batch=32 \
    --set ft_steps=400 --set ft_seeds=5 --set pk_trials=400 --set ppl_tokens=131072 "$@"
