//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/ops"
)

// The Backend's optional fused paths (ops/fused.go) and the flash attention
// training path. Like the rest of Backend they take host slices (upload,
// run, download, per call) and panic on a device error.

// flashSavedTag is the bit pattern AttentionForward writes into the last
// float of a flash saved buffer.
const flashSavedTag = 0x464c5348 // "FLSH"

// keptHeads returns the number of kept heads of a.
func keptHeads(a *ops.AttnArgs) int {
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

// flashSavedLen is the length of the flash path's saved buffer: the row
// log-sum-exps [B·Hk·T], the output rows [B·Hk·T·D] and one tag float. It
// never equals ops.AttnProbsLen (B·Hk·T·(T − D − 1) = 1 has no solution with
// D ≥ 1), so the length of the buffer a caller passes tells the layouts
// apart.
func flashSavedLen(a *ops.AttnArgs) int {
	return a.B*keptHeads(a)*a.T*(a.D+1) + 1
}

// AttnSavedLen is the length of the buffer AttentionForward fills for
// AttentionBackward: flashSavedLen for head dimensions up to 128 (the flash
// backward, which recomputes the probabilities tile by tile), else
// ops.AttnProbsLen (the materialised probabilities). AttentionForward and
// AttentionBackward accept either length: a buffer of AttnProbsLen always
// holds the probabilities in the CPU backend's layout.
func (b *Backend) AttnSavedLen(a *ops.AttnArgs) int {
	if flashDMax(a.D) != 0 {
		return flashSavedLen(a)
	}
	return ops.AttnProbsLen(a)
}

// usesFlashSaved reports whether saved is a flash saved buffer for a.
func usesFlashSaved(a *ops.AttnArgs, saved []float32) bool {
	return saved != nil && flashDMax(a.D) != 0 && len(saved) == flashSavedLen(a)
}

// attentionForwardFlash is AttentionForward with a flash saved buffer.
func (b *Backend) attentionForwardFlash(a *ops.AttnArgs, q, k, v, out, saved []float32) {
	n := a.B * a.T * a.H * a.D
	f := b.begin()
	g := f.geom(a)
	dq, dk, dv := f.in(q[:n]), f.in(k[:n]), f.in(v[:n])
	do := f.out(out[:n], false)
	ds := f.out(saved, false)
	rows := a.B * g.Hk * a.T
	if f.err == nil {
		f.fail(b.c.attnFlashSave(g, dq, dk, dv, do, ds, ds+devPtr(4*rows)))
	}
	if f.err == nil {
		f.fail(shimMemset32(ds+devPtr(4*(len(saved)-1)), flashSavedTag, 1, b.c.stream))
	}
	f.end("AttentionForward")
}

// attentionBackwardFlash is AttentionBackward from a flash saved buffer.
// When two of dq, dk, dv are one buffer, the gradients go through scratch
// buffers and are combined in the interface's order (dv, dq, dk).
func (b *Backend) attentionBackwardFlash(a *ops.AttnArgs, q, k, v, saved, dOut, dq, dk, dv []float32, betaQ, betaK, betaV float32) {
	n := a.B * a.T * a.H * a.D
	need("AttentionBackward", len(dOut) >= n, "dOut %d, need %d", len(dOut), n)
	f := b.begin()
	g := f.geom(a)
	rows := a.B * g.Hk * a.T
	grads := attnGradArgs(n, dq, dk, dv, betaQ, betaK, betaV)
	ds := f.in(saved)
	dO := f.in(dOut[:n])
	dqq, dkk, dvv := f.in(q[:n]), f.in(k[:n]), f.in(v[:n])
	dev := f.attnGradOuts(grads, n)
	delta := f.alloc(max(rows, 1))
	aliased := (dev[0] != 0 && (dev[0] == dev[1] || dev[0] == dev[2])) || (dev[1] != 0 && dev[1] == dev[2])
	fg := flashGrads{dv: dev[0], dq: dev[1], dk: dev[2], betaV: betaV, betaQ: betaQ, betaK: betaK}
	var scratch [3]devPtr
	if aliased {
		fg.betaV, fg.betaQ, fg.betaK = 0, 0, 0
		for i := range dev {
			if dev[i] != 0 {
				scratch[i] = f.alloc(n)
			}
		}
		fg.dv, fg.dq, fg.dk = scratch[0], scratch[1], scratch[2]
	}
	if f.err == nil {
		f.fail(b.c.attnFlashBackward(g, dqq, dkk, dvv, dO, a.H*a.D, ds, ds+devPtr(4*rows), delta, fg))
	}
	if aliased {
		for i, gr := range grads {
			if f.err != nil || dev[i] == 0 {
				continue
			}
			switch gr.beta {
			case 0:
				f.fail(shimDtoD(dev[i], scratch[i], 4*n, b.c.stream))
			case 1:
				f.fail(b.c.axpy(1, scratch[i], dev[i], n))
			default:
				f.fail(b.c.scale(gr.beta, dev[i], n))
				if f.err == nil {
					f.fail(b.c.axpy(1, scratch[i], dev[i], n))
				}
			}
		}
	}
	f.end("AttentionBackward")
}

// BiasActBackward: dx (=|+= by acc) dy·act'(x) and dbias += its column sums
// over rows of len(dbias) (ops.BiasActBackwarder; dbias may be nil).
func (b *Backend) BiasActBackward(dx, dbias, x, dy []float32, act ops.Activation, acc bool) {
	if len(x) == 0 {
		return
	}
	need("BiasActBackward", act == ops.ActNone || act == ops.ActQuickGELU || act == ops.ActGELU, "unknown activation %v", act)
	need("BiasActBackward", len(dy) >= len(x) && len(dx) >= len(x), "lengths dx %d dy %d for %d", len(dx), len(dy), len(x))
	rows, n := 1, len(x)
	if dbias != nil {
		rows = checkRows("BiasActBackward", len(x), len(dbias))
		n = len(dbias)
	}
	f := b.begin()
	d1, d2 := f.in(x), f.in(dy[:len(x)])
	dd := f.out(dx[:len(x)], acc)
	var db devPtr
	if dbias != nil {
		db = f.out(dbias, true)
	}
	if f.err == nil {
		if dbias == nil && act != ops.ActNone {
			f.fail(b.c.actBwd(dd, d1, d2, len(x), int(act), acc))
		} else {
			f.fail(b.c.biasActBwd(dd, db, d1, d2, rows, n, int(act), acc))
		}
	}
	f.end("BiasActBackward")
}

// InfoNCELogits: see ops.LossKernels.
func (b *Backend) InfoNCELogits(loss, dScale, logits []float32, n int) {
	need("InfoNCELogits", n > 0 && len(logits) >= n*n && len(loss) >= 1 && (dScale == nil || len(dScale) >= 1),
		"n %d, logits %d, loss %d, dScale %d", n, len(logits), len(loss), len(dScale))
	f := b.begin()
	var dl, dsc devPtr
	if dScale != nil {
		dl = f.out(logits[:n*n], true)
		dsc = f.out(dScale[:1], false)
	} else {
		dl = f.in(logits[:n*n])
	}
	dloss := f.out(loss[:1], false)
	if f.err == nil {
		f.fail(b.c.infoNCE(dloss, dsc, dl, n))
	}
	f.end("InfoNCELogits")
}

// SoftCrossEntropy: see ops.LossKernels.
func (b *Backend) SoftCrossEntropy(loss, grad, student, teacher []float32, m int, temp float32) {
	need("SoftCrossEntropy", temp > 0 && !math.IsInf(float64(temp), 0), "temperature %v", temp)
	rows := checkRows("SoftCrossEntropy", len(student), m)
	need("SoftCrossEntropy", rows > 0 && len(teacher) >= len(student) && len(loss) >= 1 && (grad == nil || len(grad) >= len(student)),
		"rows %d, teacher %d, grad %d for %d", rows, len(teacher), len(grad), len(student))
	f := b.begin()
	ds, dt := f.in(student), f.in(teacher[:len(student)])
	var dg devPtr
	if grad != nil {
		dg = f.out(grad[:len(student)], false)
	}
	dloss := f.out(loss[:1], false)
	if f.err == nil {
		f.fail(b.c.softCE(dloss, dg, ds, dt, rows, m, temp))
	}
	f.end("SoftCrossEntropy")
}

// MSE: see ops.LossKernels.
func (b *Backend) MSE(loss, x, y []float32) {
	n := len(x)
	need("MSE", n > 0 && len(y) >= n && len(loss) >= 1, "lengths %d, %d, loss %d", n, len(y), len(loss))
	f := b.begin()
	da, db := f.in(x), f.in(y[:n])
	dloss := f.out(loss[:1], false)
	if f.err == nil {
		f.fail(b.c.mse(dloss, da, db, n))
	}
	f.end("MSE")
}

// MSEBackward: see ops.LossKernels.
func (b *Backend) MSEBackward(da, db, x, y, dy []float32, accA, accB bool) {
	n := len(x)
	if n == 0 || (da == nil && db == nil) {
		return
	}
	need("MSEBackward", len(y) >= n && len(dy) >= 1 && (da == nil || len(da) >= n) && (db == nil || len(db) >= n),
		"lengths a %d b %d dy %d da %d db %d", n, len(y), len(dy), len(da), len(db))
	f := b.begin()
	dx, dyy, dg := f.in(x), f.in(y[:n]), f.in(dy[:1])
	var ga, gb devPtr
	if da != nil {
		ga = f.out(da[:n], accA)
	}
	if db != nil {
		gb = f.out(db[:n], accB)
	}
	if f.err == nil {
		f.fail(b.c.mseBwd(ga, gb, dx, dyy, dg, n, accA, accB))
	}
	f.end("MSEBackward")
}

// GradNormSq: see ops.FusedAdamW.
func (b *Backend) GradNormSq(normSq []float32, grads [][]float32) {
	need("GradNormSq", len(normSq) >= 2, "normSq of %d floats, need 2", len(normSq))
	f := b.begin()
	ts := make([]mtTensor, 0, len(grads))
	for _, g := range grads {
		if len(g) > 0 {
			ts = append(ts, mtTensor{g: f.in(g), n: len(g)})
		}
	}
	dn := f.out(normSq[:2], false)
	f.mt(ts, func(mt mtTable) error { return b.c.gradNormSq(mt, dn) })
	f.end("GradNormSq")
}

// AdamWStep: see ops.FusedAdamW.
func (b *Backend) AdamWStep(ts []ops.AdamWTensor, k ops.AdamWConsts, normSq []float32, maxNorm float64) {
	need("AdamWStep", normSq == nil || len(normSq) >= 2, "normSq of %d floats, need 2", len(normSq))
	f := b.begin()
	mts := make([]mtTensor, 0, len(ts))
	for i, t := range ts {
		n := len(t.P)
		need("AdamWStep", len(t.G) == n && len(t.M) == n && len(t.V) == n, "tensor %d: lengths p %d g %d m %d v %d", i, n, len(t.G), len(t.M), len(t.V))
		if n == 0 {
			continue
		}
		mts = append(mts, mtTensor{p: f.out(t.P, true), g: f.out(t.G, true), m: f.out(t.M, true), v: f.out(t.V, true), n: n, decay: t.Decay})
	}
	var dn devPtr
	if normSq != nil {
		dn = f.in(normSq[:2])
	}
	kk := [7]float32{k.B1, k.B1c, k.B2, k.B2c, k.StepSize, k.InvBC2, k.Eps}
	f.mt(mts, func(mt mtTable) error { return b.c.adamW(mt, kk, dn, maxNorm) })
	f.end("AdamWStep")
}

// mt uploads the tensor table of ts, runs fn on it and frees it.
func (f *frame) mt(ts []mtTensor, fn func(mtTable) error) {
	if f.err != nil {
		return
	}
	mt, err := f.b.c.uploadMT(ts)
	if err != nil {
		f.fail(fmt.Errorf("tensor table: %w", err))
		return
	}
	f.fail(fn(mt))
	f.b.c.freeMT(mt)
}
