#!/usr/bin/env bash
# Compiles kernels/*.cu to PTX for every architecture in $ARCHS (default
# "80 90") into the directory $1 (default ptx/), one file per kernel source
# and architecture: ptx/<name>.sm_<arch>.ptx. Run from cuda/ (make ptx does).
set -euo pipefail
out=${1:-ptx}
NVCC=${NVCC:-nvcc}
ARCHS=${ARCHS:-80 90}
# No -lineinfo/-G: the PTX then carries no file paths and is reproducible.
FLAGS=${NVCCFLAGS:--O3 -std=c++17}
mkdir -p "$out"
for src in kernels/*.cu; do
	name=$(basename "$src" .cu)
	for a in $ARCHS; do
		# shellcheck disable=SC2086
		"$NVCC" $FLAGS -arch=sm_"$a" -ptx -o "$out/$name.sm_$a.ptx" "$src"
	done
done
