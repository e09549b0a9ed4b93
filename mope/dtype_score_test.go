package mope

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
)

// spearman returns the Spearman rank correlation of x and y (average ranks
// for ties).
func spearman(x, y []float64) float64 {
	rank := func(v []float64) []float64 {
		idx := make([]int, len(v))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
		r := make([]float64, len(v))
		for i := 0; i < len(idx); {
			j := i
			for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
				j++
			}
			for k := i; k <= j; k++ {
				r[idx[k]] = float64(i+j)/2 + 1
			}
			i = j + 1
		}
		return r
	}
	rx, ry := rank(x), rank(y)
	var mx, my float64
	for i := range rx {
		mx, my = mx+rx[i], my+ry[i]
	}
	mx, my = mx/float64(len(rx)), my/float64(len(ry))
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy, sxx, syy = sxy+dx*dy, sxx+dx*dx, syy+dy*dy
	}
	return sxy / math.Sqrt(sxx*syy)
}

func TestSpearman(t *testing.T) {
	if r := spearman([]float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}); math.Abs(r-1) > 1e-12 {
		t.Errorf("monotone: %g", r)
	}
	if r := spearman([]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}); math.Abs(r+1) > 1e-12 {
		t.Errorf("reversed: %g", r)
	}
	if r := spearman([]float64{1, 2, 2, 3}, []float64{1, 2, 3, 4}); r >= 1 || r < 0.9 {
		t.Errorf("tie: %g", r)
	}
}

