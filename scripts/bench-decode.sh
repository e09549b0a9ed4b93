#!/bin/sh
# Side-by-side benchmark of JPEG decoding + CLIP preprocessing on one core:
# Go (clip/imageproc, BenchmarkDecodePreprocessJPEG) and Pillow
# (scripts/bench-decode.py) on the same files, alternated REPEAT times; it
# prints each run and the median ratio. Rates are per CPU-second of the
# process (both pinned to one core with taskset; Go with GOMAXPROCS=1), so
# a busy machine shows in neither; caches shared with other work still do.
#
#   scripts/bench-decode.sh DIR_OF_JPEGS [REPEAT]
set -eu
dir=${1:?usage: scripts/bench-decode.sh DIR_OF_JPEGS [REPEAT]}
repeat=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
go test -c -o /tmp/imageproc-bench.test "$root/clip/imageproc"
ratios=""
for i in $(seq "$repeat"); do
	g=$(cd "$root/clip/imageproc" && MOPECLIP_BENCH_JPEGS=$dir GOMAXPROCS=1 taskset -c 0 /tmp/imageproc-bench.test \
		-test.run XXX -test.bench DecodePreprocessJPEG -test.benchtime 200x | awk '/images\/s/ {for (k = 1; k < NF; k++) if ($(k+1) == "images/cpu-s") print $k}')
	p=$(taskset -c 0 /usr/bin/python3 "$root/scripts/bench-decode.py" "$dir" 200 | awk '{print $2}')
	r=$(echo "$g $p" | awk '{printf "%.3f", $1 / $2}')
	echo "run $i: go $g images/cpu-s, pillow $p images/cpu-s, ratio $r"
	ratios="$ratios $r"
done
echo "$ratios" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print "median ratio go/pillow: " a[int((NR + 1) / 2)]}'
