#!/usr/bin/env python3
"""Summarises a devcheck.sh run: devcheck_table.py test.log bench.log torch.log"""
import re
import sys


def read(path):
    try:
        return open(path, errors="replace").read().splitlines()
    except OSError:
        return []


def bench_metrics(lines):
    """{name: {unit: value}} from `go test -bench` output (custom metrics included)."""
    out = {}
    for line in lines:
        m = re.match(r"^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$", line)
        if not m:
            continue
        vals = {}
        for v, unit in re.findall(r"([-+0-9.eE]+)\s+(\S+)", m.group(3)):
            try:
                vals[unit] = float(v)
            except ValueError:
                pass
        out[m.group(1)] = vals
    return out


def torch_metrics(lines):
    out, info = {}, ""
    for line in lines:
        if line.startswith("TORCHINFO"):
            info = line[len("TORCHINFO "):]
        m = re.match(r"^TORCH (\S+) (\S+) ([0-9.]+) ms/op ([0-9.]+) TFLOP/s", line)
        if m:
            out[(m.group(1), m.group(2))] = (float(m.group(3)), float(m.group(4)))
    return out, info


def cell(ms, tf=None):
    if ms is None:
        return "-"
    return f"{ms:8.3f}" + (f" ({tf:5.1f})" if tf is not None else "")


def main():
    test, bench, torch_lines = (read(p) for p in sys.argv[1:4])
    b = bench_metrics(bench)
    t, tinfo = torch_metrics(torch_lines)

    print("== device ==")
    for line in test:
        if line.startswith(("device:", "peaks", "cuBLAS:")):
            print("  " + line)
    if tinfo:
        print("  torch: " + tinfo)

    print("\n== tests ==")
    fails = [l.strip() for l in test if l.strip().startswith("--- FAIL")]
    status = [l for l in test if l.strip() in ("PASS", "FAIL") or l.startswith(("ok ", "FAIL\t", "panic:"))]
    print("  result: " + (", ".join(sorted(set(s.strip() for s in status))) or "no result (crashed or timed out?)"))
    for f in fails[:30]:
        print("  " + f)
    errs = [l[len("ERRORS "):] for l in test if l.startswith("ERRORS ")]
    if errs:
        print("  max normwise relative error per kernel (bound):")
        for e in errs[1:]:
            print("    " + e)

    print("\n== attention: ms per call (TFLOP/s); 4·B·H·T²·D flops, halved when causal ==")
    shapes = []
    for name in b:
        m = re.match(r"^Attention/([^/]+)/", name)
        if m and m.group(1) not in shapes:
            shapes.append(m.group(1))
    for name, _ in t:
        if name not in shapes:
            shapes.append(name)
    cols = [("flash", "ours flash"), ("naive", "ours naive"), ("flash-halfheads", "flash ½heads")]
    tcols = [("sdpa-fp32", "torch sdpa"), ("efficient-fp32", "torch eff32"), ("math-fp32", "torch math"), ("flash-bf16", "torch bf16")]
    hdr = f"  {'shape':<12}" + "".join(f"{c[1]:>18}" for c in cols + tcols) + f"{'naive/flash':>12}{'sdpa/flash':>12}"
    print(hdr)
    for s in shapes:
        row = f"  {s:<12}"
        ours = {}
        for key, _ in cols:
            m = b.get(f"Attention/{s}/{key}", {})
            ours[key] = m.get("ms/op")
            row += f"{cell(m.get('ms/op'), m.get('TFLOP/s')):>18}"
        tv = {}
        for key, _ in tcols:
            ms, tf = t.get((s, key), (None, None))
            tv[key] = ms
            row += f"{cell(ms, tf):>18}"
        f = ours.get("flash")
        row += f"{(ours['naive'] / f if f and ours.get('naive') else float('nan')):>12.2f}"
        row += f"{(tv['sdpa-fp32'] / f if f and tv.get('sdpa-fp32') else float('nan')):>12.2f}"
        print(row)

    print("\n== ViT-B/32 image encoder (device time of Forward; %peak of the arithmetic used) ==")
    print(f"  {'model':<8}{'prec':<6}{'batch':>6}{'ms':>10}{'img/s':>12}{'TFLOP/s':>10}{'%peak':>8}")
    for name, m in b.items():
        mm = re.match(r"^VisionEncoder/([^/]+)/([^/]+)/B=(\d+)$", name)
        if mm:
            print(f"  {mm.group(1):<8}{mm.group(2):<6}{mm.group(3):>6}{m.get('ms/op', 0):>10.3f}{m.get('img/s', 0):>12.0f}"
                  f"{m.get('TFLOP/s', 0):>10.2f}{m.get('%peak', 0):>8.1f}")

    print("\n== GEMM 12800x3072x768 (ViT-B/32 fc1 at batch 256) ==")
    for name, m in b.items():
        if name.startswith("Gemm/"):
            print(f"  {name[5:]:<14}{m.get('ms/op', 0):>10.3f} ms{m.get('TFLOP/s', 0):>10.2f} TFLOP/s{m.get('%peak', 0):>8.1f} %peak")
    skipped = [l.strip() for l in bench if "--- SKIP" in l or "skipped" in l.lower()]
    for s in skipped[:10]:
        print("  " + s)


if __name__ == "__main__":
    main()
