#!/usr/bin/env python3
"""Convert a Llama-architecture GGUF file into a Hugging Face model folder.

Writes OUT/ with:
  model.safetensors      every tensor dequantized to float32, HF names
  config.json            LlamaForCausalLM config from the GGUF metadata
  tokenizer.json         the GGUF vocabulary and merges as a byte-level BPE
                         tokenizer for the Hugging Face `tokenizers` library
  tokenizer_config.json  special tokens and chat template, when known

Weights are dequantized, not restored: a Q4_1 block stores 32 weights as
4-bit integers q with a float16 scale d and minimum m, and the weight is
d*q + m; this script writes exactly those values as float32 (gguf's
dequantize computes d*q + m in float32). Q8_0 (d*q, 8-bit q) and F32/F16
tensors likewise. The model is therefore the quantized model, bit for bit
in its stored values, not the original bfloat16 checkpoint it came from.

Rotary layout. llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel)
permutes the rows of q_proj and k_proj so that its RoPE can rotate adjacent
pairs (x[2j], x[2j+1]); Hugging Face Llama rotates the halves (x[j],
x[j+D/2]) ("rotate_half"). Per head of D = head_dim rows, GGUF row 2j + s
holds HF row s*D/2 + j (s in {0, 1}, j < D/2), i.e.

    gguf = hf.reshape(n, 2, D/2, C).swapaxes(1, 2).reshape(n*D, C)

with n = num_attention_heads for q and num_key_value_heads for k. This
script applies the inverse,

    hf = gguf.reshape(n, D/2, 2, C).swapaxes(1, 2).reshape(n*D, C).

Without it every shape is right and the model's output is garbage.

Tokenizer: tokenizer.ggml.model must be "gpt2" (byte-level BPE; the tokens
are already in the GPT-2 byte-to-unicode alphabet, Ġ for a space). The
pre-tokenizer follows tokenizer.ggml.pre: "smollm" (and the StarCoder-style
ones) split every digit apart before the GPT-2 regex, as SmolLM's own
tokenizer.json does; "gpt2"/"default" use the GPT-2 regex alone. Tokens of
type CONTROL or USER_DEFINED become added (special) tokens.

Requirements: pip install gguf numpy (and `tokenizers` to check the result
with --check). Example:

    python3 tools/gguf_to_hf.py SmolLM2-135M-Instruct.Q4_1.gguf --out smollm2-hf
"""

import argparse
import json
import os
import struct
import sys
import tempfile

# GGUF token types (llama.cpp's llama_token_type).
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE = 1, 2, 3, 4, 5, 6

# Pre-tokenizers that split digits one by one before the byte-level regex.
DIGIT_SPLIT_PRE = ("smollm", "starcoder", "refact", "codeshell")
GPT2_PRE = ("gpt2", "default", "")

LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


class ConvertError(Exception):
    pass


def hf_name(gguf_name):
    if gguf_name in TOP_NAMES:
        return TOP_NAMES[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}"
    raise ConvertError(f"tensor {gguf_name}: not part of the Llama layout (rope_freqs or another architecture?)")


