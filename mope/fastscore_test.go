package mope

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/tensor"
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
				cmp(tw.String()+" prefix", validRows(ref, rh), validRows(fast, fh))
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

// validRows returns the hidden states of a scorer's prefix cache in
// calibration order, per item the rows that reach its features: all of an
// image's, a caption's up to its end-of-text token (the fast scorer runs
// captions sorted by length, each batch cut to its longest).
func validRows(s scorer, states []*tensor.Tensor) []float32 {
	var r *towerRun
	order, ts := []int(nil), []int(nil)
	switch s := s.(type) {
	case refScorer:
		r = s.towerRun
	case *fastScorer:
		r, order, ts = s.towerRun, s.order, s.ts
	}
	rows := make([][]float32, r.n)
	for bi, bt := range r.batches {
		T := r.T
		if ts != nil {
			T = ts[bi]
		}
		for k := bt[0]; k < bt[1]; k++ {
			i := k
			if order != nil {
				i = order[k]
			}
			keep := T
			if r.tower == Text {
				keep = r.cal.EOTPos[k] + 1
			}
			x := states[bi].Data[(k-bt[0])*T*r.C:]
			rows[i] = x[:keep*r.C]
		}
	}
	var out []float32
	for _, x := range rows {
		out = append(out, x...)
	}
	return out
}

// TestFastScorerSortedText: running the captions sorted by length in
// batches cut to their longest caption gives the same scores, bit for bit,
// as running every batch at the full text length.
func TestFastScorerSortedText(t *testing.T) {
	m, cal, _ := fixture(t, 12)
	randomBiases(m, 5)
	short, long := cal.T, 0
	for _, p := range cal.EOTPos {
		short, long = min(short, p+1), max(long, p+1)
	}
	if short == long {
		t.Fatalf("captions all %d tokens long: nothing to cut", long)
	}
	for _, dt := range []infer.DType{infer.F32, infer.INT8} {
		o := Options{Metric: "mope", Towers: clip.TextOnly, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: 3, Batch: 3, Engine: EngineFast, DType: dt}
		a, err := Score(m, cal, o)
		if err != nil {
			t.Fatal(err)
		}
		sortText = false
		b, err := Score(m, cal, o)
		sortText = true
		if err != nil {
			t.Fatal(err)
		}
		if x, y := jsonOf(t, a), jsonOf(t, b); string(x) != string(y) {
			t.Errorf("%v: text scores differ with and without the length sort", dt)
		}
	}
}
