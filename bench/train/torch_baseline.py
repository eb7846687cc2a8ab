#!/usr/bin/env python3
"""torch_baseline.py -- PyTorch on the bench_train config, for comparison.

The same model, batch and step as bench/train/bench_train.c, in fp32 on the
CPU with the same thread count:
  hidden 512, 8 layers, 8 heads, 4 kv heads (GQA), ffn 1408, vocab 32000,
  untied head; fused qkv and gate|up projections (one Linear each), RMSNorm,
  RoPE (rotate_half pairing) at E2 positions (per-sequence scale g and
  offset t, 4 sink tokens), causal attention (scaled_dot_product_attention
  when this torch has it, else the explicit softmax(QK^T)V), SwiGLU, a
  cross-entropy over the vocabulary, AdamW (lr 1e-5, betas 0.9/0.95,
  eps 1e-8, no weight decay) after clipping the global gradient norm to 1.
One step = zero grads, forward, backward, clip, AdamW on micro_batch
sequences of R = 512 random tokens. Median of `steps` timed steps after one
warm-up (compile mode: after three).

usage: torch_baseline.py [--steps 3] [--micro-batch 4] [--threads N]
                         [--mode eager|compile]
--threads defaults to OMP_NUM_THREADS (else torch's choice). Prints one line
    torch <mode>: <tokens/s> tokens/s (step <s> s, median of <n>) ...
or, when the mode cannot run here,
    torch <mode>: unavailable (<reason>)
and exits 0 (compare.sh reads these lines). Asserts nothing.
"""
import argparse
import math
import os
import re
import statistics
import sys
import time


def openblas_coretype():
    """The OPENBLAS_CORETYPE that bench_train would run with (see
    kernels/cpu/blas.h: OpenBLAS falls back to SSE3 kernels on CPU models it
    does not know). Set before torch loads its BLAS, so both sides multiply
    with the same kernels."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return
    if all(x in flags for x in ("avx512f", "avx512bw", "avx512vl", "avx512dq")):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif "avx2" in flags and "fma" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


openblas_coretype()

import torch  # noqa: E402 -- after OPENBLAS_CORETYPE
import torch.nn.functional as F

C, L, H, KVH, FF, V = 512, 8, 8, 4, 1408, 32000
D = C // H
R = 512
MAX_POS = 4096
EPS = 1e-5
THETA = 10000.0
N_SINK = 4


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.Parameter(torch.ones(C))
        self.qkv = torch.nn.Linear(C, (H + 2 * KVH) * D, bias=False)
        self.o = torch.nn.Linear(H * D, C, bias=False)
        self.ln2 = torch.nn.Parameter(torch.ones(C))
        self.gu = torch.nn.Linear(C, 2 * FF, bias=False)
        self.down = torch.nn.Linear(FF, C, bias=False)


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x, cos, sin):
    # x (B, nh, T, D); cos, sin (B, 1, T, D/2): rotate_half pairing
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def attention(q, k, v):
    # q (B, H, T, D); k, v (B, KVH, T, D): each kv head serves H/KVH heads
    k = k.repeat_interleave(H // KVH, dim=1)
    v = v.repeat_interleave(H // KVH, dim=1)
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[2]
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(V, C)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.lnf = torch.nn.Parameter(torch.ones(C))
        self.head = torch.nn.Linear(C, V, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, tok, tgt, pos):
        B, T = tok.shape
        inv = THETA ** (-torch.arange(0, D // 2, dtype=torch.float64) * 2.0 / D)
        ang = pos[:, :, None] * inv[None, None, :]  # (B, T, D/2) in double
        cos = ang.cos().float()[:, None]
        sin = ang.sin().float()[:, None]
        x = self.wte(tok)
        for b in self.blocks:
            h = rmsnorm(x, b.ln1)
            qkv = b.qkv(h)
            q, k, v = qkv.split([H * D, KVH * D, KVH * D], dim=-1)
            q = rope(q.view(B, T, H, D).transpose(1, 2), cos, sin)
            k = rope(k.view(B, T, KVH, D).transpose(1, 2), cos, sin)
            v = v.view(B, T, KVH, D).transpose(1, 2)
            y = attention(q, k, v).transpose(1, 2).reshape(B, T, H * D)
            x = x + b.o(y)
            g, u = b.gu(rmsnorm(x, b.ln2)).chunk(2, dim=-1)
            x = x + b.down(F.silu(g) * u)
        logits = self.head(rmsnorm(x, self.lnf))
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1))


def e2_positions(B, gen):
    """E2 positions as bench_train draws them: per sequence g in 1..20, an
    offset t, the first N_SINK tokens at m / g."""
    pos = torch.empty(B, R, dtype=torch.float64)
    m = torch.arange(R, dtype=torch.float64)
    for b in range(B):
        g = float(torch.randint(1, 21, (1,), generator=gen))
        t = float(torch.randint(0, int(g * MAX_POS - R + 1), (1,), generator=gen))
        pos[b] = torch.where(m < N_SINK, m, m + t) / g
    return pos


def matmul_rate(N):
    """GFLOP/s of this torch's BLAS on one step's products (per layer qkv, o,
    gate|up, down and the head once; forward, d-input and d-weight), as
    bench_train measures OpenBLAS: the two libraries' sgemm side by side."""
    shapes = [(C, (H + 2 * KVH) * D, L), (H * D, C, L), (C, 2 * FF, L), (FF, C, L), (C, V, 1)]
    flops, t = 0.0, 0.0
    for cin, cout, count in shapes:
        x, w = torch.randn(N, cin), torch.randn(cout, cin)
        dy, dx, dw = torch.randn(N, cout), torch.zeros(N, cin), torch.zeros(cout, cin)
        t0 = time.perf_counter()
        for _ in range(count):
            torch.mm(x, w.t())
            dx.addmm_(dy, w)
            dw.addmm_(dy.t(), x)
        t += time.perf_counter() - t0
        flops += 6.0 * N * cin * cout * count
    return flops / t * 1e-9


