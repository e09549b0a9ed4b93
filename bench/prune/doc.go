// Package prune holds benchmarks of structured pruning for kernel
// engineers: a ViT-B/32-sized transformer block (width 768, 12 heads of 64,
// MLP 3072) at 50 and 400 tokens, dense, with half its heads and half its
// FFN neurons removed by edit (sliced weights), and the same removal by mask
// (HeadKeep for heads, zeroed FFN neurons: still computed); and the MoPE
// scoring throughput with and without the prefix cache.
//
//	go test -run '^$' -bench . -benchtime 5x -count 6 ./bench/prune | tee new.txt
//	benchstat old.txt new.txt
//
// GFLOP/s counts the FLOPs the variant needs (2·clip.LayerMACs of the kept
// heads and neurons), so the masked block's GFLOP/s shows how much of its
// time is wasted on masked work.
package prune
