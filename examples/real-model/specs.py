#!/usr/bin/env python3
"""Writes the e2 job specs of examples/real-model/run.sh.

usage: specs.py TOKENIZER.json HF_DIR WORK_DIR

WORK_DIR/eval.json     held-out perplexity at 0.25x, 0.5x and 1x of the
                       evaluation window (g = 1: the model's own positions)
                       and passkey retrieval at the passkey window
WORK_DIR/tune.json     a short E² fine-tune of HF_DIR on the tuning shards,
                       evaluated at 1x after training
WORK_DIR/eval1.json    perplexity at 1x only (checkpoint vs export)

Passkey prompt (token ids in the spec, from the model's own tokenizer; the
chat format of an instruct model):

  <|im_start|>user\\n{INSTRUCTION}{filler ...} The pass key is 12345.
  Remember it.{... filler}\\nWhat is the pass key?<|im_end|>\\n
  <|im_start|>assistant\\nThe pass key is

INSTRUCTION and the filler are those of e2's byte-level prompt (and of the
passkey tests of the long-context literature): real English words,
"The grass is green. The sky is blue. ...". The key goes at a uniform
depth of the filler (e2w_eval_passkey); the model must produce its digits
greedily, one token each (SmolLM's tokenizer splits numbers into digits).
"""
import json
import os
import sys

WINDOW = int(os.environ.get("WINDOW", "1024"))            # 1x evaluation window
PPL_TOKENS = int(os.environ.get("PPL_TOKENS", "2048"))    # held-out tokens scored per window
PK_WINDOW = int(os.environ.get("PK_WINDOW", "512"))
PK_TRIALS = int(os.environ.get("PK_TRIALS", "8"))
PK_DIGITS = int(os.environ.get("PK_DIGITS", "5"))
TUNE_STEPS = int(os.environ.get("TUNE_STEPS", "6"))
TUNE_LEN = int(os.environ.get("TUNE_LEN", "256"))

INSTRUCTION = ("There is an important piece of information hidden inside a lot of irrelevant text. "
               "Find it and memorize it. I will quiz you about it.\n")
FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
KEY_PRE = " The pass key is "
KEY_POST = ". Remember it."
SUFFIX = "\nWhat is the pass key?<|im_end|>\n<|im_start|>assistant\nThe pass key is "


def passkey_tokens(tok):
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids
    digits = [tok.token_to_id(str(d)) for d in range(10)]
    if None in digits:
        raise SystemExit("specs.py: the tokenizer has no single-digit tokens")
    # The pieces must tokenize as the whole prompt does (no merge across a
    # boundary), so the model sees the text it would see from the tokenizer.
    whole = enc(FILLER + KEY_PRE + "31415" + KEY_POST + FILLER)
    parts = enc(FILLER) + enc(KEY_PRE) + [digits[int(c)] for c in "31415"] + enc(KEY_POST) + enc(FILLER)
    if whole != parts:
        raise SystemExit("specs.py: the passkey pieces do not tokenize as the whole prompt")
    return {"filler_tokens": enc(FILLER), "prompt_prefix_tokens": enc("<|im_start|>user\n" + INSTRUCTION),
            "prompt_suffix_tokens": enc(SUFFIX), "key_pre_tokens": enc(KEY_PRE),
            "key_post_tokens": enc(KEY_POST), "digit_tokens": digits}


def main():
    from tokenizers import Tokenizer
    tok_path, hf_dir, work = sys.argv[1:4]
    tok = Tokenizer.from_file(tok_path)
    data = {"train_shards": [os.path.join(work, "data", "tune_train_*.bin")],
            "eval_shards": [os.path.join(work, "data", "heldout_train_*.bin")]}
    windows = [WINDOW // 4, WINDOW // 2, WINDOW]
    ev = {"windows": windows, "scales": [1.0] * 3, "max_tokens": PPL_TOKENS}
    pk = dict(passkey_tokens(tok), windows=[PK_WINDOW], scales=[1.0], max_tokens=PPL_TOKENS,
              passkey_trials=PK_TRIALS, passkey_digits=PK_DIGITS, passkey_depth_buckets=min(4, PK_TRIALS), seed=7)
    base = {"model": {"hf_dir": hf_dir}, "data": data}
    specs = {
        "eval": dict(base, name="smollm2-eval", eval=ev, output_dir=os.path.join(work, "eval")),
        # No eval shards: passkey only.
        "passkey": dict(base, name="smollm2-passkey", data={"train_shards": data["train_shards"]}, eval=pk,
                        output_dir=os.path.join(work, "passkey")),
        "eval1": dict(base, name="smollm2-eval1", eval={"windows": [WINDOW], "scales": [1.0], "max_tokens": PPL_TOKENS},
                      output_dir=os.path.join(work, "eval1")),
        "tune": dict(base, name="smollm2-e2-tune",
                     augment={"method": "e2", "g_max": 4, "n_sink": 4, "train_length": TUNE_LEN},
                     train={"steps": TUNE_STEPS, "global_batch": 2, "micro_batch": 1, "lr": 2e-5,
                            "warmup_steps": 1, "schedule": "constant", "seed": 1},
                     checkpoint={"every": 0, "keep_last": 1},
                     eval={"windows": [WINDOW], "scales": [1.0], "max_tokens": PPL_TOKENS},
                     output_dir=os.path.join(work, "tune"), log_every=1),
    }
    for name, spec in specs.items():
        with open(os.path.join(work, name + ".json"), "w") as f:
            json.dump(spec, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
