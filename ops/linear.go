package ops

import "fmt"

// Linear returns x·wᵀ + b for x [..., in], w [out, in] (Hugging Face layout)
// and b [out] or nil; the result is [..., out]. Forward is one GEMM; backward
// is dX (+)= dY·W and dW += dYᵀ·X (one GEMM each) and db += column sums of dY.
func Linear(tp *Tape, x, w, b *Var) *Var {
	var rec bool
	if b == nil {
		rec = tp.track("Linear", x, w)
	} else {
		rec = tp.track("Linear", x, w, b)
	}
	_, in := lastDim("Linear", x.Value)
	rows := 1 // counted from the shape: with in == 0 there is no data to count
	for _, d := range x.Value.Shape[:len(x.Value.Shape)-1] {
		rows *= d
	}
	if len(w.Value.Shape) != 2 || w.Value.Shape[1] != in {
		panic(fmt.Sprintf("ops.Linear: weight shape %v does not fit input shape %v (want [out, %d])", w.Value.Shape, x.Value.Shape, in))
	}
	nout := w.Value.Shape[0]
	if b != nil && (len(b.Value.Shape) != 1 || b.Value.Shape[0] != nout) {
		panic(fmt.Sprintf("ops.Linear: bias shape %v does not match weight shape %v", b.Value.Shape, w.Value.Shape))
	}
	shape := append(append([]int(nil), x.Value.Shape[:len(x.Value.Shape)-1]...), nout)
	out := newVar(shape...)
	y := out.Value.Data
	if rows > 0 && nout > 0 {
		if in > 0 { // otherwise x·Wᵀ is 0 (y is fresh) and y is the bias
			backend.Gemm(false, true, rows, nout, in, 1, x.Value.Data, max(in, 1), w.Value.Data, max(in, 1), 0, y, nout)
		}
		if b != nil {
			backend.AddBias(y, b.Value.Data)
		}
	}
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		if rows == 0 || nout == 0 || in == 0 {
			for _, v := range []*Var{x, w} {
				if v.RequiresGrad() {
					tp.gradZero(v)
				}
			}
			if b != nil && b.RequiresGrad() {
				if rows == 0 || nout == 0 {
					tp.gradZero(b)
				} else {
					backend.ColSumAcc(tp.gradZero(b), dy)
				}
			}
			return
		}
		if x.RequiresGrad() {
			g, fresh := tp.gradBuf(x)
			backend.Gemm(false, false, rows, in, nout, 1, dy, nout, w.Value.Data, max(in, 1), beta(fresh), g, max(in, 1))
		}
		if w.RequiresGrad() {
			g, fresh := tp.gradBuf(w)
			backend.Gemm(true, false, nout, in, rows, 1, dy, nout, x.Value.Data, max(in, 1), beta(fresh), g, max(in, 1))
		}
		if b != nil && b.RequiresGrad() {
			backend.ColSumAcc(tp.gradZero(b), dy)
		}
	})
}

// beta is the GEMM beta for a gradient buffer: 0 to write a fresh one, 1 to
// accumulate.
func beta(fresh bool) float32 {
	if fresh {
		return 0
	}
	return 1
}

// MatMul returns op(a)·op(b) for 2-D a and b, op transposing when asked.
func MatMul(tp *Tape, a, b *Var, transA, transB bool) *Var {
	rec := tp.track("MatMul", a, b)
	if len(a.Value.Shape) != 2 || len(b.Value.Shape) != 2 {
		panic(fmt.Sprintf("ops.MatMul: need 2-D operands, got %v and %v", a.Value.Shape, b.Value.Shape))
	}
	ar, ac := a.Value.Shape[0], a.Value.Shape[1]
	br, bc := b.Value.Shape[0], b.Value.Shape[1]
	m, k := ar, ac
	if transA {
		m, k = ac, ar
	}
	k2, n := br, bc
	if transB {
		k2, n = bc, br
	}
	if k != k2 {
		panic(fmt.Sprintf("ops.MatMul: inner dimensions differ: %v (trans=%v) and %v (trans=%v)", a.Value.Shape, transA, b.Value.Shape, transB))
	}
	lda, ldb := max(ac, 1), max(bc, 1)
	out := newVar(m, n)
	if m > 0 && n > 0 {
		backend.Gemm(transA, transB, m, n, k, 1, a.Value.Data, lda, b.Value.Data, ldb, 0, out.Value.Data, n)
	}
	if !rec {
		return out
	}
	return tp.record(out, func(dc []float32) {
		ldc := max(n, 1)
		if a.RequiresGrad() {
			g, fresh := tp.gradBuf(a)
			if !transA { // dA (m×k) = dC·op(B)ᵀ
				backend.Gemm(false, !transB, m, k, n, 1, dc, ldc, b.Value.Data, ldb, beta(fresh), g, lda)
			} else { // dA (k×m) = op(B)·dCᵀ
				backend.Gemm(transB, true, k, m, n, 1, b.Value.Data, ldb, dc, ldc, beta(fresh), g, lda)
			}
		}
		if b.RequiresGrad() {
			g, fresh := tp.gradBuf(b)
			if !transB { // dB (k×n) = op(A)ᵀ·dC
				backend.Gemm(!transA, false, k, n, m, 1, a.Value.Data, lda, dc, ldc, beta(fresh), g, ldb)
			} else { // dB (n×k) = dCᵀ·op(A)
				backend.Gemm(true, transA, n, k, m, 1, dc, ldc, a.Value.Data, lda, beta(fresh), g, ldb)
			}
		}
	})
}