def unpermute_rope_rows(w, n_head):
    """Inverse of llama.cpp's q/k row permutation (module docstring)."""
    rows, cols = w.shape
    if rows % n_head or (rows // n_head) % 2:
        raise ConvertError(f"cannot unpermute {rows} rows into {n_head} heads of even size")
    d = rows // n_head
    return w.reshape(n_head, d // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def field(reader, key, default=None, required=False):
    f = reader.fields.get(key)
    if f is None:
        if required:
            raise ConvertError(f"GGUF metadata has no {key}")
        return default
    return f.contents()


def read_config(reader):
    arch = field(reader, "general.architecture", required=True)
    if arch != "llama":
        raise ConvertError(f"general.architecture is '{arch}': only llama is converted")
    p = "llama."
    C = int(field(reader, p + "embedding_length", required=True))
    H = int(field(reader, p + "attention.head_count", required=True))
    KVH = int(field(reader, p + "attention.head_count_kv", H))
    head_dim = int(field(reader, p + "attention.key_length", C // H))
    rope_dim = int(field(reader, p + "rope.dimension_count", head_dim))
    if head_dim * H != C or rope_dim != head_dim:
        raise ConvertError(f"head_dim {head_dim} x heads {H} != hidden {C} or partial rotary ({rope_dim}): "
                           "not the Llama layout")
    if field(reader, p + "rope.scaling.type") not in (None, "none"):
        raise ConvertError(f"{p}rope.scaling.type is set: only unscaled RoPE is converted")
    tokens = field(reader, "tokenizer.ggml.tokens", required=True)
    vocab = int(field(reader, p + "vocab_size", len(tokens)))
    eps = field(reader, p + "attention.layer_norm_rms_epsilon", required=True)
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": C,
        "intermediate_size": int(field(reader, p + "feed_forward_length", required=True)),
        "num_hidden_layers": int(field(reader, p + "block_count", required=True)),
        "num_attention_heads": H,
        "num_key_value_heads": KVH,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "max_position_embeddings": int(field(reader, p + "context_length", required=True)),
        # GGUF stores these as float32: write the shortest decimal that reads
        # back as the same float32 (9.999999747e-06 -> 1e-05).
        "rms_norm_eps": float(repr_f32(eps)),
        "rope_theta": float(repr_f32(field(reader, p + "rope.freq_base", 10000.0))),
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
        "use_cache": True,
    }
    for key, name in (("bos_token_id", "bos"), ("eos_token_id", "eos"), ("pad_token_id", "padding"),
                      ("unk_token_id", "unknown")):
        v = field(reader, f"tokenizer.ggml.{name}_token_id")
        if v is not None and key != "unk_token_id":
            cfg[key] = int(v)
    return cfg


def repr_f32(x):
    """Shortest decimal that reads back as the same float32."""
    import numpy as np
    return str(np.float32(x))


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_tokenizer(reader):
    model = field(reader, "tokenizer.ggml.model", required=True)
    if model != "gpt2":
        raise ConvertError(f"tokenizer.ggml.model is '{model}': only gpt2 (byte-level BPE) is converted")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    tokens = field(reader, "tokenizer.ggml.tokens", required=True)
    types = field(reader, "tokenizer.ggml.token_type") or [TT_NORMAL] * len(tokens)
    merges = field(reader, "tokenizer.ggml.merges", required=True)
    if pre in DIGIT_SPLIT_PRE:
        pre_tok = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    elif pre in GPT2_PRE:
        pre_tok = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    else:
        raise ConvertError(f"tokenizer.ggml.pre '{pre}' is not known to this converter "
                           f"(known: {', '.join(DIGIT_SPLIT_PRE + GPT2_PRE[:2])})")
    vocab = {}
    for i, t in enumerate(tokens):
        if t in vocab:
            raise ConvertError(f"token {i} '{t}' repeats token {vocab[t]}")
        vocab[t] = i
    alphabet = set(bytes_to_unicode().values())
    added = []
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty in (TT_CONTROL, TT_USER_DEFINED):
            added.append({"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": ty == TT_USER_DEFINED, "special": ty == TT_CONTROL})
        elif ty == TT_NORMAL and not set(t) <= alphabet:
            raise ConvertError(f"token {i} '{t}' is not in the byte-level alphabet")
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep or a + b not in vocab:
            raise ConvertError(f"merge '{m}' does not make a vocabulary token")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tok,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": list(merges)},
    }


def tokenizer_config(reader, cfg):
    tokens = field(reader, "tokenizer.ggml.tokens", required=True)
    out = {"tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False,
           "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
           "model_max_length": cfg["max_position_embeddings"]}
    for key, name in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("pad_token", "pad_token_id")):
        if name in cfg:
            out[key] = tokens[cfg[name]]
    tmpl = field(reader, "tokenizer.chat_template")
    if tmpl:
        out["chat_template"] = tmpl
    return out


def write_atomic(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray)):
                f.write(data)
            else:
                for chunk in data:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 C-contiguous numpy array)."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, a in tensors:
        n = a.nbytes
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)

    def chunks():
        yield struct.pack("<Q", len(hj)) + hj
        for _, a in tensors:
            yield a.astype("<f4", copy=False).tobytes()
    write_atomic(path, chunks())


