package clip

import (
	"testing"

	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// A few contrastive steps on one fixed batch must lower the loss, move the
// logit scale and leave gradients in both towers.
func TestContrastiveStepLearns(t *testing.T) {
	cfg, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Text.VocabSize, cfg.Text.EOSTokenID, cfg.Text.MaxPositionEmbeddings = 64, 63, 8
	m, err := New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	const B, T = 8, 8
	rng := tensor.NewRNG(7)
	S := cfg.Vision.ImageSize
	pixels := tensor.New(B, 3, S, S).Normal(rng, 0, 1)
	text := &TextBatch{IDs: make([]int, B*T), EOTPos: make([]int, B), B: B, T: T}
	for b := 0; b < B; b++ {
		n := 2 + rng.IntN(T-2)
		for j := 0; j < n; j++ {
			text.IDs[b*T+j] = 1 + rng.IntN(60)
		}
		text.IDs[b*T+n] = 63
		text.EOTPos[b] = n
	}
	opt := nn.NewAdamW(m.Params(), nn.DefaultAdamW())
	tp := ops.NewTape()
	scale0 := m.LogitScale.Value.Data[0]
	var first, last float64
	for s := 0; s < 15; s++ {
		opt.ZeroGrad()
		loss, err := m.ContrastiveStep(tp, pixels, text)
		if err != nil {
			t.Fatal(err)
		}
		if s == 0 {
			first = loss
			for _, ps := range [][]*nn.Param{m.VisionParams(), m.TextParams()} {
				if nn.GradNorm(ps) == 0 {
					t.Fatal("a tower got no gradient")
				}
			}
		}
		last = loss
		opt.Step(3e-3)
	}
	if !(last < first*0.7) {
		t.Fatalf("loss %v → %v: did not decrease", first, last)
	}
	if m.LogitScale.Value.Data[0] == scale0 {
		t.Fatal("logit scale did not move")
	}
	if tmp := m.Temperature(); tmp < 1 || tmp > 100 {
		t.Fatalf("temperature %v", tmp)
	}
	// A batch that does not match the model is an error, not a panic.
	if _, err := m.ContrastiveStep(tp, tensor.New(B-1, 3, S, S), text); err == nil {
		t.Fatal("mismatched batch accepted")
	}
}
