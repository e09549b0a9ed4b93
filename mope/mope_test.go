package mope

import (
	"bytes"
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

var (
	fixOnce sync.Once
	fixTok  *tokenizer.Tokenizer
	fixImgs []image.Image
	fixCaps []string
	fixCI   []int
)

// fixture returns a random tiny model and a small shapes calibration set.
// randomBiases gives m's biases (which clip.New zeroes) seeded N(0, 0.05²)
// values.
func randomBiases(m *clip.Model, seed uint64) {
	rng := tensor.NewRNG(seed)
	for _, p := range m.Params() {
		if strings.HasSuffix(p.Name, "bias") {
			p.Value.Normal(rng, 0, 0.05)
		}
	}
}

func fixture(t testing.TB, nImg int) (*clip.Model, *Calib, *tokenizer.Tokenizer) {
	t.Helper()
	fixOnce.Do(func() {
		exs, err := shapes.Generate(shapes.DefaultConfig(), "calib", 24)
		if err != nil {
			panic(err)
		}
		imgs, caps, ci := shapes.Flatten(exs)
		for _, im := range imgs {
			fixImgs = append(fixImgs, im)
		}
		fixCaps, fixCI = caps, ci
		if fixTok, err = tokenizer.Train(caps, 700); err != nil {
			panic(err)
		}
	})
	cfg, _ := clip.Preset("tiny")
	cfg.Vision.NumHiddenLayers, cfg.Text.NumHiddenLayers = 3, 3
	m, err := clip.New(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	var ci []int
	for j, i := range fixCI {
		if i < nImg {
			caps, ci = append(caps, fixCaps[j]), append(ci, i)
		}
	}
	cal, err := NewCalib(m, fixImgs[:nImg], caps, ci, fixTok)
	if err != nil {
		t.Fatal(err)
	}
	return m, cal, fixTok
}

// encode returns both towers' projected embeddings for the calibration set.
func encode(m *clip.Model, cal *Calib) (img, txt []float32) {
	px := tensor.New(cal.NImg, 3, cal.Size, cal.Size)
	cal.PixelsInto(px.Data, 0, cal.NImg)
	img = m.EncodeImage(nil, ops.Const(px)).Value.Data
	txt = m.EncodeText(nil, &clip.TextBatch{IDs: cal.IDs, EOTPos: cal.EOTPos, B: cal.NTxt, T: cal.T}).Value.Data
	return
}

// relL2Err is ‖a−b‖₂/‖b‖₂ (normwise; testutil.MaxRelErr is the largest
// difference over the largest value).
func relL2Err(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i] - b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / math.Max(den, 1e-30))
}

func testPlan() *Plan {
	return &Plan{
		Vision: &TowerPlan{
			Heads:   [][]int{{0, 2}, {}, nil},              // layer 1 loses every head
			Neurons: [][]int{{1, 5, 9, 100, 255}, nil, {}}, // layer 2 loses its MLP
			Layers:  []int{0, 2},
		},
		Text: &TowerPlan{
			Heads:   [][]int{nil, {3}, {0, 1}},
			Neurons: [][]int{{0, 1, 2}, {7, 8, 150}, nil},
		},
	}
}

