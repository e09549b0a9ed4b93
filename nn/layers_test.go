package nn

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// gradCheck compares the gradients that Backward accumulates into params
// against central finite differences of loss, on up to perParam elements of
// every parameter. loss must build its graph on the given tape (nil for the
// finite-difference evaluations).
func gradCheck(t *testing.T, params []*Param, loss func(tp *ops.Tape) *ops.Var, perParam int) {
	t.Helper()
	ZeroGrads(params)
	tp := ops.NewTape()
	if err := tp.Backward(loss(tp)); err != nil {
		t.Fatal(err)
	}
	eval := func() float64 { return float64(loss(nil).Value.Data[0]) }
	rng := tensor.NewRNG(99)
	const h = 1e-2
	checked := 0
	for _, p := range params {
		n := p.Value.Len()
		idx := rng.Perm(n)[:min(n, perParam)]
		for _, i := range idx {
			old := p.Value.Data[i]
			p.Value.Data[i] = old + h
			up := eval()
			p.Value.Data[i] = old - h
			down := eval()
			p.Value.Data[i] = old
			num := (up - down) / (2 * h)
			ana := float64(p.Grad.Data[i])
			if d := math.Abs(num - ana); d > 1e-3+2e-2*max(math.Abs(num), math.Abs(ana)) {
				t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", p.Name, i, ana, num)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}

// projLoss is Σ out ⊙ r: a scalar whose gradient w.r.t. out is r.
func projLoss(tp *ops.Tape, out *ops.Var, r *tensor.Tensor) *ops.Var {
	return ops.Sum(tp, ops.Mul(tp, out, ops.Const(r)))
}

func randn(rng *tensor.RNG, std float64, shape ...int) *tensor.Tensor {
	return tensor.New(shape...).Normal(rng, 0, std)
}

// perturb moves every parameter away from its initial value so that norms
// and biases are not trivially 1 and 0 in gradient checks.
func perturb(params []*Param, rng *tensor.RNG, std float64) {
	for _, p := range params {
		for i := range p.Value.Data {
			p.Value.Data[i] += float32(std * rng.NormFloat64())
		}
	}
}

func TestBlockGradients(t *testing.T) {
	cases := []struct {
		name string
		cfg  BlockConfig
		B, T int
		mask AttnMask
		keep []bool
	}{
		{"quickgelu", BlockConfig{Width: 8, Heads: 2, HeadDim: 4, Hidden: 12, Act: ActQuickGELU, Eps: 1e-5}, 2, 3, AttnMask{}, nil},
		{"gelu-causal-keylens", BlockConfig{Width: 8, Heads: 2, HeadDim: 3, Hidden: 10, Act: ActGELU, Eps: 1e-5}, 2, 4, AttnMask{Causal: true, KeyLens: []int{4, 2}}, nil},
		{"headkeep", BlockConfig{Width: 6, Heads: 3, HeadDim: 2, Hidden: 8, Act: ActQuickGELU, Eps: 1e-5}, 1, 3, AttnMask{}, []bool{true, false, true}},
		{"no-mlp", BlockConfig{Width: 6, Heads: 2, HeadDim: 3, Hidden: 0, Act: ActQuickGELU, Eps: 1e-5}, 2, 2, AttnMask{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := tensor.NewRNG(7)
			b := NewBlock("layers.0", c.cfg, BlockInit{QKV: 0.4, Out: 0.4, FC1: 0.4, FC2: 0.4}, rng)
			if b.SelfAttn != nil {
				b.SelfAttn.HeadKeep = c.keep
			}
			perturb(b.Params(), rng, 0.1)
			x := NewParam("x", c.B*c.T, c.cfg.Width)
			x.Value.Normal(rng, 0, 1)
			r := randn(rng, 1, c.B*c.T, c.cfg.Width)
			params := append(b.Params(), x)
			gradCheck(t, params, func(tp *ops.Tape) *ops.Var {
				return projLoss(tp, b.Forward(tp, x.Var(tp), c.B, c.T, c.mask), r)
			}, 6)
			if c.keep != nil {
				// A dropped head's projection rows get exactly zero gradient.
				q := b.SelfAttn.Q.W.Grad
				row := q.Data[1*c.cfg.HeadDim*c.cfg.Width : 2*c.cfg.HeadDim*c.cfg.Width]
				for _, g := range row {
					if g != 0 {
						t.Fatalf("dropped head has q_proj gradient %v", g)
					}
				}
			}
		})
	}
}

func TestTransformerGradientsAndHidden(t *testing.T) {
	rng := tensor.NewRNG(3)
	cfg := Uniform(3, BlockConfig{Width: 8, Heads: 2, HeadDim: 4, Hidden: 16, Act: ActQuickGELU, Eps: 1e-5})
	cfg[1].Heads, cfg[1].Hidden = 1, 8
	cfg[2].Hidden = 0
	tr := NewTransformer("encoder", cfg, rng)
	tr.Skip = []bool{false, true, false}
	perturb(tr.Params(), rng, 0.05)
	const B, T = 2, 3
	x := NewParam("x", 6, 8)
	x.Value.Normal(rng, 0, 1)
	r := randn(rng, 1, 6, 8)
	gradCheck(t, append(tr.Params(), x), func(tp *ops.Tape) *ops.Var {
		out, hidden := tr.ForwardHidden(tp, x.Var(tp), B, T, AttnMask{})
		// Use an intermediate hidden state too, as distillation does.
		return ops.Add(tp, projLoss(tp, out, r), projLoss(tp, hidden[1], r))
	}, 4)
	// Skipped layer: no gradient reaches it.
	for _, p := range tr.Layers[1].Params() {
		if GradNorm([]*Param{p}) != 0 {
			t.Errorf("skipped layer parameter %s has a gradient", p.Name)
		}
	}
	out, hidden := tr.ForwardHidden(nil, x.Var(nil), B, T, AttnMask{})
	if len(hidden) != 4 || hidden[2] != hidden[1] || hidden[3] != out || hidden[0].Value != x.Value {
		t.Fatalf("hidden states: %d, skip identity %v, last is out %v", len(hidden), hidden[2] == hidden[1], hidden[3] == out)
	}
	if got := tr.Forward(nil, x.Var(nil), B, T, AttnMask{}); !slices.Equal(got.Value.Data, out.Value.Data) {
		t.Fatal("Forward and ForwardHidden differ")
	}
}

func TestLayerGradients(t *testing.T) {
	rng := tensor.NewRNG(5)
	lin := NewLinearStd("l", 5, 4, true, 0.5, rng)
	ln := NewLayerNorm("n", 4, 1e-5)
	mlp := NewMLP("m", 4, 6, ActGELU, 0.5, 0.5, rng)
	emb := NewEmbedding("e", 7, 5, 1, rng)
	perturb(Collect(lin, ln, mlp), rng, 0.1)
	ids := []int{3, 0, 3, 6}
	r := randn(rng, 1, 4, 4)
	gradCheck(t, Collect(lin, ln, mlp, emb), func(tp *ops.Tape) *ops.Var {
		return projLoss(tp, mlp.Forward(tp, ln.Forward(tp, lin.Forward(tp, emb.Forward(tp, ids)))), r)
	}, 8)
}

func TestInferenceMatchesTraining(t *testing.T) {
	rng := tensor.NewRNG(11)
	tr := NewTransformer("", Uniform(2, BlockConfig{Width: 16, Heads: 4, HeadDim: 4, Hidden: 32, Act: ActQuickGELU, Eps: 1e-5}), rng)
	x := ops.Const(randn(rng, 1, 2*5, 16))
	m := AttnMask{Causal: true}
	a := tr.Forward(nil, x, 2, 5, m)
	b := tr.Forward(ops.NewTape(), x, 2, 5, m)
	if !slices.Equal(a.Value.Data, b.Value.Data) {
		t.Fatal("nil-tape forward differs from recorded forward")
	}
}

func TestHuggingFaceNames(t *testing.T) {
	tr := NewTransformer("vision_model.encoder", Uniform(2, BlockConfig{Width: 8, Heads: 2, HeadDim: 4, Hidden: 16, Eps: 1e-5}), nil)
	var names []string
	for _, p := range tr.Params() {
		names = append(names, p.Name+fmt.Sprint(p.Value.Shape))
	}
	want := []string{
		"layer_norm1.weight[8]", "layer_norm1.bias[8]",
		"self_attn.q_proj.weight[8 8]", "self_attn.q_proj.bias[8]",
		"self_attn.k_proj.weight[8 8]", "self_attn.k_proj.bias[8]",
		"self_attn.v_proj.weight[8 8]", "self_attn.v_proj.bias[8]",
		"self_attn.out_proj.weight[8 8]", "self_attn.out_proj.bias[8]",
		"layer_norm2.weight[8]", "layer_norm2.bias[8]",
		"mlp.fc1.weight[16 8]", "mlp.fc1.bias[16]",
		"mlp.fc2.weight[8 16]", "mlp.fc2.bias[8]",
	}
	if len(names) != 2*len(want) {
		t.Fatalf("%d params, want %d", len(names), 2*len(want))
	}
	for l := 0; l < 2; l++ {
		for i, w := range want {
			w = fmt.Sprintf("vision_model.encoder.layers.%d.%s", l, w)
			if names[l*len(want)+i] != w {
				t.Errorf("param %d: %s, want %s", l*len(want)+i, names[l*len(want)+i], w)
			}
		}
	}
	for _, p := range tr.Params() {
		wantNoDecay := !strings.HasSuffix(p.Name, "proj.weight") && !strings.HasSuffix(p.Name, "fc1.weight") && !strings.HasSuffix(p.Name, "fc2.weight")
		if p.NoDecay != wantNoDecay {
			t.Errorf("%s: NoDecay %v", p.Name, p.NoDecay)
		}
	}
	if ls := NewLogitScale("logit_scale", 2.6592); len(ls.Value.Shape) != 0 || !ls.NoDecay || ls.Value.Data[0] != 2.6592 {
		t.Errorf("logit scale %v %v", ls.Value.Shape, ls.Value.Data)
	}
}

func TestInitCLIPStd(t *testing.T) {
	const width, layers = 64, 4
	init := InitCLIP(width, layers)
	if math.Abs(init.QKV-1/math.Sqrt(64*8)) > 1e-15 || math.Abs(init.Out-1/8.0) > 1e-15 || math.Abs(init.FC1-1/math.Sqrt(128)) > 1e-15 || init.FC2 != init.QKV {
		t.Fatalf("InitCLIP = %+v", init)
	}
	tr := NewTransformer("", Uniform(layers, BlockConfig{Width: width, Heads: 4, HeadDim: 16, Hidden: 256, Eps: 1e-5}), tensor.NewRNG(1))
	std := func(p *Param) float64 {
		var s float64
		for _, v := range p.Value.Data {
			s += float64(v) * float64(v)
		}
		return math.Sqrt(s / float64(p.Value.Len()))
	}
	b := tr.Layers[0]
	for _, c := range []struct {
		p    *Param
		want float64
	}{{b.SelfAttn.Q.W, init.QKV}, {b.SelfAttn.Out.W, init.Out}, {b.MLP.FC1.W, init.FC1}, {b.MLP.FC2.W, init.FC2}} {
		if got := std(c.p); math.Abs(got-c.want) > 0.05*c.want {
			t.Errorf("%s: std %.4f, want %.4f", c.p.Name, got, c.want)
		}
	}
	if b.SelfAttn.Q.B.Value.Data[3] != 0 || b.LayerNorm1.W.Value.Data[5] != 1 {
		t.Error("bias/norm init")
	}
}
