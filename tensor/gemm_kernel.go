package tensor

import "unsafe"

// gemmKernel is one GEMM micro-kernel together with the cache blocking that
// suits it. The driver (gemm.go) packs op(A) into mr-row panels and op(B) into
// nr-column panels (pack.go) and calls fn once per mr×nr tile of C.
//
// fn(k, a, b, c, ldc, alpha, beta) has this meaning, as a plain Go loop over a
// packed A panel a (k×mr, a[l*mr+i] = A(i,l)) and a packed B panel b (k×nr,
// b[l*nr+j] = B(l,j)), writing an mr×nr tile of C with row stride ldc:
//
//	for i := 0; i < mr; i++ {
//		for j := 0; j < nr; j++ {
//			var s float32
//			for l := 0; l < k; l++ {
//				s += a[l*mr+i] * b[l*nr+j]
//			}
//			if beta == 0 {
//				c[i*ldc+j] = alpha * s // old C (NaN included) ignored
//			} else {
//				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
//			}
//		}
//	}
//
// The tile is always whole: the driver routes partial edge tiles through a
// small mr×nr buffer, so fn never needs masks. k ≥ 1.
//
// edge, when set, holds kernels for tiles cut short at the bottom of C:
// edge[r] (0 < r < mr) is fn restricted to rows i < r, writing no other row
// and giving each element exactly the value fn would. They save the
// mr−r wasted rows of work (M = 50 tokens is 8 rows short of 4×14).
type gemmKernel struct {
	mr, nr int // tile shape
	kc     int // depth of a K block: one kc×nr B micro-panel should sit in L1
	mc     int // rows of an A block (mc×kc in L2); a multiple of mr
	nc     int // columns of a B block (kc×nc in L3); a multiple of nr
	fn     func(k int, a, b, c *float32, ldc int, alpha, beta float32)
	edge   []func(k int, a, b, c *float32, ldc int, alpha, beta float32)
}

// sgemmK is the registry of GEMM micro-kernels (with their blocking). All of
// Sgemm, PackB and SgemmPacked use the active variant.
var sgemmK = NewRegistry[*gemmKernel]("sgemm")

func init() {
	sgemmK.Register(Generic, &gemmKernel{mr: 2, nr: 4, kc: 256, mc: 128, nc: 2048, fn: sgemmKernelGeneric})
}

// sgemmKernelGeneric is the portable 2×4 micro-kernel (the pure-Go twin of
// the assembly ones; a 2×4 tile keeps its 8 accumulators and operands in
// registers on amd64, where larger scalar tiles spill). Its meaning, as a
// plain Go loop with mr = 2, nr = 4:
//
//	for i := 0; i < 2; i++ {
//		for j := 0; j < 4; j++ {
//			var s float32
//			for l := 0; l < k; l++ {
//				s += a[l*2+i] * b[l*4+j]
//			}
//			if beta == 0 {
//				c[i*ldc+j] = alpha * s
//			} else {
//				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
//			}
//		}
//	}
func sgemmKernelGeneric(k int, a, b, c *float32, ldc int, alpha, beta float32) {
	ap := unsafe.Slice(a, 2*k)
	bp := unsafe.Slice(b, 4*k)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	l := 0
	for ; l+2 <= k; l += 2 { // two steps of K per iteration
		av := ap[2*l : 2*l+4 : 2*l+4]
		bv := bp[4*l : 4*l+8 : 4*l+8]
		a0, a1 := av[0], av[1]
		c00 += a0 * bv[0]
		c01 += a0 * bv[1]
		c02 += a0 * bv[2]
		c03 += a0 * bv[3]
		c10 += a1 * bv[0]
		c11 += a1 * bv[1]
		c12 += a1 * bv[2]
		c13 += a1 * bv[3]
		a0, a1 = av[2], av[3]
		c00 += a0 * bv[4]
		c01 += a0 * bv[5]
		c02 += a0 * bv[6]
		c03 += a0 * bv[7]
		c10 += a1 * bv[4]
		c11 += a1 * bv[5]
		c12 += a1 * bv[6]
		c13 += a1 * bv[7]
	}
	if l < k {
		av := ap[2*l : 2*l+2 : 2*l+2]
		bv := bp[4*l : 4*l+4 : 4*l+4]
		a0, a1 := av[0], av[1]
		c00 += a0 * bv[0]
		c01 += a0 * bv[1]
		c02 += a0 * bv[2]
		c03 += a0 * bv[3]
		c10 += a1 * bv[0]
		c11 += a1 * bv[1]
		c12 += a1 * bv[2]
		c13 += a1 * bv[3]
	}
	cs := unsafe.Slice(c, ldc+4)
	storeRow4(cs[0:4:4], c00, c01, c02, c03, alpha, beta)
	storeRow4(cs[ldc:ldc+4:ldc+4], c10, c11, c12, c13, alpha, beta)
}

func storeRow4(r []float32, s0, s1, s2, s3, alpha, beta float32) {
	if beta == 0 {
		r[0], r[1], r[2], r[3] = alpha*s0, alpha*s1, alpha*s2, alpha*s3
		return
	}
	r[0] = alpha*s0 + beta*r[0]
	r[1] = alpha*s1 + beta*r[1]
	r[2] = alpha*s2 + beta*r[2]
	r[3] = alpha*s3 + beta*r[3]
}