func TestEditMatchesMask(t *testing.T) {
	m, cal, _ := fixture(t, 8)
	p := testPlan()
	ed, err := Apply(m, p)
	if err != nil {
		t.Fatal(err)
	}
	mk, err := Mask(m, p)
	if err != nil {
		t.Fatal(err)
	}
	ei, et := encode(ed, cal)
	mi, mt := encode(mk, cal)
	if e := relL2Err(ei, mi); e > 1e-5 {
		t.Errorf("vision: edited vs masked relative error %g", e)
	}
	if e := relL2Err(et, mt); e > 1e-5 {
		t.Errorf("text: edited vs masked relative error %g", e)
	}
	// Config.
	v, tx := ed.Config.Vision, ed.Config.Text
	if v.NumHiddenLayers != 2 || !equalInts(v.TeacherLayers, []int{0, 2}) || !equalInts(v.LayerHeads, []int{2, 4}) || !equalInts(v.LayerIntermediate, []int{5, 0}) {
		t.Errorf("vision config: %+v", v)
	}
	if !equalInts(tx.LayerHeads, []int{4, 1, 2}) || !equalInts(tx.LayerIntermediate, []int{3, 3, 192}) || tx.TeacherLayers != nil {
		t.Errorf("text config: %+v", tx)
	}
	// Untouched modules are bit-identical; the original is unchanged.
	same := func(name string, a, b []float32) {
		if !bytes.Equal(f32bytes(a), f32bytes(b)) {
			t.Errorf("%s changed", name)
		}
	}
	same("text layer 2 q_proj", ed.Text.Encoder.Layers[2].SelfAttn.Q.W.Value.Data[:2*12*48], m.Text.Encoder.Layers[2].SelfAttn.Q.W.Value.Data[:2*12*48])
	same("text layer 2 mlp", ed.Text.Encoder.Layers[2].MLP.FC1.W.Value.Data, m.Text.Encoder.Layers[2].MLP.FC1.W.Value.Data)
	same("vision layer 2 (now 1) attn", ed.Vision.Encoder.Layers[1].SelfAttn.Out.W.Value.Data, m.Vision.Encoder.Layers[2].SelfAttn.Out.W.Value.Data)
	same("patch embedding", ed.Vision.PatchEmbedding.Value.Data, m.Vision.PatchEmbedding.Value.Data)
	if m.Config.Vision.NumHiddenLayers != 3 || len(m.Vision.Encoder.Layers) != 3 || m.Vision.Encoder.Layers[0].SelfAttn.Heads != 4 {
		t.Error("Apply changed its input model")
	}
	if got := ed.Vision.Encoder.Layers[1].LayerNorm1.W.Name; got != "vision_model.encoder.layers.1.layer_norm1.weight" {
		t.Errorf("renamed layer param %q", got)
	}
	// Parameters and FLOPs drop as computed.
	pv, pt, _ := ed.NumParams()
	if pv != TowerParams(ed.Config, Vision) || pt != TowerParams(ed.Config, Text) {
		t.Errorf("params %d/%d, config says %d/%d", pv, pt, TowerParams(ed.Config, Vision), TowerParams(ed.Config, Text))
	}
	ov, _, _ := m.NumParams()
	C, D := 64, 16
	wantDrop := 2*(4*C*D+3*D) + // layer 0: two heads
		(4*C*4*D + 3*4*D + C) + // layer 1: every head (and the out bias)
		(256-5)*(2*C+1) + // layer 0 neurons
		(4*C + 4*C*4*D + 3*4*D + C + 2*C*256 + 256 + C) + // layer 1 removed (its attn already gone: counted above)
		(2*C*256 + 256 + C) // layer 2 MLP
	// layer 1's attention is counted twice above; its MLP once with the layer.
	wantDrop -= 4*C*4*D + 3*4*D + C
	if ov-pv != wantDrop {
		t.Errorf("vision params dropped %d, want %d", ov-pv, wantDrop)
	}
	T := m.Vision.SeqLen()
	macs := ed.Config.VisionMACs()
	if macs.Layers[0] != clip.LayerMACs(T, C, 2, D, 5) || macs.Layers[1] != clip.LayerMACs(T, C, 4, D, 0) {
		t.Errorf("vision MACs %v", macs.Layers)
	}
	// Save → Load gives the same outputs.
	dir := t.TempDir()
	if err := ed.Save(dir); err != nil {
		t.Fatal(err)
	}
	ld, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	li, lt := encode(ld, cal)
	same("loaded vision output", li, ei)
	same("loaded text output", lt, et)
	if !equalInts(ld.Config.Vision.TeacherLayers, []int{0, 2}) {
		t.Errorf("loaded teacher layers %v", ld.Config.Vision.TeacherLayers)
	}
	// Pruning a pruned model composes the teacher map.
	ed2, err := Apply(ld, &Plan{Vision: &TowerPlan{Layers: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	if !equalInts(ed2.Config.Vision.TeacherLayers, []int{2}) {
		t.Errorf("composed teacher layers %v", ed2.Config.Vision.TeacherLayers)
	}
}

func f32bytes(x []float32) []byte {
	b := make([]byte, 0, 4*len(x))
	for _, v := range x {
		u := math.Float32bits(v)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return b
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// naiveScore evaluates Z of the model without one module by editing it and
// running everything from scratch.
func naiveScore(t *testing.T, m *clip.Model, cal *Calib, mod Module, groups int) float64 {
	z := func(mm *clip.Model) float64 {
		img, txt := encode(mm, cal)
		n := func(x []float32) []float32 {
			v, _ := tensor.FromData(x, len(x)/mm.Config.ProjectionDim, mm.Config.ProjectionDim)
			return ops.L2Normalize(nil, ops.Const(v)).Value.Data
		}
		return zScore(n(img), n(txt), cal, mm.Config.ProjectionDim)
	}
	_, enc := towerOf(m, mod.Tower)
	L := len(enc.Layers)
	tp := &TowerPlan{}
	b := enc.Layers[mod.Layer]
	switch mod.Kind {
	case KindHead:
		tp.Heads = make([][]int, L)
		tp.Heads[mod.Layer] = []int{}
		for h := 0; h < numHeads(b); h++ {
			if h != mod.Index {
				tp.Heads[mod.Layer] = append(tp.Heads[mod.Layer], h)
			}
		}
	case KindFFN:
		tp.Neurons = make([][]int, L)
		lo, hi := NeuronGroup(numNeurons(b), groups, mod.Index)
		tp.Neurons[mod.Layer] = []int{}
		for i := 0; i < numNeurons(b); i++ {
			if i < lo || i >= hi {
				tp.Neurons[mod.Layer] = append(tp.Neurons[mod.Layer], i)
			}
		}
	case KindLayer:
		for l := 0; l < L; l++ {
			if l != mod.Layer {
				tp.Layers = append(tp.Layers, l)
			}
		}
	}
	p := &Plan{}
	p.setTower(mod.Tower, tp)
	ed, err := Apply(m, p)
	if err != nil {
		t.Fatal(err)
	}
	return z(m) - z(ed)
}

func TestMoPEScoreMatchesNaive(t *testing.T) {
	m, cal, _ := fixture(t, 12)
	// The naive scores run the reference forward; the fast engine agrees
	// with it to float32 rounding, which moves no retrieval rank here (in
	// general a moved rank changes a score by 100/(6·n) for n queries).
	for _, engine := range []Engine{EngineRef, EngineFast} {
		o := Options{Metric: "mope", Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: 4, Batch: 5, Engine: engine}
		f, err := Score(m, cal, o)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Complete || len(f.Scores) != f.Total || f.Total != 2*3*(4+4+1) || f.Settings.Engine != engine {
			t.Fatalf("complete %v, %d scores of %d, engine %q", f.Complete, len(f.Scores), f.Total, f.Settings.Engine)
		}
		nonzero := 0
		for _, s := range f.Scores {
			want := naiveScore(t, m, cal, s.Module, 4)
			if math.Abs(s.Score-want) > 1e-9 {
				t.Errorf("%s: %v: prefix-cached score %v, naive %v", engine, s.Module, s.Score, want)
			}
			if s.Score != 0 {
				nonzero++
			}
		}
		if nonzero == 0 {
			t.Error("every score is 0")
		}
		t.Logf("%s: baseline Z %.2f, %d of %d scores non-zero", engine, f.Baseline, nonzero, len(f.Scores))
	}
}

func TestShardMergeEqualsSingleRun(t *testing.T) {
	m, cal, _ := fixture(t, 10)
	for _, metric := range []Metric{MetricMoPE, MetricUnimodal, MetricTaylor, MetricMagnitude, MetricRandom} {
		o := Options{Metric: metric, Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: 3, Data: "test", Seed: 5}
		one, err := Score(m, cal, o)
		if err != nil {
			t.Fatal(err)
		}
		var parts []*ScoreFile
		for i := 0; i < 3; i++ {
			o.Shard = []string{"0/3", "1/3", "2/3"}[i]
			p, err := Score(m, cal, o)
			if err != nil {
				t.Fatal(err)
			}
			// Round-trip through JSON as the CLI does.
			parts = append(parts, roundTrip(t, p))
		}
		merged, err := Merge(parts)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := jsonOf(t, one), jsonOf(t, merged); !bytes.Equal(a, b) {
			t.Errorf("%s: merged shards differ from one run", metric)
		}
		for _, s := range one.Scores {
			if math.IsNaN(s.Score) {
				t.Errorf("%s: NaN score for %v", metric, s.Module)
			}
		}
		if _, err := Merge(parts[:2]); err == nil {
			t.Errorf("%s: merge with a missing shard succeeded", metric)
		}
		if _, err := Merge([]*ScoreFile{parts[0], parts[0], parts[1], parts[2]}); err == nil {
			t.Errorf("%s: merge with an overlap succeeded", metric)
		}
	}
	o := Options{Metric: "random", Towers: clip.VisionOnly, Kinds: []string{KindHead}, Seed: 1, Shard: "0/2"}
	a, _ := Score(m, nil, o)
	o.Seed, o.Shard = 2, "1/2"
	b, _ := Score(m, nil, o)
	if _, err := Merge([]*ScoreFile{a, b}); err == nil {
		t.Error("merge with mismatched settings succeeded")
	}
}

func roundTrip(t *testing.T, f *ScoreFile) *ScoreFile {
	path := filepath.Join(t.TempDir(), "s.json")
	if err := WriteScores(path, f); err != nil {
		t.Fatal(err)
	}
	g, err := ReadScores(path)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func jsonOf(t *testing.T, f *ScoreFile) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResume(t *testing.T) {
	m, cal, _ := fixture(t, 8)
	o := Options{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{KindHead, KindLayer}, Groups: 4}
	full, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	// An interrupted run: the checkpoint holds the first 5 modules.
	part := roundTrip(t, full)
	part.Scores, part.Complete = part.Scores[:5], false
	o.Resume = part
	path := filepath.Join(t.TempDir(), "ck.json")
	o.Checkpoint = path
	got, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jsonOf(t, got), jsonOf(t, full)) {
		t.Error("resumed run differs from a full run")
	}
	disk, err := ReadScores(path)
	if err != nil || !disk.Complete || len(disk.Scores) != full.Total {
		t.Errorf("final checkpoint: %v %+v", err, disk)
	}
	o.Resume.Settings.Groups = 8
	if _, err := Score(m, cal, o); err == nil {
		t.Error("resume with other settings succeeded")
	}
	_ = os.Remove(path)
}

func TestPlans(t *testing.T) {
	m, cal, _ := fixture(t, 8)
	f, err := Score(m, cal, Options{Metric: "magnitude", Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: 4})
	if err != nil {
		t.Fatal(err)
	}
	wp, err := WidthPlan(m, f, WidthOptions{Ratio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for l := 0; l < 3; l++ {
		if len(wp.Vision.Heads[l]) != 2 || len(wp.Vision.Neurons[l]) != 128 || len(wp.Text.Heads[l]) != 2 || len(wp.Text.Neurons[l]) != 96 {
			t.Errorf("layer %d: uniform width plan sizes %d %d %d %d", l, len(wp.Vision.Heads[l]), len(wp.Vision.Neurons[l]), len(wp.Text.Heads[l]), len(wp.Text.Neurons[l]))
		}
	}
	// The kept heads of a layer are its best by score.
	sc := f.Lookup()
	for _, h := range wp.Vision.Heads[0] {
		for o := 0; o < 4; o++ {
			if !containsInt(wp.Vision.Heads[0], o) && sc[Module{Vision, KindHead, 0, o}] > sc[Module{Vision, KindHead, 0, h}] {
				t.Errorf("dropped head %d scores above kept head %d", o, h)
			}
		}
	}
	gp, err := WidthPlan(m, f, WidthOptions{Ratio: 0.5, Global: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, hs := range gp.Vision.Heads {
		n += len(hs)
	}
	if n != 6 {
		t.Errorf("global plan keeps %d vision heads, want 6", n)
	}
	// Width then depth, with rescoring (magnitude needs no data).
	pm, rep, err := PruneModel(m, f, PruneOptions{Width: 0.5, Depth: 2.0 / 3})
	if err != nil {
		t.Fatal(err)
	}
	if pm.Config.Vision.NumHiddenLayers != 2 || pm.Config.Text.NumHiddenLayers != 2 || rep.DepthScores != "rescored" {
		t.Errorf("pruned layers %d/%d, %+v", pm.Config.Vision.NumHiddenLayers, pm.Config.Text.NumHiddenLayers, rep)
	}
	// FLOPs target.
	for _, target := range []float64{0.5, 0.3} {
		pm, rep, err = PruneModel(m, f, PruneOptions{TargetFLOPs: target, Towers: clip.VisionOnly})
		if err != nil {
			t.Fatal(err)
		}
		got := Cost(pm.Config, clip.VisionOnly, false) / Cost(m.Config, clip.VisionOnly, false)
		if got > target+1e-9 || got < target-0.1 {
			t.Errorf("target %v: got %.3f (%+v)", target, got, rep)
		}
		if pm.Config.Text.NumHiddenLayers != 3 || pm.Config.Text.LayerHeads != nil {
			t.Error("text tower changed")
		}
		t.Logf("target %.2f → width %.2f depth %.2f, FLOPs ratio %.3f", target, rep.Width, rep.Depth, got)
	}
	pm, rep, err = PruneModel(m, f, PruneOptions{TargetParams: 0.6, Towers: clip.VisionOnly})
	if err != nil {
		t.Fatal(err)
	}
	pv, _, _ := pm.NumParams()
	ov, _, _ := m.NumParams()
	if r := float64(pv) / float64(ov); r > 0.6 || r < 0.45 {
		t.Errorf("params target 0.6: got %.3f %+v", r, rep)
	}
	// Scores of another model are refused.
	m2, _, _ := fixture(t, 8)
	m2.LogitScale.Value.Data[0] += 1
	if _, _, err := PruneModel(m2, f, PruneOptions{Width: 0.5, Depth: 1}); err == nil {
		t.Error("pruning with another model's scores succeeded")
	}
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
