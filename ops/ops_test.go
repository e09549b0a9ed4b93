package ops

import (
	"math"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/tensor"
)

func TestLinearMatMul(t *testing.T) {
	var cases []opCase
	for _, bias := range []bool{true, false} {
		in := []*tensor.Tensor{randT(1, 2, 3, 7), randT(2, 5, 7)}
		grad := []bool{true, true}
		if bias {
			in = append(in, randT(3, 5))
			grad = append(grad, true)
		}
		cases = append(cases, opCase{
			name: "Linear/bias=" + map[bool]string{true: "yes", false: "no"}[bias],
			in:   in, grad: grad,
			build: func(tp *Tape, v []*Var) *Var {
				if len(v) == 3 {
					return Linear(tp, v[0], v[1], v[2])
				}
				return Linear(tp, v[0], v[1], nil)
			},
			ref: func(x [][]float64) []float64 {
				var b []float64
				if len(x) == 3 {
					b = x[2]
				}
				return refLinear(x[0], x[1], b, 6, 7, 5)
			},
		})
	}
	// Only the weight takes a gradient (frozen input), and only the input.
	cases = append(cases,
		opCase{name: "Linear/dW-only", in: []*tensor.Tensor{randT(4, 9, 4), randT(5, 3, 4)}, grad: []bool{false, true},
			build: func(tp *Tape, v []*Var) *Var { return Linear(tp, v[0], v[1], nil) },
			ref:   func(x [][]float64) []float64 { return refLinear(x[0], x[1], nil, 9, 4, 3) }},
		opCase{name: "Linear/dX-only", in: []*tensor.Tensor{randT(4, 9, 4), randT(5, 3, 4), randT(6, 3)}, grad: []bool{true, false, false},
			build: func(tp *Tape, v []*Var) *Var { return Linear(tp, v[0], v[1], v[2]) },
			ref:   func(x [][]float64) []float64 { return refLinear(x[0], x[1], x[2], 9, 4, 3) }},
		// No inputs (an MLP pruned to zero neurons feeds fc2 nothing): the
		// output is the bias, and the bias still gets its gradient.
		opCase{name: "Linear/in=0", in: []*tensor.Tensor{randT(7, 2, 3, 0), randT(8, 5, 0), randT(9, 5)}, grad: []bool{true, true, true},
			build: func(tp *Tape, v []*Var) *Var { return Linear(tp, v[0], v[1], v[2]) },
			ref:   func(x [][]float64) []float64 { return refLinear(x[0], x[1], x[2], 6, 0, 5) }},
	)
	const m, k, n = 5, 7, 3
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			ar, ac := m, k
			if ta {
				ar, ac = k, m
			}
			br, bc := k, n
			if tb {
				br, bc = n, k
			}
			cases = append(cases, opCase{
				name: "MatMul/ta=" + boolStr(ta) + ",tb=" + boolStr(tb),
				in:   []*tensor.Tensor{randT(10, ar, ac), randT(11, br, bc)}, grad: []bool{true, true},
				build: func(tp *Tape, v []*Var) *Var { return MatMul(tp, v[0], v[1], ta, tb) },
				ref:   func(x [][]float64) []float64 { return refMatMul(x[0], x[1], ar, ac, br, bc, ta, tb) },
			})
		}
	}
	// The same Var on both sides: x·xᵀ.
	cases = append(cases, opCase{
		name: "MatMul/x·xT", in: []*tensor.Tensor{randT(12, 4, 6)}, grad: []bool{true},
		build: func(tp *Tape, v []*Var) *Var { return MatMul(tp, v[0], v[0], false, true) },
		ref:   func(x [][]float64) []float64 { return refMatMul(x[0], x[0], 4, 6, 4, 6, false, true) },
	})
	runCases(t, cases)
}

func boolStr(b bool) string {
	if b {
		return "T"
	}
	return "F"
}

