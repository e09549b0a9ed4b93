#!/usr/bin/env bash
# devcheck17.sh: issue 17's one device run (GPU training, distillation and
# scoring), ON the GPU machine from the repository root, with PyTorch as the
# peer in the same run:
#
#     bash cuda/devcheck17.sh
#
# Nothing is built there (no Go on the device machines). Built here and
# carried (make -C cuda testbin17, 56 MB of the 64 MiB the device tool carries):
#   cuda/cuda.test   go test -c -tags cuda ./cuda    (every kernel, Backend, towers)
#   cuda/mope.test   go test -c -tags cuda ./mope    (device scorer, distillation step)
#   bin/mope-cuda    go build -tags cuda ./cmd/mope  (score / pretrain --device)
# Device tool: command `bash cuda/devcheck17.sh`, carry ["cuda/cuda.test",
# "cuda/mope.test", "bin/mope-cuda"], timeout_s 480.
#
# Steps, in order of importance, each under `timeout` and all within BUDGET
# seconds (default 440: under 8 minutes of GPU time with the machine's
# start); a step whose turn comes after the budget is spent is SKIPPED and
# says so in the table:
#   1. machine, cuBLAS (as devcheck.sh: ldconfig, /usr/local/cuda*, PyTorch's wheels)
#   2. cuda.test: the whole tagged suite the emulator runs in CI (kernels,
#      gradients, Backend, towers), now on the GPU
#   3. mope.test -test.run Device: the device scorer (cuda.Suffix) against the
#      CPU scorer, and the device distillation tests of package mope
#   4. distillation step, ViT-B/32 teacher fwd + half-width student fwd/bwd +
#      clip + AdamW, batch 256, fp32 and TF32: BenchmarkDistillStepDevice vs
#      cuda/torch_distill.py (PyTorch eager, SDPA attention, same shapes)
#   5. attention forward/backward at head dim 64 and 128 on attn_shapes.txt:
#      BenchmarkAttention (flash, naive, half heads) and BenchmarkAttentionTrain
#      (fwd-save, the forward that keeps the flash statistics; bwd, the flash
#      backward) vs cuda/torch_attn.py --bwd (SDPA fp32 forward and backward)
#   6. MoPE scoring: mope init --preset ViT-B/32 (random weights), then
#      mope score --device cuda and cuda:tf32 of all 348 vision modules (12
#      layers x (12 heads + 16 FFN groups + 1 layer)) on 1,000 synthetic
#      pairs (--data shapes --limit 1000: the shapes world's calib split at
#      224 px, five captions each, tokenised with the shapes tokenizer)
#   7. shapes-teacher pretraining pairs/s: mope pretrain --device cuda vs the
#      CPU with GOMAXPROCS=16, PT_STEPS steps of batch 256
#   8. the table: $OUT/summary.txt (devcheck17_table.py)
#
# Output under $OUT (else /tmp/devcheck17): devcheck17.log (every step's
# command and exit status), test.log, mope_test.log, distill_go.log,
# distill_torch.log, attn_go.log, attn_torch.log, score_*.log/json,
# pretrain_*.log, machine.txt, summary.txt.
#
# A dry run on the CPU emulator (build the three with -tags cuda,cudaemu):
#   PRESET=tiny BATCH=4 SCORE_N=8 PT_PRESET=tiny PT_BATCH=8 PT_STEPS=3 \
#   TORCH_DEVICE=cpu CUDA_RUN='TestDeviceInfo|TestPTX|TestSuffix' SCALE=5 \
#   BUDGET=1800 OUT=/tmp/dry bash cuda/devcheck17.sh
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="${OUT:-/tmp/devcheck17}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/devcheck17.log"
: >"$log"
t0=$(date +%s)
BUDGET=${BUDGET:-440}
PRESET=${PRESET:-ViT-B/32}     # distillation and scoring model
BATCH=${BATCH:-256}            # distillation pairs per step
SCORE_N=${SCORE_N:-1000}       # scoring pairs
PT_PRESET=${PT_PRESET:-shapes-teacher}
PT_BATCH=${PT_BATCH:-256}
PT_STEPS=${PT_STEPS:-20}
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
CUDA_RUN=${CUDA_RUN:-.}        # cuda.test -test.run
ATTN_RUN=${ATTN_RUN:-Attention} # cuda.test -test.bench
MOPE_RUN=${MOPE_RUN:-Device}   # mope.test -test.run
SCALE=${SCALE:-1}              # multiplies every step's limit (the emulator is slow)
PY=${PYTHON:-python3}
say() { echo "[devcheck17 +$(($(date +%s) - t0))s] $*" | tee -a "$log"; }
# step LIMIT NAME CMD...: runs CMD under timeout min(LIMIT, what is left of
# the budget), records NAME's exit status in $out/status (124: timed out,
# 125: skipped for want of budget).
step() {
	local limit=$(($1 * SCALE)) name=$2 left rc
	shift 2
	left=$((BUDGET - ($(date +%s) - t0)))
	if [ "$left" -lt 10 ]; then
		say "SKIPPED (budget spent): $name"
		echo "$name 125" >>"$out/status"
		return 125
	fi
	[ "$limit" -gt "$left" ] && limit=$left
	say "$name (limit ${limit}s): $*"
	local s=$(date +%s)
	timeout -k 5 "$limit" "$@"
	rc=$?
	say "$name exit status $rc in $(($(date +%s) - s))s"
	echo "$name $rc $(($(date +%s) - s))" >>"$out/status"
	return $rc
}
: >"$out/status"