// TestScoreReducedPrecision: MoPE scores of the shapes teacher (every head,
// FFN group and layer of both towers) computed with bf16 and int8 weights,
// in one stage (every score reduced) and in two (Options.Rescore: the
// modules that can change the half-width, half-depth plan rescored in
// float32). Both are recorded as such and differ from float32's. Two-stage
// scores of rescored modules are float32's bit for bit, the rest carry no
// Reduced value, and the width and depth plans are float32's. With
// MOPECLIP_SCORE_LIMIT=1000 (the whole calib split, ~10 CPU-min per type) it
// checks issue 18's bar on the two-stage scores: Spearman >= 0.99. By
// default it scores 32 calibration images, where the retrieval-based
// scores of the many low-impact modules are a handful of flipped ranks
// each, so one-stage scores get only a loose rank bar (>= 0.7).
func TestScoreReducedPrecision(t *testing.T) {
	m, err := clip.Load("../assets/shapes-teacher")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.LoadTokenizer("../assets/shapes-teacher")
	if err != nil {
		t.Fatal(err)
	}
	limit := 32
	if v := os.Getenv("MOPECLIP_SCORE_LIMIT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MOPECLIP_SCORE_LIMIT=%q: want a positive integer", v)
		}
		limit = n
	}
	cal, err := LoadCalib(m, "shapes", "", limit, tok)
	if err != nil {
		t.Fatal(err)
	}
	score := func(dt infer.DType, rs *Rescore) *ScoreFile {
		f, err := Score(m, cal, Options{Metric: "mope", Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, DType: dt, Rescore: rs})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ref := score(infer.F32, &DefaultRescore)
	if ref.Settings.DType != "" || ref.Settings.Rescore != "" || ref.Rescored != nil {
		t.Errorf("f32 run records dtype %q rescore %q %+v", ref.Settings.DType, ref.Settings.Rescore, ref.Rescored)
	}
	plans := func(f *ScoreFile) (string, string) {
		wp, err := WidthPlan(m, f, WidthOptions{Ratio: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		layers := map[Module]float64{}
		for mod, s := range f.Lookup() {
			if mod.Kind == KindLayer {
				layers[mod] = s
			}
		}
		dp, err := DepthPlan(m, layers, 0.5, clip.BothTowers)
		if err != nil {
			t.Fatal(err)
		}
		return planString(wp), planString(dp)
	}
	rw, rd := plans(ref)
	for _, c := range []struct {
		dt      infer.DType
		rescore *Rescore
		minRho  float64
	}{
		{infer.BF16, nil, 0.7},
		{infer.INT8, nil, 0.7},
		{infer.BF16, &DefaultRescore, 0.99},
		{infer.INT8, &DefaultRescore, 0.99},
	} {
		t.Run(fmt.Sprintf("%v/rescore=%v", c.dt, c.rescore), func(t *testing.T) {
			if c.dt == infer.BF16 && c.rescore != nil && limit < 1000 {
				t.Skip("bf16 two-stage: same code as int8's, slower on this small model; runs with MOPECLIP_SCORE_LIMIT=1000")
			}
			f := score(c.dt, c.rescore)
			if f.Settings.DType != c.dt.String() || f.Settings.Rescore != strings.TrimPrefix(c.rescore.String(), "none") {
				t.Errorf("settings record dtype %q rescore %q", f.Settings.DType, f.Settings.Rescore)
			}
			if len(f.Scores) != len(ref.Scores) {
				t.Fatalf("%d scores, f32 %d", len(f.Scores), len(ref.Scores))
			}
			x, y := make([]float64, len(f.Scores)), make([]float64, len(f.Scores))
			same, rescored := true, 0
			for i, s := range f.Scores {
				x[i], y[i] = ref.Scores[i].Score, s.Score
				if s.Reduced == nil {
					same = same && x[i] == y[i]
					continue
				}
				same = same && x[i] == *s.Reduced
				rescored++
				if c.rescore == nil || x[i] != y[i] {
					t.Errorf("%v: rescored %v (reduced %v), f32 run %v", s.Module, y[i], *s.Reduced, x[i])
				}
			}
			rho := spearman(x, y)
			w, d := plans(f)
			t.Logf("%d modules, %d calibration images: Spearman %.4f, width plan same %v, depth plan same %v; rescored %+v", len(x), cal.NImg, rho, w == rw, d == rd, f.Rescored)
			if same {
				t.Errorf("every reduced-precision score equals f32's: not scoring in %v?", c.dt)
			}
			if c.rescore == nil {
				if f.Rescored != nil {
					t.Errorf("one-stage run reports rescoring %+v", f.Rescored)
				}
				if limit < 1000 && rho < c.minRho {
					t.Errorf("Spearman %.4f < %g", rho, c.minRho)
				}
				return
			}
			if f.Baseline != ref.Baseline {
				t.Errorf("baseline %v, f32 run %v", f.Baseline, ref.Baseline)
			}
			if f.Rescored == nil || f.Rescored.Rescored != rescored || f.Rescored.Rounds < 1 || f.Rescored.Margin < MarginSafety*f.Rescored.MaxError {
				t.Errorf("report %+v for %d rescored modules", f.Rescored, rescored)
			}
			if rho < c.minRho {
				t.Errorf("Spearman %.4f < %g", rho, c.minRho)
			}
			if w != rw || d != rd {
				t.Errorf("plans differ from f32's:\nwidth %s\n  f32 %s\ndepth %s\n  f32 %s", w, rw, d, rd)
			}
		})
	}
	if _, err := Score(m, cal, Options{Metric: "magnitude", Towers: clip.VisionOnly, Kinds: []string{KindHead}, DType: infer.INT8}); err == nil {
		t.Error("int8 magnitude scoring: no error")
	}
	for _, o := range []Options{
		{Metric: "unimodal", Towers: clip.VisionOnly, Kinds: []string{KindLayer}, DType: infer.INT8, Rescore: &DefaultRescore},
		{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{KindLayer}, DType: infer.BF16, Rescore: &DefaultRescore, Shard: "0/2"},
	} {
		if _, err := Score(m, cal, o); err == nil {
			t.Errorf("metric %s shard %q with rescoring: no error", o.Metric, o.Shard)
		}
	}
}

// TestScoreTwoStageReproducible: a two-stage run is bit-identical when
// repeated with the same threads, and a margin that covers every decision
// rescores every module that takes part in one.
func TestScoreTwoStageReproducible(t *testing.T) {
	m, err := clip.Load("../assets/shapes-teacher")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.LoadTokenizer("../assets/shapes-teacher")
	if err != nil {
		t.Fatal(err)
	}
	cal, err := LoadCalib(m, "shapes", "", 16, tok)
	if err != nil {
		t.Fatal(err)
	}
	run := func(threads int, rs Rescore) *ScoreFile {
		f, err := Score(m, cal, Options{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{KindFFN, KindLayer}, DType: infer.INT8, Rescore: &rs, Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, threads := range []int{1, 2} {
		a, b := run(threads, Rescore{Width: 0.5, Depth: 0.5, Margin: 0.01}), run(threads, Rescore{Width: 0.5, Depth: 0.5, Margin: 0.01})
		if !reflect.DeepEqual(a, b) {
			t.Errorf("threads %d: two runs differ", threads)
		}
	}
	// Width 0.25, no depth decision (ratio 1), a margin of 1000 points:
	// every FFN group is rescored, no layer.
	f := run(0, Rescore{Width: 0.25, Depth: 1, Margin: 1000})
	for _, s := range f.Scores {
		if want := s.Kind == KindFFN; (s.Reduced != nil) != want {
			t.Errorf("%v: rescored %v, want %v", s.Module, s.Reduced != nil, want)
		}
	}
	if f.Settings.Rescore != "width=0.25,depth=1,margin=1000" || f.Rescored.Rounds != 1 {
		t.Errorf("settings rescore %q, report %+v", f.Settings.Rescore, f.Rescored)
	}
}

func TestParseRescore(t *testing.T) {
	for _, c := range []struct {
		in   string
		want *Rescore
		str  string
	}{
		{"none", nil, "none"},
		{"off", nil, "none"},
		{"plan", &Rescore{Width: 0.5, Depth: 0.5}, "width=0.5,depth=0.5"},
		{"width=0.25,depth=1", &Rescore{Width: 0.25, Depth: 1}, "width=0.25,depth=1"},
		{"depth=0.75, width=0.5, global, margin=0.2", &Rescore{Width: 0.5, Depth: 0.75, Global: true, Margin: 0.2}, "width=0.5,depth=0.75,global,margin=0.2"},
		{"width=0.5", &Rescore{Width: 0.5}, "width=0.5,depth=0"},
	} {
		got, err := ParseRescore(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) || got.String() != c.str {
			t.Errorf("ParseRescore(%q) = %+v, %v (%q), want %+v (%q)", c.in, got, err, got.String(), c.want, c.str)
			continue
		}
		if back, err := ParseRescore(c.str); err != nil || !reflect.DeepEqual(back, c.want) {
			t.Errorf("ParseRescore(%q) = %+v, %v: not the round trip of %q", c.str, back, err, c.in)
		}
	}
	for _, bad := range []string{"width=2", "width=x", "depth=-0.1", "depth=NaN", "margin=-1", "margin=Inf", "global=1", "widht=0.5", "width=0.5,,"} {
		if r, err := ParseRescore(bad); err == nil {
			t.Errorf("ParseRescore(%q) = %+v, no error", bad, r)
		}
	}
}

// TestUncertain: the modules to rescore in one decision (indices 0..n-1,
// layer 0, index = position) for given scores, exactness and margin.
func TestUncertain(t *testing.T) {
	for _, c := range []struct {
		name   string
		v      []float64
		units  []int
		keep   int
		exact  []int
		margin float64
		want   []int
	}{
		{"clear gap", []float64{4, 3, 2, 1}, nil, 2, nil, 0.4, []int{}},
		{"overlap at the boundary", []float64{4, 3, 2, 1}, nil, 2, nil, 0.6, []int{1, 2}},
		{"wide margin", []float64{4, 3, 2, 1}, nil, 2, nil, 1.1, []int{0, 1, 2, 3}},
		{"order irrelevant", []float64{1, 2, 3, 4}, nil, 2, nil, 0.6, []int{1, 2}},
		{"same side overlaps", []float64{3, 2.9, 1, 0.9}, nil, 2, nil, 0.2, []int{}},
		{"one exact settles it", []float64{4, 3, 2, 1}, nil, 2, []int{1}, 0.6, []int{}},
		{"exact but still close", []float64{4, 2.5, 2, 1}, nil, 2, []int{1}, 0.6, []int{2}},
		{"both exact, tied", []float64{3, 3, 1}, nil, 1, []int{0, 1}, 0.5, []int{}},
		{"tied, not exact", []float64{3, 3, 1}, nil, 1, nil, 0, []int{0, 1}},
		{"exact tie, margin 0", []float64{3, 3, 1}, nil, 1, []int{0}, 0, []int{1}},
		{"partial group", []float64{3, 2, 1}, []int{3, 3, 3}, 4, nil, 0.6, []int{0, 1, 2}},
		{"partial group, clear", []float64{3, 2, 1}, []int{3, 3, 3}, 4, nil, 0.4, []int{}},
		{"keep all", []float64{3, 3, 3}, nil, 3, nil, 1, []int{}},
		{"single", []float64{1}, nil, 1, nil, 1, []int{}},
		{"awkward 7", []float64{7, 6, 5, 4.1, 4, 2, 1}, nil, 4, nil, 0.1, []int{3, 4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := len(c.v)
			d := decision{keep: c.keep}
			mods, exact := make([]Module, n), make([]bool, n)
			for i := range c.v {
				d.ids = append(d.ids, i)
				u := 1
				if c.units != nil {
					u = c.units[i]
				}
				d.units = append(d.units, u)
				mods[i] = Module{Vision, KindFFN, 0, i}
			}
			for _, i := range c.exact {
				exact[i] = true
			}
			got := uncertain([]decision{d}, mods, c.v, exact, c.margin)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("uncertain = %v, want %v", got, c.want)
			}
		})
	}
}

// TestPlanDecisions: the decisions of a plan over the shapes teacher's
// modules (4 layers of 4 heads and 16 FFN groups per tower).
func TestPlanDecisions(t *testing.T) {
	m, err := clip.Load("../assets/shapes-teacher")
	if err != nil {
		t.Fatal(err)
	}
	all := Modules(m, clip.BothTowers, []string{KindHead, KindFFN, KindLayer}, DefaultGroups)
	f := &ScoreFile{Settings: Settings{Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: DefaultGroups}}
	for id, mod := range all {
		f.Scores = append(f.Scores, ModuleScore{ID: id, Module: mod})
	}
	for _, c := range []struct {
		r     Rescore
		sizes []int // modules per decision, in order
		keeps []int
	}{
		{DefaultRescore, []int{4, 4, 4, 4, 16, 16, 16, 16, 4, 4, 4, 4, 4, 16, 16, 16, 16, 4}, nil},
		{Rescore{Width: 0.5, Depth: 0.5, Global: true}, []int{16, 64, 4, 16, 64, 4}, nil},
		{Rescore{Width: 1, Depth: 0.25}, []int{4, 4}, []int{1, 1}},
		{Rescore{Width: 0, Depth: 1}, []int{}, []int{}},
	} {
		ds, err := planDecisions(m, f, c.r)
		if err != nil {
			t.Fatal(err)
		}
		sizes, keeps := []int{}, []int{}
		for _, d := range ds {
			sizes, keeps = append(sizes, len(d.ids)), append(keeps, d.keep)
			for k, id := range d.ids {
				if f.Scores[id].Kind == KindFFN {
					if lo, hi := NeuronGroup(numNeurons(m.Vision.Encoder.Layers[0]), DefaultGroups, f.Scores[id].Index); d.units[k] != hi-lo {
						t.Errorf("%v: %d units, want %d", f.Scores[id].Module, d.units[k], hi-lo)
					}
				}
			}
		}
		if !reflect.DeepEqual(sizes, c.sizes) || (c.keeps != nil && !reflect.DeepEqual(keeps, c.keeps)) {
			t.Errorf("%v: decision sizes %v keeps %v, want %v %v", c.r.String(), sizes, keeps, c.sizes, c.keeps)
		}
	}
	f.Scores = f.Scores[1:]
	if _, err := planDecisions(m, f, DefaultRescore); err == nil {
		t.Error("a missing module's score: no error")
	}
}

// planString is p as JSON, for comparing plans.
func planString(p *Plan) string {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestRescoreMismatch(t *testing.T) {
	file := func(dtype, rescore string) *ScoreFile {
		return &ScoreFile{Settings: Settings{Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, DType: dtype, Rescore: rescore}}
	}
	for _, c := range []struct {
		f             *ScoreFile
		width, depth  float64
		global, wants bool
	}{
		{file("", ""), 0.3, 0.2, false, false},
		{file("int8", ""), 0.5, 0.5, false, true},
		{file("int8", "width=0.5,depth=0.5"), 0.5, 0.5, false, false},
		{file("bf16", "width=0.5,depth=0.5"), 0.5, 1, false, false},
		{file("bf16", "width=0.5,depth=0.5"), 1, 0.5, true, false},
		{file("bf16", "width=0.5,depth=0.5"), 0.25, 0.5, false, true},
		{file("bf16", "width=0.5,depth=0.5"), 0.5, 0.5, true, true},
		{file("bf16", "width=0.5,depth=0.5"), 0.5, 0.75, false, true},
		{file("bf16", "width=0.5,depth=0.5,global"), 0.5, 0.5, true, false},
		{file("bf16", "bogus"), 0.5, 0.5, false, true},
	} {
		why := RescoreMismatch(c.f, c.width, c.depth, c.global)
		if (why != "") != c.wants {
			t.Errorf("dtype %q rescore %q, width %g depth %g global %v: %q", c.f.Settings.DType, c.f.Settings.Rescore, c.width, c.depth, c.global, why)
		}
	}
}

// countdownCtx is a context whose Err turns context.Canceled on its n-th
// call (after n-1 modules were recorded).
type countdownCtx struct {
	context.Context
	n int
}

func (c *countdownCtx) Err() error {
	if c.n--; c.n <= 0 {
		return context.Canceled
	}
	return nil
}

// TestScoreTwoStageResume: a two-stage run stopped during the float32
// stage leaves a checkpoint with the modules rescored so far, and resuming
// it gives the scores of an uninterrupted run.
func TestScoreTwoStageResume(t *testing.T) {
	m, err := clip.Load("../assets/shapes-teacher")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.LoadTokenizer("../assets/shapes-teacher")
	if err != nil {
		t.Fatal(err)
	}
	cal, err := LoadCalib(m, "shapes", "", 16, tok)
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(t.TempDir(), "s.json")
	o := Options{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{KindFFN, KindLayer}, DType: infer.INT8,
		Rescore: &Rescore{Width: 0.5, Depth: 0.5, Margin: 1000}, Checkpoint: ck}
	want, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	n := len(want.Scores)
	if want.Rescored.Rescored < 4 {
		t.Fatalf("only %d modules rescored: the test needs several", want.Rescored.Rescored)
	}
	_, err = ScoreContext(&countdownCtx{context.Background(), n + 3}, m, cal, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped run: %v, want context.Canceled", err)
	}
	part, err := ReadScores(ck)
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, s := range part.Scores {
		if s.Reduced != nil {
			done++
		}
	}
	if len(part.Scores) != n || done != 3 || part.Complete {
		t.Fatalf("checkpoint: %d scores, %d rescored, complete %v; want %d, 3, false", len(part.Scores), done, part.Complete, n)
	}
	o.Resume = part
	got, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Scores, want.Scores) || got.Baseline != want.Baseline || got.Rescored.Rescored != want.Rescored.Rescored {
		t.Errorf("resumed run differs from an uninterrupted one: rescored %+v, want %+v", got.Rescored, want.Rescored)
	}
}
