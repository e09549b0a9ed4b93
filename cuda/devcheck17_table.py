#!/usr/bin/env python3
"""The summary table of devcheck17.sh: python3 devcheck17_table.py OUTDIR.

Reads the logs devcheck17.sh leaves in OUTDIR and prints issue 17's targets
with our numbers and PyTorch's from the same run. A missing or failed step
shows as such (never as a number).
"""
import json
import os
import re
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "."


def read(name):
    try:
        with open(os.path.join(out, name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


status = {}
for line in read("status").splitlines():
    f = line.split()
    if len(f) >= 2:
        status[f[0]] = (int(f[1]), int(f[2]) if len(f) > 2 else None)


def state(name):
    """'ok 12s', 'exit 1 12s', 'timed out', 'SKIPPED (budget)' or 'not run'."""
    if name not in status:
        return "not run"
    rc, secs = status[name]
    s = f" {secs}s" if secs is not None else ""
    return {0: "ok" + s, 124: "TIMED OUT" + s, 125: "SKIPPED (budget spent)"}.get(rc, f"exit {rc}{s}")


def why(name, log):
    """The last error-looking line of a failed step's log ('' when it passed)."""
    if status.get(name, (0,))[0] in (0, 125):
        return ""
    lines = [l.strip() for l in read(log).splitlines() if re.search(r"error|Error|FAIL|panic|mope:|cuda:", l)]
    return ("\n    " + lines[-1][:160]) if lines else ""


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


print("== devcheck17: issue 17 on the GPU (ours and PyTorch's, same run) ==")
print(read("machine.txt").strip())
print()

print("== correctness ==")
for name, log in (("cuda-tests", "test.log"), ("mope-tests", "mope_test.log")):
    t = read(log)
    n = {k: len(re.findall(rf"^\s*--- {k}", t, re.M)) for k in ("PASS", "FAIL", "SKIP")}
    fails = re.findall(r"^\s*--- FAIL: (\S+)", t, re.M)
    skips = re.findall(r"^\s*--- SKIP: (\S+)", t, re.M)
    print(f"{name:<11} {state(name):<24} pass {n['PASS']}, fail {n['FAIL']}, skip {n['SKIP']}"
          + (f"  FAILED: {' '.join(fails[:8])}" if fails else "")
          + (f"  skipped: {' '.join(skips[:8])}" if skips else ""))
for line in re.findall(r"^.*(?:worst embedding rel err|modules change the retrieval).*$", read("mope_test.log"), re.M):
    print("   ", line.strip())
print()

print("== distillation step (teacher fwd + half-width student fwd/bwd + clip + AdamW; target >= 1.0x PyTorch eager) ==")
go = {}
for m in re.finditer(r"^BenchmarkDistillStepDevice/(\S+?)/(fp32|tf32)/B(\d+)(?:-\d+)?\s+\d+\s+(\d+(?:\.\d+)?) ns/op\s+(\d+(?:\.\d+)?) pairs/s",
                     read("distill_go.log"), re.M):
    go[m.group(2)] = (float(m.group(4)) / 1e6, float(m.group(5)), m.group(1), m.group(3))
torch = {}
for m in re.finditer(r"^TORCH-DISTILL (\S+) (fp32|tf32) attn=(\S+) B=(\d+) ([\d.]+) ms/step ([\d.]+) pairs/s peak ([\d.]+) GiB",
                     read("distill_torch.log"), re.M):
    torch[m.group(2)] = (float(m.group(5)), float(m.group(6)), m.group(3), m.group(7))
print(f"ours: {state('distill-go')}; PyTorch: {state('distill-torch')}{why('distill-go', 'distill_go.log')}{why('distill-torch', 'distill_torch.log')}")
print(f"{'precision':<10} {'ours ms/step':>13} {'pairs/s':>9} {'torch ms/step':>14} {'pairs/s':>9} {'ours/torch':>11}  note")
for p in ("fp32", "tf32"):
    g, t = go.get(p), torch.get(p)
    gs = f"{g[0]:13.1f} {g[1]:9.1f}" if g else f"{'-':>13} {'-':>9}"
    ts = f"{t[0]:14.1f} {t[1]:9.1f}" if t else f"{'-':>14} {'-':>9}"
    note = []
    if g:
        note.append(f"{g[2]} B={g[3]}")
    if t:
        note.append(f"torch attn={t[2]}, peak {t[3]} GiB")
    if not g and re.search(rf"{p}.*SKIP|SKIP.*{p}", read("distill_go.log")):
        note.append("ours skipped (no cuBLAS for TF32)")
    print(f"{p:<10} {gs} {ts} {ratio(g and g[1], t and t[1]):>11}  {', '.join(note)}")
print()

print("== attention (ms/op; fwd = SDPA fp32 / our flash, bwd = SDPA fp32 backward / our flash bwd: targets >= 0.9 and >= 0.8 at D 64 and 128) ==")
print(f"ours: {state('attn-go')}; PyTorch: {state('attn-torch')}")
ours = {}
# BenchmarkAttention/<shape>/{flash,naive,flash-halfheads} and
# BenchmarkAttentionTrain/<shape>/{fwd-save,bwd}
for m in re.finditer(r"^BenchmarkAttention(?:Train)?/([^/\s]+)/(\S+?)(?:-\d+)?\s+\d+\s+(\d+(?:\.\d+)?) ns/op", read("attn_go.log"), re.M):
    ours.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3)) / 1e6
