package infer

import (
	"math"
	"runtime"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
	"github.com/stretchr/testify/require"
)

// randomModel returns a model of preset name (or cfg) with every parameter
// random, biases and layer norms included (the default init leaves them 0/1,
// which would hide bias bugs).
func randomModel(t testing.TB, cfg *clip.Config, seed uint64) *clip.Model {
	t.Helper()
	m, err := clip.New(cfg, seed)
	require.NoError(t, err)
	testutil.RandomizeParams(m, seed+100)
	return m
}

func preset(t testing.TB, name string) *clip.Config {
	t.Helper()
	c, err := clip.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type inputs struct {
	pixels []float32
	ids    []int
	eot    []int
	B, T   int
}

func makeInputs(m *clip.Model, B, T int, seed uint64) inputs {
	rng := tensor.NewRNG(seed)
	S := m.Config.Vision.ImageSize
	in := inputs{pixels: tensor.New(B, 3, S, S).Normal(rng, 0, 1).Data, ids: make([]int, B*T), B: B, T: T}
	eos := m.Config.Text.EOSTokenID
	for b := 0; b < B; b++ {
		row := in.ids[b*T : (b+1)*T]
		L := 2 + rng.IntN(T-1) // tokens up to and including EOT
		for j := range row {
			if j < L-1 {
				row[j] = 1 + rng.IntN(eos-2)
			}
		}
		row[0] = m.Config.Text.BOSTokenID
		row[L-1] = eos
	}
	in.eot = clip.EOTPositions(in.ids, B, T, eos)
	return in
}

func reference(m *clip.Model, in inputs) (img, txt []float32) {
	S := m.Config.Vision.ImageSize
	px, _ := tensor.FromData(append([]float32(nil), in.pixels...), in.B, 3, S, S)
	img = m.EncodeImage(nil, ops.Const(px)).Value.Data
	txt = m.EncodeText(nil, &clip.TextBatch{IDs: in.ids, EOTPos: in.eot, B: in.B, T: in.T}).Value.Data
	return img, txt
}

func run(e *Engine, in inputs) (img, txt []float32) {
	img = make([]float32, in.B*e.EmbedDim())
	txt = make([]float32, in.B*e.EmbedDim())
	e.EncodeImages(in.pixels, in.B, img)
	e.EncodeTexts(in.ids, in.eot, in.B, in.T, txt)
	return img, txt
}

// relErr is ‖got−want‖∞ / ‖want‖∞.
var relErr = testutil.MaxRelErr

func check(t *testing.T, m *clip.Model, opts Options, Bs []int, T int) {
	t.Helper()
	e, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, B := range Bs {
		in := makeInputs(m, B, T, uint64(B))
		ri, rt := reference(m, in)
		gi, gt := run(e, in)
		ei, et := relErr(gi, ri), relErr(gt, rt)
		t.Logf("B=%d T=%d split=%v threads=%d: image rel err %.2e, text %.2e", B, T, e.SplitFor(B), e.Threads(), ei, et)
		if ei > 1e-5 || et > 1e-5 || math.IsNaN(ei) || math.IsNaN(et) {
			t.Errorf("B=%d: relative error image %.3g text %.3g > 1e-5", B, ei, et)
		}
	}
}

func TestTinyMatchesReference(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 1)
	for _, opts := range []Options{
		{Threads: 1},
		{Threads: 2, Split: SplitGEMM},
		{Threads: 2, Split: SplitItems},
		{Threads: 3, Split: SplitItems, Chunk: 2},
	} {
		check(t, m, opts, []int{1, 2, 5, 7}, 77)
	}
	check(t, m, Options{Threads: 2}, []int{3}, 9) // short texts
}

