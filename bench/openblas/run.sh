#!/usr/bin/env bash
# tensor's SGEMM vs OpenBLAS on the shapes of bench/README.md, interleaved:
# ITER times (OpenBLAS, then Sgemm and SgemmPacked with the avx512 kernel),
# one thread, then two. Prints the raw lines; bench/README.md's tables are
# their medians (cpuGFLOP/s: FLOPs per CPU second of the process).
#
#   bench/openblas/run.sh [ITER=3] [THREADS=1,2]
# Needs gcc and Debian's libopenblas-pthread-dev.
set -euo pipefail
iter=${1:-3}
threads=${2:-1,2}
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${TMPDIR:-/tmp}/sgemm_bench
gcc -O2 -o "$bin" "$repo/bench/openblas/sgemm_bench.c" -lopenblas
shapes='(sq_m512k512n512|sq_m1024k1024n1024|fwd_m400k768n768|fwd_m400k768n3072|fwd_m400k3072n768|fwd_m50k768n3072|fwd_m50k3072n768|fwd_m77k512n2048)$'
cd "$repo"
go test -c -o "${TMPDIR:-/tmp}/tensor.test" ./tensor/
for t in ${threads//,/ }; do
	for i in $(seq "$iter"); do
		echo "## threads $t round $i $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
		OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} "$bin" "$t" 3
		"${TMPDIR:-/tmp}/tensor.test" -test.run '^$' -test.bench "^BenchmarkSgemm(Packed)?/avx512/$shapes" -test.cpu "$t" -test.benchtime 0.3s | grep Benchmark
	done
done
