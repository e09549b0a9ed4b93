package ops

import (
	"math"
	"sort"
	"testing"

	"github.com/mopeclip/mopeclip/tensor"
)

// miniCLIP is a two-tower CLIP in miniature, built from the ops: every op of
// the package takes part in one training step.
type miniCLIP struct {
	names  []string
	values map[string]*tensor.Tensor
	grads  map[string]*tensor.Tensor
}

type miniCfg struct {
	B, S, P, C, H, Vocab, Ttxt, Emb, FF int
}

func newMiniCLIP(cfg miniCfg, seed uint64) *miniCLIP {
	m := &miniCLIP{values: map[string]*tensor.Tensor{}, grads: map[string]*tensor.Tensor{}}
	g := tensor.NewRNG(seed)
	add := func(name string, std float64, shape ...int) {
		m.names = append(m.names, name)
		m.values[name] = tensor.New(shape...).Normal(g, 0, std)
		m.grads[name] = tensor.New(shape...)
	}
	ones := func(name string, shape ...int) {
		m.names = append(m.names, name)
		m.values[name] = tensor.New(shape...).Fill(1)
		m.values[name].Normal(g, 1, 0.1)
		m.grads[name] = tensor.New(shape...)
	}
	C, N := cfg.C, (cfg.S/cfg.P)*(cfg.S/cfg.P)
	add("v.patch", 0.2, C, 3, cfg.P, cfg.P)
	add("v.cls", 0.5, C)
	add("v.pos", 0.5, N+1, C)
	ones("v.pre.g", C)
	add("v.pre.b", 0.1, C)
	add("t.tok", 0.5, cfg.Vocab, C)
	add("t.pos", 0.5, cfg.Ttxt, C)
	for _, tw := range []string{"v", "t"} {
		for _, l := range []string{"ln1", "ln2", "lnf"} {
			ones(tw+"."+l+".g", C)
			add(tw+"."+l+".b", 0.1, C)
		}
		for _, p := range []string{"q", "k", "v", "o"} {
			add(tw+"."+p+".w", 0.3, C, C)
			add(tw+"."+p+".b", 0.1, C)
		}
		add(tw+".fc1.w", 0.3, cfg.FF, C)
		add(tw+".fc1.b", 0.1, cfg.FF)
		add(tw+".fc2.w", 0.3, C, cfg.FF)
		add(tw+".fc2.b", 0.1, C)
		add(tw+".proj", 0.3, cfg.Emb, C)
	}
	add("scale", 0, 1)
	m.values["scale"].Data[0] = float32(math.Log(1 / 0.07))
	return m
}

type miniBatch struct {
	pixels  *tensor.Tensor
	ids     []int
	lens    []int
	teacher *tensor.Tensor // [B, B] teacher logits for the distillation term
}

func newMiniBatch(cfg miniCfg, seed uint64) miniBatch {
	g := tensor.NewRNG(seed)
	b := miniBatch{pixels: tensor.New(cfg.B, 3, cfg.S, cfg.S).Normal(g, 0, 1), teacher: tensor.New(cfg.B, cfg.B).Normal(g, 0, 2)}
	for i := 0; i < cfg.B; i++ {
		l := 2 + g.IntN(cfg.Ttxt-1)
		b.lens = append(b.lens, l)
		for j := 0; j < cfg.Ttxt; j++ {
			b.ids = append(b.ids, g.IntN(cfg.Vocab))
		}
	}
	return b
}

