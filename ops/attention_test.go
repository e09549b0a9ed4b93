package ops

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/mopeclip/mopeclip/tensor"
)

func TestAttention(t *testing.T) {
	type cfg struct {
		B, T, H, D int
		o          AttnOpts
	}
	cfgs := []cfg{
		{1, 1, 1, 3, AttnOpts{}},
		{2, 5, 3, 4, AttnOpts{}},
		{2, 5, 3, 4, AttnOpts{Causal: true}},
		{2, 6, 2, 3, AttnOpts{KeyLens: []int{3, 6}}},
		{3, 5, 2, 3, AttnOpts{KeyLens: []int{0, 4, 1}, Causal: true}},
		{2, 5, 3, 4, AttnOpts{HeadKeep: []bool{true, false, true}}},
		{2, 7, 4, 2, AttnOpts{Causal: true, KeyLens: []int{5, 2}, HeadKeep: []bool{false, true, true, false}, Scale: 0.7}},
		{1, 4, 2, 3, AttnOpts{HeadKeep: []bool{false, false}}},
	}
	var cases []opCase
	for ci, c := range cfgs {
		o := c.o
		o.Heads = c.H
		B, T, H, C := c.B, c.T, c.H, c.H*c.D
		name := fmt.Sprintf("B%dT%dH%dD%d/causal=%v,lens=%v,keep=%v,scale=%v", c.B, c.T, c.H, c.D, o.Causal, o.KeyLens, o.HeadKeep, o.Scale)
		seed := uint64(10 * ci)
		cases = append(cases, opCase{
			name: name,
			in:   []*tensor.Tensor{randT(seed+1, B*T, C), randT(seed+2, B*T, C), randT(seed+3, B*T, C)},
			grad: []bool{true, true, true},
			build: func(tp *Tape, v []*Var) *Var {
				return Attention(tp, v[0], v[1], v[2], B, T, o)
			},
			ref: func(x [][]float64) []float64 { return refAttention(x[0], x[1], x[2], B, T, H, o) },
		})
	}
	// Self-attention on one Var (q = k = v): the aliased gradients add up.
	o := AttnOpts{Heads: 2, Causal: true, KeyLens: []int{4, 3}}
	cases = append(cases, opCase{
		name: "aliased-qkv",
		in:   []*tensor.Tensor{randT(99, 2*5, 6)},
		grad: []bool{true},
		build: func(tp *Tape, v []*Var) *Var {
			return Attention(tp, v[0], v[0], v[0], 2, 5, o)
		},
		ref: func(x [][]float64) []float64 { return refAttention(x[0], x[0], x[0], 2, 5, 2, o) },
	})
	// q and k from one Var, v separate.
	cases = append(cases, opCase{
		name: "aliased-qk",
		in:   []*tensor.Tensor{randT(98, 2*5, 6), randT(97, 2*5, 6)},
		grad: []bool{true, true},
		build: func(tp *Tape, v []*Var) *Var {
			return Attention(tp, v[0], v[0], v[1], 2, 5, AttnOpts{Heads: 3})
		},
		ref: func(x [][]float64) []float64 { return refAttention(x[0], x[0], x[1], 2, 5, 3, AttnOpts{Heads: 3}) },
	})
	runCases(t, cases)
}