def convert(gguf_path, out_dir, keep_gguf_rope_layout=False):
    import numpy as np
    from gguf import GGUFReader, GGMLQuantizationType
    from gguf.quants import dequantize
    reader = GGUFReader(gguf_path)
    cfg = read_config(reader)
    tok = build_tokenizer(reader)
    H, KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    tensors, kinds = [], {}
    for t in reader.tensors:
        name = hf_name(t.name)
        kinds[t.tensor_type.name] = kinds.get(t.tensor_type.name, 0) + 1
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # GGUF lists dims fastest first
        if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            w = np.asarray(t.data, dtype=np.float32)
        else:
            w = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        w = np.ascontiguousarray(w.reshape(shape))
        if not np.isfinite(w).all():
            raise ConvertError(f"tensor {t.name}: non-finite values after dequantization")
        if keep_gguf_rope_layout:
            pass
        elif name.endswith("q_proj.weight"):
            w = np.ascontiguousarray(unpermute_rope_rows(w, H))
        elif name.endswith("k_proj.weight"):
            w = np.ascontiguousarray(unpermute_rope_rows(w, KVH))
        tensors.append((name, w))
    names = {n for n, _ in tensors}
    cfg["tie_word_embeddings"] = "lm_head.weight" not in names
    emb = dict(tensors)["model.embed_tokens.weight"]
    if emb.shape != (cfg["vocab_size"], cfg["hidden_size"]):
        raise ConvertError(f"token_embd.weight is {emb.shape}, config says "
                           f"({cfg['vocab_size']}, {cfg['hidden_size']})")
    tensors.sort(key=lambda nt: nt[0])
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    write_atomic(os.path.join(out_dir, "config.json"), (json.dumps(cfg, indent=2) + "\n").encode())
    write_atomic(os.path.join(out_dir, "tokenizer.json"), json.dumps(tok, ensure_ascii=False).encode())
    write_atomic(os.path.join(out_dir, "tokenizer_config.json"),
                 (json.dumps(tokenizer_config(reader, cfg), indent=2, ensure_ascii=False) + "\n").encode())
    summary = {"gguf": os.path.abspath(gguf_path), "out": os.path.abspath(out_dir), "tensors": len(tensors),
               "gguf_types": kinds, "params": int(sum(w.size for _, w in tensors)),
               "tokenizer_pre": field(reader, "tokenizer.ggml.pre", "default"),
               "qk_rows": "gguf (NOT unpermuted: broken model)" if keep_gguf_rope_layout else "hf", "config": cfg}
    return summary


def check_tokenizer(out_dir):
    """Loads tokenizer.json with `tokenizers` and round-trips a sentence."""
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    text = "The pass key is 40291. Remember it: café, naïve — 12 apples."
    enc = tk.encode(text, add_special_tokens=False)
    back = tk.decode(enc.ids)
    if back != text:
        raise ConvertError(f"tokenizer does not round-trip: {text!r} -> {back!r}")
    return {"tokenizer_check": text, "ids": enc.ids}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", help="the .gguf file")
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--check", action="store_true", help="load tokenizer.json with `tokenizers` and round-trip text")
    ap.add_argument("--keep-gguf-rope-layout", action="store_true",
                    help="do NOT undo the q/k row permutation: writes a broken model, only to show the pitfall")
    args = ap.parse_args(argv)
    try:
        import gguf  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        print(f"gguf_to_hf: {e.name} is missing: pip install gguf numpy", file=sys.stderr)
        return 2
    try:
        summary = convert(args.gguf, args.out, args.keep_gguf_rope_layout)
        if args.check:
            summary.update(check_tokenizer(args.out))
    except (ConvertError, OSError, ValueError, KeyError) as e:
        print(f"gguf_to_hf: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