say "machine"
{
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
	echo "cpus $(nproc)"
	ldd --version 2>&1 | head -1
	"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1
} | tee "$out/machine.txt" >>"$log"

if [ -z "${MOPECLIP_CUBLAS:-}" ]; then
	MOPECLIP_CUBLAS=$(
		{
			ldconfig -p 2>/dev/null | awk '/libcublas\.so\.[0-9]+ /{print $NF}'
			ls /usr/local/cuda*/lib64/libcublas.so.[0-9]* /usr/local/cuda*/targets/*/lib/libcublas.so.[0-9]* 2>/dev/null
			"$PY" - <<'PY' 2>/dev/null
import glob, os
c = []
try:
    import nvidia.cublas as m
    for p in m.__path__:
        c += glob.glob(os.path.join(p, "lib", "libcublas.so.*"))
except Exception:
    pass
try:
    import torch
    c += glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libcublas.so.*"))
except Exception:
    pass
print("\n".join(c))
PY
		} | grep -E '/libcublas\.so\.[0-9]+(\.[0-9.]+)?$' |
			sed -E 's/.*libcublas\.so\.([0-9]+).*/\1 &/' | sort -k1,1nr | head -1 | cut -d' ' -f2-
	)
fi
if [ -n "$MOPECLIP_CUBLAS" ]; then
	export MOPECLIP_CUBLAS
	export LD_LIBRARY_PATH="$(dirname "$MOPECLIP_CUBLAS")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "cuBLAS: ${MOPECLIP_CUBLAS:-none (TF32 rows fail)}" | tee -a "$out/machine.txt" >>"$log"
for f in cuda/cuda.test cuda/mope.test bin/mope-cuda; do
	[ -x "$f" ] || say "MISSING $f: build it here (make -C cuda testbin17) and carry it"
done

# 2-3: correctness on the GPU.
(cd cuda && step 100 cuda-tests ./cuda.test -test.v -test.count=1 -test.timeout $((95 * SCALE))s -test.run "$CUDA_RUN" >"$out/test.log" 2>&1)
(cd mope && step 40 mope-tests ../cuda/mope.test -test.v -test.count=1 -test.timeout $((38 * SCALE))s -test.run "$MOPE_RUN" >"$out/mope_test.log" 2>&1)

# 4: distillation step, ours then PyTorch's.
(cd mope && MOPECLIP_BENCH_PRESET="$PRESET" MOPECLIP_BENCH_BATCH="$BATCH" step 90 distill-go \
	../cuda/mope.test -test.v -test.run '^$' -test.bench 'DistillStepDevice' -test.benchtime 3x -test.timeout $((85 * SCALE))s >"$out/distill_go.log" 2>&1)
step 60 distill-torch "$PY" cuda/torch_distill.py --preset "$PRESET" --batch "$BATCH" --steps 5 --warmup 2 \
	--device "$TORCH_DEVICE" >"$out/distill_torch.log" 2>&1

# 5: attention, ours then SDPA (-test.bench 'Attention' runs both
# BenchmarkAttention and BenchmarkAttentionTrain; the table pairs them with
# torch_attn.py's lines by shape and variant name).
(cd cuda && step 60 attn-go ./cuda.test -test.run '^$' -test.bench "$ATTN_RUN" -test.benchtime 20x -test.timeout 55s >"$out/attn_go.log" 2>&1)
if [ "$TORCH_DEVICE" = cuda ]; then
	(cd cuda && step 50 attn-torch "$PY" torch_attn.py attn_shapes.txt --bwd --variants sdpa-fp32,efficient-fp32 \
		>"$out/attn_torch.log" 2>&1)
fi

# 6: MoPE scoring of every vision module.
model=/tmp/devcheck17-model
rm -rf "$model"
step 40 init bin/mope-cuda init --preset "$PRESET" --out "$model" --vocab "" >>"$log" 2>&1
for dev in cuda cuda:tf32; do
	tag=${dev/:/-}
	step 90 "score-$tag" bin/mope-cuda score --model "$model" --vocab assets/shapes-teacher --data shapes \
		--limit "$SCORE_N" --tower vision --modules heads,ffn,layers --device "$dev" \
		--out "$out/score_$tag.json" >"$out/score_$tag.log" 2>&1
done

# 7: shapes-teacher pretraining, GPU then 16 CPU cores.
pt() { # name device GOMAXPROCS
	local d="/tmp/devcheck17-pt-$1"
	rm -rf "$d"
	GOMAXPROCS=$3 step 45 "pretrain-$1" bin/mope-cuda pretrain --data shapes --preset "$PT_PRESET" --steps "$PT_STEPS" \
		--batch "$PT_BATCH" --warmup 2 --train-n $((PT_BATCH * 4)) --val-n 0 --checkpoint-every 100000 \
		--device "$2" --out "$d" >"$out/pretrain_$1.log" 2>&1
}
pt gpu cuda "$(nproc)"
pt cpu cpu 16

say "summary"
"$PY" cuda/devcheck17_table.py "$out" | tee "$out/summary.txt"
say "done; logs in $out"
