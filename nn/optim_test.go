package nn

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/tensor"
)

// adamRef64 is the AdamW update in float64, written straight from the
// formula (bias-corrected moments), for comparison with AdamW.Step.
type adamRef64 struct {
	p, m, v []float64
}

func (r *adamRef64) step(g []float32, t int, lr float64, c AdamWConfig, decay bool) {
	for i := range r.p {
		gi := float64(g[i])
		if decay {
			r.p[i] *= 1 - lr*c.WeightDecay
		}
		r.m[i] = c.Beta1*r.m[i] + (1-c.Beta1)*gi
		r.v[i] = c.Beta2*r.v[i] + (1-c.Beta2)*gi*gi
		mhat := r.m[i] / (1 - math.Pow(c.Beta1, float64(t)))
		vhat := r.v[i] / (1 - math.Pow(c.Beta2, float64(t)))
		r.p[i] -= lr * mhat / (math.Sqrt(vhat) + c.Eps)
	}
}

func TestAdamWMatchesFloat64Reference(t *testing.T) {
	rng := tensor.NewRNG(1)
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.2}
	w := NewParam("w", 7, 5)
	w.Value.Normal(rng, 0, 1)
	b := NewParam("b", 300000) // spans several work chunks
	b.Value.Normal(rng, 0, 1)
	b.NoDecay = true
	params := []*Param{w, b}
	refs := make([]*adamRef64, len(params))
	for i, p := range params {
		r := &adamRef64{p: make([]float64, p.Value.Len()), m: make([]float64, p.Value.Len()), v: make([]float64, p.Value.Len())}
		for j, x := range p.Value.Data {
			r.p[j] = float64(x)
		}
		refs[i] = r
	}
	opt := NewAdamW(params, cfg)
	sched := CosineSchedule{Warmup: 3, Total: 20, Peak: 1e-2, Min: 1e-4}
	for step := 0; step < 20; step++ {
		for _, p := range params {
			p.Grad.Normal(rng, 0, 0.1+float64(step))
		}
		lr := sched.LR(step)
		for i, p := range params {
			refs[i].step(p.Grad.Data, step+1, lr, cfg, !p.NoDecay)
		}
		opt.Step(lr)
		opt.ZeroGrad()
	}
	if opt.StepCount() != 20 {
		t.Fatalf("StepCount = %d", opt.StepCount())
	}
	for i, p := range params {
		var worst float64
		for j, x := range p.Value.Data {
			d := math.Abs(float64(x)-refs[i].p[j]) / (1e-3 + math.Abs(refs[i].p[j]))
			worst = max(worst, d)
		}
		if worst > 1e-5 {
			t.Errorf("%s: max relative error %g vs float64 reference", p.Name, worst)
		}
		if GradNorm([]*Param{p}) != 0 {
			t.Errorf("%s: ZeroGrad left a gradient", p.Name)
		}
	}
}

func TestAdamWFirstStepAndNoDecay(t *testing.T) {
	// At t=1 the bias-corrected update is lr·g/(|g|+ε) ≈ lr·sign(g).
	p := NewParam("p", 3)
	copy(p.Value.Data, []float32{1, 1, 1})
	copy(p.Grad.Data, []float32{2, -3, 0})
	q := NewParam("q", 1)
	q.NoDecay = true
	q.Value.Data[0] = 1
	opt := NewAdamW([]*Param{p, q}, AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5})
	opt.Step(0.1)
	want := []float32{1*0.95 - 0.1, 1*0.95 + 0.1, 0.95}
	for i := range want {
		if math.Abs(float64(p.Value.Data[i]-want[i])) > 1e-6 {
			t.Errorf("p[%d] = %v, want %v", i, p.Value.Data[i], want[i])
		}
	}
	if q.Value.Data[0] != 1 {
		t.Errorf("NoDecay parameter with zero gradient moved: %v", q.Value.Data[0])
	}
}

func TestCosineSchedule(t *testing.T) {
	s := CosineSchedule{Warmup: 4, Total: 14, Peak: 1, Min: 0.1}
	cases := []struct {
		step int
		want float64
	}{
		{0, 0.25}, {1, 0.5}, {3, 1}, {4, 1},
		{9, 0.1 + 0.9*0.5}, // half way through the decay
		{6, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi*2/10))},  // 2/10 of the decay
		{13, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi*9/10))}, // last step
		{14, 0.1}, {100, 0.1}, {-1, 0.25},
	}
	for _, c := range cases {
		if got := s.LR(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("LR(%d) = %v, want %v", c.step, got, c.want)
		}
	}
	// Monotone after the warm-up.
	for i := 4; i < 20; i++ {
		if s.LR(i+1) > s.LR(i) {
			t.Errorf("LR rises at step %d", i)
		}
	}
	if got := (CosineSchedule{Warmup: 0, Total: 10, Peak: 2, Min: 0}).LR(0); got != 2 {
		t.Errorf("no warm-up: LR(0) = %v, want 2", got)
	}
}

func TestClipGradNorm(t *testing.T) {
	a := NewParam("a", 2)
	b := NewParam("b", 1)
	copy(a.Grad.Data, []float32{3, 0})
	b.Grad.Data[0] = 4
	ps := []*Param{a, b}
	if n := GradNorm(ps); n != 5 {
		t.Fatalf("GradNorm = %v", n)
	}
	if n := ClipGradNorm(ps, 10); n != 5 || a.Grad.Data[0] != 3 {
		t.Fatalf("no-op clip changed things: norm %v grad %v", n, a.Grad.Data)
	}
	n := ClipGradNorm(ps, 1)
	if n != 5 {
		t.Fatalf("returned norm %v, want the pre-clip 5", n)
	}
	if got := GradNorm(ps); math.Abs(got-1) > 1e-6 {
		t.Fatalf("clipped norm %v, want 1", got)
	}
	if math.Abs(float64(a.Grad.Data[0])-0.6) > 1e-6 || math.Abs(float64(b.Grad.Data[0])-0.8) > 1e-6 {
		t.Fatalf("clipped direction changed: %v %v", a.Grad.Data, b.Grad.Data)
	}
	b.Grad.Data[0] = float32(math.NaN())
	a0 := a.Grad.Data[0]
	if n := ClipGradNorm(ps, 1); !math.IsNaN(n) || a.Grad.Data[0] != a0 {
		t.Fatalf("NaN norm: got %v, grads %v (want untouched)", n, a.Grad.Data)
	}
}

func TestGradAccumulationHelpers(t *testing.T) {
	p := NewParam("p", 2)
	copy(p.Grad.Data, []float32{2, 4})
	ScaleGrads([]*Param{p}, 0.5)
	if p.Grad.Data[0] != 1 || p.Grad.Data[1] != 2 {
		t.Fatalf("ScaleGrads: %v", p.Grad.Data)
	}
	if NumParams([]*Param{p, NewParam("q", 3, 2)}) != 8 {
		t.Fatal("NumParams")
	}
}

func TestNewAdamWRejectsDuplicates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("want panic on duplicate names")
		}
	}()
	NewAdamW([]*Param{NewParam("x", 1), NewParam("x", 1)}, DefaultAdamW())
}