// step records the forward pass and returns the loss.
func (m *miniCLIP) step(tp *Tape, cfg miniCfg, b miniBatch, params map[string]*Var) *Var {
	p := func(name string) *Var { return params[name] }
	block := func(tw string, x *Var, T int, o AttnOpts) *Var {
		h := LayerNorm(tp, x, p(tw+".ln1.g"), p(tw+".ln1.b"), 1e-5)
		q := Linear(tp, h, p(tw+".q.w"), p(tw+".q.b"))
		k := Linear(tp, h, p(tw+".k.w"), p(tw+".k.b"))
		v := Linear(tp, h, p(tw+".v.w"), p(tw+".v.b"))
		a := Attention(tp, q, k, v, cfg.B, T, o)
		x = Add(tp, x, Linear(tp, a, p(tw+".o.w"), p(tw+".o.b")))
		h = LayerNorm(tp, x, p(tw+".ln2.g"), p(tw+".ln2.b"), 1e-5)
		act := QuickGELU
		if tw == "t" {
			act = GELU
		}
		h = act(tp, Linear(tp, h, p(tw+".fc1.w"), p(tw+".fc1.b")))
		return Add(tp, x, Linear(tp, h, p(tw+".fc2.w"), p(tw+".fc2.b")))
	}
	// Vision tower.
	N := (cfg.S / cfg.P) * (cfg.S / cfg.P)
	x := PatchEmbed(tp, Const(b.pixels), p("v.patch"), cfg.P)
	x = PrependToken(tp, x, p("v.cls"))
	x = AddRowVector(tp, x, p("v.pos"))
	x = LayerNorm(tp, x, p("v.pre.g"), p("v.pre.b"), 1e-5)
	x = Reshape(tp, x, cfg.B*(N+1), cfg.C)
	x = block("v", x, N+1, AttnOpts{Heads: cfg.H, HeadKeep: headKeep(cfg.H)})
	cls := make([]int, cfg.B)
	for i := range cls {
		cls[i] = i * (N + 1)
	}
	img := GatherRows(tp, x, cls)
	img = LayerNorm(tp, img, p("v.lnf.g"), p("v.lnf.b"), 1e-5)
	img = L2Normalize(tp, Linear(tp, img, p("v.proj"), nil))
	// Text tower.
	var rows []*Var
	for i := 0; i < cfg.B; i++ {
		e := Embedding(tp, p("t.tok"), b.ids[i*cfg.Ttxt:(i+1)*cfg.Ttxt])
		rows = append(rows, Add(tp, e, p("t.pos")))
	}
	y := ConcatRows(tp, rows...)
	y = block("t", y, cfg.Ttxt, AttnOpts{Heads: cfg.H, Causal: true, KeyLens: b.lens})
	eot := make([]int, cfg.B)
	for i := range eot {
		eot[i] = i*cfg.Ttxt + b.lens[i] - 1
	}
	txt := SliceRows(tp, GatherRows(tp, y, eot), 0, cfg.B)
	txt = LayerNorm(tp, txt, p("t.lnf.g"), p("t.lnf.b"), 1e-5)
	txt = L2Normalize(tp, Linear(tp, txt, p("t.proj"), nil))
	// Losses.
	clip := InfoNCE(tp, img, txt, p("scale"))
	logits := Scale(tp, MatMul(tp, img, txt, false, true), 10)
	kd := SoftCrossEntropy(tp, logits, Const(b.teacher), 2)
	mse := MSE(tp, Mean(tp, img), Sum(tp, Softmax(tp, logits)))
	return WeightedSum(tp, []*Var{clip, kd, mse}, []float32{1, 0.5, 0.01})
}

func headKeep(h int) []bool {
	k := make([]bool, h)
	for i := range k {
		k[i] = i != 1
	}
	return k
}

func (m *miniCLIP) params(tp *Tape) map[string]*Var {
	ps := map[string]*Var{}
	for _, n := range m.names {
		ps[n] = tp.Param(m.values[n], m.grads[n])
	}
	return ps
}

func (m *miniCLIP) zeroGrads() {
	for _, g := range m.grads {
		g.Zero()
	}
}

var testMini = miniCfg{B: 3, S: 16, P: 8, C: 8, H: 2, Vocab: 11, Ttxt: 6, Emb: 5, FF: 12}

// Same inputs give bit-identical losses and gradients, on fresh tapes and on a
// reused tape whose pool holds another batch's buffers.
func TestDeterminism(t *testing.T) {
	cfg := testMini
	m := newMiniCLIP(cfg, 1)
	batch := newMiniBatch(cfg, 2)
	snapshot := func() map[string][]float32 {
		s := map[string][]float32{}
		for n, g := range m.grads {
			s[n] = append([]float32(nil), g.Data...)
		}
		return s
	}
	run := func(tp *Tape, b miniBatch) float32 {
		m.zeroGrads()
		loss := m.step(tp, cfg, b, m.params(tp))
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		return loss.Value.Data[0]
	}
	l1 := run(NewTape(), batch)
	g1 := snapshot()
	l2 := run(NewTape(), batch)
	g2 := snapshot()
	tp := NewTape()
	run(tp, newMiniBatch(cfg, 3))
	tp.Reset()
	l3 := run(tp, batch)
	g3 := snapshot()
	if l1 != l2 || l1 != l3 {
		t.Fatalf("losses differ: %v %v %v", l1, l2, l3)
	}
	nonzero := 0
	for _, n := range m.names {
		if tensor.MaxAbsDiff(g1[n], g2[n]) != 0 || tensor.MaxAbsDiff(g1[n], g3[n]) != 0 {
			t.Fatalf("gradient of %s differs between runs", n)
		}
		if tensor.SumSq(g1[n]) > 0 {
			nonzero++
		}
	}
	if nonzero != len(m.names) {
		t.Fatalf("only %d of %d parameters got a gradient", nonzero, len(m.names))
	}
}

