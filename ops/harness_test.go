package ops

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/tensor"
)

// The test harness checks an op three ways against a float64 re-implementation
// of its forward pass (ref):
//
//  1. forward: the inference result (nil tape) matches ref within ftol;
//     the recorded result is bit-identical to it.
//  2. gradients: with a random upstream gradient R, the analytic gradient of
//     Σ R⊙op(x) w.r.t. every input that takes one is compared with central
//     differences of Σ R⊙ref(x) computed in float64 (h = 1e-6, so the
//     numeric side is accurate to ~1e-9 and the tolerance measures the
//     float32 analytic gradient alone).
//  3. accumulation: Param gradients start from random values and the check
//     uses (grad after − grad before), so every op must add into Params.
//
// Tolerances: |got − want| ≤ tol·(|want| + max|want|) per input, i.e. relative
// to the largest entry, with tol 2e-5 for gradients unless a case says
// otherwise.

type opCase struct {
	name  string
	in    []*tensor.Tensor
	grad  []bool // which inputs take gradients (Params); the rest are Consts
	build func(tp *Tape, v []*Var) *Var
	ref   func(x [][]float64) []float64
	ftol  float64 // forward tolerance (default 1e-5)
	gtol  float64 // gradient tolerance (default 2e-5)
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func randT(seed uint64, shape ...int) *tensor.Tensor {
	return tensor.New(shape...).Normal(tensor.NewRNG(seed), 0, 1)
}

func uniT(seed uint64, lo, hi float64, shape ...int) *tensor.Tensor {
	return tensor.New(shape...).Uniform(tensor.NewRNG(seed), lo, hi)
}

// closeTo reports the worst violation of |got−want| ≤ tol·(|want|+max|want|).
func closeTo(got []float32, want []float64, tol float64) (bad int, worst float64) {
	scale := 0.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	bad = -1
	for i, w := range want {
		d := math.Abs(float64(got[i])-w) / (math.Abs(w) + scale + 1e-30)
		if d != d || d > worst {
			worst = d
			if d != d || d > tol {
				bad = i
			}
		}
	}
	return bad, worst
}

func runCase(t *testing.T, c opCase) {
	t.Helper()
	ftol, gtol := c.ftol, c.gtol
	if ftol == 0 {
		ftol = 1e-5
	}
	if gtol == 0 {
		gtol = 2e-5
	}
	x64 := make([][]float64, len(c.in))
	consts := make([]*Var, len(c.in))
	for i, x := range c.in {
		x64[i] = to64(x.Data)
		consts[i] = Const(x)
	}
	// 1. Forward.
	y0 := c.build(nil, consts)
	want := c.ref(x64)
	if len(want) != len(y0.Value.Data) {
		t.Fatalf("%s: output has %d values, reference %d", c.name, len(y0.Value.Data), len(want))
	}
	if bad, worst := closeTo(y0.Value.Data, want, ftol); bad >= 0 {
		t.Fatalf("%s: forward[%d] = %v, want %v (rel err %.3g > %.3g)", c.name, bad, y0.Value.Data[bad], want[bad], worst, ftol)
	}
	tp := NewTape()
	vs := make([]*Var, len(c.in))
	before := make([]*tensor.Tensor, len(c.in))
	anyGrad := false
	for i, x := range c.in {
		if c.grad[i] {
			before[i] = uniT(uint64(100+i), -0.5, 0.5, x.Shape...)
			vs[i] = tp.Param(x, before[i].Clone())
			anyGrad = true
		} else {
			vs[i] = Const(x)
		}
	}
	y := c.build(tp, vs)
	if tensor.MaxAbsDiff(y.Value.Data, y0.Value.Data) != 0 {
		t.Fatalf("%s: recorded forward differs from inference forward", c.name)
	}
	if !anyGrad {
		return
	}
	if !y.RequiresGrad() {
		t.Fatalf("%s: output does not require grad", c.name)
	}
	R := uniT(7, -1, 1, y.Value.Shape...).Data
	tp.backward(y, R)
	// 2. Gradients.
	f := func() float64 {
		out := c.ref(x64)
		var s float64
		for i, v := range out {
			s += float64(R[i]) * v
		}
		return s
	}
	const h = 1e-6
	for i := range c.in {
		if !c.grad[i] {
			continue
		}
		n := len(x64[i])
		idx := make([]int, 0, n)
		step := 1
		if n > 120 {
			step = n/120 + 1
		}
		for j := 0; j < n; j += step {
			idx = append(idx, j)
		}
		num := make([]float64, len(idx))
		ana := make([]float32, len(idx))
		for m, j := range idx {
			old := x64[i][j]
			x64[i][j] = old + h
			fp := f()
			x64[i][j] = old - h
			fm := f()
			x64[i][j] = old
			num[m] = (fp - fm) / (2 * h)
			ana[m] = float32(float64(vs[i].Grad.Data[j]) - float64(before[i].Data[j]))
		}
		if bad, worst := closeTo(ana, num, gtol); bad >= 0 {
			t.Fatalf("%s: grad of input %d [%d] = %v, numeric %v (rel err %.3g > %.3g)", c.name, i, idx[bad], ana[bad], num[bad], worst, gtol)
		} else if testing.Verbose() {
			t.Logf("%s: input %d grad rel err %.2g", c.name, i, worst)
		}
	}
}

func runCases(t *testing.T, cases []opCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}

// ---- float64 references ----

func refLinear(x, w, b []float64, rows, in, out int) []float64 {
	y := make([]float64, rows*out)
	for r := 0; r < rows; r++ {
		for o := 0; o < out; o++ {
			var s float64
			for i := 0; i < in; i++ {
				s += x[r*in+i] * w[o*in+i]
			}
			if b != nil {
				s += b[o]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func refMatMul(a, b []float64, ar, ac, br, bc int, ta, tb bool) []float64 {
	at := func(i, l int) float64 {
		if ta {
			return a[l*ac+i]
		}
		return a[i*ac+l]
	}
	bt := func(l, j int) float64 {
		if tb {
			return b[j*bc+l]
		}
		return b[l*bc+j]
	}
	m, k := ar, ac
	if ta {
		m, k = ac, ar
	}
	n := bc
	if tb {
		n = br
	}
	y := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				s += at(i, l) * bt(l, j)
			}
			y[i*n+j] = s
		}
	}
	return y
}

func refSoftmaxRow(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	y := make([]float64, len(x))
	var s float64
	for i, v := range x {
		y[i] = math.Exp(v - m)
		s += y[i]
	}
	for i := range y {
		y[i] /= s
	}
	return y
}

func refLayerNorm(x, g, b []float64, n int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r*n < len(x); r++ {
		row := x[r*n : (r+1)*n]
		var mu, v float64
		for _, e := range row {
			mu += e
		}
		mu /= float64(n)
		for _, e := range row {
			v += (e - mu) * (e - mu)
		}
		v /= float64(n)
		rs := 1 / math.Sqrt(v+eps)
		for j, e := range row {
			y[r*n+j] = (e-mu)*rs*g[j] + b[j]
		}
	}
	return y
}

// refAttention is the plain per-(b, h, i, j) definition.
func refAttention(q, k, v []float64, B, T, H int, o AttnOpts) []float64 {
	C := len(q) / (B * T)
	D := C / H
	scale := float64(o.Scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(D))
	}
	out := make([]float64, len(q))
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			if o.HeadKeep != nil && !o.HeadKeep[h] {
				continue
			}
			for i := 0; i < T; i++ {
				var idx []int
				for j := 0; j < T; j++ {
					if o.Causal && j > i {
						continue
					}
					if o.KeyLens != nil && j >= o.KeyLens[b] {
						continue
					}
					idx = append(idx, j)
				}
				if len(idx) == 0 {
					continue
				}
				s := make([]float64, len(idx))
				for m, j := range idx {
					for d := 0; d < D; d++ {
						s[m] += q[(b*T+i)*C+h*D+d] * k[(b*T+j)*C+h*D+d]
					}
					s[m] *= scale
				}
				p := refSoftmaxRow(s)
				for m, j := range idx {
					for d := 0; d < D; d++ {
						out[(b*T+i)*C+h*D+d] += p[m] * v[(b*T+j)*C+h*D+d]
					}
				}
			}
		}
	}
	return out
}

func refInfoNCE(img, txt []float64, s float64, N, D int) float64 {
	scale := math.Exp(min(s, math.Log(100)))
	L := make([]float64, N*N)
	for i := 0; i < N; i++ {
		for j := 0; j < N; j++ {
			var d float64
			for k := 0; k < D; k++ {
				d += img[i*D+k] * txt[j*D+k]
			}
			L[i*N+j] = scale * d
		}
	}
	var loss float64
	for i := 0; i < N; i++ {
		row := make([]float64, N)
		col := make([]float64, N)
		for j := 0; j < N; j++ {
			row[j] = L[i*N+j]
			col[j] = L[j*N+i]
		}
		loss -= math.Log(refSoftmaxRow(row)[i]) + math.Log(refSoftmaxRow(col)[i])
	}
	return loss / float64(2*N)
}
