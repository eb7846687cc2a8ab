"""hf_load.py MODE HF_DIR E2_LOGITS SHARD T G WINDOW E2_SCALE1 -- run inside a venv
with one transformers version: loads e2's export HF_DIR the way a user
would and checks what transformers made of it.

Both modes: AutoConfig.from_pretrained gives model_type llama, linear RoPE
scaling with factor G, max_position_embeddings WINDOW, the source's token
ids (bos 1, eos [2, 256], pad 0), rms_norm_eps exactly 1e-05 and the
unknown field kept; every tensor of model.safetensors (read with
safetensors.numpy) has the name and shape the parsed config implies.
MODE model: AutoModelForCausalLM.from_pretrained too (no missing or
unexpected weights), and its logits on the first T tokens of SHARD match
e2's (`e2worker inspect` at the model's own factor, E2_LOGITS) to 2e-5 of
their scale, while e2's logits at scale 1 (E2_SCALE1) are at least 10x
further off (the check can tell whether the factor was applied). Prints one line of figures; AssertionError on any mismatch."""
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

if mode == "config":
    print("transformers %s: config (linear x%g, window %d, ids, eps 1e-05) and %d tensors "
          "match; no model load (no torch)" % (ver, G, W, len(got)))
    sys.exit(0)

import torch
from transformers import AutoModelForCausalLM

model, info = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32,
                                                   output_loading_info=True)
bad = {k: v for k, v in info.items() if v}
assert not bad, bad
model.eval()
raw = open(shard, "rb").read()
magic = struct.unpack("<i", raw[:4])[0]
dt = np.uint16 if magic == 20240520 else np.uint32
tokens = np.frombuffer(raw[1024:], dtype=dt)[:T].astype(np.int64)
with torch.no_grad():
    ours = model(torch.from_numpy(tokens)[None]).logits[0].numpy()
theirs = load_file(e2_path)["logits"][0]
assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
err = float(np.abs(ours - theirs).max())
scale = float(np.abs(theirs).max())
print("transformers %s (torch %s): AutoModelForCausalLM logits vs e2 on %d tokens at "
      "factor %g: max |diff| %.3g, max |logit| %.3g, ratio %.3g"
      % (ver, torch.__version__, T, G, err, scale, err / scale))
TOL = 2e-5  # of the logits' scale; both sides compute in fp32
assert err <= TOL * scale, "logits differ: %g of %g" % (err, scale)
err1 = float(np.abs(ours - load_file(e2_scale1)["logits"][0]).max())
print("  e2 at scale 1 instead: max |diff| %.3g" % err1)
assert err1 >= 10 * TOL * scale, "the factor does not change the logits enough to be checked"
