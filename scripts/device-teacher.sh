#!/usr/bin/env bash
# device-teacher.sh: trains the shapes-world teacher on the lent GPU machine
# (16 cores + one H100), run from the repository root by the device tool with
# bin/mope and bin/mope-cuda carried:
#
#     go build -o bin/mope ./cmd/mope && make mope-cuda
#     (device) bash scripts/device-teacher.sh [SECONDS]
#
# 1. probes 12 steps of the same run on the CPU (GOMAXPROCS=16, AVX2 kernels:
#    reproducible bit for bit on any AVX2 machine with GOMAXPROCS=16) and on
#    the GPU (--device cuda, fp32), and keeps the faster;
# 2. sizes --steps to fill SECONDS (default 420) at the measured rate and
#    trains the teacher to $OUT/shapes-teacher; the exact command goes to
#    $OUT/shapes-teacher/COMMAND.
set -uo pipefail
budget=${1:-420}
out="${OUT:-/tmp}"
mkdir -p "$out"
t0=$(date +%s)
say() { echo "[teacher +$(($(date +%s) - t0))s] $*"; }

{
	lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | sed -E 's/(Flags:).*(avx512f)?.*/\1 avx2:'"$(grep -c avx2 /proc/cpuinfo)"' avx512f:'"$(grep -c avx512f /proc/cpuinfo)"'/'
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
} 2>&1 | tee "$out/machine.txt"

if [ -z "${MOPECLIP_CUBLAS:-}" ]; then
	MOPECLIP_CUBLAS=$(ls /usr/local/cuda*/lib64/libcublas.so.[0-9]* 2>/dev/null | sort -V | tail -1)
	[ -n "$MOPECLIP_CUBLAS" ] && export MOPECLIP_CUBLAS
fi

# The run: batch 256, 100,000 training images, the default optimiser.
common=(pretrain --data shapes --preset shapes-teacher --batch 256 --train-n 100000 --warmup 200
	--val-n 250 --val-every 500 --checkpoint-every 1000000)
cpu=(env GOMAXPROCS=16 MOPECLIP_KERNELS=avx2 bin/mope)
gpu=(bin/mope-cuda)

rate() { grep -o '[0-9.]* items/s' "$1" | tail -1 | cut -d' ' -f1; }

say "probe: cpu"
timeout 90 "${cpu[@]}" "${common[@]}" --steps 12 --val-n 0 --train-n 3000 --out /tmp/probe-cpu >"$out/probe-cpu.log" 2>&1
rc=$(rate "$out/probe-cpu.log")
say "probe: cuda"
timeout 90 "${gpu[@]}" "${common[@]}" --device cuda --steps 12 --val-n 0 --train-n 3000 --out /tmp/probe-gpu >"$out/probe-gpu.log" 2>&1
rg=$(rate "$out/probe-gpu.log")
tail -n 3 "$out/probe-cpu.log" "$out/probe-gpu.log"
say "rates: cpu ${rc:-none} items/s, cuda ${rg:-none} items/s"

pick=cpu
r=${rc:-0}
if awk -v g="${rg:-0}" -v c="${rc:-0}" 'BEGIN{exit !(g > 1.3*c)}'; then
	pick=cuda
	r=$rg
fi
left=$((budget - ($(date +%s) - t0)))
# 85% of the remaining time at the probed rate, minus validation and writing.
steps=$(awk -v r="$r" -v s="$left" 'BEGIN{n=int(0.85*(s-15)*r/256/100)*100; if(n<100)n=100; print n}')
say "training on $pick: $steps steps of 256 pairs"
if [ $pick = cuda ]; then
	run=("${gpu[@]}" "${common[@]}" --device cuda)
else
	run=("${cpu[@]}" "${common[@]}")
fi
echo "${run[*]} --steps $steps --out DIR" >"$out/COMMAND"
"${run[@]}" --steps "$steps" --out "$out/shapes-teacher" 2>&1 | tee "$out/train.log" | grep -E 'validation|trained|error|panic' 
say "exit status ${PIPESTATUS[0]}"
cp "$out/COMMAND" "$out/shapes-teacher/" 2>/dev/null
ls -la "$out/shapes-teacher"

# The trained teacher on the test split (1,000 images), CPU and GPU, and the
# --device cuda path of eval and bench.
say "eval: cpu"
timeout 60 env GOMAXPROCS=16 bin/mope eval --model "$out/shapes-teacher" --data shapes --json --quiet | tee "$out/eval-cpu.json"
say "eval: cuda"
timeout 60 bin/mope-cuda eval --device cuda --model "$out/shapes-teacher" --data shapes --json --quiet | tee "$out/eval-cuda.json"
say "bench: ViT-B/32 image tower through the ops backend, cpu vs cuda"
bin/mope init --preset ViT-B/32 --out /tmp/vitb32 >/dev/null 2>&1
timeout 40 env GOMAXPROCS=16 bin/mope bench --model /tmp/vitb32 --tower vision --batch 32 --rounds 3 2>&1 | tail -n 4 | tee "$out/bench-cpu.txt"
timeout 40 bin/mope-cuda bench --device cuda --model /tmp/vitb32 --tower vision --batch 32 --rounds 3 2>&1 | tail -n 4 | tee "$out/bench-cuda.txt"
say "done"