// Dropped heads: output exactly 0, q/k/v gradient columns exactly 0, even
// when the gradient buffers come from a pool full of garbage.
func TestAttentionDroppedHeadExact(t *testing.T) {
	const B, T, H, D = 2, 6, 3, 4
	C := H * D
	keep := []bool{true, false, true}
	tp := NewTape()
	mk := func() (q, k, v *Var, ps [3]*Var) {
		for i := range ps {
			ps[i] = tp.Param(randT(uint64(i+1), B*T, C), nil)
		}
		// Intermediates (gradients from the pool) that pass the gradient
		// 1:1 to the Params.
		return Scale(tp, ps[0], 1), Scale(tp, ps[1], 1), Scale(tp, ps[2], 1), ps
	}
	// Fill the pool with garbage of the right sizes.
	for i := 0; i < 2; i++ {
		q, k, v, _ := mk()
		y := Attention(tp, q, k, v, B, T, AttnOpts{Heads: H})
		tp.backward(y, uniT(5, 3, 9, B*T, C).Data)
		tp.Reset()
		for _, b := range tp.pool {
			for _, buf := range b.free {
				for j := range buf {
					buf[j] = 1e30
				}
			}
		}
	}
	q, k, v, ps := mk()
	for _, x := range []*Var{q, k, v} {
		tp.RetainGrad(x)
	}
	y := Attention(tp, q, k, v, B, T, AttnOpts{Heads: H, HeadKeep: keep, KeyLens: []int{6, 4}})
	tp.backward(y, uniT(6, -1, 1, B*T, C).Data)
	for r := 0; r < B*T; r++ {
		for h := 0; h < H; h++ {
			for d := 0; d < D; d++ {
				i := r*C + h*D + d
				if !keep[h] && y.Value.Data[i] != 0 {
					t.Fatalf("dropped head %d output %v", h, y.Value.Data[i])
				}
				for n, x := range []*Var{q, k, v} {
					g := x.Grad.Data[i]
					if !keep[h] && g != 0 || g > 1e20 || g < -1e20 {
						t.Fatalf("input %d head %d row %d: gradient %v", n, h, r, g)
					}
					if pg := ps[n].Grad.Data[i]; pg != g {
						t.Fatalf("param grad %v != retained intermediate grad %v", pg, g)
					}
				}
			}
		}
	}
	// Masked key rows (item 1, rows 4, 5) get exactly zero k and v grads.
	for r := 1*T + 4; r < 2*T; r++ {
		for j := 0; j < C; j++ {
			if k.Grad.Data[r*C+j] != 0 || v.Grad.Data[r*C+j] != 0 {
				t.Fatalf("masked key row %d has k/v gradient", r)
			}
		}
	}
}

// The parallel attention is independent of the number of workers.
func TestAttentionWorkersBitIdentical(t *testing.T) {
	const B, T, H, D = 3, 9, 4, 8
	C := H * D
	run := func() (out []float32, grads [][]float32) {
		tp := NewTape()
		var ps []*Var
		for i := 0; i < 3; i++ {
			ps = append(ps, tp.Param(randT(uint64(i+40), B*T, C), nil))
		}
		y := Attention(tp, ps[0], ps[1], ps[2], B, T, AttnOpts{Heads: H, Causal: true, KeyLens: []int{9, 5, 7}})
		tp.backward(y, uniT(3, -1, 1, B*T, C).Data)
		for _, p := range ps {
			grads = append(grads, p.Grad.Data)
		}
		return y.Value.Data, grads
	}
	prev := runtime.GOMAXPROCS(1)
	o1, g1 := run()
	runtime.GOMAXPROCS(4)
	o4, g4 := run()
	runtime.GOMAXPROCS(prev)
	if tensor.MaxAbsDiff(o1, o4) != 0 {
		t.Fatal("attention output depends on GOMAXPROCS")
	}
	for i := range g1 {
		if tensor.MaxAbsDiff(g1[i], g4[i]) != 0 {
			t.Fatalf("attention gradient %d depends on GOMAXPROCS", i)
		}
	}
}

func TestAttentionShapePanics(t *testing.T) {
	x := Const(randT(1, 6, 8))
	expectPanic(t, "ops.Attention: 6 rows is not B·T", func() { Attention(nil, x, x, x, 2, 4, AttnOpts{Heads: 2}) })
	expectPanic(t, "ops.Attention: width 8 is not a multiple of 3 heads", func() { Attention(nil, x, x, x, 2, 3, AttnOpts{Heads: 3}) })
	expectPanic(t, "ops.Attention: key length 4", func() { Attention(nil, x, x, x, 2, 3, AttnOpts{Heads: 2, KeyLens: []int{1, 4}}) })
	expectPanic(t, "ops.Attention: 1 head-keep flags for 2 heads", func() {
		Attention(nil, x, x, x, 2, 3, AttnOpts{Heads: 2, HeadKeep: []bool{true}})
	})
}
