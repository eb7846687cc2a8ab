#!/usr/bin/python3
"""positive_control.py E2WORKER SCRATCH -- the passkey evaluation finds
hits once a model can retrieve: a tiny model trained briefly on a
recall task at a near-fixed distance (EOT KEY d QUERY KEY d with one filler
token before the key or after it: the answer three or four tokens after its
key; the key is the only digit in context) must score passkey exact match > 0 through
`e2worker run`'s evaluation (the same code as `e2worker eval`), with the
prompt given as token ids (the layout of examples/e2-science). Chance is
10 % (one digit); the bound asked is 50 %."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

EOT, QUERY, KEY, D0 = 0, 2, 14, 4
e2w, scratch = sys.argv[1], sys.argv[2]
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)
rng = random.Random(5)
toks = []
for _ in range(6000):
    d = [D0 + rng.randrange(10)]
    if rng.random() < 0.5:
        toks += [EOT, 1, KEY] + d + [QUERY, KEY] + d
    else:
        toks += [EOT, KEY] + d + [1, QUERY, KEY] + d
toks.append(EOT)
shard = os.path.join(scratch, "train.bin")
with open(shard, "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, len(toks), *([0] * 253)))
    f.write(struct.pack(f"<{len(toks)}H", *toks))
W = 7  # the shortest passkey prompt: one filler slot
spec = {
    "name": "positive-control",
    "model": {"config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64, "vocab_size": 16, "max_position_embeddings": W,
                         "tie_word_embeddings": True}, "init_seed": 1},
    "data": {"train_shards": [shard]},
    "augment": {"method": "none", "n_sink": 0, "train_length": W},
    "train": {"steps": 500, "global_batch": 32, "micro_batch": 32, "lr": 1e-2, "warmup_steps": 10,
              "schedule": "cosine", "seed": 1},
    "eval": {"windows": [W], "scales": [1.0], "passkey_trials": 100, "passkey_digits": 1,
             "filler_tokens": [1], "prompt_prefix_tokens": [EOT], "key_pre_tokens": [KEY],
             "prompt_suffix_tokens": [QUERY, KEY], "digit_tokens": list(range(D0, D0 + 10))},
    "output_dir": os.path.join(scratch, "run"),
    "log_every": 100,
}
path = os.path.join(scratch, "job.json")
with open(path, "w") as f:
    json.dump(spec, f)
env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
p = subprocess.run([e2w, "run", path, "--fresh"], env=env, capture_output=True, text=True)
if p.returncode != 0:
    sys.exit(f"e2worker run failed ({p.returncode}):\n{p.stderr[-3000:]}")
with open(os.path.join(scratch, "run", "eval.json")) as f:
    rows = json.load(f)["results"]
final = [r for r in rows if r["model"] == "final"][0]
print(f"passkey {final['passkey_correct']}/{final['passkey_trials']}")
if not final["passkey_correct"] * 2 > final["passkey_trials"]:
    sys.exit(f"positive control: passkey {final['passkey_correct']}/{final['passkey_trials']}: the evaluation "
             "found no retrieval in a model trained to copy at a fixed distance")
