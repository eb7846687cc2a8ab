#!/usr/bin/python3
"""corpus.py -- the science experiment's token-level synthetic corpus, a
pure function of its seed (no downloads).

Vocabulary (V = 256):
  0 EOT (document start), 1 SEP (end of a phrase), 2 QUERY (the passkey
  question), 3 ASK (a key-value query), 4..13 the ten key symbols
  ("digits"), 14 KEY (the passkey marker), 16..255 240 words.

Documents:
* text: a "language" with local and long-range structure. A global
  grammar gives each word 6 possible successors; a document owns P phrases
  (2-6 words, walks of the grammar) and writes phrases drawn Zipf-like
  from them, separated by SEP. A phrase seen earlier in the document can be
  copied from context, so the more context a model reads, the lower its
  perplexity, up to thousands of tokens (most of a document's phrases
  recur only after hundreds of tokens).
* passkey: the layout of `e2worker eval`'s passkey prompt with token ids
  (eval.prompt_prefix_tokens = [EOT], eval.filler_tokens = FILLER,
  eval.key_pre_tokens = [KEY], eval.prompt_suffix_tokens = [QUERY, KEY],
  eval.digit_tokens = 4..13): EOT, the filler sentence repeated, KEY, K key
  digits, filler, and QUERY KEY + the K digits again at several random
  depths after the key. The key is found by content at any depth. (A
  design with text filler and one question per document stayed at chance
  after 3000 steps; a repeated filler and several questions per document
  learn retrieval at L in about as many steps: docs/results.md.)
* copy: a random span of words repeated (trains induction heads fast).
* kv: multi-query associative recall: EOT, n (word key, digit value)
  pairs, then queries ASK key value for a shuffled subset of the keys; each
  query's value is found by content (many supervised answers per document).
"""
import bisect
import functools
import itertools
import random
import struct
import os

EOT, SEP, QUERY, ASK, KEY = 0, 1, 2, 3, 14
DIGIT0, N_DIGITS = 4, 10
WORD0, N_WORDS = 16, 240
VOCAB = 256
N_SUCC = 6


class Grammar:
    """The global grammar: word -> N_SUCC successors (shared by all documents)."""

    def __init__(self, seed=12345):
        rng = random.Random(seed)
        self.succ = [[rng.randrange(N_WORDS) for _ in range(N_SUCC)] for _ in range(N_WORDS)]
        # Zipf-like unigram over phrase starts.
        self.start_cum = list(itertools.accumulate(1.0 / (1 + i) for i in range(N_WORDS)))

    def phrase(self, rng):
        n = rng.randint(2, 6)
        w = bisect.bisect(self.start_cum, rng.random() * self.start_cum[-1])
        out = [w]
        for _ in range(n - 1):
            w = self.succ[w][rng.randrange(N_SUCC)]
            out.append(w)
        return [WORD0 + x for x in out]


GRAMMAR = Grammar()


@functools.lru_cache(maxsize=None)
def _zipf_cum(n, zipf):
    return list(itertools.accumulate(1.0 / (1 + i) ** zipf for i in range(n)))


def text_tokens(rng, n, n_phrases=256, zipf=1.0):
    """n tokens of one text document (no EOT)."""
    phrases = {}  # made when first drawn
    cum = _zipf_cum(n_phrases, zipf)
    out = []
    while len(out) < n:
        i = bisect.bisect(cum, rng.random() * cum[-1])
        if i not in phrases:
            phrases[i] = GRAMMAR.phrase(rng)
        out.extend(phrases[i])
        out.append(SEP)
    return out[:n]


# The passkey filler: one sentence (two phrases of the grammar) repeated,
# as in the classic passkey test; the evaluation's filler is the same
# sentence (science.build_data), so training and evaluation prompts share
# their layout. A repeated filler is predictable, so what the model must
# learn at the answer is retrieval by content: find KEY and copy its digits.
FILLER = GRAMMAR.phrase(random.Random(3)) + [SEP] + GRAMMAR.phrase(random.Random(4)) + [SEP]


