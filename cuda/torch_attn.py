#!/usr/bin/env python3
"""PyTorch reference timings for the attention shapes of attn_shapes.txt.

Run on the GPU machine by devcheck.sh, next to the Go benchmarks:
    python3 torch_attn.py attn_shapes.txt [--bwd] [--variants sdpa-fp32,efficient-fp32]
q, k, v are laid out as the Go kernels see them, [B, T, H, D] contiguous
(viewed as [B, H, T, D] for scaled_dot_product_attention). Prints one line
per (shape, variant):
    TORCH <shape> <variant> <ms> ms/op <TFLOP/s> TFLOP/s
Variants: sdpa-fp32 (PyTorch's own choice), efficient-fp32 (the memory-
efficient kernel, fp32), math-fp32 (materialised, the naive reference) and
flash-bf16 (tensor cores, for scale only: not the same arithmetic).
--variants keeps only the named ones (comma-separated).

With --bwd each variant also gets a line for its backward pass,
    TORCH <shape> <variant>-bwd <ms> ms/op <TFLOP/s> TFLOP/s
timing torch.autograd.grad of the output with respect to q, k and v (dO
random, the forward's graph retained, so only the backward is timed), with
2.5× the forward's FLOPs (FlashAttention's convention, as the Go
BenchmarkAttentionTrain/<shape>/bwd).
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import contextlib

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # torch < 2.3
    SDPBackend = sdpa_kernel = None


def backend_ctx(which):
    """Context manager restricting SDPA to one implementation (None: any)."""
    if which is None:
        return contextlib.nullcontext()
    if sdpa_kernel is not None:
        return sdpa_kernel({"efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH,
                            "flash": SDPBackend.FLASH_ATTENTION}[which])
    # torch 2.0-2.2
    return torch.backends.cuda.sdp_kernel(enable_flash=which == "flash", enable_math=which == "math",
                                          enable_mem_efficient=which == "efficient")


ITERS = 20

# (name, SDPA backend restriction or None, dtype)
VARIANTS = [
    ("sdpa-fp32", None, torch.float32),
    ("efficient-fp32", "efficient", torch.float32),
    ("math-fp32", "math", torch.float32),
    ("flash-bf16", "flash", torch.bfloat16),
]


def shapes(path):
    for line in open(path):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        name, B, T, H, D, causal = f[0], *map(int, f[1:])
        yield name, B, T, H, D, bool(causal)


def flops(B, T, H, D, causal):
    f = 4.0 * B * H * T * T * D
    return f / 2 if causal else f


def time_ms(fn):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(ITERS):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / ITERS


def time_backward(name, vname, backend, dtype, base, causal, g, fwd_flops):
    """Prints the TORCH line of the backward pass of one variant."""
    try:
        q, k, v = (x.to(dtype).transpose(1, 2).detach().requires_grad_(True) for x in base)
        with backend_ctx(backend):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            dout = torch.randn(out.shape, device=out.device, generator=g).to(dtype)

            def run():
                return torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

            ms = time_ms(run)
    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
        print(f"TORCH {name} {vname}-bwd skipped: {str(e).splitlines()[0][:100]}")
        torch.cuda.empty_cache()
        return
    tf = 2.5 * fwd_flops / (ms * 1e-3) / 1e12
    print(f"TORCH {name} {vname}-bwd {ms:.4f} ms/op {tf:.2f} TFLOP/s", flush=True)
    del q, k, v, out, dout
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description="PyTorch SDPA timings on the shapes of attn_shapes.txt")
    ap.add_argument("shapes", nargs="?", default="attn_shapes.txt")
    ap.add_argument("--bwd", action="store_true", help="also time the backward pass of every variant")
    ap.add_argument("--variants", default="", help="comma-separated variants to keep (default: all)")
    args = ap.parse_args()
    variants = VARIANTS
    if args.variants:
        keep = set(args.variants.split(","))
        unknown = keep - {v[0] for v in variants}
        if unknown:
            sys.exit(f"torch_attn.py: unknown variants {sorted(unknown)} (known: {', '.join(v[0] for v in VARIANTS)})")
        variants = [v for v in variants if v[0] in keep]
    if not hasattr(F, "scaled_dot_product_attention") or not torch.cuda.is_available():
        print(f"TORCHINFO torch {torch.__version__}: no CUDA device or no scaled_dot_product_attention (torch >= 2.0); skipped")
        for name, *_ in shapes(args.shapes):
            print(f"TORCH {name} all skipped: no torch SDPA on CUDA")
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    dev = torch.device("cuda")
    print(f"TORCHINFO torch {torch.__version__} cuda {torch.version.cuda} device {torch.cuda.get_device_name()}")
    for name, B, T, H, D, causal in shapes(args.shapes):
        g = torch.Generator(device=dev).manual_seed(1)
        base = [torch.randn(B, T, H, D, device=dev, generator=g) for _ in range(3)]
        for vname, backend, dtype in variants:
            q, k, v = (x.to(dtype).transpose(1, 2) for x in base)  # [B, H, T, D] views

            def run():
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

            try:
                with backend_ctx(backend):
                    ms = time_ms(run)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                print(f"TORCH {name} {vname} skipped: {str(e).splitlines()[0][:100]}")
                torch.cuda.empty_cache()
                continue
            tf = flops(B, T, H, D, causal) / (ms * 1e-3) / 1e12
            print(f"TORCH {name} {vname} {ms:.4f} ms/op {tf:.2f} TFLOP/s", flush=True)
            if args.bwd:
                time_backward(name, vname, backend, dtype, base, causal, g, flops(B, T, H, D, causal))
        del base
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