func TestElementwise(t *testing.T) {
	sh := []int{3, 5, 7}
	n := 105
	cases := []opCase{
		{name: "Add", in: []*tensor.Tensor{randT(1, sh...), randT(2, sh...)}, grad: []bool{true, true},
			build: func(tp *Tape, v []*Var) *Var { return Add(tp, v[0], v[1]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = x[0][i] + x[1][i]
				}
				return y
			}},
		{name: "Add/x+x", in: []*tensor.Tensor{randT(1, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Add(tp, v[0], v[0]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = 2 * x[0][i]
				}
				return y
			}},
		{name: "Mul", in: []*tensor.Tensor{randT(3, sh...), randT(4, sh...)}, grad: []bool{true, true},
			build: func(tp *Tape, v []*Var) *Var { return Mul(tp, v[0], v[1]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = x[0][i] * x[1][i]
				}
				return y
			}},
		{name: "Mul/x*x", in: []*tensor.Tensor{randT(3, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Mul(tp, v[0], v[0]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = x[0][i] * x[0][i]
				}
				return y
			}},
		{name: "Mul/const", in: []*tensor.Tensor{randT(3, sh...), randT(4, sh...)}, grad: []bool{false, true},
			build: func(tp *Tape, v []*Var) *Var { return Mul(tp, v[0], v[1]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = x[0][i] * x[1][i]
				}
				return y
			}},
		{name: "Scale", in: []*tensor.Tensor{randT(5, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Scale(tp, v[0], -1.75) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = -1.75 * x[0][i]
				}
				return y
			}},
		{name: "AddRowVector", in: []*tensor.Tensor{randT(6, sh...), randT(7, 7)}, grad: []bool{true, true},
			build: func(tp *Tape, v []*Var) *Var { return AddRowVector(tp, v[0], v[1]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = x[0][i] + x[1][i%7]
				}
				return y
			}},
		{name: "AddRowVector/trailing-block", in: []*tensor.Tensor{randT(6, sh...), randT(7, 5, 7)}, grad: []bool{true, true},
			build: func(tp *Tape, v []*Var) *Var { return AddRowVector(tp, v[0], v[1]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = x[0][i] + x[1][i%35]
				}
				return y
			}},
		{name: "Reshape", in: []*tensor.Tensor{randT(8, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var {
				r := Reshape(tp, v[0], -1, 7)
				if r.Value.Shape[0] != 15 {
					panic("bad reshape")
				}
				return Scale(tp, r, 2)
			},
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i := range y {
					y[i] = 2 * x[0][i]
				}
				return y
			}},
		{name: "QuickGELU", in: []*tensor.Tensor{uniT(9, -6, 6, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return QuickGELU(tp, v[0]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i, v := range x[0] {
					y[i] = v / (1 + math.Exp(-1.702*v))
				}
				return y
			}},
		{name: "GELU", in: []*tensor.Tensor{uniT(10, -6, 6, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return GELU(tp, v[0]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, n)
				for i, v := range x[0] {
					y[i] = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
				}
				return y
			}},
		{name: "Softmax", in: []*tensor.Tensor{uniT(11, -4, 4, 5, 3, 11)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Softmax(tp, v[0]) },
			ref: func(x [][]float64) []float64 {
				var y []float64
				for r := 0; r < 15; r++ {
					y = append(y, refSoftmaxRow(x[0][r*11:(r+1)*11])...)
				}
				return y
			}},
		{name: "WeightedSum", in: []*tensor.Tensor{randT(12, 3, 4), randT(13, 3, 4), randT(14, 3, 4)}, grad: []bool{true, false, true},
			build: func(tp *Tape, v []*Var) *Var { return WeightedSum(tp, v, []float32{0.5, -2, 3}) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, 12)
				for i := range y {
					y[i] = 0.5*x[0][i] - 2*x[1][i] + 3*x[2][i]
				}
				return y
			}},
		{name: "Sum", in: []*tensor.Tensor{randT(15, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Sum(tp, v[0]) },
			ref: func(x [][]float64) []float64 {
				var s float64
				for _, v := range x[0] {
					s += v
				}
				return []float64{s}
			}},
		{name: "Mean", in: []*tensor.Tensor{randT(16, sh...)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Mean(tp, v[0]) },
			ref: func(x [][]float64) []float64 {
				var s float64
				for _, v := range x[0] {
					s += v
				}
				return []float64{s / float64(n)}
			}},
	}
	runCases(t, cases)
}

func TestNormalization(t *testing.T) {
	const rows, n = 6, 13
	cases := []opCase{
		{name: "LayerNorm", in: []*tensor.Tensor{uniT(1, -3, 5, 2, 3, n), randT(2, n), randT(3, n)}, grad: []bool{true, true, true},
			build: func(tp *Tape, v []*Var) *Var { return LayerNorm(tp, v[0], v[1], v[2], 1e-5) },
			ref:   func(x [][]float64) []float64 { return refLayerNorm(x[0], x[1], x[2], n, 1e-5) }},
		{name: "LayerNorm/x-only", in: []*tensor.Tensor{uniT(4, -3, 5, rows, n), randT(5, n), randT(6, n)}, grad: []bool{true, false, false},
			build: func(tp *Tape, v []*Var) *Var { return LayerNorm(tp, v[0], v[1], v[2], 1e-5) },
			ref:   func(x [][]float64) []float64 { return refLayerNorm(x[0], x[1], x[2], n, 1e-5) }},
		// x feeds both LayerNorm and the residual Add: the LayerNorm
		// backward then accumulates into an existing gradient.
		{name: "LayerNorm/residual", in: []*tensor.Tensor{uniT(7, -3, 5, rows, n), randT(8, n), randT(9, n)}, grad: []bool{true, true, false},
			build: func(tp *Tape, v []*Var) *Var {
				return Add(tp, Scale(tp, v[0], 0.5), LayerNorm(tp, v[0], v[1], v[2], 1e-5))
			},
			ref: func(x [][]float64) []float64 {
				y := refLayerNorm(x[0], x[1], x[2], n, 1e-5)
				for i := range y {
					y[i] += 0.5 * x[0][i]
				}
				return y
			}},
		{name: "L2Normalize", in: []*tensor.Tensor{randT(10, rows, n)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return L2Normalize(tp, v[0]) },
			ref: func(x [][]float64) []float64 {
				y := make([]float64, len(x[0]))
				for r := 0; r < rows; r++ {
					var s float64
					for _, v := range x[0][r*n : (r+1)*n] {
						s += v * v
					}
					s = max(math.Sqrt(s), 1e-12)
					for j := 0; j < n; j++ {
						y[r*n+j] = x[0][r*n+j] / s
					}
				}
				return y
			}},
	}
	runCases(t, cases)

	// A zero row stays zero and gets the clamped gradient dy/eps.
	tp := NewTape()
	x := tensor.New(2, 3)
	x.Data[3], x.Data[4], x.Data[5] = 3, 0, 4
	p := tp.Param(x, nil)
	y := L2Normalize(tp, p)
	want := []float32{0, 0, 0, 0.6, 0, 0.8}
	if tensor.MaxAbsDiff(y.Value.Data, want) > 1e-7 {
		t.Fatalf("L2Normalize zero row: got %v, want %v", y.Value.Data, want)
	}
	tp.backward(y, []float32{1e-12, 0, 0, 0, 0, 0})
	if g := p.Grad.Data[0]; math.Abs(float64(g)-1) > 1e-6 || p.Grad.Data[1] != 0 {
		t.Fatalf("L2Normalize zero row grad: got %v", p.Grad.Data[:3])
	}
}

func TestRowOps(t *testing.T) {
	ids := []int{4, 0, 4, 2, 6, 1, 4}
	cases := []opCase{
		{name: "Embedding", in: []*tensor.Tensor{randT(1, 7, 5)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Embedding(tp, v[0], ids) },
			ref: func(x [][]float64) []float64 {
				var y []float64
				for _, i := range ids {
					y = append(y, x[0][i*5:(i+1)*5]...)
				}
				return y
			}},
		{name: "GatherRows", in: []*tensor.Tensor{randT(2, 8, 2, 3)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return GatherRows(tp, v[0], []int{7, 0, 7}) },
			ref: func(x [][]float64) []float64 {
				var y []float64
				for _, i := range []int{7, 0, 7} {
					y = append(y, x[0][i*6:(i+1)*6]...)
				}
				return y
			}},
		{name: "SliceRows", in: []*tensor.Tensor{randT(3, 9, 4)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var { return Scale(tp, SliceRows(tp, v[0], 2, 7), 3) },
			ref: func(x [][]float64) []float64 {
				y := append([]float64(nil), x[0][8:28]...)
				for i := range y {
					y[i] *= 3
				}
				return y
			}},
		// Two overlapping slices: the second accumulates.
		{name: "SliceRows/twice", in: []*tensor.Tensor{randT(3, 9, 4)}, grad: []bool{true},
			build: func(tp *Tape, v []*Var) *Var {
				return Add(tp, SliceRows(tp, v[0], 2, 7), SliceRows(tp, v[0], 4, 9))
			},
			ref: func(x [][]float64) []float64 {
				y := make([]float64, 20)
				for i := range y {
					y[i] = x[0][8+i] + x[0][16+i]
				}
				return y
			}},
		{name: "ConcatRows", in: []*tensor.Tensor{randT(4, 2, 3, 2), randT(5, 1, 3, 2), randT(6, 4, 3, 2)}, grad: []bool{true, false, true},
			build: func(tp *Tape, v []*Var) *Var { return ConcatRows(tp, v[0], v[1], v[2], v[0]) },
			ref: func(x [][]float64) []float64 {
				var y []float64
				for _, i := range []int{0, 1, 2, 0} {
					y = append(y, x[i]...)
				}
				return y
			}},
		{name: "PrependToken", in: []*tensor.Tensor{randT(7, 3, 4, 5), randT(8, 5)}, grad: []bool{true, true},
			build: func(tp *Tape, v []*Var) *Var { return PrependToken(tp, v[0], v[1]) },
			ref: func(x [][]float64) []float64 {
				var y []float64
				for b := 0; b < 3; b++ {
					y = append(y, x[1]...)
					y = append(y, x[0][b*20:(b+1)*20]...)
				}
				return y
			}},
	}
	// PatchEmbed: B=2, Cin=3, 12x8 image, patch 4 -> 3x2 = 6 patches, C=5.
	const B, Cin, H, W, P, C = 2, 3, 12, 8, 4, 5
	cases = append(cases, opCase{
		name: "PatchEmbed", in: []*tensor.Tensor{randT(9, B, Cin, H, W), randT(10, C, Cin, P, P)}, grad: []bool{true, true},
		build: func(tp *Tape, v []*Var) *Var { return PatchEmbed(tp, v[0], v[1], P) },
		ref: func(x [][]float64) []float64 {
			pix, w := x[0], x[1]
			gh, gw := H/P, W/P
			y := make([]float64, B*gh*gw*C)
			for b := 0; b < B; b++ {
				for py := 0; py < gh; py++ {
					for px := 0; px < gw; px++ {
						for c := 0; c < C; c++ {
							var s float64
							for ci := 0; ci < Cin; ci++ {
								for ky := 0; ky < P; ky++ {
									for kx := 0; kx < P; kx++ {
										s += w[((c*Cin+ci)*P+ky)*P+kx] * pix[((b*Cin+ci)*H+py*P+ky)*W+px*P+kx]
									}
								}
							}
							y[((b*gh*gw)+py*gw+px)*C+c] = s
						}
					}
				}
			}
			return y
		},
	})
	runCases(t, cases)

	t.Run("Embedding/out-of-range", func(t *testing.T) {
		expectPanic(t, "ops.Embedding: index 7", func() { Embedding(nil, Const(randT(1, 7, 5)), []int{0, 7}) })
	})
}

func TestLosses(t *testing.T) {
	const N, D = 5, 6
	mkNorm := func(seed uint64) *tensor.Tensor {
		x := randT(seed, N, D)
		for r := 0; r < N; r++ {
			row := x.Data[r*D : (r+1)*D]
			s := float32(math.Sqrt(float64(tensor.SumSq(row))))
			tensor.Scale(1/s, row)
		}
		return x
	}
	scaleT := func(v float32) *tensor.Tensor { s := tensor.New(1); s.Data[0] = v; return s }
	infoRef := func(x [][]float64) []float64 { return []float64{refInfoNCE(x[0], x[1], x[2][0], N, D)} }
	cases := []opCase{
		{name: "InfoNCE", in: []*tensor.Tensor{mkNorm(1), mkNorm(2), scaleT(2.3)}, grad: []bool{true, true, true},
			build: func(tp *Tape, v []*Var) *Var { return InfoNCE(tp, v[0], v[1], v[2]) },
			ref:   infoRef},
		{name: "InfoNCE/same-embeddings", in: []*tensor.Tensor{mkNorm(3), scaleT(1)}, grad: []bool{true, false},
			build: func(tp *Tape, v []*Var) *Var { return InfoNCE(tp, v[0], v[0], v[1]) },
			ref:   func(x [][]float64) []float64 { return []float64{refInfoNCE(x[0], x[0], x[1][0], N, D)} }},
		// Clamped: exp(5) > 100; the scale is 100 and s gets no gradient.
		{name: "InfoNCE/clamped", in: []*tensor.Tensor{mkNorm(4), mkNorm(5), scaleT(5)}, grad: []bool{true, true, true},
			build: func(tp *Tape, v []*Var) *Var { return InfoNCE(tp, v[0], v[1], v[2]) },
			ref:   infoRef},
		{name: "SoftCrossEntropy", in: []*tensor.Tensor{randT(6, 4, 9), randT(7, 4, 9)}, grad: []bool{true, false},
			build: func(tp *Tape, v []*Var) *Var { return SoftCrossEntropy(tp, v[0], v[1], 2.5) },
			ref: func(x [][]float64) []float64 {
				var loss float64
				for r := 0; r < 4; r++ {
					s := make([]float64, 9)
					tt := make([]float64, 9)
					for j := range s {
						s[j] = x[0][r*9+j] / 2.5
						tt[j] = x[1][r*9+j] / 2.5
					}
					ps, pt := refSoftmaxRow(s), refSoftmaxRow(tt)
					for j := range s {
						loss -= pt[j] * math.Log(ps[j])
					}
				}
				return []float64{loss / 4}
			}},
		{name: "MSE", in: []*tensor.Tensor{randT(8, 3, 7), randT(9, 3, 7)}, grad: []bool{true, true},
			build: func(tp *Tape, v []*Var) *Var { return MSE(tp, v[0], v[1]) },
			ref: func(x [][]float64) []float64 {
				var s float64
				for i := range x[0] {
					d := x[0][i] - x[1][i]
					s += d * d
				}
				return []float64{s / 21}
			}},
	}
	runCases(t, cases)

	t.Run("InfoNCE/clamp-gradient-exactly-zero", func(t *testing.T) {
		tp := NewTape()
		s := tp.Param(scaleT(4.7), nil)
		loss := InfoNCE(tp, Const(mkNorm(1)), Const(mkNorm(2)), s)
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		if s.Grad.Data[0] != 0 {
			t.Fatalf("clamped logit scale got gradient %v", s.Grad.Data[0])
		}
		// The loss equals the one at exactly ln 100.
		at := InfoNCE(nil, Const(mkNorm(1)), Const(mkNorm(2)), Const(scaleT(float32(math.Log(100)))))
		if loss.Value.Data[0] != at.Value.Data[0] {
			t.Fatalf("clamped loss %v != loss at ln 100 %v", loss.Value.Data[0], at.Value.Data[0])
		}
	})
	t.Run("SoftCrossEntropy/teacher-no-grad", func(t *testing.T) {
		tp := NewTape()
		st := tp.Param(randT(1, 3, 4), nil)
		te := tp.Param(randT(2, 3, 4), nil)
		if err := tp.Backward(SoftCrossEntropy(tp, st, te, 1)); err != nil {
			t.Fatal(err)
		}
		for _, g := range te.Grad.Data {
			if g != 0 {
				t.Fatalf("teacher got gradient %v", te.Grad.Data)
			}
		}
		if tensor.SumSq(st.Grad.Data) == 0 {
			t.Fatal("student got no gradient")
		}
		// Same-distribution logits: loss = entropy, gradient 0.
		tp2 := NewTape()
		x := randT(3, 2, 5)
		p := tp2.Param(x, nil)
		if err := tp2.Backward(SoftCrossEntropy(tp2, p, Const(x), 3)); err != nil {
			t.Fatal(err)
		}
		if m := tensor.MaxAbsDiff(p.Grad.Data, make([]float32, 10)); m > 1e-7 {
			t.Fatalf("matching distributions: grad %v", p.Grad.Data)
		}
	})
}

func expectPanic(t *testing.T, substr string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", substr)
		}
		msg, _ := r.(string)
		if e, ok := r.(error); ok {
			msg = e.Error()
		}
		if !strings.Contains(msg, substr) {
			t.Fatalf("panic %q, want one containing %q", msg, substr)
		}
	}()
	f()
}

func TestMaxLogitScale(t *testing.T) {
	if MaxLogitScale != math.Log(100) {
		t.Fatalf("MaxLogitScale %v != ln 100 %v", MaxLogitScale, math.Log(100))
	}
}
