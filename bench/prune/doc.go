// Package prune holds benchmarks of structured pruning for kernel
// engineers: a ViT-B/32-sized transformer block (width 768, 12 heads of 64,
// MLP 3072) at 50 and 400 tokens, dense, with half its heads and half its
// FFN neurons removed by edit (sliced weights), and the same removal by mask
// (HeadKeep for heads, zeroed FFN neurons: still computed), on the
// reference forward (BenchmarkBlock) and on the fast inference engine
// (BenchmarkBlockFast); and the MoPE scoring throughput: with and without
// the prefix cache (BenchmarkScoreLayers), and per scoring engine with the
// extrapolated time of the full ViT-B/32 target (BenchmarkScoreModules).
//
//	go test -run '^$' -bench Block -count 6 -cpu 1 ./bench/prune | tee new.txt
//	benchstat old.txt new.txt
//	MOPE_BENCH_IMAGES=32 go test -run '^$' -bench ScoreModules -benchtime 1x ./bench/prune
//
// GFLOP/s counts the FLOPs the variant needs (2·clip.LayerMACs of the kept
// heads and neurons), so the masked block's GFLOP/s shows how much of its
// time is wasted on masked work.
package prune
