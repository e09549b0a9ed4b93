package ops

import (
	"fmt"

	"github.com/mopeclip/mopeclip/tensor"
)

// Add returns a + b (same shape).
func Add(tp *Tape, a, b *Var) *Var {
	rec := tp.track("Add", a, b)
	if !sameShape(a.Value.Shape, b.Value.Shape) {
		panic(fmt.Sprintf("ops.Add: shapes %v and %v differ", a.Value.Shape, b.Value.Shape))
	}
	out := newVar(a.Value.Shape...)
	backend.Add(out.Value.Data, a.Value.Data, b.Value.Data)
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		// a last: it may take over dy's buffer (see pass).
		if b.RequiresGrad() {
			tp.accum(b, dy, 1)
		}
		if a.RequiresGrad() {
			tp.pass(out, a, dy)
		}
	})
}

// Mul returns a ⊙ b (same shape).
func Mul(tp *Tape, a, b *Var) *Var {
	rec := tp.track("Mul", a, b)
	if !sameShape(a.Value.Shape, b.Value.Shape) {
		panic(fmt.Sprintf("ops.Mul: shapes %v and %v differ", a.Value.Shape, b.Value.Shape))
	}
	out := newVar(a.Value.Shape...)
	backend.Mul(out.Value.Data, a.Value.Data, b.Value.Data)
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		// da (+)= dy⊙b, db (+)= dy⊙a
		for _, p := range [2][2]*Var{{a, b}, {b, a}} {
			x, other := p[0], p[1]
			if !x.RequiresGrad() {
				continue
			}
			g, fresh := tp.gradBuf(x)
			if fresh {
				backend.Mul(g, dy, other.Value.Data)
			} else {
				backend.MulAdd(g, dy, other.Value.Data)
			}
		}
	})
}

// Scale returns s·x.
func Scale(tp *Tape, x *Var, s float32) *Var {
	rec := tp.track("Scale", x)
	out := newVar(x.Value.Shape...)
	backend.Copy(out.Value.Data, x.Value.Data)
	backend.Scale(s, out.Value.Data)
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) { tp.accum(x, dy, s) })
}

// AddRowVector returns x + v with v added to every row of x: v [C] for x
// [..., C], or more generally v shaped like the trailing dimensions of x (v
// [T, C] broadcast over the batch of x [B, T, C]: position embeddings).
func AddRowVector(tp *Tape, x, v *Var) *Var {
	rec := tp.track("AddRowVector", x, v)
	xs, vs := x.Value.Shape, v.Value.Shape
	if len(vs) == 0 || len(vs) > len(xs) || !sameShape(xs[len(xs)-len(vs):], vs) {
		panic(fmt.Sprintf("ops.AddRowVector: vector shape %v does not match the trailing dimensions of x shape %v", vs, xs))
	}
	c := len(v.Value.Data)
	out := newVar(xs...)
	backend.Copy(out.Value.Data, x.Value.Data)
	if c > 0 {
		backend.AddBias(out.Value.Data, v.Value.Data)
	}
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		if x.RequiresGrad() {
			tp.accum(x, dy, 1)
		}
		if v.RequiresGrad() && c > 0 {
			backend.ColSumAcc(tp.gradZero(v), dy)
		}
	})
}

// Reshape returns x with a new shape (one dimension may be -1) sharing x's
// values.
func Reshape(tp *Tape, x *Var, shape ...int) *Var {
	rec := tp.track("Reshape", x)
	r, err := x.Value.Reshape(shape...)
	if err != nil {
		panic(fmt.Sprintf("ops.Reshape: %v", err))
	}
	out := &Var{Value: r}
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) { tp.pass(out, x, dy) })
}

// WeightedSum returns Σ ws[i]·xs[i] over Vars of one shape (typically
// scalar losses: a distillation objective from its terms).
func WeightedSum(tp *Tape, xs []*Var, ws []float32) *Var {
	if len(xs) == 0 || len(xs) != len(ws) {
		panic(fmt.Sprintf("ops.WeightedSum: %d vars and %d weights", len(xs), len(ws)))
	}
	rec := tp.track("WeightedSum", xs...)
	shape := xs[0].Value.Shape
	for _, x := range xs[1:] {
		if !sameShape(x.Value.Shape, shape) {
			panic(fmt.Sprintf("ops.WeightedSum: shapes %v and %v differ", shape, x.Value.Shape))
		}
	}
	out := newVar(shape...)
	backend.Fill(out.Value.Data, 0) // a resident backend need not upload the zeros
	for i, x := range xs {
		backend.Axpy(ws[i], x.Value.Data, out.Value.Data)
	}
	if !rec {
		return out
	}
	ws = append([]float32(nil), ws...)
	xs = append([]*Var(nil), xs...)
	return tp.record(out, func(dy []float32) {
		for i, x := range xs {
			if x.RequiresGrad() {
				tp.accum(x, dy, ws[i])
			}
		}
	})
}

// scalar returns a new [1] Var holding v.
func scalar(v float64) *Var {
	t := tensor.New(1)
	t.Data[0] = float32(v)
	return &Var{Value: t}
}

// sum64 sums in float64 (loss reductions: accurate and order-fixed).
func sum64(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s
}

// Sum returns Σ x as a [1] scalar.
func Sum(tp *Tape, x *Var) *Var { return sumScaled(tp, "Sum", x, 1) }

// Mean returns the mean of x as a [1] scalar (0 for an empty x).
func Mean(tp *Tape, x *Var) *Var {
	n := len(x.Value.Data)
	s := 1.0
	if n > 0 {
		s = 1 / float64(n)
	}
	return sumScaled(tp, "Mean", x, s)
}

func sumScaled(tp *Tape, op string, x *Var, s float64) *Var {
	rec := tp.track(op, x)
	Sync(x.Value.Data)
	out := scalar(s * sum64(x.Value.Data))
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		g, fresh := tp.gradBuf(x)
		Sync(dy[:1])
		d := dy[0] * float32(s)
		if fresh {
			backend.Fill(g, d)
		} else {
			Sync(g)
			for i := range g {
				g[i] += d
			}
			Wrote(g)
		}
	})
}
