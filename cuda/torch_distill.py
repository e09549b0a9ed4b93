#!/usr/bin/env python3
"""PyTorch eager peer of one mopeclip distillation step (issue 17's target).

Run on the GPU machine by devcheck17.sh next to the Go benchmark
BenchmarkDistillStepDevice (mope/distill_device_bench_test.go), with the same
shapes and the same arithmetic:

    python3 torch_distill.py [--preset ViT-B/32] [--batch 256] [--steps 10]
                             [--device cuda] [--precision fp32,tf32] [--attn sdpa]

One step = teacher forward (both towers, no grad) + pruned student forward and
backward + global-norm clipping (1.0) + AdamW (beta 0.9/0.98, eps 1e-6, wd
0.05), on random pixels and random token ids (EOT at position 12 of the
77-token context), random weights. The student keeps half the heads and half
the MLP neurons of every layer of both towers, as the Go benchmark's plan.
The loss is mope.DistillForward's: a*ITC + b*KD + c*Feat + d*Hidden (all 1,
tau 2):

  ITC    symmetric InfoNCE with the student's logit scale exp(min(s, ln 100));
  KD     tau^2 * 1/2 (SCE(S_i2t/tau, T_i2t/tau) + SCE(S_t2i/tau, T_t2i/tau)),
         each model's cosine similarities times its own logit scale (the
         student's a constant there);
  Feat   1/2 (MSE(img_s, img_t)/mean(img_t^2) + MSE(txt_s, txt_t)/mean(txt_t^2))
         on the projected, unnormalised embeddings;
  Hidden the mean over every layer of both towers of MSE(student layer output,
         teacher layer output) / mean(teacher output^2).

Layers are written out (nn.Linear, nn.LayerNorm, QuickGELU), attention by
F.scaled_dot_product_attention (--attn sdpa: what transformers' CLIP uses by
default) or materialised (--attn math). fp32 sets
torch.backends.cuda.matmul.allow_tf32 = False, tf32 sets it True (cuDNN is not
used). Prints one line per precision:

    TORCH-DISTILL <preset> <precision> attn=<attn> B=<batch> <ms> ms/step <pairs/s> pairs/s peak <GiB> GiB

A dry run on the CPU: --device cpu --preset tiny --batch 4 --steps 1.
"""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: image, patch, vision width, layers, heads, text width, heads, layers, projection
# (clip/config.go's presets; MLP 4x width, context 77, vocabulary 49408)
PRESETS = {
    "ViT-B/32": (224, 32, 768, 12, 12, 512, 8, 12, 512),
    "ViT-B/16": (224, 16, 768, 12, 12, 512, 8, 12, 512),
    "tiny": (32, 8, 64, 2, 4, 48, 4, 2, 32),
}
CONTEXT, VOCAB, EOT_POS = 77, 49408, 12


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """Pre-LN transformer block with `heads` heads of dim `hd` and an MLP of `hidden`."""

    def __init__(self, width, heads, hd, hidden, attn):
        super().__init__()
        inner = heads * hd
        self.heads, self.hd, self.attn = heads, hd, attn
        self.ln1, self.ln2 = nn.LayerNorm(width, eps=1e-5), nn.LayerNorm(width, eps=1e-5)
        self.q, self.k, self.v = nn.Linear(width, inner), nn.Linear(width, inner), nn.Linear(width, inner)
        self.o = nn.Linear(inner, width)
        self.fc1, self.fc2, self.act = nn.Linear(width, hidden), nn.Linear(hidden, width), QuickGELU()

    def forward(self, x, causal):
        B, T, _ = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(B, T, self.heads, self.hd).transpose(1, 2) for p in (self.q, self.k, self.v))
        if self.attn == "sdpa":
            a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            s = (q @ k.transpose(-1, -2)) * (self.hd ** -0.5)
            if causal:
                s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            a = s.softmax(-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class Tower(nn.Module):
    def __init__(self, width, layers, heads, hd, hidden, proj, attn):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads, hd, hidden, attn) for _ in range(layers))
        self.final = nn.LayerNorm(width, eps=1e-5)
        self.proj = nn.Linear(width, proj, bias=False)

    def run(self, x, causal, hiddens):
        for b in self.blocks:
            x = b(x, causal)
            hiddens.append(x)
        return x


