#!/usr/bin/env bash
# bf16_device.sh: one short run (≈ 2 minutes) of the bfloat16 weight path on
# a machine with AVX-512 (and, hopefully, AVX512_BF16): CPU flags, the bf16
# kernel tests on the real VDPBF16PS, a GEMM micro-benchmark, and
# `mope bench` on ViT-B/32 at batch 32 on one thread, f32 vs bf16
# interleaved. Everything goes to ONE file, $OUT/bf16_device.txt (a scratch
# JSON file there is removed at the end).
#
# Build here first (the binaries are carried to the device machine):
#
#	go build -o bin/mope ./cmd/mope
#	go test -c -o bin/tensor.test ./tensor/
#
# then run from the repository root: OUT=/some/dir bash bench/bf16_device.sh
set -u
OUT=${OUT:-/tmp}
mkdir -p "$OUT"
exec >"$OUT/bf16_device.txt" 2>&1
t0=$(date +%s)
stamp() { echo; echo "=== $* (t=$(( $(date +%s) - t0 ))s)"; }

stamp "CPU"
grep -m1 'model name' /proc/cpuinfo
nproc
flags=$(grep -m1 '^flags' /proc/cpuinfo)
for f in avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16 avx512_vnni amx_bf16 amx_tile; do
	if grep -qw "$f" <<<"$flags"; then echo "  $f: yes"; else echo "  $f: NO"; fi
done
command -v objdump >/dev/null && objdump --version | head -1 || echo "objdump: missing (emulator tests skip)"

stamp "bf16 tests, native (bf16gemm avx512 = VDPBF16PS when avx512_bf16 is present)"
# TestBF16Kernels/avx512, TestSgemmPackedBF16/avx512, ...: the real
# instruction (or, without avx512_bf16, the AVX-512F widening kernel) against
# the plain-loop specification (bit for bit) and float64;
# TestBF16KernelEmulated/avx512: emulator vs the real instruction, including
# denormal/underflow data (the DAZ/FTZ assumptions), when objdump exists.
timeout 60 bin/tensor.test -test.run 'BF16|GemmKernelEmulated' -test.count=1 -test.v 2>&1 |
	grep -E '^(--- |=== NAME|ok|PASS|FAIL|panic)|bf16|BF16|emulated|differ|tiny' | grep -v '^=== RUN' | head -80
echo "tensor.test exit: ${PIPESTATUS[0]}"

stamp "GEMM micro-benchmark, one thread (MB/s = MFLOP/s)"
timeout 40 bin/tensor.test -test.run X -test.bench 'PackedBF16/m1600_k768' -test.benchtime 5x -test.count 2 -test.cpu 1 2>&1 | grep -E 'Benchmark|ok|FAIL'

stamp "mope init ViT-B/32"
[ -f /tmp/vitb32/model.safetensors ] || timeout 60 bin/mope init --preset ViT-B/32 --out /tmp/vitb32 2>&1 | tail -2
ls -la /tmp/vitb32

stamp "mope bench ViT-B/32 image tower, batch 32, 1 thread: f32 vs bf16 interleaved, 3 runs each"
# Each run: load + pack, 1 warm-up and 1 timed round of 32 images (its JSON
# line has image_per_s); 3 runs per dtype, interleaved. No run starts after
# 100 s, so the script stays near 2 minutes.
for round in 1 2 3; do
	for dt in f32 bf16; do
		if [ $(( $(date +%s) - t0 )) -gt 100 ]; then echo "--- round $round dtype $dt: skipped (time)"; continue; fi
		echo "--- round $round dtype $dt"
		timeout 40 bin/mope bench --model /tmp/vitb32 --tower image --batch 32 --threads 1 --dtype "$dt" --rounds 1 --warmup 1 --json | tee -a "$OUT/bf16_device.json"
		echo "exit ${PIPESTATUS[0]}"
	done
done
stamp "summary: median images/s per dtype (one sample per run), bf16/f32"
med() {
	grep "\"dtype\":\"$1\"" "$OUT/bf16_device.json" 2>/dev/null | sed 's/.*"image_per_s":\([0-9.e+-]*\).*/\1/' | sort -g |
		awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'
}
mf=$(med f32)
mb=$(med bf16)
echo "f32: ${mf:-none} images/s, bf16: ${mb:-none} images/s"
[ -n "$mf" ] && [ -n "$mb" ] && awk -v a="$mf" -v b="$mb" 'BEGIN {printf "bf16/f32 = %.2fx\n", b/a}'
rm -f "$OUT/bf16_device.json"
stamp "done"
