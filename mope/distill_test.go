package mope

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// distillFixture returns a tiny teacher, a student pruned from it in width
// and depth (vision loses a head, half the neurons of layer 0 and layer 0
// itself; text loses a head of layer 1), and a batch of 4 pairs.
func distillFixture(t *testing.T) (teacher, student *clip.Model, pix *tensor.Tensor, tb *clip.TextBatch) {
	t.Helper()
	cfg, err := clip.Preset(world.TinyPreset)
	if err != nil {
		t.Fatal(err)
	}
	teacher, err = clip.New(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	teacher.LogitScale.Value.Data[0] = 2.5
	I := cfg.Vision.IntermediateSize
	half := make([]int, I/2)
	for i := range half {
		half[i] = 2 * i
	}
	plan := &Plan{
		Vision: &TowerPlan{Heads: [][]int{{1}, nil}, Neurons: [][]int{half, nil}, Layers: []int{1}},
		Text:   &TowerPlan{Heads: [][]int{nil, {0}}},
	}
	student, err = Apply(teacher, plan)
	if err != nil {
		t.Fatal(err)
	}
	// Move the student away from the teacher so every term has a gradient.
	rng := tensor.NewRNG(3)
	for _, p := range student.Params() {
		for i := range p.Value.Data {
			p.Value.Data[i] += float32(0.02 * rng.NormFloat64())
		}
	}
	B, S := 4, cfg.Vision.ImageSize
	pix = tensor.New(B, 3, S, S).Normal(tensor.NewRNG(5), 0, 1)
	T := 8
	ids := make([]int, B*T)
	for b := 0; b < B; b++ {
		n := 3 + b
		for j := 0; j < n; j++ {
			ids[b*T+j] = 1 + (b*31+j*17)%500
		}
		ids[b*T+n] = cfg.Text.EOSTokenID
	}
	tb = &clip.TextBatch{IDs: ids, EOTPos: clip.EOTPositions(ids, B, T, cfg.Text.EOSTokenID), B: B, T: T}
	return teacher, student, pix, tb
}

func distillLoss(t *testing.T, s, te *clip.Model, pix *tensor.Tensor, tb *clip.TextBatch, w DistillWeights) float64 {
	d, err := DistillForward(nil, s, te, pix, tb, w)
	if err != nil {
		t.Fatal(err)
	}
	return float64(d.Loss.Value.Data[0])
}

// TestDistillGradient checks the analytic gradient of the combined loss (all
// four terms) against central finite differences along random directions
// of several parameters of both towers, and at the largest entries.
func TestDistillGradient(t *testing.T) {
	teacher, student, pix, tb := distillFixture(t)
	w := DistillWeights{ITC: 1, KD: 0.7, Feat: 0.5, Hidden: 0.8, Temp: 2}
	tp := ops.NewTape()
	nn.ZeroGrads(student.Params())
	loss, terms, err := DistillStep(tp, student, teacher, pix, tb, w)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range terms {
		if !(v > 0) {
			t.Errorf("term %s = %v, want > 0", k, v)
		}
	}
	if math.Abs(loss-(terms["itc"]+0.7*terms["kd"]+0.5*terms["feat"]+0.8*terms["hidden"])) > 1e-4*loss {
		t.Errorf("loss %v is not the weighted sum of %v", loss, terms)
	}
	byName := map[string]*nn.Param{}
	for _, p := range student.Params() {
		byName[p.Name] = p
	}
	names := []string{
		"vision_model.embeddings.patch_embedding.weight",
		"vision_model.encoder.layers.0.mlp.fc1.weight",
		"vision_model.encoder.layers.0.self_attn.q_proj.weight",
		"text_model.encoder.layers.1.self_attn.v_proj.weight",
		"text_model.encoder.layers.0.mlp.fc2.weight",
		"text_model.embeddings.token_embedding.weight",
		"visual_projection.weight",
		"text_projection.weight",
	}
	rng := tensor.NewRNG(11)
	for _, name := range names {
		p := byName[name]
		if p == nil {
			t.Fatalf("no parameter %s", name)
		}
		// Directional derivative along a random unit direction.
		dir := make([]float64, p.Value.Len())
		var norm, gd float64
		for i := range dir {
			dir[i] = rng.NormFloat64()
			norm += dir[i] * dir[i]
		}
		norm = math.Sqrt(norm)
		for i := range dir {
			dir[i] /= norm
			gd += dir[i] * float64(p.Grad.Data[i])
		}
		orig := append([]float32(nil), p.Value.Data...)
		h := 2e-3
		shift := func(s float64) float64 {
			for i := range dir {
				p.Value.Data[i] = orig[i] + float32(s*dir[i])
			}
			return distillLoss(t, student, teacher, pix, tb, w)
		}
		num := (shift(h) - shift(-h)) / (2 * h)
		copy(p.Value.Data, orig)
		if math.Abs(num-gd) > 0.02*math.Abs(gd)+2e-4 {
			t.Errorf("%s: directional derivative analytic %.6g, numeric %.6g", name, gd, num)
		}
		// The largest gradient entry.
		k := 0
		for i, g := range p.Grad.Data {
			if math.Abs(float64(g)) > math.Abs(float64(p.Grad.Data[k])) {
				k = i
			}
		}
		p.Value.Data[k] = orig[k] + float32(h)
		lp := distillLoss(t, student, teacher, pix, tb, w)
		p.Value.Data[k] = orig[k] - float32(h)
		lm := distillLoss(t, student, teacher, pix, tb, w)
		p.Value.Data[k] = orig[k]
		num = (lp - lm) / (2 * h)
		g := float64(p.Grad.Data[k])
		if math.Abs(num-g) > 0.03*math.Abs(g)+2e-4 {
			t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", name, k, g, num)
		}
	}
}

// TestDistillIdentity: a student equal to its teacher has zero feature and
// hidden-state error, and its KD term equals the teacher's own soft entropy
// (its minimum), so the KD gradient vanishes.
func TestDistillIdentity(t *testing.T) {
	teacher, _, pix, tb := distillFixture(t)
	student := CloneModel(teacher)
	d, err := DistillForward(nil, student, teacher, pix, tb, DefaultDistillWeights())
	if err != nil {
		t.Fatal(err)
	}
	if d.Feat != 0 || d.Hidden != 0 {
		t.Errorf("feat %v hidden %v, want 0", d.Feat, d.Hidden)
	}
	if d.HiddenPairs != 4 {
		t.Errorf("%d hidden pairs, want 4 (2 layers × 2 towers)", d.HiddenPairs)
	}
	tp := ops.NewTape()
	nn.ZeroGrads(student.Params())
	if _, _, err := DistillStep(tp, student, teacher, pix, tb, DistillWeights{KD: 1, Temp: 2}); err != nil {
		t.Fatal(err)
	}
	if g := nn.GradNorm(student.Params()); g > 1e-4 {
		t.Errorf("KD gradient of student = teacher has norm %g, want ~0", g)
	}
}

// TestDistillHiddenMap: hidden states are matched through TeacherLayer.
func TestDistillHiddenMap(t *testing.T) {
	_, student, _, _ := distillFixture(t)
	if got := student.Config.Vision.TeacherLayer(0); got != 1 {
		t.Fatalf("student vision layer 0 came from teacher layer %d, want 1", got)
	}
	tc := &clip.TowerConfig{NumHiddenLayers: 2, TeacherLayers: []int{1, 3}}
	if teacherIndex(tc, 3) != 1 || teacherIndex(tc, 2) != -1 {
		t.Errorf("teacherIndex through a pruned teacher is wrong")
	}
}

func TestDistillWeightsValidate(t *testing.T) {
	if err := DefaultDistillWeights().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []DistillWeights{{}, {ITC: -1}, {KD: 1, Temp: 0}, {Feat: math.NaN()}} {
		if w.Validate() == nil {
			t.Errorf("%+v accepted", w)
		}
	}
}
