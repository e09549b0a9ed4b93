package ops

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mopeclip/mopeclip/tensor"
)

// The CPU attention core. Work is split into (batch, head) items; item
// (b, h) reads and writes only rows [b·T, (b+1)·T) × columns [h·D, (h+1)·D)
// of q, k, v, out and their gradients, plus its own probability block, so
// items run in parallel without sharing any output, and the result does not
// depend on which goroutine runs which item.
//
// Per item, with Q, K, V the T×D strided views (row stride H·D), L the key
// length (T, or KeyLens[b]) and n_i = min(L, i+1) under Causal (else L) the
// keys row i may attend to:
//
//	forward:  S = scale·Q·K[:L]ᵀ (T×L), P_i = softmax(S_i[:n_i]) (0 beyond),
//	          O = P·V[:L]
//	backward: dV[:L] = Pᵀ·dO, dP = dO·V[:L]ᵀ, dS = P ⊙ (dP − rowsum(dP⊙P)),
//	          dQ = scale·dS·K[:L], dK[:L] = scale·dSᵀ·Q
//
// Rows of dK and dV at masked key positions (≥ L) get no gradient. Probability
// blocks are T×T with row stride T; slot = b·(kept heads) + (kept-head index).

// attnItem is one (batch, head) pair; slot < 0 for a dropped head.
type attnItem struct{ b, h, slot int }

func attnItems(a *AttnArgs) []attnItem {
	items := make([]attnItem, 0, a.B*a.H)
	kept := a.kept()
	for b := 0; b < a.B; b++ {
		kh := 0
		for h := 0; h < a.H; h++ {
			if a.HeadKeep != nil && !a.HeadKeep[h] {
				items = append(items, attnItem{b, h, -1})
				continue
			}
			items = append(items, attnItem{b, h, b*kept + kh})
			kh++
		}
	}
	return items
}

// parallelItems runs fn(worker, item) for every item on up to GOMAXPROCS
// goroutines; worker indexes per-goroutine scratch.
func parallelItems(nItems int, workers int, fn func(w, i int)) {
	if workers <= 1 || nItems <= 1 {
		for i := 0; i < nItems; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= nItems {
					return
				}
				fn(w, i)
			}
		}(w)
	}
	wg.Wait()
}

func attnWorkers(nItems int) int { return max(1, min(runtime.GOMAXPROCS(0), nItems)) }

// keyLen returns L for batch item b.
func (a *AttnArgs) keyLen(b int) int {
	if a.KeyLens == nil {
		return a.T
	}
	return a.KeyLens[b]
}

// rowKeys returns n_i, the number of keys row i attends to.
func (a *AttnArgs) rowKeys(i, L int) int {
	if a.Causal && i+1 < L {
		return i + 1
	}
	return L
}

// zeroBlock clears the T×D block at off (row stride ld).
func zeroBlock(x []float32, off, T, D, ld int) {
	for i := 0; i < T; i++ {
		clear(x[off+i*ld : off+i*ld+D])
	}
}

func (c cpuBackend) AttentionForward(a *AttnArgs, q, k, v, out, probs []float32) {
	T, D, ld := a.T, a.D, a.H*a.D
	items := attnItems(a)
	workers := attnWorkers(len(items))
	var scratch [][]float32
	if probs == nil {
		scratch = make([][]float32, workers)
		for w := range scratch {
			scratch[w] = make([]float32, T*T)
		}
	}
	parallelItems(len(items), workers, func(w, idx int) {
		it := items[idx]
		off := it.b*T*ld + it.h*D
		if it.slot < 0 {
			zeroBlock(out, off, T, D, ld)
			return
		}
		var P []float32
		if probs != nil {
			P = probs[it.slot*T*T : (it.slot+1)*T*T]
		} else {
			P = scratch[w]
		}
		L := a.keyLen(it.b)
		if L == 0 {
			clear(P)
			zeroBlock(out, off, T, D, ld)
			return
		}
		c.Gemm(false, true, T, L, D, a.Scale, q[off:], ld, k[off:], ld, 0, P, T)
		for i := 0; i < T; i++ {
			row := P[i*T : (i+1)*T]
			n := a.rowKeys(i, L)
			tensor.SoftmaxRows(row[:n], n)
			clear(row[n:])
		}
		c.Gemm(false, false, T, D, L, 1, P, T, v[off:], ld, 0, out[off:], ld)
	})
}

func (c cpuBackend) AttentionBackward(a *AttnArgs, q, k, v, probs, dOut, dq, dk, dv []float32, betaQ, betaK, betaV float32) {
	T, D, ld := a.T, a.D, a.H*a.D
	items := attnItems(a)
	workers := attnWorkers(len(items))
	needS := dq != nil || dk != nil
	var scratch [][]float32
	if needS {
		scratch = make([][]float32, workers)
		for w := range scratch {
			scratch[w] = make([]float32, T*T)
		}
	}
	// zeroUnless clears the rows [r0, T) of the block of x at off when beta
	// is 0 (a fresh gradient buffer that nothing else writes there).
	zeroUnless := func(x []float32, beta float32, off, r0 int) {
		if x != nil && beta == 0 {
			for i := r0; i < T; i++ {
				clear(x[off+i*ld : off+i*ld+D])
			}
		}
	}
	parallelItems(len(items), workers, func(w, idx int) {
		it := items[idx]
		off := it.b*T*ld + it.h*D
		L := 0
		if it.slot >= 0 {
			L = a.keyLen(it.b)
		}
		if L == 0 {
			zeroUnless(dv, betaV, off, 0)
			zeroUnless(dq, betaQ, off, 0)
			zeroUnless(dk, betaK, off, 0)
			return
		}
		P := probs[it.slot*T*T : (it.slot+1)*T*T]
		if dv != nil {
			c.Gemm(true, false, L, D, T, 1, P, T, dOut[off:], ld, betaV, dv[off:], ld)
			zeroUnless(dv, betaV, off, L)
		}
		if !needS {
			return
		}
		dS := scratch[w]
		c.Gemm(false, true, T, L, D, 1, dOut[off:], ld, v[off:], ld, 0, dS, T)
		for i := 0; i < T; i++ {
			n := a.rowKeys(i, L)
			tensor.SoftmaxBackwardRows(dS[i*T:i*T+n], P[i*T:i*T+n], dS[i*T:i*T+n], n)
			clear(dS[i*T+n : i*T+L])
		}
		if dq != nil {
			c.Gemm(false, false, T, D, L, a.Scale, dS, T, k[off:], ld, betaQ, dq[off:], ld)
		}
		if dk != nil {
			c.Gemm(true, false, L, D, T, a.Scale, dS, T, q[off:], ld, betaK, dk[off:], ld)
			zeroUnless(dk, betaK, off, L)
		}
	})
}
