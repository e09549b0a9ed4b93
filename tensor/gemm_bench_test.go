package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mopeclip/mopeclip/internal/cputime"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// GEMM benchmarks. Each reports GFLOP/s (2·m·n·k per op). They run on as
// many threads as GOMAXPROCS: use -cpu 1 (the default single-thread figures
// in bench/README.md) or -cpu 1,2. Compare BenchmarkSgemm/<variant>/<shape>
// with BenchmarkSgemmGonum/<shape> from the same run.
//
// Shape names are <op>_m<M>k<K>n<N> in GEMM dimensions (C is M×N, inner K):
//
//	sq    A·B, square
//	fwd   A·Bᵀ, B stored [N,K] like Linear weights (y = x·Wᵀ)
//	dX    A·B: input gradient dX = dY·W  (M tokens, K = out, N = in)
//	dW    Aᵀ·B: weight gradient dW = dYᵀ·X (M = out, K = tokens, N = in)

type benchShape struct {
	name    string
	tA, tB  blas.Transpose
	m, k, n int
}

// clipShapes are the Linear layers of CLIP ViT-B (tokens × in × out).
var clipShapes = [][3]int{
	{50, 768, 768}, {50, 768, 3072}, {50, 3072, 768},
	{400, 768, 768}, {400, 768, 3072}, {400, 3072, 768},
	{77, 512, 2048}, {77, 2048, 512},
}

func benchShapes() []benchShape {
	var s []benchShape
	for _, d := range []int{256, 512, 1024, 2048} {
		s = append(s, benchShape{fmt.Sprintf("sq_m%dk%dn%d", d, d, d), blas.NoTrans, blas.NoTrans, d, d, d})
	}
	for _, c := range clipShapes {
		tok, in, out := c[0], c[1], c[2]
		s = append(s,
			benchShape{fmt.Sprintf("fwd_m%dk%dn%d", tok, in, out), blas.NoTrans, blas.Trans, tok, in, out},
			benchShape{fmt.Sprintf("dX_m%dk%dn%d", tok, out, in), blas.NoTrans, blas.NoTrans, tok, out, in},
			benchShape{fmt.Sprintf("dW_m%dk%dn%d", out, tok, in), blas.Trans, blas.NoTrans, out, tok, in},
		)
	}
	return s
}

// benchData returns A, B, C with the leading dimensions of shape sh.
func benchData(sh benchShape) (a []float32, lda int, b []float32, ldb int, c []float32) {
	r := rand.New(rand.NewPCG(9, 9))
	lda, ldb = sh.k, sh.n
	if sh.tA == blas.Trans {
		lda = sh.m
	}
	if sh.tB == blas.Trans {
		ldb = sh.k
	}
	return randSlice(r, sh.m*sh.k), lda, randSlice(r, sh.k*sh.n), ldb, make([]float32, sh.m*sh.n)
}

// benchLoop runs f b.N times (b.Loop) and reports GFLOP/s of wall time and
// cpuGFLOP/s of this process's CPU time: on a shared machine the second is
// the steadier measure of the code (with -cpu 2 it is per core).
func benchLoop(b *testing.B, sh benchShape, f func()) {
	cpu0 := int64(cputime.Process())
	for b.Loop() {
		f()
	}
	cpu := int64(cputime.Process()) - cpu0
	flops := 2 * float64(sh.m) * float64(sh.n) * float64(sh.k) * float64(b.N)
	b.ReportMetric(flops/float64(b.Elapsed().Nanoseconds()), "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(flops/float64(cpu), "cpuGFLOP/s")
	}
}

func BenchmarkSgemm(b *testing.B) {
	for _, v := range sgemmK.Variants() {
		b.Run(v.Name, func(b *testing.B) {
			restore, _ := sgemmK.Use(v.Name)
			defer restore()
			for _, sh := range benchShapes() {
				b.Run(sh.name, func(b *testing.B) {
					a, lda, bb, ldb, c := benchData(sh)
					benchLoop(b, sh, func() { Sgemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, lda, bb, ldb, 0, c, sh.n) })
				})
			}
		})
	}
}

func BenchmarkSgemmGonum(b *testing.B) {
	var impl gonum.Implementation
	for _, sh := range benchShapes() {
		b.Run(sh.name, func(b *testing.B) {
			a, lda, bb, ldb, c := benchData(sh)
			benchLoop(b, sh, func() { impl.Sgemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, lda, bb, ldb, 0, c, sh.n) })
		})
	}
}

// BenchmarkSgemmPacked is the inference path: weights packed once, then
// y = x·Wᵀ (fwd shapes), and the same with a bias + QuickGELU epilogue.
func BenchmarkSgemmPacked(b *testing.B) {
	for _, v := range sgemmK.Variants() {
		b.Run(v.Name, func(b *testing.B) {
			restore, _ := sgemmK.Use(v.Name)
			defer restore()
			for _, c := range clipShapes {
				sh := benchShape{fmt.Sprintf("fwd_m%dk%dn%d", c[0], c[1], c[2]), blas.NoTrans, blas.Trans, c[0], c[1], c[2]}
				a, lda, w, ldw, out := benchData(sh)
				pb := PackB(blas.Trans, sh.k, sh.n, w, ldw)
				b.Run(sh.name, func(b *testing.B) {
					benchLoop(b, sh, func() { SgemmPacked(blas.NoTrans, sh.m, 1, a, lda, pb, 0, out, sh.n) })
				})
				if c[2] > c[1] { // the MLP up-projection: bias + QuickGELU
					ep := Epilogue{Bias: make([]float32, sh.n), Act: ActQuickGELU}
					b.Run(sh.name+"_biasQuickGELU", func(b *testing.B) {
						benchLoop(b, sh, func() { SgemmPackedEpilogue(blas.NoTrans, sh.m, 1, a, lda, pb, 0, out, sh.n, ep) })
					})
				}
			}
		})
	}
}

// BenchmarkGemmMicroKernel times the micro-kernel alone on L1-resident
// panels (kc = 256): the ceiling the driver can reach.
func BenchmarkGemmMicroKernel(b *testing.B) {
	for _, v := range sgemmK.Variants() {
		kr := v.Fn
		b.Run(v.Name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(10, 10))
			const k = 256
			a, bp, c := randSlice(r, k*kr.mr), randSlice(r, k*kr.nr), make([]float32, kr.mr*kr.nr)
			sh := benchShape{m: kr.mr, n: kr.nr, k: k}
			benchLoop(b, sh, func() { kr.fn(k, &a[0], &bp[0], &c[0], kr.nr, 1, 0) })
		})
	}
}
