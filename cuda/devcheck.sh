#!/usr/bin/env bash
# devcheck.sh: the device check of package cuda, run ON the GPU machine from
# the repository root (the device tool's working directory):
#
#     bash cuda/devcheck.sh
#
# It needs cuda/cuda.test, the tagged test binary built beforehand on a
# machine with the toolkit (make -C cuda testbin; the device tool must carry
# it: carry ["cuda/cuda.test"]), or a Go toolchain and cuda.h on this
# machine to build it. Go is not needed otherwise. Steps, each with a time
# limit so that the whole run stays under 8 minutes:
#
#   1. the tests (every kernel against the CPU reference, CLIP embeddings)
#   2. the benchmarks (attention, GEMM, ViT-B/32 encoder)
#   3. PyTorch scaled_dot_product_attention on the same attention shapes
#   4. a summary table
#
# Logs go to $OUT/devcheck (the device tool returns $OUT), else /tmp/devcheck.
# Exit status: that of the tests.
set -uo pipefail
cd "$(dirname "$0")"
out="${OUT:-/tmp}/devcheck"
mkdir -p "$out"
t0=$(date +%s)
say() { echo "[devcheck +$(($(date +%s) - t0))s] $*"; }

say "machine"
{
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
	ldd --version 2>&1 | head -1
	"${PYTHON:-python3}" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1
} | tee "$out/machine.txt"

# cuBLAS is dlopen'ed by the binary: point it at one (PyTorch's wheels carry
# libcublas.so.12/13 under site-packages/nvidia/cublas/lib or torch/lib).
if [ -z "${MOPECLIP_CUBLAS:-}" ]; then
	MOPECLIP_CUBLAS=$(
		{
			ldconfig -p 2>/dev/null | awk '/libcublas\.so\.[0-9]+ /{print $NF}'
			ls /usr/local/cuda*/lib64/libcublas.so.[0-9]* /usr/local/cuda*/targets/*/lib/libcublas.so.[0-9]* 2>/dev/null
			"${PYTHON:-python3}" - <<'PY' 2>/dev/null
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
	say "cuBLAS: $MOPECLIP_CUBLAS"
else
	say "cuBLAS: none found; cuBLAS/TF32 tests will skip"
fi

if [ ! -x ./cuda.test ]; then
	if command -v go >/dev/null 2>&1; then
		say "building cuda.test with $(go version)"
		inc=$(dirname "$(ls /usr/local/cuda/include/cuda.h /usr/include/cuda.h 2>/dev/null | head -1)")
		(cd .. && CGO_ENABLED=1 CGO_CFLAGS="-I$inc" CGO_LDFLAGS="-L/usr/local/cuda/lib64/stubs -L/usr/local/cuda/lib64" \
			go test -c -tags cuda -o cuda/cuda.test ./cuda) || { say "build failed"; exit 2; }
	else
		say "no cuda/cuda.test and no Go toolchain: build it elsewhere (make -C cuda testbin) and carry it"
		exit 2
	fi
fi

say "tests"
timeout 210 ./cuda.test -test.v -test.count=1 -test.timeout 200s 2>&1 | tee "$out/test.log" | grep -E '^(--- FAIL|FAIL|PASS|ok|panic|device:|peaks|cuBLAS:|ERRORS)|cuda tests:'
test_rc=${PIPESTATUS[0]}
say "tests exit status $test_rc"

say "benchmarks"
timeout 170 ./cuda.test -test.run '^$' -test.bench . -test.benchtime 20x -test.timeout 160s 2>&1 | tee "$out/bench.log" | grep -E '^(Benchmark|FAIL|panic)|SKIP'
say "benchmarks exit status ${PIPESTATUS[0]}"

say "pytorch attention"
timeout 80 "${PYTHON:-python3}" torch_attn.py attn_shapes.txt 2>&1 | tee "$out/torch.log"

say "summary"
python3 devcheck_table.py "$out/test.log" "$out/bench.log" "$out/torch.log" | tee "$out/summary.txt"
say "done; logs in $out"
exit "$test_rc"
