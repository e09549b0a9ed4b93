package ops

import (
	"fmt"
	"math"
)

// AttnOpts configures Attention.
type AttnOpts struct {
	Heads    int    // number of heads H; q, k, v have last dim H·D
	Causal   bool   // key j is masked for query i when j > i
	KeyLens  []int  // optional, per batch item: keys at positions >= KeyLens[b] are masked (key padding)
	HeadKeep []bool // optional, len H: false = head dropped, its output is 0 and it costs no FLOPs
	// Scale multiplies q·kᵀ; 0 means 1/sqrt(D).
	Scale float32
}

// Attention returns multi-head scaled dot-product attention over B items of T
// tokens: q, k, v [B·T, H·D] → [B·T, H·D], per head softmax(q kᵀ·scale +
// mask) v, heads concatenated. A query row whose keys are all masked
// (KeyLens[b] == 0) outputs 0. A dropped head outputs exactly 0, passes
// exactly 0 back to q, k and v, and is not computed.
func Attention(tp *Tape, q, k, v *Var, B, T int, o AttnOpts) *Var {
	rec := tp.track("Attention", q, k, v)
	a := attnArgs(q, k, v, B, T, o)
	out := newVar(q.Value.Shape...)
	if !rec {
		backend.AttentionForward(a, q.Value.Data, k.Value.Data, v.Value.Data, out.Value.Data, nil)
		return out
	}
	probs := tp.save(backend.AttnSavedLen(a))
	backend.AttentionForward(a, q.Value.Data, k.Value.Data, v.Value.Data, out.Value.Data, probs)
	return tp.record(out, func(dy []float32) {
		// The backend processes dv, then dq, then dk per item; ask for the
		// buffers in that order so that aliased inputs (q == k, ...) get
		// beta = 1 after the first write.
		var dq, dk, dv []float32
		var bq, bk, bv float32
		if v.RequiresGrad() {
			g, fresh := tp.gradBuf(v)
			dv, bv = g, beta(fresh)
		}
		if q.RequiresGrad() {
			g, fresh := tp.gradBuf(q)
			dq, bq = g, beta(fresh)
		}
		if k.RequiresGrad() {
			g, fresh := tp.gradBuf(k)
			dk, bk = g, beta(fresh)
		}
		backend.AttentionBackward(a, q.Value.Data, k.Value.Data, v.Value.Data, probs, dy, dq, dk, dv, bq, bk, bv)
	})
}

// attnArgs validates the Attention arguments.
func attnArgs(q, k, v *Var, B, T int, o AttnOpts) *AttnArgs {
	s := q.Value.Shape
	if len(s) != 2 || !sameShape(s, k.Value.Shape) || !sameShape(s, v.Value.Shape) {
		panic(fmt.Sprintf("ops.Attention: q, k, v must be [B·T, H·D] of one shape, got %v, %v, %v", s, k.Value.Shape, v.Value.Shape))
	}
	if B < 0 || T < 0 || s[0] != B*T {
		panic(fmt.Sprintf("ops.Attention: %d rows is not B·T = %d·%d", s[0], B, T))
	}
	H := o.Heads
	if H <= 0 || s[1]%H != 0 {
		panic(fmt.Sprintf("ops.Attention: width %d is not a multiple of %d heads", s[1], H))
	}
	D := s[1] / H
	if o.KeyLens != nil {
		if len(o.KeyLens) != B {
			panic(fmt.Sprintf("ops.Attention: %d key lengths for %d batch items", len(o.KeyLens), B))
		}
		for b, l := range o.KeyLens {
			if l < 0 || l > T {
				panic(fmt.Sprintf("ops.Attention: key length %d of item %d outside [0, %d]", l, b, T))
			}
		}
	}
	if o.HeadKeep != nil && len(o.HeadKeep) != H {
		panic(fmt.Sprintf("ops.Attention: %d head-keep flags for %d heads", len(o.HeadKeep), H))
	}
	return &AttnArgs{
		B: B, T: T, H: H, D: D, Causal: o.Causal,
		KeyLens:  append([]int(nil), o.KeyLens...),
		HeadKeep: append([]bool(nil), o.HeadKeep...),
		Scale:    AttnScale(o.Scale, D),
	}
}

// AttnScale is the factor an attention layer with head dimension D applies
// to q·kᵀ: scale itself, or D^-1/2 when scale is 0. It is the one place
// that default is decided (the reference forward, the lowering in
// clip/lower and through it every engine use it).
func AttnScale(scale float32, D int) float32 {
	if scale != 0 {
		return scale
	}
	return float32(1 / math.Sqrt(float64(D)))
}
