#!/bin/sh
# e2d --gpu-mem refuses a cuda job whose memory plan does not fit, with the
# numbers in the error (optimizer: 12 bytes x 6 738 415 616 parameters of
# Llama-2-7B = 80.86 GB), and still accepts the same job on cpu.
# usage: e2d_gpu_mem_test.sh E2D E2CTL
set -u
e2d=$1 e2ctl=$2
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
cat >"$dir/spec.json" <<'SPEC'
{"name": "plan-check", "device": "cuda", "num_workers": 8,
 "model": {"config": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
  "intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096}},
 "data": {"train_shards": ["x.bin"]},
 "train": {"micro_batch": 1, "recompute": true}}
SPEC
# --cpu-mem 1000: the cpu copy of the job (112 GB on cpu) must pass e2d's
# cpu memory check (default: this host's memory) to show that --gpu-mem
# applies to cuda jobs only.
"$e2d" --state-dir "$dir/state" --listen "unix:$dir/e2d.sock" --gpu-mem 80 --cpu-mem 1000 >"$dir/e2d.log" 2>&1 &
pid=$!
i=0
while [ ! -S "$dir/e2d.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
fail=0
out=$("$e2ctl" --server "unix:$dir/e2d.sock" submit "$dir/spec.json" 2>&1)
rc=$?
case "$out" in
*"needs "*" GB per GPU"*"optimizer 80.86"*"has 80.00 GB"*) ;;
*) echo "FAIL: refusal without the plan's numbers: $out"; fail=1 ;;
esac
[ "$rc" -ne 0 ] || { echo "FAIL: oversized cuda job accepted"; fail=1; }
out=$("$e2ctl" --server "unix:$dir/e2d.sock" submit "$dir/spec.json" --set device=cpu 2>&1) ||
    { echo "FAIL: cpu job refused: $out"; fail=1; }
exit $fail
