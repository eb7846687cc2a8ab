#!/usr/bin/python3
"""Cross-checks e2's safetensors reader and writer against an independent
implementation of the format written here with the standard library only
(struct, json, fractions): no safetensors/torch needed.

  A. e2 writes a sharded checkpoint; this script parses it from the bytes
     up (index.json, header lengths, offsets, alignment, __metadata__) and
     checks every value: F32 bit-exact, BF16 equal to round-to-nearest-even
     computed with exact rational arithmetic.
  B. This script writes checkpoints (F32, BF16, F16 via struct's IEEE half
     format; shuffled key order; single file and sharded) and checks that
     e2 reads back the exact values.

usage: st_crosscheck.py <st_tool> <work dir>
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from fractions import Fraction


def f32_of_bits(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


def bits_of_f32(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bf16_rne(u):
    """Nearest bf16 (as 16 bits) to the finite fp32 with bits u, ties to
    even, by exact comparison of the two candidates' distances."""
    if (u & 0x7F800000) == 0x7F800000:
        return u >> 16  # infinity stays infinity (NaN is not generated)
    lo = u & 0xFFFF0000
    hi = lo + 0x10000
    x = abs(Fraction(f32_of_bits(u)))
    flo = abs(Fraction(f32_of_bits(lo)))
    if (hi & 0x7FFFFFFF) == 0x7F800000:
        fhi = Fraction(2) ** 128  # the step past the largest finite value
    else:
        fhi = abs(Fraction(f32_of_bits(hi)))
    a, b = x - flo, fhi - x
    if a < b or (a == b and (lo >> 16) % 2 == 0):
        return lo >> 16
    return hi >> 16


def fail(msg):
    print("st_crosscheck: " + msg, file=sys.stderr)
    sys.exit(1)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def parse_safetensors(path):
    """Returns {name: (dtype, shape, raw bytes)} after checking layout."""
    b = read_file(path)
    (n,) = struct.unpack("<Q", b[:8])
    if (8 + n) % 8 != 0:
        fail("%s: data section starts at %d, not 8-aligned" % (path, 8 + n))
    hdr = json.loads(b[8:8 + n].decode("utf-8"))
    meta = hdr.pop("__metadata__", None)
    if meta != {"format": "pt"}:
        fail("%s: __metadata__ is %r, transformers needs format pt" % (path, meta))
    data = b[8 + n:]
    sizes = {"F32": 4, "BF16": 2, "F16": 2}
    spans = []
    out = {}
    for name, t in hdr.items():
        if set(t) != {"dtype", "shape", "data_offsets"}:
            fail("%s: %s has keys %s" % (path, name, sorted(t)))
        beg, end = t["data_offsets"]
        numel = 1
        for d in t["shape"]:
            numel *= d
        if end - beg != numel * sizes[t["dtype"]]:
            fail("%s: %s size mismatch" % (path, name))
        if beg % sizes[t["dtype"]] != 0:
            fail("%s: %s misaligned at %d" % (path, name, beg))
        spans.append((beg, end))
        out[name] = (t["dtype"], t["shape"], data[beg:end])
    spans.sort()
    at = 0
    for beg, end in spans:
        if beg != at:
            fail("%s: offsets not contiguous at %d" % (path, beg))
        at = end
    if at != len(data):
        fail("%s: %d bytes of data, tensors cover %d" % (path, len(data), at))
    return out


