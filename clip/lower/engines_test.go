package lower_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/lower"
	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
	"github.com/stretchr/testify/require"
)

// modelCase is one model of the engine table: a tiny CLIP (random weights,
// biases and layer norms) changed by edit.
type modelCase struct {
	name string
	cfg  func(c *clip.Config)
	edit func(t *testing.T, m *clip.Model)
	// wantErr is a substring of the lowering's error (every engine must
	// fail with it); empty: every engine must match the reference.
	wantErr string
}

func tinyConfig(t *testing.T) *clip.Config {
	t.Helper()
	c, err := clip.Preset("tiny")
	require.NoError(t, err)
	c.Text.VocabSize = 512
	c.Text.EOSTokenID = 511
	c.Text.BOSTokenID = 510
	c.Text.MaxPositionEmbeddings = 12
	return c
}

func layer(m *clip.Model, tower string, l int) *nn.Block {
	if tower == "vision" {
		return m.Vision.Encoder.Layers[l]
	}
	return m.Text.Encoder.Layers[l]
}

func eachTower(m *clip.Model, f func(enc *nn.Transformer)) {
	f(m.Vision.Encoder)
	f(m.Text.Encoder)
}

func modelCases() []modelCase {
	return []modelCase{
		{name: "dense"},
		{name: "gelu", cfg: func(c *clip.Config) { c.Vision.HiddenAct, c.Text.HiddenAct = "gelu", "gelu" }},
		{name: "mixed-activations", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 1).MLP.Act = nn.ActGELU
			layer(m, "text", 0).MLP.Act = nn.ActGELU
		}},
		{name: "uneven", cfg: func(c *clip.Config) {
			c.Vision.LayerHeads, c.Vision.LayerIntermediate = []int{3, 1}, []int{40, 7}
			c.Text.LayerHeads, c.Text.LayerIntermediate = []int{1, 4}, []int{65, 33}
		}},
		{name: "head-keep", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 0).SelfAttn.HeadKeep = []bool{true, false, true, false}
			layer(m, "text", 1).SelfAttn.HeadKeep = []bool{false, false, false, true}
		}},
		{name: "head-keep-all-true", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 1).SelfAttn.HeadKeep = []bool{true, true, true, true}
		}},
		{name: "no-head-kept", edit: func(t *testing.T, m *clip.Model) {
			// The branch still adds out_proj's bias.
			layer(m, "vision", 0).SelfAttn.HeadKeep = make([]bool, 4)
			layer(m, "text", 1).SelfAttn.HeadKeep = make([]bool, 4)
		}},
		{name: "no-head-kept-no-bias", edit: func(t *testing.T, m *clip.Model) {
			a := layer(m, "vision", 1).SelfAttn
			a.HeadKeep, a.Out.B = make([]bool, 4), nil
		}},
		{name: "zero-width-mlp", edit: func(t *testing.T, m *clip.Model) {
			// fc2's bias is all that is left of the MLP.
			for _, blk := range []*nn.Block{layer(m, "vision", 0), layer(m, "text", 1)} {
				C := blk.MLP.FC1.In()
				blk.MLP = nn.NewMLP("mlp", C, 0, nn.ActQuickGELU, 0.02, 0.02, tensor.NewRNG(3))
				for j := range blk.MLP.FC2.B.Value.Data {
					blk.MLP.FC2.B.Value.Data[j] = 0.01 * float32(j%5)
				}
			}
		}},
		{name: "removed-branches", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 0).SelfAttn = nil
			layer(m, "vision", 1).MLP = nil
			layer(m, "text", 0).MLP = nil
		}},
		{name: "skip", edit: func(t *testing.T, m *clip.Model) {
			m.Vision.Encoder.Skip = []bool{true, false}
			m.Text.Encoder.Skip = []bool{false, true}
		}},
		{name: "scale", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 0).SelfAttn.Scale = 0.3
			layer(m, "text", 1).SelfAttn.Scale = -0.05
		}},
		{name: "no-biases", edit: func(t *testing.T, m *clip.Model) {
			eachTower(m, func(enc *nn.Transformer) {
				for _, b := range enc.Layers {
					a := b.SelfAttn
					a.Q.B, a.K.B, a.V.B, a.Out.B = nil, nil, nil, nil
					b.MLP.FC1.B, b.MLP.FC2.B = nil, nil
				}
			})
		}},
		{name: "partial-qkv-bias", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 0).SelfAttn.K.B = nil
			layer(m, "text", 1).SelfAttn.Q.B = nil
			layer(m, "text", 1).SelfAttn.V.B = nil
		}},
		{name: "projection-bias", edit: func(t *testing.T, m *clip.Model) {
			for i, p := range []*nn.Linear{m.VisualProjection, m.TextProjection} {
				p.B = nn.NewParam(fmt.Sprintf("proj%d.bias", i), p.Out())
				for j := range p.B.Value.Data {
					p.B.Value.Data[j] = 0.1 * float32(j%7-3)
				}
			}
		}},
		{name: "pruned-everything", cfg: func(c *clip.Config) {
			c.Vision.LayerHeads, c.Vision.LayerIntermediate = []int{2, 4}, []int{0, 9}
		}, edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 1).SelfAttn.HeadKeep = []bool{false, true, true, false}
			layer(m, "vision", 1).MLP.Act = nn.ActGELU
			layer(m, "text", 0).SelfAttn = nil
			m.Text.Encoder.Skip = []bool{false, false}
		}},
		// Models no engine runs: the lowering says why, once.
		{name: "unknown-activation", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "text", 1).MLP.Act = nn.Activation(7)
		}, wantErr: "activation Activation(7): not supported"},
		{name: "head-keep-length", edit: func(t *testing.T, m *clip.Model) {
			layer(m, "vision", 0).SelfAttn.HeadKeep = []bool{true}
		}, wantErr: "1 head-keep flags for 4 heads"},
		{name: "skip-length", edit: func(t *testing.T, m *clip.Model) {
			m.Text.Encoder.Skip = []bool{true}
		}, wantErr: "1 skip flags for 2 layers"},
		{name: "fc1-shape", edit: func(t *testing.T, m *clip.Model) {
			mlp := layer(m, "vision", 1).MLP
			mlp.FC1 = nn.NewLinear("fc1", 64, 200, true, tensor.NewRNG(1))
		}, wantErr: "fc2 is 64x256, want 64x200"},
	}
}