def _fill(n):
    return [FILLER[i % len(FILLER)] for i in range(n)]


def passkey_doc(rng, L, K, n_queries=4):
    """EOT, filler, KEY, K digits, filler with n_queries questions (QUERY
    KEY, the K digits) at random depths after the key; the filler after
    the key restarts at the filler's start, as e2worker eval's prompt does.
    Several questions per document give several supervised answers."""
    key = [DIGIT0 + rng.randrange(N_DIGITS) for _ in range(K)]
    n_fill = L - 1 - (1 + K) - n_queries * (2 + K)
    cut = sorted(rng.sample(range(n_fill + 1), n_queries + 1))
    before = cut[0]
    after = _fill(n_fill - before)
    doc = [EOT] + _fill(before) + [KEY] + key
    prev = 0
    for c in cut[1:]:
        doc += after[prev:c - before] + [QUERY, KEY] + key
        prev = c - before
    doc += after[prev:]
    assert len(doc) == L
    return doc


def kv_doc(rng, L):
    """EOT, pairs (key word, value digit), then ASK key value queries."""
    n_pairs = (L - 1) // 5  # 2 tokens a pair, 3 a query; queries <= pairs
    keys = rng.sample(range(WORD0, WORD0 + N_WORDS), n_pairs)
    vals = [DIGIT0 + rng.randrange(N_DIGITS) for _ in keys]
    doc = [EOT]
    for k, v in zip(keys, vals):
        doc += [k, v]
    order = list(range(n_pairs))
    rng.shuffle(order)
    for i in order:
        if len(doc) + 3 > L:
            break
        doc += [ASK, keys[i], vals[i]]
    doc += [SEP] * (L - len(doc))
    return doc


def copy_doc(rng, L):
    """EOT, a random span of words, then the span again and again (an
    induction-head task: every repeat is predictable from context)."""
    span = [WORD0 + rng.randrange(N_WORDS) for _ in range(rng.randint(4, L // 3))]
    doc = [EOT]
    while len(doc) < L:
        doc += span + [SEP]
    return doc[:L]


def train_tokens(seed, L, n_slots, mix=(0.3, 0.3, 0.2, 0.2), K=2, text_slots=(1, 8), n_queries=4,
                 n_phrases=256, zipf=1.0):
    """n_slots slots of L tokens, then EOT. A slot holds a passkey, kv or
    copy document, or is a piece of a text document of text_slots[0] to
    text_slots[1] slots (so that training windows also start in the middle
    of a text, as held-out windows do); proportions mix (text, passkey, kv,
    copy) of slots."""
    rng = random.Random(seed)
    out = []
    n = 0
    while n < n_slots:
        u = rng.random()
        if u < mix[0]:
            k = min(rng.randint(*text_slots), n_slots - n)
            out += [EOT] + text_tokens(rng, k * L - 1, n_phrases, zipf)
            n += k
            continue
        if u < mix[0] + mix[1]:
            out += passkey_doc(rng, L, K, n_queries)
        elif u < mix[0] + mix[1] + mix[2]:
            out += kv_doc(rng, L)
        else:
            out += copy_doc(rng, L)
        n += 1
    out.append(EOT)
    return out


def heldout_text(seed, n_docs, doc_len, n_phrases=256, zipf=1.0):
    """Held-out text documents of doc_len tokens each (EOT-led)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_docs):
        out += [EOT] + text_tokens(rng, doc_len - 1, n_phrases, zipf)
    return out


def write_shard(path, tokens):
    """llm.c token shard: 256 x int32 header (magic 20240520, version 1,
    count), then uint16 tokens."""
    header = [0] * 256
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack(f"<{len(tokens)}H", *tokens))
    os.replace(path + ".tmp", path)