func TestPrunedMatchesReference(t *testing.T) {
	cfg := preset(t, "tiny")
	cfg.Vision.LayerHeads = []int{3, 0}           // layer 1: no attention branch
	cfg.Vision.LayerIntermediate = []int{17, 200} // uneven MLP widths
	cfg.Text.LayerHeads = []int{1, 4}
	cfg.Text.LayerIntermediate = []int{0, 50} // layer 0: no MLP branch
	m := randomModel(t, cfg, 2)
	if m.Vision.Encoder.Layers[1].SelfAttn != nil || m.Text.Encoder.Layers[0].MLP != nil {
		t.Fatal("expected nil branches")
	}
	check(t, m, Options{Threads: 1}, []int{1, 3}, 77)
	check(t, m, Options{Threads: 2, Split: SplitGEMM}, []int{1, 4}, 77)
	check(t, m, Options{Threads: 2, Split: SplitItems}, []int{5}, 77)

	// Head masks and skipped layers (MoPE scoring and depth pruning).
	m.Text.Encoder.Layers[1].SelfAttn.HeadKeep = []bool{true, false, true, false}
	m.Vision.Encoder.Skip = []bool{true, false}
	check(t, m, Options{Threads: 2}, []int{1, 3}, 77)
}

func TestViTB32MatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("ViT-B/32 forward is slow")
	}
	m := randomModel(t, preset(t, "ViT-B/32"), 3)
	check(t, m, Options{}, []int{1, 3}, 77)
}

func TestDeterministic(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 4)
	in := makeInputs(m, 6, 77, 9)
	for _, opts := range []Options{{Threads: 2, Split: SplitGEMM}, {Threads: 2, Split: SplitItems}} {
		e, err := New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		i1, t1 := run(e, in)
		for r := 0; r < 3; r++ {
			i2, t2 := run(e, in)
			for k := range i1 {
				if math.Float32bits(i1[k]) != math.Float32bits(i2[k]) {
					t.Fatalf("%v: image output %d differs between runs", opts.Split, k)
				}
			}
			for k := range t1 {
				if math.Float32bits(t1[k]) != math.Float32bits(t2[k]) {
					t.Fatalf("%v: text output %d differs between runs", opts.Split, k)
				}
			}
		}
		e.Close()
	}
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (tensor's GEMM buffers) drop items")
	}
	m := randomModel(t, preset(t, "tiny"), 5)
	in := makeInputs(m, 4, 77, 1)
	img := make([]float32, in.B*m.Config.ProjectionDim)
	txt := make([]float32, in.B*m.Config.ProjectionDim)
	// On one thread nothing may allocate. (With more, tensor's GEMM driver
	// starts goroutines for large products; the engine's own pool does not
	// allocate.)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, opts := range []Options{{Threads: 1}, {Threads: 2, Split: SplitGEMM}, {Threads: 2, Split: SplitItems}} {
		e, err := New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		f := func() {
			e.EncodeImages(in.pixels, in.B, img)
			e.EncodeTexts(in.ids, in.eot, in.B, in.T, txt)
		}
		f()
		n := testing.AllocsPerRun(10, f)
		t.Logf("threads %d split %v: %v allocations per call", opts.Threads, opts.Split, n)
		// With several workers, goroutines sharing one P sometimes take a
		// second work buffer from tensor's sync.Pool; allow that.
		if limit := map[bool]float64{true: 0, false: 2}[opts.Threads == 1]; n > limit {
			t.Errorf("threads %d split %v: %v allocations per call in the steady state (want <= %v)", opts.Threads, opts.Split, n, limit)
		}
		e.Close()
	}
}

func TestReleaseWeights(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 6)
	in := makeInputs(m, 3, 77, 2)
	ri, rt := reference(m, in)
	e, err := New(m, Options{Threads: 2, ReleaseWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if m.Vision.Encoder.Layers[0].MLP.FC1.W.Value.Data != nil || m.Text.Encoder.Layers[0].SelfAttn.Q.W.Value.Data != nil {
		t.Error("weights not released")
	}
	gi, gt := run(e, in)
	if a, b := relErr(gi, ri), relErr(gt, rt); a > 1e-5 || b > 1e-5 {
		t.Errorf("after release: relative errors %.3g %.3g", a, b)
	}
}
