package mope

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
)

// TestFastScorerMatchesRef compares the embeddings of every evaluation
// (each head, FFN group and layer of both towers dropped, from the prefix
// cache) of the fast engine with the reference forward's, on a model with
// random biases, at batch sizes that leave a short last batch; and the
// unimodal scores of the two engines.
func TestFastScorerMatchesRef(t *testing.T) {
	m, cal, _ := fixture(t, 11)
	randomBiases(m, 4)
	const groups = 3
	for _, threads := range []int{1, 2} {
		e, err := infer.New(m, infer.Options{Threads: threads, Chunk: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, tw := range clip.AllTowers {
			ref, _ := newScorer(nil, m, tw, cal, 4)
			fast, err := newScorer(e, m, tw, cal, 4)
			if err != nil {
				t.Fatal(err)
			}
			rh, fh := ref.embedAll(), fast.embedAll()
			worst := 0.0
			cmp := func(what string, a, b []float32) {
				t.Helper()
				if len(a) != len(b) {
					t.Fatalf("%s: %d vs %d values", what, len(a), len(b))
				}
				err := relL2Err(b, a)
				worst = math.Max(worst, err)
				if err > 1e-5 {
					t.Errorf("threads %d %s: fast vs ref rel err %.3g", threads, what, err)
				}
			}
			a, _ := ref.features(rh, 0, nil, groups)
			b, _ := fast.features(fh, 0, nil, groups)
			cmp(tw.String()+" full", a, b)
			mods := Modules(m, clip.TowerSetOf(tw), []string{KindHead, KindFFN, KindLayer}, groups)
			for l := 0; l < len(m.Vision.Encoder.Layers) && l < 3; l++ {
				rm, fm := ref.mid(l, rh), fast.mid(l, fh)
				for _, mod := range mods {
					if mod.Layer != l {
						continue
					}
					rs, fs := rh, fh
					if mod.Kind == KindFFN {
						rs, fs = rm, fm
					}
					a, err1 := ref.features(rs, l, &mod, groups)
					b, err2 := fast.features(fs, l, &mod, groups)
					if err1 != nil || err2 != nil {
						t.Fatal(err1, err2)
					}
					cmp(mod.String(), a, b)
				}
				// Each engine continues from its own prefix; the states
				// stay within rounding of each other.
				rh, fh = ref.finish(l, rm), fast.finish(l, fm)
				for bi := range rh {
					cmp(tw.String()+" prefix", rh[bi].Data, fh[bi].Data)
				}
			}
			t.Logf("threads %d %s: worst embedding rel err %.3g", threads, tw, worst)
		}
		e.Close()
	}
	o := Options{Metric: "unimodal", Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: groups, Batch: 4, Engine: EngineRef}
	r, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Engine = EngineFast
	f, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Scores {
		if d := math.Abs(r.Scores[i].Score - f.Scores[i].Score); d > 1e-5 {
			t.Errorf("unimodal %v: ref %v fast %v", r.Scores[i].Module, r.Scores[i].Score, f.Scores[i].Score)
		}
	}
	// Shards may run on machines with different thread counts: the scores
	// must not depend on them.
	o = Options{Metric: "mope", Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: groups, Batch: 5, Engine: EngineFast, Threads: 1}
	a, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Threads = 3
	b, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	if x, y := jsonOf(t, a), jsonOf(t, b); string(x) != string(y) {
		t.Error("fast scores differ between 1 and 3 threads")
	}
	if _, err := Score(m, cal, Options{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{KindLayer}, Engine: "gpu"}); err == nil {
		t.Error("unknown engine accepted")
	}
}