class CLIP(nn.Module):
    def __init__(self, preset, frac, attn):
        super().__init__()
        img, patch, vw, vl, vh, tw, th, tl, proj = PRESETS[preset]
        self.patch, self.n = patch, (img // patch) ** 2
        self.conv = nn.Conv2d(3, vw, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(vw) * 0.02)
        self.vpos = nn.Parameter(torch.randn(self.n + 1, vw) * 0.02)
        self.pre = nn.LayerNorm(vw, eps=1e-5)
        self.vision = Tower(vw, vl, max(1, int(vh * frac)), vw // vh, int(4 * vw * frac), proj, attn)
        self.tok = nn.Embedding(VOCAB, tw)
        self.tpos = nn.Parameter(torch.randn(CONTEXT, tw) * 0.01)
        self.text = Tower(tw, tl, max(1, int(th * frac)), tw // th, int(4 * tw * frac), proj, attn)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))

    def image(self, px, hiddens):
        x = self.conv(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1) + self.vpos
        x = self.vision.run(self.pre(x), False, hiddens)
        return self.vision.proj(self.vision.final(x[:, 0]))

    def texts(self, ids, eot, hiddens):
        x = self.text.run(self.tok(ids) + self.tpos[: ids.shape[1]], True, hiddens)
        x = x[torch.arange(ids.shape[0], device=ids.device), eot]
        return self.text.proj(self.text.final(x))

    def forward(self, px, ids, eot):
        hiddens = []
        img = self.image(px, hiddens)
        txt = self.texts(ids, eot, hiddens)
        return img, txt, hiddens

    def scale(self):
        return self.logit_scale.clamp(max=math.log(100)).exp()


def soft_ce(student, teacher):
    return -(teacher.softmax(-1) * student.log_softmax(-1)).sum(-1).mean()


def rel_mse(s, t):
    return F.mse_loss(s, t) / t.pow(2).mean()


def distill_loss(student, teacher, px, ids, eot, tau=2.0):
    with torch.no_grad():
        ti, tt, th = teacher(px, ids, eot)
        tin, ttn = F.normalize(ti, dim=-1), F.normalize(tt, dim=-1)
        t_i2t = teacher.scale() * tin @ ttn.T
    si, st, sh = student(px, ids, eot)
    sin, stn = F.normalize(si, dim=-1), F.normalize(st, dim=-1)
    cos = sin @ stn.T
    labels = torch.arange(px.shape[0], device=px.device)
    logits = student.scale() * cos
    itc = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    s_i2t = student.scale().detach() * cos
    kd = tau * tau * 0.5 * (soft_ce(s_i2t / tau, t_i2t / tau) + soft_ce(s_i2t.T / tau, t_i2t.T / tau))
    feat = 0.5 * (rel_mse(si, ti) + rel_mse(st, tt))
    hidden = sum(rel_mse(s, t) for s, t in zip(sh, th)) / len(sh)
    return itc + kd + feat + hidden


def run(args, precision):
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.manual_seed(1)
    teacher = CLIP(args.preset, 1.0, args.attn).to(dev).eval()
    student = CLIP(args.preset, 0.5, args.attn).to(dev).train()
    img = PRESETS[args.preset][0]
    B = args.batch
    px = torch.randn(B, 3, img, img, device=dev)
    ids = torch.randint(1, VOCAB - 2, (B, CONTEXT), device=dev)
    ids[:, EOT_POS + 1:] = 0
    ids[:, EOT_POS] = VOCAB - 1
    eot = torch.full((B,), EOT_POS, device=dev)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = distill_loss(student, teacher, px, ids, eot)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        return loss

    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if cuda:
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) * 1e3 / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    if not math.isfinite(loss.item()):
        print(f"TORCH-DISTILL {args.preset} {precision} loss {loss.item()}: not finite", file=sys.stderr)
    print(f"TORCH-DISTILL {args.preset} {precision} attn={args.attn} B={B} {ms:.2f} ms/step "
          f"{B * 1e3 / ms:.1f} pairs/s peak {peak:.2f} GiB", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="ViT-B/32", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="fp32,tf32")
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "math"])
    args = p.parse_args()
    if args.attn == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):  # torch < 2.0
        print(f"torch {torch.__version__} has no scaled_dot_product_attention: --attn math", file=sys.stderr)
        args.attn = "math"
    for prec in args.precision.split(","):
        run(args, prec)


if __name__ == "__main__":
    main()
