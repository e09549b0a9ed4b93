package ops

import (
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/tensor"
)

func TestBackwardErrors(t *testing.T) {
	tp := NewTape()
	other := NewTape()
	w := tp.Param(randT(1, 3, 4), nil)
	x := Const(randT(2, 2, 4))
	scalarLoss := Sum(tp, Linear(tp, x, w, nil))
	vecLoss := Linear(tp, x, w, nil)
	cases := []struct {
		name string
		tp   *Tape
		loss *Var
		want string
	}{
		{"nil tape", nil, scalarLoss, "nil tape"},
		{"nil loss", tp, nil, "nil loss"},
		{"non-scalar", tp, vecLoss, "one element, got shape [2 3]"},
		{"constant", tp, Sum(tp, x), "depends on no Param"},
		{"inference", tp, Sum(nil, Linear(nil, x, w, nil)), "depends on no Param"},
		{"other tape", other, scalarLoss, "another tape"},
	}
	for _, c := range cases {
		err := c.tp.Backward(c.loss)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	tp.Reset()
	if err := tp.Backward(scalarLoss); err == nil || !strings.Contains(err.Error(), "before Tape.Reset") {
		t.Errorf("stale loss: error %v", err)
	}
	// A scalar Param as its own loss: d/dp = 1.
	s := tp.Param(tensor.New(1), nil)
	if err := tp.Backward(s); err != nil || s.Grad.Data[0] != 1 {
		t.Errorf("param loss: err %v grad %v", err, s.Grad.Data)
	}
}

func TestTapeMisusePanics(t *testing.T) {
	tp, other := NewTape(), NewTape()
	a := tp.Param(randT(1, 2, 3), nil)
	b := other.Param(randT(2, 2, 3), nil)
	expectPanic(t, "ops.Add: input 1 was recorded on another tape", func() { Add(tp, a, b) })
	y := Scale(tp, a, 2)
	tp.Reset()
	expectPanic(t, "ops.Mul: input 0 was recorded before Tape.Reset", func() { Mul(tp, y, a) })
	expectPanic(t, "ops.Add: input 0 is nil", func() { Add(tp, nil, a) })
	expectPanic(t, "ops.Param: grad shape [3] does not match value shape [2 3]", func() { tp.Param(randT(1, 2, 3), tensor.New(3)) })
}

func TestShapePanics(t *testing.T) {
	x := Const(randT(1, 4, 6))
	expectPanic(t, "ops.Add: shapes [4 6] and [6 4] differ", func() { Add(nil, x, Const(randT(1, 6, 4))) })
	expectPanic(t, "ops.Mul: shapes", func() { Mul(nil, x, Const(randT(1, 4, 5))) })
	expectPanic(t, "ops.Linear: weight shape [3 5] does not fit input shape [4 6]", func() { Linear(nil, x, Const(randT(1, 3, 5)), nil) })
	expectPanic(t, "ops.Linear: bias shape [4]", func() { Linear(nil, x, Const(randT(1, 3, 6)), Const(randT(1, 4))) })
	expectPanic(t, "ops.MatMul: inner dimensions differ", func() { MatMul(nil, x, x, false, false) })
	expectPanic(t, "ops.LayerNorm: gamma/beta shape [5]", func() { LayerNorm(nil, x, Const(randT(1, 5)), Const(randT(1, 6)), 1e-5) })
	expectPanic(t, "ops.AddRowVector: vector shape [4]", func() { AddRowVector(nil, x, Const(randT(1, 4))) })
	expectPanic(t, "ops.ConcatRows: shape [2 5]", func() { ConcatRows(nil, x, Const(randT(1, 2, 5))) })
	expectPanic(t, "ops.SliceRows: rows [2, 5) out of range", func() { SliceRows(nil, x, 2, 5) })
	expectPanic(t, "ops.GatherRows: index -1", func() { GatherRows(nil, x, []int{-1}) })
	expectPanic(t, "ops.PatchEmbed: image 10x10 is not a multiple of patch 4", func() {
		PatchEmbed(nil, Const(randT(1, 1, 3, 10, 10)), Const(randT(1, 2, 3, 4, 4)), 4)
	})
	expectPanic(t, "ops.PatchEmbed: need pixels", func() { PatchEmbed(nil, Const(randT(1, 1, 3, 8, 8)), Const(randT(1, 2, 1, 4, 4)), 4) })
	expectPanic(t, "ops.InfoNCE: img and txt", func() { InfoNCE(nil, x, Const(randT(1, 3, 6)), Const(tensor.New(1))) })
	expectPanic(t, "ops.InfoNCE: logit scale", func() { InfoNCE(nil, x, x, Const(tensor.New(2))) })
	expectPanic(t, "ops.MSE: shapes", func() { MSE(nil, x, Const(randT(1, 24))) })
	expectPanic(t, "ops.SoftCrossEntropy: student shape", func() { SoftCrossEntropy(nil, x, Const(randT(1, 4, 5)), 1) })
	expectPanic(t, "ops.Reshape:", func() { Reshape(nil, x, 5, -1) })
	expectPanic(t, "ops.WeightedSum: 1 vars and 2 weights", func() { WeightedSum(nil, []*Var{x}, []float32{1, 2}) })
}

// Param gradients accumulate: twice Backward on one recording, and two
// recorded steps with a Reset in between, both give twice the gradient.
func TestGradientAccumulation(t *testing.T) {
	wv, bv := randT(1, 3, 5), randT(2, 3)
	x := Const(randT(3, 4, 5))
	once := func() []float32 {
		tp := NewTape()
		w := tp.Param(wv, nil)
		b := tp.Param(bv, nil)
		if err := tp.Backward(Mean(tp, QuickGELU(tp, Linear(tp, x, w, b)))); err != nil {
			t.Fatal(err)
		}
		return append(append([]float32(nil), w.Grad.Data...), b.Grad.Data...)
	}
	g1 := once()
	check := func(name string, gw, gb *tensor.Tensor) {
		got := append(append([]float32(nil), gw.Data...), gb.Data...)
		for i := range got {
			if d := got[i] - 2*g1[i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("%s: grad[%d] = %v, want 2·%v", name, i, got[i], g1[i])
			}
		}
	}
	// Twice on one recording.
	tp := NewTape()
	gw, gb := tensor.New(3, 5), tensor.New(3)
	w, b := tp.Param(wv, gw), tp.Param(bv, gb)
	loss := Mean(tp, QuickGELU(tp, Linear(tp, x, w, b)))
	for i := 0; i < 2; i++ {
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
	}
	check("twice", gw, gb)
	// Two steps, Params reused across Reset.
	tp.Reset()
	gw.Zero()
	gb.Zero()
	for i := 0; i < 2; i++ {
		if err := tp.Backward(Mean(tp, QuickGELU(tp, Linear(tp, x, w, b)))); err != nil {
			t.Fatal(err)
		}
		tp.Reset()
	}
	check("two steps", gw, gb)
}

func TestRetainGradAndRelease(t *testing.T) {
	tp := NewTape()
	p := tp.Param(randT(1, 2, 3), nil)
	h := Scale(tp, p, 3)
	k := Scale(tp, h, 2)
	tp.RetainGrad(h)
	if err := tp.Backward(Sum(tp, k)); err != nil {
		t.Fatal(err)
	}
	if k.Grad != nil {
		t.Error("non-retained intermediate kept its gradient")
	}
	for i, g := range h.Grad.Data {
		if g != 2 || p.Grad.Data[i] != 6 {
			t.Fatalf("retained grad %v, param grad %v", h.Grad.Data, p.Grad.Data)
		}
	}
	// A second Backward restarts the retained gradient, Params accumulate.
	if err := tp.Backward(Sum(tp, k)); err != nil {
		t.Fatal(err)
	}
	if h.Grad.Data[0] != 2 || p.Grad.Data[0] != 12 {
		t.Fatalf("second backward: retained %v param %v", h.Grad.Data[0], p.Grad.Data[0])
	}
	tp.Reset()
	if h.Grad != nil {
		t.Error("Reset kept a retained gradient")
	}
	// A retained Add output keeps its own buffer (not handed to an input).
	a, b := tp.Param(randT(2, 3), nil), tp.Param(randT(3, 3), nil)
	y := Add(tp, Scale(tp, a, 1), b)
	r := Reshape(tp, y, 3)
	tp.RetainGrad(y)
	tp.RetainGrad(r)
	if err := tp.Backward(Sum(tp, Scale(tp, r, 2))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if y.Grad.Data[i] != 2 || r.Grad.Data[i] != 2 || a.Grad.Data[i] != 2 || b.Grad.Data[i] != 2 {
			t.Fatalf("grads y %v r %v a %v b %v", y.Grad.Data, r.Grad.Data, a.Grad.Data, b.Grad.Data)
		}
	}
	if &y.Grad.Data[0] == &r.Grad.Data[0] {
		t.Fatal("retained gradients share a buffer")
	}
}

// Ops on inputs that need no gradient record nothing, on a tape or not; a nil
// tape tracks nothing.
func TestNoRecording(t *testing.T) {
	tp := NewTape()
	x := Const(randT(1, 4, 6))
	w := Const(randT(2, 3, 6))
	y := Softmax(tp, Linear(tp, x, w, nil))
	if y.RequiresGrad() || len(tp.nodes) != 0 || len(tp.saved) != 0 {
		t.Fatalf("constant computation recorded %d nodes", len(tp.nodes))
	}
	var nilTape *Tape
	p := nilTape.Param(randT(3, 3, 6), nil)
	if p.RequiresGrad() {
		t.Fatal("Param on a nil tape tracks gradients")
	}
	// Teacher forward with frozen weights on the student's tape.
	s := tp.Param(randT(4, 3, 6), nil)
	student := Linear(tp, x, s, nil)
	teacher := Linear(tp, x, w, nil)
	n := len(tp.nodes)
	if n != 1 || teacher.RequiresGrad() || !student.RequiresGrad() {
		t.Fatalf("teacher recorded: %d nodes", n)
	}
}

// The pool holds at most the buffer sizes the last step used.
func TestPoolBounded(t *testing.T) {
	tp := NewTape()
	p := tp.Param(randT(1, 5, 7), nil)
	for _, rows := range []int{5, 4, 3} {
		x := Const(randT(2, rows, 7))
		if err := tp.Backward(Sum(tp, LayerNorm(tp, x, Const(randT(3, 7)), Const(randT(4, 7)), 1e-5))); err == nil {
			t.Fatal("constant loss accepted")
		}
		y := Linear(tp, Mul(tp, x, SliceRows(tp, p, 0, rows)), Const(randT(5, 2, 7)), nil)
		if err := tp.Backward(Mean(tp, y)); err != nil {
			t.Fatal(err)
		}
		tp.Reset()
	}
	for n, b := range tp.pool {
		if n != 3*7 && n != 3*2 && n != 1 {
			t.Errorf("pool keeps buffers of length %d (%d)", n, len(b.free))
		}
	}
}