def decode(dtype, raw):
    """fp32 bit patterns of the values, as e2 should return them."""
    if dtype == "F32":
        return list(struct.unpack("<%dI" % (len(raw) // 4), raw))
    halves = struct.unpack("<%dH" % (len(raw) // 2), raw)
    if dtype == "BF16":
        return [h << 16 for h in halves]
    return [bits_of_f32(struct.unpack("<e", struct.pack("<H", h))[0])
            for h in halves]


def random_bits(rng, n):
    special = [0x3F808000, 0x3F818000, 0x7F7FFFFF, 0x7F800000, 0x80000000,
               0x00000001, 0x00008000, 0x807F8000, 0x3F80FFFF]
    out = []
    for i in range(n):
        if i < len(special) and rng.random() < 0.5:
            out.append(special[i])
            continue
        x = rng.uniform(-1, 1) * 2.0 ** rng.randint(-30, 30)
        out.append(bits_of_f32(x))
    return out


def part_a(tool, work, rng):
    tensors = []
    for i in range(12):
        shape = [rng.randint(1, 5), rng.randint(1, 7)] if i % 4 else [rng.randint(1, 9)]
        numel = 1
        for d in shape:
            numel *= d
        tensors.append({"name": "model.layers.%d.w" % (11 - i),
                        "dtype": "BF16" if i % 3 == 0 else "F32",
                        "shape": shape, "bits": random_bits(rng, numel)})
    spec = os.path.join(work, "spec.json")
    with open(spec, "w") as f:
        json.dump({"tensors": tensors}, f)
    out = os.path.join(work, "a")
    subprocess.run([tool, "write", spec, out, "120"], check=True)
    index = json.loads(read_file(os.path.join(out, "model.safetensors.index.json")))
    wm = index["weight_map"]
    if list(wm) != sorted(wm):
        fail("weight_map is not sorted")
    shards = sorted(set(wm.values()))
    if len(shards) < 2:
        fail("expected several shards, got %s" % shards)
    for k, s in enumerate(shards):
        if s != "model-%05d-of-%05d.safetensors" % (k + 1, len(shards)):
            fail("shard name %s" % s)
    found = {}
    for s in shards:
        for name, v in parse_safetensors(os.path.join(out, s)).items():
            if wm.get(name) != s:
                fail("%s is in %s, weight_map says %s" % (name, s, wm.get(name)))
            found[name] = v
    total = sum(len(v[2]) for v in found.values())
    if index["metadata"]["total_size"] != total:
        fail("total_size %s != %d" % (index["metadata"]["total_size"], total))
    for t in tensors:
        dtype, shape, raw = found[t["name"]]
        if dtype != t["dtype"] or shape != t["shape"]:
            fail("%s: %s %s" % (t["name"], dtype, shape))
        if dtype == "F32":
            want = t["bits"]
        else:
            want = [bf16_rne(u) << 16 for u in t["bits"]]
        if decode(dtype, raw) != want:
            fail("%s: values differ from the reference rounding" % t["name"])


def write_safetensors(path, tensors, rng):
    """tensors: list of (name, dtype, shape, raw bytes); data in shuffled
    order, header keys in another shuffled order."""
    order = list(tensors)
    rng.shuffle(order)
    hdr, data = {}, b""
    for name, dtype, shape, raw in order:
        hdr[name] = {"dtype": dtype, "shape": shape,
                     "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    keys = list(hdr) + ["__metadata__"]
    rng.shuffle(keys)
    hdr["__metadata__"] = {"format": "pt", "note": "written by st_crosscheck"}
    text = json.dumps({k: hdr[k] for k in keys}).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def part_b(tool, work, rng):
    tensors = []
    for i in range(9):
        dtype = ["F32", "BF16", "F16"][i % 3]
        shape = [rng.randint(1, 4), rng.randint(1, 6)]
        n = shape[0] * shape[1]
        if dtype == "F32":
            raw = struct.pack("<%dI" % n, *random_bits(rng, n))
        elif dtype == "F16":
            vals = [rng.uniform(-1, 1) * 2.0 ** rng.randint(-26, 15) for _ in range(n)]
            raw = struct.pack("<%de" % n, *vals)
        else:
            hs = []
            while len(hs) < n:
                h = rng.randrange(65536)
                if (h & 0x7F80) != 0x7F80:
                    hs.append(h)
            raw = struct.pack("<%dH" % n, *hs)
        tensors.append(("t%d.%s" % (i, dtype.lower()), dtype, shape, raw))
    single = os.path.join(work, "b1")
    os.makedirs(single)
    write_safetensors(os.path.join(single, "model.safetensors"), tensors, rng)
    sharded = os.path.join(work, "b2")
    os.makedirs(sharded)
    wm = {}
    for k in range(3):
        name = "model-%05d-of-00003.safetensors" % (k + 1)
        part = tensors[k::3]
        write_safetensors(os.path.join(sharded, name), part, rng)
        for t in part:
            wm[t[0]] = name
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(len(t[3]) for t in tensors)},
                   "weight_map": wm}, f)
    for d in (single, sharded):
        got = json.loads(subprocess.run([tool, "dump", d], check=True,
                                        capture_output=True).stdout)
        if sorted(got) != sorted(t[0] for t in tensors):
            fail("%s: tensors %s" % (d, sorted(got)))
        for name, dtype, shape, raw in tensors:
            g = got[name]
            if g["dtype"] != dtype or g["shape"] != shape:
                fail("%s: %s is %s %s" % (d, name, g["dtype"], g["shape"]))
            if g["bits"] != decode(dtype, raw):
                fail("%s: %s values differ" % (d, name))


def main():
    if len(sys.argv) != 3:
        fail("usage: st_crosscheck.py <st_tool> <work dir>")
    tool, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = random.Random(20240117)
    part_a(tool, work, rng)
    part_b(tool, work, rng)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
