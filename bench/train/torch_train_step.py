#!/usr/bin/env python3
"""One training step of a small pre-LN transformer in PyTorch (CPU), the peer of
BenchmarkTrainStep in this directory.

Model and loss are identical to the Go benchmark: 4 pre-LN blocks (CLIP encoder
layers: LayerNorm eps 1e-5, multi-head self-attention with separate q/k/v/out
projections with bias, QuickGELU MLP), width 256, 4 heads, MLP 1024, 64 tokens,
batch 32, no causal mask; the loss is the mean squared error of the last
hidden state against a fixed random target. One step is zero_grad + forward +
backward + torch.optim.AdamW.step (lr 1e-4, weight decay 0.01 on weight
matrices only).

Run with Debian's torch: /usr/bin/python3 bench/train/torch_train_step.py
It prints the median tokens/s (batch*tokens per step / wall-clock step time)
and tokens/cpu-s (per second of process CPU time, less distorted by a busy
machine) over --repeats timed runs of --steps steps each.
"""
import argparse
import os
import statistics
import sys
import time


def _threads_from_argv(default=1):
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return str(default)


# Pin the BLAS library's own thread pool (Debian's torch calls the system
# libblas, e.g. OpenBLAS) before torch loads it, not only torch's intra-op
# pool.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = _threads_from_argv()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.scale = self.head_dim ** -0.5
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x):
        b, t, c = x.shape

        def split(y):
            return y.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x) * self.scale)
        k = split(self.k_proj(x))
        v = split(self.v_proj(x))
        w = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        o = (w @ v).transpose(1, 2).reshape(b, t, c)
        return self.out_proj(o)


class MLP(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # QuickGELU


class Block(nn.Module):
    def __init__(self, width, heads, hidden):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width, eps=1e-5)
        self.self_attn = Attention(width, heads)
        self.layer_norm2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = MLP(width, hidden)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = nn.Sequential(*[Block(a.width, a.heads, a.mlp) for _ in range(a.layers)])
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    x = torch.randn(a.batch, a.tokens, a.width)
    target = torch.randn(a.batch, a.tokens, a.width)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = torch.mean((model(x) - target) ** 2)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    tps, cps = [], []
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            step()
        dt = (time.perf_counter() - t0) / a.steps
        dc = (time.process_time() - c0) / a.steps
        tps.append(a.batch * a.tokens / dt)
        cps.append(a.batch * a.tokens / dc)
    med = statistics.median(tps)
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} "
          f"step_ms={a.batch * a.tokens / med * 1e3:.1f} tokens/s={med:.1f} "
          f"tokens/cpu-s={statistics.median(cps):.1f} "
          f"runs={' '.join(f'{t:.1f}' for t in tps)}")


if __name__ == "__main__":
    main()
