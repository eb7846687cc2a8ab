#!/bin/sh
# overlap.sh -- where the step time of a 2-worker CPU job goes: a real e2d
# with --local-workers 2 (Gloo on loopback) trains the tiny model of the
# dist tests, and rank 0's log gives per step the wall time, the time the
# reducer's thread spent in gradient all-reduces (beside the backward,
# waiting for the slower rank included) and the part of it the step waited
# for before the optimizer (exposed). Prints the configuration and the
# medians: the rest of the all-reduce time was hidden by the backward.
# Nothing is asserted.
#
# Usage: [ZERO1=true] overlap.sh E2D E2WORKER E2CTL [STEPS (default 40)]
#        [HIDDEN LAYERS]
# (default: the tiny model, hidden 64 and 2 layers; the FFN is twice the
# hidden size, 4 heads, 2 key/value heads). ZERO1=true trains with
# train.zero1 and also prints the parameter all-gather's time and each
# rank's optimizer bytes.
set -eu
E2D=$1
E2W=$2
E2CTL=$3
STEPS=${4:-40}
HIDDEN=${5:-64}
LAYERS=${6:-2}
ZERO1=${ZERO1:-false}
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2-bench-overlap-XXXXXX")
SOCK=unix:$TMP/e2d.sock
E2D_PID=
cleanup() {
    [ -n "$E2D_PID" ] && kill -TERM "$E2D_PID" 2>/dev/null && wait "$E2D_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
cd "$TMP"

i=0
while [ $i -lt 400 ]; do
    echo "The quick brown fox number $i jumps over the lazy dog. A journey of a thousand miles begins with one step."
    i=$((i + 1))
done >text.txt
"$E2W" prep --out data --val-fraction 0.1 text.txt >/dev/null
cat >spec.json <<EOF
{"name": "overlap-tiny", "num_workers": 2,
 "model": {"config": {"hidden_size": $HIDDEN, "num_hidden_layers": $LAYERS, "num_attention_heads": 4,
   "num_key_value_heads": 2, "intermediate_size": $((2 * HIDDEN)), "vocab_size": 257,
   "max_position_embeddings": 64}},
 "data": {"train_shards": ["$TMP/data_train_*.bin"], "eval_shards": ["$TMP/data_val_*.bin"]},
 "augment": {"train_length": 64, "g_max": 4, "n_sink": 2},
 "train": {"steps": $STEPS, "global_batch": 8, "micro_batch": 2, "lr": 0.003, "zero1": $ZERO1},
 "eval": {"windows": [64], "max_tokens": 64}}
EOF
"$E2D" --state-dir "$TMP/state" --listen "$SOCK" --local-workers 2 --worker-bin "$E2W" \
    >e2d.log 2>&1 &
E2D_PID=$!
n=0
while [ ! -S "$TMP/e2d.sock" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
"$E2CTL" --server "$SOCK" submit spec.json --wait >/dev/null
echo "config: Llama hidden $HIDDEN, $LAYERS layers, ffn $((2 * HIDDEN)), vocab 257, R = 64 tokens,"
echo "        global batch 8 = 2 workers x 2 micro-batches of 2, $STEPS steps,"
echo "        Gloo on loopback, $(nproc) CPUs, OMP_NUM_THREADS ${OMP_NUM_THREADS:-set by e2d (cores / 2)}, zero1 $ZERO1"
$PY - "$TMP/state/jobs/j-000001/attempt-1/rank-0.log" <<'EOF'
import re, statistics, sys
steps, comm, exposed, gather, optim = [], [], [], [], None
for l in open(sys.argv[1]):
    g = re.search(r"allgather ([\d.]+) ms", l)
    o = re.search(r"optimizer (\d+)", l)
    if o and optim is None:
        optim = int(o.group(1))
    m = re.search(r"tok/s \| ([\d.]+) ms, allreduce ([\d.]+) ms, exposed ([\d.]+) ms", l)
    s = re.match(r"step (\d+)/", l)
    if m and s and int(s.group(1)) > 2:  # the first steps warm up
        steps.append(float(m.group(1)))
        comm.append(float(m.group(2)))
        exposed.append(float(m.group(3)))
        if g:
            gather.append(float(g.group(1)))
step, ar, ex = (statistics.median(v) for v in (steps, comm, exposed))
hidden = [c - e for c, e in zip(comm, exposed)]
print("steps measured:            %d (median over steps 3..)" % len(steps))
print("step time:                 %.2f ms" % step)
print("gradient all-reduce:       %.2f ms (reducer thread, incl. waiting for the slower rank)" % ar)
print("exposed (step waited):     %.2f ms = %.1f %% of the step" % (ex, 100 * ex / step))
print("hidden by the backward:    %.2f ms = %.1f %% of the all-reduce, %.1f %% of the step"
      % (statistics.median(hidden), 100 * statistics.median(hidden) / ar if ar else 0,
         100 * statistics.median(hidden) / step))
if gather:
    print("parameter all-gather:      %.2f ms (ZeRO-1)" % statistics.median(gather))
if optim is not None:
    print("optimizer state, rank 0:   %d bytes" % optim)
EOF
