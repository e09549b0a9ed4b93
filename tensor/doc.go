// Package tensor holds dense float32 tensors and the CPU kernels that work on
// them: GEMM (Sgemm, with a pre-packed-B path for inference) and the vector
// kernels a transformer needs (softmax, layer norm, GELU, QuickGELU, bias add,
// reductions).
//
// Every kernel has a plain Go reference next to it, stated as a simple loop in
// its doc comment, and one or more fast variants (AVX-512, AVX2+FMA, arm64 NEON,
// and a portable pure-Go one). Each op has exactly one Registry; variants
// register themselves at start-up when the CPU (as reported by
// github.com/klauspost/cpuid/v2) supports them, and the best one is used. The
// environment variable MOPECLIP_KERNELS=generic|avx2|avx512|neon forces a
// variant for tests and benchmarks; building with -tags noasm leaves only the
// pure-Go variants.
//
// Parallel work (the thread grid of a GEMM; the inference engine's attention
// heads and items) runs through Parallel, on one process-wide set of worker
// goroutines that spin briefly between regions instead of being started or
// woken per region (parallel.go). Packed weight matrices live in 2 MiB-aligned
// buffers backed by transparent huge pages on Linux (hugepage.go), and the
// AVX-512 GEMM kernels prefetch the next weight panel into L2, so that a
// forward pass of one image, whose weights stream from memory, overlaps that
// stream with its arithmetic.
package tensor