theirs = {}
for m in re.finditer(r"^TORCH (\S+) (\S+) ([\d.]+) ms/op", read("attn_torch.log"), re.M):
    theirs.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
shapes = {}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "attn_shapes.txt")) as fh:
    shape_lines = fh.read().splitlines()
for line in shape_lines:
    f = line.split()
    if f and not f[0].startswith("#"):
        shapes[f[0]] = f"B{f[1]} T{f[2]} H{f[3]} D{f[4]}{' causal' if f[5] == '1' else ''}"
for name in shapes:
    o, t = ours.get(name, {}), theirs.get(name, {})
    if not o and not t:
        continue
    cols = [f"{k} {v:.3f}" for k, v in sorted(o.items())]
    tcols = [f"{k} {v:.3f}" for k, v in sorted(t.items())]
    fwd = ratio(t.get("sdpa-fp32"), o.get("flash"))
    bwd_o = o.get("bwd")
    bwd_t = t.get("sdpa-fp32-bwd")
    print(f"{name:<12} {shapes[name]:<26} fwd {fwd:>6}  bwd {ratio(bwd_t, bwd_o):>6}")
    print(f"{'':12} ours:  {', '.join(cols) or '-'}")
    print(f"{'':12} torch: {', '.join(tcols) or '-'}")
if not any(k == "bwd" for v in ours.values() for k in v):
    print("(no BenchmarkAttentionTrain/<shape>/bwd in this run: the flash backward was not timed)")
print()

print("== MoPE scoring, all vision modules on synthetic pairs (target: 348 ViT-B/32 modules on 1,000 pairs in <= 60 s) ==")
print(f"{'device':<10} {'modules':>8} {'pairs':>6} {'scoring s':>10} {'calib s':>8}  status")
for tag in ("cuda", "cuda-tf32"):
    log, n, secs, cal = read(f"score_{tag}.log"), "-", "-", "-"
    m = re.search(r"(?:mope|unimodal): (\d+) modules in ([\d.]+)(ms|s|m[\d.]+s)?", log)
    if m:
        n = m.group(1)
        v = float(m.group(2))
        secs = f"{v / 1000 if m.group(3) == 'ms' else v:.1f}"
    m = re.search(r"calibration: (\d+) images, (\d+) captions.* in ([\d.]+)(ms|s)", log)
    pairs = m.group(1) if m else "-"
    if m:
        cal = f"{float(m.group(3)) / (1000 if m.group(4) == 'ms' else 1):.1f}"
    try:
        f = json.load(open(os.path.join(out, f"score_{tag}.json")))
        n = f"{len(f['scores'])}/{f['total']}"
    except (OSError, ValueError, KeyError):
        pass
    print(f"{tag:<10} {n:>8} {pairs:>6} {secs:>10} {cal:>8}  {state('score-' + tag)}{why('score-' + tag, f'score_{tag}.log')}")
print()

print("== shapes-teacher pretraining (pairs/s; target GPU >= 10x the 16 CPU cores) ==")
rates = {}
for which in ("gpu", "cpu"):
    m = re.findall(r"([\d.]+) items/s", read(f"pretrain_{which}.log"))
    rates[which] = float(m[-1]) if m else None
    r = f"{rates[which]:.1f}" if rates[which] else "-"
    print(f"{which:<4} {r:>10} pairs/s  {state('pretrain-' + which)}{why('pretrain-' + which, f'pretrain_{which}.log')}")
print(f"GPU / CPU: {ratio(rates['gpu'], rates['cpu'])}")
