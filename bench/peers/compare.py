#!/usr/bin/python3
"""Round-by-round interleaved timing of CLIP encoders: mopeclip's fast engine,
its reference forward and ONNX Runtime, in long-lived worker processes (no
reloading between rounds), so that on a shared, noisy machine every ratio
compares passes taken seconds apart.

  compare.py --models DIR[,DIR...] [--onnx DIR[,DIR...]] --variants fast:0,ort:0,ref:0
             [--batches 1,32] [--threads 1,2] [--rounds 5] [--towers image,text]
             [--ref-max-batch 32] [--mopeworker BIN] [--json OUT.jsonl] [--gap 0.2] [--burst 1]

A variant is ENGINE:MODEL (ENGINE fast, gemm, items, bf16, int8 (mopeworker), ref or ort; MODEL an index into
--models, or into --onnx for ort). For each thread count it starts one
mopeworker (all --models) and, if an ort variant is asked for, one
`node run_ort.js --serve`; then for each batch and tower it runs one untimed
pass of every variant, then ROUNDS rounds of one timed pass per variant, the
order rotating each round. It prints per batch, thread count and tower the
median items/s of each variant and the median per-round speed ratio of the
first variant to each other one.
"""
import argparse
import json
import os
import statistics as st
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Worker:
    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
        line = self.p.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"{argv[0]}: did not start ({line!r})")

    def time(self, req):
        self.p.stdin.write(req + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit(f"worker died on {req!r}")
        return float(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--onnx", default="")
    ap.add_argument("--variants", default="fast:0,ort:0")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--towers", default="image,text")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ref-max-batch", type=int, default=1 << 30, help="skip ref variants above this batch")
    ap.add_argument("--mopeworker", default="")
    ap.add_argument("--split", default="auto")
    ap.add_argument("--json", default="")
    ap.add_argument("--burst", type=int, default=1,
                    help="passes per timed measurement, back to back; above 1 the first is a warm-up and "
                         "the median of the others is recorded (a stream of requests rather than one)")
    ap.add_argument("--gap", type=float, default=0.2,
                    help="seconds to sleep before each timed pass, so that one engine's idle threads "
                         "(ONNX Runtime's spin for a while after a run) do not run into the next pass")
    a = ap.parse_args()
    if a.gap < 0 or a.gap > 60:
        ap.error(f"--gap {a.gap}: want seconds from 0 to 60")
    if a.burst < 1:
        ap.error(f"--burst {a.burst}: want at least 1 pass")
    if a.rounds < 1:
        ap.error(f"--rounds {a.rounds}: want at least 1")
    models = a.models.split(",")
    onnx = [d for d in a.onnx.split(",") if d]
    variants = [tuple(v.split(":")) for v in a.variants.split(",")]
    worker = a.mopeworker
    if not worker:
        worker = "/tmp/mopeworker-compare"
        subprocess.run(["go", "build", "-o", worker, "./bench/peers/mopeworker"], cwd=os.path.join(HERE, "..", ".."), check=True)
    log = open(a.json, "a") if a.json else None
    rows = []
    for t in [int(x) for x in a.threads.split(",")]:
        w = {"mope": Worker([worker, "--threads", str(t), "--split", a.split] + models)}
        if any(e == "ort" for e, _ in variants):
            env = dict(os.environ)
            w["ort"] = Worker(["node", os.path.join(HERE, "run_ort.js"), "--serve", str(t)] + onnx, env=env)
        for b in [int(x) for x in a.batches.split(",")]:
            vs = [v for v in variants if not (v[0] == "ref" and b > a.ref_max_batch)]
            for tower in a.towers.split(","):
                def req(v):
                    e, mi = v
                    return w["ort" if e == "ort" else "mope"].time(f"{e} {mi} {tower} {b}")
                for v in vs:
                    req(v)  # warm-up
                secs = {v: [] for v in vs}
                for r in range(a.rounds):
                    order = vs[r % len(vs):] + vs[:r % len(vs)]
                    for v in order:
                        time.sleep(a.gap)
                        if a.burst <= 1:
                            secs[v].append(req(v))
                            continue
                        passes = [req(v) for _ in range(a.burst)]
                        secs[v].append(st.median(passes[1:]))
                    if log:
                        log.write(json.dumps({"threads": t, "batch": b, "tower": tower, "round": r,
                                              "secs": {f"{e}:{m}": secs[(e, m)][-1] for e, m in vs},
                                              "load": os.getloadavg()[0]}) + "\n")
                        log.flush()
                base = vs[0]
                row = {"threads": t, "batch": b, "tower": tower}
                for v in vs:
                    row[f"{v[0]}:{v[1]}"] = b / st.median(secs[v])
                    if v != base:
                        row[f"ratio {base[0]}:{base[1]}/{v[0]}:{v[1]}"] = st.median(
                            x / y for x, y in zip(secs[v], secs[base]))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        for x in w.values():
            x.close()
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys and k not in ("threads", "batch", "tower")]
    print(f"{'thr':>3} {'batch':>5} {'tower':>5} " + " ".join(f"{k:>14}" for k in keys))
    for r in rows:
        print(f"{r['threads']:>3} {r['batch']:>5} {r['tower']:>5} " +
              " ".join(f"{r[k]:>14.2f}" if k in r else f"{'-':>14}" for k in keys))
    print(f"(items/s: medians of {a.rounds} interleaved rounds; ratios: medians of per-round time ratios; "
          f"load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