func buildModel(t *testing.T, mc modelCase) *clip.Model {
	t.Helper()
	cfg := tinyConfig(t)
	if mc.cfg != nil {
		mc.cfg(cfg)
	}
	m, err := clip.New(cfg, 5)
	require.NoError(t, err)
	testutil.RandomizeParams(m, 6)
	if mc.edit != nil {
		mc.edit(t, m)
	}
	return m
}

type batch struct {
	pixels []float32
	text   *clip.TextBatch
	B      int
}

func makeBatch(m *clip.Model, B int) batch {
	rng := tensor.NewRNG(9)
	S := m.Config.Vision.ImageSize
	T := m.Config.Text.MaxPositionEmbeddings
	b := batch{pixels: tensor.New(B, 3, S, S).Normal(rng, 0, 1).Data, B: B,
		text: &clip.TextBatch{IDs: make([]int, B*T), EOTPos: make([]int, B), B: B, T: T}}
	for i := range b.text.IDs {
		b.text.IDs[i] = rng.IntN(m.Config.Text.VocabSize)
	}
	for i := range b.text.EOTPos {
		b.text.EOTPos[i] = (3 + 5*i) % T
	}
	return b
}

// engine runs both towers of a model on a batch.
type engine struct {
	name string
	// tol is the largest |got - want| / (1 + |want|) accepted; a
	// reduced-precision engine gives instead the least cosine similarity of
	// each embedding to the reference's (tol < 0: cosine ≥ 1 + tol).
	tol float64
	run func(m *clip.Model, b batch) (img, txt []float32, err error)
}

func reference(m *clip.Model, b batch) (img, txt []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reference: %v", r)
		}
	}()
	S := m.Config.Vision.ImageSize
	px, _ := tensor.FromData(append([]float32(nil), b.pixels...), b.B, 3, S, S)
	img = m.EncodeImage(nil, ops.Const(px)).Value.Data
	txt = m.EncodeText(nil, b.text).Value.Data
	return img, txt, nil
}

func inferEngine(dt infer.DType, split infer.Split) func(m *clip.Model, b batch) ([]float32, []float32, error) {
	return func(m *clip.Model, b batch) ([]float32, []float32, error) {
		e, err := infer.New(m, infer.Options{Threads: 2, DType: dt, Split: split})
		if err != nil {
			return nil, nil, err
		}
		defer e.Close()
		img := make([]float32, b.B*e.EmbedDim())
		txt := make([]float32, b.B*e.EmbedDim())
		e.EncodeImages(b.pixels, b.B, img)
		e.EncodeTexts(b.text.IDs, b.text.EOTPos, b.B, b.text.T, txt)
		return img, txt, nil
	}
}

// inferSuffix runs the towers through the MoPE scorer's path: the engine's
// embeddings of layer 0's input, then EmbedFrom over PackBlock'ed layers.
func inferSuffix(m *clip.Model, b batch) ([]float32, []float32, error) {
	e, err := infer.New(m, infer.Options{Threads: 2})
	if err != nil {
		return nil, nil, err
	}
	defer e.Close()
	S := m.Config.Vision.ImageSize
	px, _ := tensor.FromData(append([]float32(nil), b.pixels...), b.B, 3, S, S)
	run := func(name string, enc *nn.Transformer, x *ops.Var, T int, pool []int) ([]float32, error) {
		var layers []*infer.Layer
		for i, blk := range enc.Layers {
			if enc.Skip != nil && enc.Skip[i] {
				continue
			}
			l, err := e.PackBlock(name, blk, true, true)
			if err != nil {
				return nil, err
			}
			layers = append(layers, l)
		}
		out := make([]float32, b.B*e.EmbedDim())
		return out, e.EmbedFrom(name, x.Value.Data, b.B, T, layers, pool, out)
	}
	img, err := run(infer.TowerVision, m.Vision.Encoder, m.Vision.Embed(nil, ops.Const(px)), m.Vision.SeqLen(), make([]int, b.B))
	if err != nil {
		return nil, nil, err
	}
	txt, err := run(infer.TowerText, m.Text.Encoder, m.Text.Embed(nil, b.text), b.text.T, b.text.EOTPos)
	return img, txt, err
}

