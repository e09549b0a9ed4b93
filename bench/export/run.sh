#!/usr/bin/env bash
# Dense vs pruned ONNX exports in ONNX Runtime: does the speed of pruning
# survive `mope export --format onnx`?
#
#   bench/export/run.sh [PRESET=ViT-B/32] [TARGET=0.25] [ROUNDS=7] [BATCHES=1,8] [THREADS=1]
#
# 1. mope init --preset PRESET (random weights, seed 1) → $WORK/dense;
# 2. mope score (magnitude, both towers, heads+ffn+layers; data-free) and
#    mope prune --target-flops TARGET --global → $WORK/pruned (uneven widths);
# 3. mope export --format onnx of both;
# 4. node internal/ortnode/ort.js bench (onnxruntime-node as installed by
#    scripts/test-deps.sh; CPU EP, all graph optimisations, sequential,
#    intraOpNumThreads = THREADS): per batch, one warm-up pass per model and
#    tower, then ROUNDS rounds of one timed pass per model, the order
#    rotating; prints per tower the median seconds and the median of the
#    per-round dense/pruned ratios, and GFLOPs from `mope info`.
# WORK defaults to /tmp/mope-export-bench (kept between runs). The machines
# here are shared: only the interleaved ratios mean much.
set -euo pipefail
preset=${1:-ViT-B/32}
target=${2:-0.25}
rounds=${3:-7}
batches=${4:-1,8}
threads=${5:-1}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/tmp/mope-export-bench}
mkdir -p "$WORK"
mope="$WORK/mope"
(cd "$repo" && go build -o "$mope" ./cmd/mope)
if [[ ! -f "$WORK/dense/model.safetensors" ]]; then
	"$mope" init --preset "$preset" --out "$WORK/dense" --seed 1 >/dev/null
fi
if [[ ! -f "$WORK/pruned/model.safetensors" ]]; then
	"$mope" score --model "$WORK/dense" --tower both --modules heads,ffn,layers --metric magnitude \
		--out "$WORK/scores.json" --quiet >/dev/null
	"$mope" prune --model "$WORK/dense" --scores "$WORK/scores.json" --target-flops "$target" --global \
		--out "$WORK/pruned" --quiet >/dev/null
fi
for m in dense pruned; do
	"$mope" export --model "$WORK/$m" --format onnx --out "$WORK/$m-onnx" --force >/dev/null
	"$mope" info --model "$WORK/$m" | grep -E '^(vision|text):' | sed "s/^/$m /"
done
ort_modules="${MOPECLIP_ORT_NODE_PATH:-${XDG_CACHE_HOME:-$HOME/.cache}/mopeclip/ort/node_modules}"
[[ -d "$ort_modules/onnxruntime-node" ]] || bash "$repo/scripts/test-deps.sh"
IFS=, read -r -a bs <<<"$batches"
for b in "${bs[@]}"; do
	NODE_PATH="$ort_modules" node "$repo/internal/ortnode/ort.js" bench "$threads" "$b" "$rounds" \
		"$WORK/dense-onnx" "$WORK/pruned-onnx"
done | tee "$WORK/rounds.jsonl" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
by = {}
for r in rows:
    by.setdefault((r["batch"], r["tower"]), {})[r["dir"].rsplit("/", 1)[-1]] = r
print("| batch | tower | dense ms (median) | pruned ms (median) | speed-up (median of per-round ratios) | per-round ratios |")
print("|---|---|---|---|---|---|")
for (b, t), d in sorted(by.items()):
    dn, pr = d["dense-onnx"], d["pruned-onnx"]
    ratios = [x / y for x, y in zip(dn["secs"], pr["secs"])]
    print(f"| {b} | {t} | {dn['"'"'median_s'"'"']*1e3:.1f} | {pr['"'"'median_s'"'"']*1e3:.1f} | {statistics.median(ratios):.2f}x | "
          + " ".join(f"{r:.2f}" for r in ratios) + " |")
'
