package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// BenchmarkSgemmPackedBF16 compares the bf16 and float32 pre-packed GEMMs on
// the ViT-B/32 weight shapes at batch 32 (M = 1600 tokens; fc1: K = 768,
// N = 3072; fc2: K = 3072, N = 768), with the active kernels:
//
//	go test -run X -bench PackedBF16 -cpu 1 ./tensor/
func BenchmarkSgemmPackedBF16(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][3]int{{1600, 768, 3072}, {1600, 3072, 768}, {50, 768, 3072}} {
		m, k, n := sh[0], sh[1], sh[2]
		a, w := randSlice(r, m*k), randSlice(r, n*k)
		c := make([]float32, m*n)
		pf := PackB(blas.Trans, k, n, w, k)
		ph := PackBBF16(blas.Trans, k, n, w, k)
		name := fmt.Sprintf("m%d_k%d_n%d", m, k, n)
		b.Run(name+"/f32", func(b *testing.B) {
			b.SetBytes(int64(2 * m * n * k)) // "bytes" = FLOPs: MB/s reads as MFLOP/s
			for b.Loop() {
				SgemmPacked(blas.NoTrans, m, 1, a, k, pf, 0, c, n)
			}
		})
		b.Run(name+"/bf16", func(b *testing.B) {
			b.SetBytes(int64(2 * m * n * k))
			for b.Loop() {
				SgemmPackedBF16(blas.NoTrans, m, 1, a, k, ph, 0, c, n)
			}
		})
	}
}

// BenchmarkPackABF16 measures the rounding and packing of activations (an
// fc2 input at batch 32: 1600×3072) into each kernel's A panels.
func BenchmarkPackABF16(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	m, k := 1600, 3072
	a := randSlice(r, m*k)
	tmp := make([]uint32, bf16KC/2)
	for _, v := range bf16K.Variants() {
		mr, aw := v.Fn.mr, 1
		if v.Fn.wideA {
			aw = 2
		}
		dst := make([]uint32, roundUp(m, mr)*ceilDiv(k, 2)*aw)
		b.Run(v.Name, func(b *testing.B) {
			b.SetBytes(int64(4 * m * k))
			for b.Loop() {
				for pc := 0; pc < k; pc += bf16KC {
					packABF16(false, a, k, 0, m, pc, min(bf16KC, k-pc), mr, dst[pc/2*roundUp(m, mr)*aw:], v.Fn.cvt, tmp, v.Fn.wideA)
				}
			}
		})
	}
}