func cudaEngine(ctx *cuda.Context) func(m *clip.Model, b batch) ([]float32, []float32, error) {
	return func(m *clip.Model, b batch) ([]float32, []float32, error) {
		ve, err := cuda.NewVisionEncoder(ctx, m, cuda.EncoderOptions{Gemm: cuda.GemmOwn, MaxBatch: b.B})
		if err != nil {
			return nil, nil, err
		}
		defer ve.Close()
		te, err := cuda.NewTextEncoder(ctx, m, cuda.EncoderOptions{Gemm: cuda.GemmOwn, MaxBatch: b.B})
		if err != nil {
			return nil, nil, err
		}
		defer te.Close()
		img, err := ve.EncodeImage(b.pixels, b.B)
		if err != nil {
			return nil, nil, err
		}
		txt, err := te.EncodeText(b.text)
		return img, txt, err
	}
}

func engines(t *testing.T) []engine {
	es := []engine{
		{"infer-f32", 1e-4, inferEngine(infer.F32, infer.SplitGEMM)},
		{"infer-f32-items", 1e-4, inferEngine(infer.F32, infer.SplitItems)},
		{"infer-bf16", -1e-4, inferEngine(infer.BF16, infer.SplitGEMM)},
		{"infer-int8", -2e-3, inferEngine(infer.INT8, infer.SplitGEMM)},
		{"infer-suffix", 1e-4, inferSuffix},
	}
	ctx, err := cuda.Open(cuda.Options{})
	switch {
	case errors.Is(err, cuda.ErrNoCUDA):
		// Built without the cuda tag: make test-lowering-emu runs this
		// table on the CUDA emulator (-tags cuda,cudaemu).
		t.Logf("cuda engine not in this build (%v)", err)
	case err != nil:
		t.Fatalf("cuda: %v", err)
	default:
		t.Cleanup(func() { ctx.Close() })
		es = append(es, engine{"cuda", 1e-4, cudaEngine(ctx)})
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.name
	}
	t.Logf("engines: reference, %s", strings.Join(names, ", "))
	return es
}

// TestEngines runs every model of the table through every engine: each
// must give the reference forward's embeddings (within its tolerance) or,
// for models the lowering refuses, fail with the lowering's error, as the
// reference fails too.
func TestEngines(t *testing.T) {
	es := engines(t)
	for _, mc := range modelCases() {
		t.Run(mc.name, func(t *testing.T) {
			m := buildModel(t, mc)
			b := makeBatch(m, 3)
			_, lerr := lower.Model(m)
			wantImg, wantTxt, rerr := reference(m, b)
			if mc.wantErr != "" {
				if lerr == nil || !strings.Contains(lerr.Error(), mc.wantErr) {
					t.Fatalf("lowering error %v, want one containing %q", lerr, mc.wantErr)
				}
				if rerr == nil {
					t.Errorf("the reference runs a model the lowering refuses (%v)", lerr)
				}
			} else {
				if lerr != nil {
					t.Fatalf("lowering: %v", lerr)
				}
				if rerr != nil {
					t.Fatal(rerr)
				}
			}
			for _, e := range es {
				img, txt, err := e.run(m, b)
				if mc.wantErr != "" {
					if err == nil || !strings.HasSuffix(err.Error(), lerr.Error()) {
						t.Errorf("%s: error %v, want the lowering's %q", e.name, err, lerr)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", e.name, err)
					continue
				}
				compare(t, e.name+"/image", img, wantImg, b.B, e.tol)
				compare(t, e.name+"/text", txt, wantTxt, b.B, e.tol)
			}
		})
	}
}

func compare(t *testing.T, what string, got, want []float32, B int, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	if tol < 0 {
		E := len(want) / B
		for b := 0; b < B; b++ {
			if c := testutil.Cosine(got[b*E:(b+1)*E], want[b*E:(b+1)*E]); !(c >= 1+tol) {
				t.Errorf("%s: item %d has cosine %.6f to the reference, want ≥ %.6f", what, b, c, 1+tol)
			}
		}
		return
	}
	worst, at := 0.0, 0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g-w) / (1 + math.Abs(w))
		if math.IsNaN(g) || d > worst {
			worst, at = d, i
			if math.IsNaN(g) {
				worst = math.Inf(1)
			}
		}
	}
	if worst > tol {
		t.Errorf("%s: value %d is %g, want %g (relative error %.3g > %.3g)", what, at, got[at], want[at], worst, tol)
	}
}
