#!/usr/bin/env bash
# devcheck2.sh: the short device check of the GPU-resident text tower and of
# `mope bench --device cuda`, run ON the GPU machine from the repository root:
#
#     bash cuda/devcheck2.sh
#
# Built beforehand here (no Go on the device) and carried:
#   make -C cuda testbin && make build mope-cuda
#   carry ["cuda/cuda.test", "bin/mope", "bin/mope-cuda"], timeout_s 300
#
# Steps (each under `timeout`, all within a 200 s budget; about 1.5 min in
# practice, most of it loading the random ViT-B/32 checkpoint):
#   1. machine, cuBLAS lookup (as devcheck.sh)
#   2. the new tagged tests: TestTextEncoder (ViT-B/32 text tower dense and
#      pruned vs the CPU, own SGEMM / cuBLAS fp32 <= 1e-5, TF32 <= 1e-3),
#      TestTextEncoderErrors, TestTextInputKernels, and TestVisionEncoder
#      again (vision.go now shares its blocks with the text tower)
#   3. bin/mope init --preset ViT-B/32 (random weights, no vocabulary)
#   4. bin/mope-cuda bench --device cuda and cuda:tf32, both towers, batch 1
#      and 256 (random pixels; random token ids, 77 per text; timings include
#      the host-device copies)
#   5. bin/mope bench on the CPU, batch 32, GOMAXPROCS=16, fast engine
#   6. if time is left: go benchmark of the text tower alone (device events)
#
# Output: $OUT/devcheck2.log (everything) and $OUT/summary.txt (the table).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/devcheck2.log"
sum="$out/summary.txt"
: >"$log"
: >"$sum"
t0=$(date +%s)
BUDGET=${BUDGET:-200}
# PRESET and BATCHES are for a dry run elsewhere (e.g. the emulator build:
# PRESET=tiny BATCHES="1 4").
PRESET=${PRESET:-ViT-B/32}
BATCHES=${BATCHES:-1 256}
say() { echo "[devcheck2 +$(($(date +%s) - t0))s] $*" | tee -a "$log"; }
# step LIMIT CMD...: runs CMD under timeout min(LIMIT, what is left of the
# budget); returns CMD's status (124: timed out, 125: skipped).
step() {
	local limit=$1 left
	shift
	left=$((BUDGET - ($(date +%s) - t0)))
	if [ "$left" -lt 8 ]; then
		say "SKIPPED (budget spent): $*"
		return 125
	fi
	[ "$limit" -gt "$left" ] && limit=$left
	timeout -k 3 "$limit" "$@"
}

say "machine"
{
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
	ldd --version 2>&1 | head -1
	nproc
} | tee -a "$log" "$sum" >/dev/null

if [ -z "${MOPECLIP_CUBLAS:-}" ]; then
	MOPECLIP_CUBLAS=$(
		{
			ldconfig -p 2>/dev/null | awk '/libcublas\.so\.[0-9]+ /{print $NF}'
			ls /usr/local/cuda*/lib64/libcublas.so.[0-9]* /usr/local/cuda*/targets/*/lib/libcublas.so.[0-9]* 2>/dev/null
		} | grep -E '/libcublas\.so\.[0-9]+(\.[0-9.]+)?$' |
			sed -E 's/.*libcublas\.so\.([0-9]+).*/\1 &/' | sort -k1,1nr | head -1 | cut -d' ' -f2-
	)
fi
if [ -n "$MOPECLIP_CUBLAS" ]; then
	export MOPECLIP_CUBLAS
	export LD_LIBRARY_PATH="$(dirname "$MOPECLIP_CUBLAS")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	say "cuBLAS: $MOPECLIP_CUBLAS"
else
	say "cuBLAS: none found; cuBLAS/TF32 tests skip, cuda:tf32 bench fails"
fi
echo "cuBLAS: ${MOPECLIP_CUBLAS:-none}" >>"$sum"
for f in cuda/cuda.test bin/mope bin/mope-cuda; do
	[ -x "$f" ] || say "MISSING $f (build here: make -C cuda testbin; make build mope-cuda; and carry it)"
done

say "tests"
(cd cuda && step 70 ./cuda.test -test.v -test.count=1 -test.timeout 65s \
	-test.run '^(TestDeviceInfo|TestPTXSignatures|TestTextInputKernels|TestTextEncoder|TestTextEncoderErrors|TestVisionEncoder)$' >>"$log" 2>&1)
test_rc=$?
say "tests exit status $test_rc"
{
	echo "== tests (exit $test_rc) =="
	grep -E '^(--- FAIL|--- SKIP|FAIL|PASS|ok|panic)|^ERRORS (clip-text|clip-vision|text-embed|gather-rows)|cuda tests:|relative error' "$log" | head -40
} >>"$sum"

model=/tmp/devcheck2-model
mope=bin/mope
[ -x "$mope" ] || mope=bin/mope-cuda
say "init $model"
rm -rf "$model"
step 40 "$mope" init --preset "$PRESET" --out "$model" --vocab "" >>"$log" 2>&1
say "init exit status $?"

echo "== mope bench (items/s; GPU rows include host-device copies) ==" >>"$sum"
printf '%-10s %-6s %12s %12s  %s\n' device batch images/s texts/s note >>"$sum"
row() { # device batch json-file
	python3 - "$@" <<'PY' >>"$sum" 2>&1
import json, sys
dev, b, f = sys.argv[1:4]
try:
    r = json.loads(open(f).read().strip().splitlines()[-1])
    note = r.get("device") or " ".join(k for k in r["kernels"].split() if k.startswith("sgemm="))
    print(f"{dev:<10} {b:<6} {r['image_per_s']:12.1f} {r['text_per_s']:12.1f}  engine {r['engine']}, threads {r['threads']}, {note}")
except Exception as e:
    print(f"{dev:<10} {b:<6} {'-':>12} {'-':>12}  failed ({e.__class__.__name__}); see devcheck2.log")
PY
}
for dev in cuda cuda:tf32; do
	for B in $BATCHES; do
		say "bench --device $dev --batch $B"
		j=$(mktemp)
		step 45 bin/mope-cuda bench --model "$model" --device "$dev" --batch "$B" --rounds 5 --warmup 2 --json >"$j" 2>>"$log"
		say "exit status $?: $(cat "$j")"
		row "$dev" "$B" "$j"
		rm -f "$j"
	done
done
say "cpu bench --batch 32, GOMAXPROCS=16"
j=$(mktemp)
(export GOMAXPROCS=16; step 60 "$mope" bench --model "$model" --batch 32 --threads 16 --rounds 3 --warmup 1 --json >"$j" 2>>"$log")
say "exit status $?: $(cat "$j")"
row cpu 32 "$j"
rm -f "$j"

say "go benchmark: text tower alone"
(cd cuda && step 60 ./cuda.test -test.run '^$' -test.bench 'TextEncoder' -test.benchtime 20x -test.timeout 55s >>"$log" 2>&1)
{
	echo "== BenchmarkTextEncoder (device time, ViT-B/32 text tower, 77 tokens; img/s = texts/s) =="
	grep -E '^BenchmarkTextEncoder' "$log"
} >>"$sum"
say "done; $log, $sum"
cat "$sum"
exit "$test_rc"
