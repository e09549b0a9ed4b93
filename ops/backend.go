package ops

// Backend is the compute seam of the ops: every GEMM, vector kernel and
// attention core goes through it. All slices are row-major float32; a "row of
// n" argument means the slice is split into consecutive rows of length n.
// Kernels that take acc write dst when acc is false (its old contents, NaN
// included, are ignored) and add into it when acc is true.
type Backend interface {
	// Name identifies the backend ("cpu", "cuda").
	Name() string

	// Gemm computes C = alpha·op(A)·op(B) + beta·C with op(A) m×k, op(B)
	// k×n and C m×n, and row strides lda, ldb, ldc (gonum row-major
	// semantics). beta == 0 ignores the old C.
	Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

	// Add computes dst = a + b; dst may alias a or b.
	Add(dst, a, b []float32)
	// Mul computes dst = a ⊙ b; dst may alias a or b.
	Mul(dst, a, b []float32)
	// MulAdd computes dst += a ⊙ b.
	MulAdd(dst, a, b []float32)
	// Axpy computes y += alpha·x.
	Axpy(alpha float32, x, y []float32)
	// Scale computes x *= alpha.
	Scale(alpha float32, x []float32)
	// AddBias adds bias to every row of len(bias) of x.
	AddBias(x, bias []float32)
	// ColSumAcc adds the column sums of the rows of len(dst) of x to dst.
	ColSumAcc(dst, x []float32)
	// SumSq returns Σ x².
	SumSq(x []float32) float32
	// Dot returns Σ x·y.
	Dot(x, y []float32) float32

	// Softmax replaces each row of n of x by its softmax.
	Softmax(x []float32, n int)
	// SoftmaxBackward: dx (=|+=) y ⊙ (dy − Σ_row dy⊙y) for rows of n, y the
	// softmax output.
	SoftmaxBackward(dx, y, dy []float32, n int, acc bool)
	// LayerNorm normalises rows of n (out may alias x); mean and rstd, when
	// non-nil, receive the row statistics.
	LayerNorm(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32)
	// LayerNormBackward computes dx (=|+= by acc) and adds into dgamma and
	// dbeta (either may be nil) from the saved row statistics.
	LayerNormBackward(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int, acc bool)
	// GELU computes dst = x·Φ(x) (erf form); dst may alias x.
	GELU(dst, x []float32)
	// GELUBackward: dx (=|+=) dy · GELU'(x).
	GELUBackward(dx, x, dy []float32, acc bool)
	// QuickGELU computes dst = x·σ(1.702x); dst may alias x.
	QuickGELU(dst, x []float32)
	// QuickGELUBackward: dx (=|+=) dy · QuickGELU'(x).
	QuickGELUBackward(dx, x, dy []float32, acc bool)

	// AttentionForward computes out = per (batch, head) softmax(q kᵀ·scale +
	// mask) v into out [B·T, H·D] (dropped heads are written as 0). When
	// probs is non-nil it has AttnSavedLen(a) elements and receives the
	// probabilities for AttentionBackward (layout private to the backend).
	AttentionForward(a *AttnArgs, q, k, v, out, probs []float32)
	// AttentionBackward propagates dOut into dq, dk, dv (any may be nil when
	// not needed). betaQ/K/V are 0 (write) or 1 (accumulate). dq, dk, dv may
	// alias each other; the backend then processes, per (batch, head), dv
	// first, then dq, then dk, and the betas must reflect that order.
	AttentionBackward(a *AttnArgs, q, k, v, probs, dOut, dq, dk, dv []float32, betaQ, betaK, betaV float32)
	// AttnSavedLen is the length of the buffer Attention saves for the
	// backward pass (the probs argument above): AttnProbsLen for a backend
	// that keeps the probabilities; a flash-style backend may keep less
	// (the log-sum-exp of every row).
	AttnSavedLen(a *AttnArgs) int

	// Copy computes dst = src over len(src) elements (dst at least as long;
	// they do not overlap).
	Copy(dst, src []float32)
	// Fill sets every element of x to v.
	Fill(x []float32, v float32)
	// GatherRows copies row idx[r] of src (rows of n) into row r of dst;
	// the indices are in range (the caller checks them).
	GatherRows(dst, src []float32, n int, idx []int)
	// ScatterAddRows adds row r of src (rows of n) into row idx[r] of dst,
	// in order of r (the adjoint of GatherRows; indices may repeat and
	// are in range).
	ScatterAddRows(dst, src []float32, n int, idx []int)
	// PatchUnfold writes the patches of pix [B, Cin, H, W] (H and W
	// multiples of P) into the rows of cols [B·(H/P)·(W/P), Cin·P·P]:
	// cols[(b·N + py·W/P + px)·K + (c·P + ky)·P + kx] = pix[b, c, py·P+ky, px·P+kx].
	PatchUnfold(cols, pix []float32, B, Cin, H, W, P int)
}

