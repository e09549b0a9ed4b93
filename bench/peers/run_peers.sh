#!/usr/bin/env bash
# mopeclip's fast engine vs ONNX Runtime (and the reference forward) on the
# same checkpoint, interleaved round by round.
#
#   bench/peers/run_peers.sh MODEL_DIR [rounds=5] [batches=1,32] [threads=1,2] [variants=fast:0,ort:0]
#
# 1. exports MODEL_DIR to ONNX (export_onnx.py through PyTorch: Debian
#    python3-torch + python3-onnx in /usr/bin/python3) into $WORK/<name>/, once;
# 2. installs onnxruntime-node@1.30.0 into $WORK/node_modules, once
#    (ONNXRUNTIME_NODE_INSTALL=skip: the CPU library ships in the package);
# 3. checks ONNX Runtime against PyTorch on a fixed sample (run_ort.js --check);
# 4. runs compare.py: one long-lived mopeworker (Go, the infer engine) and one
#    `node run_ort.js --serve` per thread count; per batch and tower, ROUNDS
#    rounds of one timed pass each, order rotating; prints median items/s and
#    the median per-round ratio fast/ORT (add ref:0 to the variants for the
#    reference forward). Per-round JSON goes to $WORK/<name>.rounds.jsonl.
# WORK defaults to /tmp/mope-peers. Machines here are shared and noisy: only
# ratios from one run mean much.
set -euo pipefail
model=$(cd "${1:?usage: $0 MODEL_DIR [rounds] [batches] [threads] [variants]}" && pwd)
rounds=${2:-5}
batches=${3:-1,32}
threads=${4:-1,2}
variants=${5:-fast:0,ort:0}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/tmp/mope-peers}
mkdir -p "$WORK"
onnx="$WORK/$(basename "$model")"
if [[ ! -f "$onnx/text.onnx" || "$model/model.safetensors" -nt "$onnx/text.onnx" ]]; then
	/usr/bin/python3 -W ignore "$here/export_onnx.py" "$model" "$onnx" 2>&1 | grep -v -i warn || true
fi
if [[ ! -d "$WORK/node_modules/onnxruntime-node" ]]; then
	(cd "$WORK" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node@1.30.0 >/dev/null)
fi
export NODE_PATH="$WORK/node_modules"
node "$here/run_ort.js" "$onnx" 2 1 1 0 --check >/dev/null
(cd "$repo" && go build -o "$WORK/mopeworker" ./bench/peers/mopeworker)
/usr/bin/python3 "$here/compare.py" --models "$model" --onnx "$onnx" --variants "$variants" \
	--batches "$batches" --threads "$threads" --rounds "$rounds" --mopeworker "$WORK/mopeworker" \
	--json "$WORK/$(basename "$model").rounds.jsonl"
