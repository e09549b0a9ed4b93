package tensor

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
)

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, with
// the semantics of gonum.org/v1/gonum/blas.Float32Level3.Sgemm: op(A) is m×k,
// op(B) is k×n, C is m×n, and lda/ldb/ldc are row strides. When beta == 0 the
// old contents of C are ignored (NaN included); when alpha == 0 or k == 0, A
// and B are not read. Invalid arguments panic.
//
// It packs A and B into the panels of the active micro-kernel (registry
// "sgemm": avx512, avx2, neon or generic; see gemm_driver.go) and runs on up
// to GOMAXPROCS workers (Parallel) when the problem is large enough, splitting M and
// N only: results are bit-identical whatever GOMAXPROCS is. For a B used
// many times (weights), PackB and SgemmPacked avoid repacking it.
//
// As a plain loop:
//
//	for i := 0; i < m; i++ {
//		for j := 0; j < n; j++ {
//			var s float32
//			for l := 0; l < k; l++ {
//				s += opA(i, l) * opB(l, j)
//			}
//			c[i*ldc+j] = alpha*s + beta*c[i*ldc+j] // beta == 0: alpha*s
//		}
//	}
func Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkSgemm(tA, tB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	g := gemmArgs{
		tA: isTrans(tA), tB: isTrans(tB), m: m, n: n, k: k,
		alpha: alpha, beta: beta, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
	}
	g.run(sgemmK.Fn(), nil)
}

func isTrans(t blas.Transpose) bool { return t == blas.Trans || t == blas.ConjTrans }

// checkSgemm panics with a gonum-style message on invalid arguments.
func checkSgemm(tA, tB blas.Transpose, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	for _, t := range []blas.Transpose{tA, tB} {
		if t != blas.NoTrans && t != blas.Trans && t != blas.ConjTrans {
			panic(fmt.Sprintf("tensor.Sgemm: bad transpose %v", t))
		}
	}
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("tensor.Sgemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	rowsA, colsA := m, k
	if isTrans(tA) {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if isTrans(tB) {
		rowsB, colsB = n, k
	}
	if lda < max(1, colsA) {
		panic(fmt.Sprintf("tensor.Sgemm: bad lda %d for %d columns", lda, colsA))
	}
	if ldb < max(1, colsB) {
		panic(fmt.Sprintf("tensor.Sgemm: bad ldb %d for %d columns", ldb, colsB))
	}
	if ldc < max(1, n) {
		panic(fmt.Sprintf("tensor.Sgemm: bad ldc %d for %d columns", ldc, n))
	}
	if m == 0 || n == 0 {
		return
	}
	if k > 0 {
		if len(a) < lda*(rowsA-1)+colsA {
			panic(fmt.Sprintf("tensor.Sgemm: short A: len %d < %d", len(a), lda*(rowsA-1)+colsA))
		}
		if len(b) < ldb*(rowsB-1)+colsB {
			panic(fmt.Sprintf("tensor.Sgemm: short B: len %d < %d", len(b), ldb*(rowsB-1)+colsB))
		}
	}
	if len(c) < ldc*(m-1)+n {
		panic(fmt.Sprintf("tensor.Sgemm: short C: len %d < %d", len(c), ldc*(m-1)+n))
	}
}

// sgemmRef is the plain-loop reference (float32 accumulation), the
// executable form of Sgemm's doc comment (TestGemmMatchesRef).
func sgemmRef(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := isTrans(tA), isTrans(tB)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for l := 0; l < k; l++ {
				var av, bv float32
				if ta {
					av = a[l*lda+i]
				} else {
					av = a[i*lda+l]
				}
				if tb {
					bv = b[j*ldb+l]
				} else {
					bv = b[l*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}
