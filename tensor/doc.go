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
package tensor