// End to end: the gradients of the whole mini CLIP against float32 central
// differences of its loss (h = 1e-2; tolerance 3% of the parameter's largest
// gradient, plus 1e-4 absolute, as float32 forward noise and O(h²) truncation allow), for the
// entries with the largest gradient of every parameter.
func TestModelGradient(t *testing.T) {
	cfg := testMini
	m := newMiniCLIP(cfg, 5)
	batch := newMiniBatch(cfg, 6)
	tp := NewTape()
	loss := m.step(tp, cfg, batch, m.params(tp))
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	f := func() float64 { return float64(m.step(nil, cfg, batch, m.params(nil)).Value.Data[0]) }
	if got := f(); float32(got) != loss.Value.Data[0] {
		t.Fatalf("inference loss %v != training loss %v", got, loss.Value.Data[0])
	}
	const h = 1e-2
	for _, n := range m.names {
		g := m.grads[n].Data
		order := make([]int, len(g))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return math.Abs(float64(g[order[a]])) > math.Abs(float64(g[order[b]])) })
		gmax := math.Abs(float64(g[order[0]]))
		for _, j := range order[:min(3, len(order))] {
			x := m.values[n].Data
			old := x[j]
			x[j] = old + h
			fp := f()
			x[j] = old - h
			fm := f()
			x[j] = old
			num := (fp - fm) / (2 * h)
			if d := math.Abs(num - float64(g[j])); d > 0.03*gmax+1e-4 {
				t.Errorf("%s[%d]: grad %v, numeric %v (max grad %v)", n, j, g[j], num, gmax)
			}
		}
	}
}

// BenchmarkMiniCLIPStep is a whole training step of a small CLIP-like model
// (both towers, one block each), for profiling the ops layer.
func BenchmarkCLIPStep(b *testing.B) {
	cfg := miniCfg{B: 16, S: 64, P: 16, C: 128, H: 4, Vocab: 512, Ttxt: 32, Emb: 64, FF: 512}
	m := newMiniCLIP(cfg, 1)
	batch := newMiniBatch(cfg, 2)
	tp := NewTape()
	ps := m.params(tp)
	b.ReportAllocs()
	for b.Loop() {
		loss := m.step(tp, cfg, batch, ps)
		if err := tp.Backward(loss); err != nil {
			b.Fatal(err)
		}
		tp.Reset()
	}
}

// BenchmarkViTBlock is one ViT-B/32-sized residual block (T=50, C=768, H=12,
// FF=3072) at batch 8, forward and backward.
func BenchmarkViTBlock(b *testing.B) {
	const B, T, C, H, FF = 8, 50, 768, 12, 3072
	g := tensor.NewRNG(1)
	mk := func(std float64, shape ...int) *tensor.Tensor { return tensor.New(shape...).Normal(g, 0, std) }
	tp := NewTape()
	p := func(t *tensor.Tensor) *Var { return tp.Param(t, nil) }
	ln1g, ln1b, ln2g, ln2b := p(mk(1, C)), p(mk(0.1, C)), p(mk(1, C)), p(mk(0.1, C))
	wq, wk, wv, wo := p(mk(0.02, C, C)), p(mk(0.02, C, C)), p(mk(0.02, C, C)), p(mk(0.02, C, C))
	bq, bk, bv, bo := p(mk(0.02, C)), p(mk(0.02, C)), p(mk(0.02, C)), p(mk(0.02, C))
	w1, b1, w2, b2 := p(mk(0.02, FF, C)), p(mk(0.02, FF)), p(mk(0.02, C, FF)), p(mk(0.02, C))
	x0 := tp.Param(mk(1, B*T, C), nil)
	b.ReportAllocs()
	for b.Loop() {
		h := LayerNorm(tp, x0, ln1g, ln1b, 1e-5)
		a := Attention(tp, Linear(tp, h, wq, bq), Linear(tp, h, wk, bk), Linear(tp, h, wv, bv), B, T, AttnOpts{Heads: H})
		x := Add(tp, x0, Linear(tp, a, wo, bo))
		h = LayerNorm(tp, x, ln2g, ln2b, 1e-5)
		x = Add(tp, x, Linear(tp, QuickGELU(tp, Linear(tp, h, w1, b1)), w2, b2))
		if err := tp.Backward(Mean(tp, x)); err != nil {
			b.Fatal(err)
		}
		tp.Reset()
	}
}