// Residency is implemented by a backend that keeps copies of the slices it
// sees in memory of its own (a GPU's): after a call, an output's host
// slice may be stale until Sync. Code that reads Value.Data or Grad.Data on
// the host calls Sync first; code that writes them on the host calls Wrote
// after (Sync first too when it writes only part of a buffer the backend
// may have written). The CPU backend does not implement it: the package
// helpers Sync and Wrote are then no-ops.
type Residency interface {
	// Sync makes the host copies of xs current (downloading what the
	// device changed).
	Sync(xs ...[]float32)
	// Wrote declares that the host changed xs: the device copies are
	// stale.
	Wrote(xs ...[]float32)
}

// StepScoped is implemented by a resident backend whose device copies of
// ordinary (per-step) slices live until the end of a training step: Keep
// names the slices that persist across steps (parameters, their gradients,
// optimiser state), EndStep releases the device copies of every other
// slice (their host copies are not updated: Sync what is needed first).
// A training loop calls Keep once and EndStep after every step.
type StepScoped interface {
	Keep(xs ...[]float32)
	EndStep()
}

// Sync makes the host copies of xs current when the active backend keeps
// device copies (Residency); otherwise it does nothing.
func Sync(xs ...[]float32) {
	if r, ok := backend.(Residency); ok {
		r.Sync(xs...)
	}
}

// Wrote declares that the host changed xs, when the active backend keeps
// device copies (Residency); otherwise it does nothing.
func Wrote(xs ...[]float32) {
	if r, ok := backend.(Residency); ok {
		r.Wrote(xs...)
	}
}

// Resident reports whether the active backend keeps device copies of the
// slices it sees (implements Residency).
func Resident() bool {
	_, ok := backend.(Residency)
	return ok
}

// Keep marks xs as persistent across training steps when the active backend
// is StepScoped; otherwise it does nothing.
func Keep(xs ...[]float32) {
	if s, ok := backend.(StepScoped); ok {
		s.Keep(xs...)
	}
}

// EndStep ends a training step on a StepScoped backend (releasing the device
// copies of everything not kept); otherwise it does nothing.
func EndStep() {
	if s, ok := backend.(StepScoped); ok {
		s.EndStep()
	}
}

// AttnArgs describes one attention call: B items of T tokens, H heads of
// dimension D (q, k, v rows have length H·D), masks and scale.
type AttnArgs struct {
	B, T, H, D int
	Causal     bool
	KeyLens    []int  // nil or len B, each in [0, T]
	HeadKeep   []bool // nil or len H
	Scale      float32
}

// kept returns the number of kept heads.
func (a *AttnArgs) kept() int {
	if a.HeadKeep == nil {
		return a.H
	}
	n := 0
	for _, k := range a.HeadKeep {
		if k {
			n++
		}
	}
	return n
}

// AttnProbsLen is the length of the probs buffer of AttentionForward:
// B·(kept heads)·T·T.
func AttnProbsLen(a *AttnArgs) int { return a.B * a.kept() * a.T * a.T }

// backend is the active backend. It is set only at program start.
var backend Backend = CPU

// SetBackend makes b the backend of every op. Call it at program start,
// before any op runs, or between phases of a program in which no op runs
// (mope.GPU.Training swaps in a resident backend for a training run); it is
// not safe to call concurrently with ops.
func SetBackend(b Backend) {
	if b == nil {
		panic("ops.SetBackend: nil backend")
	}
	backend = b
}

// CurrentBackend returns the active backend.
func CurrentBackend() Backend { return backend }
