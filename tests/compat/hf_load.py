"""hf_load.py MODE HF_DIR E2_LOGITS SHARD T G WINDOW E2_SCALE1 -- run inside a venv
with one transformers version: loads e2's export HF_DIR the way a user
would and checks what transformers made of it.

Both modes: AutoConfig.from_pretrained gives model_type llama, linear RoPE
scaling with factor G, max_position_embeddings WINDOW, the source's token
ids (bos 1, eos [2, 256], pad 0), rms_norm_eps exactly 1e-05 and the
unknown field kept; every tensor of model.safetensors (read with
safetensors.numpy) has the name and shape the parsed config implies.
Then logits on the first T tokens of SHARD must match e2's (`e2worker
inspect` at the model's own factor, E2_LOGITS) to 2e-5 of their scale,
while e2's logits at scale 1 (E2_SCALE1) are at least 10x further off (the
check can tell whether the factor was applied). MODE model: the logits of
AutoModelForCausalLM.from_pretrained (no missing or unexpected weights).
MODE config (no torch): a float64 numpy Llama forward driven by the RoPE
factor, theta and eps that transformers parsed. Prints one line of figures; AssertionError on any mismatch."""
import json
import struct
import sys

import numpy as np
import transformers
from safetensors.numpy import load_file
from transformers import AutoConfig

mode, hf_dir, e2_path, shard, T, G, W, e2_scale1 = sys.argv[1:9]
T, G, W = int(T), float(G), int(W)
ver = transformers.__version__

cfg = AutoConfig.from_pretrained(hf_dir)
assert cfg.model_type == "llama", cfg.model_type
# transformers 5 keeps RoPE settings in rope_parameters, 4.x in rope_scaling.
rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
assert rope is not None, "no RoPE scaling parsed"
kind = rope.get("rope_type", rope.get("type"))
assert kind == "linear" and float(rope["factor"]) == G, rope
assert cfg.max_position_embeddings == W, cfg.max_position_embeddings
assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (1, [2, 256], 0), (
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id)
assert cfg.rms_norm_eps == 1e-05, repr(cfg.rms_norm_eps)
assert getattr(cfg, "my_unknown_field", None) == {"kept": [1, 2.5]}
theta = rope.get("rope_theta", getattr(cfg, "rope_theta", None))
assert theta == 10000.0, theta

C, H, L = cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers
KV, F, V = cfg.num_key_value_heads, cfg.intermediate_size, cfg.vocab_size
D = getattr(cfg, "head_dim", None) or C // H
want = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
for i in range(L):
    p = "model.layers.%d." % i
    want.update({p + "self_attn.q_proj.weight": (H * D, C),
                 p + "self_attn.k_proj.weight": (KV * D, C),
                 p + "self_attn.v_proj.weight": (KV * D, C),
                 p + "self_attn.o_proj.weight": (C, H * D),
                 p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                 p + "mlp.down_proj.weight": (C, F),
                 p + "input_layernorm.weight": (C,),
                 p + "post_attention_layernorm.weight": (C,)})
if not cfg.tie_word_embeddings:
    want["lm_head.weight"] = (V, C)
weights = load_file(hf_dir + "/model.safetensors")
got = {k: tuple(v.shape) for k, v in weights.items()}
assert got == want, (sorted(set(got) ^ set(want)), [k for k in want if got.get(k) != want[k]])
assert all(np.isfinite(v).all() for v in weights.values())

raw = open(shard, "rb").read()
magic = struct.unpack("<i", raw[:4])[0]
dt = np.uint16 if magic == 20240520 else np.uint32
tokens = np.frombuffer(raw[1024:], dtype=dt)[:T].astype(np.int64)
theirs = load_file(e2_path)["logits"][0]
theirs1 = load_file(e2_scale1)["logits"][0]
TOL = 2e-5  # of the logits' scale; both sides compute in fp32 or better


def compare(ours, what):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    err = float(np.abs(ours - theirs).max())
    scale = float(np.abs(theirs).max())
    err1 = float(np.abs(ours - theirs1).max())
    print("transformers %s: %s vs e2 on %d tokens at factor %g: max |diff| %.3g, "
          "max |logit| %.3g, ratio %.3g (e2 at scale 1 instead: %.3g)"
          % (ver, what, T, G, err, scale, err / scale, err1))
    assert err <= TOL * scale, "logits differ: %g of %g" % (err, scale)
    assert err1 >= 10 * TOL * scale, "the factor does not change the logits enough to be checked"


def numpy_llama(w, factor, theta, eps):
    """A float64 Llama forward from the weights and the RoPE settings as
    transformers parsed them (linear: positions divided by the factor)."""
    x = w["model.embed_tokens.weight"][tokens].astype(np.float64)
    n = len(tokens)
    inv = 1.0 / theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
    ang = np.outer(np.arange(n) / factor, inv)
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rope(q):
        return q * cos + np.concatenate([-q[..., D // 2:], q[..., :D // 2]], -1) * sin

    def rms(v, wt):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * wt

    def lin(v, name):
        return v @ w[name].astype(np.float64).T

    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(L):
        p = "model.layers.%d." % i
        h = rms(x, w[p + "input_layernorm.weight"])
        q = rope(lin(h, p + "self_attn.q_proj.weight").reshape(n, H, D).transpose(1, 0, 2))
        k = rope(lin(h, p + "self_attn.k_proj.weight").reshape(n, KV, D).transpose(1, 0, 2))
        v = lin(h, p + "self_attn.v_proj.weight").reshape(n, KV, D).transpose(1, 0, 2)
        k, v = np.repeat(k, H // KV, axis=0), np.repeat(v, H // KV, axis=0)
        a = q @ k.transpose(0, 2, 1) / np.sqrt(D) + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = x + lin((a @ v).transpose(1, 0, 2).reshape(n, H * D), p + "self_attn.o_proj.weight")
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        gate = lin(h, p + "mlp.gate_proj.weight")
        x = x + lin(gate / (1 + np.exp(-gate)) * lin(h, p + "mlp.up_proj.weight"),
                    p + "mlp.down_proj.weight")
    x = rms(x, w["model.norm.weight"])
    head = "model.embed_tokens.weight" if cfg.tie_word_embeddings else "lm_head.weight"
    return lin(x, head)


if mode == "config":
    # No torch: the forward pass is numpy's, the config transformers' reading.
    compare(numpy_llama(weights, float(rope["factor"]), float(theta), cfg.rms_norm_eps),
            "config + numpy forward on its RoPE settings (%d tensors)" % len(got))
    sys.exit(0)

import torch
from transformers import AutoModelForCausalLM

model, info = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32,
                                                   output_loading_info=True)
bad = {k: v for k, v in info.items() if v}
assert not bad, bad
model.eval()
with torch.no_grad():
    ours = model(torch.from_numpy(tokens)[None]).logits[0].numpy()
compare(ours, "AutoModelForCausalLM (torch %s) logits" % torch.__version__)
