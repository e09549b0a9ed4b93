#!/bin/sh
# Interleaved Go vs PyTorch training-step throughput at one thread.
# Usage: bench/train/compare.sh [rounds]   (run from the repository root)
# Each round runs BenchmarkTrainStep (-cpu 1, 3 steps) and then
# torch_train_step.py (1 thread); the medians over rounds are printed last.
set -eu
rounds=${1:-3}
py=${PYTHON:-/usr/bin/python3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -c -o "$out.test" ./bench/train
trap 'rm -f "$out" "$out.test"' EXIT
i=0
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	"$out.test" -test.run '^$' -test.bench BenchmarkTrainStep -test.benchtime 3x -test.cpu 1 |
		awk '/^BenchmarkTrainStep/ { for (f = 1; f < NF; f++) { if ($(f+1) == "tokens/s") w = $f; if ($(f+1) == "tokens/cpu-s") c = $f }
			printf "go    round %d tokens/s=%s tokens/cpu-s=%s\n", '"$i"', w, c }' | tee -a "$out"
	"$py" bench/train/torch_train_step.py --threads 1 --warmup 1 --steps 1 --repeats 3 |
		sed -n 's/.*tokens\/s=\([0-9.]*\) tokens\/cpu-s=\([0-9.]*\).*/torch round '"$i"' tokens\/s=\1 tokens\/cpu-s=\2/p' | tee -a "$out"
done
for who in go torch; do
	for m in tokens/s tokens/cpu-s; do
		grep "^$who " "$out" | tr ' ' '\n' | grep "^$m=" | cut -d= -f2 | sort -g |
			awk -v who="$who" -v m="$m" '{ v[NR] = $1 } END { printf "%-5s median %s = %.1f (%d runs)\n", who, m, (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2, NR }'
	done
done
