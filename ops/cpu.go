package ops

import (
	"gonum.org/v1/gonum/blas"

	"github.com/mopeclip/mopeclip/tensor"
)

// CPU is the backend on package tensor's kernels. It is the default.
var CPU Backend = cpuBackend{}

type cpuBackend struct{}

func (cpuBackend) Name() string { return "cpu" }

func blasT(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

func (cpuBackend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if k == 0 || alpha == 0 {
		// C = beta·C without touching A and B (they may be empty).
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
			} else if beta != 1 {
				tensor.Scale(beta, row)
			}
		}
		return
	}
	tensor.Sgemm(blasT(transA), blasT(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (cpuBackend) Add(dst, a, b []float32)            { tensor.Add(dst, a, b) }
func (cpuBackend) Mul(dst, a, b []float32)            { tensor.Mul(dst, a, b) }
func (cpuBackend) Axpy(alpha float32, x, y []float32) { tensor.Axpy(alpha, x, y) }
func (cpuBackend) Scale(alpha float32, x []float32)   { tensor.Scale(alpha, x) }
func (cpuBackend) AddBias(x, bias []float32)          { tensor.AddBias(x, bias) }
func (cpuBackend) SumSq(x []float32) float32          { return tensor.SumSq(x) }
func (cpuBackend) Dot(x, y []float32) float32         { return tensor.Dot(x, y) }
func (cpuBackend) Softmax(x []float32, n int)         { tensor.SoftmaxRows(x, n) }
func (cpuBackend) GELU(dst, x []float32)              { tensor.GELU(dst, x) }
func (cpuBackend) QuickGELU(dst, x []float32)         { tensor.QuickGELU(dst, x) }

func (cpuBackend) LayerNorm(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
	tensor.LayerNorm(out, x, gamma, beta, n, eps, mean, rstd)
}

func (cpuBackend) MulAdd(dst, a, b []float32) {
	a = a[:len(dst)]
	b = b[:len(dst)]
	for i := range dst {
		dst[i] += a[i] * b[i]
	}
}

func (cpuBackend) ColSumAcc(dst, x []float32) {
	n := len(dst)
	for r := 0; r+n <= len(x); r += n {
		tensor.Add(dst, dst, x[r:r+n])
	}
}

// The backward kernels are tensor's, which overwrite dx; accumulation goes
// through a bounded scratch buffer and an Add.

// accBlock is the scratch size (elements) for accumulating backward kernels.
const accBlock = 2048

func (cpuBackend) SoftmaxBackward(dx, y, dy []float32, n int, acc bool) {
	if !acc {
		tensor.SoftmaxBackwardRows(dx, y, dy, n)
		return
	}
	forRowBlocks(len(y), n, func(lo, hi int, tmp []float32) {
		tensor.SoftmaxBackwardRows(tmp, y[lo:hi], dy[lo:hi], n)
		tensor.Add(dx[lo:hi], dx[lo:hi], tmp)
	})
}

func (cpuBackend) LayerNormBackward(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int, acc bool) {
	if !acc || dx == nil {
		tensor.LayerNormBackward(dx, dgamma, dbeta, x, dy, gamma, mean, rstd, n)
		return
	}
	forRowBlocks(len(x), n, func(lo, hi int, tmp []float32) {
		r0, r1 := lo/n, hi/n
		tensor.LayerNormBackward(tmp, dgamma, dbeta, x[lo:hi], dy[lo:hi], gamma, mean[r0:r1], rstd[r0:r1], n)
		tensor.Add(dx[lo:hi], dx[lo:hi], tmp)
	})
}

func (cpuBackend) GELUBackward(dx, x, dy []float32, acc bool) {
	if !acc {
		tensor.GELUBackward(dx, x, dy)
		return
	}
	forRowBlocks(len(x), 1, func(lo, hi int, tmp []float32) {
		tensor.GELUBackward(tmp, x[lo:hi], dy[lo:hi])
		tensor.Add(dx[lo:hi], dx[lo:hi], tmp)
	})
}

func (cpuBackend) QuickGELUBackward(dx, x, dy []float32, acc bool) {
	if !acc {
		tensor.QuickGELUBackward(dx, x, dy)
		return
	}
	forRowBlocks(len(x), 1, func(lo, hi int, tmp []float32) {
		tensor.QuickGELUBackward(tmp, x[lo:hi], dy[lo:hi])
		tensor.Add(dx[lo:hi], dx[lo:hi], tmp)
	})
}

// forRowBlocks splits [0, total) into blocks of whole rows of n (about
// accBlock elements, at least one row) and calls f with a scratch slice of the
// block's length.
func forRowBlocks(total, n int, f func(lo, hi int, tmp []float32)) {
	if total == 0 || n <= 0 {
		return
	}
	step := max(1, accBlock/n) * n
	buf := make([]float32, min(step, total))
	for lo := 0; lo < total; lo += step {
		hi := min(lo+step, total)
		f(lo, hi, buf[:hi-lo])
	}
}

func (cpuBackend) AttnSavedLen(a *AttnArgs) int { return AttnProbsLen(a) }

func (cpuBackend) Copy(dst, src []float32) { copy(dst[:len(src)], src) }

func (cpuBackend) Fill(x []float32, v float32) {
	if v == 0 {
		clear(x)
		return
	}
	for i := range x {
		x[i] = v
	}
}

func (cpuBackend) GatherRows(dst, src []float32, n int, idx []int) {
	for r, i := range idx {
		copy(dst[r*n:(r+1)*n], src[i*n:(i+1)*n])
	}
}

func (cpuBackend) PatchUnfold(cols, pix []float32, B, Cin, H, W, P int) {
	patchGeom{B: B, Cin: Cin, H: H, W: W, P: P}.unfold(cols, pix)
}
