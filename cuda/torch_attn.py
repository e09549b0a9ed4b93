#!/usr/bin/env python3
"""PyTorch reference timings for the attention shapes of attn_shapes.txt.

Run on the GPU machine by devcheck.sh, next to the Go benchmarks:
    python3 torch_attn.py attn_shapes.txt
q, k, v are laid out as the Go kernels see them, [B, T, H, D] contiguous
(viewed as [B, H, T, D] for scaled_dot_product_attention). Prints one line
per (shape, variant):
    TORCH <shape> <variant> <ms> ms/op <TFLOP/s> TFLOP/s
Variants: sdpa-fp32 (PyTorch's own choice), efficient-fp32 (the memory-
efficient kernel, fp32), math-fp32 (materialised, the naive reference) and
flash-bf16 (tensor cores, for scale only: not the same arithmetic).
"""
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


def main():
    if not hasattr(F, "scaled_dot_product_attention") or not torch.cuda.is_available():
        print(f"TORCHINFO torch {torch.__version__}: no CUDA device or no scaled_dot_product_attention (torch >= 2.0); skipped")
        for name, *_ in shapes(sys.argv[1] if len(sys.argv) > 1 else "attn_shapes.txt"):
            print(f"TORCH {name} all skipped: no torch SDPA on CUDA")
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    dev = torch.device("cuda")
    print(f"TORCHINFO torch {torch.__version__} cuda {torch.version.cuda} device {torch.cuda.get_device_name()}")
    variants = [
        ("sdpa-fp32", None, torch.float32),
        ("efficient-fp32", "efficient", torch.float32),
        ("math-fp32", "math", torch.float32),
        ("flash-bf16", "flash", torch.bfloat16),
    ]
    for name, B, T, H, D, causal in shapes(sys.argv[1] if len(sys.argv) > 1 else "attn_shapes.txt"):
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
        del base
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
