package world

import (
	"slices"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/dataset/shapes"
)

func smallWorld(t *testing.T, n int) (*Pairs, *Sampler) {
	t.Helper()
	cfg := shapes.DefaultConfig()
	caps, err := Captions(cfg, 300)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := TokenizerFrom(caps, 600)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Split(cfg, "train", n, 32)
	if err != nil {
		t.Fatal(err)
	}
	return p, &Sampler{Pairs: p, Tok: tok, Batch: 7, Seed: 3}
}

// The batch of a step depends on (seed, step) only: not on which batches
// were drawn before, nor on the sampler object.
func TestSamplerIsAFunctionOfSeedAndStep(t *testing.T) {
	p, s := smallWorld(t, 20)
	var seq [][]int
	for step := 0; step < 9; step++ { // 63 draws: three epochs of 20
		imgs, caps := s.Indices(step)
		seq = append(seq, append(imgs, caps...))
	}
	fresh := &Sampler{Pairs: p, Tok: s.Tok, Batch: 7, Seed: 3}
	for _, step := range []int{8, 2, 5, 0} {
		imgs, caps := fresh.Indices(step)
		if !slices.Equal(append(imgs, caps...), seq[step]) {
			t.Fatalf("step %d differs when drawn out of order", step)
		}
	}
	// Each epoch is a permutation.
	count := map[int]int{}
	for step := 0; step < 9; step++ {
		imgs, _ := s.Indices(step)
		for _, i := range imgs[:min(7, 20*3-7*step)] {
			count[i]++
		}
	}
	for i := 0; i < 20; i++ {
		if count[i] != 3 {
			t.Fatalf("image %d drawn %d times in three epochs", i, count[i])
		}
	}
	other := &Sampler{Pairs: p, Tok: s.Tok, Batch: 7, Seed: 4}
	a, _ := other.Indices(0)
	b, _ := s.Indices(0)
	if slices.Equal(a, b) {
		t.Fatal("seed does not change the order")
	}
}

// Trimming the padding of a text batch does not change the embeddings.
func TestTextBatchTrimIsExact(t *testing.T) {
	_, s := smallWorld(t, 8)
	texts := []string{"a red circle", "there are two small green stars left of a blue square in the picture"}
	tb, err := TextBatch(s.Tok, texts)
	if err != nil {
		t.Fatal(err)
	}
	if tb.T >= Context {
		t.Fatalf("not trimmed: T=%d", tb.T)
	}
	cfg := Preset(32, 8, 32, 1, 2, 32, 2, 2, 16)
	cfg.Text.VocabSize, cfg.Text.EOSTokenID = s.Tok.VocabSize(), s.Tok.EOT()
	m, err := clip.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	ids, eot, err := s.Tok.Batch(texts, Context, true)
	if err != nil {
		t.Fatal(err)
	}
	full := m.EncodeText(nil, &clip.TextBatch{IDs: ids, EOTPos: eot, B: 2, T: Context}).Value.Data
	trim := m.EncodeText(nil, tb).Value.Data
	for i := range full {
		if d := full[i] - trim[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("embedding %d: %v vs %v", i, full[i], trim[i])
		}
	}
	b, err := s.Get(3)
	if err != nil {
		t.Fatal(err)
	}
	if b.Pixels.Shape[0] != 7 || b.Text.B != 7 || len(b.Index) != 7 {
		t.Fatalf("batch shapes %v %d", b.Pixels.Shape, b.Text.B)
	}
}

func TestTeacherPresetMatchesTokenizer(t *testing.T) {
	tok, err := Tokenizer(shapes.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		preset string
		layers int
	}{{TeacherPreset, 4}, {DeepTeacherPreset, 12}} {
		cfg, err := clip.Preset(c.preset)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", c.preset, err)
		}
		if cfg.Vision.NumHiddenLayers != c.layers || cfg.Text.NumHiddenLayers != c.layers || cfg.Vision.NumAttentionHeads < 4 || cfg.Text.NumAttentionHeads < 4 {
			t.Fatalf("%s: the teacher must have %d layers and several heads per tower for pruning", c.preset, c.layers)
		}
		if tok.VocabSize() != cfg.Text.VocabSize || tok.EOT() != cfg.Text.EOSTokenID || tok.SOT() != cfg.Text.BOSTokenID {
			t.Fatalf("%s: tokenizer (%d, eot %d) and preset (%d, eot %d) disagree", c.preset, tok.VocabSize(), tok.EOT(), cfg.Text.VocabSize, cfg.Text.EOSTokenID)
		}
	}
}
