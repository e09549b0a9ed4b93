package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// BenchmarkSgemmPackedInt8 compares the int8, bf16 and float32 pre-packed
// GEMMs on the CLIP ViT-B weight shapes (tokens × in × out, y = x·Wᵀ), with
// the active kernels, interleaved per shape. GFLOP/s counts 2·m·n·k
// "FLOPs" (multiply-adds, whatever the type):
//
//	go test -run X -bench PackedInt8 -cpu 1,2 ./tensor/
func BenchmarkSgemmPackedInt8(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, sh := range append([][3]int{{1600, 768, 3072}, {1600, 3072, 768}}, clipShapes...) {
		m, k, n := sh[0], sh[1], sh[2]
		a, w := randSlice(r, m*k), randSlice(r, n*k)
		c := make([]float32, m*n)
		bs := benchShape{m: m, k: k, n: n}
		pf := PackB(blas.Trans, k, n, w, k)
		ph := PackBBF16(blas.Trans, k, n, w, k)
		pq := PackBInt8(blas.Trans, k, n, w, k)
		name := fmt.Sprintf("m%d_k%d_n%d", m, k, n)
		b.Run(name+"/f32", func(b *testing.B) {
			benchLoop(b, bs, func() { SgemmPacked(blas.NoTrans, m, 1, a, k, pf, 0, c, n) })
		})
		b.Run(name+"/bf16", func(b *testing.B) {
			benchLoop(b, bs, func() { SgemmPackedBF16(blas.NoTrans, m, 1, a, k, ph, 0, c, n) })
		})
		b.Run(name+"/int8", func(b *testing.B) {
			benchLoop(b, bs, func() { SgemmPackedInt8(blas.NoTrans, m, 1, a, k, pq, 0, c, n) })
		})
	}
}