def main():
    ap = argparse.ArgumentParser(description="PyTorch on the bench_train config")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")))
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    a = ap.parse_args()
    if a.steps < 1 or a.micro_batch < 1:
        ap.error("--steps and --micro-batch must be >= 1")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(7)
    B = a.micro_batch
    model = Model()
    step_fn = model
    if a.mode == "compile":
        if not hasattr(torch, "compile"):
            print(f"torch compile: unavailable (torch {torch.__version__} has no torch.compile)")
            return 0
        try:
            step_fn = torch.compile(model)
        except Exception as e:  # noqa: BLE001 -- report any reason, not crash
            print(f"torch compile: unavailable ({type(e).__name__}: {e})")
            return 0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.0)
    tok = torch.randint(0, V, (B, R), generator=gen)
    tgt = torch.randint(0, V, (B, R), generator=gen)
    pos = e2_positions(B, gen)
    warm = 3 if a.mode == "compile" else 1
    times = []
    loss = None
    for i in range(warm + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        try:
            loss = step_fn(tok, tgt, pos)
            loss.backward()
        except Exception as e:  # noqa: BLE001 -- a compile failure shows here
            if a.mode != "compile":
                raise
            print(f"torch compile: unavailable ({type(e).__name__}: {str(e).splitlines()[0]})")
            return 0
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    n_par = sum(p.numel() for p in model.parameters())
    print(f"torch {a.mode}: {B * R / step:.0f} tokens/s (step {step:.3f} s, median of "
          f"{a.steps}) | torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"attention {'sdpa' if HAS_SDPA else 'explicit softmax(QK^T)V'}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
          f"params {n_par}, loss {loss.item():.4f}")
    if a.mode == "eager":
        blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        print(f"torch eager: sgemm ({blas.group(1) if blas else 'unknown BLAS'}) on the model's "
              f"shapes: {matmul_rate(B * R):.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
