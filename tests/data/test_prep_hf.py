"""Tests of tools/prep_hf.py without the tokenizers package: a stand-in
tokenizer with the same interface drives prepare(), and the C reader
(shard_cat) checks the shards it writes, for uint16 and uint32 vocabularies.

usage: test_prep_hf.py <tools/prep_hf.py> <shard_cat> <case>"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile


class Encoding:
    def __init__(self, ids):
        self.ids = ids


class WordTokenizer:
    """Ids: special tokens first, then one id per distinct word (offset so
    that ids span the vocabulary)."""

    def __init__(self, vocab, specials):
        self.vocab, self.specials, self.words = vocab, dict(specials), {}

    def get_vocab_size(self, with_added_tokens=True):
        return self.vocab

    def token_to_id(self, name):
        return self.specials.get(name)

    def encode(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        ids = []
        for w in text.split():
            if w not in self.words:
                self.words[w] = self.vocab - 1 - len(self.words)
            ids.append(self.words[w])
        return Encoding(ids)


def load_tool(path):
    spec = importlib.util.spec_from_file_location("prep_hf", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cat(shard_cat, path):
    out = subprocess.run([shard_cat, path], check=True, capture_output=True, text=True).stdout.split()
    width, n = int(out[0]), int(out[1])
    toks = [int(x) for x in out[2:]]
    assert len(toks) == n, (path, n, len(toks))
    return width, toks


def shards(shard_cat, prefix, split):
    toks, i, widths = [], 0, set()
    while os.path.exists(f"{prefix}_{split}_{i:06d}.bin"):
        w, t = cat(shard_cat, f"{prefix}_{split}_{i:06d}.bin")
        widths.add(w)
        toks += t
        i += 1
    return widths, toks, i


def run_case(tool, shard_cat, vocab, width):
    with tempfile.TemporaryDirectory() as d:
        a, b, c = (os.path.join(d, n) for n in ("a.txt", "b.txt", "c.jsonl"))
        with open(a, "w") as f:
            f.write("the cat sat on the mat")
        with open(b, "w") as f:
            f.write("a dog")
        with open(c, "w") as f:
            f.write(json.dumps({"text": "x y"}) + "\n\n" + json.dumps({"text": "z"}) + "\n")
        tok = WordTokenizer(vocab, {"<s>": 1, "</s>": 2})
        prefix = os.path.join(d, "out")
        counts = tool.prepare(tok, [a, b, c], prefix, shard_tokens=4, val_fraction=0.2)
        w = tok.words
        stream = [1] + [w[x] for x in "the cat sat on the mat".split()] + [1, w["a"], w["dog"]] + \
                 [1, w["x"], w["y"], 1, w["z"]]
        assert counts["documents"] == 4 and counts["width"] == width and counts["separator_id"] == 1
        val = int(len(stream) * 0.2)
        assert counts["train_tokens"] == len(stream) - val and counts["val_tokens"] == val, counts
        tw, train, ntrain = shards(shard_cat, prefix, "train")
        vw, valt, nval = shards(shard_cat, prefix, "val")
        assert tw == {width} and vw == {width}, (tw, vw)
        assert train + valt == stream, (train, valt, stream)
        assert ntrain == counts["train_shards"] == 3 and nval == counts["val_shards"] == 1, counts
        assert max(stream) >= vocab - 8, "ids must reach the top of the vocabulary"
        # No temp files left behind.
        assert sorted(os.listdir(d)) == sorted(["a.txt", "b.txt", "c.jsonl"] +
                                               [f"out_train_{i:06d}.bin" for i in range(3)] + ["out_val_000000.bin"])
        # --sep picks another separator; an unknown one is an error naming it.
        counts = tool.prepare(tok, [b], os.path.join(d, "s"), sep="</s>")
        assert counts["separator_id"] == 2 and cat(shard_cat, os.path.join(d, "s_train_000000.bin"))[1][0] == 2
        try:
            tool.prepare(tok, [b], os.path.join(d, "s"), sep="<eot>")
            raise AssertionError("unknown separator accepted")
        except ValueError as e:
            assert "<eot>" in str(e)


def main():
    tool, shard_cat, case = load_tool(sys.argv[1]), sys.argv[2], sys.argv[3]
    if case == "u16":
        run_case(tool, shard_cat, 32000, 2)
    elif case == "u32":
        run_case(tool, shard_cat, 128256, 4)
    elif case == "errors":
        tok = WordTokenizer(100, {"<s>": 1})
        for kwargs, want in (({"shard_tokens": 0}, "--shard-tokens"), ({"val_fraction": 1.0}, "--val-fraction")):
            try:
                tool.prepare(tok, [], "/nonexistent/x", **kwargs)
                raise AssertionError(f"accepted {kwargs}")
            except ValueError as e:
                assert want in str(e), e
    else:
        raise SystemExit(f"no case {case}")
    print("ok", case)


if __name__ == "__main__":
    main()
